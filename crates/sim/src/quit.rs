//! When the simulated user leaves (`docs/protocol.md` §1.4).
//!
//! **Category rule** (KuaiRec, KuaiRand-Pure): over a window W of previous items, count tags as a multiset
//! across items, K[c] = |{b in W : c in C(b)}|; the user quits iff some tag c of the new item has K[c] > θ.
//!
//! **Distance rule** (Coat): the user quits iff the new item is closer than `min_distance` to some window
//! item (Euclidean distance between ground-truth columns).
//!
//! **The window.** The anchors take the slice `h[t-N:t]` of the t items shown so far. For t < N the start is
//! negative and Python counts it from the end, so the effective window is `h[max(0, 2t-N)..t]`, of size
//! min(t, N-t) for 1 <= t < N (quirk 1). `legacy_window = true` reproduces that; `false` gives the intended
//! `h[max(0, t-N)..t]`.

use crate::tags::TagMasks;
use serde::{Deserialize, Serialize};

/// Why an episode ended (`quit` in `episodes.jsonl`; none when it was cut at a forced length, NX_k).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// The category rule (KuaiRec, KuaiRand-Pure).
    Category,
    /// The distance rule (Coat).
    Distance,
    /// Popularity-aware abandonment (`crate::preset::PopularityRule`).
    Popularity,
    /// The episode cap (Max Len).
    MaxLen,
}

/// Popularity-aware abandonment as the environment applies it: the user leaves on a popular item when more than
/// `threshold` of the last `window` items were popular (the intended window, `h[max(0, t-N)..t]`).
#[derive(Debug, Clone, PartialEq)]
pub struct PopularityQuit {
    /// N_p.
    pub window: usize,
    /// θ_p.
    pub threshold: u32,
    /// Per catalogue item: popular.
    pub popular: Vec<bool>,
}

impl PopularityQuit {
    /// Does the user leave on being shown `item` after `history` (all items shown so far)?
    #[inline]
    pub fn quits(&self, history: &[u32], item: u32) -> bool {
        if !self.popular.get(item as usize).copied().unwrap_or(false) {
            return false;
        }
        let start = history.len().saturating_sub(self.window);
        let popular =
            history[start..].iter().filter(|&&b| self.popular.get(b as usize).copied().unwrap_or(false)).count();
        popular > self.threshold as usize
    }
}

/// The leave rule of an environment.
#[derive(Debug, Clone, PartialEq)]
pub enum QuitRule {
    /// Quit when a tag of the new item appears on more than `threshold` of the last `window` items.
    Category { window: usize, threshold: u32 },
    /// Quit when the new item is closer than `min_distance` to one of the last `window` items.
    /// `distance` is the dense `n_items * n_items` matrix.
    Distance { window: usize, min_distance: f64, distance: Vec<f32> },
}

impl QuitRule {
    /// What ends an episode under this rule.
    pub fn ending(&self) -> Ending {
        match self {
            QuitRule::Category { .. } => Ending::Category,
            QuitRule::Distance { .. } => Ending::Distance,
        }
    }

    /// N, the window length.
    pub fn window(&self) -> usize {
        match self {
            QuitRule::Category { window, .. } | QuitRule::Distance { window, .. } => *window,
        }
    }
}

/// The range of `history` (the t items shown so far) that the quit rule inspects.
#[inline]
pub fn window_range(t: usize, n: usize, legacy: bool) -> std::ops::Range<usize> {
    let start = if t >= n {
        t - n
    } else if legacy {
        (2 * t).saturating_sub(n)
    } else {
        0
    };
    start..t
}

/// Does the user leave on being shown `item` after `window` (the items inside the rule's window)?
#[inline]
pub fn quits(rule: &QuitRule, tags: &TagMasks, n_items: usize, window: &[u32], item: u32) -> bool {
    match rule {
        QuitRule::Category { threshold, .. } => {
            let new = tags.mask(item);
            if *threshold == 0 {
                // K[c] > 0 for some shared tag: any overlap with any window item.
                return window.iter().any(|&b| tags.mask(b) & new != 0);
            }
            let mut remaining = new;
            while remaining != 0 {
                let bit = remaining & remaining.wrapping_neg();
                let count = window.iter().filter(|&&b| tags.mask(b) & bit != 0).count();
                if count as u64 > u64::from(*threshold) {
                    return true;
                }
                remaining &= remaining - 1;
            }
            false
        }
        QuitRule::Distance { min_distance, distance, .. } => {
            let row = &distance[item as usize * n_items..(item as usize + 1) * n_items];
            window.iter().any(|&b| f64::from(row[b as usize]) < *min_distance)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(n: usize, legacy: bool, upto: usize) -> Vec<usize> {
        (1..=upto).map(|t| window_range(t, n, legacy).len()).collect()
    }

    #[test]
    fn legacy_window_sizes_match_the_anchor_table() {
        // `docs/protocol.md` §1.4, "Effective window sizes".
        assert_eq!(sizes(1, true, 4), [1, 1, 1, 1]);
        assert_eq!(sizes(4, true, 6), [1, 2, 1, 4, 4, 4]);
        assert_eq!(sizes(9, true, 11), [1, 2, 3, 4, 4, 3, 2, 1, 9, 9, 9]);
        assert_eq!(sizes(10, true, 12), [1, 2, 3, 4, 5, 4, 3, 2, 1, 10, 10, 10]);
    }

    #[test]
    fn legacy_window_is_a_suffix_like_python_slicing() {
        // Python: h[t-N:t] with a negative start counts from the end of h (len t).
        for n in 1..=12usize {
            for t in 1..=40usize {
                let start = t as i64 - n as i64;
                let py_start = if start < 0 { (t as i64 + start).max(0) } else { start } as usize;
                assert_eq!(window_range(t, n, true), py_start..t, "n={n} t={t}");
            }
        }
    }

    #[test]
    fn fixed_window_is_the_last_n() {
        assert_eq!(sizes(4, false, 6), [1, 2, 3, 4, 4, 4]);
    }

    #[test]
    fn category_threshold_counts_items_not_tags() {
        let tags = TagMasks::new(&[vec![1], vec![1, 2], vec![2], vec![3], vec![1, 3]]).unwrap();
        let zero = QuitRule::Category { window: 4, threshold: 0 };
        let one = QuitRule::Category { window: 4, threshold: 1 };
        assert!(quits(&zero, &tags, 5, &[0], 1));
        assert!(!quits(&zero, &tags, 5, &[0], 3));
        // tag 1 on one window item: K = 1, not > 1.
        assert!(!quits(&one, &tags, 5, &[0, 2], 1));
        // tag 1 on two window items (0 and 1): K = 2 > 1.
        assert!(quits(&one, &tags, 5, &[0, 1], 4));
        // tag 3 once, tag 1 once: no tag above 1.
        assert!(!quits(&one, &tags, 5, &[3, 0], 4));
    }

    #[test]
    fn distance_rule_uses_the_matrix() {
        let d = vec![0.0, 5.0, 20.0, 5.0, 0.0, 20.0, 20.0, 20.0, 0.0];
        let rule = QuitRule::Distance { window: 3, min_distance: 10.0, distance: d };
        let tags = TagMasks::new(&[vec![], vec![], vec![]]).unwrap();
        assert!(quits(&rule, &tags, 3, &[0], 1));
        assert!(!quits(&rule, &tags, 3, &[0], 2));
        assert!(quits(&rule, &tags, 3, &[2], 2), "a repeat is at distance 0");
    }
}
