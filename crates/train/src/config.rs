//! `[train]`: the settings of one training run.

use crate::{Result, TrainError};
use dsrm_agents::learner::Algorithm;
use dsrm_agents::shaping::RewardShaping;
use dsrm_denoise::stage::DsrmStageConfig;
use dsrm_eval::EvalConfig;
use dsrm_state::TrackerConfig;
use serde::{Deserialize, Serialize};

/// A training run. Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// The algorithm and its hyper-parameters.
    pub algorithm: Algorithm,
    /// The state tracker (DORL: `avg`).
    pub tracker: TrackerConfig,
    /// Epochs to train (DORL: 200). May be raised when resuming a finished run.
    pub epochs: usize,
    /// Environment steps collected per epoch (DORL: 100,000; the default suits a demo).
    pub steps_per_epoch: usize,
    /// Training episodes over the whole run, instead of `steps_per_epoch` (the paper's budget: 20,000 episodes):
    /// split evenly over the epochs (epoch e trains ⌊E·e/epochs⌋ − ⌊E·(e−1)/epochs⌋ episodes, in whole
    /// collections of `parallel_envs`, so the last collection may overshoot). Online learners only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub episodes: Option<u64>,
    /// Parallel training environments = whole episodes per collection (DORL: 100 and 100).
    pub parallel_envs: usize,
    /// Evaluation after every epoch (episodes per mode, k of NX_k, selections, MCD source, user stream).
    pub eval: EvalConfig,
    /// Share of the environment's users held out for model selection; the rest are the test users.
    pub validation_fraction: f64,
    /// Write `checkpoint.bin` every this many epochs (and after the last).
    pub checkpoint_every: usize,
    /// Worker threads of the per-epoch evaluation (one libtorch thread each; up to 9 runs in parallel).
    /// Evaluation decides one step at a time, so it is bound by per-operation overhead and scales with threads.
    pub threads: usize,
    /// libtorch intra-op threads while collecting and updating. Default 1: the operations are small, and
    /// OpenMP's busy-waiting makes 2 threads far slower as soon as another process shares the cores
    /// (measured: 14x slower on a loaded 2-core machine). Raise it only on an otherwise idle machine.
    pub torch_threads: usize,
    /// Seeds everything: initialisation, the user split, collection, minibatches, evaluation.
    pub seed: u64,
    /// DSRM state purification (`[train.dsrm]`, [`crate::dsrm_stage`]): trained (or loaded) before RL, then
    /// every tracker is the frozen tracker followed by the frozen denoiser. Absent: no DSRM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dsrm: Option<DsrmStageConfig>,
    /// A fairness term added to the training reward (`crate::shaping`); none by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reward_shaping: Option<RewardShaping>,
    /// A heuristic denoiser in front of the tracker (`[train.history_filter]`, `dsrm_denoise::filter`: T-CE or
    /// R-CE drops the history interactions a denoised user model believes least), the alternative to the DSRM
    /// in the paper's ablation; fitted on the training log before RL. With a DSRM stage as well the filter stands
    /// in front of the stage's tracker (the stage itself is fitted on unfiltered states), so the ablation's
    /// "HRL + T-CE" is `hrl-no-dsrm` (identity stage) plus a filter. Absent: the whole history is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_filter: Option<dsrm_denoise::filter::HistoryFilterConfig>,
    /// Model selection ranges over epochs `select_from_epoch ..= epochs` only (0 or 1: every epoch). Not part
    /// of the run's identity: it changes which epoch is reported, not what is trained. The feedback loop sets
    /// it to a warm round's first epoch, so that each round deploys one of its own epochs, scored in its own
    /// environment (earlier rounds' scores were measured on other users' states, world models and stages).
    #[serde(skip_serializing_if = "is_zero")]
    pub select_from_epoch: usize,
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::default(),
            tracker: TrackerConfig::default(),
            epochs: 10,
            steps_per_epoch: 20_000,
            episodes: None,
            parallel_envs: 100,
            eval: EvalConfig::default(),
            validation_fraction: 0.2,
            checkpoint_every: 1,
            threads: 1,
            torch_threads: 1,
            seed: 0,
            dsrm: None,
            reward_shaping: None,
            history_filter: None,
            select_from_epoch: 0,
        }
    }
}

impl TrainConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        let mut need = |ok: bool, what: &str| {
            if !ok {
                problems.push(what.to_string());
            }
        };
        need(self.epochs >= 1, "epochs >= 1");
        need(self.steps_per_epoch >= 1, "steps_per_epoch >= 1");
        need(self.episodes.is_none_or(|e| e >= self.epochs as u64), "episodes >= epochs (at least one per epoch)");
        need(self.parallel_envs >= 1, "parallel_envs >= 1");
        need(self.checkpoint_every >= 1, "checkpoint_every >= 1");
        need(self.threads >= 1 && self.torch_threads >= 1, "threads >= 1 and torch_threads >= 1");
        need(self.eval.episodes >= 1, "eval.episodes >= 1");
        need(!self.eval.selections.is_empty(), "eval.selections not empty");
        need(
            self.eval.modes.contains(&dsrm_eval::ModeName::NoRepeat),
            "eval.modes includes \"NX_0\" (each epoch is selected on the validation users' NX_0 R_tra)",
        );
        need(self.validation_fraction > 0.0 && self.validation_fraction < 1.0, "validation_fraction in (0, 1)");
        need(self.select_from_epoch <= self.epochs, "select_from_epoch <= epochs");
        problems.extend(self.eval.modes_problem());
        problems.extend(self.algorithm.problems());
        problems.extend(self.reward_shaping.iter().flat_map(RewardShaping::problems));
        problems.extend(self.history_filter.iter().flat_map(|f| f.problems()));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(TrainError::Config(problems.join("; ")))
        }
    }

    /// What epoch `epoch` (1-based) trains before it stops: episodes with an `episodes` budget, else steps.
    pub fn epoch_budget(&self, epoch: usize) -> Budget {
        match self.episodes {
            Some(total) => {
                let share = |e: usize| total * e as u64 / self.epochs as u64;
                Budget::Episodes(share(epoch) - share(epoch - 1))
            }
            None => Budget::Steps(self.steps_per_epoch as u64),
        }
    }

    /// The settings that determine what is trained: everything but `epochs` (a run may be extended),
    /// `checkpoint_every` and `select_from_epoch`. Stored in checkpoints and compared on resume.
    pub(crate) fn identity(&self) -> Result<serde_json::Value> {
        let mut v = serde_json::to_value(self)?;
        if let Some(map) = v.as_object_mut() {
            map.remove("epochs");
            map.remove("checkpoint_every");
            map.remove("select_from_epoch");
        }
        Ok(v)
    }
}

/// What one epoch trains before it stops (whole collections; the last may overshoot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Environment steps (`steps_per_epoch`; for an offline learner, logged transitions consumed).
    Steps(u64),
    /// Training episodes (`episodes`, split over the epochs).
    Episodes(u64),
}

impl Budget {
    /// The budget's size.
    pub fn size(self) -> u64 {
        match self {
            Budget::Steps(n) | Budget::Episodes(n) => n,
        }
    }

    /// How much of it `steps` and `episodes` have used.
    pub fn used(self, steps: u64, episodes: u64) -> u64 {
        match self {
            Budget::Steps(_) => steps,
            Budget::Episodes(_) => episodes,
        }
    }

    /// `"steps"` or `"episodes"`.
    pub fn unit(self) -> &'static str {
        match self {
            Budget::Steps(_) => "steps",
            Budget::Episodes(_) => "episodes",
        }
    }
}
