//! DORL's user-model ensemble (`docs/protocol.md` §4.1; DORL-codes `run_worldModel_ensemble.py`,
//! `EnsembleModel`): n DeepFMs trained independently on the same training pairs, then evaluated on the whole
//! environment grid.
//!
//! * **Training.** One set of negatives for all models (drawn once from the ensemble seed, as the anchors
//!   draw them once while loading the data); model m gets its own seed for initialisation and shuffles, so
//!   the members differ only through randomness. (The anchors pass the same seed to every member; there the
//!   members differ only through the data loader's shuffles. Distinct seeds give the ensemble its spread.)
//! * **Outputs.** `pred` = mean over models of ŷ and `max_var` = element-wise max over models of exp(ℓ), on
//!   the grid environment users × catalogue items ([`Predictions`]); model 0's item embeddings for the `avg`
//!   tracker.
//! * **Checkpoint.** All members' variables plus both grids, with the config, the seed and a fingerprint of
//!   the training data in the metadata; loading refuses a checkpoint made from other data.
//!   [`UserModelEnsemble::train_resumable`] also keeps each member as it finishes, so a killed training
//!   loses only the members in flight.
//!
//! Environment users without a training row get their user rows from the L2 term alone, which drives them to
//! zero; their predictions are then the item side of the model. In `World::kuairec` that is every
//! environment user: the world keeps only catalogue videos in the log, and the big matrix holds none of the
//! small-matrix users' catalogue cells.
//!
//! Deterministic for a seed on a fixed number of libtorch threads (1 for bit-exact repeatability), whatever
//! the number of workers.

use crate::deepfm::{DeepFm, DeepFmConfig, OutputLink};
use crate::features::Features;
use crate::pairs::TrainingPairs;
use crate::predictions::Predictions;
use crate::refit::RefitRecord;
use crate::{invalid, Result, WorldError};
use dsrm_nn::checkpoint;
use dsrm_nn::tch::{Kind, Tensor};
use dsrm_sim::World;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

/// Settings of the ensemble. Unknown keys are errors; every field has a default (the anchors' values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnsembleConfig {
    /// Independently trained members. Default 5.
    pub n_models: usize,
    /// Each member's architecture and training.
    pub model: DeepFmConfig,
    /// Grid cells per forward pass when predicting (memory vs. per-call overhead). Default 65,536.
    pub predict_batch: usize,
    /// Members trained at the same time, each on its own OS thread. Default 1. The members are independent,
    /// so the result does not depend on it. On the 2-core machine, `workers = 2` with one libtorch thread
    /// (`dsrm_nn::runtime::init(1, ..)`) keeps both cores busy without OpenMP's barriers, which collapse when
    /// the cores are shared; `workers × libtorch threads` should not exceed the cores.
    pub workers: usize,
    /// Weight each logged row by its item's inverse exposure count (the IPS baseline's user model,
    /// [`crate::ips`]). Default false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ips: bool,
}

impl Default for EnsembleConfig {
    fn default() -> Self {
        Self { n_models: 5, model: DeepFmConfig::default(), predict_batch: 65_536, workers: 1, ips: false }
    }
}

impl EnsembleConfig {
    /// Rejects settings that cannot train.
    pub fn validate(&self) -> Result<()> {
        if self.n_models == 0 || self.predict_batch == 0 || self.workers == 0 {
            return Err(invalid("ensemble n_models, predict_batch and workers must be at least 1"));
        }
        self.model.validate()
    }
}

/// Which data a model was trained on: a readable label and a fingerprint of the training log and item
/// features, recorded in checkpoints so a model is never silently reused on other data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataId {
    /// E.g. `kuairec, synthetic (dsrm-synth tiny, seed 0)`.
    pub label: String,
    /// 64-bit hex fingerprint of the log (ids, targets), the item features and the grid shape.
    pub hash: String,
}

