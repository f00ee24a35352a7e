//! DeepFM with a log-variance head: one member of DORL's user-model ensemble (`docs/protocol.md` §4.1;
//! DORL-codes `UserModel_Pairwise_Variance` on DeepCTR-torch layers).
//!
//! Fields: user id, item id, T tag fields (one shared table, [`crate::features`]) and the dense
//! `duration_normed`. For one (user, item) with field embeddings e_1..e_F (F = 2 + T) and dense value x:
//!
//! ```text
//! linear = w_user[u] + w_item[i] + Σ_t w_tag[tag_t] + w_dense · x          (first-order term, no bias)
//! fm     = ½ Σ_d [ (Σ_f e_f,d)² − Σ_f e_f,d² ]                              (second-order interactions)
//! h      = ReLU(W2 · ReLU(W1 · [e_1 ‖ … ‖ e_F ‖ x] + b1) + b2)             (DNN, hidden 128, 128)
//! ŷ      = link(linear + fm + v_mean · h + b)                               (identity or sigmoid)
//! ℓ      = v_var · h,  ℓ ← 0.5 − softplus(0.5 − ℓ),  ℓ ← −10 + softplus(ℓ + 10)   (log-variance)
//! ```
//!
//! **Initialisation** (DeepCTR): embeddings, first-order weights and DNN weights ~ N(0, `init_std`²); DNN
//! biases and the two heads' weights ~ U(±1/√fan_in) (PyTorch's `nn.Linear` default); the output bias 0.
//! Every value is drawn from a ChaCha8 stream of the model's seed, never from libtorch's global generator.
//!
//! **Regularisation** (DORL's `add_regularization_weight` calls, applied by `fit_data` to every mini-batch):
//! `l2_reg_dnn · Σ w²` over *all* parameters (the anchor registers `self.parameters()` with `l2_reg_dnn`),
//! plus `l2_reg_embedding · Σ w²` over the embedding tables and `l2_reg_linear · Σ w²` over the first-order
//! weights (DeepCTR's defaults, 1e-5 each). The data term is a *sum* over the batch, so the penalty weighs
//! against 2·B samples.
//!
//! **Loss `pointneg`** over a batch of B (positive, negative) pairs, exposure e = 0 (DORL's `--tau 0`):
//! Σ_pos [(ŷ/(1+e) − y)² · exp(−ℓ) + ℓ] + Σ_neg [ŷ² · exp(−ℓ) + ℓ]. Adam, learning rate 1e-3.

use crate::features::Features;
use crate::pairs::TrainingPairs;
use crate::{invalid, Result, WorldError};
use dsrm_nn::mlp::{Activation, Mlp};
use dsrm_nn::optim::{Adam, AdamConfig};
use dsrm_nn::tch::nn::{Module, VarStore};
use dsrm_nn::tch::{Device, Kind, Tensor};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// Settings of one DeepFM and of its training. Every field has a default (the anchors' values), so a config
/// file names only what it changes; unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeepFmConfig {
    /// Embedding size of every sparse field. Default: by data set, 8 (KuaiRec, Coat) or 4 (KuaiRand-Pure).
    pub embedding_dim: Option<usize>,
    /// DNN hidden sizes. Default [128, 128].
    pub dnn_hidden: Vec<usize>,
    /// Standard deviation of the Gaussian initialisation. Default 1e-3 (DORL's ensemble script).
    pub init_std: f64,
    /// L2 on every parameter, added to each batch loss. Default 0.1.
    pub l2_reg_dnn: f64,
    /// Extra L2 on the embedding tables. Default 1e-5 (DeepCTR).
    pub l2_reg_embedding: f64,
    /// Extra L2 on the first-order weights. Default 1e-5 (DeepCTR).
    pub l2_reg_linear: f64,
    /// Soft lower bound of the log-variance. Default −10.
    pub min_logvar: f64,
    /// Soft upper bound of the log-variance. Default 0.5.
    pub max_logvar: f64,
    /// Output link. Default: chosen from the targets ([`OutputLink::for_targets`]).
    pub output: Option<OutputLink>,
    /// Passes over the training pairs. Default 5.
    pub epochs: usize,
    /// Pairs per mini-batch (each pair is one positive and one negative). Default 4096.
    pub batch_size: usize,
    /// Adam learning rate. Default 1e-3.
    pub learning_rate: f64,
    /// Negatives per logged row. Default: by data set, 3 (KuaiRec, Coat) or 5 (KuaiRand-Pure).
    pub neg_k: Option<usize>,
}

