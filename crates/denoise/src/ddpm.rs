//! `ddpm`: the DSRM, a conditional DDPM over user states (`docs/design.md` §4.3, following Ho et al. 2020,
//! DiffRec (Wang et al. 2023), DreamRec (Yang et al. 2023) and DiffPure (Nie et al. 2022)).
//!
//! Every learned denoiser here follows one contract: **(target, condition)**. The caller's input row is the
//! condition, the observed encoded state s̃_t (= o_t, optionally ⊕ a history summary h); the model is trained
//! to produce a separate clean target s^(0) for that row (the stage's per-state clean target). The forward
//! process noises the target, never the condition:
//!
//! ```text
//! What the paper says (DSRM-HRL §3): L = E‖ε − ε_θ(s^(k), k, s̃_t)‖², s^(k) = √ᾱ_k s^(0) + √(1−ᾱ_k) ε.
//!
//! Training (Ho et al.'s Algorithm 1 with DiffRec's options):
//!   repeat   (s̃, s^(0)) ~ training rows;  k ~ U{1..T} (or importance p_k);  ε ~ N(0, I)
//!            x_k = √ᾱ_k s^(0) + √(1−ᾱ_k) ε                 the forward process on the TARGET
//!            g   = f_θ(x_k, k, c)     c = s̃ (⊕ h) when observed_condition, else h (or nothing)
//!            L   = w_k · mean_d (y − g)² / (p_k T)      y = ε (mean_type eps, the paper) or s^(0) (x0)
//!   until the validation loss has not fallen for `patience` epochs; keep the best epoch's weights.
//!
//! Purification (the reverse chain of the same process, conditioned on the same c):
//!   start = noise:     x_T  = σ √(1−ᾱ_T) ε                   pure noise (σ = purify_noise; σ = 0: the
//!                                                             prior mean 0); needs ᾱ_T ≤ 0.01 (e.g. cosine)
//!   start = observed:  x_T' = √ᾱ_T' o_t + σ √(1−ᾱ_T') ε      partial-noise start at level T' (DiffPure): the
//!                                                             observed state stands in for s^(0)
//!   for k = start level, …, 1:   x ← c1_k x̂_0(x, k, c) + c2_k x     the posterior mean, no sampling noise
//!                                x̂_0 clipped to the training targets' range when clip_x0 (ε models)
//!   ŝ_t = x                                                 (at k = 1, c1 = 1 and c2 = 0: ŝ_t = x̂_0)
//! ```
//!
//! What we choose where the paper is silent: the deterministic posterior-mean chain (σ = 0, so a state is
//! always purified the same way; `purify_noise` and `purify_seed` draw keyed noise instead), both starts
//! (`start`), and x_0 prediction as an option beside the paper's ε (`mean_type`). With `observed_condition =
//! false` and no explicit target the model is DiffRec's self-supervised option A (x_0 = o_t, the network
//! reading at most the summary h): the ablation `target = "observed"` of the stage, the only form joint
//! fine-tuning can train. A network that reads o_t and is trained towards o_t would learn the identity, so
//! that combination is refused. `clip_x0` is DDPM's `clip_denoised` (Ho et al.'s sampler clips x̂_0 to the
//! data's [−1, 1]): an ε model's x̂_0 = (x_k − √(1−ᾱ_k) ε̂)/√ᾱ_k multiplies the network's error by
//! √(1−ᾱ_k)/√ᾱ_k, about 200 at the last level of a T = 10 cosine schedule, so without it an imperfect ε̂ throws
//! the chain far outside the data. Our states have no fixed range: the bound is each dimension's [min, max] over
//! the clean targets the model was trained on, stored with it.
//!
//! f_θ is DiffRec's DNN: an MLP (tanh) over [dropout(x_k) ⊕ c ⊕ Linear(sinusoid(k))], predicting x̂_0 or ε̂.
//! Inputs are `[B, d + cond_dim]` (o_t first, then h) everywhere and outputs `[B, d]`.
//!
//! After training the model is frozen: [`Ddpm::try_purify`](crate::Denoiser::try_purify) runs a compiled copy of
//! the chain (`chain.rs`), and [`Ddpm::purify_reference`] the literal loop above; tests hold them equal, and
//! hold the reverse chain to return s^(0) under a perfect ε-oracle ([`Ddpm::reverse_from`]).

use crate::chain::{keyed_normal, keyed_uniform, CompiledChain, Folding, Step};
use crate::schedule::{Schedule, ScheduleConfig};
use crate::train::{check_data, chunked_mean, data_width, fit_loop, EpochLog, FitReport, TrainConfig};
use crate::{check_states, meta_kind, DenoiseError, Denoiser, Result};
use dsrm_nn::mlp::{Activation, Mlp};
use dsrm_nn::tch::nn::VarStore;
use dsrm_nn::tch::{self, Device, Kind, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::Path;

// ───────────────────────────────────────────── settings ─────────────────────────────────────────────

/// What the network predicts (DiffRec's `mean_type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MeanType {
    /// x̂_0, the clean state (DiffRec's default, `docs/design.md` §6 row 5): the last reverse step returns it as is.
    #[default]
    X0,
    /// ε̂, the added noise (Ho et al.); x̂_0 = (x_t − √(1−ᾱ_t) ε̂) / √ᾱ_t.
    Eps,
}

/// Where purification starts the reverse chain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Start {
    /// x_{T'} = √ᾱ_{T'} o_t (+ σ √(1−ᾱ_{T'}) ε): the observed state stands in for the clean one at level T'
    /// (DiffPure's partial-noise start; the default, and the only start of the models written before it).
    #[default]
    Observed,
    /// x_T = σ √(1−ᾱ_T) ε, pure noise (σ = 0: its mean, 0): the reverse chain generates the state from the
    /// condition alone (DreamRec; the paper's reading). Needs a schedule that ends near pure noise (ᾱ_T ≤
    /// 0.01, e.g. `cosine`), a condition, and T' = T.
    Noise,
}

/// ᾱ_T at most this for `start = "noise"`: x_T is then pure noise up to √ᾱ_T ≤ 0.1 of the target.
pub const PURE_NOISE_ALPHA_BAR: f64 = 0.01;

/// How training draws t (DiffRec's `sampling` option).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimestepSampling {
    /// t ~ U{1..T} (the DSRM default).
    #[default]
    Uniform,
    /// DiffRec's importance sampling: uniform until every t has 10 recorded losses, then
    /// p_t ∝ √(mean of its last 10 squared losses), mixed with 0.001 uniform mass; the loss is divided by p_t T.
    Importance,
}

