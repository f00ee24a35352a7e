//! The DSRM stage of a training run (`dsrm-hrl.md` §4.3, "Training data and order"): before RL starts,
//!
//! 1. **replay** every training-log user sequence in time order through the FROZEN state tracker (pretrained
//!    item embeddings), giving one observed state o_t per step and the user it belongs to;
//! 2. **pretrain** the configured denoiser on those states, early-stopping on a validation split of *users*
//!    (`dsrm_denoise::build`), then freeze it;
//! 3. hand the agents a [`PurifiedTracker`]: the frozen tracker followed by the denoiser, behind the ordinary
//!    [`StateTracker`] trait, so every agent reads purified states without knowing it. With `joint_lambda`
//!    (λ_D) > 0 the denoiser is not frozen but fine-tuned with the agent (§6 row 7): the tracker's variables
//!    are then the denoiser's, the agent's tracker optimiser (its `tracker_lr`) steps them on the agent's loss
//!    plus λ_D · L_DSRM (`StateTracker::auxiliary_loss`), and the run's checkpoints carry them.
//!
//! ```toml
//! [train.dsrm]               # absent: no DSRM (the tracker is trained with the agent, as DORL)
//! validation_fraction = 0.1  # share of log users whose states early-stop the denoiser
//! condition_window = 20      # W_c: condition on the same tracker over the last W_c steps (0: unconditional)
//! target = "debiased"        # x_0: each user's inverse-popularity-weighted mean state ("observed": o_t itself)
//! joint_lambda = 0.0         # > 0: fine-tune the DSRM with the agent, L = L_RL + λ_D·L_DSRM (`ddpm` only)
//! # checkpoint = "dsrm.bin"  # a trained stage (`dsrm dsrm train`) instead of training one
//! [train.dsrm.denoiser]      # the `[denoiser]` table of dsrm-denoise: kind, t_prime, schedule.steps, ...
//! kind = "ddpm"              # "identity" = the "w/o DSRM" ablation: the same frozen tracker, no purification
//! ```
//!
//! The training log is `world.train`: the log rows on catalogue items in (user, time) order (KuaiRec: the big
//! matrix on the small matrix's videos; KuaiRand-Pure: its standard log). `world.train_full` also holds
//! videos outside the catalogue, which the tracker's item table (the catalogue) cannot embed and which an
//! agent never recommends, so they are not part of any state it sees. Logged rewards are in ground-truth
//! units, so the replay normalises them with the ground truth's range, as evaluation does.
//!
//! A trained stage ([`DsrmModel`]) is one checkpoint: the frozen tracker's variables (its random start row
//! included), the pretrained item table, the denoiser and its fit report. Every [`PurifiedTracker`] is rebuilt
//! from it, so the states purified during RL come from exactly the tracker the denoiser was trained on.

use crate::{AgentError, Result};
use dsrm_denoise::{Denoiser, DenoiserConfig, EpochLog, FitReport};
use dsrm_nn::checkpoint;
use dsrm_nn::tch::{Device, Kind, Tensor};
use dsrm_sim::World;
use dsrm_state::{HistoryBatch, StateError, StateTracker, TrackerConfig};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The `[train.dsrm]` table. Unknown keys are errors. It is written (and compared) with `condition_window`
/// and `target` resolved ([`Self::condition_window`], [`Self::target`]), so an unset value and its default
/// written out are the same config, and a saved config names exactly what ran.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DsrmStageConfig {
    /// The denoiser and its training settings (`[train.dsrm.denoiser]`; default: the DSRM of §6).
    pub denoiser: DenoiserConfig,
    /// Share of the log's users whose states form the early-stopping split (default 0.1, §4.3 step 3).
    pub validation_fraction: f64,
    /// W_c > 0 conditions the denoiser on a history summary: the same frozen tracker over the last W_c steps,
    /// appended to the state (sets the denoiser's `cond_dim`; `ddpm` / `ddim` / `distilled` only). Unset: 20
    /// for those kinds, 0 for `identity` / `vae` ([`Self::condition_window`]).
    pub condition_window: Option<usize>,
    /// Train on at most this many replayed states, drawn uniformly without replacement (0 = all, default).
    pub max_states: usize,
    /// The clean target x_0 (§6 row 3): `observed` (option A) or `debiased` (option B). Unset: `debiased`
    /// with a history condition, `observed` without ([`Self::target`]).
    pub target: Option<CleanTarget>,
    /// Seed of the user split and of the subsample (the denoiser's own `train.seed` seeds its training), and
    /// of the joint fine-tuning draws.
    pub seed: u64,
    /// λ_D: 0 (default) keeps the pretrained denoiser frozen during RL; > 0 fine-tunes it with the agent on
    /// L_RL + λ_D · L_DSRM (`ddpm` only; `dsrm_denoise::JointDdpm`). Left out of the serialised config at 0,
    /// so runs from before the option existed keep their identity and resume.
    pub joint_lambda: f64,
    /// A stage saved by `dsrm dsrm train` (or another run's `dsrm.bin`) to use instead of training one.
    pub checkpoint: Option<PathBuf>,
}

/// How a [`DsrmStageConfig`] is written: `condition_window` always, `target` only where it differs from what
/// its absence means (debiased with a condition, observed without), λ_D when it is not 0. So what is written
/// reads back as the same config, and configs (and run identities) from before these options read back
/// unchanged.
#[derive(Serialize, PartialEq)]
struct WrittenStage<'a> {
    denoiser: &'a DenoiserConfig,
    validation_fraction: f64,
    condition_window: usize,
    max_states: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<CleanTarget>,
    seed: u64,
    #[serde(skip_serializing_if = "is_zero")]
    joint_lambda: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint: &'a Option<PathBuf>,
}

impl Serialize for DsrmStageConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.written().serialize(serializer)
    }
}

impl PartialEq for DsrmStageConfig {
    fn eq(&self, other: &Self) -> bool {
        self.written() == other.written()
    }
}

/// W_c when `condition_window` is unset and the denoiser is a diffusion model. Why these defaults (not the
/// unconditional option A of `dsrm-hrl.md` §6 rows 2–3): on the synthetic truth an unconditional DSRM stays
/// within 0.002 of the raw state on every fidelity figure (a near-identity map of the same information),
/// while the 20-step condition with the debiased target moves all three the right way at every noise level
/// (README, "DSRM"); downstream both are within each other's intervals (`configs/condition*.toml`).
pub const DEFAULT_CONDITION_WINDOW: usize = 20;