impl Default for DeepFmConfig {
    fn default() -> Self {
        Self {
            embedding_dim: None,
            dnn_hidden: vec![128, 128],
            init_std: 1e-3,
            l2_reg_dnn: 0.1,
            l2_reg_embedding: 1e-5,
            l2_reg_linear: 1e-5,
            min_logvar: -10.0,
            max_logvar: 0.5,
            output: None,
            epochs: 5,
            batch_size: 4096,
            learning_rate: 1e-3,
            neg_k: None,
        }
    }
}

impl DeepFmConfig {
    /// The embedding size for `dataset` (`World::dataset`): the anchors use 4 on KuaiRand-Pure, 8 elsewhere.
    pub fn embedding_dim_for(&self, dataset: &str) -> usize {
        self.embedding_dim.unwrap_or(if dataset == "kuairand-pure" { 4 } else { 8 })
    }

    /// Negatives per row for `dataset`: the anchors use 5 on KuaiRand-Pure, 3 elsewhere.
    pub fn neg_k_for(&self, dataset: &str) -> usize {
        self.neg_k.unwrap_or(if dataset == "kuairand-pure" { 5 } else { 3 })
    }

    /// Rejects settings that cannot train (zero sizes, non-finite or negative rates, inverted bounds).
    pub fn validate(&self) -> Result<()> {
        let finite_non_negative =
            [("init_std", self.init_std), ("l2_reg_dnn", self.l2_reg_dnn), ("l2_reg_embedding", self.l2_reg_embedding)]
                .into_iter()
                .chain([("l2_reg_linear", self.l2_reg_linear)]);
        for (name, v) in finite_non_negative {
            if !(v.is_finite() && v >= 0.0) {
                return Err(invalid(format!("deepfm.{name} = {v}: must be finite and >= 0")));
            }
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(invalid(format!("deepfm.learning_rate = {}: must be > 0", self.learning_rate)));
        }
        if !(self.min_logvar.is_finite() && self.max_logvar.is_finite() && self.min_logvar < self.max_logvar) {
            return Err(invalid(format!(
                "deepfm log-variance bounds [{}, {}] must be finite and increasing",
                self.min_logvar, self.max_logvar
            )));
        }
        if self.dnn_hidden.is_empty() || self.dnn_hidden.contains(&0) {
            return Err(invalid(format!(
                "deepfm.dnn_hidden = {:?}: needs at least one non-empty layer",
                self.dnn_hidden
            )));
        }
        if self.embedding_dim == Some(0) || self.neg_k == Some(0) || self.batch_size == 0 {
            return Err(invalid("deepfm.embedding_dim, neg_k and batch_size must be at least 1"));
        }
        Ok(())
    }
}

/// The output link, fixed by the kind of target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputLink {
    /// Regression (KuaiRec's watch ratio, Coat's ratings): ŷ = logit.
    Identity,
    /// Probabilities (KuaiRand-Pure's `is_click`): ŷ = sigmoid(logit).
    Sigmoid,
}

impl OutputLink {
    /// Sigmoid when every target lies in [0, 1] (clicks, as the anchors' `binary` task), identity otherwise.
    /// The model regresses on the world's own training target: for KuaiRec that is the capped raw watch
    /// ratio (0..5) of `World::train`, not DORL's `watch_ratio_normed` (a per-video z-score the world does
    /// not carry), so ŷ sits on a different scale relative to the λ-weighted penalties than in the anchors.
    pub fn for_targets(targets: &[f64]) -> Self {
        if targets.iter().all(|y| (0.0..=1.0).contains(y)) {
            OutputLink::Sigmoid
        } else {
            OutputLink::Identity
        }
    }
}

