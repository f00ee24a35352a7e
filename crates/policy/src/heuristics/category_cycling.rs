//! `category-cycling`: a good item whose categories the user has not seen lately.
//!
//! The category quit rule (`docs/protocol.md` §1.4) ends an episode as soon as a recommended item shares a
//! category with the recent window. This baseline uses only what a live system knows (the item tags and
//! the episode so far) to rotate through categories, and within the safe ones takes the items the
//! training log rates best. It shows how much of a learned policy's return is mere quit avoidance.

use super::{check_param, standardized_logits, HeuristicConfig, ItemStats, PolicyError, TrainingContext};
use crate::{select, ItemMask, Observation, Policy, PolicyRng, Selection};
use rand::Rng;

/// At each step, the candidates are the allowed items whose tags are disjoint from the tags of the last
/// `quit_window` items shown in this episode (`Observation::items`; EasyRL4Rec's initial item is not in
/// the quit history and is ignored). If no allowed item is disjoint, every allowed item is a candidate.
///
/// * Score: the item's mean training target, shrunk toward the global mean with `prior_weight`.
/// * `Argmax`: the best candidate (ties: the smallest id).
/// * `Sampled`: softmax over the candidates' standardised scores divided by `temperature`.
///
/// Avoiding every tag of the last N items is safe under the anchors' shrinking window too, which is a
/// suffix of those N items, and under θ = 1 (EasyRL4Rec), which quits less readily than θ = 0. With
/// `quit_window` 0 there is nothing to avoid and the policy is a plain score-greedy one.
///
/// Tags are mapped to bits of a `u128` (bit = rank of the tag among the distinct tags, modulo 128; a
/// shared bit can only make the policy more cautious, never less). Items are kept sorted by score, so a
/// step is one pass over the catalogue at most, with no allocation. Learns nothing online.
#[derive(Debug, Clone)]
pub struct CategoryCycling {
    quit_window: usize,
    /// Tag bitmask per item.
    tag_mask: Vec<u128>,
    /// Items by decreasing score, ties by increasing id.
    order: Vec<u32>,
    /// Standardised score / temperature per item: the `Sampled` logits.
    logits: Vec<f64>,
}

impl CategoryCycling {
    /// Compute item scores and tag masks from the training log and the item tags.
    pub fn new(ctx: &TrainingContext, cfg: &HeuristicConfig) -> Result<Self, PolicyError> {
        ctx.validate()?;
        check_param("prior_weight", cfg.prior_weight, |w| w > 0.0, "> 0")?;
        check_param("temperature", cfg.temperature, |t| t > 0.0, "> 0")?;
        let n = ctx.n_items();
        if ctx.item_tags.len() != n {
            return Err(PolicyError::InvalidContext(format!(
                "item_tags covers {} items, the catalogue has {n}",
                ctx.item_tags.len()
            )));
        }

        // Tag bitmasks.
        let mut distinct: Vec<i32> = ctx.item_tags.iter().flatten().copied().collect();
        distinct.sort_unstable();
        distinct.dedup();
        let bit = |t: &i32| 1u128 << (distinct.binary_search(t).unwrap_or(0) % 128);
        let tag_mask = ctx.item_tags.iter().map(|tags| tags.iter().map(bit).fold(0, |m, b| m | b)).collect();

        // Scores, their order and the sampling logits.
        let scores = ItemStats::from_context(ctx, cfg.prior_weight).shrunk_mean;
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_by(|&a, &b| scores[b as usize].total_cmp(&scores[a as usize]).then(a.cmp(&b)));
        let mut logits = vec![0.0; n];
        standardized_logits(&scores, cfg.temperature, &mut logits);
        Ok(Self { quit_window: ctx.quit_window, tag_mask, order, logits })
    }

    /// Union of the tag masks of the last `quit_window` shown items (ids outside the catalogue ignored).
    fn recent_tags(&self, shown: &[u32]) -> u128 {
        let recent = &shown[shown.len().saturating_sub(self.quit_window)..];
        recent.iter().filter_map(|&b| self.tag_mask.get(b as usize)).fold(0, |m, &t| m | t)
    }
}

impl Policy for CategoryCycling {
    fn name(&self) -> String {
        "category-cycling".into()
    }

