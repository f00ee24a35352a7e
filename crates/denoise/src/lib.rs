//! DSRM, the Denoising State Representation Module: purifies the noisy observed user state o_t before the RL
//! agent acts on it (`docs/design.md` §4.3; defaults §6 rows 1–8).
//!
//! Pipeline position: data -> sim -> state -> **denoise** -> agents -> evaluation. Agents hold a
//! `Box<dyn` [`Denoiser`]`>` and never know which one it is:
//!
//! * [`ddpm`]: the DSRM, a DDPM over states that purifies by deterministic forward-then-reverse (the default).
//! * [`ddim`]: k-step deterministic DDIM on the same trained DSRM (cheaper purification).
//! * [`distilled`]: a one-step student trained to match the DSRM's purification.
//! * [`vae`]: a small VAE, the non-diffusion alternative.
//! * [`flow`]: conditional flow matching (rectified flow), purifying in a few Euler steps or one.
//! * [`identity`]: the "w/o DSRM" ablation.
//! * [`filter`]: history filters (T-CE, R-CE), the heuristic denoisers of the ablation, in front of a tracker.
//! * [`joint`]: a trainable copy of a pretrained DSRM, for joint fine-tuning with the RL loss (λ_D).
//!
//! [`schedule`] holds the noise schedules, [`train`] the shared training loop, [`config`] the `[denoiser]` table
//! with [`build`] and [`load`], and [`latency`] the purification benchmark. Purification is compiled into a few
//! libtorch calls per step (`chain.rs`), because it runs at every decision of every episode.
//!
//! Shapes come from data: a malformed input is a [`DenoiseError`] from [`Denoiser::try_purify`], never a panic
//! inside libtorch.

pub mod batch_one;
pub(crate) mod chain;
mod condition;
pub mod config;
pub mod ddim;
pub mod ddpm;
pub mod distilled;
pub mod filter;
pub mod flow;
pub mod identity;
pub mod joint;
pub mod latency;
pub mod schedule;
pub mod stage;
pub mod train;
pub mod vae;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

pub use config::{build, build_towards, from_checkpoint, load, refit, Built, DenoiserConfig};
pub use ddim::{Ddim, DdimConfig};
pub use ddpm::{Ddpm, DdpmConfig, MeanType, TimestepSampling};
pub use distilled::{Distilled, DistilledConfig, StudentConfig};
pub use dsrm_nn::mlp::Activation;
pub use flow::{Flow, FlowConfig, FlowStart};
pub use identity::{Identity, IdentityConfig};
pub use joint::JointDdpm;
pub use latency::{measure_latency, LatencyStats};
pub use schedule::{Schedule, ScheduleConfig, ScheduleKind};
pub use train::{EpochLog, FitReport, TrainConfig};
pub use vae::{Vae, VaeConfig};

use dsrm_nn::tch::{Device, Kind, TchError, Tensor};
use std::path::{Path, PathBuf};

/// Maps an observed state to a purified one. Implementations are frozen: purification records no autograd
/// graph and changes no state, so one denoiser serves every episode of a run.
pub trait Denoiser: Send {
    /// `[B, input_dim]` observed states (the history-summary condition, if any, after the state) ->
    /// `[B, output_dim]` purified states, on the denoiser's device, f32. Never aliases the input. A wrong shape
    /// or a non-float tensor is an error.
    fn try_purify(&self, states: &Tensor) -> Result<Tensor>;

    /// [`try_purify`](Self::try_purify) for callers whose shapes are fixed by construction; panics on an error,
    /// like tch's non-`f_` calls.
    fn purify(&self, states: &Tensor) -> Tensor {
        match self.try_purify(states) {
            Ok(purified) => purified,
            Err(e) => panic!("{}: {e}", self.name()),
        }
    }

    /// Name for logs and benchmark tables, with the settings that matter (e.g. `ddpm(T=10 T'=10 s=0.1 …)`).
    fn name(&self) -> String;

    /// Network evaluations per purification (T' for the DSRM, k for DDIM, 1 distilled, K Euler steps for the
    /// flow, 0 identity).
    fn steps(&self) -> usize;

    /// Width of the input: d, or d + cond_dim for a conditioned DSRM.
    fn input_dim(&self) -> i64;

