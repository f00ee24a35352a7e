//! BOD as a history filter (Wang, Gao, Li, Yu, Guo & Yin, KDD 2023, "Efficient Bi-Level Optimization for
//! Recommendation Denoising"): a user model is fitted together with a generator of per-interaction weights by
//! bi-level optimisation (`dsrm_models::bod`), so that it learns less from the interactions that do not help it
//! fit the rest of the data; the state drops the history interactions this denoised model believes least —
//! as T-CE and R-CE do with theirs.
//!
//! ```text
//! clicks, negatives                                              (super::implicit)
//! f, g      = logistic MF and weight generator fitted by BOD on clicks (1) and negatives (0)
//!             (dsrm_models::Bod; `generator_learning_rate`, `batch_size`, `holdout`)
//! τ         = the cut above which the ε share of clicks with the largest −ln f lies
//! keep(u, i, r) ⇔ −ln f(u, i) ≤ τ        users or items outside the model: kept
//! ```
//!
//! The cut is on the denoised model's belief f, not on the generator's weight g of the click. BOD's product is
//! the denoised recommender (the weights are how it gets there), and the three kinds then differ only in how
//! their user model is denoised. The planted test data decide it too: among the 20% of clicks ranked least
//! believable, the share of flipped labels (base rate about 0.2) is 0.46, 0.38, 0.36 for f and 0.42, 0.17,
//! 0.27 for g (seeds 3, 1, 2; `dsrm_models::bod` tests' data and settings). The weights still tell flipped rows
//! from clean ones on average (they are lower on flipped rows over clicks and non-clicks together), but a
//! click's weight depends on the generator's click head alone and ranks clicks worse than the model does.
//! `history_filter.json` records the clicks' mean weight. As for T-CE and R-CE the reward is not read (module
//! docs of `loss_based`).

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
    /// The least belief f(u, i) a kept interaction has (e^{−τ}).
    pub min_belief: f64,
    /// The generator's mean weight of the training clicks (in (0, 1); 0.5 without the outer step).
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
    min_belief: f64,
    stats: BodFilterStats,
}

impl BodFilter {
    /// Fits the user model and the generator on `world.train` and sets the cut (module docs).
    pub fn fit(cfg: &HistoryFilterConfig, world: &World, seed: u64) -> Result<Self, DenoiseError> {
        let (pairs, data) = implicit_feedback(world, cfg.negatives, seed)?;
        let mf_cfg = MfConfig { loss: MfLoss::Logistic, seed: cfg.mf.seed.wrapping_add(seed), ..cfg.mf.clone() };
        let bod = Bod::fit(&data, &mf_cfg, &cfg.bod())
            .map_err(|e| DenoiseError::Data(format!("history_filter user model: {e}")))?;
        let beliefs: Vec<f64> = pairs.iter().map(|&(u, i)| bod.model().predict(u, i)).collect();
        let (min_belief, dropped_clicks) = belief_cut(&beliefs, cfg.drop_rate);
        let weights: Vec<f64> = pairs.iter().map(|&(u, i)| bod.weight(u, i, 1.0)).collect();
        let stats = BodFilterStats {
            kind: "bod",
            clicks: pairs.len(),
            negatives: data.len() - pairs.len(),
            min_belief,
            mean_click_weight: weights.iter().sum::<f64>() / weights.len() as f64,
            dropped_clicks,
            final_loss: bod.model().history().last().copied().unwrap_or(f64::NAN),
        };
        Ok(BodFilter { bod, min_belief, stats })
    }

    /// What was fitted.
    pub fn stats(&self) -> &BodFilterStats {
        &self.stats
    }

    fn inside(&self, user: u32, item: u32) -> bool {
        let mf = self.bod.model();
        (user as usize) < mf.n_users() && (item as usize) < mf.n_items()
    }

    /// The denoised user model's belief that `user` would click `item` (`None` outside the model).
    pub fn belief(&self, user: u32, item: u32) -> Option<f64> {
        self.inside(user, item).then(|| self.bod.model().predict(user, item))
    }

    /// The generator's weight of `user`'s click on `item` (`None` outside the model).
    pub fn weight(&self, user: u32, item: u32) -> Option<f64> {
        self.inside(user, item).then(|| self.bod.weight(user, item, 1.0))
    }
}

impl HistoryFilter for BodFilter {
    fn keep(&self, user: u32, item: u32, _reward: f32) -> bool {
        self.belief(user, item).is_none_or(|f| f >= self.min_belief)
    }

    fn name(&self) -> &'static str {
        "bod"
    }
}
