//! MCD, the Matthew-effect metric of DORL (`ifeat_feat`, `docs/protocol.md` §6.1): the share of
//! recommendations that carry at least one *dominant* category, and the prefix rule that picks those
//! categories from the training log.

use crate::Episode;

/// DORL's default `top_rate`: dominant categories cover at most 80% of the positive training feedback.
pub const DEFAULT_TOP_RATE: f64 = 0.8;

/// The dominant categories from per-category counts of positive training feedback (§6.1 steps 2–3).
///
/// `tag_counts` holds `(tag, count)` pairs in any order, in whatever id space the caller uses (raw or
/// +1-shifted; the caller drops padding). Repeated tags are summed, zero counts dropped. Categories are
/// ranked by count, descending (ties: smaller tag first), and [`dominant_prefix`] applies the cut.
/// Returns the dominant tags in rank order; empty only when no count is positive.
pub fn dominant_categories(tag_counts: &[(i32, u64)], top_rate: f64) -> Vec<i32> {
    let mut merged: Vec<(i32, u64)> = tag_counts.iter().copied().filter(|&(_, c)| c > 0).collect();
    merged.sort_unstable_by_key(|&(t, _)| t);
    merged.dedup_by(|next, kept| {
        if next.0 == kept.0 {
            kept.1 = kept.1.saturating_add(next.1);
            true
        } else {
            false
        }
    });
    merged.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let ranked: Vec<(i32, f64)> = merged.into_iter().map(|(t, c)| (t, c as f64)).collect();
    dominant_prefix(&ranked, top_rate)
}

/// The prefix rule on an already-ranked list of `(tag, weight)`, exactly as DORL's evaluator reads its
/// pickle: the weights are renormalised to shares (they need not sum to 1; the shipped pickles sum to
/// 0.115 and 0.509), the cumulative share is accumulated left to right, the list is cut at the first
/// category whose cumulative share **exceeds** `top_rate`, and at least one category is kept.
///
/// The order given is the rank order (nothing is sorted). Entries with a negative or non-finite weight
/// are skipped; no positive weight at all gives an empty list. A NaN `top_rate` never cuts (as in numpy).
pub fn dominant_prefix(ranked: &[(i32, f64)], top_rate: f64) -> Vec<i32> {
    let valid = || ranked.iter().filter(|(_, w)| w.is_finite() && *w >= 0.0);
    let total: f64 = valid().map(|(_, w)| w).sum();
    if total <= 0.0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut cumulative = 0.0;
    for &(tag, w) in valid() {
        cumulative += w / total;
        if cumulative > top_rate {
            break;
        }
        out.push(tag);
    }
    if out.is_empty() {
        if let Some(&(tag, _)) = valid().next() {
            out.push(tag);
        }
    }
    out
}

/// Marks the items that carry at least one dominant category: `item_tags[i]` are item i's tags in the
/// same id space as `dominant`. The result is [`crate::ItemContext::dominant`]. Untagged items (an empty
/// list) are never dominant, as DORL's padding 0 never matches.
pub fn dominant_items(item_tags: &[Vec<i32>], dominant: &[i32]) -> Vec<bool> {
    item_tags.iter().map(|tags| tags.iter().any(|t| dominant.contains(t))).collect()
}

/// MCD = the fraction of all recommended items (every step of every episode, repeats included) with
/// `dominant[item]`; lower means less Matthew effect. Ids outside `dominant` count as not dominant but
/// still count as steps, as in DORL's denominator. 0 when there is no step.
pub fn mcd(episodes: &[Episode], dominant: &[bool]) -> f64 {
    let (mut hits, mut steps) = (0usize, 0usize);
    for e in episodes {
        hits += dominant_hits(&e.items, dominant);
        steps += e.len();
    }
    if steps == 0 {
        return 0.0;
    }
    hits as f64 / steps as f64
}

