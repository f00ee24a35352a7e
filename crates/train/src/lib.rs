//! The trainer (`dsrm-train`), above the agents: epochs, checkpoints, run directories, per-epoch evaluation,
//! resume and model selection. An algorithm is a `dsrm_agents::Learner`; the trainer never looks inside one.
//! With `[train.dsrm]` the DSRM stage (`dsrm_denoise::stage`) is prepared first and its purified tracker is
//! the state encoder every agent reads.
//!
//! The training loop: epochs of collection and updates in the simulated environment, evaluation on the
//! ground truth after every epoch, a JSONL log, checkpoints, resume, and model selection on validation users.
//!
//! Per epoch e (1-based):
//!
//! 1. Re-seed libtorch with f(seed, e) and build the epoch's ChaCha generator from (seed, e). Nothing random
//!    carries over from one epoch to the next except through the checkpointed weights and Adam moments, so a
//!    run resumed at an epoch boundary is bit-identical to an uninterrupted one.
//! 2. Until `steps_per_epoch` environment steps (or, with an `episodes` budget, the epoch's share of the training
//!    episodes) are collected: collect `parallel_envs` whole episodes
//!    ([`dsrm_agents::learner::Learner::iterate`]: for A2C / PPO, [`dsrm_agents::rollout::collect`]), then update on them.
//!    This is tianshou's `onpolicy_trainer`
//!    with `episode_per_collect = parallel_envs`; the last collection may overshoot `steps_per_epoch`.
//! 3. Evaluate a snapshot of the agent on the ground truth (`world.spec`) in FB / NX_0 / NX_k: on the
//!    validation users with the headline selection (sampled), and on the test users with every configured
//!    selection (sampled and argmax). Every epoch uses the same evaluation seed (common random numbers: epochs
//!    meet the same users, so their differences are the policy's).
//! 4. Append the epoch's record to `log.jsonl` (and its wall time to `timing.jsonl`), then write
//!    `checkpoint.bin` every `checkpoint_every` epochs and after the last one.
//!
//! Model selection: the reported epoch is the one with the best *validation* NX_0 R_tra under the headline
//! selection (ties: the earliest). Test users never influence it (`docs/design.md` §6 row 23). The last epoch's
//! test metrics are reported alongside.
//!
//! DORL trains for 200 epochs of 100,000 steps; the default here (20,000 steps per epoch) is sized for a demo.

mod config;
mod cpu_time;
mod run_dir;

pub use config::{Budget, TrainConfig};

#[cfg(test)]
mod hrl_tests;
#[cfg(test)]
mod mofir_tests;
#[cfg(test)]
mod off_policy_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

use dsrm_agents::AgentError;
use std::path::PathBuf;

/// Errors of a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The algorithm failed (shapes, a diverged loss, a bad setting).
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The DSRM stage could not be trained, loaded or used.
    #[error(transparent)]
    Stage(#[from] dsrm_denoise::stage::StageError),
    /// A libtorch call failed.
    #[error("libtorch: {0}")]
    Torch(#[from] dsrm_nn::tch::TchError),
    /// Saving or loading a checkpoint failed (I/O, damaged file, mismatched variables).
    #[error(transparent)]
    Nn(#[from] dsrm_nn::NnError),
    /// Reading or writing a file of the run directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Writing a file failed (the message names it).
    #[error("{0}")]
    Write(std::io::Error),
    /// `log.jsonl` (or a checkpoint's metadata) does not hold what the run needs.
    #[error("{path}: {detail}")]
    Log {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Resuming with settings other than the checkpoint's.
    #[error(
        "{path}: the checkpoint was written with a different configuration ({detail}); \
         resume with the original config or start a new run directory"
    )]
    ConfigMismatch {
        /// The checkpoint.
        path: PathBuf,
        /// The first setting that differs.
        detail: String,
    },
    /// Another process is training in the same run directory (it holds `RUN/.lock`).
    #[error("{path}: another process is training this run (it holds {path}/.lock); wait for it or stop it")]
    Busy {
        /// The run directory.
        path: PathBuf,
    },
    /// Starting afresh in a directory that holds a run.
    #[error("{path} already holds a training run; pass resume to continue it, or choose another output directory")]
    RunExists {
        /// The run directory.
        path: PathBuf,
    },
    /// Resuming (or reusing) a run made by other code.
    #[error(
        "{path}: the run was made by other code ({detail}); move or delete it, or rerun with the code that made it"
    )]
    OtherCode {
        /// The run directory.
        path: PathBuf,
        /// The two code versions.
        detail: String,
    },
    /// A setting out of its domain.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The policy failed while being evaluated.
    #[error("evaluation failed: {0}")]
    Eval(String),
    /// The state tracker refused a batch or a reward range.
    #[error("state tracker: {0}")]
    State(#[from] dsrm_state::StateError),
    /// A record could not be (de)serialised.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, TrainError>;

use crate::run_dir::{append_line, write_json, RunDir};
use dsrm_agents::learner::{EvalPolicy, TrainingEnv};
use dsrm_agents::shaping::ShapedReward;
use dsrm_agents::trained_tracker::TrainedTracker;
use dsrm_agents::update_stats::UpdateStats;
use dsrm_denoise::stage::StageEvent;

use dsrm_eval::{evaluate, EvalRun, MetricInputs, Mode};
use dsrm_metrics::MetricSet;
use dsrm_nn::checkpoint;
use dsrm_nn::tch::Tensor;
use dsrm_policy::Selection;
use dsrm_sim::{RewardModel, World};
use dsrm_state::StateTracker;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Test (or validation) metrics of one evaluation round: selection (`sampled`, `argmax`) -> mode (`FB`,
/// `NX_0`, `NX_10`) -> metrics.
pub type SplitMetrics = BTreeMap<String, BTreeMap<String, MetricSet>>;

/// One line of `log.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Environment steps collected in this epoch.
    pub env_steps: u64,
    /// Environment steps since the start of the run.
    pub total_env_steps: u64,
    /// Training episodes (whole) in this epoch.
    pub episodes: u64,
    /// Mean training (reward-model) return of this epoch's training episodes; `null` for the offline learners,
    /// which play no episode.
    pub train_return: Option<f64>,
    /// Mean length of this epoch's training episodes (`null` offline).
    pub train_length: Option<f64>,
    /// Collections (= updates) in this epoch.
    pub collections: usize,
    /// Losses averaged over the epoch's gradient steps.
    pub update: UpdateStats,
    /// Headline selection on the validation users.
    pub validation: SplitMetrics,
    /// Every selection on the test users.
    pub test: SplitMetrics,
    /// For a learner with a preference front (MoFIR), the headline selection on the test users at each of its
    /// preferences (absent for every other learner, whose lines are unchanged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub front: Vec<FrontPoint>,
}

/// One point of a preference-conditioned learner's front: the preference and the headline selection's test
/// metrics there, mode (`FB`, `NX_0`, `NX_10`) -> metrics, as in `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrontPoint {
    /// The preference (MoFIR: ω over (utility, fairness)).
    pub omega: Vec<f64>,
    /// The test metrics at that preference.
    pub metrics: BTreeMap<String, MetricSet>,
}