    fn act(&mut self, obs: &Observation, mask: &ItemMask, selection: Selection, rng: &mut PolicyRng) -> u32 {
        if mask.n_items() != self.order.len() {
            // A mask from another catalogue: nothing we learned applies.
            return select::uniform_allowed(mask, rng);
        }
        let recent = self.recent_tags(obs.items);
        let safe = |i: u32| mask.allows(i) && self.tag_mask[i as usize] & recent == 0;
        // The best safe item; if there is none, every allowed item is a candidate.
        let (best, only_safe) = match self.order.iter().find(|&&i| safe(i)) {
            Some(&i) => (i, true),
            None => match self.order.iter().find(|&&i| mask.allows(i)) {
                Some(&i) => (i, false),
                None => return select::uniform_allowed(mask, rng),
            },
        };
        let candidate = |i: u32| if only_safe { safe(i) } else { mask.allows(i) };
        if selection == Selection::Argmax {
            return best;
        }
        // Softmax over the candidates; `best` holds the largest logit, so exponents are <= 0.
        let max = self.logits[best as usize];
        let weight = |i: u32| (self.logits[i as usize] - max).exp();
        let total: f64 = self.order.iter().filter(|&&i| candidate(i)).map(|&i| weight(i)).sum();
        let mut u = rng.gen::<f64>() * total;
        let mut last = best;
        for &i in self.order.iter().filter(|&&i| candidate(i)) {
            let w = weight(i);
            if u < w {
                return i;
            }
            u -= w;
            last = i;
        }
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heuristics::random::Random;
    use crate::heuristics::testkit::{episode_length, fixture, quits};
    use rand::SeedableRng;

    #[test]
    fn never_repeats_a_recent_tag_when_an_alternative_exists() {
        // 30 items, 6 tags (item i has tag i % 6), window 4: two safe tags always remain.
        let f = fixture(2, 30, 6, |i| i % 5 + 1, |i| (i % 7) as f64);
        let mut p = CategoryCycling::new(&f.ctx(), &HeuristicConfig::default()).unwrap();
        let mut rng = PolicyRng::seed_from_u64(3);
        let mut mask = ItemMask::all(30);
        for selection in [Selection::Argmax, Selection::Sampled] {
            let mut shown = vec![];
            mask.clear();
            for _ in 0..25 {
                let obs = Observation { user: 0, items: &shown, rewards: &[], initial_item: None };
                let a = p.act(&obs, &mask, selection, &mut rng);
                assert!(!quits(&f.tags, &shown, 4, a), "{selection:?}: {a} after {shown:?}");
                mask.block(a);
                shown.push(a);
            }
        }
    }

    #[test]
    fn argmax_takes_the_best_safe_item_and_falls_back_when_none_is_safe() {
        // Items 0..6, tag = i % 3; targets rise with the id, so item 5 is best.
        let f = fixture(1, 6, 3, |_| 50, |i| i as f64);
        let mut p = CategoryCycling::new(&f.ctx(), &HeuristicConfig::default()).unwrap();
        let mut rng = PolicyRng::seed_from_u64(0);
        let mask = ItemMask::all(6);
        let act = |p: &mut CategoryCycling, shown: &[u32], rng: &mut PolicyRng| {
            let obs = Observation { user: 0, items: shown, rewards: &[], initial_item: None };
            p.act(&obs, &mask, Selection::Argmax, rng)
        };
        assert_eq!(act(&mut p, &[], &mut rng), 5);
        assert_eq!(act(&mut p, &[5], &mut rng), 4); // tag 2 is recent
        assert_eq!(act(&mut p, &[5, 4], &mut rng), 3); // tags 2 and 1 are recent
        assert_eq!(act(&mut p, &[5, 4, 3], &mut rng), 5); // every tag is recent: best allowed
                                                          // Only the last `quit_window` = 4 items count: item 2 (tag 2) is 5 steps back.
        assert_eq!(act(&mut p, &[2, 0, 0, 1, 1], &mut rng), 5);
    }

    #[test]
    fn scores_are_shrunk_so_a_single_lucky_row_does_not_win() {
        // Item 0: one row of 5. Item 1: 200 rows of 2. Others: 200 rows of 1.
        let f = fixture(1, 4, 4, |i| if i == 0 { 1 } else { 200 }, |i| [5.0, 2.0, 1.0, 1.0][i]);
        let mut p = CategoryCycling::new(&f.ctx(), &HeuristicConfig::default()).unwrap();
        let obs = Observation { user: 0, items: &[], rewards: &[], initial_item: None };
        let a = p.act(&obs, &ItemMask::all(4), Selection::Argmax, &mut PolicyRng::seed_from_u64(0));
        assert_eq!(a, 1);
    }

    #[test]
    fn episodes_reach_the_cap_where_random_ones_quit() {
        let f = fixture(3, 60, 8, |i| i % 4 + 1, |i| (i % 5) as f64);
        let mut rng = PolicyRng::seed_from_u64(9);
        let mut cycling = CategoryCycling::new(&f.ctx(), &HeuristicConfig::default()).unwrap();
        let mut random = Random::new(&f.ctx()).unwrap();
        for no_repeat in [false, true] {
            for selection in [Selection::Argmax, Selection::Sampled] {
                let (mut c, mut r) = (0.0, 0.0);
                for e in 0..40 {
                    c += episode_length(&mut cycling, &f.tags, 4, 30, e % 3, no_repeat, selection, &mut rng) as f64;
                    r += episode_length(&mut random, &f.tags, 4, 30, e % 3, no_repeat, selection, &mut rng) as f64;
                }
                assert_eq!(c / 40.0, 30.0, "{selection:?} no_repeat={no_repeat}");
                assert!(r / 40.0 < 10.0, "random mean length {}", r / 40.0);
            }
        }
    }

    #[test]
    fn rejects_tags_that_do_not_cover_the_catalogue() {
        let mut f = fixture(1, 5, 2, |_| 1, |_| 1.0);
        f.tags.pop();
        assert!(matches!(
            CategoryCycling::new(&f.ctx(), &HeuristicConfig::default()),
            Err(PolicyError::InvalidContext(_))
        ));
    }
}
