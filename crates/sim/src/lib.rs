//! The anchor simulators of interactive recommendation (DORL-codes / EasyRL4Rec `KuaiEnv-v0`,
//! `KuaiRand-v0`, and the Coat environment), re-implemented step for step so that the same user and action
//! sequence gives the same rewards, done flags and lengths (`docs/protocol.md` §1).
//!
//! * [`ground_truth`]: the user x item reward table (KuaiRec's capped, mean-filled small matrix; a file or an
//!   MF completion for KuaiRand-Pure and Coat).
//! * [`quit`]: the category-window quit rule with its shrinking-window quirk, and Coat's distance rule.
//! * [`env`]: one episode at a time, exactly the anchors' `step` order.
//! * [`vec_env`]: many episodes at once, no per-step allocation: the fast path for rollouts and benchmarks.
//! * [`preset`]: the published settings (`dorl-paper`, `easyrl4rec-paper`, `cirs-paper`).
//! * [`world`]: builds an environment plus the dense training log and per-item facts from loaded data.
//!
//! The simulator knows nothing of policies or metrics.

pub mod env;
pub mod ground_truth;
pub mod mechanisms;
pub mod preset;
pub mod quit;
pub mod reward_model;
pub mod tags;
pub mod user_stream;
pub mod vec_env;
pub mod world;

pub use env::{Env, EnvSpec, Step};
pub use ground_truth::RewardTable;
pub use mechanisms::{Mechanisms, Population};
pub use preset::{EnvConfig, EnvSettings, PopularityRule, Preset};
pub use quit::{Ending, PopularityQuit, QuitRule};
pub use reward_model::{GroundTruthReward, RewardModel};
pub use tags::TagMasks;
pub use user_stream::{UserStream, UserStreamKind};
pub use vec_env::VecEnv;
pub use world::World;

/// Errors building an environment from data.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Data(#[from] dsrm_data::DataError),
    #[error("model fit failed: {0}")]
    Model(String),
    #[error("{0}")]
    Invalid(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, SimError>;

#[cfg(feature = "test-support")]
pub mod test_support;
