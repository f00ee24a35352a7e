//! BOD as a history filter (Wang, Gao, Li, Yu, Guo & Yin, KDD 2023, "Efficient Bi-Level Optimization for
//! Recommendation Denoising"): a user model is fitted together with a weight generator by bi-level
//! optimisation (`dsrm_models::bod`); the generator's weight of a click is how much BOD trusts it, so the
//! state drops the history interactions it trusts least.
//!
//! ```text
//! clicks, negatives                                              (super::implicit)
//! f, g      = logistic MF and weight generator fitted by BOD on clicks (1) and negatives (0)
//!             (dsrm_models::Bod; `generator_learning_rate`, `batch_size`, `holdout`)
//! w(u, i)   = g's weight of (u, i) as a click, under f's embeddings
//! w_min     = the weight below which the `drop_rate` share of training clicks with the lowest w lies
//! keep(u, i, r) ⇔ w(u, i) ≥ w_min        users or items outside the model: kept
//! ```
//!
//! The cut is on the learned weight, not on f's belief f(u, i): the weight is BOD's own verdict on an
//! interaction (the outer problem sets it so that training on the row helps the model fit the rest of the
//! data), while f is only what the model trained with those weights predicts — cutting on f would make BOD a
//! reweighted loss with an R-CE-style cut, and throw away the part that is BOD's. The generator reads the
//! user and item embeddings, so it weighs any pair of the catalogue, including history interactions that are
//! not in the training log. As for T-CE and R-CE the reward is not read (module docs of `loss_based`).

use super::implicit::{belief_cut, implicit_feedback};
use super::{HistoryFilter, HistoryFilterConfig};
use crate::DenoiseError;
use dsrm_models::{Bod, MfConfig, MfLoss};
use dsrm_sim::World;
use serde::Serialize;

/// What the fitted filter is, for the run's logs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BodFilterStats {
    /// `bod`.
    pub kind: &'static str,
    /// Distinct clicks and sampled negatives the user model was fitted on (a `holdout` share of these rows
    /// was held out of its training for the outer loss).
    pub clicks: usize,
    pub negatives: usize,
    /// The least weight a kept interaction has.
    pub min_weight: f64,
    /// The training clicks' mean weight.
    pub mean_click_weight: f64,
    /// Share of the training clicks the filter would drop (at most `drop_rate`; ties at the cut are kept).
    pub dropped_clicks: f64,
    /// The user model's mean (unweighted) training loss in its last epoch.
    pub final_loss: f64,
}

/// A fitted BOD filter.
#[derive(Debug, Clone)]
pub struct BodFilter {
    bod: Bod,
    min_weight: f64,
    stats: BodFilterStats,
}

impl BodFilter {
    /// Fits the user model and the generator on `world.train` and sets the cut (module docs).
    pub fn fit(cfg: &HistoryFilterConfig, world: &World, seed: u64) -> Result<Self, DenoiseError> {
        let (pairs, data) = implicit_feedback(world, cfg.negatives, seed)?;
        let mf_cfg = MfConfig { loss: MfLoss::Logistic, seed: cfg.mf.seed.wrapping_add(seed), ..cfg.mf.clone() };
        let bod = Bod::fit(&data, &mf_cfg, &cfg.bod())
            .map_err(|e| DenoiseError::Data(format!("history_filter user model: {e}")))?;
        let weights: Vec<f64> = pairs.iter().map(|&(u, i)| bod.weight(u, i, 1.0)).collect();
        let (min_weight, dropped_clicks) = belief_cut(&weights, cfg.drop_rate);
        let stats = BodFilterStats {
            kind: "bod",
            clicks: pairs.len(),
            negatives: data.len() - pairs.len(),
            min_weight,
            mean_click_weight: weights.iter().sum::<f64>() / weights.len() as f64,
            dropped_clicks,
            final_loss: bod.model().history().last().copied().unwrap_or(f64::NAN),
        };
        Ok(BodFilter { bod, min_weight, stats })
    }

    /// What was fitted.
    pub fn stats(&self) -> &BodFilterStats {
        &self.stats
    }

    /// BOD's weight of `user`'s click on `item` (`None` outside the model).
    pub fn weight(&self, user: u32, item: u32) -> Option<f64> {
        let mf = self.bod.model();
        ((user as usize) < mf.n_users() && (item as usize) < mf.n_items()).then(|| self.bod.weight(user, item, 1.0))
    }
}

impl HistoryFilter for BodFilter {
    fn keep(&self, user: u32, item: u32, _reward: f32) -> bool {
        self.weight(user, item).is_none_or(|w| w >= self.min_weight)
    }

    fn name(&self) -> &'static str {
        "bod"
    }
}