impl DsrmStageConfig {
    /// The config as written and compared (see [`WrittenStage`]).
    fn written(&self) -> WrittenStage<'_> {
        WrittenStage {
            denoiser: &self.denoiser,
            validation_fraction: self.validation_fraction,
            condition_window: self.condition_window(),
            max_states: self.max_states,
            target: Some(self.target()).filter(|&t| t != Self::implied_target(self.condition_window())),
            seed: self.seed,
            joint_lambda: self.joint_lambda,
            checkpoint: &self.checkpoint,
        }
    }

    /// Whether the denoiser is a diffusion model (`ddpm`, `ddim`, `distilled`): the kinds that can read a
    /// history condition and learn a clean target other than their input.
    fn diffusion(&self) -> bool {
        matches!(self.denoiser, DenoiserConfig::Ddpm(_) | DenoiserConfig::Ddim(_) | DenoiserConfig::Distilled(_))
    }

    /// W_c in effect: the configured one, else [`DEFAULT_CONDITION_WINDOW`] for a diffusion denoiser, else 0.
    pub fn condition_window(&self) -> usize {
        self.condition_window.unwrap_or(if self.diffusion() { DEFAULT_CONDITION_WINDOW } else { 0 })
    }

    /// x_0 in effect: the configured one, else `debiased` when the denoiser reads a history condition, else
    /// `observed`. (Without the history the debiased target moves no fidelity figure by more than 0.002, and an
    /// explicit `condition_window = 0` keeps meaning what it meant before these defaults, so saved configs and
    /// the runs they identify stay valid.)
    pub fn target(&self) -> CleanTarget {
        self.target.unwrap_or(Self::implied_target(self.condition_window()))
    }

    fn implied_target(condition_window: usize) -> CleanTarget {
        if condition_window > 0 {
            CleanTarget::Debiased
        } else {
            CleanTarget::Observed
        }
    }
}

impl Default for DsrmStageConfig {
    fn default() -> Self {
        Self {
            denoiser: DenoiserConfig::default(),
            validation_fraction: 0.1,
            condition_window: None,
            max_states: 0,
            target: None,
            seed: 0,
            joint_lambda: 0.0,
            checkpoint: None,
        }
    }
}

/// What the DSRM learns to map an observed state to (`dsrm-hrl.md` §4.3 "Clean target", §6 row 3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CleanTarget {
    /// Option A (DiffRec): the observed state itself; purification projects onto the manifold of logged states.
    #[default]
    Observed,
    /// Option B, from the training log alone: every state of a user is paired with that user's
    /// inverse-popularity-weighted mean state over the whole log (each state weighted by 1 / the log count of
    /// the item it ends on), so the DSRM learns to map a short, exposure-biased window towards the user's
    /// long-run, popularity-debiased state. Diffusion denoisers only (`ddpm`; `ddim` and `distilled` on a
    /// teacher trained so).
    Debiased,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// What the stage reports while it runs (for progress bars).
#[derive(Debug, Clone, PartialEq)]
pub enum StageEvent {
    /// The log was replayed: `states` rows from `users` users.
    Replayed { states: usize, users: usize },
    /// One epoch of one denoiser fit (`build` may train a teacher, then a student).
    Epoch(EpochLog),
}

/// File name of the stage inside a run directory.
pub const RUN_FILE: &str = "dsrm.bin";
/// Tag in the stage checkpoint's metadata, checked on load.
const FORMAT: &str = "dsrm-stage/1";

// ─────────────────────────────────── the frozen tracker (+ summary) ───────────────────────────────────

/// The tracker whose states the denoiser learns, with every variable frozen, and the optional history-summary
/// tracker (same kind and weights, window W_c).
struct FrozenTracker {
    tracker: Box<dyn StateTracker>,
    summary: Option<Box<dyn StateTracker>>,
}

impl FrozenTracker {
    fn build(
        cfg: &TrackerConfig,
        condition_window: usize,
        n_items: usize,
        pretrained: Option<&Tensor>,
        device: Device,
    ) -> Result<Self> {
        let mut tracker =
            dsrm_state::build(&frozen_config(cfg, None), n_items, pretrained.map(Tensor::shallow_clone), device)?;
        tracker.var_store_mut().freeze();
        tracker.set_training(false);
        let summary = match condition_window {
            0 => None,
            w => {
                let cfg = frozen_config(cfg, Some(w));
                let mut s = dsrm_state::build(&cfg, n_items, pretrained.map(Tensor::shallow_clone), device)?;
                s.var_store_mut().freeze();
                s.set_training(false);
                Some(s)
            }
        };
        let mut frozen = Self { tracker, summary };
        frozen.sync_summary()?;
        Ok(frozen)
    }

    /// The summary tracker reads the main tracker's weights (only the window differs).
    fn sync_summary(&mut self) -> Result<()> {
        if let Some(s) = &mut self.summary {
            s.var_store_mut().copy(self.tracker.var_store()).map_err(|e| {
                AgentError::Config(format!(
                    "condition_window: the {} tracker's weights depend on its window ({e})",
                    self.tracker.name()
                ))
            })?;
        }
        Ok(())
    }

    fn window(&self) -> usize {
        self.summary.as_ref().map_or(0, |s| s.window()).max(self.tracker.window())
    }

    fn set_reward_range(&mut self, r_min: f64, r_max: f64) -> std::result::Result<(), StateError> {
        self.tracker.set_reward_range(r_min, r_max)?;
        self.summary.as_mut().map_or(Ok(()), |s| s.set_reward_range(r_min, r_max))
    }

    /// `[B, d (+ d)]`: o_t, then the history summary when there is one (the denoiser's input layout).
    fn observe(&self, batch: &HistoryBatch) -> std::result::Result<Tensor, StateError> {
        let o = self.tracker.try_states(batch)?;
        match &self.summary {
            None => Ok(o),
            Some(s) => Ok(Tensor::f_cat(&[o, s.try_states(batch)?], 1)?),
        }
    }
}

/// The tracker config with its embeddings frozen and, for the summary, its window set to `window`.
fn frozen_config(cfg: &TrackerConfig, window: Option<usize>) -> TrackerConfig {
    let mut cfg = cfg.clone();
    match &mut cfg {
        TrackerConfig::Avg(c) => (c.freeze_embeddings, c.window) = (true, window.unwrap_or(c.window)),
        TrackerConfig::Gru(c) => (c.freeze_embeddings, c.window) = (true, window.unwrap_or(c.window)),
        TrackerConfig::Sasrec(c) => (c.freeze_embeddings, c.window) = (true, window.unwrap_or(c.window)),
    }
    cfg
}