/// What a finished run reports (`summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    /// `a2c` or `ppo`.
    pub algorithm: String,
    /// The state tracker's name.
    pub tracker: String,
    /// What the agent was trained on (the reward model's description).
    pub training_reward: String,
    /// Epochs trained.
    pub epochs: usize,
    /// Environment steps collected over the run.
    pub total_env_steps: u64,
    /// Size of the validation user split (model selection).
    pub validation_users: usize,
    /// Size of the test user split (reported metrics).
    pub test_users: usize,
    /// How the reported epoch was chosen.
    pub selection_rule: String,
    /// The epoch whose test metrics are reported.
    pub selected_epoch: usize,
    /// Validation NX_0 R_tra of the selected epoch.
    pub selected_validation_score: f64,
    /// Test metrics of the selected epoch.
    pub selected: SplitMetrics,
    /// The final epoch.
    pub last_epoch: usize,
    /// Test metrics of the last epoch.
    pub last: SplitMetrics,
}

/// What the trainer reports while it runs (for progress bars).
#[derive(Debug, Clone, PartialEq)]
pub enum ProgressEvent {
    /// Training starts at `first_epoch` (> 1 when resumed) and ends after `epochs`.
    Started {
        /// First epoch to train.
        first_epoch: usize,
        /// Last epoch.
        epochs: usize,
        /// What the first epoch trains (steps, or episodes with an `episodes` budget).
        budget: Budget,
    },
    /// A collection and its update finished.
    Collected {
        /// Current epoch.
        epoch: usize,
        /// Steps collected in this epoch so far.
        steps: u64,
        /// Episodes collected in this epoch so far.
        episodes: u64,
        /// What the epoch collects (at least).
        budget: Budget,
        /// Mean training return of the collection's episodes (`None`: none played, offline).
        train_return: Option<f64>,
        /// The update's losses.
        update: UpdateStats,
    },
    /// Evaluating the epoch's snapshot.
    Evaluating {
        /// Current epoch.
        epoch: usize,
    },
    /// The epoch is logged (and checkpointed when due).
    EpochDone {
        /// Finished epoch.
        epoch: usize,
        /// Validation NX_0 R_tra (headline selection): the model-selection score.
        validation_nx0_r_tra: f64,
        /// Test NX_0 R_tra (headline selection).
        test_nx0_r_tra: f64,
        /// Wall time of the epoch.
        wall_s: f64,
        /// Whether `checkpoint.bin` now holds this epoch.
        checkpointed: bool,
    },
    /// The DSRM stage before RL (replay, then each denoiser epoch).
    Dsrm(StageEvent),
}

/// Makes a fresh tracker of the configured kind (its weights are then trained, restored or copied).
pub type TrackerBuilder<'a> = dyn Fn() -> Result<Box<dyn StateTracker>> + 'a;

/// The model-selection state: the best validation NX_0 R_tra so far and its epoch.
#[derive(Debug, Default)]
struct Best {
    epoch: usize,
    score: Option<f64>,
}

impl Best {
    /// Takes strictly better scores only, so ties keep the earliest epoch. The first epoch offered is taken
    /// whatever its score (there is always a selection); NaN never beats a number.
    fn offer(&mut self, epoch: usize, score: f64) {
        let take = match self.score {
            _ if self.epoch == 0 => true,
            None => !score.is_nan(),
            Some(best) => score > best,
        };
        if take {
            self.epoch = epoch;
            self.score = (!score.is_nan()).then_some(score);
        }
    }
}

