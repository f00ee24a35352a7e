//! The evaluation protocol of the anchors (`docs/protocol.md` §2), plus what they lacked: seeds with
//! confidence intervals and the fairness metrics.
//!
//! * [`mode`]: FB (repeats allowed), NX_0 (no repeats), NX_k (no repeats, exactly k steps).
//! * [`rollout`]: runs a [`dsrm_policy::Policy`] for N episodes in one mode and returns the trajectories.
//! * [`context`]: the per-item facts metrics need (long-tail split, dominant categories, similarity).
//! * [`summary`]: mean ± 95% CI over seeds.
//!
//! Evaluation only reads trajectories; it never trains anything.

pub mod context;
pub mod mode;
pub mod rollout;
pub mod summary;

pub use context::{DominantSource, MetricInputs};
pub use mode::{Mode, ModeName};
pub use rollout::{evaluate, EvalConfig, EvalRun, ModeResult, Trajectory};
