//! The DSRM stage of a training run (`docs/design.md` §4.3, "Training data and order"): before RL starts,
//!
//! 0. a `gru` or `sasrec` tracker (the paper's Transformer encoder) first learns its own weights by next-item
//!    prediction on the training users' sequences, the epoch chosen on the validation users
//!    (`[train.dsrm.tracker_pretrain]`, [`dsrm_state::pretrain`]); `avg` on pretrained item factors has nothing
//!    to learn;
//! 1. **replay** every training-log user sequence in time order through the FROZEN state tracker (pretrained
//!    item embeddings; `avg`, `gru` or `sasrec`), giving one observed state s̃_t = o_t per step and the user it
//!    belongs to;
//! 2. **split the users once**, with the stage's `seed`: a `holdout_fraction` the denoiser never sees (the
//!    fidelity probe's held-out users), a `validation_fraction` that early-stops it, the rest that train it
//!    ([`split_users`]);
//! 3. **pair each state with its clean target** s^(0) ([`clean`]; `target`): on synthetic data the same window
//!    re-encoded with the truth's noise-free, unbiased ratios; elsewhere the encoding of the user's next k
//!    positively rated items (DreamRec); rows without a target are dropped and counted;
//! 4. **pretrain** the configured denoiser on (condition s̃_t [⊕ h], target s^(0)) pairs ([`crate::build_towards`]),
//!    then freeze it;
//! 5. hand the agents a [`PurifiedTracker`]: the frozen tracker followed by the denoiser, behind the ordinary
//!    [`StateTracker`] trait, so every agent reads purified states without knowing it. With `joint_lambda`
//!    (λ_D) > 0 the denoiser is not frozen but fine-tuned with the agent (§6 row 7): the tracker's variables
//!    are then the denoiser's, the agent's tracker optimiser (its `tracker_lr`) steps them on the agent's loss
//!    plus λ_D · L_DSRM (`StateTracker::auxiliary_loss`), and the run's checkpoints carry them.
//!
//! ```text
//! What the paper says: ε_θ(s^(k), k, s̃_t) learns to denoise a noised clean state s^(0), conditioned on the
//! observed encoded state s̃_t; it does not say what s^(0) is on logged data.
//! What we choose: s^(0) per state (never the condition itself, never one vector per user), from the truth
//! where the data have one, else from what the user went on to like.
//! ```
//!
//! ```toml
//! [train.dsrm]               # absent: no DSRM (the tracker is trained with the agent, as DORL)
//! validation_fraction = 0.1  # share of log users whose states early-stop the denoiser
//! holdout_fraction = 0.0     # share of log users the denoiser never sees (> 0 for `dsrm dsrm fidelity`)
//! condition_window = 50      # W_c: the condition also holds the same tracker over the last W_c steps
//! target = "clean"           # s^(0): the per-state clean target ("debiased", "observed": ablations)
//! next_positives = 10        # k of the next-positives target (data without a truth)
//! joint_lambda = 0.0         # > 0: fine-tune the DSRM with the agent, L = L_RL + λ_D·L_DSRM (`ddpm` only)
//! # checkpoint = "dsrm.bin"  # a trained stage (`dsrm dsrm train`) instead of training one
//! [train.dsrm.tracker_pretrain]  # a gru / sasrec tracker: next-item pretraining before it is frozen
//! epochs = 10                # 0 (default) = none; needed for gru / sasrec (their weights would be random)
//! [train.dsrm.denoiser]      # the `[denoiser]` table of dsrm-denoise: kind, t_prime, schedule.steps, ...
//! kind = "ddpm"              # "identity" = the "w/o DSRM" ablation: the same frozen tracker, no purification;
//!                            # "flow" = conditional flow matching on the same target and condition
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

mod frozen;
mod model;
mod purified;

pub mod clean;
pub use frozen::{debiased_targets, split_by_user, split_users, ReplayedStates, UserSplit};
pub use model::DsrmModel;
pub use purified::PurifiedTracker;