/// Number of steps of one episode whose item is dominant.
pub(crate) fn dominant_hits(items: &[u32], dominant: &[bool]) -> usize {
    items.iter().filter(|&&i| dominant.get(i as usize).copied().unwrap_or(false)).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anchor_constants::{KUAIRAND_DOMINANT_RAW_TAGS, KUAIREC_DOMINANT_RAW_TAGS};

    #[test]
    fn prefix_stops_before_first_category_exceeding_top_rate() {
        // Shares 0.5, 0.25, 0.15, 0.10 -> cumulative 0.5, 0.75, 0.90, 1.0: keep the first two.
        let counts = [(7, 15), (3, 50), (9, 10), (1, 25)];
        assert_eq!(dominant_categories(&counts, 0.8), vec![3, 1]);
    }

    #[test]
    fn prefix_keeps_a_category_landing_exactly_on_top_rate() {
        // Shares 0.4, 0.4, 0.2 -> cumulative 0.4, 0.8 (not > 0.8, kept), 1.0 (cut).
        assert_eq!(dominant_categories(&[(1, 2), (2, 2), (3, 1)], 0.8), vec![1, 2]);
    }

    #[test]
    fn prefix_keeps_at_least_one() {
        // Share 0.9 already exceeds 0.8: the cut would leave nothing, keep the top category.
        assert_eq!(dominant_categories(&[(4, 90), (5, 10)], 0.8), vec![4]);
        assert_eq!(dominant_categories(&[(4, 1)], 0.8), vec![4]);
    }

    #[test]
    fn prefix_renormalises_shares_that_do_not_sum_to_one() {
        // Ranked weights summing to 0.1: 0.04, 0.03, 0.02, 0.01 -> shares 0.4, 0.3, 0.2, 0.1,
        // cumulative 0.4, 0.7, 0.9 (cut). Without renormalisation all four would be kept.
        let ranked = [(10, 0.04), (20, 0.03), (30, 0.02), (40, 0.01)];
        assert_eq!(dominant_prefix(&ranked, 0.8), vec![10, 20]);
        // The order given is the rank order: no re-sorting.
        let unsorted = [(30, 0.02), (10, 0.04), (20, 0.03), (40, 0.01)];
        assert_eq!(dominant_prefix(&unsorted, 0.8), vec![30, 10]);
    }

    #[test]
    fn counts_merge_duplicates_drop_zeros_and_break_ties_by_tag() {
        // Tag 2: 3 + 3 = 6; tags 5 and 1 tie at 2 -> 1 before 5; tag 8 has zero count.
        // Total 10: cumulative 0.6, 0.8 (tag 1, kept), 1.0 (tag 5, cut).
        let counts = [(2, 3), (5, 2), (8, 0), (1, 2), (2, 3)];
        assert_eq!(dominant_categories(&counts, 0.8), vec![2, 1]);
        assert!(dominant_categories(&[(1, 0)], 0.8).is_empty());
        assert!(dominant_categories(&[], 0.8).is_empty());
        assert!(dominant_prefix(&[(1, f64::NAN), (2, -1.0)], 0.8).is_empty());
    }

    #[test]
    fn dominant_items_and_mcd_with_the_kuairec_list() {
        // Raw KuaiRec tags: item 0 [28] dominant, item 1 [0, 4] not (0 and 4 are outside the list),
        // item 2 [4, 1] dominant (1 is), item 3 [] untagged, never dominant.
        let tags = vec![vec![28], vec![0, 4], vec![4, 1], vec![]];
        let dom = dominant_items(&tags, &KUAIREC_DOMINANT_RAW_TAGS);
        assert_eq!(dom, vec![true, false, true, false]);
        // Episodes [0, 1, 0] and [2, 3]: dominant steps 0, 0, 2 = 3 of 5 steps -> MCD 0.6.
        let eps = vec![Episode::new(0, vec![0, 1, 0], vec![0.0; 3]), Episode::new(1, vec![2, 3], vec![0.0; 2])];
        assert_eq!(mcd(&eps, &dom), 0.6);
    }

    #[test]
    fn mcd_with_the_kuairand_list_and_out_of_range_ids() {
        // Item 0 [39] dominant, item 1 [40] not (40 is a shifted id, not a raw one).
        let dom = dominant_items(&[vec![39], vec![40]], &KUAIRAND_DOMINANT_RAW_TAGS);
        assert_eq!(dom, vec![true, false]);
        // Steps 0, 1, 7 (outside the catalogue: a step, not dominant) -> 1/3.
        let eps = vec![Episode::new(0, vec![0, 1, 7], vec![0.0; 3])];
        assert_eq!(mcd(&eps, &dom), 1.0 / 3.0);
        assert_eq!(mcd(&[], &dom), 0.0);
    }

    #[test]
    fn shipped_lists_match_the_research_table() {
        let shifted_kuairec = [29, 9, 12, 7, 10, 27, 8, 6, 18, 2];
        let shifted_kuairand = [40, 10, 4, 7, 13, 21, 18, 69, 29, 8, 44, 12];
        assert!(KUAIREC_DOMINANT_RAW_TAGS.iter().zip(shifted_kuairec).all(|(r, s)| r + 1 == s));
        assert!(KUAIRAND_DOMINANT_RAW_TAGS.iter().zip(shifted_kuairand).all(|(r, s)| r + 1 == s));
    }
}
