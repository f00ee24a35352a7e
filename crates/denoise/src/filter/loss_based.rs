//! T-CE and R-CE as history filters (Wang, Feng, He, Nie & Chua, WSDM 2021, "Denoising Implicit Feedback for
//! Recommendation"): a user model trained with a denoising loss learns the clean clicks first and is slow to
//! believe the noisy ones, so the interactions it believes least are the likeliest noise; the state drops them.
//!
//! ```text
//! clicks    = the distinct (u, i) pairs of the training log     (implicit feedback: a row is a click)
//! negatives = `negatives` items per click, uniform over the catalogue, redrawn while u has a row with the
//!             item (seeded; up to 32 draws, then the last one is kept)
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

use super::{FilterKind, HistoryFilter, HistoryFilterConfig};
use crate::DenoiseError;
use dsrm_models::denoising_loss::truncation_threshold;
use dsrm_models::{DenoisingLoss, Interactions, MatrixFactorization, MfConfig, MfLoss};
use dsrm_sim::World;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::HashSet;

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
        let log = &world.train;
        let mut pairs: Vec<(u32, u32)> = log.user.iter().copied().zip(log.item.iter().copied()).collect();
        pairs.sort_unstable();
        pairs.dedup();
        if pairs.is_empty() {
            return Err(DenoiseError::Data("history_filter: the training log has no rows".into()));
        }
        let seen: HashSet<(u32, u32)> = pairs.iter().copied().collect();
        let n_items = log.n_items as u32;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_f117);
        let mut data = Interactions { n_users: log.n_users, n_items: log.n_items, ..Default::default() };
        for &(u, i) in &pairs {
            data.user.push(u);
            data.item.push(i);
            data.target.push(1.0);
            for _ in 0..cfg.negatives {
                let mut j = rng.gen_range(0..n_items);
                for _ in 0..32 {
                    if !seen.contains(&(u, j)) {
                        break;
                    }
                    j = rng.gen_range(0..n_items);
                }
                data.user.push(u);
                data.item.push(j);
                data.target.push(0.0);
            }
        }
        let loss = match cfg.kind {
            FilterKind::Tce => DenoisingLoss::Truncated { drop_rate: cfg.drop_rate, warmup_epochs: cfg.warmup_epochs },
            FilterKind::Rce => DenoisingLoss::Reweighted { beta: cfg.beta },
        };
        let mf_cfg = MfConfig { loss: MfLoss::Logistic, seed: cfg.mf.seed.wrapping_add(seed), ..cfg.mf.clone() };
        let mf = MatrixFactorization::fit_denoised(&data, &mf_cfg, &loss)
            .map_err(|e| DenoiseError::Data(format!("history_filter user model: {e}")))?;
        let losses: Vec<f64> = pairs.iter().map(|&(u, i)| -mf.predict(u, i).max(f64::MIN_POSITIVE).ln()).collect();
        let tau = truncation_threshold(&losses, cfg.drop_rate);
        let min_belief = (-tau).exp();
        let dropped = losses.iter().filter(|&&l| l > tau).count();
        let stats = LossFilterStats {
            kind: kind_name(cfg.kind),
            clicks: pairs.len(),
            negatives: data.len() - pairs.len(),
            min_belief,
            dropped_clicks: dropped as f64 / pairs.len() as f64,
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

fn kind_name(kind: FilterKind) -> &'static str {
    match kind {
        FilterKind::Tce => "tce",
        FilterKind::Rce => "rce",
    }
}

impl HistoryFilter for LossBasedFilter {
    fn keep(&self, user: u32, item: u32, _reward: f32) -> bool {
        self.belief(user, item).is_none_or(|f| f >= self.min_belief)
    }

    fn name(&self) -> &'static str {
        kind_name(self.kind)
    }
}