impl DataId {
    /// The identity of `world`'s training data.
    pub fn of(world: &World) -> Result<Self> {
        let f = Features::from_world(world)?;
        let mut h = Fingerprint::default();
        h.bytes(world.dataset.as_bytes());
        for n in [f.n_users, f.n_items, f.n_env_users, f.n_env_items, f.n_tag_fields, world.train_full.len()] {
            h.word(n as u64);
        }
        for row in 0..world.train_full.len() {
            h.word(
                (u64::from(world.train_full.user[row]) << 32)
                    | u64::from(*world.train_full.item.get(row).unwrap_or(&0)),
            );
            h.word(world.train_full.target.get(row).copied().unwrap_or(f64::NAN).to_bits());
        }
        f.tag_index.iter().for_each(|&t| h.word(t as u64));
        f.duration.iter().for_each(|&d| h.word(u64::from(d.to_bits())));
        let label = match &world.provenance.synthetic {
            Some(s) => format!("{}, synthetic ({} {}, seed {})", world.dataset, s.generator, s.size, s.seed),
            None => format!("{} from {}", world.dataset, world.provenance.dir),
        };
        Ok(Self { label, hash: format!("{:016x}", h.0) })
    }
}

/// The trained ensemble and its outputs on the environment grid.
#[derive(Debug)]
pub struct UserModelEnsemble {
    cfg: EnsembleConfig,
    seed: u64,
    link: OutputLink,
    neg_k: usize,
    data: DataId,
    models: Vec<DeepFm>,
    history: Vec<Vec<f64>>,
    predictions: Arc<Predictions>,
    item_embeddings: Tensor,
    /// The incremental refits that continued this ensemble from an earlier log, oldest first (empty for one
    /// trained from scratch; [`crate::refit`]).
    refits: Vec<RefitRecord>,
}

const KIND: &str = "dsrm-world/user-model-ensemble";
const VERSION: u64 = 1;

impl UserModelEnsemble {
    /// Trains `cfg.n_models` DeepFMs on `world.train_full` and predicts the environment grid. `progress(model,
    /// epoch, loss)` is called after every epoch of every model with the mean `pointneg` loss per pair.
    pub fn train(
        world: &World,
        cfg: &EnsembleConfig,
        seed: u64,
        progress: &mut dyn FnMut(usize, usize, f64),
    ) -> Result<Self> {
        Self::train_keeping_members(world, cfg, seed, None, progress)
    }

    /// [`Self::train`] that never loses a finished member: each one is written to `members_dir`
    /// (`member-<m>.bin`, atomically) as soon as it is trained, and a member found there, trained on the same
    /// data with the same settings and seed, is loaded instead of trained again. A killed training thus
    /// resumes with the members in flight, and the result is identical to an uninterrupted one. A loaded
    /// member reports its recorded losses through `progress`, so a progress bar counts it.
    pub fn train_resumable(
        world: &World,
        cfg: &EnsembleConfig,
        seed: u64,
        members_dir: &Path,
        progress: &mut dyn FnMut(usize, usize, f64),
    ) -> Result<Self> {
        std::fs::create_dir_all(members_dir)
            .map_err(|e| WorldError::Checkpoint { path: members_dir.to_path_buf(), detail: e.to_string() })?;
        Self::train_keeping_members(world, cfg, seed, Some(members_dir), progress)
    }