/// Settings of the DSRM. Defaults: `docs/design.md` §4.3 table and §6 rows 1–8.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DdpmConfig {
    /// The noise schedule: linear-var, T = 10, s = 0.1, m = [1e-4, 0.02], β_1 = 1e-5.
    pub schedule: ScheduleConfig,
    /// T', the forward level purification starts from (default: none = T). 0 makes purification the identity
    /// (no reverse step); smaller T' is gentler and cheaper (T' network evaluations). Sweep 0..T.
    pub t_prime: Option<usize>,
    /// Network target (default x̂_0).
    pub mean_type: MeanType,
    /// Size of the sinusoidal time embedding, followed by a learned E → E linear layer (default 10, DiffRec).
    pub time_emb_dim: i64,
    /// Hidden layer sizes (default `[256]`: a 42-d state needs less than DiffRec's `[1000]` over item vectors).
    pub hidden: Vec<i64>,
    /// Hidden nonlinearity (default tanh, DiffRec).
    pub activation: Activation,
    /// Dropout on the noisy input x_t during training (default 0; DiffRec's 0.5 suits whole item vectors).
    pub dropout: f64,
    /// Width of the optional history-summary columns the caller appends after the state (default 0 = none).
    pub cond_dim: i64,
    /// The network also reads the observed state o_t as its condition, ε_θ(x_k, k, s̃_t) (default false: the
    /// DiffRec form, x_0 = o_t). The DSRM stage turns it on for every target other than `observed`.
    pub observed_condition: bool,
    /// Where purification starts (default `observed`, at level T').
    pub start: Start,
    /// How training draws t (default uniform).
    pub timestep_sampling: TimestepSampling,
    /// Weight the loss by w_t = SNR(t−1) − SNR(t), w_1 = 1 (DiffRec's `reweight`; default off). For ε models
    /// DiffRec's ε weight and its x̂_0 likelihood at t = 1 are used instead.
    pub reweight: bool,
    /// σ, the scale of the forward noise at purification: 0 (default) uses the forward mean, so purification is
    /// a pure function of the state; 1 draws a full q(x_{T'} | o_t) sample.
    pub purify_noise: f64,
    /// Seed of the purification noise (used only when it is on). The noise is keyed by (seed, state), so a
    /// state is always purified the same way.
    pub purify_seed: u64,
    /// DiffRec's inference instead of DSRM's: a random forward sample at level T' (σ = 1; the clean state when
    /// T' = 0), then all T reverse steps whatever T' is (default off).
    pub diffrec_compat: bool,
    /// Clip every x̂_0 of the reverse chain to each dimension's [min, max] over the training targets (DDPM's
    /// `clip_denoised`; default off). ε models only: theirs divides the network's error by √ᾱ_k (the module
    /// docs). Purification then runs the literal chain (a clamp does not fold into the compiled one). Written
    /// only when on, so the configs and checkpoints of other models keep their bytes.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub clip_x0: bool,
    /// Optimisation (DiffRec's: Adam lr 1e-4, batch 400, ≤ 100 epochs, patience 10).
    pub train: TrainConfig,
}

impl Default for DdpmConfig {
    fn default() -> Self {
        Self {
            schedule: ScheduleConfig::default(),
            t_prime: None,
            mean_type: MeanType::X0,
            time_emb_dim: 10,
            hidden: vec![256],
            activation: Activation::Tanh,
            dropout: 0.0,
            cond_dim: 0,
            observed_condition: false,
            start: Start::Observed,
            timestep_sampling: TimestepSampling::Uniform,
            reweight: false,
            purify_noise: 0.0,
            purify_seed: 0,
            diffrec_compat: false,
            clip_x0: false,
            train: TrainConfig::default(),
        }
    }
}

impl DdpmConfig {
    /// Checks every field and builds the schedule.
    pub fn validate(&self) -> Result<Schedule> {
        let schedule = Schedule::new(&self.schedule)?;
        let bad = |msg: String| Err(DenoiseError::Config(format!("ddpm: {msg}")));
        if self.t_prime.is_some_and(|t| t > schedule.steps()) {
            return bad(format!("t_prime {:?} exceeds T = {}", self.t_prime, schedule.steps()));
        }
        if self.time_emb_dim < 1 || self.cond_dim < 0 {
            return bad(format!("need time_emb_dim >= 1 and cond_dim >= 0 ({}, {})", self.time_emb_dim, self.cond_dim));
        }
        if self.hidden.is_empty() || self.hidden.iter().any(|h| *h < 1) {
            return bad(format!("hidden {:?}: need at least one layer, all sizes >= 1", self.hidden));
        }
        let noise_ok = self.purify_noise >= 0.0 && self.purify_noise.is_finite();
        if !((0.0..1.0).contains(&self.dropout) && noise_ok) {
            return bad(format!(
                "need dropout in [0, 1) and purify_noise >= 0 ({}, {})",
                self.dropout, self.purify_noise
            ));
        }
        if self.start == Start::Noise {
            let t = schedule.steps();
            if schedule.alpha_bar(t) > PURE_NOISE_ALPHA_BAR {
                return bad(format!(
                    "start = \"noise\" needs a schedule that ends in pure noise (ᾱ_T <= {PURE_NOISE_ALPHA_BAR}), \
                     this one has ᾱ_T = {:.4}: use schedule.kind = \"cosine\" or start = \"observed\"",
                    schedule.alpha_bar(t)
                ));
            }
            if self.t_prime.is_some_and(|tp| tp != t) || self.diffrec_compat {
                return bad(
                    "start = \"noise\" runs the whole chain: t_prime must be unset (or T), diffrec_compat off".into()
                );
            }
            if !self.observed_condition && self.cond_dim == 0 {
                return bad(
                    "start = \"noise\" without a condition (observed_condition or cond_dim) ignores the state".into()
                );
            }
        }
        if self.clip_x0 && self.mean_type != MeanType::Eps {
            return bad(
                "clip_x0 is for ε models (mean_type = \"eps\"): an x̂_0 network's output is not amplified".into()
            );
        }
        self.train.validate()?;
        Ok(schedule)
    }

    /// Width of what the network reads as its condition c: the caller's whole row (o_t ⊕ h, `dim + cond_dim`)
    /// with `observed_condition`, else the summary h alone.
    pub fn net_cond_dim(&self, dim: i64) -> i64 {
        if self.observed_condition {
            dim + self.cond_dim
        } else {
            self.cond_dim
        }
    }
}

// ──────────────────────────────────────── the network f_θ(x_t, t) ────────────────────────────────────────

