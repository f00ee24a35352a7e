//! Loss-based denoising of implicit feedback (Wang, Feng, He, Nie & Chua, WSDM 2021, "Denoising Implicit
//! Feedback for Recommendation"): noisy interactions (clicks on items the user does not like) are harder to
//! fit, so early in training they carry the largest log-loss. Two ways of keeping them out of the model:
//!
//! ```text
//! T-CE (truncated):  at step T drop the ε(T) share of samples with the largest loss,
//!                    ε(T) = min(ε_max · T / T_warm, ε_max)
//! R-CE (reweighted): weigh each sample's loss by the model's own (detached) belief in its label,
//!                    ω = ŷ^β for a positive, (1 − ŷ)^β for a negative
//! ```
//!
//! Adapted to this crate's SGD matrix factorisation (one update per row, so there are no minibatches to
//! truncate): T-CE's step is the epoch — before each pass the current model's loss of every row is computed
//! and the ε(e) share with the largest loss sits the pass out (ties at the cut are kept, so at most that
//! share is dropped); R-CE weighs each row's gradient by ω from the prediction taken just before its update.
//! `MatrixFactorization::fit_denoised` applies either; the history filters of the DSRM ablation
//! (`dsrm_denoise::filter`) train their user model with it.

pub use crate::truncation::truncation_threshold;
use serde::{Deserialize, Serialize};

/// Which denoising loss, with its settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DenoisingLoss {
    /// T-CE: drop the largest-loss rows, at a rate that grows to `drop_rate`.
    Truncated {
        /// ε_max, the share of rows dropped once warmed up (Wang et al. search 0.05–0.2). Default 0.2.
        #[serde(default = "default_drop_rate")]
        drop_rate: f64,
        /// Epochs over which the rate grows linearly from 0 to ε_max (Wang et al.'s ε_N, in epochs).
        /// Default 5.
        #[serde(default = "default_warmup")]
        warmup_epochs: usize,
    },
    /// R-CE: weigh each row by the model's belief in its label, to the power β.
    Reweighted {
        /// β (Wang et al. search 0.05–1; 0 is plain log-loss). Default 0.25.
        #[serde(default = "default_beta")]
        beta: f64,
    },
}

fn default_drop_rate() -> f64 {
    0.2
}

fn default_warmup() -> usize {
    5
}

fn default_beta() -> f64 {
    0.25
}

impl DenoisingLoss {
    /// T-CE with its defaults.
    pub fn truncated() -> Self {
        DenoisingLoss::Truncated { drop_rate: default_drop_rate(), warmup_epochs: default_warmup() }
    }

    /// R-CE with its defaults.
    pub fn reweighted() -> Self {
        DenoisingLoss::Reweighted { beta: default_beta() }
    }

    /// Settings out of their domain, as readable phrases (empty when valid).
    pub fn problems(&self) -> Vec<String> {
        match *self {
            DenoisingLoss::Truncated { drop_rate, .. } if !(0.0..1.0).contains(&drop_rate) => {
                vec![format!("drop_rate must lie in [0, 1), got {drop_rate}")]
            }
            DenoisingLoss::Reweighted { beta } if !(beta.is_finite() && beta >= 0.0) => {
                vec![format!("beta must be finite and >= 0, got {beta}")]
            }
            _ => Vec::new(),
        }
    }

    /// T-CE's ε(e) for epoch `epoch` (0-based; epoch 0 drops nothing); 0 for R-CE.
    pub fn drop_rate_at(&self, epoch: usize) -> f64 {
        match *self {
            DenoisingLoss::Truncated { drop_rate, warmup_epochs } => {
                if warmup_epochs == 0 {
                    drop_rate
                } else {
                    drop_rate * (epoch as f64 / warmup_epochs as f64).min(1.0)
                }
            }
            DenoisingLoss::Reweighted { .. } => 0.0,
        }
    }

    /// R-CE's ω for a row with label `target` (0 or 1) and prediction `p`; 1 for T-CE.
    pub fn weight(&self, target: f64, p: f64) -> f64 {
        match *self {
            DenoisingLoss::Reweighted { beta } => {
                let belief = if target >= 0.5 { p } else { 1.0 - p };
                belief.max(0.0).powf(beta)
            }
            DenoisingLoss::Truncated { .. } => 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drop_rate_grows_to_its_maximum_over_the_warm_up() {
        let t = DenoisingLoss::Truncated { drop_rate: 0.2, warmup_epochs: 4 };
        let rates: Vec<f64> = (0..6).map(|e| t.drop_rate_at(e)).collect();
        assert_eq!(rates, [0.0, 0.05, 0.1, 0.15000000000000002, 0.2, 0.2]);
        assert_eq!(DenoisingLoss::reweighted().drop_rate_at(9), 0.0);
    }

    #[test]
    fn reweighting_trusts_labels_the_model_agrees_with() {
        let r = DenoisingLoss::Reweighted { beta: 0.5 };
        assert!((r.weight(1.0, 0.81) - 0.9).abs() < 1e-12);
        assert!((r.weight(0.0, 0.19) - 0.9).abs() < 1e-12);
        assert!(r.weight(1.0, 0.04) < r.weight(1.0, 0.64));
        assert_eq!(DenoisingLoss::Reweighted { beta: 0.0 }.weight(1.0, 0.3), 1.0);
        assert!(!DenoisingLoss::Truncated { drop_rate: 1.0, warmup_epochs: 1 }.problems().is_empty());
        assert!(!DenoisingLoss::Reweighted { beta: -1.0 }.problems().is_empty());
    }
}