/// One DeepFM: its variables live in its own [`VarStore`] (checkpointable with `dsrm_nn::checkpoint`).
#[derive(Debug)]
pub struct DeepFm {
    cfg: DeepFmConfig,
    seed: u64,
    link: OutputLink,
    dim: i64,
    n_tag_fields: i64,
    n_env_items: i64,
    device: Device,
    vs: VarStore,
    /// `[n_items, T]` tag rows (int64) and `[n_items, 1]` durations: item features looked up per batch.
    item_tags: Tensor,
    item_dense: Tensor,
    emb_user: Tensor,
    emb_item: Tensor,
    emb_tag: Tensor,
    lin_user: Tensor,
    lin_item: Tensor,
    lin_tag: Tensor,
    lin_dense: Tensor,
    dnn: Mlp,
    head_mean: Tensor,
    head_logvar: Tensor,
    out_bias: Tensor,
}

impl DeepFm {
    /// A freshly initialised model for `features`, seeded by `seed` (initialisation and shuffles).
    pub fn new(features: &Features, cfg: &DeepFmConfig, link: OutputLink, seed: u64) -> Result<Self> {
        cfg.validate()?;
        let device = dsrm_nn::runtime::device();
        let vs = VarStore::new(device);
        let root = vs.root();
        let dim = cfg.embedding_dim_for(&features.dataset) as i64;
        let t = features.n_tag_fields as i64;
        let (n_users, n_items, n_tags) = (features.n_users as i64, features.n_items as i64, features.tag_vocab as i64);
        let n_fields = 2 + t;
        let mut sizes = vec![n_fields * dim + 1];
        sizes.extend(cfg.dnn_hidden.iter().map(|&h| h as i64));
        let hidden = *sizes.last().unwrap_or(&1);

        let item_tags = Tensor::f_from_slice(&features.tag_index)?.f_reshape([n_items, t])?.f_to_device(device)?;
        let item_dense = Tensor::f_from_slice(&features.duration)?.f_reshape([n_items, 1])?.f_to_device(device)?;
        let emb_user = root.f_zeros("emb_user", &[n_users, dim])?;
        let emb_item = root.f_zeros("emb_item", &[n_items, dim])?;
        let emb_tag = root.f_zeros("emb_tag", &[n_tags, dim])?;
        let lin_user = root.f_zeros("lin_user", &[n_users, 1])?;
        let lin_item = root.f_zeros("lin_item", &[n_items, 1])?;
        let lin_tag = root.f_zeros("lin_tag", &[n_tags, 1])?;
        let lin_dense = root.f_zeros("lin_dense", &[1, 1])?;
        let dnn = Mlp::new(&(&root / "dnn"), &sizes, Activation::Relu);
        let head_mean = root.f_zeros("head_mean", &[1, hidden])?;
        let head_logvar = root.f_zeros("head_logvar", &[1, hidden])?;
        let out_bias = root.f_zeros("out_bias", &[1])?;
        let model = Self {
            cfg: cfg.clone(),
            seed,
            link,
            dim,
            n_tag_fields: t,
            n_env_items: features.n_env_items as i64,
            device,
            vs,
            item_tags,
            item_dense,
            emb_user,
            emb_item,
            emb_tag,
            lin_user,
            lin_item,
            lin_tag,
            lin_dense,
            dnn,
            head_mean,
            head_logvar,
            out_bias,
        };
        model.initialise()?;
        Ok(model)
    }