use crate::{DenoiserConfig, EpochLog};
use dsrm_nn::tch::Tensor;
use dsrm_sim::World;
use dsrm_state::{PretrainConfig, PretrainEpoch, StateError, TrackerConfig};
use model::joint_needs_observed;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Errors of the DSRM stage.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// A libtorch call failed (shapes, devices).
    #[error("libtorch: {0}")]
    Torch(#[from] dsrm_nn::tch::TchError),
    /// Saving or loading a checkpoint failed (I/O, damaged file, mismatched variables).
    #[error(transparent)]
    Nn(#[from] dsrm_nn::NnError),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A field of a file (line and column) that is not of the expected form.
    #[error("{path}:{line}:{column}: {detail}")]
    At {
        /// The file.
        path: PathBuf,
        /// 1-based line and column.
        line: usize,
        /// 1-based column (a CSV field).
        column: usize,
        /// What was expected.
        detail: String,
    },
    /// A stage file that does not hold what it should.
    #[error("{path}: {detail}")]
    Log {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A setting out of its domain.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The denoiser could not be trained, saved or rebuilt.
    #[error("DSRM: {0}")]
    Denoise(#[from] crate::DenoiseError),
    /// The state tracker refused a batch or a reward range.
    #[error("state tracker: {0}")]
    State(#[from] StateError),
    /// A record could not be (de)serialised.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result alias of the stage.
pub type Result<T> = std::result::Result<T, StageError>;

/// The `[train.dsrm]` table. Unknown keys are errors. It is written (and compared) with `condition_window`
/// and `target` resolved ([`Self::condition_window`], [`Self::target`]), so an unset value and its default
/// written out are the same config, and a saved config names exactly what ran.
///
/// Which users chose its defaults: none of them was chosen on the fidelity probe's held-out users; the choices
/// this stage makes by itself (early stopping) read the validation users only (`docs/design.md` §4.3).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DsrmStageConfig {
    /// The denoiser and its training settings (`[train.dsrm.denoiser]`; default: the DSRM of §6).
    pub denoiser: DenoiserConfig,
    /// Share of the log's users whose states form the early-stopping split (default 0.1, §4.3 step 3).
    pub validation_fraction: f64,
    /// Share of the log's users held out of the denoiser's training and validation altogether (default 0):
    /// the users `dsrm dsrm fidelity` scores on. Drawn in the same split, with the same seed.
    pub holdout_fraction: f64,
    /// k, how many of the user's next positively rated items make the clean target where the data have no
    /// truth (default 10; [`clean`]). Capped at the tracker's window for trackers whose weights depend on it
    /// (SASRec's positions).
    pub next_positives: usize,
    /// W_c > 0 conditions the denoiser on a history summary: the same frozen tracker over the last W_c steps,
    /// appended to the state (sets the denoiser's `cond_dim`; `ddpm` / `ddim` / `distilled` / `flow` only).
    /// Unset: 50 for those kinds, 0 for `identity` / `vae` ([`Self::condition_window`]).
    pub condition_window: Option<usize>,
    /// Train on at most this many replayed states, drawn uniformly without replacement (0 = all, default).
    pub max_states: usize,
    /// The clean target s^(0): `clean` (per state, [`clean`]), or the ablations `debiased` (option B, one
    /// vector per user) and `observed` (option A, o_t itself). Unset: `clean` for a diffusion or flow
    /// denoiser, `observed` for `identity` / `vae` ([`Self::target`]).
    pub target: Option<CleanTarget>,
    /// Seed of the user split and of the subsample (the denoiser's own `train.seed` seeds its training), and
    /// of the joint fine-tuning draws.
    pub seed: u64,
    /// λ_D: 0 (default) keeps the pretrained denoiser frozen during RL; > 0 fine-tunes it with the agent on
    /// L_RL + λ_D · L_DSRM (`ddpm` only; `crate::JointDdpm`). Left out of the serialised config at 0,
    /// so runs from before the option existed keep their identity and resume.
    pub joint_lambda: f64,
    /// A stage saved by `dsrm dsrm train` (or another run's `dsrm.bin`) to use instead of training one.
    pub checkpoint: Option<PathBuf>,
    /// Next-item pretraining of the tracker's own weights before it is frozen (off by default; required for
    /// `gru` and `sasrec` trackers, whose weights would otherwise be random). Left out of the written config
    /// when off, so earlier runs keep their identity.
    pub tracker_pretrain: PretrainConfig,
}

/// How a [`DsrmStageConfig`] is written: `condition_window` and `target` always (resolved), `next_positives`
/// with the clean target, `holdout_fraction` and λ_D when they are not 0. So what is written reads back as
/// the same config.
#[derive(Serialize, PartialEq)]
struct WrittenStage<'a> {
    denoiser: &'a DenoiserConfig,
    validation_fraction: f64,
    #[serde(skip_serializing_if = "is_zero")]
    holdout_fraction: f64,
    condition_window: usize,
    max_states: usize,
    target: CleanTarget,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_positives: Option<usize>,
    seed: u64,
    #[serde(skip_serializing_if = "is_zero")]
    joint_lambda: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint: &'a Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tracker_pretrain: Option<&'a PretrainConfig>,
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

/// W_c when `condition_window` is unset and the denoiser is a diffusion model (a SASRec tracker, whose
/// positional table depends on the window, needs `condition_window = 0`). Chosen with the noise scale s = 1 on
/// validation users only (`configs/fidelity/select.toml`, docs/results/2026-12-06-fidelity-selection-validation.md:
/// MSE to the clean target 4.68 ± 0.05 ×1e-5 against 5.39 ± 0.04 for the earlier W_c = 20, s = 0.1);
/// `docs/design.md` §6 rows 2 and 4.
pub const DEFAULT_CONDITION_WINDOW: usize = 50;

/// k of the next-positives clean target when `next_positives` is unset (DreamRec predicts one next item; ten
/// smooth the target over the user's near future).
pub const DEFAULT_NEXT_POSITIVES: usize = 10;

impl DsrmStageConfig {
    /// The config as written and compared (see [`WrittenStage`]).
    fn written(&self) -> WrittenStage<'_> {
        WrittenStage {
            denoiser: &self.denoiser,
            validation_fraction: self.validation_fraction,
            holdout_fraction: self.holdout_fraction,
            condition_window: self.condition_window(),
            max_states: self.max_states,
            target: self.target(),
            next_positives: Some(self.next_positives).filter(|_| self.target() == CleanTarget::Clean),
            seed: self.seed,
            joint_lambda: self.joint_lambda,
            checkpoint: &self.checkpoint,
            tracker_pretrain: Some(&self.tracker_pretrain).filter(|p| p.enabled()),
        }
    }

    /// Whether the denoiser is a diffusion model (`ddpm`, `ddim`, `distilled`) or the flow (`flow`): the kinds
    /// that can read a history condition and learn a clean target other than their input.
    fn diffusion(&self) -> bool {
        matches!(
            self.denoiser,
            DenoiserConfig::Ddpm(_) | DenoiserConfig::Ddim(_) | DenoiserConfig::Distilled(_) | DenoiserConfig::Flow(_)
        )
    }

    /// W_c in effect: the configured one, else [`DEFAULT_CONDITION_WINDOW`] for a diffusion denoiser, else 0.
    /// A SASRec tracker needs `condition_window = 0` set (its positional table depends on the window).
    pub fn condition_window(&self) -> usize {
        self.condition_window.unwrap_or(if self.diffusion() { DEFAULT_CONDITION_WINDOW } else { 0 })
    }

    /// s^(0) in effect: the configured one, else `clean` for a diffusion denoiser and `observed` for the
    /// others (`identity` has nothing to train; the VAE reconstructs its input).
    pub fn target(&self) -> CleanTarget {
        self.target.unwrap_or(if self.diffusion() { CleanTarget::Clean } else { CleanTarget::Observed })
    }

    /// Checks the settings that a wrong value would otherwise let run; errors name the setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(StageError::Config(format!("[train.dsrm] {msg}")));
        let (v, h) = (self.validation_fraction, self.holdout_fraction);
        if !(v > 0.0 && v < 1.0 && (0.0..1.0).contains(&h) && v + h < 1.0) {
            return bad(format!(
                "validation_fraction = {v}, holdout_fraction = {h}: need 0 < validation_fraction < 1, \
                 0 <= holdout_fraction < 1 and a sum below 1 (users must remain to train on)"
            ));
        }
        if self.next_positives == 0 {
            return bad("next_positives = 0: the next-positives target needs k >= 1".into());
        }
        if self.target() != CleanTarget::Observed && !self.diffusion() {
            return bad(format!(
                "target = {:?} needs a diffusion or flow denoiser (ddpm, ddim, distilled, flow); the {} denoiser \
                 reads o_t and reproduces it, so it takes target = \"observed\"",
                self.target(),
                self.denoiser.kind()
            ));
        }
        if self.tracker_pretrain.enabled() {
            self.tracker_pretrain.validate()?;
        }
        // The flow's fields need no data to check, so a bad one (e.g. `ode_steps = 0`) fails before the replay.
        if let DenoiserConfig::Flow(flow) = &self.denoiser {
            flow.validate().map_err(|e| StageError::Config(format!("[train.dsrm.denoiser] {e}")))?;
        }
        Ok(())
    }
}

impl Default for DsrmStageConfig {
    fn default() -> Self {
        Self {
            denoiser: DenoiserConfig::default(),
            validation_fraction: 0.1,
            holdout_fraction: 0.0,
            next_positives: DEFAULT_NEXT_POSITIVES,
            condition_window: None,
            max_states: 0,
            target: None,
            seed: 0,
            joint_lambda: 0.0,
            checkpoint: None,
            tracker_pretrain: PretrainConfig::default(),
        }
    }
}

/// What the DSRM learns to map an observed state to (`docs/design.md` §4.3 "Clean target", §6 row 3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CleanTarget {
    /// The per-state clean target (the default for diffusion denoisers, [`clean`]): on synthetic data the same
    /// window re-encoded with the truth's noise-free, unbiased ratios; elsewhere the encoding of the user's
    /// next k positively rated items. The network reads o_t as its condition.
    Clean,
    /// Ablation, option A (DiffRec): the observed state itself; purification projects onto the manifold of
    /// logged states. The only target of `identity`, `vae` and joint fine-tuning.
    #[default]
    Observed,
    /// Ablation, option B (the former default): every state of a user is paired with that user's
    /// inverse-popularity-weighted mean state over the whole log, one vector per user, so the best a
    /// denoiser can do is read the history summary ("purified = history" is built in). Kept to show that.
    Debiased,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// What the stage reports while it runs (for progress bars).
#[derive(Debug, Clone, PartialEq)]
pub enum StageEvent {
    /// The log was replayed: `states` training and validation rows from `users` users (held-out users
    /// excluded).
    Replayed { states: usize, users: usize },
    /// One epoch of one denoiser fit (`build` may train a teacher, then a student).
    Epoch(EpochLog),
    /// One epoch of the tracker's next-item pretraining (step 0).
    TrackerEpoch(PretrainEpoch),
}

/// File name of the stage inside a run directory.
pub const RUN_FILE: &str = "dsrm.bin";
/// Tag in the stage checkpoint's metadata, checked on load.
const FORMAT: &str = "dsrm-stage/1";

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
    // Refuse a joint setting that cannot work before the stage trains, not after.
    let tunable = cfg.checkpoint.is_some() || matches!(cfg.denoiser, DenoiserConfig::Ddpm(_));
    if !(cfg.joint_lambda >= 0.0 && cfg.joint_lambda.is_finite()) || (cfg.joint_lambda > 0.0 && !tunable) {
        return Err(StageError::Config(format!(
            "[train.dsrm] joint_lambda = {}: needs a finite value >= 0, and a `ddpm` denoiser when > 0",
            cfg.joint_lambda
        )));
    }
    if cfg.joint_lambda > 0.0 && cfg.checkpoint.is_none() && cfg.target() != CleanTarget::Observed {
        return Err(joint_needs_observed(cfg.joint_lambda));
    }
    let saved = out_dir.join(RUN_FILE);
    let mut model = match (resume && saved.exists(), &cfg.checkpoint) {
        (true, _) => DsrmModel::load(&saved)?,
        (false, Some(path)) => DsrmModel::load(path)?,
        (false, None) => DsrmModel::fit(cfg, tracker_cfg, world, pretrained, progress)?,
    };
    if model.tracker_config() != tracker_cfg {
        return Err(StageError::Config(format!(
            "the DSRM stage was trained for tracker {:?}, the run uses {:?}",
            model.tracker_config(),
            tracker_cfg
        )));
    }
    if model.n_items() != world.spec.n_items() {
        return Err(StageError::Config(format!(
            "the DSRM stage was trained for {} items, the world has {}",
            model.n_items(),
            world.spec.n_items()
        )));
    }
    if !(resume && saved.exists()) {
        std::fs::create_dir_all(out_dir).map_err(|source| StageError::Io { path: out_dir.to_path_buf(), source })?;
        model.save(&saved)?;
    }
    model.fine_tune_jointly(cfg.joint_lambda, cfg.seed)?;
    Ok(model)
}

#[cfg(test)]
mod tests;