    fn train_keeping_members(
        world: &World,
        cfg: &EnsembleConfig,
        seed: u64,
        members_dir: Option<&Path>,
        progress: &mut dyn FnMut(usize, usize, f64),
    ) -> Result<Self> {
        cfg.validate()?;
        let features = Features::from_world(world)?;
        let data = DataId::of(world)?;
        let link = cfg.model.output.unwrap_or_else(|| OutputLink::for_targets(&world.train_full.target));
        let neg_k = cfg.model.neg_k_for(&world.dataset);
        let mut pairs = TrainingPairs::sample(&world.train_full, neg_k, derive_seed(seed, 0))?;
        if cfg.ips {
            pairs.weight = crate::ips::inverse_item_frequency(&world.train_full);
        }
        let store = members_dir.map(|dir| MemberStore { dir, cfg, seed, data: &data });
        let (models, history): (Vec<DeepFm>, Vec<Vec<f64>>) =
            train_members(&features, cfg, link, seed, &pairs, store.as_ref(), progress)?.into_iter().unzip();
        let predictions = Arc::new(predict_grid(&models, &features, cfg.predict_batch)?);
        let item_embeddings = models[0].item_embeddings()?;
        Ok(Self {
            cfg: cfg.clone(),
            seed,
            link,
            neg_k,
            data,
            models,
            history,
            predictions,
            item_embeddings,
            refits: Vec::new(),
        })
    }

    /// The grid outputs (`matPre`, `matVar`), shared: the simulated reward keeps a handle to them.
    pub fn predictions(&self) -> Arc<Predictions> {
        Arc::clone(&self.predictions)
    }

    /// Mean over models of ŷ on the grid, row-major `n_env_users × n_items`.
    pub fn pred(&self) -> &[f32] {
        self.predictions.pred()
    }

    /// Element-wise max over models of exp(ℓ) on the grid, row-major.
    pub fn max_var(&self) -> &[f32] {
        self.predictions.max_var()
    }

    /// Model 0's item embeddings `[n_items, d·(1 + T) + 1]` (41-d on KuaiRec), a fresh copy the `avg`
    /// tracker may train.
    pub fn item_embeddings(&self) -> Tensor {
        self.item_embeddings.copy()
    }

    /// Recomputes the grid from the members (what training stored; used to check a loaded model).
    pub fn predict_grid(&self, world: &World) -> Result<Predictions> {
        predict_grid(&self.models, &Features::from_world(world)?, self.cfg.predict_batch)
    }

    /// The members.
    pub fn models(&self) -> &[DeepFm] {
        &self.models
    }

    /// Mean `pointneg` loss per pair, per model and epoch.
    pub fn history(&self) -> &[Vec<f64>] {
        &self.history
    }

    /// The settings the ensemble was trained with.
    pub fn config(&self) -> &EnsembleConfig {
        &self.cfg
    }

    /// The ensemble seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The output link the members use.
    pub fn link(&self) -> OutputLink {
        self.link
    }

    /// Negatives per logged row used in training.
    pub fn neg_k(&self) -> usize {
        self.neg_k
    }

    /// The training data's identity.
    pub fn data(&self) -> &DataId {
        &self.data
    }

    /// The incremental refits that led to this ensemble, oldest first (empty: trained from scratch).
    pub fn refits(&self) -> &[RefitRecord] {
        &self.refits
    }

    /// The ensemble continued by an incremental refit on `world`'s log: new members, loss histories and
    /// outputs, the refit appended to its record.
    pub(crate) fn continued(
        mut self,
        world: &World,
        models: Vec<DeepFm>,
        history: Vec<Vec<f64>>,
        refit: RefitRecord,
    ) -> Result<Self> {
        let features = Features::from_world(world)?;
        self.predictions = Arc::new(predict_grid(&models, &features, self.cfg.predict_batch)?);
        self.item_embeddings = models[0].item_embeddings()?;
        self.data = DataId::of(world)?;
        self.models = models;
        self.history = history;
        self.refits.push(refit);
        Ok(self)
    }

    /// Takes the members and their loss histories out, to be continued by an incremental refit and put back
    /// by [`Self::continued`].
    pub(crate) fn take_members(&mut self) -> (Vec<DeepFm>, Vec<Vec<f64>>) {
        (std::mem::take(&mut self.models), std::mem::take(&mut self.history))
    }