// ───────────────────────────────────────── 1. replay the log ─────────────────────────────────────────

/// Observed states replayed from the training log: one row per logged step, and its (dense) user.
#[derive(Debug)]
pub struct ReplayedStates {
    /// `[N, input width]` f32: o_t (⊕ the history summary), the state *before* each logged step.
    pub states: Tensor,
    /// The user of each row.
    pub users: Vec<u32>,
    /// t: how many of the user's logged steps the state has seen.
    pub steps: Vec<u32>,
    /// The `world.train` row of the step the state precedes (its window is the `min(t, W)` rows before it).
    pub log_rows: Vec<usize>,
}

/// Replays `world.train` user by user, in time order: the state before step t of a sequence is the tracker's
/// state of its first t (item, reward) pairs (t = 0: the start state).
fn replay(frozen: &FrozenTracker, world: &World) -> Result<ReplayedStates> {
    const CHUNK: usize = 4096;
    let log = &world.train;
    let n_items = world.spec.n_items();
    if let Some(bad) = log.item.iter().find(|&&i| i as usize >= n_items) {
        return Err(AgentError::Config(format!("training log item {bad} is outside the {n_items}-item catalogue")));
    }
    let window = frozen.window();
    let device = frozen.tracker.var_store().device();
    let (mut parts, mut users, mut steps, mut log_rows) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut histories: Vec<(u32, &[u32], &[f64])> = Vec::with_capacity(CHUNK);
    let mut flush = |histories: &mut Vec<(u32, &[u32], &[f64])>| -> Result<()> {
        if !histories.is_empty() {
            let batch = HistoryBatch::new(histories, window, n_items, device);
            parts.push(dsrm_nn::tch::no_grad(|| frozen.observe(&batch))?.f_to_device(Device::Cpu)?);
            histories.clear();
        }
        Ok(())
    };
    let mut start = 0;
    while start < log.len() {
        let user = log.user[start];
        let end = start + log.user[start..].iter().take_while(|&&u| u == user).count();
        for t in 0..end - start {
            histories.push((user, &log.item[start..start + t], &log.target[start..start + t]));
            users.push(user);
            steps.push(t as u32);
            log_rows.push(start + t);
            if histories.len() == CHUNK {
                flush(&mut histories)?;
            }
        }
        start = end;
    }
    flush(&mut histories)?;
    if parts.is_empty() {
        return Err(AgentError::Config("the training log is empty: no states to train the DSRM on".into()));
    }
    Ok(ReplayedStates { states: Tensor::f_cat(&parts, 0)?.f_to_kind(Kind::Float)?, users, steps, log_rows })
}

/// Option B's targets: for each replayed state (row of `replayed`), its user's inverse-popularity-weighted mean
/// state over the whole log, `[N, d]` (the state part only). A state's weight is 1 / (log count of the item its
/// window ends on); start states (no item yet) weigh 0, and a user with no weighted state gets the plain mean.
pub fn debiased_targets(replayed: &ReplayedStates, world: &World, d: i64) -> Result<Tensor> {
    let log = &world.train;
    let mut count = vec![0u64; world.spec.n_items()];
    log.item.iter().for_each(|&i| count[i as usize] += 1);
    let weights: Vec<f32> = (0..replayed.users.len())
        .map(|n| match replayed.steps[n] {
            0 => 0.0,
            _ => 1.0 / count[log.item[replayed.log_rows[n] - 1] as usize] as f32,
        })
        .collect();
    let states = replayed.states.f_narrow(1, 0, d)?.f_to_kind(Kind::Float)?.f_contiguous()?;
    let values = Vec::<f32>::try_from(states.f_view([-1])?)?;
    let (d, mut out) = (d as usize, vec![0f32; values.len()]);
    let mut start = 0;
    while start < replayed.users.len() {
        let user = replayed.users[start];
        let end = start + replayed.users[start..].iter().take_while(|&&u| u == user).count();
        let total: f32 = weights[start..end].iter().sum();
        let mut mean = vec![0f32; d];
        for n in start..end {
            let w = if total > 0.0 { weights[n] / total } else { 1.0 / (end - start) as f32 };
            mean.iter_mut().zip(&values[n * d..(n + 1) * d]).for_each(|(m, v)| *m += w * v);
        }
        (start..end).for_each(|n| out[n * d..(n + 1) * d].copy_from_slice(&mean));
        start = end;
    }
    Ok(Tensor::f_from_slice(&out)?.f_view([-1, d as i64])?)
}

/// Splits the rows by user: a seeded `fraction` of the users (at least one, and never all) for validation.
/// Returns (train rows, validation rows), each in log order.
pub fn split_by_user(users: &[u32], fraction: f64, seed: u64) -> Result<(Vec<i64>, Vec<i64>)> {
    let mut distinct: Vec<u32> = users.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 2 || !(fraction > 0.0 && fraction < 1.0) {
        return Err(AgentError::Config(format!(
            "a user split needs >= 2 users and a fraction in (0, 1) (users {}, fraction {fraction})",
            distinct.len()
        )));
    }
    distinct.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n_valid = ((distinct.len() as f64 * fraction).round() as usize).clamp(1, distinct.len() - 1);
    let mut is_valid = vec![false; distinct.iter().max().map_or(0, |&m| m as usize + 1)];
    distinct[..n_valid].iter().for_each(|&u| is_valid[u as usize] = true);
    let (mut train, mut valid) = (Vec::new(), Vec::new());
    for (row, &u) in users.iter().enumerate() {
        if is_valid[u as usize] {
            valid.push(row as i64)
        } else {
            train.push(row as i64)
        }
    }
    Ok((train, valid))
}

// ─────────────────────────────────── 2. pretrain, freeze, save ───────────────────────────────────