    /// d, the width of the purified state.
    fn output_dim(&self) -> i64;

    /// Width of the condition the caller appends to the state (0: none).
    fn cond_dim(&self) -> i64 {
        self.input_dim() - self.output_dim()
    }

    /// A copy that purifies one state at a time without libtorch ([`batch_one`]), for a server; `None` (the
    /// default) where the denoiser has none.
    fn batch_one(&self) -> Result<Option<Box<dyn batch_one::BatchOneDenoiser>>> {
        Ok(None)
    }

    /// The denoiser as checkpoint parts: named weights and metadata (kind, settings, training report).
    /// [`from_checkpoint`] rebuilds any kind from them, so callers can store a denoiser inside a larger file.
    fn checkpoint(&self) -> (Vec<(String, Tensor)>, serde_json::Value);

    /// Writes [`checkpoint`](Self::checkpoint) to one atomic, checksummed file (`dsrm_nn::checkpoint`);
    /// [`load`] reads any kind back.
    fn save(&self, path: &Path) -> Result<()> {
        let (tensors, meta) = self.checkpoint();
        Ok(dsrm_nn::checkpoint::save(path, &tensors, &meta)?)
    }
}

/// Agents that derive `Debug` can hold a `Box<dyn Denoiser>`; it prints as its name.
impl std::fmt::Debug for dyn Denoiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum DenoiseError {
    #[error("libtorch: {0}")]
    Torch(#[from] TchError),
    #[error(transparent)]
    Nn(#[from] dsrm_nn::NnError),
    /// Input states of the wrong shape or kind.
    #[error("states: {0}")]
    Shape(String),
    /// A configuration value out of its domain.
    #[error("denoiser config: {0}")]
    Config(String),
    /// Training or validation data that cannot be used.
    #[error("training data: {0}")]
    Data(String),
    /// A minibatch loss that is NaN or infinite.
    #[error("{phase}: training diverged in epoch {epoch} (loss {loss})")]
    Diverged { phase: String, epoch: usize, loss: f64 },
    /// A checkpoint that is intact but not a denoiser this crate can rebuild.
    #[error("{path}: {detail}")]
    Checkpoint { path: PathBuf, detail: String },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, DenoiseError>;

/// Tag in every checkpoint's metadata, checked on load.
pub(crate) const CHECKPOINT_FORMAT: &str = "dsrm-denoise/1";

/// Checks `[B, width]` float states and returns them as f32 on `device` (`None`: where they are); the same
/// tensor when nothing needs converting.
pub(crate) fn check_states(states: &Tensor, width: i64, device: Option<Device>) -> Result<Tensor> {
    if !states.defined() {
        return Err(DenoiseError::Shape("undefined tensor".into()));
    }
    if states.dim() != 2 || states.size()[1] != width {
        return Err(DenoiseError::Shape(format!("expected [B, {width}], got {:?}", states.size())));
    }
    let mut out = states.shallow_clone();
    match states.kind() {
        Kind::Float => {}
        Kind::Double | Kind::Half | Kind::BFloat16 => out = out.f_to_kind(Kind::Float)?,
        other => return Err(DenoiseError::Shape(format!("expected floating-point states, got {other:?}"))),
    }
    if let Some(device) = device.filter(|d| *d != out.device()) {
        out = out.f_to_device(device)?;
    }
    Ok(out)
}

/// Checks that checkpoint metadata is this crate's and of `kind`.
pub(crate) fn meta_kind(meta: &serde_json::Value, kind: &str) -> Result<()> {
    if meta["format"] != CHECKPOINT_FORMAT || meta["kind"] != kind {
        return Err(DenoiseError::Config(format!(
            "expected a {CHECKPOINT_FORMAT} checkpoint of kind {kind}, found format {} kind {}",
            meta["format"], meta["kind"]
        )));
    }
    Ok(())
}

/// Names the file in a rebuild error.
pub(crate) fn at_path(path: &Path, e: DenoiseError) -> DenoiseError {
    match e {
        DenoiseError::Config(detail) | DenoiseError::Shape(detail) => {
            DenoiseError::Checkpoint { path: path.to_path_buf(), detail }
        }
        other => other,
    }
}