    /// Writes every member, both grids and the metadata (config, seed, data identity, loss history) to
    /// `path`, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = Vec::new();
        for (m, model) in self.models.iter().enumerate() {
            tensors.extend(checkpoint::named(&format!("m{m}"), model.var_store()));
        }
        let (n_users, n_items) = (self.predictions.n_users() as i64, self.predictions.n_items() as i64);
        tensors.push(("grid/pred".into(), Tensor::f_from_slice(self.pred())?.f_reshape([n_users, n_items])?));
        tensors.push(("grid/max_var".into(), Tensor::f_from_slice(self.max_var())?.f_reshape([n_users, n_items])?));
        let meta = serde_json::json!({
            "kind": KIND,
            "version": VERSION,
            "config": self.cfg,
            "seed": self.seed,
            "link": self.link,
            "neg_k": self.neg_k,
            "data": self.data,
            "history": self.history,
        });
        let mut meta = meta;
        if !self.refits.is_empty() {
            meta["refits"] = serde_json::json!(self.refits);
        }
        Ok(checkpoint::save(path, &tensors, &meta)?)
    }

    /// Reads a checkpoint written by [`Self::save`] for `world`. Errors when the file is not such a
    /// checkpoint, or was trained on other data (its fingerprint differs from `world`'s).
    pub fn load(path: &Path, world: &World) -> Result<Self> {
        let ensemble = Self::read(path, world)?;
        let here = DataId::of(world)?;
        if here.hash != ensemble.data.hash {
            return Err(WorldError::Checkpoint {
                path: path.to_path_buf(),
                detail: format!(
                    "trained on {} (data {}), but this world is {} (data {})",
                    ensemble.data.label, ensemble.data.hash, here.label, here.hash
                ),
            });
        }
        Ok(ensemble)
    }

    /// [`Self::load`] without comparing the training data with `world`'s, only the shapes (users, items, tag
    /// fields): an incremental refit continues an ensemble trained on an earlier log of the same world.
    pub(crate) fn read(path: &Path, world: &World) -> Result<Self> {
        let (tensors, meta) = checkpoint::load(path)?;
        let bad = |detail: String| WorldError::Checkpoint { path: path.to_path_buf(), detail };
        if meta["kind"] != KIND || meta["version"] != VERSION {
            return Err(bad(format!(
                "not a user-model ensemble of version {VERSION} ({} {})",
                meta["kind"], meta["version"]
            )));
        }
        let field = |name: &str| -> Result<serde_json::Value> {
            meta.get(name).cloned().ok_or_else(|| bad(format!("metadata lacks {name:?}")))
        };
        let parse = |e: serde_json::Error| bad(format!("metadata: {e}"));
        let cfg: EnsembleConfig = serde_json::from_value(field("config")?).map_err(parse)?;
        let seed: u64 = serde_json::from_value(field("seed")?).map_err(parse)?;
        let link: OutputLink = serde_json::from_value(field("link")?).map_err(parse)?;
        let neg_k: usize = serde_json::from_value(field("neg_k")?).map_err(parse)?;
        let data: DataId = serde_json::from_value(field("data")?).map_err(parse)?;
        let history: Vec<Vec<f64>> = serde_json::from_value(field("history")?).map_err(parse)?;
        let refits: Vec<RefitRecord> = match meta.get("refits") {
            Some(v) => serde_json::from_value(v.clone()).map_err(parse)?,
            None => Vec::new(),
        };
        cfg.validate()?;
        let features = Features::from_world(world)?;
        let mut models = Vec::with_capacity(cfg.n_models);
        for m in 0..cfg.n_models {
            let mut model = DeepFm::new(&features, &cfg.model, link, model_seed(seed, m))?;
            checkpoint::restore(&format!("m{m}"), model.var_store_mut(), &tensors)?;
            models.push(model);
        }
        let grid = |name: &str| -> Result<Vec<f32>> {
            let t = tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t).ok_or_else(|| bad(format!("no {name}")))?;
            let want = [features.n_env_users as i64, features.n_env_items as i64];
            if t.size() != want {
                return Err(bad(format!("{name} is {:?}, the environment grid is {want:?}", t.size())));
            }
            let flat = t.f_to_kind(Kind::Float)?.f_reshape([-1])?.f_contiguous()?;
            let mut out = vec![0f32; flat.numel()];
            flat.f_copy_data(&mut out, flat.numel())?;
            Ok(out)
        };
        let predictions = Arc::new(Predictions::new(
            features.n_env_users,
            features.n_env_items,
            grid("grid/pred")?,
            grid("grid/max_var")?,
        )?);
        let item_embeddings = models[0].item_embeddings()?;
        Ok(Self { cfg, seed, link, neg_k, data, models, history, predictions, item_embeddings, refits })
    }
}

