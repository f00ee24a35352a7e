//! The contract between the trainer and an algorithm, and the registry of algorithms.
//!
//! The trainer ([`crate::trainer`]) owns epochs, evaluation, logs, checkpoints and model selection; it never
//! looks inside an algorithm. An algorithm file implements [`Learner`]: one training iteration (collect whole
//! episodes in the simulated environment, then update), its tensors for the checkpoint, and a frozen snapshot
//! that acts on the ground truth. [`Algorithm`] is the `[train.algorithm]` table (`kind = "..."`) and builds
//! the learner; adding an algorithm is one file plus one variant here.

use crate::a2c::{A2c, A2cConfig};
use crate::bcq::{Bcq, BcqConfig};
use crate::cql::{Cql, CqlConfig};
use crate::crr::{Crr, CrrConfig};
use crate::dnair::{Dnair, DnairConfig};
use crate::dqn::{Dqn, DqnConfig};
use crate::fcpo::{Fcpo, FcpoConfig};
use crate::hrl::{Hrl, HrlConfig};
use crate::mofir::{Mofir, MofirConfig};
use crate::ppo::{Ppo, PpoConfig};
use crate::sac::{Sac, SacConfig};
use crate::sac4ir::{Sac4ir, Sac4irConfig};
use crate::sqn::{Sqn, SqnConfig};
use crate::td3::{Td3, Td3Config};
use crate::trained_tracker::TrainedTracker;
use crate::update_stats::UpdateStats;
use crate::Result;
use dsrm_nn::tch::{Device, Tensor};
use dsrm_policy::{ItemMask, Observation, Policy, PolicyRng, Selection};
use dsrm_sim::{EnvSpec, RewardModel, World};
use dsrm_state::StateTracker;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The simulated training environment of one iteration.
pub struct TrainingEnv<'a> {
    /// The environment's users, items, quit rule and cap (its ground-truth reward is *not* used).
    pub spec: &'a EnvSpec,
    /// The training reward (a world model).
    pub reward_model: &'a dyn RewardModel,
    /// Whole episodes per collection (= parallel environments).
    pub episodes: usize,
    /// Environment steps the run collected before this iteration (paced updates count from it; `crate::pace`).
    pub steps_before: u64,
}

/// What one iteration did, for the epoch's log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Iteration {
    /// Environment steps collected; for the offline learners (BCQ, CQL, CRR, SQN), which take no environment
    /// step, the logged transitions consumed (gradient steps × batch size), so `steps_per_epoch` budgets them.
    pub steps: u64,
    /// Whole episodes collected.
    pub episodes: u64,
    /// Sum of the training rewards of those steps.
    pub reward_sum: f64,
    /// The update's losses.
    pub update: UpdateStats,
    /// Seconds spent collecting.
    pub collect_s: f64,
    /// Seconds spent updating.
    pub update_s: f64,
}

impl Iteration {
    /// The report of an iteration that collected `rollout` and updated on it.
    pub fn of(rollout: &crate::Rollout, update: UpdateStats, collect_s: f64, update_s: f64) -> Self {
        Self {
            steps: rollout.len() as u64,
            episodes: rollout.n_episodes() as u64,
            reward_sum: rollout.rewards.iter().sum(),
            update,
            collect_s,
            update_s,
        }
    }
}

/// A frozen agent for the evaluation protocol: a [`Policy`] that also reports the first error it met while
/// acting (acting itself cannot fail; it falls back to a uniform allowed item and remembers why).
pub trait EvalPolicy: Policy + Send {
    /// The first error met while acting since the last call, if any.
    fn take_error(&self) -> Option<String>;

    /// Fills `scores` with the scores [`Policy::act`] selects from for `obs`, one per catalogue item (higher is better; −∞ for the
    /// items `mask` blocks), so a server can rank the top k (`dsrm-serve`). Like `act`, a hierarchical policy
    /// sets the goal of a new segment here (drawing it with `rng` under `Sampled`). Unlike `act`, a failure is
    /// returned, not replaced by a uniform draw.
    fn score_all(
        &mut self,
        obs: &Observation,
        mask: &ItemMask,
        selection: Selection,
        rng: &mut PolicyRng,
        scores: &mut Vec<f64>,
    ) -> Result<()>;

    /// Makes later scoring fast at batch one for a server: a policy that can copies its networks into a form
    /// evaluated without libtorch (`dsrm_nn::frozen_mlp`), whose scores equal the libtorch ones to rounding,
    /// and returns `true`; the default keeps libtorch and returns `false`. Evaluation never calls it, so
    /// simulated results stay bit-identical.
    fn prepare_serving(&mut self) -> Result<bool> {
        Ok(false)
    }

