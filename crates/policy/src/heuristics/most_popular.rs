//! `most-popular`: recommend what the training log shows most often.
//!
//! The classic non-personalised baseline. Under the category quit rule its argmax keeps proposing the
//! same few head items, which is exactly the popularity bias the fairness metrics are meant to expose.

use super::{ItemStats, PolicyError, TrainingContext};
use crate::{select, ItemMask, Observation, Policy, PolicyRng, Selection};

/// Scores each item by `ln(1 + number of training rows)`, computed once at build time.
///
/// * `Argmax`: the most popular allowed item (ties: the smallest id), found by walking the items in
///   popularity order, so usually O(1).
/// * `Sampled`: a draw with probability ∝ `1 + count` (the softmax of the log score; no temperature).
///
/// Learns only row counts; ignores the user, the history and online feedback.
#[derive(Debug, Clone)]
pub struct MostPopular {
    /// `ln(1 + count)` per item.
    scores: Vec<f64>,
    /// Items by decreasing count, ties by increasing id.
    order: Vec<u32>,
}

impl MostPopular {
    /// Count the training rows of every item.
    pub fn new(ctx: &TrainingContext) -> Result<Self, PolicyError> {
        ctx.validate()?;
        let stats = ItemStats::from_context(ctx, 1.0);
        let scores = stats.count.iter().map(|&c| (c as f64).ln_1p()).collect();
        let mut order: Vec<u32> = (0..ctx.n_items() as u32).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(stats.count[i as usize]), i));
        Ok(Self { scores, order })
    }
}

impl Policy for MostPopular {
    fn name(&self) -> String {
        "most-popular".into()
    }

    fn act(&mut self, _obs: &Observation, mask: &ItemMask, selection: Selection, rng: &mut PolicyRng) -> u32 {
        if mask.n_items() != self.scores.len() {
            // A mask from another catalogue: nothing we learned applies.
            return select::uniform_allowed(mask, rng);
        }
        match selection {
            Selection::Argmax => match self.order.iter().find(|&&i| mask.allows(i)) {
                Some(&i) => i,
                None => select::uniform_allowed(mask, rng),
            },
            Selection::Sampled => select::select(&self.scores, mask, Selection::Sampled, rng),
        }
    }

    /// ln(1 + count): its softmax is ∝ 1 + count, and its argmax (ties: the smallest id) is `order`'s first.
    fn scores(&mut self, _obs: &Observation, _selection: Selection, _rng: &mut PolicyRng, out: &mut Vec<f64>) -> bool {
        out.clear();
        out.extend_from_slice(&self.scores);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heuristics::testkit::fixture;
    use rand::SeedableRng;

    #[test]
    fn argmax_is_the_most_popular_allowed_item() {
        // Item i has (i * 7) % 10 rows: 0, 7, 4, 1, 8, 5, 2, 9, 6, 3. The most, 9, is item 7.
        let f = fixture(3, 10, 2, |i| (i * 7) % 10, |_| 1.0);
        let mut p = MostPopular::new(&f.ctx()).unwrap();
        let mut rng = PolicyRng::seed_from_u64(0);
        let obs = Observation { user: 0, items: &[], rewards: &[], initial_item: None };
        let mut mask = ItemMask::all(10);
        assert_eq!(p.act(&obs, &mask, Selection::Argmax, &mut rng), 7);
        mask.block(7);
        // Next: 8 rows, item 4.
        assert_eq!(p.act(&obs, &mask, Selection::Argmax, &mut rng), 4);
    }

    #[test]
    fn sampled_is_proportional_to_one_plus_count() {
        let f = fixture(1, 3, 1, |i| [0, 1, 6][i], |_| 1.0);
        let mut p = MostPopular::new(&f.ctx()).unwrap();
        let mut rng = PolicyRng::seed_from_u64(1);
        let obs = Observation { user: 0, items: &[], rewards: &[], initial_item: None };
        let mask = ItemMask::all(3);
        let mut counts = [0.0; 3];
        let n = 30_000;
        for _ in 0..n {
            counts[p.act(&obs, &mask, Selection::Sampled, &mut rng) as usize] += 1.0 / n as f64;
        }
        for (got, want) in counts.iter().zip([0.1, 0.2, 0.7]) {
            assert!((got - want).abs() < 0.015, "{counts:?}");
        }
    }
}