/// DiffRec's `timestep_embedding` for levels t (1-based, `[B]` int64): with τ = t − 1 and half = ⌊E/2⌋,
/// [cos(τ ω_k), sin(τ ω_k)] for ω_k = exp(−ln(10000) k / half), cosines first, zero-padded when E is odd.
fn timestep_embedding(t: &Tensor, dim: i64) -> Result<Tensor> {
    let half = dim / 2;
    let freqs: Vec<f32> = (0..half).map(|k| (-(10000f64.ln()) * k as f64 / half as f64).exp() as f32).collect();
    let freqs = Tensor::f_from_slice(&freqs)?.f_to_device(t.device())?.f_view([1, half])?;
    let args = t.f_sub_scalar(1)?.f_to_kind(Kind::Float)?.f_view([-1, 1])?.f_mul(&freqs)?;
    let mut parts = vec![args.f_cos()?, args.f_sin()?];
    if dim % 2 == 1 {
        parts.push(Tensor::f_zeros([t.size()[0], 1], (Kind::Float, t.device()))?);
    }
    Ok(Tensor::f_cat(&parts, 1)?)
}

/// f_θ: `emb` is the learned E → E layer after the sinusoid; `mlp` maps [x ⊕ c ⊕ emb] to d outputs.
#[derive(Debug)]
pub(crate) struct Network {
    emb: Mlp,
    mlp: Mlp,
    dim: i64,
    cond_dim: i64,
    emb_dim: i64,
}

impl Network {
    fn sizes(cfg: &DdpmConfig, dim: i64) -> Vec<i64> {
        let mut sizes = vec![dim + cfg.net_cond_dim(dim) + cfg.time_emb_dim];
        sizes.extend(&cfg.hidden);
        sizes.push(dim);
        sizes
    }

    fn new(vs: &VarStore, cfg: &DdpmConfig, dim: i64) -> Result<Self> {
        let root = vs.root();
        let e = cfg.time_emb_dim;
        Ok(Self {
            emb: Mlp::xavier_normal(&root.sub("emb"), &[e, e], cfg.activation, 0.001)?,
            mlp: Mlp::xavier_normal(&root.sub("mlp"), &Self::sizes(cfg, dim), cfg.activation, 0.001)?,
            dim,
            cond_dim: cfg.net_cond_dim(dim),
            emb_dim: e,
        })
    }

    fn from_named(tensors: &[(String, Tensor)], cfg: &DdpmConfig, dim: i64) -> Result<Self> {
        let e = cfg.time_emb_dim;
        Ok(Self {
            emb: Mlp::from_named(tensors, "emb", &[e, e], cfg.activation)?,
            mlp: Mlp::from_named(tensors, "mlp", &Self::sizes(cfg, dim), cfg.activation)?,
            dim,
            cond_dim: cfg.net_cond_dim(dim),
            emb_dim: e,
        })
    }

    fn named(&self) -> Vec<(String, Tensor)> {
        let mut out = self.emb.named("emb");
        out.extend(self.mlp.named("mlp"));
        out
    }

    fn shallow_clone(&self) -> Self {
        Self { emb: self.emb.shallow_clone(), mlp: self.mlp.shallow_clone(), ..*self }
    }

    /// A trainable copy of the weights, registered in `vs` under the names of [`named`](Self::named).
    pub(crate) fn trainable_copy(&self, vs: &VarStore) -> Result<Self> {
        let root = vs.root();
        Ok(Self {
            emb: self.emb.trainable_copy(&root.sub("emb"))?,
            mlp: self.mlp.trainable_copy(&root.sub("mlp"))?,
            ..*self
        })
    }

    /// f_θ(x_t, t) for levels `t` (`[B]` int64), with input dropout `dropout` when training.
    fn forward(&self, x_t: &Tensor, cond: Option<&Tensor>, t: &Tensor, dropout: f64, train: bool) -> Result<Tensor> {
        let emb = self.emb.try_forward(&timestep_embedding(t, self.emb_dim)?)?;
        let x = if train && dropout > 0.0 { x_t.f_dropout(dropout, true)? } else { x_t.shallow_clone() };
        let mut parts = vec![x];
        parts.extend(cond.map(Tensor::shallow_clone));
        parts.push(emb);
        Ok(self.mlp.try_forward(&Tensor::f_cat(&parts, 1)?)?)
    }
}

/// Splits checked rows into o_t and the network's condition ([`crate::condition::split_condition`]).
fn split_condition(cfg: &DdpmConfig, dim: i64, rows: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
    Ok(crate::condition::split_condition(cfg.observed_condition, cfg.cond_dim, dim, rows)?)
}

// ───────────────────────────────────────────── the model ─────────────────────────────────────────────

/// Each dimension's [min, max] over the clean targets a model was trained on: the bound of `clip_x0`, on the
/// model's device and as plain numbers for the checkpoint.
#[derive(Debug)]
struct X0Range {
    lo: Tensor,
    hi: Tensor,
    values: (Vec<f32>, Vec<f32>),
}

impl X0Range {
    /// The range of `targets` (`[N, d]`, N ≥ 1).
    fn of(targets: &Tensor) -> Result<Self> {
        let _no_grad = tch::no_grad_guard();
        let side = |t: Tensor| -> Result<Vec<f32>> { Ok(Vec::<f32>::try_from(t.f_to_device(Device::Cpu)?)?) };
        let lo = side(targets.f_amin([0i64].as_slice(), false)?)?;
        let hi = side(targets.f_amax([0i64].as_slice(), false)?)?;
        Self::new(lo, hi, targets.device())
    }

    fn new(lo: Vec<f32>, hi: Vec<f32>, device: Device) -> Result<Self> {
        Ok(Self {
            lo: Tensor::f_from_slice(&lo)?.f_to_device(device)?,
            hi: Tensor::f_from_slice(&hi)?.f_to_device(device)?,
            values: (lo, hi),
        })
    }

    fn clamp(&self, x0: &Tensor) -> Result<Tensor> {
        Ok(x0.f_clamp_tensor(Some(&self.lo), Some(&self.hi))?)
    }

    fn shallow_clone(&self) -> Self {
        Self { lo: self.lo.shallow_clone(), hi: self.hi.shallow_clone(), values: self.values.clone() }
    }

    /// `{"lo": [..], "hi": [..]}` for the checkpoint's metadata.
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "lo": self.values.0, "hi": self.values.1 })
    }

    fn from_json(value: &serde_json::Value, dim: i64, device: Device) -> std::result::Result<Self, String> {
        let side = |name: &str| -> std::result::Result<Vec<f32>, String> {
            let v: Vec<f32> = serde_json::from_value(value[name].clone()).map_err(|e| format!("{name}: {e}"))?;
            if v.len() as i64 != dim {
                return Err(format!("{name}: {} values for a {dim}-d state", v.len()));
            }
            Ok(v)
        };
        Self::new(side("lo")?, side("hi")?, device).map_err(|e| e.to_string())
    }
}