/// A trained (frozen) DSRM stage: the tracker it was trained on and the denoiser, as checkpoint parts.
#[derive(Debug)]
pub struct DsrmModel {
    tracker_cfg: TrackerConfig,
    condition_window: usize,
    /// What the denoiser was trained to map states to.
    pub target: CleanTarget,
    n_items: usize,
    pretrained: Option<Tensor>,
    tracker_tensors: Vec<(String, Tensor)>,
    denoiser_tensors: Vec<(String, Tensor)>,
    denoiser_meta: serde_json::Value,
    /// What was trained (teacher first for `distilled`; empty for `identity`).
    pub reports: Vec<FitReport>,
    /// Replayed states used for training and validation.
    pub rows: (i64, i64),
    /// Extra metadata saved with the model (provenance: config, seed, data hashes).
    pub provenance: serde_json::Value,
    /// λ_D and the seed for the trackers this model hands out ([`Self::fine_tune_jointly`]; not saved: the
    /// pretrained stage is the same whatever the run does with it).
    joint: Option<(f64, u64)>,
}

impl DsrmModel {
    /// Replays `world`'s training log through the frozen `tracker_cfg` tracker (reading `pretrained`) and
    /// trains `cfg.denoiser` on the states. Deterministic for the configs (one libtorch thread; hold
    /// `dsrm_nn::runtime::exclusive()` in multi-threaded tests).
    pub fn fit(
        cfg: &DsrmStageConfig,
        tracker_cfg: &TrackerConfig,
        world: &World,
        pretrained: Option<&Tensor>,
        progress: &mut dyn FnMut(StageEvent),
    ) -> Result<Self> {
        let n_items = world.spec.n_items();
        // The tracker's random start row comes from this seed, so the stage is a function of its config.
        dsrm_nn::runtime::seed(cfg.seed);
        let mut frozen =
            FrozenTracker::build(tracker_cfg, cfg.condition_window(), n_items, pretrained, dsrm_nn::runtime::device())?;
        let range = world.spec.rewards.range();
        frozen.set_reward_range(range.0, range.1)?;

        // 1. Replay, subsample, split by user.
        let replayed = replay(&frozen, world)?;
        let mut keep: Vec<usize> = (0..replayed.users.len()).collect();
        if cfg.max_states > 0 && keep.len() > cfg.max_states {
            let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
            rng.set_stream(1);
            keep.shuffle(&mut rng);
            keep.truncate(cfg.max_states);
            keep.sort_unstable();
        }
        let users: Vec<u32> = keep.iter().map(|&r| replayed.users[r]).collect();
        let rows = Tensor::f_from_slice(&keep.iter().map(|&r| r as i64).collect::<Vec<_>>())?;
        let states = replayed.states.f_index_select(0, &rows)?;
        let targets = match cfg.target() {
            CleanTarget::Observed => None,
            CleanTarget::Debiased => {
                Some(debiased_targets(&replayed, world, frozen.tracker.state_dim())?.f_index_select(0, &rows)?)
            }
        };
        let mut distinct = users.clone();
        distinct.sort_unstable();
        distinct.dedup();
        progress(StageEvent::Replayed { states: users.len(), users: distinct.len() });
        let (train_rows, valid_rows) = split_by_user(&users, cfg.validation_fraction, cfg.seed)?;
        let pick = |x: &Tensor, r: &[i64]| -> Result<Tensor> { Ok(x.f_index_select(0, &Tensor::f_from_slice(r)?)?) };
        let (train, valid) = (pick(&states, &train_rows)?, pick(&states, &valid_rows)?);

        // 2. Pretrain the denoiser, then freeze it (every denoiser is frozen once built).
        let denoiser_cfg = with_condition(&cfg.denoiser, frozen.tracker.state_dim(), cfg.condition_window())?;
        let mut report_epoch = |e: &EpochLog| progress(StageEvent::Epoch(e.clone()));
        let built = match &targets {
            None => dsrm_denoise::build(&denoiser_cfg, &train, &valid, &mut report_epoch)?,
            Some(t) => {
                let (train_t, valid_t) = (pick(t, &train_rows)?, pick(t, &valid_rows)?);
                dsrm_denoise::build_towards(&denoiser_cfg, &train, &train_t, &valid, &valid_t, &mut report_epoch)?
            }
        };
        let (denoiser_tensors, denoiser_meta) = built.denoiser.checkpoint();
        Ok(Self {
            tracker_cfg: tracker_cfg.clone(),
            condition_window: cfg.condition_window(),
            target: cfg.target(),
            n_items,
            pretrained: pretrained.map(|p| p.detach().copy()),
            tracker_tensors: copies(checkpoint::named("tracker", frozen.tracker.var_store())),
            denoiser_tensors: copies(denoiser_tensors),
            denoiser_meta,
            reports: built.reports,
            rows: (train_rows.len() as i64, valid_rows.len() as i64),
            provenance: serde_json::Value::Null,
            joint: None,
        })
    }