    /// Fills every variable from the model's own ChaCha8 stream (stream 0; shuffles use stream 1), in name
    /// order, so initialisation does not depend on libtorch's global generator or on other threads.
    fn initialise(&self) -> Result<()> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let normal = Normal::new(0.0f32, self.cfg.init_std as f32).map_err(|e| invalid(e.to_string()))?;
        let mut vars: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let weights = self.vs.variables();
        dsrm_nn::tch::no_grad(|| -> Result<()> {
            for (name, var) in &vars {
                let n = var.numel();
                let values: Vec<f32> = if name == "out_bias" {
                    vec![0.0; n]
                } else if name.starts_with("head_") || (name.starts_with("dnn.") && name.ends_with(".bias")) {
                    // PyTorch's nn.Linear default: U(±1/√fan_in), fan_in = the weight's input size.
                    let fan_in = if name.starts_with("head_") {
                        var.size()[1]
                    } else {
                        let weight = name.trim_end_matches(".bias").to_string() + ".weight";
                        weights.get(&weight).map(|w| w.size()[1]).unwrap_or(1)
                    };
                    let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
                    (0..n).map(|_| rng.gen_range(-bound..=bound)).collect()
                } else {
                    (0..n).map(|_| normal.sample(&mut rng)).collect()
                };
                let mut target = var.shallow_clone();
                target.f_copy_(&Tensor::f_from_slice(&values)?.f_reshape(var.size())?)?;
            }
            Ok(())
        })
    }

    /// ŷ and the clamped log-variance ℓ for a batch of (user, item) ids (1-D int64 tensors of equal length),
    /// both of shape `[B]`. Out-of-range ids are errors.
    pub fn forward(&self, users: &Tensor, items: &Tensor) -> Result<(Tensor, Tensor)> {
        let b = users.size1()?;
        let embed = |table: &Tensor, ids: &Tensor| Tensor::f_embedding(table, ids, -1, false, false);
        let tags = self.item_tags.f_index_select(0, items)?; // [B, T]
        let dense = self.item_dense.f_index_select(0, items)?; // [B, 1]
        let fields = Tensor::f_cat(
            &[
                embed(&self.emb_user, users)?.f_unsqueeze(1)?,
                embed(&self.emb_item, items)?.f_unsqueeze(1)?,
                embed(&self.emb_tag, &tags)?,
            ],
            1,
        )?; // [B, F, d]

        let first_order = embed(&self.lin_user, users)?
            .f_add(&embed(&self.lin_item, items)?)?
            .f_add(&embed(&self.lin_tag, &tags)?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?)?
            .f_add(&dense.f_matmul(&self.lin_dense)?)?; // [B, 1]

        let sum = fields.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?; // [B, d]
        let sum_of_squares = fields.f_square()?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?;
        let fm = sum
            .f_square()?
            .f_sub(&sum_of_squares)?
            .f_sum_dim_intlist([1i64].as_slice(), true, Kind::Float)?
            .f_mul_scalar(0.5)?; // [B, 1]

        let x = Tensor::f_cat(&[fields.f_reshape([b, (2 + self.n_tag_fields) * self.dim])?, dense], 1)?;
        let h = self.dnn.forward(&x).f_relu()?; // [B, H]

        let logit = first_order.f_add(&fm)?.f_add(&h.f_matmul(&self.head_mean.f_tr()?)?)?.f_add(&self.out_bias)?;
        let y = match self.link {
            OutputLink::Identity => logit,
            OutputLink::Sigmoid => logit.f_sigmoid()?,
        };
        let (lo, hi) = (self.cfg.min_logvar, self.cfg.max_logvar);
        let raw = h.f_matmul(&self.head_logvar.f_tr()?)?;
        let upper = raw.f_neg()?.f_add_scalar(hi)?.f_softplus()?.f_neg()?.f_add_scalar(hi)?; // hi − softplus(hi − ℓ)
        let logvar = upper.f_sub_scalar(lo)?.f_softplus()?.f_add_scalar(lo)?; // lo + softplus(ℓ − lo)
        Ok((y.f_reshape([b])?, logvar.f_reshape([b])?))
    }

    /// The `pointneg` loss of one batch: positives `(y_pos, lv_pos)` against `targets`, negatives against 0
    /// (module documentation). Summed, not averaged, as in the anchors.
    pub fn pointneg_loss(
        y_pos: &Tensor,
        lv_pos: &Tensor,
        targets: &Tensor,
        y_neg: &Tensor,
        lv_neg: &Tensor,
    ) -> Result<Tensor> {
        Self::weighted_pointneg_loss(y_pos, lv_pos, targets, y_neg, lv_neg, None)
    }

    /// [`Self::pointneg_loss`] with each positive term multiplied by its weight (the IPS user model).
    pub fn weighted_pointneg_loss(
        y_pos: &Tensor,
        lv_pos: &Tensor,
        targets: &Tensor,
        y_neg: &Tensor,
        lv_neg: &Tensor,
        weights: Option<&Tensor>,
    ) -> Result<Tensor> {
        let mut pos = y_pos.f_sub(targets)?.f_square()?.f_mul(&lv_pos.f_neg()?.f_exp()?)?.f_add(lv_pos)?;
        if let Some(w) = weights {
            pos = pos.f_mul(w)?;
        }
        let neg = y_neg.f_square()?.f_mul(&lv_neg.f_neg()?.f_exp()?)?.f_add(lv_neg)?;
        Ok(pos.f_sum(Kind::Float)?.f_add(&neg.f_sum(Kind::Float)?)?)
    }

    /// The L2 penalty added to every batch loss (module documentation).
    fn regularization(&self) -> Result<Tensor> {
        let mut total = Tensor::f_zeros([], (Kind::Float, self.device))?;
        for (name, var) in self.vs.variables() {
            let mut c = self.cfg.l2_reg_dnn;
            if name.starts_with("emb_") {
                c += self.cfg.l2_reg_embedding;
            } else if name.starts_with("lin_") {
                c += self.cfg.l2_reg_linear;
            }
            if c > 0.0 {
                total = total.f_add(&var.f_square()?.f_sum(Kind::Float)?.f_mul_scalar(c)?)?;
            }
        }
        Ok(total)
    }

    /// Sets parameters smaller in magnitude than the smallest normal f32 to zero. Parameters that only the
    /// L2 term pulls on (the user rows of environment users, dead DNN units) shrink geometrically under
    /// Adam and reach subnormal values within an epoch; a subnormal weight makes every matrix product it
    /// enters take the CPU's slow microcode path (measured: 3x slower training, 10x slower grid prediction).
    /// Zero is what flush-to-zero arithmetic would give, and it keeps libtorch's global state untouched.
    fn flush_denormals(&self) -> Result<()> {
        dsrm_nn::tch::no_grad(|| -> Result<()> {
            for mut p in self.vs.trainable_variables() {
                let tiny = p.f_abs()?.f_lt(f64::from(f32::MIN_POSITIVE))?;
                let _ = p.f_masked_fill_(&tiny, 0.0)?;
            }
            Ok(())
        })
    }

    /// Trains on `pairs` for `epochs` passes: each pass shuffles the pairs (the model's ChaCha8 stream 1),
    /// takes one Adam step per batch of `batch_size` pairs, and reports `(epoch, loss)` where loss is the mean
    /// `pointneg` data loss per pair (the L2 penalty excluded, so the number compares across settings).
    /// Returns those losses. A non-finite loss stops training with [`WorldError::Diverged`] (model 0; the
    /// ensemble fills in its index).
    pub fn fit(&mut self, pairs: &TrainingPairs, progress: &mut dyn FnMut(usize, f64)) -> Result<Vec<f64>> {
        self.fit_more(pairs, self.cfg.epochs, self.seed, progress)
    }

    /// [`Self::fit`] for `epochs` passes from the model's current weights, with a fresh Adam and the shuffles
    /// drawn from ChaCha8 stream 1 of `shuffle_seed` (`fit` is `fit_more(pairs, cfg.epochs, seed)`). An
    /// incremental refit ([`crate::refit`]) continues a trained model this way.
    pub fn fit_more(
        &mut self,
        pairs: &TrainingPairs,
        epochs: usize,
        shuffle_seed: u64,
        progress: &mut dyn FnMut(usize, f64),
    ) -> Result<Vec<f64>> {
        if pairs.is_empty() {
            return Err(invalid("no training pairs"));
        }
        let mut opt = Adam::new(&self.vs, AdamConfig { lr: self.cfg.learning_rate, ..AdamConfig::default() });
        let mut rng = ChaCha8Rng::seed_from_u64(shuffle_seed);
        rng.set_stream(1);
        let mut order: Vec<u32> = (0..pairs.len() as u32).collect();
        let (mut users, mut items, mut targets, mut weights) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut history = Vec::with_capacity(epochs);
        for epoch in 0..epochs {
            order.shuffle(&mut rng);
            let mut epoch_loss = 0.0;
            for batch in order.chunks(self.cfg.batch_size) {
                pairs.fill_batch(batch, &mut users, &mut items, &mut targets);
                let b = batch.len() as i64;
                let u = Tensor::f_from_slice(&users)?.f_to_device(self.device)?;
                let i = Tensor::f_from_slice(&items)?.f_to_device(self.device)?;
                let y = Tensor::f_from_slice(&targets)?.f_to_device(self.device)?;
                let w = if pairs.weight.is_empty() {
                    None
                } else {
                    pairs.fill_weights(batch, &mut weights);
                    Some(Tensor::f_from_slice(&weights)?.f_to_device(self.device)?)
                };
                let (pred, logvar) = self.forward(&u, &i)?;
                let loss = Self::weighted_pointneg_loss(
                    &pred.f_narrow(0, 0, b)?,
                    &logvar.f_narrow(0, 0, b)?,
                    &y,
                    &pred.f_narrow(0, b, b)?,
                    &logvar.f_narrow(0, b, b)?,
                    w.as_ref(),
                )?;
                let total = loss.f_add(&self.regularization()?)?;
                opt.backward_step(&total)?;
                self.flush_denormals()?;
                epoch_loss += loss.f_double_value(&[])?;
            }
            let mean = epoch_loss / pairs.len() as f64;
            if !mean.is_finite() {
                return Err(WorldError::Diverged { model: 0, epoch });
            }
            history.push(mean);
            progress(epoch, mean);
        }
        Ok(history)
    }

    /// ŷ and exp(ℓ) for every item of the environment catalogue, for the users `first_user..first_user + n`
    /// (row-major, `n · n_env_items` values each), without gradients.
    pub fn predict_users(&self, first_user: u32, n: u32) -> Result<(Vec<f32>, Vec<f32>)> {
        dsrm_nn::tch::no_grad(|| {
            let n_items = self.n_env_items;
            let opts = (Kind::Int64, self.device);
            let users = Tensor::f_arange_start(i64::from(first_user), i64::from(first_user) + i64::from(n), opts)?
                .f_repeat_interleave_self_int(n_items, 0, None)?;
            let items = Tensor::f_arange(n_items, opts)?.f_repeat([i64::from(n)])?;
            let (y, logvar) = self.forward(&users, &items)?;
            Ok((to_vec(&y)?, to_vec(&logvar.f_exp()?)?))
        })
    }

    /// ŷ and exp(ℓ) for arbitrary (user, item) pairs, without gradients.
    pub fn predict(&self, users: &[u32], items: &[u32]) -> Result<(Vec<f32>, Vec<f32>)> {
        if users.len() != items.len() {
            return Err(invalid(format!("{} users but {} items", users.len(), items.len())));
        }
        dsrm_nn::tch::no_grad(|| {
            let ids = |v: &[u32]| Tensor::f_from_slice(&v.iter().map(|&x| i64::from(x)).collect::<Vec<_>>());
            let (y, logvar) =
                self.forward(&ids(users)?.f_to_device(self.device)?, &ids(items)?.f_to_device(self.device)?)?;
            Ok((to_vec(&y)?, to_vec(&logvar.f_exp()?)?))
        })
    }

    /// The item representation the `avg` state tracker starts from: for each catalogue item, the
    /// concatenation of its item-id embedding, each tag field's embedding and its dense duration
    /// (`[n_env_items, d·(1 + T) + 1]`, DORL's `save_embedding` of the item columns). A detached copy.
    pub fn item_embeddings(&self) -> Result<Tensor> {
        dsrm_nn::tch::no_grad(|| {
            let n = self.n_env_items;
            let items = self.emb_item.f_narrow(0, 0, n)?;
            let tags = Tensor::f_embedding(&self.emb_tag, &self.item_tags.f_narrow(0, 0, n)?, -1, false, false)?
                .f_reshape([n, self.n_tag_fields * self.dim])?;
            let dense = self.item_dense.f_narrow(0, 0, n)?;
            Ok(Tensor::f_cat(&[items, tags, dense], 1)?.f_detach()?)
        })
    }

    /// The output link.
    pub fn link(&self) -> OutputLink {
        self.link
    }

    /// The embedding size.
    pub fn embedding_dim(&self) -> usize {
        self.dim as usize
    }

    /// The seed of initialisation and shuffles.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The variables, for checkpoints.
    pub fn var_store(&self) -> &VarStore {
        &self.vs
    }

    /// The variables, for restoring a checkpoint.
    pub fn var_store_mut(&mut self) -> &mut VarStore {
        &mut self.vs
    }
}

