//! `epsilon-greedy`: a non-contextual item bandit that mostly exploits, sometimes explores.
//!
//! The anchors' "static" baseline (`run_epsilongreedy.py`, `docs/protocol.md` §5): it learns online from the
//! rewards of the evaluation episodes themselves, one arm per item, shared by all users. Here its prior
//! comes from the training log, so it starts from a sensible ranking instead of from scratch.

use super::{check_param, HeuristicConfig, ItemStats, PolicyError, TrainingContext};
use crate::{select, ItemMask, Observation, Policy, PolicyRng, Selection};
use rand::Rng;

/// With probability `epsilon` recommends a uniformly drawn allowed item, otherwise the allowed item with
/// the best posterior mean reward (ties: the smallest id).
///
/// * Prior: each item's training mean target (shrunk toward the global mean), counted as `prior_weight`
///   pseudo-observations.
/// * Online: every [`Policy::observe`] adds the reward to that item's running mean, whatever the user
///   (non-contextual); non-finite rewards and unknown items are ignored.
/// * `Selection` does not apply: the policy has its own exploration, and both selections act the same.
///
/// O(n_items) per step, no allocation.
#[derive(Debug, Clone)]
pub struct EpsilonGreedy {
    epsilon: f64,
    /// Posterior mean reward per item.
    mean: Vec<f64>,
    /// Prior pseudo-count plus observed pulls per item.
    weight: Vec<f64>,
}

impl EpsilonGreedy {
    /// Start from the training-log prior.
    pub fn new(ctx: &TrainingContext, cfg: &HeuristicConfig) -> Result<Self, PolicyError> {
        ctx.validate()?;
        check_param("epsilon", cfg.epsilon, |e| (0.0..=1.0).contains(&e), "a probability in [0, 1]")?;
        check_param("prior_weight", cfg.prior_weight, |w| w > 0.0, "> 0")?;
        let mean = ItemStats::from_context(ctx, cfg.prior_weight).shrunk_mean;
        let weight = vec![cfg.prior_weight; mean.len()];
        Ok(Self { epsilon: cfg.epsilon, mean, weight })
    }
}

impl Policy for EpsilonGreedy {
    fn name(&self) -> String {
        "epsilon-greedy".into()
    }

    fn act(&mut self, _obs: &Observation, mask: &ItemMask, _selection: Selection, rng: &mut PolicyRng) -> u32 {
        let explore = rng.gen::<f64>() < self.epsilon;
        if explore || mask.n_items() != self.mean.len() {
            return select::uniform_allowed(mask, rng);
        }
        select::select(&self.mean, mask, Selection::Argmax, rng)
    }

    fn observe(&mut self, _user: u32, item: u32, reward: f64) {
        let i = item as usize;
        if i < self.mean.len() && reward.is_finite() {
            self.weight[i] += 1.0;
            self.mean[i] += (reward - self.mean[i]) / self.weight[i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heuristics::testkit::fixture;
    use rand::SeedableRng;

    #[test]
    fn shifts_toward_an_item_that_keeps_paying() {
        // Item 0 looks best in the log; item 5 pays 3.0 online while everything else pays 0.
        let f = fixture(2, 8, 2, |_| 20, |i| if i == 0 { 1.0 } else { 0.5 });
        let cfg = HeuristicConfig { epsilon: 0.2, ..HeuristicConfig::default() };
        let mut p = EpsilonGreedy::new(&f.ctx(), &cfg).unwrap();
        let mut rng = PolicyRng::seed_from_u64(4);
        let mask = ItemMask::all(8);
        let obs = Observation { user: 0, items: &[], rewards: &[], initial_item: None };
        let mut greedy = EpsilonGreedy { epsilon: 0.0, ..p.clone() };
        assert_eq!(greedy.act(&obs, &mask, Selection::Argmax, &mut rng), 0);
        let mut late_hits = 0;
        for t in 0..600 {
            let a = p.act(&obs, &mask, Selection::Sampled, &mut rng);
            p.observe(0, a, if a == 5 { 3.0 } else { 0.0 });
            if t >= 500 && a == 5 {
                late_hits += 1;
            }
        }
        assert!(late_hits > 70, "item 5 chosen {late_hits} times in the last 100 steps");
    }

    #[test]
    fn ignores_bad_feedback() {
        let f = fixture(1, 3, 1, |_| 1, |_| 1.0);
        let mut p = EpsilonGreedy::new(&f.ctx(), &HeuristicConfig::default()).unwrap();
        let before = p.mean.clone();
        p.observe(0, 1, f64::NAN);
        p.observe(0, 99, 1.0);
        assert_eq!(p.mean, before);
    }
}