/// A trained member and its loss per epoch.
type Member = (DeepFm, Vec<f64>);

/// What a worker thread reports to the thread that owns the progress callback.
enum Message {
    Epoch(usize, usize, f64),
    Done(usize, Box<Result<Member>>),
}

/// Where [`UserModelEnsemble::train_resumable`] keeps finished members, and what they must match to be
/// reused: the settings (whatever the number of workers), the ensemble seed and the training data.
struct MemberStore<'a> {
    dir: &'a Path,
    cfg: &'a EnsembleConfig,
    seed: u64,
    data: &'a DataId,
}

const MEMBER_KIND: &str = "dsrm-world/user-model-member";

impl MemberStore<'_> {
    fn path(&self, m: usize) -> std::path::PathBuf {
        self.dir.join(format!("member-{m}.bin"))
    }

    /// What a kept member records about how it was made; a member is reused only when this matches.
    fn identity(&self, m: usize) -> serde_json::Value {
        serde_json::json!({
            "kind": MEMBER_KIND,
            "version": VERSION,
            "member": m,
            "config": EnsembleConfig { workers: 1, ..self.cfg.clone() },
            "seed": self.seed,
            "data": self.data.hash,
        })
    }

    /// Writes member `m`'s variables and losses, atomically.
    fn keep(&self, m: usize, model: &DeepFm, losses: &[f64]) -> Result<()> {
        let mut meta = self.identity(m);
        meta["history"] = serde_json::json!(losses);
        Ok(checkpoint::save(&self.path(m), &checkpoint::named("m", model.var_store()), &meta)?)
    }

    /// Member `m` and its losses, when a matching member is kept; `None` when there is none, or it was made
    /// otherwise or cannot be read (it is then trained again and replaced).
    fn restore(&self, m: usize, features: &Features, link: OutputLink) -> Option<Member> {
        let (tensors, mut meta) = checkpoint::load(&self.path(m)).ok()?;
        let history = meta.as_object_mut()?.remove("history")?;
        // Compared as the checkpoint stores it (JSON text), so floats in the settings compare exactly.
        let expected: serde_json::Value = serde_json::from_str(&self.identity(m).to_string()).ok()?;
        if meta != expected {
            return None;
        }
        let losses: Vec<f64> = serde_json::from_value(history).ok()?;
        let mut model = DeepFm::new(features, &self.cfg.model, link, model_seed(self.seed, m)).ok()?;
        checkpoint::restore("m", model.var_store_mut(), &tensors).ok()?;
        (losses.len() == self.cfg.model.epochs).then_some((model, losses))
    }
}

