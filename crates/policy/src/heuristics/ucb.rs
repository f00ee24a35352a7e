//! `ucb`: UCB1 over items, optimistic about what it has tried least.
//!
//! The anchors' other "static" baseline (`run_linUCB.py`, `docs/protocol.md` §5), here non-contextual: one arm
//! per item shared by all users, learning online from the evaluation's rewards, with the training log as
//! a prior so the bonus does not force it to try all few-thousand items first.

use super::{check_param, HeuristicConfig, ItemStats, PolicyError, TrainingContext};
use crate::{select, ItemMask, Observation, Policy, PolicyRng, Selection};

/// Recommends the allowed item maximising `mean_i + c·sqrt(ln(total pulls + 1) / pulls_i)` (ties: the
/// smallest id).
///
/// * Prior: each item's training mean target (shrunk toward the global mean) as `prior_weight`
///   pseudo-pulls. `pulls_i` includes them, so unseen items get a finite bonus; `total pulls` counts
///   only online observations, so before any feedback the policy ranks by the prior alone.
/// * Online: [`Policy::observe`] updates the item's mean and pulls, whatever the user; non-finite rewards
///   and unknown items are ignored.
/// * `Selection` does not apply: exploration comes from the bonus, and both selections act the same.
///
/// O(n_items) per step into a kept scratch buffer, no allocation.
#[derive(Debug, Clone)]
pub struct Ucb {
    c: f64,
    /// Posterior mean reward per item.
    mean: Vec<f64>,
    /// Prior pseudo-pulls plus observed pulls per item.
    pulls: Vec<f64>,
    /// Observed pulls over all items.
    total_pulls: u64,
    /// Scratch: this step's UCB scores.
    scores: Vec<f64>,
}

impl Ucb {
    /// Start from the training-log prior.
    pub fn new(ctx: &TrainingContext, cfg: &HeuristicConfig) -> Result<Self, PolicyError> {
        ctx.validate()?;
        check_param("ucb_c", cfg.ucb_c, |c| c >= 0.0, ">= 0")?;
        check_param("prior_weight", cfg.prior_weight, |w| w > 0.0, "> 0")?;
        let mean = ItemStats::from_context(ctx, cfg.prior_weight).shrunk_mean;
        let n = mean.len();
        Ok(Self { c: cfg.ucb_c, mean, pulls: vec![cfg.prior_weight; n], total_pulls: 0, scores: vec![0.0; n] })
    }
}

impl Policy for Ucb {
    fn name(&self) -> String {
        "ucb".into()
    }

    fn act(&mut self, _obs: &Observation, mask: &ItemMask, _selection: Selection, rng: &mut PolicyRng) -> u32 {
        if mask.n_items() != self.mean.len() {
            // A mask from another catalogue: nothing we learned applies.
            return select::uniform_allowed(mask, rng);
        }
        let log_total = ((self.total_pulls + 1) as f64).ln();
        for ((s, &m), &n) in self.scores.iter_mut().zip(&self.mean).zip(&self.pulls) {
            *s = m + self.c * (log_total / n).sqrt();
        }
        select::select(&self.scores, mask, Selection::Argmax, rng)
    }

    fn observe(&mut self, _user: u32, item: u32, reward: f64) {
        let i = item as usize;
        if i < self.mean.len() && reward.is_finite() {
            self.pulls[i] += 1.0;
            self.mean[i] += (reward - self.mean[i]) / self.pulls[i];
            self.total_pulls += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heuristics::testkit::fixture;
    use rand::SeedableRng;

    #[test]
    fn starts_from_the_prior_then_shifts_toward_an_item_that_keeps_paying() {
        let f = fixture(2, 8, 2, |_| 20, |i| if i == 0 { 1.0 } else { 0.5 });
        let mut p = Ucb::new(&f.ctx(), &HeuristicConfig::default()).unwrap();
        let mut rng = PolicyRng::seed_from_u64(2);
        let mask = ItemMask::all(8);
        let obs = Observation { user: 0, items: &[], rewards: &[], initial_item: None };
        assert_eq!(p.act(&obs, &mask, Selection::Argmax, &mut rng), 0);
        let mut late_hits = 0;
        for t in 0..600 {
            let a = p.act(&obs, &mask, Selection::Sampled, &mut rng);
            p.observe(1, a, if a == 5 { 3.0 } else { 0.0 });
            if t >= 500 && a == 5 {
                late_hits += 1;
            }
        }
        assert!(late_hits > 80, "item 5 chosen {late_hits} times in the last 100 steps");
    }

    #[test]
    fn explores_items_it_has_pulled_less() {
        // Equal priors: after pulling item 0 with an average reward, the bonus moves to the others.
        let f = fixture(1, 3, 1, |_| 10, |_| 1.0);
        let mut p = Ucb::new(&f.ctx(), &HeuristicConfig::default()).unwrap();
        let mut rng = PolicyRng::seed_from_u64(0);
        let mask = ItemMask::all(3);
        let obs = Observation { user: 0, items: &[], rewards: &[], initial_item: None };
        for _ in 0..5 {
            p.observe(0, 0, 1.0);
        }
        assert_ne!(p.act(&obs, &mask, Selection::Argmax, &mut rng), 0);
    }
}