/// A trained, frozen DSRM.
#[derive(Debug)]
pub struct Ddpm {
    cfg: DdpmConfig,
    dim: i64,
    schedule: Schedule,
    net: Network,
    chain: CompiledChain,
    report: Option<FitReport>,
    /// The bound of `clip_x0` (`None` when it is off).
    x0_range: Option<X0Range>,
}

impl Ddpm {
    /// Trains a DSRM on `train` (`[N, d + cond_dim]` observed states, the condition after the state), early
    /// stopping on `valid` (same width). Seeds libtorch with `cfg.train.seed` first, so the result is
    /// deterministic for a seed (hold `dsrm_nn::runtime::exclusive()` when other threads use libtorch's
    /// generator). The validation loss is the unweighted MSE on the target at one fixed (t, ε) per validation
    /// row, drawn once, so epochs are compared on the same noise.
    pub fn fit(
        train: &Tensor,
        valid: &Tensor,
        cfg: &DdpmConfig,
        progress: &mut dyn FnMut(&EpochLog),
    ) -> Result<(Self, FitReport)> {
        Self::fit_towards(train, None, valid, None, cfg, progress)
    }

    /// [`fit`](Self::fit) towards explicit clean targets: row n of `train` is the condition (o_t ⊕ h) and row n of
    /// `train_targets` (`[N, d]`) its s^(0). The forward process noises the target, x_k = √ᾱ_k s^(0) +
    /// √(1−ᾱ_k) ε, and the network reads x_k with the condition of [`DdpmConfig::net_cond_dim`]. `None` targets
    /// are the observed states themselves (option A, [`fit`](Self::fit)), which a network reading o_t
    /// (`observed_condition`) would only copy: refused.
    pub fn fit_towards(
        train: &Tensor,
        train_targets: Option<&Tensor>,
        valid: &Tensor,
        valid_targets: Option<&Tensor>,
        cfg: &DdpmConfig,
        progress: &mut dyn FnMut(&EpochLog),
    ) -> Result<(Self, FitReport)> {
        Self::fit_from(train, train_targets, valid, valid_targets, cfg, None, progress)
    }

    /// [`fit_towards`](Self::fit_towards) starting from the network of `init` (the tensors of a trained DDPM's
    /// [`Denoiser::checkpoint`], same shapes) instead of a fresh initialisation: a warm refit on new data.
    pub(crate) fn fit_from(
        train: &Tensor,
        train_targets: Option<&Tensor>,
        valid: &Tensor,
        valid_targets: Option<&Tensor>,
        cfg: &DdpmConfig,
        init: Option<&[(String, Tensor)]>,
        progress: &mut dyn FnMut(&EpochLog),
    ) -> Result<(Self, FitReport)> {
        let schedule = cfg.validate()?;
        let width = data_width("train", train)?;
        let dim = width - cfg.cond_dim;
        if dim < 1 {
            return Err(DenoiseError::Data(format!(
                "train: {width} columns leave no state after cond_dim {}",
                cfg.cond_dim
            )));
        }
        let train = check_data("train", train, width)?;
        let valid = check_data("valid", valid, width)?;
        let (n_train, n_valid) = (train.size()[0], valid.size()[0]);
        if train_targets.is_some() != valid_targets.is_some() {
            return Err(DenoiseError::Data("targets: give them for both the training and validation rows".into()));
        }
        if train_targets.is_none() && cfg.observed_condition {
            return Err(DenoiseError::Config(
                "ddpm: observed_condition with the observed state as target would learn the identity; give clean \
                 targets or turn observed_condition off"
                    .into(),
            ));
        }
        let targets = |what: &str, t: Option<&Tensor>, n: i64| -> Result<Option<Tensor>> {
            let Some(t) = t else { return Ok(None) };
            let t = check_data(what, t, dim)?;
            if t.size()[0] != n {
                return Err(DenoiseError::Data(format!("{what}: {} rows for {n} states", t.size()[0])));
            }
            Ok(Some(t))
        };
        let train_targets = targets("train targets", train_targets, n_train)?;
        let valid_targets = targets("valid targets", valid_targets, n_valid)?;
        let x0_range = if cfg.clip_x0 {
            Some(match &train_targets {
                Some(t) => X0Range::of(t)?,
                None => X0Range::of(&split_condition(cfg, dim, &train)?.0)?,
            })
        } else {
            None
        };
        let device = train.device();
        let t_max = schedule.steps() as i64;

        tch::manual_seed(cfg.train.seed as i64);
        let mut vs = VarStore::new(device);
        let net = match init {
            None => Network::new(&vs, cfg, dim)?,
            Some(tensors) => Network::from_named(tensors, cfg, dim)?.trainable_copy(&vs)?,
        };

        // Per-level constants of the loss, indexed by t = 0..=T.
        let per_level = |f: &dyn Fn(usize) -> f64| -> Result<Tensor> {
            let v: Vec<f32> = (0..=schedule.steps()).map(|t| f(t) as f32).collect();
            Ok(Tensor::f_from_slice(&v)?.f_to_device(device)?)
        };
        let sqrt_ab = per_level(&|t| schedule.alpha_bar(t).sqrt())?;
        let sqrt_1m_ab = per_level(&|t| schedule.one_minus_alpha_bar(t).sqrt())?;
        let weight = per_level(&|t| match (t, cfg.mean_type) {
            (0 | 1, _) => 1.0,
            (_, MeanType::X0) => schedule.snr(t - 1) - schedule.snr(t),
            (_, MeanType::Eps) => {
                schedule.one_minus_alpha_bar(t) / (schedule.one_minus_alpha_bar(t - 1).powi(2) * schedule.alpha(t))
            }
        })?;
        let split = |x: &Tensor| -> Result<(Tensor, Option<Tensor>)> { split_condition(cfg, dim, x) };
        // x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε for per-row levels t.
        let noised = |x0: &Tensor, t: &Tensor, eps: &Tensor| -> Result<Tensor> {
            let a = sqrt_ab.f_index_select(0, t)?.f_unsqueeze(1)?;
            let b = sqrt_1m_ab.f_index_select(0, t)?.f_unsqueeze(1)?;
            Ok(x0.f_mul(&a)?.f_add(&eps.f_mul(&b)?)?)
        };
        let x0_from_eps = |x_t: &Tensor, t: &Tensor, eps_hat: &Tensor| -> Result<Tensor> {
            let a = sqrt_ab.f_index_select(0, t)?.f_unsqueeze(1)?;
            let b = sqrt_1m_ab.f_index_select(0, t)?.f_unsqueeze(1)?;
            Ok(x_t.f_sub(&eps_hat.f_mul(&b)?)?.f_div(&a)?)
        };

        // Fixed validation draws.
        let valid_t = Tensor::f_randint_low(1, t_max + 1, [n_valid], (Kind::Int64, device))?;
        let valid_eps = Tensor::f_randn([n_valid, dim], (Kind::Float, device))?;

        let mut sampler = TimestepSampler::new(cfg.timestep_sampling, schedule.steps());
        let batch_loss = |idx: &Tensor| -> Result<Tensor> {
            let (observed, cond) = split(&train.f_index_select(0, idx)?)?;
            let x0 = match &train_targets {
                Some(t) => t.f_index_select(0, idx)?,
                None => observed.shallow_clone(),
            };
            let n = x0.size()[0];
            let (t, pt) = sampler.sample(n, device)?;
            let eps = Tensor::f_randn([n, dim], (Kind::Float, device))?;
            let x_t = noised(&x0, &t, &eps)?;
            let out = net.forward(&x_t, cond.as_ref(), &t, cfg.dropout, true)?;
            let target = match cfg.mean_type {
                MeanType::X0 => &x0,
                MeanType::Eps => &eps,
            };
            let mse = target.f_sub(&out)?.f_square()?.f_mean_dim([1i64].as_slice(), false, Kind::Float)?;
            let per_row = if cfg.reweight {
                let w = weight.f_index_select(0, &t)?;
                let loss = match cfg.mean_type {
                    MeanType::X0 => mse,
                    // DiffRec: at t = 1 an ε model is scored on its x̂_0 (half the squared error).
                    MeanType::Eps => {
                        let x0_hat = x0_from_eps(&x_t, &t, &out)?;
                        let likelihood =
                            x0.f_sub(&x0_hat)?.f_square()?.f_mean_dim([1i64].as_slice(), false, Kind::Float)?;
                        likelihood.f_div_scalar(2.0)?.f_where_self(&t.f_eq(1)?, &mse)?
                    }
                };
                loss.f_mul(&w)?
            } else {
                mse
            };
            sampler.record(&t, &per_row)?;
            Ok(per_row.f_div(&pt)?.f_mean(Kind::Float)?)
        };
        let valid_loss = || -> Result<f64> {
            chunked_mean(n_valid, |start, len| {
                let (observed, cond) = split(&valid.f_narrow(0, start, len)?)?;
                let x0 = match &valid_targets {
                    Some(v) => v.f_narrow(0, start, len)?,
                    None => observed.shallow_clone(),
                };
                let t = valid_t.f_narrow(0, start, len)?;
                let eps = valid_eps.f_narrow(0, start, len)?;
                let out = net.forward(&noised(&x0, &t, &eps)?, cond.as_ref(), &t, 0.0, false)?;
                let target = if cfg.mean_type == MeanType::X0 { x0 } else { eps };
                Ok(target.f_mse_loss(&out, tch::Reduction::Mean)?.f_double_value(&[])?)
            })
        };
        let report = fit_loop("ddpm", &vs, &cfg.train, (n_train, n_valid), batch_loss, valid_loss, progress)?;
        vs.freeze();
        let model = Self::assemble(cfg.clone(), dim, schedule, net, Some(report.clone()), x0_range)?;
        Ok((model, report))
    }

