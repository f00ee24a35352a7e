//! T-CE and R-CE as history filters (Wang, Feng, He, Nie & Chua, WSDM 2021, "Denoising Implicit Feedback for
//! Recommendation"): a user model trained with a denoising loss learns the clean clicks first and is slow to
//! believe the noisy ones, so the interactions it believes least are the likeliest noise; the state drops them.
//!
//! ```text
//! clicks, negatives                                              (super::implicit)
//! f         = logistic MF fitted on clicks (1) and negatives (0) with
//!               T-CE: the ε(e) share of rows with the largest loss sits epoch e out, ε(e) = ε · min(e / e_warm, 1)
//!               R-CE: each row's gradient weighted by f^β (click) or (1 − f)^β (negative)
//!             (dsrm_models::denoising_loss; ε = drop_rate, e_warm = warmup_epochs)
//! τ         = the cut above which the ε share of clicks with the largest −ln f lies
//! keep(u, i, r) ⇔ −ln f(u, i) ≤ τ        users or items outside the model: kept
//! ```
//!
//! The reward r is not read: in implicit feedback the interaction itself is the click, and which clicks are
//! noise is what the denoised model says. On this project's data the log is popularity-biased, so the
//! interactions dropped are mostly with items the log rarely shows — the ablation's point is whether such a
//! heuristic helps the state as the DSRM does (the paper reports it does not: "HRL + R-CE" Len 15.2 against
//! HRL's 23.2 on KuaiRec).

use super::implicit::{belief_cut, implicit_feedback};
use super::{FilterKind, HistoryFilter, HistoryFilterConfig};
use crate::DenoiseError;
use dsrm_models::{DenoisingLoss, MatrixFactorization, MfConfig, MfLoss};
use dsrm_sim::World;
use serde::Serialize;

/// What the fitted filter is, for the run's logs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LossFilterStats {
    /// `tce` or `rce`.
    pub kind: &'static str,
    /// Distinct clicks and sampled negatives the user model was fitted on.
    pub clicks: usize,
    pub negatives: usize,
    /// The least belief f(u, i) a kept interaction has (e^{−τ}).
    pub min_belief: f64,
    /// Share of the training clicks the filter would drop (at most `drop_rate`; ties at the cut are kept).
    pub dropped_clicks: f64,
    /// The user model's mean training loss in its last epoch.
    pub final_loss: f64,
}

/// A fitted T-CE or R-CE filter.
#[derive(Debug, Clone)]
pub struct LossBasedFilter {
    kind: FilterKind,
    mf: MatrixFactorization,
    min_belief: f64,
    stats: LossFilterStats,
}

impl LossBasedFilter {
    /// Fits the user model on `world.train` and sets the cut (module docs).
    pub fn fit(cfg: &HistoryFilterConfig, world: &World, seed: u64) -> Result<Self, DenoiseError> {
        let (pairs, data) = implicit_feedback(world, cfg.negatives, seed)?;
        let loss = match cfg.kind {
            FilterKind::Tce => DenoisingLoss::Truncated { drop_rate: cfg.drop_rate, warmup_epochs: cfg.warmup_epochs },
            FilterKind::Rce => DenoisingLoss::Reweighted { beta: cfg.beta },
            FilterKind::Bod => {
                return Err(DenoiseError::Config("history_filter: kind \"bod\" is not loss-based (filter::bod)".into()))
            }
        };
        let mf_cfg = MfConfig { loss: MfLoss::Logistic, seed: cfg.mf.seed.wrapping_add(seed), ..cfg.mf.clone() };
        let mf = MatrixFactorization::fit_denoised(&data, &mf_cfg, &loss)
            .map_err(|e| DenoiseError::Data(format!("history_filter user model: {e}")))?;
        let beliefs: Vec<f64> = pairs.iter().map(|&(u, i)| mf.predict(u, i)).collect();
        let (min_belief, dropped_clicks) = belief_cut(&beliefs, cfg.drop_rate);
        let stats = LossFilterStats {
            kind: cfg.kind.name(),
            clicks: pairs.len(),
            negatives: data.len() - pairs.len(),
            min_belief,
            dropped_clicks,
            final_loss: mf.history().last().copied().unwrap_or(f64::NAN),
        };
        Ok(LossBasedFilter { kind: cfg.kind, mf, min_belief, stats })
    }

    /// What was fitted.
    pub fn stats(&self) -> &LossFilterStats {
        &self.stats
    }

    /// The user model's belief that `user` would click `item` (`None` outside the model).
    pub fn belief(&self, user: u32, item: u32) -> Option<f64> {
        ((user as usize) < self.mf.n_users() && (item as usize) < self.mf.n_items())
            .then(|| self.mf.predict(user, item))
    }
}

impl HistoryFilter for LossBasedFilter {
    fn keep(&self, user: u32, item: u32, _reward: f32) -> bool {
        self.belief(user, item).is_none_or(|f| f >= self.min_belief)
    }

    fn name(&self) -> &'static str {
        self.kind.name()
    }
}