/// Trains the members, `cfg.workers` at a time; returns them in member order with their loss histories.
/// Progress is reported on the calling thread. After a failure no new member starts, and the error of the
/// lowest-numbered failed member is returned.
fn train_members(
    features: &Features,
    cfg: &EnsembleConfig,
    link: OutputLink,
    seed: u64,
    pairs: &TrainingPairs,
    store: Option<&MemberStore>,
    progress: &mut dyn FnMut(usize, usize, f64),
) -> Result<Vec<Member>> {
    let n = cfg.n_models;
    let train_one = |m: usize, report: &mut dyn FnMut(usize, f64)| -> Result<Member> {
        if let Some((model, losses)) = store.and_then(|s| s.restore(m, features, link)) {
            losses.iter().enumerate().for_each(|(epoch, &loss)| report(epoch, loss));
            return Ok((model, losses));
        }
        let mut model = DeepFm::new(features, &cfg.model, link, model_seed(seed, m))?;
        let losses = model.fit(pairs, report).map_err(|e| match e {
            WorldError::Diverged { epoch, .. } => WorldError::Diverged { model: m, epoch },
            other => other,
        })?;
        if let Some(store) = store {
            store.keep(m, &model, &losses)?;
        }
        Ok((model, losses))
    };
    let workers = cfg.workers.clamp(1, n);
    if workers == 1 {
        return (0..n).map(|m| train_one(m, &mut |epoch, loss| progress(m, epoch, loss))).collect();
    }

    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let mut slots: Vec<Option<Result<Member>>> = (0..n).map(|_| None).collect();
    let (tx, rx) = mpsc::channel::<Message>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (tx, next, failed, train_one) = (tx.clone(), &next, &failed, &train_one);
            scope.spawn(move || loop {
                let m = next.fetch_add(1, Ordering::SeqCst);
                if m >= n || failed.load(Ordering::SeqCst) {
                    break;
                }
                let result = train_one(m, &mut |epoch, loss| {
                    let _ = tx.send(Message::Epoch(m, epoch, loss));
                });
                if result.is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
                let _ = tx.send(Message::Done(m, Box::new(result)));
            });
        }
        drop(tx);
        for message in rx {
            match message {
                Message::Epoch(m, epoch, loss) => progress(m, epoch, loss),
                Message::Done(m, result) => slots[m] = Some(*result),
            }
        }
    });
    let mut members = Vec::with_capacity(n);
    for (m, slot) in slots.into_iter().enumerate() {
        match slot {
            Some(result) => members.push(result?),
            None => return Err(invalid(format!("member {m} was not trained: an earlier member failed"))),
        }
    }
    Ok(members)
}

/// Mean ŷ and max exp(ℓ) over `models` on the environment grid, `predict_batch` cells per forward pass.
fn predict_grid(models: &[DeepFm], features: &Features, predict_batch: usize) -> Result<Predictions> {
    let (n_users, n_items) = (features.n_env_users, features.n_env_items);
    let cells = n_users * n_items;
    let mut pred = vec![0f32; cells];
    let mut var = vec![0f32; cells];
    let block = (predict_batch / n_items.max(1)).max(1);
    for (m, model) in models.iter().enumerate() {
        for first in (0..n_users).step_by(block) {
            let n = block.min(n_users - first);
            let (y, v) = model.predict_users(first as u32, n as u32)?;
            let range = first * n_items..(first + n) * n_items;
            for ((p, x), (w, vv)) in pred[range.clone()].iter_mut().zip(&y).zip(var[range].iter_mut().zip(&v)) {
                *p += x;
                *w = if m == 0 { *vv } else { w.max(*vv) };
            }
        }
    }
    let scale = 1.0 / models.len().max(1) as f32;
    pred.iter_mut().for_each(|p| *p *= scale);
    Predictions::new(n_users, n_items, pred, var)
}

/// Seed of model `m`: a distinct ChaCha8 seed per member, derived from the ensemble seed.
pub(crate) fn model_seed(seed: u64, m: usize) -> u64 {
    derive_seed(seed, 1 + m as u64)
}

/// SplitMix64 of `seed` mixed with `salt`: independent-looking seeds for the parts of one run.
pub(crate) fn derive_seed(seed: u64, salt: u64) -> u64 {
    let mut z = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a-style over 64-bit words with a rotation so high bits mix down: a cheap, stable fingerprint (not a
/// cryptographic hash).
struct Fingerprint(u64);

impl Default for Fingerprint {
    fn default() -> Self {
        Fingerprint(0xcbf2_9ce4_8422_2325)
    }
}

impl Fingerprint {
    fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29);
    }
    fn bytes(&mut self, b: &[u8]) {
        b.iter().for_each(|&x| self.word(u64::from(x)));
    }
}