/// SplitMix64 finaliser: decorrelates seeds derived from (seed, epoch).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// ChaCha stream ids of the run's generators (epochs use stream = epoch).
const SPLIT_STREAM: u64 = u64::MAX;

/// Splits the environment's users into (validation, test), seeded; both non-empty.
pub fn split_users(n_users: usize, fraction: f64, seed: u64) -> Result<(Vec<u32>, Vec<u32>)> {
    if n_users < 2 {
        return Err(TrainError::Config(format!(
            "a validation/test split needs at least 2 users, the world has {n_users}"
        )));
    }
    let mut users: Vec<u32> = (0..n_users as u32).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(SPLIT_STREAM);
    users.shuffle(&mut rng);
    let n_val = ((n_users as f64 * fraction).round() as usize).clamp(1, n_users - 1);
    let mut validation = users[..n_val].to_vec();
    let mut test = users[n_val..].to_vec();
    validation.sort_unstable();
    test.sort_unstable();
    Ok((validation, test))
}

fn selection_name(s: Selection) -> String {
    serde_json::to_value(s).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_else(|| format!("{s:?}"))
}

fn nx0_r_tra(m: &SplitMetrics, selection: &str) -> f64 {
    m.get(selection).and_then(|modes| modes.get(&Mode::NoRepeat.key())).map(|s| s.r_tra).unwrap_or(f64::NAN)
}

/// The DSRM stage's pretraining compute in a run directory (seconds, epochs, gradient updates), written when
/// the stage was trained by the run (not loaded); outside the byte-compared results.
pub const DSRM_TIMING_FILE: &str = "dsrm_timing.json";

/// The version of the code that decides results: the first 16 hex digits of a sha256 over every source file
/// under `crates/` (Markdown excluded), `Cargo.lock` and `rust-toolchain.toml`, computed at build time
/// (`build.rs`), so it needs no git checkout. A run directory records it in `code_version`.
pub const CODE_VERSION: &str = env!("DSRM_CODE_VERSION");

/// Why the run in `dir` was made by other code than this build, or `None` when it holds no run or one made by
/// this code. A run with no `code_version` file predates the record and counts as other code.
pub fn made_by_other_code(dir: &Path) -> Option<String> {
    if !RunDir::new(dir).has_run() {
        return None;
    }
    match std::fs::read_to_string(dir.join(run_dir::CODE_VERSION_FILE)) {
        Ok(text) if text.trim() == CODE_VERSION => None,
        Ok(text) => Some(format!("made by code version {}, this build is {CODE_VERSION}", text.trim())),
        Err(_) => {
            Some(format!("it has no code_version record (made before runs recorded one); this build is {CODE_VERSION}"))
        }
    }
}

/// The version of the run directory's layout, written to [`RUN_FORMAT_FILE`] by every run this code makes (and
/// by retunes): readers of finished runs (`dsrm serve`) refuse a version they do not know. Raise it when the
/// files a reader needs (`config.toml`, `checkpoint.bin`, `dsrm.bin`) change shape.
pub const RUN_FORMAT: u32 = 1;

/// The file holding [`RUN_FORMAT`] (its own file, so no byte-compared result file changes).
pub const RUN_FORMAT_FILE: &str = "run_format";

/// The run format of the run in `dir`: its [`RUN_FORMAT_FILE`], or 1 for a run made before runs recorded one
/// (the layout has not changed since). Errors name the file when it cannot be read or does not hold a number.
pub fn run_format(dir: &Path) -> Result<u32> {
    let path = dir.join(RUN_FORMAT_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| TrainError::Log { path, detail: format!("{:?} is not a run format number", text.trim()) }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(1),
        Err(source) => Err(TrainError::Io { path, source }),
    }
}

/// Compute spent by this process on a run (a resumed run adds its epochs to the earlier lines of
/// `timing.jsonl`): environment steps, training episodes, gradient updates (one optimiser step on one minibatch;
/// both HRL levels count) and seconds. Evaluation episodes and DSRM pretraining are counted apart.
#[derive(Debug, Clone, Copy, Default, Serialize)]
struct Totals {
    env_steps: u64,
    train_episodes: u64,
    grad_updates: u64,
    train_s: f64,
    wall_s: f64,
    /// The process's CPU seconds since it started (set-up included; `cpu_time`); absent where unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu_s: Option<f64>,
}

impl Totals {
    fn add(&mut self, steps: u64, episodes: u64, updates: u64, train_s: f64, wall_s: f64) {
        self.env_steps += steps;
        self.train_episodes += episodes;
        self.grad_updates += updates;
        self.train_s += train_s;
        self.wall_s += wall_s;
    }
}

/// Episodes the per-epoch evaluation plays: every mode on the validation users (headline selection) and every
/// selection on the test users.
fn eval_episodes_per_epoch(cfg: &TrainConfig) -> u64 {
    (cfg.eval.episodes * cfg.eval.modes().len() * (1 + cfg.eval.selections.len())) as u64
}

/// True when `dir` already holds a training run (a log or a checkpoint): starting afresh there is refused,
/// so callers can check before preparing expensive inputs such as a world model.
pub fn run_exists(dir: &Path) -> bool {
    RunDir::new(dir).has_run()
}

/// The evaluation users of a run.
#[derive(Clone, Copy)]
struct Splits<'a> {
    validation: &'a [u32],
    test: &'a [u32],
}

