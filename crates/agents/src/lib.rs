//! RL agents for interactive recommendation, trained the way the anchors train them: in a *simulated*
//! environment (the real quit and length logic, a world-model reward) or, for the offline agents, from the
//! logged data, and evaluated after every epoch on the ground truth in FB / NX_0 / NX_k (`docs/protocol.md`
//! §2, §4.3, §5).
//!
//! * [`hrl`]: DSRM-HRL's hierarchical fairness agent (high-level goals every c steps, low-level items).
//! * [`fcpo`], [`shaping`]: the fairness baselines (constrained PPO; reward shaping around any reward).
//! * [`a2c`], [`ppo`]: one algorithm per file — hyper-parameters at the top, the update read top to bottom.
//! * [`dqn`], [`sac`], [`td3`]: off-policy agents trained online in the simulated environment (double DQN;
//!   discrete SAC; TD3 with a proto-action in item-embedding space); [`dnair`]: DNaIR, a DQN with a
//!   diversity-novelty reward term and candidates restricted to the last item's neighbours; [`sac4ir`]:
//!   SAC4IR, a discrete SAC whose fairness device is maximum entropy, with its own attention state encoder.
//! * [`mofir`]: MoFIR, a multi-objective actor-critic conditioned on the preference ω over (utility,
//!   long-tail exposure): one trained model, a front of policies by sweeping ω.
//! * [`bcq`], [`cql`], [`crr`], [`sqn`]: offline (batch) agents learned from the logged training data only.
//! * [`replay`]: the off-policy buffer of whole episodes (filled online, or from the log cut by the quit rule),
//!   n-step transitions, and collection with any action rule; [`qnet`]: their score networks;
//!   [`scored_policy`]: a frozen off-policy agent for the evaluation protocol.
//! * [`actor_critic`]: the networks both share (DORL's tianshou `Net` + `Actor` + `Critic`), and the
//!   state tracker with its own optimiser, trained jointly through the states.
//! * [`rollout`]: collecting whole episodes in many parallel training environments, and GAE.
//! * [`rl_policy`]: a trained agent as a [`dsrm_policy::Policy`], for the evaluation protocol.
//! * [`learner`]: the trait every algorithm implements for the trainer, and the `[train.algorithm]` registry.
//! * Shared learning math, in files named for it: [`update_stats`], [`item_factors`] (normalised MF item
//!   embeddings of the training log), [`trained_tracker`] (the state encoder an
//!   agent reads — any `dsrm_state::StateTracker`, the DSRM stage's purified tracker included — with its own
//!   optimiser, and the joint step), and the crate-private `losses` (log π, entropy, the clipped surrogate),
//!   `td` (temporal-difference targets), `soft_q` (discrete soft actor-critic: soft value, policy and
//!   temperature losses), `step_counter` and `ppo_update` (PPO's update, shared by PPO and
//!   FCPO). No algorithm file imports another algorithm file.
//!
//! Pipeline position: data -> sim -> state -> denoise -> **agents** -> train (`dsrm-train`: epochs,
//! evaluation, checkpoints, resume). This crate depends on neither the evaluation protocol nor the denoisers.
//!
//! Where this differs from DORL-codes (tianshou 0.4 A2C) and why:
//!
//! * Model selection on a validation user split (never on test users); the anchors' "best" is taken on the
//!   test environment. Evaluation runs on held-out users only; training still draws all users, as the
//!   anchors' simulated environment does.
//! * Every epoch's evaluation meets the same users (one evaluation seed), so epochs are compared on common
//!   random numbers; the anchors draw fresh users each epoch.
//! * Collection-time values and log-probabilities are stored and reused by the update; tianshou recomputes
//!   them in one batched pass right after collection, with the same weights (identical up to float rounding).
//! * Actions are drawn from the softmax with the run's ChaCha stream, minibatches are shuffled with it; the
//!   anchors use torch's and numpy's generators. Results are reproducible per seed, not draw-for-draw equal
//!   to the anchors'.
//! * EasyRL4Rec's random initial item (its preset's `random_initial_item`) is not shown to the tracker.
//! * Entropy enters the loss only when `ent_coef != 0` (with DORL's 0 it is logged, not differentiated).

pub mod a2c;
pub mod actor_critic;
pub mod bcq;
pub mod cql;
pub mod crr;
pub mod dnair;
pub mod dqn;
pub mod fcpo;
pub mod heuristic_policy;
pub mod hrl;
pub mod item_factors;
pub mod learner;
mod losses;
pub mod mofir;
mod pace;
pub mod ppo;
mod ppo_update;
pub mod qnet;
pub mod replay;
pub mod rl_policy;
pub mod rollout;
pub mod sac;
pub mod sac4ir;
pub mod scored_policy;
pub mod shaping;
pub mod shown;
mod soft_q;
pub mod sqn;
mod step_counter;
mod td;
pub mod td3;
pub mod trained_tracker;
pub mod update_stats;

#[cfg(any(test, feature = "test-support"))]
pub mod test_support;

pub use a2c::{A2c, A2cConfig};
pub use actor_critic::ActorCritic;
pub use fcpo::{Fcpo, FcpoConfig, FcpoCost};
pub use heuristic_policy::HeuristicPolicy;
pub use hrl::{GoalType, Hrl, HrlConfig};
pub use learner::{Algorithm, EvalPolicy, Hierarchical, Iteration, Learner, TrainingEnv};
pub use ppo::{Ppo, PpoConfig};
pub use rl_policy::RlPolicy;
pub use rollout::{collect, Rollout, RolloutConfig};
pub use shaping::{RewardShaping, ShapedReward};
pub use trained_tracker::TrainedTracker;
pub use update_stats::UpdateStats;

/// Errors of training and evaluating agents.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A libtorch call failed (shapes, devices).
    #[error("libtorch: {0}")]
    Torch(#[from] dsrm_nn::tch::TchError),
    /// Saving or loading a checkpoint failed (I/O, damaged file, mismatched variables).
    #[error(transparent)]
    Nn(#[from] dsrm_nn::NnError),
    /// A setting out of its domain.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A non-finite loss.
    #[error("training diverged: {0}; lower the learning rate")]
    Diverged(String),
    /// The state tracker refused a batch or a reward range.
    #[error("state tracker: {0}")]
    State(#[from] dsrm_state::StateError),
    /// A record could not be (de)serialised.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, AgentError>;