    /// Compiles the inference chain for the current settings.
    fn assemble(
        cfg: DdpmConfig,
        dim: i64,
        schedule: Schedule,
        net: Network,
        report: Option<FitReport>,
        x0_range: Option<X0Range>,
    ) -> Result<Self> {
        let fold = Self::folding_of(&net, &schedule)?;
        // An empty chain until the settings are in place to compile the real one.
        let chain = CompiledChain::new(&fold, 1.0, 0.0, &[])?;
        let mut model = Self { cfg, dim, schedule, net, chain, report, x0_range };
        model.chain = model.compile_with(&fold, &model.reverse_steps())?;
        Ok(model)
    }

    fn folding_of(net: &Network, schedule: &Schedule) -> Result<Folding> {
        let _no_grad = tch::no_grad_guard();
        let device = net.mlp.layers()[0].weight.device();
        let emb_t = |t: usize| -> Result<Tensor> {
            let t = Tensor::f_from_slice(&[t as i64])?.f_to_device(device)?;
            Ok(net.emb.try_forward(&timestep_embedding(&t, net.emb_dim)?)?.f_view([-1])?)
        };
        Folding::new(net.mlp.layers(), net.mlp.activation(), (net.dim, net.cond_dim), schedule.steps(), emb_t)
    }

    /// (forward level, first reverse level): (T', T') for DSRM, (T', T) with `diffrec_compat`.
    pub fn levels(&self) -> (usize, usize) {
        let t_prime = self.t_prime();
        if self.cfg.diffrec_compat {
            (t_prime, self.schedule.steps())
        } else {
            (t_prime, t_prime)
        }
    }

    /// T' (the configured one, or T).
    pub fn t_prime(&self) -> usize {
        self.cfg.t_prime.unwrap_or(self.schedule.steps())
    }

    /// The effective σ of the forward noise (DiffRec compatibility draws a full sample when T' > 0).
    pub fn noise_scale(&self) -> f64 {
        if self.cfg.diffrec_compat && self.t_prime() > 0 {
            1.0
        } else {
            self.cfg.purify_noise
        }
    }

    /// The posterior-mean steps t = R, …, 1 as network-output updates (see [`crate::chain`]).
    fn reverse_steps(&self) -> Vec<Step> {
        let (_, from) = self.levels();
        (1..=from)
            .rev()
            .map(|t| {
                let (c1, c2) = self.schedule.posterior_mean_coefs(t);
                self.step(t, c1, c2)
            })
            .collect()
    }

    /// The update x ← x0_coef · x̂_0(x, t) + x_coef · x, rewritten on the raw network output g (x̂_0 or ε̂).
    pub(crate) fn step(&self, t: usize, x0_coef: f64, x_coef: f64) -> Step {
        match self.cfg.mean_type {
            MeanType::X0 => Step { t, a: x_coef, b: x0_coef },
            MeanType::Eps => {
                let (ab, var) = (self.schedule.alpha_bar(t), self.schedule.one_minus_alpha_bar(t));
                Step { t, a: x_coef + x0_coef / ab.sqrt(), b: -x0_coef * (var / ab).sqrt() }
            }
        }
    }