    /// Writes the stage to one atomic, checksummed file (`dsrm_nn::checkpoint`), with [`Self::provenance`].
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors: Vec<(String, Tensor)> = copies_ref(&self.tracker_tensors);
        tensors.extend(self.denoiser_tensors.iter().map(|(k, v)| (format!("denoiser/{k}"), v.shallow_clone())));
        if let Some(p) = &self.pretrained {
            tensors.push(("pretrained".into(), p.shallow_clone()));
        }
        let meta = serde_json::json!({
            "format": FORMAT,
            "tracker": self.tracker_cfg,
            "condition_window": self.condition_window,
            "n_items": self.n_items,
            "denoiser": self.denoiser_meta,
            "reports": self.reports,
            "rows": { "train": self.rows.0, "valid": self.rows.1 },
            "target": self.target,
            "provenance": self.provenance,
        });
        Ok(checkpoint::save(path, &tensors, &meta)?)
    }

    /// Reads a stage written by [`Self::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let (tensors, meta) = checkpoint::load(path)?;
        let bad = |detail: String| AgentError::Log { path: path.to_path_buf(), detail };
        if meta["format"] != FORMAT {
            return Err(bad(format!("not a DSRM stage ({FORMAT}) checkpoint: format {}", meta["format"])));
        }
        let field = |key: &str| meta.get(key).cloned().ok_or_else(|| bad(format!("metadata lacks {key}")));
        let parse = |key: &str| -> Result<serde_json::Value> { field(key) };
        let tracker_cfg: TrackerConfig = serde_json::from_value(parse("tracker")?).map_err(|e| bad(e.to_string()))?;
        let reports: Vec<FitReport> = serde_json::from_value(parse("reports")?).map_err(|e| bad(e.to_string()))?;
        let count = |key: &str| parse(key).ok().and_then(|v| v.as_u64()).ok_or_else(|| bad(format!("bad {key}")));
        let (condition_window, n_items) = (count("condition_window")? as usize, count("n_items")? as usize);
        let (mut tracker_tensors, mut denoiser_tensors, mut pretrained) = (Vec::new(), Vec::new(), None);
        for (name, t) in tensors {
            if name == "pretrained" {
                pretrained = Some(t);
            } else if let Some(rest) = name.strip_prefix("denoiser/") {
                denoiser_tensors.push((rest.to_string(), t));
            } else {
                tracker_tensors.push((name, t));
            }
        }
        // Stages saved before option B existed have no `target`: they are option A.
        let target: CleanTarget = match meta.get("target") {
            Some(t) => serde_json::from_value(t.clone()).map_err(|e| bad(format!("target: {e}")))?,
            None => CleanTarget::Observed,
        };
        let model = Self {
            tracker_cfg,
            condition_window,
            target,
            n_items,
            pretrained,
            tracker_tensors,
            denoiser_tensors,
            denoiser_meta: parse("denoiser")?,
            reports,
            rows: (meta["rows"]["train"].as_i64().unwrap_or(0), meta["rows"]["valid"].as_i64().unwrap_or(0)),
            provenance: meta["provenance"].clone(),
            joint: None,
        };
        model.tracker().map_err(|e| bad(format!("cannot rebuild the stage: {e}")))?;
        Ok(model)
    }

    /// Replays `world`'s training log through the stage's frozen tracker, as [`Self::fit`] did: the denoiser's
    /// inputs (o_t ⊕ the summary, if any), for analyses such as `dsrm dsrm fidelity`.
    pub fn replay(&self, world: &World) -> Result<ReplayedStates> {
        let mut tracker = self.tracker()?;
        let range = world.spec.rewards.range();
        tracker.frozen.set_reward_range(range.0, range.1)?;
        replay(&tracker.frozen, world)
    }

    /// Width of o_t (the denoiser's output).
    pub fn state_dim(&self) -> Result<i64> {
        Ok(self.tracker()?.state_dim())
    }

    /// The tracker config the stage was trained with.
    pub fn tracker_config(&self) -> &TrackerConfig {
        &self.tracker_cfg
    }

    /// Catalogue size the stage was trained for.
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// The frozen denoiser (a fresh copy).
    pub fn denoiser(&self) -> Result<Box<dyn Denoiser>> {
        Ok(dsrm_denoise::from_checkpoint(&self.denoiser_tensors, &self.denoiser_meta)?)
    }

    /// From now on [`Self::tracker`] hands out trackers whose denoiser is fine-tuned with the agent, weighing
    /// L_DSRM by `lambda` (λ_D > 0; 0 keeps them frozen). Only a `ddpm` denoiser trained towards the observed
    /// state can be: L_DSRM is the option-A loss, which would pull a debiased denoiser back towards o_t.
    pub fn fine_tune_jointly(&mut self, lambda: f64, seed: u64) -> Result<()> {
        self.joint = None;
        if lambda != 0.0 {
            if self.target == CleanTarget::Debiased {
                return Err(joint_needs_observed(lambda));
            }
            dsrm_denoise::JointDdpm::from_checkpoint(&self.denoiser_tensors, &self.denoiser_meta, lambda, seed)?;
            self.joint = Some((lambda, seed));
        }
        Ok(())
    }

    /// A fresh [`PurifiedTracker`]: the frozen tracker (weights restored from the stage) and the denoiser
    /// (trainable under [`Self::fine_tune_jointly`]).
    pub fn tracker(&self) -> Result<PurifiedTracker> {
        let device = dsrm_nn::runtime::device();
        let mut frozen = FrozenTracker::build(
            &self.tracker_cfg,
            self.condition_window,
            self.n_items,
            self.pretrained.as_ref(),
            device,
        )?;
        checkpoint::restore("tracker", frozen.tracker.var_store_mut(), &self.tracker_tensors)?;
        frozen.sync_summary()?;
        let denoiser = self.denoiser()?;
        let input = frozen.tracker.state_dim() * if frozen.summary.is_some() { 2 } else { 1 };
        if denoiser.input_dim() != input || denoiser.output_dim() != frozen.tracker.state_dim() {
            return Err(AgentError::Config(format!(
                "denoiser {} maps {} -> {}, the tracker gives {input} -> {}",
                denoiser.name(),
                denoiser.input_dim(),
                denoiser.output_dim(),
                frozen.tracker.state_dim()
            )));
        }
        let name = match self.tracker_cfg {
            TrackerConfig::Avg(_) => "dsrm-avg",
            TrackerConfig::Gru(_) => "dsrm-gru",
            TrackerConfig::Sasrec(_) => "dsrm-sasrec",
        };
        let joint = match self.joint {
            Some((lambda, seed)) => Some(dsrm_denoise::JointDdpm::from_checkpoint(
                &self.denoiser_tensors,
                &self.denoiser_meta,
                lambda,
                seed,
            )?),
            None => None,
        };
        Ok(PurifiedTracker { frozen, denoiser, joint, name })
    }
}

fn joint_needs_observed(lambda: f64) -> AgentError {
    AgentError::Config(format!(
        "[train.dsrm] joint_lambda = {lambda}: joint fine-tuning keeps the denoiser on the observed-state loss \
         (option A), so it needs target = \"observed\", not the debiased target (the default for a diffusion \
         denoiser); set it in [train.dsrm]"
    ))
}

/// The denoiser config with its `cond_dim` set for a history summary of width `state_dim` (0 when
/// `condition_window` is 0).
fn with_condition(cfg: &DenoiserConfig, state_dim: i64, condition_window: usize) -> Result<DenoiserConfig> {
    let cond = if condition_window > 0 { state_dim } else { 0 };
    let mut cfg = cfg.clone();
    match &mut cfg {
        DenoiserConfig::Ddpm(c) => c.cond_dim = cond,
        DenoiserConfig::Ddim(c) => c.ddpm.cond_dim = cond,
        DenoiserConfig::Distilled(c) => c.teacher.cond_dim = cond,
        DenoiserConfig::Identity(_) | DenoiserConfig::Vae(_) if cond > 0 => {
            return Err(AgentError::Config(format!("condition_window needs a diffusion denoiser, not {}", cfg.kind())))
        }
        DenoiserConfig::Identity(_) | DenoiserConfig::Vae(_) => {}
    }
    Ok(cfg)
}