/// Runs the epoch's evaluations: the headline selection on the validation users and every selection on the
/// test users, each in FB / NX_0 / NX_k (for a `front_point`, only the headline selection on the test users). The runs are independent (each has its own user and policy streams
/// and `policies` holds one private snapshot per worker), so they are spread over the workers, each on one
/// libtorch thread, with results that do not depend on the schedule. Evaluation calls the policy one
/// decision at a time and is bound by per-operation overhead, not arithmetic, so threads pay off here.
fn evaluate_epoch(
    cfg: &TrainConfig,
    world: &World,
    inputs: &MetricInputs,
    policies: Vec<Box<dyn EvalPolicy>>,
    users: Splits,
    front_point: bool,
) -> Result<(SplitMetrics, SplitMetrics)> {
    let modes = cfg.eval.modes();
    let mut jobs: Vec<(bool, Selection, Mode)> = Vec::new();
    // A front point: the headline selection on the test users only.
    let rounds = if front_point {
        vec![(true, &cfg.eval.selections[..1])]
    } else {
        vec![(false, &cfg.eval.selections[..1]), (true, &cfg.eval.selections[..])]
    };
    for (is_test, selections) in rounds {
        for &selection in selections {
            jobs.extend(modes.iter().map(|&mode| (is_test, selection, mode)));
        }
    }
    let run_jobs =
        |mut policy: Box<dyn EvalPolicy>, worker: usize, n_workers: usize| -> Result<Vec<(usize, MetricSet)>> {
            let mut out = Vec::new();
            for (j, &(is_test, selection, mode)) in jobs.iter().enumerate().skip(worker).step_by(n_workers) {
                let pool = if is_test { users.test } else { users.validation };
                let run = EvalRun { mode, selection, seed: cfg.seed, users: Some(pool) };
                let result = evaluate(&world.spec, inputs, policy.as_mut(), &cfg.eval, run);
                if let Some(e) = policy.take_error() {
                    return Err(TrainError::Eval(format!("{mode}, {selection:?}: {e}")));
                }
                out.push((j, result.metrics));
            }
            Ok(out)
        };
    let n_workers = policies.len().max(1);
    dsrm_nn::tch::set_num_threads(1);
    let results: Vec<Result<Vec<(usize, MetricSet)>>> = if n_workers == 1 {
        policies.into_iter().map(|p| run_jobs(p, 0, 1)).collect()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = policies
                .into_iter()
                .enumerate()
                .map(|(w, p)| {
                    let run_jobs = &run_jobs;
                    scope.spawn(move || run_jobs(p, w, n_workers))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(TrainError::Eval("an evaluation thread panicked".into()))))
                .collect()
        })
    };
    let (mut validation, mut test) = (SplitMetrics::new(), SplitMetrics::new());
    for (j, metrics) in results.into_iter().collect::<Result<Vec<_>>>()?.into_iter().flatten() {
        let (is_test, selection, mode) = jobs[j];
        let split = if is_test { &mut test } else { &mut validation };
        split.entry(selection_name(selection)).or_default().insert(mode.key(), metrics);
    }
    Ok((validation, test))
}

/// The trained agent of a finished (or checkpointed) run in `out_dir`, frozen for evaluation or deployment:
/// the agent of the run's *last* checkpointed epoch (`checkpoint.bin`), not the epoch selected on validation.
/// `cfg` and `build_tracker` must be the run's; the checkpoint's configuration is checked against `cfg`.
pub fn load_trained_policy(
    cfg: &TrainConfig,
    world: &World,
    build_tracker: &TrackerBuilder,
    out_dir: &Path,
) -> Result<Box<dyn EvalPolicy>> {
    let path = RunDir::new(out_dir).checkpoint();
    let (tensors, meta) = checkpoint::load(&path)?;
    if meta["config"] != cfg.identity()? {
        return Err(TrainError::ConfigMismatch { path, detail: "config".into() });
    }
    let tracker = build_tracker()?;
    let device = tracker.var_store().device();
    let mut learner = cfg.algorithm.build(tracker.state_dim(), world, device)?;
    let mut tracker = tracker;
    checkpoint::restore("tracker", tracker.var_store_mut(), &tensors)?;
    learner.restore(&tensors)?;
    Ok(learner.snapshot(tracker, world.spec.rewards.range())?)
}

/// Trains with the configured tracker (`dsrm_state::build`); see [`train_with_tracker`]. With `[train.dsrm]`
/// the DSRM stage comes first (`dsrm_denoise::stage::prepare`: `out_dir/dsrm.bin`) and the tracker is its
/// [`PurifiedTracker`](dsrm_denoise::stage::PurifiedTracker).
#[allow(clippy::too_many_arguments)]
pub fn train(
    cfg: &TrainConfig,
    world: &World,
    inputs: &MetricInputs,
    reward_model: &dyn RewardModel,
    pretrained_item_embeddings: Option<Tensor>,
    out_dir: &Path,
    resume: bool,
    progress: &mut dyn FnMut(ProgressEvent),
) -> Result<TrainSummary> {
    if let Some(stage) = &cfg.dsrm {
        dsrm_nn::tch::set_num_threads(cfg.torch_threads as i32);
        let pretrained = pretrained_item_embeddings.as_ref();
        let started = Instant::now();
        let (mut epochs, mut updates) = (0usize, 0usize);
        let mut report = |e: StageEvent| {
            if let StageEvent::Epoch(log) = &e {
                epochs += usize::from(log.epoch > 0);
                updates += log.grad_updates;
            }
            progress(ProgressEvent::Dsrm(e))
        };
        let model = dsrm_denoise::stage::prepare(stage, &cfg.tracker, world, pretrained, out_dir, resume, &mut report)?;
        if epochs > 0 {
            // Trained here (not loaded): its compute, counted apart from the RL budget.
            let timing = serde_json::json!({
                "seconds": started.elapsed().as_secs_f64(),
                "epochs": epochs,
                "grad_updates": updates,
            });
            write_json(&out_dir.join(DSRM_TIMING_FILE), &timing)?;
        }
        let builder = move || -> Result<Box<dyn StateTracker>> { Ok(Box::new(model.tracker()?)) };
        return train_filtered(cfg, world, inputs, reward_model, builder, out_dir, resume, progress);
    }
    let builder = configured_tracker(cfg, world, pretrained_item_embeddings);
    train_filtered(cfg, world, inputs, reward_model, builder, out_dir, resume, progress)
}