/// Copies a 1-D float tensor out.
fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    let t = t.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?.f_contiguous()?;
    let mut out = vec![0f32; t.numel()];
    t.f_copy_data(&mut out, t.numel())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A three-user, four-item feature table with tags {1, 2} / {3} / {} / {2}.
    fn features() -> Features {
        Features {
            dataset: "kuairec".into(),
            n_users: 3,
            n_env_users: 2,
            n_items: 4,
            n_env_items: 3,
            n_tag_fields: 2,
            tag_shift: 1,
            tag_vocab: 5,
            tag_index: vec![2, 3, 4, 0, 0, 0, 3, 0],
            duration: vec![0.5, -1.0, 0.0, 2.0],
        }
    }

    #[test]
    fn logvar_is_soft_clamped_and_shapes_follow_the_features() {
        let f = features();
        let m = DeepFm::new(&f, &DeepFmConfig::default(), OutputLink::Identity, 1).unwrap();
        // Make the hidden layer non-zero (large first-layer biases), then push the variance head far
        // beyond each bound: ℓ must stay within [−10, 0.5] and close to the bound it is pushed against.
        dsrm_nn::tch::no_grad(|| {
            for name in ["dnn.l0.bias", "dnn.l1.bias"] {
                let _ = m.vs.variables()[name].shallow_clone().fill_(1.0);
            }
        });
        for (scale, lo, hi) in [(1e4, 0.4, 0.5), (-1e4, -10.0, -9.9)] {
            dsrm_nn::tch::no_grad(|| {
                let _ = m.head_logvar.shallow_clone().fill_(scale);
            });
            let (_, var) = m.predict(&[0, 1, 2], &[0, 1, 3]).unwrap();
            for v in var {
                let l = f64::from(v.ln());
                assert!((lo - 1e-4..=hi + 1e-4).contains(&l), "log-variance {l} for head scale {scale}");
            }
        }
        assert_eq!(m.item_embeddings().unwrap().size(), vec![3, 8 * 3 + 1]);
        assert!(m.predict(&[3], &[0]).is_err(), "user 3 does not exist");
        assert!(m.predict(&[0], &[4]).is_err(), "item 4 does not exist");
    }

    #[test]
    fn pointneg_loss_matches_the_formula() {
        let t = |v: &[f32]| Tensor::from_slice(v);
        let loss = DeepFm::pointneg_loss(&t(&[1.0, 0.5]), &t(&[0.0, -1.0]), &t(&[2.0, 0.5]), &t(&[0.3]), &t(&[0.2]))
            .unwrap()
            .double_value(&[]);
        // (1 − 2)² e⁰ + 0 + 0 + (−1) + 0.3² e^−0.2 + 0.2
        let want = 1.0 - 1.0 + 0.09 * (-0.2f64).exp() + 0.2;
        assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
    }

    #[test]
    fn config_defaults_and_unknown_keys() {
        let cfg: DeepFmConfig = serde_json::from_str(r#"{"epochs": 2, "neg_k": 4}"#).unwrap();
        assert_eq!(cfg, DeepFmConfig { epochs: 2, neg_k: Some(4), ..DeepFmConfig::default() });
        assert!(serde_json::from_str::<DeepFmConfig>(r#"{"epoch": 2}"#).is_err());
        let d = DeepFmConfig::default();
        assert_eq!((d.embedding_dim_for("kuairec"), d.neg_k_for("kuairec")), (8, 3));
        assert_eq!((d.embedding_dim_for("kuairand-pure"), d.neg_k_for("kuairand-pure")), (4, 5));
        assert!(DeepFmConfig { learning_rate: 0.0, ..d.clone() }.validate().is_err());
        assert!(DeepFmConfig { min_logvar: 1.0, ..d }.validate().is_err());
        assert_eq!(OutputLink::for_targets(&[0.0, 1.0, 1.0]), OutputLink::Sigmoid);
        assert_eq!(OutputLink::for_targets(&[0.0, 1.3]), OutputLink::Identity);
    }
}