    /// Compiles `steps`, starting from the forward level of [`levels`](Self::levels) with this model's noise.
    pub(crate) fn compile(&self, steps: &[Step]) -> Result<CompiledChain> {
        self.compile_with(&Self::folding_of(&self.net, &self.schedule)?, steps)
    }

    fn compile_with(&self, fold: &Folding, steps: &[Step]) -> Result<CompiledChain> {
        let (level, _) = self.levels();
        let var = self.schedule.one_minus_alpha_bar(level);
        CompiledChain::new(fold, self.start_scale(level), self.noise_scale() * var.sqrt(), steps)
    }

    /// The scale P of the chain's start x = P · y: √ᾱ_{T'} of the observed state, or 1 for the noise start
    /// (whose y is 0 plus the noise).
    fn start_scale(&self, level: usize) -> f64 {
        match self.cfg.start {
            Start::Observed => self.schedule.alpha_bar(level).sqrt(),
            Start::Noise => 1.0,
        }
    }

    /// Whether the chain starts from the observed state (not from noise).
    pub(crate) fn observed_start(&self) -> bool {
        self.cfg.start == Start::Observed
    }

    /// Whether the network's condition is the caller's whole row (then the chain reads [o_t | row]).
    pub(crate) fn observed_condition(&self) -> bool {
        self.cfg.observed_condition
    }

    /// The compiled chain's input `[y | c]` for checked caller rows `[B, d + cond_dim]`: y = o_t (observed
    /// start) or 0 (noise start), then the network's condition.
    pub(crate) fn chain_input(&self, states: &Tensor) -> Result<Tensor> {
        let (o, cond) = self.split(states)?;
        let y = match self.cfg.start {
            Start::Observed if !self.cfg.observed_condition => return Ok(states.shallow_clone()),
            Start::Observed => o,
            Start::Noise => o.f_zeros_like()?,
        };
        let mut parts = vec![y];
        parts.extend(cond);
        Ok(Tensor::f_cat(&parts, 1)?)
    }

    /// The start of the reverse chain for checked caller rows, as the module docs write it: x at the forward
    /// level (noise included when purification draws it) and the network's condition.
    pub(crate) fn start_state(&self, states: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let (o, cond) = self.split(states)?;
        let (level, _) = self.levels();
        let mut x = match self.cfg.start {
            Start::Observed => o.f_mul_scalar(self.schedule.alpha_bar(level).sqrt())?,
            Start::Noise => o.f_zeros_like()?,
        };
        if let Some(eps) = self.noise_for(states)? {
            x = x.f_add(&eps.f_mul_scalar(self.noise_scale() * self.schedule.one_minus_alpha_bar(level).sqrt())?)?;
        }
        Ok((x, cond))
    }

    /// The layers of the one-step x̂_0 predictor at the first reverse level, as a plain MLP over the caller's
    /// `[o_t ⊕ h]` (the start folded in). `None` for ε models, whose x̂_0 is not an MLP output.
    pub(crate) fn one_step_layers(&self) -> Result<Option<Vec<(Tensor, Tensor)>>> {
        if self.cfg.mean_type != MeanType::X0 {
            return Ok(None);
        }
        let (level, from) = self.levels();
        if from == 0 {
            return Ok(None);
        }
        let fold = Self::folding_of(&self.net, &self.schedule)?;
        let scale = match self.cfg.start {
            Start::Observed => self.schedule.alpha_bar(level).sqrt(),
            Start::Noise => 0.0,
        };
        Ok(Some(fold.one_step_layers(from, scale, self.cfg.observed_condition)?))
    }

    /// Sets T' (0..=T) and recompiles the chain: sweeping T' needs no retraining.
    pub fn set_t_prime(&mut self, t_prime: usize) -> Result<()> {
        if t_prime > self.schedule.steps() {
            return Err(DenoiseError::Config(format!("t_prime {t_prime} exceeds T = {}", self.schedule.steps())));
        }
        if self.cfg.start == Start::Noise && t_prime != self.schedule.steps() {
            return Err(DenoiseError::Config(format!("t_prime {t_prime}: a noise start runs the whole chain")));
        }
        self.cfg.t_prime = Some(t_prime);
        self.chain = self.compile(&self.reverse_steps())?;
        Ok(())
    }

    /// Sets the purification noise σ (0 = deterministic) and its seed, and recompiles the chain.
    pub fn set_purify_noise(&mut self, scale: f64, seed: u64) -> Result<()> {
        if !(scale >= 0.0 && scale.is_finite()) {
            return Err(DenoiseError::Config(format!("purify_noise {scale} must be finite and >= 0")));
        }
        self.cfg.purify_noise = scale;
        self.cfg.purify_seed = seed;
        self.chain = self.compile(&self.reverse_steps())?;
        Ok(())
    }

    /// A second handle on the same frozen weights (DDIM and the distilled student share the teacher this way).
    pub fn shallow_clone(&self) -> Result<Self> {
        Self::assemble(
            self.cfg.clone(),
            self.dim,
            self.schedule.clone(),
            self.net.shallow_clone(),
            self.report.clone(),
            self.x0_range.as_ref().map(X0Range::shallow_clone),
        )
    }