    /// The goal controls of a hierarchical policy (`None` for a flat one, the default).
    fn hierarchical(&mut self) -> Option<&mut dyn Hierarchical> {
        None
    }
}

/// What a server needs to play many sessions through one hierarchical policy: the goal of the current segment
/// belongs to the session (set before scoring, read after), and the fairness operating point can be fixed.
pub trait Hierarchical {
    /// The goal vector of the current segment (the last one set or drawn).
    fn goal(&self) -> [f32; 2];
    /// Sets the current segment's goal. With `hold`, the next scoring keeps it even where a new segment would
    /// start (the session already drew this segment's goal); without, scoring behaves as in evaluation.
    fn set_goal(&mut self, goal: [f32; 2], hold: bool);
    /// The decision interval c: a new segment (and goal) every c consumed items.
    fn interval(&self) -> usize;
    /// The fixed target long-tail ratio ρ* the high level emits, if any (`None`: the learned high level).
    fn fixed_ratio(&self) -> Option<f64>;
    /// Fixes ρ* ∈ [0, 1] (goal type (b), as `dsrm retune --target-ratio` does), or with `None` returns to the
    /// trained high level; new segments use it. Refused for the paper's goal type, whose low level reads ω.
    fn set_fixed_ratio(&mut self, rho: Option<f64>) -> Result<()>;
}

/// One RL algorithm, as the trainer drives it.
pub trait Learner: Send {
    /// Short name (`a2c`, `ppo`, ...): the run's label and the evaluated policy's name.
    fn name(&self) -> &'static str;

    /// One iteration: collect `env.episodes` whole episodes with the current policy and update on them
    /// (training the tracker jointly when its variables are trainable).
    fn iterate(&mut self, env: &TrainingEnv, tracker: &mut TrainedTracker, rng: &mut ChaCha8Rng) -> Result<Iteration>;

    /// Every tensor a resumed run needs (weights and optimiser moments), with unique names.
    fn tensors(&self) -> Vec<(String, Tensor)>;

    /// Restores what [`tensors`](Self::tensors) wrote.
    fn restore(&mut self, tensors: &[(String, Tensor)]) -> Result<()>;

    /// A frozen copy acting with `tracker` (a copy of the trained one), switched to the ground truth's reward
    /// range, for evaluation.
    fn snapshot(&self, tracker: Box<dyn StateTracker>, reward_range: (f64, f64)) -> Result<Box<dyn EvalPolicy>>;

    /// For an offline learner, what it learns from instead of the world model (`None`: online, trained in the
    /// world model). Runs report it as their `training_reward`.
    fn offline_source(&self) -> Option<String> {
        None
    }

    /// For a learner conditioned on a preference (MoFIR's ω), the preferences of its evaluated front, in order
    /// (empty: none, the default). The trainer evaluates [`snapshot_front`](Self::snapshot_front) at each on the
    /// test users and writes the selected epoch's as the run's `front.json`.
    fn front_points(&self) -> Vec<Vec<f64>> {
        Vec::new()
    }

    /// A frozen copy acting at front point `point` of [`front_points`](Self::front_points), like
    /// [`snapshot`](Self::snapshot).
    fn snapshot_front(
        &self,
        point: usize,
        _tracker: Box<dyn StateTracker>,
        _reward_range: (f64, f64),
    ) -> Result<Box<dyn EvalPolicy>> {
        Err(crate::AgentError::Config(format!("{} has no front (point {point})", self.name())))
    }
}

/// Which algorithm trains the agent, with its hyper-parameters
/// (`kind = "a2c" | "ppo" | "hrl" | "fcpo" | "dqn" | "sac" | "sac4ir" | "td3" | "dnair" | "mofir" | "bcq" | "cql"
/// | "crr" | "sqn"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Algorithm {
    /// Advantage actor-critic (DORL's policy learner).
    A2c(A2cConfig),
    /// Proximal policy optimisation (clipped surrogate).
    Ppo(PpoConfig),
    /// DSRM-HRL's hierarchical fairness agent (high-level goals, low-level items).
    Hrl(HrlConfig),
    /// FCPO-style constrained PPO (Lagrangian on long-tail exposure).
    Fcpo(FcpoConfig),
    /// Double DQN with a target network and ε-greedy collection.
    Dqn(DqnConfig),
    /// Discrete soft actor-critic with twin critics and a tuned temperature.
    Sac(SacConfig),
    /// SAC4IR: discrete SAC whose fairness device is maximum entropy, with its attention state encoder.
    Sac4ir(Sac4irConfig),
    /// TD3 over items: a proto-action in item-embedding space, the best item by dot product.
    Td3(Td3Config),
    /// DNaIR: a DQN with a diversity-novelty reward term and similarity-restricted candidates.
    Dnair(DnairConfig),
    /// MoFIR: a multi-objective actor-critic conditioned on the preference ω over (utility, fairness).
    Mofir(MofirConfig),
    /// Offline, from the logged data: discrete batch-constrained Q-learning.
    Bcq(BcqConfig),
    /// Offline: conservative Q-learning.
    Cql(CqlConfig),
    /// Offline: critic-regularised regression.
    Crr(CrrConfig),
    /// Offline: self-supervised Q-learning (next-item head + Q head).
    Sqn(SqnConfig),
}