/// [`train_with_tracker`] with trackers from `builder`, behind the history filter when the config has one
/// (then `history_filter.json` records what it was fitted to).
#[allow(clippy::too_many_arguments)]
fn train_filtered(
    cfg: &TrainConfig,
    world: &World,
    inputs: &MetricInputs,
    reward_model: &dyn RewardModel,
    builder: impl Fn() -> Result<Box<dyn StateTracker>>,
    out_dir: &Path,
    resume: bool,
    progress: &mut dyn FnMut(ProgressEvent),
) -> Result<TrainSummary> {
    match history_filter(cfg, world)? {
        Some(filtered) => {
            let builder = filtered.wrap(builder);
            let usage = filtered.usage.clone();
            let usage_path = out_dir.join(HISTORY_FILTER_USAGE_FILE);
            let mut write_error = None;
            let mut counting = |event: ProgressEvent| {
                match &event {
                    ProgressEvent::Started { .. } => {
                        usage.take();
                    }
                    ProgressEvent::EpochDone { epoch, .. } => {
                        if let Err(e) = record_filter_usage(&usage_path, *epoch, usage.take()) {
                            write_error.get_or_insert(e);
                        }
                    }
                    _ => {}
                }
                progress(event)
            };
            let summary =
                train_with_tracker(cfg, world, inputs, reward_model, &builder, out_dir, resume, &mut counting)?;
            if let Some(e) = write_error {
                return Err(e);
            }
            write_json(&out_dir.join(HISTORY_FILTER_FILE), &filtered.stats())?;
            Ok(summary)
        }
        None => train_with_tracker(cfg, world, inputs, reward_model, &builder, out_dir, resume, progress),
    }
}

/// What the history filter of a run was fitted to (`[train.history_filter]`): its kind, the clicks and
/// negatives of its user model, the belief cut and the share of training clicks it drops.
pub const HISTORY_FILTER_FILE: &str = "history_filter.json";

/// What the history filter dropped from the states of each epoch (collection, updates and evaluation), one
/// JSON line per epoch: `epoch`, `interactions` read (each time a state is built from them), `dropped`,
/// `dropped_share`. A filter that drops nothing leaves the run identical to its unfiltered twin; this file
/// shows it. A resumed run rewrites the lines of the epochs it trains again.
pub const HISTORY_FILTER_USAGE_FILE: &str = "history_filter_usage.jsonl";

/// Writes `epoch`'s line of [`HISTORY_FILTER_USAGE_FILE`], keeping the earlier epochs' lines (atomic rewrite).
fn record_filter_usage(path: &Path, epoch: usize, (read, dropped): (u64, u64)) -> Result<()> {
    let mut lines: Vec<String> = run_dir::read_lines(path)?
        .into_iter()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["epoch"].as_u64())
                .is_some_and(|e| (e as usize) < epoch)
        })
        .collect();
    let share = if read == 0 { 0.0 } else { dropped as f64 / read as f64 };
    lines.push(
        serde_json::json!({"epoch": epoch, "interactions": read, "dropped": dropped, "dropped_share": share})
            .to_string(),
    );
    let text = lines.join("\n") + "\n";
    run_dir::write_atomic(path, text.as_bytes())
}

/// The fitted history filter of `[train.history_filter]` (deterministic in the run's seed, so a resumed or
/// reloaded run fits the same one), or `None`.
pub fn history_filter(cfg: &TrainConfig, world: &World) -> Result<Option<FittedFilter>> {
    let Some(f) = &cfg.history_filter else { return Ok(None) };
    let filter = f.fit(world, cfg.seed).map_err(|e| TrainError::Config(format!("history_filter: {e}")))?;
    Ok(Some(FittedFilter { filter: Arc::new(filter), lookback: f.lookback, usage: Arc::default() }))
}

/// A fitted history filter, ready to stand in front of trackers.
pub struct FittedFilter {
    filter: Arc<dsrm_denoise::filter::FittedHistoryFilter>,
    lookback: usize,
    /// What the trackers it wraps read and drop.
    pub usage: Arc<dsrm_denoise::filter::FilterUsage>,
}

impl FittedFilter {
    /// What was fitted.
    pub fn stats(&self) -> dsrm_denoise::filter::FilterStats {
        self.filter.stats()
    }