    pub fn config(&self) -> &DdpmConfig {
        &self.cfg
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The training report (none for models loaded from checkpoints written without one).
    pub fn report(&self) -> Option<&FitReport> {
        self.report.as_ref()
    }

    /// d, the state width (inputs are d + cond_dim wide).
    pub fn dim(&self) -> i64 {
        self.dim
    }

    /// The network (joint fine-tuning copies it).
    pub(crate) fn network(&self) -> &Network {
        &self.net
    }

    pub(crate) fn device(&self) -> Device {
        self.net.mlp.layers()[0].weight.device()
    }

    /// x̂_0 at level `t` for states `x_t` (`[B, d]`), network in evaluation mode.
    pub(crate) fn predict_x0(&self, x_t: &Tensor, cond: Option<&Tensor>, t: usize) -> Result<Tensor> {
        self.predict_x0_with(&self.net, x_t, cond, t)
    }

    /// [`predict_x0`](Self::predict_x0) with another copy of the network (joint fine-tuning's trainable one).
    fn predict_x0_with(&self, net: &Network, x_t: &Tensor, cond: Option<&Tensor>, t: usize) -> Result<Tensor> {
        let levels = Tensor::f_full([x_t.size()[0]], t as i64, (Kind::Int64, x_t.device()))?;
        self.x0_hat(x_t, net.forward(x_t, cond, &levels, 0.0, false)?, t)
    }

    /// x̂_0 from the raw network output at level `t` (ε̂ or x̂_0, as `mean_type` says), clipped with `clip_x0`.
    fn x0_hat(&self, x_t: &Tensor, out: Tensor, t: usize) -> Result<Tensor> {
        let x0 = match self.cfg.mean_type {
            MeanType::X0 => out,
            MeanType::Eps => {
                let (ab, var) = (self.schedule.alpha_bar(t), self.schedule.one_minus_alpha_bar(t));
                x_t.f_sub(&out.f_mul_scalar(var.sqrt())?)?.f_div_scalar(ab.sqrt())?
            }
        };
        match &self.x0_range {
            Some(range) => range.clamp(&x0),
            None => Ok(x0),
        }
    }

    /// Whether the reverse chain clips x̂_0 (`clip_x0`): only the literal chain can, so the compiled one and
    /// the samplers built on it (DDIM) are not used.
    pub fn clips_x0(&self) -> bool {
        self.x0_range.is_some()
    }

    /// Splits checked `[B, d + cond_dim]` rows into o_t and the network's condition (see `observed_condition`).
    pub(crate) fn split(&self, states: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        split_condition(&self.cfg, self.dim, states)
    }

    /// The forward noise ε for checked states, when purification is stochastic.
    pub(crate) fn noise_for(&self, states: &Tensor) -> Result<Option<Tensor>> {
        if self.noise_scale() > 0.0 && self.levels().0 > 0 {
            Ok(Some(keyed_normal(states, self.dim, self.cfg.purify_seed)?))
        } else {
            Ok(None)
        }
    }

    /// Purification spelled out as in the module docs (slow; [`Denoiser::try_purify`] computes the same).
    pub fn purify_reference(&self, states: &Tensor) -> Result<Tensor> {
        let _no_grad = tch::no_grad_guard();
        self.purify_with(&self.net, states)
    }

    /// The purification chain through `net`, recording a graph when gradients are on (joint fine-tuning).
    pub(crate) fn purify_with(&self, net: &Network, states: &Tensor) -> Result<Tensor> {
        let states = check_states(states, self.input_width(), Some(self.device()))?;
        let (x, cond) = self.start_state(&states)?;
        let (_, from) = self.levels();
        self.reverse_from(x, from, &mut |x_t, t| {
            let levels = Tensor::f_full([x_t.size()[0]], t as i64, (Kind::Int64, x_t.device()))?;
            net.forward(x_t, cond.as_ref(), &levels, 0.0, false)
        })
    }

    /// The reverse chain of this model's forward process from x at level `from` down to 0, with `predict(x_k,
    /// k)` the raw network output (ε̂ or x̂_0, as `mean_type` says): x ← c1_k x̂_0 + c2_k x. With a perfect
    /// ε-oracle ε̂ = (x_k − √ᾱ_k s^(0)) / √(1−ᾱ_k) it returns s^(0) from any start, which the tests check
    /// against [`Self::noised`], the forward process training uses.
    pub fn reverse_from(
        &self,
        mut x: Tensor,
        from: usize,
        predict: &mut dyn FnMut(&Tensor, usize) -> Result<Tensor>,
    ) -> Result<Tensor> {
        if from > self.schedule.steps() {
            return Err(DenoiseError::Config(format!(
                "reverse from level {from} beyond T = {}",
                self.schedule.steps()
            )));
        }
        for t in (1..=from).rev() {
            let x0_hat = self.x0_hat(&x, predict(&x, t)?, t)?;
            x = self.schedule.posterior_mean(&x0_hat, &x, t)?;
        }
        Ok(x)
    }

    /// The forward process training uses: x_k = √ᾱ_k x_0 + √(1−ᾱ_k) ε at one level k.
    pub fn noised(&self, x0: &Tensor, k: usize, eps: &Tensor) -> Result<Tensor> {
        let (ab, var) = (self.schedule.alpha_bar(k), self.schedule.one_minus_alpha_bar(k));
        Ok(x0.f_mul_scalar(ab.sqrt())?.f_add(&eps.f_mul_scalar(var.sqrt())?)?)
    }

    /// The pretraining loss of `net` on observed states `[B, d + cond_dim]` (uniform t, unweighted: the
    /// validation loss of [`fit`](Self::fit)), with (t, ε) a pure function of (`seed`, row content), so a
    /// resumed run draws the same noise as an uninterrupted one.
    pub(crate) fn loss_with(&self, net: &Network, states: &Tensor, seed: u64) -> Result<Tensor> {
        if self.cfg.observed_condition {
            return Err(DenoiseError::Config(
                "the observed-state loss needs a model trained towards o_t (observed_condition off)".into(),
            ));
        }
        let states = check_states(states, self.input_width(), Some(self.device()))?;
        let (x0, cond) = self.split(&states)?;
        let n = x0.size()[0];
        let t_max = self.schedule.steps();
        let levels: Vec<i64> = keyed_uniform(&states, seed)?
            .into_iter()
            .map(|u| 1 + ((u * t_max as f64) as i64).min(t_max as i64 - 1))
            .collect();
        let eps = keyed_normal(&states, self.dim, seed ^ 0x5eed_0fe9_51d5)?;
        let per_level = |f: &dyn Fn(usize) -> f64| -> Result<Tensor> {
            let v: Vec<f32> = levels.iter().map(|&t| f(t as usize) as f32).collect();
            Ok(Tensor::f_from_slice(&v)?.f_to_device(x0.device())?.f_view([n, 1])?)
        };
        let a = per_level(&|t| self.schedule.alpha_bar(t).sqrt())?;
        let b = per_level(&|t| self.schedule.one_minus_alpha_bar(t).sqrt())?;
        let x_t = x0.f_mul(&a)?.f_add(&eps.f_mul(&b)?)?;
        let t = Tensor::f_from_slice(&levels)?.f_to_device(x0.device())?;
        let out = net.forward(&x_t, cond.as_ref(), &t, 0.0, false)?;
        let target = if self.cfg.mean_type == MeanType::X0 { x0 } else { eps };
        Ok(target.f_mse_loss(&out, tch::Reduction::Mean)?)
    }

    /// The same model with other weights (named as in [`Denoiser::checkpoint`]), e.g. after joint fine-tuning.
    pub(crate) fn with_weights(&self, tensors: &[(String, Tensor)]) -> Result<Self> {
        Self::from_checkpoint(tensors, &self.meta())
    }

    fn input_width(&self) -> i64 {
        self.dim + self.cfg.cond_dim
    }

    /// Checkpoint metadata: the format tag, the config, d and the training report.
    pub(crate) fn meta(&self) -> serde_json::Value {
        let mut meta = serde_json::json!({
            "format": crate::CHECKPOINT_FORMAT,
            "kind": "ddpm",
            "dim": self.dim,
            "config": self.cfg,
            "report": self.report,
        });
        if let Some(range) = &self.x0_range {
            // Written only when clipping is on, so the checkpoints of other models keep their bytes.
            meta["x0_range"] = range.to_json();
        }
        meta
    }

    pub(crate) fn tensors(&self) -> Vec<(String, Tensor)> {
        self.net.named()
    }

    /// Rebuilds a model from the tensors and metadata of a checkpoint (no random draws).
    pub(crate) fn from_checkpoint(tensors: &[(String, Tensor)], meta: &serde_json::Value) -> Result<Self> {
        meta_kind(meta, "ddpm")?;
        let corrupt =
            |what: &str, e: &dyn std::fmt::Display| DenoiseError::Config(format!("ddpm checkpoint: {what}: {e}"));
        let cfg: DdpmConfig = serde_json::from_value(meta["config"].clone()).map_err(|e| corrupt("config", &e))?;
        let dim = meta["dim"].as_i64().filter(|d| *d >= 1).ok_or_else(|| corrupt("dim", &"missing"))?;
        let report: Option<FitReport> =
            serde_json::from_value(meta["report"].clone()).map_err(|e| corrupt("report", &e))?;
        let schedule = cfg.validate()?;
        let net = Network::from_named(tensors, &cfg, dim)?;
        let x0_range = if cfg.clip_x0 {
            let device = net.mlp.layers()[0].weight.device();
            Some(X0Range::from_json(&meta["x0_range"], dim, device).map_err(|e| corrupt("x0_range", &e))?)
        } else {
            None
        };
        Self::assemble(cfg, dim, schedule, net, report, x0_range)
    }

    /// Reads a checkpoint written by [`Denoiser::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let (tensors, meta) = dsrm_nn::checkpoint::load(path)?;
        Self::from_checkpoint(&tensors, &meta).map_err(|e| crate::at_path(path, e))
    }
}