fn copies(tensors: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
    tensors.into_iter().map(|(k, v)| (k, v.detach().copy())).collect()
}

fn copies_ref(tensors: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    tensors.iter().map(|(k, v)| (k.clone(), v.shallow_clone())).collect()
}

/// The stage of a training run in `out_dir`: `out_dir/dsrm.bin` when resuming a run that has one, else the
/// configured checkpoint, else a freshly trained one; whatever was not read from the run directory is saved
/// there (atomically) before RL starts. A stage trained for another tracker or catalogue is refused. With
/// `joint_lambda` > 0 the model hands out jointly fine-tuned trackers (`dsrm.bin` stays the pretrained stage;
/// the fine-tuned weights live in the run's checkpoint, as any trained tracker's do).
pub fn prepare(
    cfg: &DsrmStageConfig,
    tracker_cfg: &TrackerConfig,
    world: &World,
    pretrained: Option<&Tensor>,
    out_dir: &Path,
    resume: bool,
    progress: &mut dyn FnMut(StageEvent),
) -> Result<DsrmModel> {
    if !resume && crate::trainer::run_exists(out_dir) {
        return Err(AgentError::RunExists { path: out_dir.to_path_buf() });
    }
    // Refuse a joint setting that cannot work before the stage trains, not after.
    let tunable = cfg.checkpoint.is_some() || matches!(cfg.denoiser, DenoiserConfig::Ddpm(_));
    if !(cfg.joint_lambda >= 0.0 && cfg.joint_lambda.is_finite()) || (cfg.joint_lambda > 0.0 && !tunable) {
        return Err(AgentError::Config(format!(
            "[train.dsrm] joint_lambda = {}: needs a finite value >= 0, and a `ddpm` denoiser when > 0",
            cfg.joint_lambda
        )));
    }
    if cfg.joint_lambda > 0.0 && cfg.checkpoint.is_none() && cfg.target() == CleanTarget::Debiased {
        return Err(joint_needs_observed(cfg.joint_lambda));
    }
    let saved = out_dir.join(RUN_FILE);
    let mut model = match (resume && saved.exists(), &cfg.checkpoint) {
        (true, _) => DsrmModel::load(&saved)?,
        (false, Some(path)) => DsrmModel::load(path)?,
        (false, None) => DsrmModel::fit(cfg, tracker_cfg, world, pretrained, progress)?,
    };
    if model.tracker_config() != tracker_cfg {
        return Err(AgentError::Config(format!(
            "the DSRM stage was trained for tracker {:?}, the run uses {:?}",
            model.tracker_config(),
            tracker_cfg
        )));
    }
    if model.n_items() != world.spec.n_items() {
        return Err(AgentError::Config(format!(
            "the DSRM stage was trained for {} items, the world has {}",
            model.n_items(),
            world.spec.n_items()
        )));
    }
    if !(resume && saved.exists()) {
        std::fs::create_dir_all(out_dir).map_err(|source| AgentError::Io { path: out_dir.to_path_buf(), source })?;
        model.save(&saved)?;
    }
    model.fine_tune_jointly(cfg.joint_lambda, cfg.seed)?;
    Ok(model)
}

// ─────────────────────────────────────── 3. the purified tracker ───────────────────────────────────────

/// The frozen tracker followed by the frozen denoiser: ŝ_t = denoiser(o_t [⊕ summary]). Its variables (the
/// tracker's) are all non-trainable, so the trainer's tracker optimiser has nothing to update. Under joint
/// fine-tuning the denoiser is the trainable `joint` one, and its variables are the tracker's.
pub struct PurifiedTracker {
    frozen: FrozenTracker,
    denoiser: Box<dyn Denoiser>,
    joint: Option<dsrm_denoise::JointDdpm>,
    name: &'static str,
}

impl PurifiedTracker {
    /// The denoiser's name (with its settings).
    pub fn denoiser_name(&self) -> String {
        match &self.joint {
            Some(joint) => joint.name(),
            None => self.denoiser.name(),
        }
    }

    /// The denoiser as it is now (fine-tuned weights under joint fine-tuning), as checkpoint parts.
    pub fn denoiser_checkpoint(&self) -> (Vec<(String, Tensor)>, serde_json::Value) {
        match &self.joint {
            Some(joint) => joint.checkpoint(),
            None => self.denoiser.checkpoint(),
        }
    }

    /// The unpurified observation o_t (⊕ the summary): the denoiser's input.
    pub fn observed(&self, batch: &HistoryBatch) -> std::result::Result<Tensor, StateError> {
        self.frozen.observe(batch)
    }
}

impl StateTracker for PurifiedTracker {
    fn state_dim(&self) -> i64 {
        self.denoiser.output_dim()
    }

    fn window(&self) -> usize {
        self.frozen.window()
    }

    fn states(&self, batch: &HistoryBatch) -> Tensor {
        self.try_states(batch).unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    fn try_states(&self, batch: &HistoryBatch) -> std::result::Result<Tensor, StateError> {
        let observed = self.frozen.observe(batch)?;
        let purified = match &self.joint {
            Some(joint) => joint.purify_differentiable(&observed),
            None => self.denoiser.try_purify(&observed),
        }
        .map_err(|e| StateError::Batch(format!("{}: {e}", self.denoiser_name())))?;
        Ok(purified.f_to_device(observed.device())?)
    }

    /// λ_D · L_DSRM on the batch's observed states under joint fine-tuning; none otherwise.
    fn auxiliary_loss(&self, batch: &HistoryBatch) -> std::result::Result<Option<Tensor>, StateError> {
        let Some(joint) = &self.joint else { return Ok(None) };
        let observed = self.frozen.observe(batch)?;
        let loss = joint.loss(&observed).map_err(|e| StateError::Batch(format!("{}: {e}", joint.name())))?;
        Ok(Some(loss))
    }

    /// The frozen tracker's variables, or under joint fine-tuning the denoiser's (the ones that train).
    fn var_store(&self) -> &dsrm_nn::tch::nn::VarStore {
        match &self.joint {
            Some(joint) => joint.var_store(),
            None => self.frozen.tracker.var_store(),
        }
    }

    fn var_store_mut(&mut self) -> &mut dsrm_nn::tch::nn::VarStore {
        match &mut self.joint {
            Some(joint) => joint.var_store_mut(),
            None => self.frozen.tracker.var_store_mut(),
        }
    }

    fn name(&self) -> &'static str {
        self.name
    }