    /// Trackers from `build`, each reading the filtered history.
    pub fn wrap<'a>(
        &self,
        build: impl Fn() -> Result<Box<dyn StateTracker>> + 'a,
    ) -> impl Fn() -> Result<Box<dyn StateTracker>> + 'a {
        let (filter, lookback, usage) = (self.filter.clone(), self.lookback, self.usage.clone());
        move || -> Result<Box<dyn StateTracker>> {
            let filter: Arc<dyn dsrm_denoise::filter::HistoryFilter> = filter.clone();
            let tracker = dsrm_denoise::filter::FilteredTracker::new(build()?, filter, lookback);
            Ok(Box::new(tracker.counting(usage.clone())))
        }
    }
}

/// Makes trackers of the configured kind (`dsrm_state::build`), with the pretrained item embeddings if any.
fn configured_tracker<'a>(
    cfg: &'a TrainConfig,
    world: &World,
    pretrained_item_embeddings: Option<Tensor>,
) -> impl Fn() -> Result<Box<dyn StateTracker>> + 'a {
    let device = dsrm_nn::runtime::device();
    let n_items = world.spec.n_items();
    move || -> Result<Box<dyn StateTracker>> {
        let pretrained = pretrained_item_embeddings.as_ref().map(Tensor::shallow_clone);
        Ok(dsrm_state::build(&cfg.tracker, n_items, pretrained, device)?)
    }
}

/// [`load_trained_policy`] with the tracker [`train`] built: the configured one, or with `[train.dsrm]` the
/// run's DSRM stage (`out_dir/dsrm.bin`).
pub fn load_trained(
    cfg: &TrainConfig,
    world: &World,
    pretrained_item_embeddings: Option<Tensor>,
    out_dir: &Path,
) -> Result<Box<dyn EvalPolicy>> {
    if let Some(stage) = &cfg.dsrm {
        let pretrained = pretrained_item_embeddings.as_ref();
        let model = dsrm_denoise::stage::prepare(stage, &cfg.tracker, world, pretrained, out_dir, true, &mut |_| {})?;
        let builder = move || -> Result<Box<dyn StateTracker>> { Ok(Box::new(model.tracker()?)) };
        return match history_filter(cfg, world)? {
            Some(filtered) => load_trained_policy(cfg, world, &filtered.wrap(builder), out_dir),
            None => load_trained_policy(cfg, world, &builder, out_dir),
        };
    }
    let builder = configured_tracker(cfg, world, pretrained_item_embeddings);
    match history_filter(cfg, world)? {
        Some(filtered) => load_trained_policy(cfg, world, &filtered.wrap(builder), out_dir),
        None => load_trained_policy(cfg, world, &builder, out_dir),
    }
}

