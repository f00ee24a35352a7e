//! Step counters stored in checkpoints as scalar tensors (gradient steps, target-network copies).

use crate::{AgentError, Result};
use dsrm_nn::tch::Tensor;

/// The gradient-step counter as a checkpoint tensor, and back.
pub(crate) fn counter_tensor(name: &str, value: u64) -> (String, Tensor) {
    (name.to_string(), Tensor::from(value as i64))
}

pub(crate) fn restore_counter(name: &str, tensors: &[(String, Tensor)]) -> Result<u64> {
    let t = tensors
        .iter()
        .find(|(n, _)| n == name)
        .ok_or_else(|| AgentError::Config(format!("the checkpoint lacks {name}")))?;
    Ok(t.1.f_int64_value(&[])? as u64)
}
