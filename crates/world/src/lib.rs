//! World models: what the model-based anchors (MBPO, MOPO, DORL) train their policies in.
//!
//! In DORL-codes a policy never sees the ground truth while it trains. It trains in a *simulated*
//! environment that keeps the real quit and length logic but takes its reward from a user model learned on
//! the training log, penalised for the model's uncertainty (MOPO) and rewarded for the entropy of the logged
//! behaviour (DORL) (`docs/protocol.md` §4). This crate builds those pieces from a [`dsrm_sim::World`]:
//!
//! * [`features`]: the user model's inputs per item (tag fields sharing one table, the duration feature).
//! * [`deepfm`]: one DeepFM with a log-variance head, and its `pointneg` training (§4.1).
//! * [`pairs`]: the (positive, sampled negative) training pairs of `pointneg`.
//! * [`ensemble`]: n independently trained DeepFMs; their mean prediction and max variance on the
//!   environment grid, and model 0's item embeddings for the `avg` state tracker.
//! * [`predictions`]: that grid (`matPre` / `matVar`), the artefact the simulated reward reads.
//! * [`entropy`]: DORL's entropy map over the logged sequences (§4.2), pure Rust.
//! * [`simulated`]: the penalised training reward r̃ (§4.3) with the MBPO / MOPO / DORL presets.
//! * [`mf_reward`]: a cheap plain-MF training reward, for tests and quick runs.
//!
//! libtorch threads and any global seed are process settings: call `dsrm_nn::runtime::init` once at
//! start-up. Nothing here depends on libtorch's global generator: every random draw (initialisation,
//! negatives, shuffles) comes from a seeded ChaCha8 stream, so a seed gives the same model on one thread.

pub mod deepfm;
pub mod ensemble;
pub mod entropy;
pub mod features;
pub mod ips;
pub mod mf_reward;
pub mod pairs;
pub mod predictions;
pub mod refit;
pub mod simulated;

pub use deepfm::{DeepFm, DeepFmConfig, OutputLink};
pub use ensemble::{EnsembleConfig, UserModelEnsemble};
pub use entropy::EntropyMap;
pub use features::Features;
pub use mf_reward::MfReward;
pub use pairs::TrainingPairs;
pub use predictions::Predictions;
pub use refit::{IncrementalRefit, RefitRecord};
pub use simulated::{Lambdas, SimulatedReward, WorldPenalty};

/// The identity of the code that trains and predicts user models (this crate, `dsrm-nn`, `Cargo.lock`; `build.rs`):
/// part of a cached ensemble's key, so an ensemble trained by other code is never reused.
pub const MODEL_CODE_VERSION: &str = env!("DSRM_WORLD_MODEL_CODE");

/// Errors of the world models. Shapes and ids come from data, so they are checked and reported, never
/// assumed.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    /// A libtorch call failed (shape mismatch, bad index, ...).
    #[error("libtorch: {0}")]
    Torch(#[from] dsrm_nn::tch::TchError),
    /// Saving or loading a checkpoint failed.
    #[error(transparent)]
    Nn(#[from] dsrm_nn::NnError),
    /// Fitting the plain matrix factorisation failed.
    #[error(transparent)]
    Mf(#[from] dsrm_models::MfError),
    /// The data or a setting cannot be used (empty log, ids out of range, unknown data set, ...).
    #[error("{0}")]
    Invalid(String),
    /// A checkpoint does not belong to this data or this version of the code.
    #[error("{path}: {detail}")]
    Checkpoint {
        /// The checkpoint file.
        path: std::path::PathBuf,
        /// What does not match.
        detail: String,
    },
    /// Training produced a non-finite loss.
    #[error("model {model}, epoch {epoch}: training diverged (non-finite loss); lower the learning rate")]
    Diverged {
        /// Ensemble member (0 for a model trained alone).
        model: usize,
        /// Epoch whose loss was not finite.
        epoch: usize,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, WorldError>;

/// Shorthand for [`WorldError::Invalid`].
pub(crate) fn invalid(detail: impl Into<String>) -> WorldError {
    WorldError::Invalid(detail.into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_model_code_version_is_sixteen_hex_digits() {
        let v = super::MODEL_CODE_VERSION;
        assert!(v.len() == 16 && v.chars().all(|c| c.is_ascii_hexdigit()), "{v}");
        println!("world-model code version {v}");
    }
}