impl Denoiser for Ddpm {
    fn try_purify(&self, states: &Tensor) -> Result<Tensor> {
        let _no_grad = tch::no_grad_guard();
        let states = check_states(states, self.input_width(), Some(self.device()))?;
        if self.clips_x0() {
            return self.purify_with(&self.net, &states);
        }
        let eps = self.noise_for(&states)?;
        self.chain.run(&self.chain_input(&states)?, eps.as_ref())
    }

    fn name(&self) -> String {
        let s = self.schedule.config();
        let compat = if self.cfg.diffrec_compat { " diffrec" } else { "" };
        let pred = if self.cfg.mean_type == MeanType::Eps { " eps" } else { "" };
        let cond = if self.cfg.observed_condition { " cond=o" } else { "" };
        let start = if self.cfg.start == Start::Noise { " from-noise" } else { "" };
        format!(
            "ddpm(T={} T'={} s={} {}{compat}{pred}{cond}{start})",
            s.steps,
            self.t_prime(),
            s.noise_scale,
            s.kind.name()
        )
    }

    /// The compiled chain, for the observed start and a chain that draws no noise.
    fn batch_one(&self) -> Result<Option<Box<dyn crate::batch_one::BatchOneDenoiser>>> {
        if !self.observed_start() || self.clips_x0() {
            return Ok(None);
        }
        Ok(self
            .chain
            .batch_one(self.observed_condition())?
            .map(|c| Box::new(c) as Box<dyn crate::batch_one::BatchOneDenoiser>))
    }

    fn steps(&self) -> usize {
        self.chain.len()
    }

    fn input_dim(&self) -> i64 {
        self.input_width()
    }

    fn output_dim(&self) -> i64 {
        self.dim
    }

    fn checkpoint(&self) -> (Vec<(String, Tensor)>, serde_json::Value) {
        (self.tensors(), self.meta())
    }
}

// ───────────────────────────────────── importance sampling of t ─────────────────────────────────────

/// DiffRec's `sample_timesteps` / `Lt_history`: keeps the last 10 per-row losses of every level.
struct TimestepSampler {
    kind: TimestepSampling,
    history: Vec<VecDeque<f64>>,
}

/// Losses kept per level (DiffRec's `history_num_per_term`).
const HISTORY_PER_LEVEL: usize = 10;
/// Uniform mass mixed into the importance distribution (DiffRec's `uniform_prob`).
const UNIFORM_PROB: f64 = 0.001;

impl TimestepSampler {
    fn new(kind: TimestepSampling, steps: usize) -> Self {
        Self { kind, history: vec![VecDeque::with_capacity(HISTORY_PER_LEVEL); steps] }
    }

    /// Levels t (1-based, int64) and p_t · T per row (ones when uniform).
    fn sample(&self, n: i64, device: Device) -> Result<(Tensor, Tensor)> {
        let steps = self.history.len();
        let warm = self.history.iter().all(|h| h.len() == HISTORY_PER_LEVEL);
        if self.kind == TimestepSampling::Importance && warm {
            let rms: Vec<f64> =
                self.history.iter().map(|h| (h.iter().map(|l| l * l).sum::<f64>() / h.len() as f64).sqrt()).collect();
            let total: f64 = rms.iter().sum();
            if total > 0.0 && total.is_finite() {
                let p: Vec<f64> =
                    rms.iter().map(|r| r / total * (1.0 - UNIFORM_PROB) + UNIFORM_PROB / steps as f64).collect();
                let p = Tensor::f_from_slice(&p)?.f_to_device(device)?;
                let idx = p.f_multinomial(n, true)?;
                let pt = p.f_index_select(0, &idx)?.f_mul_scalar(steps as f64)?.f_to_kind(Kind::Float)?;
                return Ok((idx.f_add_scalar(1)?, pt));
            }
        }
        let t = Tensor::f_randint_low(1, steps as i64 + 1, [n], (Kind::Int64, device))?;
        Ok((t, Tensor::f_ones([n], (Kind::Float, device))?))
    }

    /// Records per-row losses (before the 1/(p_t T) correction, as DiffRec).
    fn record(&mut self, t: &Tensor, loss: &Tensor) -> Result<()> {
        if self.kind != TimestepSampling::Importance {
            return Ok(());
        }
        let ts = Vec::<i64>::try_from(t)?;
        let ls = Vec::<f64>::try_from(loss.f_detach()?.f_to_kind(Kind::Double)?)?;
        for (t, l) in ts.into_iter().zip(ls) {
            let h = &mut self.history[(t - 1) as usize];
            if h.len() == HISTORY_PER_LEVEL {
                h.pop_front();
            }
            h.push_back(l);
        }
        Ok(())
    }
}
