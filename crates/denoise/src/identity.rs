//! `identity`: the "w/o DSRM" ablation (`docs/design.md` §4.5): the policy sees the observed state o_t itself.
//!
//! It sits behind the same [`Denoiser`] trait as the real purifiers, so an agent is built the same way with and
//! without DSRM and the ablation differs in one config line.

use crate::{check_states, meta_kind, Denoiser, Result};
use dsrm_nn::tch::Tensor;
use serde::{Deserialize, Serialize};

/// Settings of `kind = "identity"` (none: the state width comes from the data).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {}

/// Returns its input (a copy: purified states never alias the caller's tensor).
#[derive(Debug, Clone)]
pub struct Identity {
    dim: i64,
}

impl Identity {
    /// An identity over `[B, dim]` states.
    pub fn new(dim: i64) -> Self {
        Self { dim }
    }

    pub(crate) fn from_meta(meta: &serde_json::Value) -> Result<Self> {
        meta_kind(meta, "identity")?;
        let dim = meta["dim"]
            .as_i64()
            .filter(|d| *d >= 1)
            .ok_or_else(|| crate::DenoiseError::Config("identity checkpoint: bad or missing dim".into()))?;
        Ok(Self { dim })
    }
}

impl Denoiser for Identity {
    fn try_purify(&self, states: &Tensor) -> Result<Tensor> {
        Ok(check_states(states, self.dim, None)?.f_detach_copy()?)
    }

    fn name(&self) -> String {
        "identity".into()
    }

    fn batch_one(&self) -> Result<Option<Box<dyn crate::batch_one::BatchOneDenoiser>>> {
        Ok(Some(Box::new(crate::batch_one::Unchanged { dim: self.dim as usize })))
    }

    fn steps(&self) -> usize {
        0
    }

    fn input_dim(&self) -> i64 {
        self.dim
    }

    fn output_dim(&self) -> i64 {
        self.dim
    }

    /// Writes a checkpoint with no tensors, so every run directory has a denoiser file to load.
    fn checkpoint(&self) -> (Vec<(String, Tensor)>, serde_json::Value) {
        let meta = serde_json::json!({ "format": crate::CHECKPOINT_FORMAT, "kind": "identity", "dim": self.dim });
        (vec![], meta)
    }
}