/// Trains an agent in the world's simulated environment (`reward_model` replaces the ground-truth reward),
/// evaluating on the ground truth after every epoch, and writes the run directory `out_dir`.
///
/// `resume = false` refuses a directory that already holds a run. `resume = true` continues from
/// `checkpoint.bin` when there is one (refusing a checkpoint written with other settings, or a damaged one),
/// cutting `log.jsonl` back to the checkpoint's epoch; without a checkpoint it starts afresh.
///
/// Seeds libtorch's process-wide generator and sets its thread count: run one training at a time per
/// process (tests hold `dsrm_nn::runtime::exclusive`).
#[allow(clippy::too_many_arguments)]
pub fn train_with_tracker(
    cfg: &TrainConfig,
    world: &World,
    inputs: &MetricInputs,
    reward_model: &dyn RewardModel,
    build_tracker: &TrackerBuilder,
    out_dir: &Path,
    resume: bool,
    progress: &mut dyn FnMut(ProgressEvent),
) -> Result<TrainSummary> {
    cfg.validate()?;
    let shaped = cfg.reward_shaping.map(|s| ShapedReward::new(reward_model, s, world));
    let reward_model: &dyn RewardModel = match &shaped {
        Some(s) => s,
        None => reward_model,
    };
    let spec = &world.spec;
    let n_items = spec.n_items();
    let run = RunDir::new(out_dir);
    std::fs::create_dir_all(out_dir).map_err(|source| TrainError::Io { path: out_dir.to_path_buf(), source })?;
    // Held until this function returns (or the process ends): one writer per run directory.
    let _lock = run.lock()?;
    if !resume && run.has_run() {
        return Err(TrainError::RunExists { path: out_dir.to_path_buf() });
    }
    if let Some(other) = made_by_other_code(out_dir) {
        return Err(TrainError::OtherCode { path: out_dir.to_path_buf(), detail: other });
    }
    if !run.has_run() {
        run_dir::write_atomic(&out_dir.join(run_dir::CODE_VERSION_FILE), format!("{CODE_VERSION}\n").as_bytes())?;
    }
    if !out_dir.join(RUN_FORMAT_FILE).exists() {
        run_dir::write_atomic(&out_dir.join(RUN_FORMAT_FILE), format!("{RUN_FORMAT}\n").as_bytes())?;
    }

    // Construction order is part of the seed contract: the same seed gives the same initial weights.
    // (Threads only: `runtime::init` also fixes inter-op threads, which libtorch allows once per process, so
    // binaries call it at start-up.)
    dsrm_nn::tch::set_num_threads(cfg.torch_threads as i32);
    dsrm_nn::runtime::seed(cfg.seed);
    let (validation_users, test_users) = split_users(spec.n_users(), cfg.validation_fraction, cfg.seed)?;
    let train_range = reward_model.range();
    let eval_range = spec.rewards.range();
    let mut tracker = build_tracker()?;
    tracker.set_training(true);
    tracker.set_reward_range(train_range.0, train_range.1)?;
    let device = tracker.var_store().device();
    let mut tracker = TrainedTracker::new(tracker, cfg.algorithm.tracker_lr());
    let mut learner = cfg.algorithm.build(tracker.tracker.state_dim(), world, device)?;
    let training_reward = learner.offline_source().unwrap_or_else(|| reward_model.describe());

    let meta_base = serde_json::json!({
        "format": 1,
        "config": cfg.identity()?,
        "training_reward": training_reward,
        "world": { "dataset": world.dataset, "n_users": spec.n_users(), "n_items": n_items },
        "tracker": tracker.tracker.name(),
    });

    // Resume: restore weights, optimiser moments and the epoch; cut the logs back to it.
    let headline = selection_name(cfg.eval.selections[0]);
    let mut best = Best::default();
    let mut done_epochs = 0usize;
    let mut total_env_steps = 0u64;
    if resume && run.checkpoint().exists() {
        let path = run.checkpoint();
        let (tensors, meta) = checkpoint::load(&path)?;
        for key in ["format", "config", "training_reward", "world", "tracker"] {
            if meta[key] != meta_base[key] {
                return Err(TrainError::ConfigMismatch {
                    path,
                    detail: format!("{key}: checkpoint {} vs now {}", meta[key], meta_base[key]),
                });
            }
        }
        checkpoint::restore("tracker", tracker.tracker.var_store_mut(), &tensors)?;
        tracker.adam.restore("tracker_adam", &tensors)?;
        learner.restore(&tensors)?;
        let corrupt = |what: &str| TrainError::Log { path: path.clone(), detail: format!("metadata lacks {what}") };
        done_epochs = meta["epoch"].as_u64().ok_or_else(|| corrupt("epoch"))? as usize;
        total_env_steps = meta["total_env_steps"].as_u64().ok_or_else(|| corrupt("total_env_steps"))?;
        for line in run.truncate_logs(done_epochs)? {
            let record: EpochRecord =
                serde_json::from_str(&line).map_err(|e| TrainError::Log { path: run.log(), detail: e.to_string() })?;
            if record.epoch >= cfg.select_from_epoch {
                best.offer(record.epoch, nx0_r_tra(&record.validation, &headline));
            }
        }
    } else {
        run.clear_logs()?;
    }

    let mut env = TrainingEnv { spec, reward_model, episodes: cfg.parallel_envs, steps_before: 0 };
    if cfg.episodes.is_some() && learner.offline_source().is_some() {
        return Err(TrainError::Config(format!(
            "an episodes budget needs an online learner; {} learns from the log (set steps_per_epoch instead)",
            learner.name()
        )));
    }
    progress(ProgressEvent::Started {
        first_epoch: done_epochs + 1,
        epochs: cfg.epochs,
        budget: cfg.epoch_budget(done_epochs + 1),
    });
    let mut totals = Totals::default();

    for epoch in done_epochs + 1..=cfg.epochs {
        let started = Instant::now();
        dsrm_nn::runtime::seed(mix(cfg.seed ^ mix(epoch as u64)));
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        rng.set_stream(epoch as u64);
        tracker.tracker.clear_cache();

        // Collect whole episodes and update, until the epoch's budget is in.
        let budget = cfg.epoch_budget(epoch);
        let (mut steps, mut episodes, mut collections) = (0u64, 0u64, 0usize);
        let (mut return_sum, mut update) = (0.0f64, UpdateStats::default());
        let (mut collect_s, mut update_s) = (0.0f64, 0.0f64);
        while budget.used(steps, episodes) < budget.size() {
            env.steps_before = total_env_steps + steps;
            let it = learner.iterate(&env, &mut tracker, &mut rng)?;
            collect_s += it.collect_s;
            update_s += it.update_s;
            steps += it.steps;
            episodes += it.episodes;
            return_sum += it.reward_sum;
            collections += 1;
            update.merge(&it.update);
            progress(ProgressEvent::Collected {
                epoch,
                steps,
                episodes,
                budget,
                train_return: (it.episodes > 0).then(|| it.reward_sum / it.episodes as f64),
                update: it.update,
            });
        }
        total_env_steps += steps;
        let train_wall = started.elapsed().as_secs_f64();

        // Evaluate snapshots on the ground truth (one per worker thread; see `evaluate_epoch`).
        progress(ProgressEvent::Evaluating { epoch });
        let workers = cfg.threads.clamp(1, 9);
        let mut policies = Vec::with_capacity(workers);
        for _ in 0..workers {
            let mut eval_tracker = build_tracker()?;
            eval_tracker.var_store_mut().copy(tracker.tracker.var_store())?;
            policies.push(learner.snapshot(eval_tracker, eval_range)?);
        }
        let users = Splits { validation: &validation_users, test: &test_users };
        let (validation, test) = evaluate_epoch(cfg, world, inputs, policies, users, false)?;
        let mut front = Vec::new();
        for (point, omega) in learner.front_points().into_iter().enumerate() {
            let mut policies = Vec::with_capacity(workers);
            for _ in 0..workers {
                let mut eval_tracker = build_tracker()?;
                eval_tracker.var_store_mut().copy(tracker.tracker.var_store())?;
                policies.push(learner.snapshot_front(point, eval_tracker, eval_range)?);
            }
            let (_, mut at) = evaluate_epoch(cfg, world, inputs, policies, users, true)?;
            let metrics = at.remove(&headline).unwrap_or_default();
            front.push(FrontPoint { omega, metrics });
        }
        dsrm_nn::tch::set_num_threads(cfg.torch_threads as i32);

        let record = EpochRecord {
            epoch,
            env_steps: steps,
            total_env_steps,
            episodes,
            train_return: (episodes > 0).then(|| return_sum / episodes as f64),
            train_length: (episodes > 0).then(|| steps as f64 / episodes as f64),
            collections,
            update,
            validation,
            test,
            front,
        };
        append_line(&run.log(), &record)?;
        if epoch >= cfg.select_from_epoch {
            best.offer(epoch, nx0_r_tra(&record.validation, &headline));
        }
        let wall_s = started.elapsed().as_secs_f64();
        totals.add(steps, episodes, record.update.grad_steps as u64, train_wall, wall_s);
        // The epoch's CPU: since the previous epoch of this process ended, or since the process started (its
        // set-up, data loading, world models and DSRM pretraining then count in its first epoch).
        let cpu_now = cpu_time::process_cpu_seconds();
        let cpu_s = cpu_now.map(|now| now - totals.cpu_s.unwrap_or(0.0));
        totals.cpu_s = cpu_now;
        let eval_episodes = eval_episodes_per_epoch(cfg);
        append_line(
            &run.timing(),
            &serde_json::json!({
                "epoch": epoch,
                "wall_s": wall_s,
                "train_s": train_wall,
                "collect_s": collect_s,
                "update_s": update_s,
                "eval_s": wall_s - train_wall,
                "train_env_steps_per_s": steps as f64 / train_wall.max(1e-9),
                "env_steps": steps,
                "train_episodes": episodes,
                "grad_updates": record.update.grad_steps,
                "eval_episodes": eval_episodes,
                "cpu_s": cpu_s,
                "this_process": totals,
            }),
        )?;

        let checkpointed = epoch.is_multiple_of(cfg.checkpoint_every) || epoch == cfg.epochs;
        if checkpointed {
            let mut meta = meta_base.clone();
            meta["epoch"] = epoch.into();
            meta["total_env_steps"] = total_env_steps.into();
            meta["best"] = serde_json::json!({ "epoch": best.epoch, "validation_nx0_r_tra": best.score });
            let mut tensors = checkpoint::named("tracker", tracker.tracker.var_store());
            tensors.extend(tracker.adam.state("tracker_adam"));
            tensors.extend(learner.tensors());
            checkpoint::save(&run.checkpoint(), &tensors, &meta)?;
        }
        progress(ProgressEvent::EpochDone {
            epoch,
            validation_nx0_r_tra: nx0_r_tra(&record.validation, &headline),
            test_nx0_r_tra: nx0_r_tra(&record.test, &headline),
            wall_s,
            checkpointed,
        });
    }

    // Model selection and the final files, from the log (the record of every epoch, resumed or not).
    let records: Vec<EpochRecord> = crate::run_dir::read_lines(&run.log())?
        .iter()
        .map(|l| serde_json::from_str(l))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| TrainError::Log { path: run.log(), detail: e.to_string() })?;
    let Some(last) = records.last() else {
        return Err(TrainError::Log { path: run.log(), detail: "no epoch was logged".into() });
    };
    let mut selected = Best::default();
    records
        .iter()
        .filter(|r| r.epoch >= cfg.select_from_epoch)
        .for_each(|r| selected.offer(r.epoch, nx0_r_tra(&r.validation, &headline)));
    let best = records.iter().find(|r| r.epoch == selected.epoch).ok_or_else(|| TrainError::Log {
        path: run.log(),
        detail: format!("no epoch from select_from_epoch = {} was logged", cfg.select_from_epoch),
    })?;
    for (i, &selection) in cfg.eval.selections.iter().enumerate() {
        let name = selection_name(selection);
        let file = if i == 0 { "metrics.json".to_string() } else { format!("metrics_{name}.json") };
        let metrics = best.test.get(&name).cloned().unwrap_or_default();
        write_json(&out_dir.join(file), &metrics)?;
    }
    if !best.front.is_empty() {
        write_json(&out_dir.join("front.json"), &best.front)?;
    }
    let summary = TrainSummary {
        algorithm: cfg.algorithm.name().into(),
        tracker: tracker.tracker.name().into(),
        training_reward,
        epochs: last.epoch,
        total_env_steps: last.total_env_steps,
        validation_users: validation_users.len(),
        test_users: test_users.len(),
        selection_rule: format!(
            "best validation NX_0 R_tra ({headline}) over {} validation users; ties -> earliest epoch{}",
            validation_users.len(),
            match cfg.select_from_epoch {
                0 | 1 => String::new(),
                from => format!("; epochs {from}..={} only", last.epoch),
            }
        ),
        selected_epoch: best.epoch,
        selected_validation_score: nx0_r_tra(&best.validation, &headline),
        selected: best.test.clone(),
        last_epoch: last.epoch,
        last: last.test.clone(),
    };
    write_json(&out_dir.join("summary.json"), &summary)?;
    Ok(summary)
}
