//! Loss terms shared by the policy-gradient agents (A2C, PPO, FCPO, HRL), and the check every loss passes.
//!
//! ```text
//! log π(a|s), H(π(·|s))          from logits (entropy with gradients only when it is weighted)
//! Â = (A − mean_B A) / (std_B A + 1e-8)                         # per-minibatch normalisation
//! L_clip = −mean_B min(ρ Â, clip(ρ, 1 − ε, 1 + ε) Â),  ρ = exp(log π − log π_old)
//! approx KL = mean_B (log π_old − log π),  clip fraction = share of |ρ − 1| > ε
//! ```

use crate::rollout::Rollout;
use crate::{AgentError, Result};
use dsrm_nn::tch::{self, Device, Kind, Tensor};

/// Per-step tensors of a minibatch.
pub(crate) struct Minibatch {
    pub actions: Tensor,
    pub advantages: Tensor,
    pub returns: Tensor,
    pub old_log_probs: Tensor,
}

impl Minibatch {
    pub(crate) fn new(rollout: &Rollout, steps: &[usize], device: Device) -> Result<Self> {
        let pick = |v: &[f32]| -> Result<Tensor> {
            let x: Vec<f32> = steps.iter().map(|&s| v[s]).collect();
            Ok(Tensor::from_slice(&x).f_to_device(device)?)
        };
        let actions: Vec<i64> = steps.iter().map(|&s| i64::from(rollout.actions[s])).collect();
        Ok(Self {
            actions: Tensor::from_slice(&actions).f_to_device(device)?.f_unsqueeze(1)?,
            advantages: pick(&rollout.advantages)?,
            returns: pick(&rollout.returns)?,
            old_log_probs: pick(&rollout.log_probs)?,
        })
    }
}

/// log π(a|s) of the taken actions, and the mean entropy of π(·|s), from logits. The entropy joins the
/// autograd graph only when it is weighted (`ent_coef != 0`): with the anchors' 0 it is logged, computed
/// without gradients, and the backward pass skips its two passes over the `[B, n_items]` probabilities.
pub(crate) fn log_prob_and_entropy(logits: &Tensor, actions: &Tensor, with_grad: bool) -> Result<(Tensor, Tensor)> {
    let log_p = logits.f_log_softmax(-1, Kind::Float)?;
    let chosen = log_p.f_gather(1, actions, false)?.f_squeeze_dim(1)?;
    let entropy = |log_p: &Tensor| -> Result<Tensor> {
        let per_row = log_p.f_exp()?.f_mul(log_p)?.f_sum_dim_intlist([-1i64].as_slice(), false, Kind::Float)?;
        Ok(per_row.f_mean(Kind::Float)?.f_neg()?)
    };
    let entropy = if with_grad { entropy(&log_p)? } else { tch::no_grad(|| entropy(&log_p.detach()))? };
    Ok((chosen, entropy))
}

/// Tianshou's per-minibatch advantage normalisation (`advantage_normalization`); a single step is left as is.
pub(crate) fn normalise_advantages(adv: &Tensor) -> Result<Tensor> {
    if adv.size()[0] > 1 {
        let (mean, std) = (adv.f_mean(Kind::Float)?, adv.f_std(true)?);
        Ok(adv.f_sub(&mean)?.f_div(&std.f_add_scalar(1e-8)?)?)
    } else {
        Ok(adv.shallow_clone())
    }
}

/// PPO's clipped surrogate objective, negated for minimisation, with its diagnostics.
pub(crate) struct ClippedSurrogate {
    /// −mean_B min(ρ A, clip(ρ, 1 − ε, 1 + ε) A).
    pub loss: Tensor,
    /// mean_B (log π_old − log π), an estimate of KL(π_old ‖ π).
    pub approx_kl: f64,
    /// Share of steps whose ratio left [1 − ε, 1 + ε].
    pub clip_fraction: f64,
}

/// The clipped surrogate of `log_prob` against the collection-time `old` log-probabilities on advantages
/// `adv` (already normalised if wanted), clip range `eps`.
pub(crate) fn clipped_surrogate(log_prob: &Tensor, old: &Tensor, adv: &Tensor, eps: f64) -> Result<ClippedSurrogate> {
    let log_ratio = log_prob.f_sub(old)?;
    let ratio = log_ratio.f_exp()?;
    let surr1 = ratio.f_mul(adv)?;
    let surr2 = ratio.f_clamp(1.0 - eps, 1.0 + eps)?.f_mul(adv)?;
    let loss = surr1.f_minimum(&surr2)?.f_mean(Kind::Float)?.f_neg()?;
    let approx_kl = log_ratio.f_neg()?.f_mean(Kind::Float)?.f_double_value(&[])?;
    let clip_fraction =
        ratio.f_sub_scalar(1.0)?.f_abs()?.f_gt(eps)?.f_to_kind(Kind::Float)?.f_mean(Kind::Float)?.f_double_value(&[])?;
    Ok(ClippedSurrogate { loss, approx_kl, clip_fraction })
}

/// Fails on a non-finite loss, naming the algorithm and the step.
pub(crate) fn finite(name: &str, loss: &Tensor, steps: u64) -> Result<f64> {
    let v = loss.f_double_value(&[])?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(AgentError::Diverged(format!("{name} loss {v} after {steps} gradient steps")))
    }
}
