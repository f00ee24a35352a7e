//! `random`: a uniform draw over the allowed items.
//!
//! The floor every recommender must beat, and the reference for how often an oblivious policy trips the
//! category quit rule.

use super::{PolicyError, TrainingContext};
use crate::{select, ItemMask, Observation, Policy, PolicyRng, Selection};

/// Recommends an allowed item uniformly at random. Learns nothing; `Selection` makes no difference (the
/// policy's distribution is uniform, so sampling and "argmax" coincide). O(1) expected per step.
#[derive(Debug, Clone, Default)]
pub struct Random {
    /// Catalogue size (for a server's score vector).
    n_items: usize,
}

impl Random {
    /// Check the context (non-empty catalogue) for symmetry with the other heuristics; nothing is learned.
    pub fn new(ctx: &TrainingContext) -> Result<Self, PolicyError> {
        ctx.validate()?;
        Ok(Self { n_items: ctx.n_items() })
    }
}

impl Policy for Random {
    fn name(&self) -> String {
        "random".into()
    }

    fn act(&mut self, _obs: &Observation, mask: &ItemMask, _selection: Selection, rng: &mut PolicyRng) -> u32 {
        select::uniform_allowed(mask, rng)
    }

    /// Independent uniform keys: exchangeable, so the top k by argmax or by softmax draws is a uniform random
    /// k-subset of the allowed items, as `act` is uniform under either selection.
    fn scores(&mut self, _obs: &Observation, _selection: Selection, rng: &mut PolicyRng, out: &mut Vec<f64>) -> bool {
        use rand::Rng;
        out.clear();
        out.extend((0..self.n_items).map(|_| rng.gen::<f64>()));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heuristics::testkit::fixture;
    use rand::SeedableRng;

    #[test]
    fn covers_every_allowed_item_and_no_blocked_one() {
        let f = fixture(1, 10, 2, |_| 1, |_| 1.0);
        let mut p = Random::new(&f.ctx()).unwrap();
        let mut mask = ItemMask::all(10);
        mask.block(3);
        let mut rng = PolicyRng::seed_from_u64(0);
        let obs = Observation { user: 0, items: &[], rewards: &[], initial_item: None };
        let mut seen = [0u32; 10];
        for _ in 0..5_000 {
            seen[p.act(&obs, &mask, Selection::Argmax, &mut rng) as usize] += 1;
        }
        assert_eq!(seen[3], 0);
        assert!(seen.iter().enumerate().filter(|&(i, _)| i != 3).all(|(_, &c)| c > 400), "{seen:?}");
    }
}