    /// Frozen: train-only behaviour (SASRec's dropout) stays off, so the states match the denoiser's data.
    fn set_training(&mut self, _training: bool) {}

    fn set_reward_range(&mut self, r_min: f64, r_max: f64) -> std::result::Result<(), StateError> {
        self.frozen.set_reward_range(r_min, r_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::tiny_world;
    use dsrm_denoise::{DdpmConfig, ScheduleConfig};

    /// A DSRM that trains in a fraction of a second on the tiny world.
    pub(crate) fn tiny_stage() -> DsrmStageConfig {
        let ddpm = DdpmConfig {
            hidden: vec![16],
            schedule: ScheduleConfig { steps: 3, ..Default::default() },
            train: dsrm_denoise::TrainConfig { max_epochs: 3, batch_size: 256, lr: 1e-3, ..Default::default() },
            ..Default::default()
        };
        // Option A without a condition, set explicitly: most tests below are about the stage's mechanics.
        DsrmStageConfig {
            denoiser: DenoiserConfig::Ddpm(ddpm),
            max_states: 3000,
            condition_window: Some(0),
            target: Some(CleanTarget::Observed),
            ..Default::default()
        }
    }

    fn pretrained(n: usize) -> Tensor {
        dsrm_nn::runtime::seed(11);
        Tensor::randn([n as i64, 5], (Kind::Float, Device::Cpu))
    }

    #[test]
    fn replays_one_state_per_logged_step_and_splits_by_user() {
        let _torch = dsrm_nn::runtime::exclusive();
        let world = tiny_world();
        let frozen = FrozenTracker::build(
            &TrackerConfig::default(),
            0,
            world.spec.n_items(),
            Some(&pretrained(world.spec.n_items())),
            Device::Cpu,
        )
        .unwrap();
        let r = replay(&frozen, world).unwrap();
        assert_eq!(r.states.size(), [world.train.len() as i64, 6]);
        assert_eq!(r.users, world.train.user);
        // The first state of every sequence is the start state: equal across users.
        let first_rows: Vec<usize> = (0..r.users.len()).filter(|&i| i == 0 || r.users[i] != r.users[i - 1]).collect();
        let a = r.states.get(first_rows[0] as i64);
        assert!(first_rows.iter().all(|&i| r.states.get(i as i64).equal(&a)));
        let (train, valid) = split_by_user(&r.users, 0.25, 3).unwrap();
        assert_eq!(train.len() + valid.len(), r.users.len());
        let users_of =
            |rows: &[i64]| rows.iter().map(|&i| r.users[i as usize]).collect::<std::collections::BTreeSet<_>>();
        assert!(users_of(&train).is_disjoint(&users_of(&valid)), "no user on both sides");
        assert!(frozen.tracker.var_store().trainable_variables().iter().all(|v| !v.requires_grad()));
    }

    #[test]
    fn purified_tracker_is_frozen_deterministic_and_survives_save_and_load() {
        let _torch = dsrm_nn::runtime::exclusive();
        dsrm_nn::tch::set_num_threads(1);
        let world = tiny_world();
        let n = world.spec.n_items();
        let emb = pretrained(n);
        let fit = || DsrmModel::fit(&tiny_stage(), &TrackerConfig::default(), world, Some(&emb), &mut |_| {}).unwrap();
        let (a, b) = (fit(), fit());
        let batch = HistoryBatch::new(&[(0, &[1, 2, 3, 4], &[0.5, 1.0, 0.2, 2.0]), (1, &[], &[])], 3, n, Device::Cpu);
        let (ta, tb) = (a.tracker().unwrap(), b.tracker().unwrap());
        let sa = ta.states(&batch);
        assert!(sa.equal(&tb.states(&batch)), "same config and seed -> same purified states");
        assert!(!sa.equal(&ta.observed(&batch).unwrap()), "the DSRM changes the state");
        assert!(!sa.requires_grad() && ta.var_store().trainable_variables().iter().all(|v| !v.requires_grad()));
        assert_eq!((ta.state_dim(), ta.window(), ta.name()), (6, 3, "dsrm-avg"));

        let dir = tempfile::tempdir().unwrap();
        a.save(&dir.path().join("dsrm.bin")).unwrap();
        let loaded = DsrmModel::load(&dir.path().join("dsrm.bin")).unwrap();
        assert!(loaded.tracker().unwrap().states(&batch).equal(&sa));
        assert_eq!(loaded.reports, a.reports);

        // The ablation: the same frozen tracker, no purification.
        let ablation = DsrmStageConfig { denoiser: DenoiserConfig::Identity(Default::default()), ..tiny_stage() };
        let id = DsrmModel::fit(&ablation, &TrackerConfig::default(), world, Some(&emb), &mut |_| {}).unwrap();
        let t = id.tracker().unwrap();
        assert!(t.states(&batch).equal(&t.observed(&batch).unwrap()));

        // A history-summary condition doubles the denoiser's input.
        let cond = DsrmStageConfig { condition_window: Some(10), ..tiny_stage() };
        let c = DsrmModel::fit(&cond, &TrackerConfig::default(), world, Some(&emb), &mut |_| {})
            .unwrap()
            .tracker()
            .unwrap();
        let wide = HistoryBatch::new(&[(0, &[1, 2, 3, 4], &[0.5, 1.0, 0.2, 2.0])], c.window(), n, Device::Cpu);
        assert_eq!((c.window(), c.state_dim(), c.observed(&wide).unwrap().size()[1]), (10, 6, 12));
        assert_eq!(c.states(&wide).size(), [1, 6]);
    }

    #[test]
    fn the_debiased_target_is_one_inverse_popularity_weighted_state_per_user() {
        let _torch = dsrm_nn::runtime::exclusive();
        dsrm_nn::tch::set_num_threads(1);
        let world = tiny_world();
        let n = world.spec.n_items();
        let emb = pretrained(n);
        let frozen = FrozenTracker::build(&TrackerConfig::default(), 0, n, Some(&emb), Device::Cpu).unwrap();
        let r = replay(&frozen, world).unwrap();
        let targets = debiased_targets(&r, world, 6).unwrap();
        assert_eq!(targets.size(), [r.users.len() as i64, 6]);
        // One target per user, and it is a weighted mean of that user's states (inside their range).
        let first = r.users.iter().position(|&u| u == r.users[0]).unwrap();
        let last = r.users.iter().rposition(|&u| u == r.users[0]).unwrap();
        let user_rows = r.states.narrow(0, first as i64, (last - first + 1) as i64);
        let target = targets.get(first as i64);
        assert!(targets.get(last as i64).equal(&target));
        let (lo, hi) = (user_rows.min_dim(0, false).0, user_rows.max_dim(0, false).0);
        assert!(bool::try_from(target.ge_tensor(&(lo - 1e-6)).all()).unwrap());
        assert!(bool::try_from(target.le_tensor(&(hi + 1e-6)).all()).unwrap());
        // A stage trained towards it purifies differently from option A; other kinds are refused.
        let debiased = DsrmStageConfig { target: Some(CleanTarget::Debiased), ..tiny_stage() };
        let a = DsrmModel::fit(&tiny_stage(), &TrackerConfig::default(), world, Some(&emb), &mut |_| {}).unwrap();
        let b = DsrmModel::fit(&debiased, &TrackerConfig::default(), world, Some(&emb), &mut |_| {}).unwrap();
        let batch = HistoryBatch::new(&[(0, &[1, 2, 3], &[0.5, 1.0, 0.2])], 3, n, Device::Cpu);
        assert!(!a.tracker().unwrap().states(&batch).equal(&b.tracker().unwrap().states(&batch)));
        let vae = DsrmStageConfig { denoiser: DenoiserConfig::Vae(Default::default()), ..debiased.clone() };
        assert!(DsrmModel::fit(&vae, &TrackerConfig::default(), world, Some(&emb), &mut |_| {}).is_err());
        // DDIM and the distilled student run on a teacher trained towards the same target.
        let DenoiserConfig::Ddpm(teacher) = &tiny_stage().denoiser else { unreachable!() };
        let ddim = DenoiserConfig::Ddim(dsrm_denoise::DdimConfig { ddpm: teacher.clone(), k: 2 });
        let fast = DsrmStageConfig { denoiser: ddim, ..debiased.clone() };
        let c = DsrmModel::fit(&fast, &TrackerConfig::default(), world, Some(&emb), &mut |_| {}).unwrap();
        assert_eq!(c.reports.len(), 1);
        assert!(!c.tracker().unwrap().states(&batch).equal(&a.tracker().unwrap().states(&batch)));
    }

    #[test]
    fn the_defaults_condition_a_diffusion_denoiser_on_history_towards_the_debiased_target() {
        let ddpm = DsrmStageConfig::default();
        assert_eq!((ddpm.condition_window(), ddpm.target()), (DEFAULT_CONDITION_WINDOW, CleanTarget::Debiased));
        // Kinds that read o_t alone default to neither; set explicitly they are refused (before training).
        for kind in [DenoiserConfig::Identity(Default::default()), DenoiserConfig::Vae(Default::default())] {
            let cfg = DsrmStageConfig { denoiser: kind, ..Default::default() };
            assert_eq!((cfg.condition_window(), cfg.target()), (0, CleanTarget::Observed));
            assert!(with_condition(&cfg.denoiser, 6, 3).is_err());
        }
        // Written resolved, so a saved config names what ran, and unset equals its default written out.
        let text = serde_json::to_string(&ddpm).unwrap();
        assert!(text.contains(r#""condition_window":20"#) && !text.contains("target"), "{text}");
        let explicit =
            DsrmStageConfig { condition_window: Some(20), target: Some(CleanTarget::Debiased), ..ddpm.clone() };
        assert_eq!(explicit, ddpm);
        assert_ne!(DsrmStageConfig { condition_window: Some(0), ..ddpm.clone() }, ddpm);
        for (w, target) in [(0, CleanTarget::Debiased), (20, CleanTarget::Observed), (20, CleanTarget::Debiased)] {
            let pinned = DsrmStageConfig { condition_window: Some(w), target: Some(target), ..ddpm.clone() };
            let back: DsrmStageConfig = serde_json::from_str(&serde_json::to_string(&pinned).unwrap()).unwrap();
            assert_eq!((back.condition_window(), back.target()), (w, target));
            assert_eq!(back, pinned);
        }
        // A config from before these defaults (W_c written as 0, option A not written) keeps its meaning.
        let old: DsrmStageConfig = serde_json::from_str(r#"{"condition_window": 0}"#).unwrap();
        assert_eq!((old.condition_window(), old.target()), (0, CleanTarget::Observed));
        let written = serde_json::to_string(&old).unwrap();
        assert!(written.contains(r#""condition_window":0"#) && !written.contains("target"), "same identity: {written}");
        // Joint fine-tuning trains on the option-A loss, so it refuses the default (debiased) target up front.
        let dir = tempfile::tempdir().unwrap();
        let joint = DsrmStageConfig { joint_lambda: 0.5, ..Default::default() };
        let err = prepare(&joint, &TrackerConfig::default(), tiny_world(), None, dir.path(), false, &mut |_| {});
        assert!(err.unwrap_err().to_string().contains("target = \"observed\""));
    }

    #[test]
    fn config_parses_with_defaults_and_rejects_unknown_keys() {
        let json = r#"{"denoiser": {"kind": "ddpm", "t_prime": 4, "schedule": {"steps": 20, "noise_scale": 0.5}}}"#;
        let cfg: DsrmStageConfig = serde_json::from_str(json).unwrap();
        let DenoiserConfig::Ddpm(d) = &cfg.denoiser else { panic!("ddpm") };
        assert_eq!(
            (d.t_prime, d.schedule.steps, d.schedule.noise_scale, cfg.validation_fraction),
            (Some(4), 20, 0.5, 0.1)
        );
        assert!(serde_json::from_str::<DsrmStageConfig>(r#"{"validation_fractoin": 0.2}"#).is_err());
        let bad = DsrmStageConfig {
            condition_window: Some(3),
            denoiser: DenoiserConfig::Identity(Default::default()),
            ..Default::default()
        };
        assert!(with_condition(&bad.denoiser, 6, bad.condition_window()).is_err());
        // λ_D = 0 is not written, so configs from before the option keep their identity; λ_D > 0 round-trips.
        assert!(!serde_json::to_string(&DsrmStageConfig::default()).unwrap().contains("joint_lambda"));
        let joint = DsrmStageConfig { joint_lambda: 0.5, ..Default::default() };
        let back: DsrmStageConfig = serde_json::from_str(&serde_json::to_string(&joint).unwrap()).unwrap();
        assert_eq!(back.joint_lambda, 0.5);
    }
}
