//! The math of discrete soft actor-critic (Haarnoja et al. 2018; for discrete actions Christodoulou 2019),
//! with the expectations over actions computed exactly as sums over the catalogue:
//!
//! ```text
//! V(s)   = Σ_a π(a|s) [Q(s, a) − α log π(a|s)]                  # soft state value
//! L_π    = mean_B Σ_a π(a|s) [α log π(a|s) − Q(s, a)]           # soft policy loss (Q without gradient)
//! H(π)   = −Σ_a π(a|s) log π(a|s)                               # entropy, mean over the batch
//! L_α    = −log α · (H_target − H(π))                          # α rises while the entropy is below target
//! ```
//!
//! SAC (`sac.rs`) and SAC4IR (`sac4ir.rs`) both read it from here. SAC's results are byte-identical to those it
//! gave with its own inline copy of these lines (checked with `scripts/behaviour-hashes.sh`).

use crate::Result;
use dsrm_nn::tch::{Kind, Tensor};

/// Σ over the last (item) dimension.
fn sum_items(x: &Tensor) -> Result<Tensor> {
    Ok(x.f_sum_dim_intlist([-1i64].as_slice(), false, Kind::Float)?)
}

/// `[B]` soft values Σ_a π(a) [Q(a) − α log π(a)] of `[B, n]` log-probabilities and Q-values.
pub(crate) fn soft_value(log_p: &Tensor, q: &Tensor, alpha: f64) -> Result<Tensor> {
    sum_items(&log_p.f_exp()?.f_mul(&q.f_sub(&log_p.f_mul_scalar(alpha)?)?)?)
}

/// The scalar soft policy loss mean_B Σ_a π(a) [α log π(a) − Q(a)]; `q` should carry no gradient.
pub(crate) fn soft_policy_loss(log_p: &Tensor, q: &Tensor, alpha: f64) -> Result<Tensor> {
    Ok(sum_items(&log_p.f_exp()?.f_mul(&log_p.f_mul_scalar(alpha)?.f_sub(q)?)?)?.f_mean(Kind::Float)?)
}

/// The mean entropy of the rows of `[B, n]` log-probabilities, without gradient.
pub(crate) fn mean_entropy(log_p: &Tensor) -> Result<Tensor> {
    let log_p = log_p.f_detach()?;
    Ok(sum_items(&log_p.f_exp()?.f_mul(&log_p)?)?.f_neg()?.f_mean(Kind::Float)?)
}

/// The temperature loss −log α · (H_target − H): its gradient step raises α while the entropy `entropy` (a
/// scalar without gradient) is below `target`, and lowers it above.
pub(crate) fn temperature_loss(log_alpha: &Tensor, entropy: &Tensor, target: f64) -> Result<Tensor> {
    let gap = entropy.f_neg()?.f_add_scalar(target)?;
    Ok(log_alpha.f_mul(&gap)?.f_neg()?.f_mean(Kind::Float)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_policy_values_and_entropy() {
        let n = 4i64;
        let log_p = Tensor::full([2, n], -(n as f64).ln(), (Kind::Float, dsrm_nn::tch::Device::Cpu));
        let q = Tensor::from_slice(&[1f32, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0]).view([2, n]);
        let v = Vec::<f32>::try_from(soft_value(&log_p, &q, 0.5).unwrap()).unwrap();
        // mean Q + α ln n
        let ln4 = (4f64).ln();
        assert!((f64::from(v[0]) - (2.5 + 0.5 * ln4)).abs() < 1e-5 && (f64::from(v[1]) - 0.5 * ln4).abs() < 1e-5);
        let h = mean_entropy(&log_p).unwrap().double_value(&[]);
        assert!((h - ln4).abs() < 1e-5);
        let l = soft_policy_loss(&log_p, &q, 0.5).unwrap().double_value(&[]);
        assert!((l - (-(0.5 * ln4) - 1.25)).abs() < 1e-5, "{l}");
        // Entropy below the target: the loss falls as log α rises.
        let log_alpha = Tensor::zeros([1], (Kind::Float, dsrm_nn::tch::Device::Cpu)).set_requires_grad(true);
        temperature_loss(&log_alpha, &Tensor::from(1.0f32), 2.0).unwrap().backward();
        assert!(log_alpha.grad().double_value(&[0]) < 0.0);
    }
}