impl Default for Algorithm {
    fn default() -> Self {
        Algorithm::A2c(A2cConfig::default())
    }
}

impl Algorithm {
    /// The `kind` string.
    pub fn name(&self) -> &'static str {
        match self {
            Algorithm::A2c(_) => "a2c",
            Algorithm::Ppo(_) => "ppo",
            Algorithm::Hrl(_) => "hrl",
            Algorithm::Fcpo(_) => "fcpo",
            Algorithm::Dqn(_) => "dqn",
            Algorithm::Sac(_) => "sac",
            Algorithm::Sac4ir(_) => "sac4ir",
            Algorithm::Td3(_) => "td3",
            Algorithm::Dnair(_) => "dnair",
            Algorithm::Mofir(_) => "mofir",
            Algorithm::Bcq(_) => "bcq",
            Algorithm::Cql(_) => "cql",
            Algorithm::Crr(_) => "crr",
            Algorithm::Sqn(_) => "sqn",
        }
    }

    /// Learning rate of the tracker's own optimiser.
    pub fn tracker_lr(&self) -> f64 {
        match self {
            Algorithm::A2c(c) => c.tracker_lr,
            Algorithm::Ppo(c) => c.tracker_lr,
            Algorithm::Hrl(c) => c.tracker_lr,
            Algorithm::Fcpo(c) => c.ppo.tracker_lr,
            Algorithm::Dqn(c) => c.tracker_lr,
            Algorithm::Sac(c) => c.tracker_lr,
            Algorithm::Sac4ir(c) => c.tracker_lr,
            Algorithm::Td3(c) => c.tracker_lr,
            Algorithm::Dnair(c) => c.tracker_lr,
            Algorithm::Mofir(c) => c.tracker_lr,
            Algorithm::Bcq(c) => c.base.tracker_lr,
            Algorithm::Cql(c) => c.base.tracker_lr,
            Algorithm::Crr(c) => c.base.tracker_lr,
            Algorithm::Sqn(c) => c.base.tracker_lr,
        }
    }

    /// The paced schedule of a learner that has one (`updates_per_1k_steps`; `crate::pace`), if set.
    pub fn updates_per_1k_steps(&self) -> Option<f64> {
        match self {
            Algorithm::A2c(c) => c.updates_per_1k_steps,
            Algorithm::Ppo(c) => c.updates_per_1k_steps,
            Algorithm::Hrl(c) => c.updates_per_1k_steps,
            Algorithm::Fcpo(c) => c.ppo.updates_per_1k_steps,
            Algorithm::Sac4ir(c) => c.updates_per_1k_steps,
            Algorithm::Td3(c) => c.updates_per_1k_steps,
            Algorithm::Dnair(c) => c.updates_per_1k_steps,
            Algorithm::Mofir(c) => c.updates_per_1k_steps,
            _ => None,
        }
    }

    /// Whether the learner blocks the items an episode has shown (`mask_shown`, `crate::shown`).
    pub fn mask_shown(&self) -> bool {
        *self.clone().mask_shown_field()
    }

    /// Sets `mask_shown` (a study's switch for all its rows).
    pub fn set_mask_shown(&mut self, on: bool) {
        *self.mask_shown_field() = on;
    }

    fn mask_shown_field(&mut self) -> &mut bool {
        match self {
            Algorithm::A2c(c) => &mut c.mask_shown,
            Algorithm::Ppo(c) => &mut c.mask_shown,
            Algorithm::Hrl(c) => &mut c.mask_shown,
            Algorithm::Fcpo(c) => &mut c.ppo.mask_shown,
            Algorithm::Dqn(c) => &mut c.mask_shown,
            Algorithm::Sac(c) => &mut c.mask_shown,
            Algorithm::Sac4ir(c) => &mut c.mask_shown,
            Algorithm::Td3(c) => &mut c.mask_shown,
            Algorithm::Dnair(c) => &mut c.mask_shown,
            Algorithm::Mofir(c) => &mut c.mask_shown,
            Algorithm::Bcq(c) => &mut c.base.mask_shown,
            Algorithm::Cql(c) => &mut c.base.mask_shown,
            Algorithm::Crr(c) => &mut c.base.mask_shown,
            Algorithm::Sqn(c) => &mut c.base.mask_shown,
        }
    }

    /// The state encoder a learner adds of its own beside the tracker every row reads (SAC4IR's attention
    /// encoder), if any: studies label such a row.
    pub fn own_encoder(&self) -> Option<&'static str> {
        match self {
            Algorithm::Sac4ir(c) if c.encoder == crate::sac4ir::Sac4irEncoder::Attention => Some("attention"),
            _ => None,
        }
    }

    /// Settings out of their domain, as readable phrases (empty when valid).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        problems.extend(crate::pace::pace_problems(self.updates_per_1k_steps()));
        let (batch, repeat, gamma, lambda) = match self {
            Algorithm::A2c(c) => (c.batch_size, c.repeat_per_collect, c.gamma, c.gae_lambda),
            Algorithm::Ppo(c) => {
                if c.clip <= 0.0 {
                    problems.push("ppo clip > 0".to_string());
                }
                (c.batch_size, c.repeat_per_collect, c.gamma, c.gae_lambda)
            }
            Algorithm::Hrl(c) => {
                problems.extend(c.problems());
                return problems;
            }
            Algorithm::Fcpo(c) => {
                problems.extend(c.problems());
                if c.ppo.clip <= 0.0 {
                    problems.push("ppo clip > 0".to_string());
                }
                (c.ppo.batch_size, c.ppo.repeat_per_collect, c.ppo.gamma, c.ppo.gae_lambda)
            }
            Algorithm::Dqn(c) => return c.problems(),
            Algorithm::Sac(c) => return c.problems(),
            Algorithm::Sac4ir(c) => {
                problems.extend(c.problems());
                return problems;
            }
            Algorithm::Td3(c) => {
                problems.extend(c.problems());
                return problems;
            }
            Algorithm::Dnair(c) => {
                problems.extend(c.problems());
                return problems;
            }
            Algorithm::Mofir(c) => {
                problems.extend(c.problems());
                return problems;
            }
            Algorithm::Bcq(c) => return c.base.problems("bcq"),
            Algorithm::Cql(c) => return c.base.problems("cql"),
            Algorithm::Crr(c) => return c.base.problems("crr"),
            Algorithm::Sqn(c) => return c.base.problems("sqn"),
        };
        if batch == 0 || repeat == 0 {
            problems.push("batch_size >= 1 and repeat_per_collect >= 1".into());
        }
        if !(0.0..=1.0).contains(&gamma) || !(0.0..=1.0).contains(&lambda) {
            problems.push("gamma and gae_lambda in [0, 1]".into());
        }
        problems
    }

    /// A fresh learner for states of `state_dim` in `world` (consumes libtorch's generator: seed it first).
    pub fn build(&self, state_dim: i64, world: &World, device: Device) -> Result<Box<dyn Learner>> {
        let n_items = world.spec.n_items() as i64;
        Ok(match self {
            Algorithm::A2c(c) => Box::new(A2c::new(c.clone(), state_dim, n_items, device)?),
            Algorithm::Ppo(c) => Box::new(Ppo::new(c.clone(), state_dim, n_items, device)?),
            Algorithm::Hrl(c) => Box::new(Hrl::new(c.clone(), state_dim, world, device)?),
            Algorithm::Fcpo(c) => Box::new(Fcpo::new(c.clone(), state_dim, world, device)?),
            Algorithm::Dqn(c) => Box::new(Dqn::new(c.clone(), state_dim, n_items, device)?),
            Algorithm::Sac(c) => Box::new(Sac::new(c.clone(), state_dim, n_items, device)?),
            Algorithm::Sac4ir(c) => Box::new(Sac4ir::new(c.clone(), state_dim, n_items, device)?),
            Algorithm::Td3(c) => Box::new(Td3::new(c.clone(), state_dim, world, device)?),
            Algorithm::Dnair(c) => Box::new(Dnair::new(c.clone(), state_dim, world, device)?),
            Algorithm::Mofir(c) => Box::new(Mofir::new(c.clone(), state_dim, world, device)?),
            Algorithm::Bcq(c) => Box::new(Bcq::new(c.clone(), state_dim, world, device)?),
            Algorithm::Cql(c) => Box::new(Cql::new(c.clone(), state_dim, world, device)?),
            Algorithm::Crr(c) => Box::new(Crr::new(c.clone(), state_dim, world, device)?),
            Algorithm::Sqn(c) => Box::new(Sqn::new(c.clone(), state_dim, world, device)?),
        })
    }
}
