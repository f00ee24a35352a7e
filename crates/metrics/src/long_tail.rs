//! The popular / long-tail split and how exposure divides between the two groups (`docs/protocol.md` §6.2).
//! The same split drives the HRL goal (`docs/design.md` §4.4).

use crate::Episode;
use serde::{Deserialize, Serialize};

/// The project's popular fraction: P is the top 20% of the catalogue.
pub const DEFAULT_POPULAR_FRACTION: f64 = 0.2;

/// |P| = ⌈fraction · n⌉, clamped to [0, n] (666 of KuaiRec's 3,327 items, 1,517 of KuaiRand-Pure's 7,583).
///
/// A product within 1e-9 (relative) of an integer counts as that integer, so that e.g. 0.2 · 10 is 2
/// and not 3 through rounding error. A NaN or negative fraction gives 0.
pub fn popular_set_size(n: usize, fraction: f64) -> usize {
    if fraction.is_nan() || fraction <= 0.0 {
        return 0;
    }
    let x = fraction * n as f64;
    let r = x.round();
    let k = if (x - r).abs() <= 1e-9 * r.max(1.0) { r } else { x.ceil() };
    if k >= n as f64 {
        n
    } else {
        k as usize
    }
}

/// The popular set P as a mask over the catalogue: the [`popular_set_size`] items with the most distinct
/// (user, item) pairs in the training log, ties broken by the smaller catalogue id. Distinct pairs, not
/// rows, because the KuaiRec big matrix repeats rows; items missing from the log count 0.
pub fn popular_set(distinct_pair_counts: &[u64], fraction: f64) -> Vec<bool> {
    let n = distinct_pair_counts.len();
    let k = popular_set_size(n, fraction);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| distinct_pair_counts[b].cmp(&distinct_pair_counts[a]).then(a.cmp(&b)));
    let mut popular = vec![false; n];
    for &i in &order[..k] {
        popular[i] = true;
    }
    popular
}

/// LT share = Σ_{i∉P} e_i / Σ e: the share of exposure that went to the long tail T. Uniform exposure
/// gives |T|/n ≈ 0.8. Items beyond `popular` count as long tail. 0 when nothing was exposed.
pub fn long_tail_share(exposure: &[u64], popular: &[bool]) -> f64 {
    group_exposure(exposure, popular).long_tail_share
}

/// LT share of one episode: its long-tail steps over its steps inside the catalogue (here the catalogue
/// is `popular.len()` items); `None` when it has none.
pub fn episode_long_tail_share(items: &[u32], popular: &[bool]) -> Option<f64> {
    let (tail, in_range) = episode_tail_steps(items, popular, popular.len());
    (in_range > 0).then(|| tail as f64 / in_range as f64)
}

/// The secondary LT value: the mean over episodes of each episode's LT share (episodes without a step
/// inside the catalogue are left out; 0 when none is left). Unlike the pooled share, every episode
/// weighs the same.
pub fn long_tail_share_episode_mean(episodes: &[Episode], popular: &[bool]) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for e in episodes {
        if let Some(s) = episode_long_tail_share(&e.items, popular) {
            sum += s;
            n += 1;
        }
    }
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// Exposure of the popular group P and the long tail T: shares and relative exposure.
///
/// share_g = Σ_{i∈g} e_i / Σ e, relative_g = share_g / (|g|/n); relative 1 means exposure proportional to
/// group size, above 1 over-exposure. Shares are 0 when nothing was exposed, a relative exposure is 0 for
/// an empty group.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GroupExposure {
    /// |P|.
    pub popular_size: usize,
    /// |T| = n − |P|.
    pub long_tail_size: usize,
    /// share_P.
    pub popular_share: f64,
    /// share_T (= LT share).
    pub long_tail_share: f64,
    /// share_P / (|P|/n).
    pub popular_relative: f64,
    /// share_T / (|T|/n).
    pub long_tail_relative: f64,
}

impl GroupExposure {
    /// The paper's AD (`docs/protocol.md` §12; its formula is not public), share reading:
    /// |popular share − long-tail share|. 0 when the two groups get the same share of exposure; 1 when one
    /// group gets all of it (and 0 when nothing was exposed).
    pub fn ad_share(&self) -> f64 {
        (self.popular_share - self.long_tail_share).abs()
    }

    /// The paper's AD, per-item reading: |mean exposure per popular item − mean exposure per long-tail item|
    /// divided by the mean exposure per item, which equals |popular relative − long-tail relative|. 0 when every
    /// item is shown equally often (and when nothing was exposed).
    pub fn ad_item(&self) -> f64 {
        (self.popular_relative - self.long_tail_relative).abs()
    }
}

/// Computes [`GroupExposure`] over the catalogue `exposure.len()`; `popular` shorter than the catalogue
/// leaves the remaining items in the long tail.
pub fn group_exposure(exposure: &[u64], popular: &[bool]) -> GroupExposure {
    let n = exposure.len();
    let is_popular = |i: usize| popular.get(i).copied().unwrap_or(false);
    let (mut popular_size, mut e_popular, mut e_tail) = (0usize, 0u64, 0u64);
    for (i, &e) in exposure.iter().enumerate() {
        if is_popular(i) {
            popular_size += 1;
            e_popular += e;
        } else {
            e_tail += e;
        }
    }
    let long_tail_size = n - popular_size;
    let total = e_popular + e_tail;
    let share = |x: u64| {
        if total == 0 {
            0.0
        } else {
            x as f64 / total as f64
        }
    };
    let relative = |s: f64, size: usize| {
        if size == 0 {
            0.0
        } else {
            s / (size as f64 / n as f64)
        }
    };
    let (popular_share, long_tail_share) = (share(e_popular), share(e_tail));
    GroupExposure {
        popular_size,
        long_tail_size,
        popular_share,
        long_tail_share,
        popular_relative: relative(popular_share, popular_size),
        long_tail_relative: relative(long_tail_share, long_tail_size),
    }
}

/// (long-tail steps, steps inside the catalogue) of one episode.
pub(crate) fn episode_tail_steps(items: &[u32], popular: &[bool], n_items: usize) -> (usize, usize) {
    let (mut tail, mut in_range) = (0, 0);
    for &i in items {
        let i = i as usize;
        if i < n_items {
            in_range += 1;
            if !popular.get(i).copied().unwrap_or(false) {
                tail += 1;
            }
        }
    }
    (tail, in_range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn popular_set_size_matches_the_data_sets() {
        assert_eq!(popular_set_size(3327, 0.2), 666);
        assert_eq!(popular_set_size(7583, 0.2), 1517);
        assert_eq!(popular_set_size(10, 0.2), 2);
        assert_eq!(popular_set_size(15, 0.2), 3);
        assert_eq!(popular_set_size(11, 0.2), 3); // ⌈2.2⌉
        assert_eq!(popular_set_size(5, 2.0), 5);
        assert_eq!(popular_set_size(5, f64::NAN), 0);
        assert_eq!(popular_set_size(0, 0.2), 0);
    }

    #[test]
    fn popular_set_ties_go_to_the_smaller_id() {
        // n = 10 -> |P| = 2. Counts: item 3 has 9; items 1, 4, 7 tie at 5 -> item 1 wins the second place.
        let counts = [0, 5, 0, 9, 5, 0, 0, 5, 0, 0];
        let p = popular_set(&counts, 0.2);
        let chosen: Vec<usize> = (0..10).filter(|&i| p[i]).collect();
        assert_eq!(chosen, vec![1, 3]);
        // All equal: the first ⌈0.2·n⌉ ids.
        let p = popular_set(&[2; 6], 0.2);
        assert_eq!(p, vec![true, true, false, false, false, false]);
    }

    #[test]
    fn uniform_exposure_gives_group_size_shares() {
        // n = 10, |P| = 2: uniform exposure -> LT share |T|/n = 0.8, both relatives 1.
        let popular = popular_set(&[9, 8, 0, 0, 0, 0, 0, 0, 0, 0], 0.2);
        let e = vec![3u64; 10];
        assert!((long_tail_share(&e, &popular) - 0.8).abs() < 1e-15);
        let g = group_exposure(&e, &popular);
        assert_eq!((g.popular_size, g.long_tail_size), (2, 8));
        assert!((g.popular_share - 0.2).abs() < 1e-15);
        assert!((g.popular_relative - 1.0).abs() < 1e-12);
        assert!((g.long_tail_relative - 1.0).abs() < 1e-12);
    }

    #[test]
    fn group_exposure_by_hand() {
        // n = 4, P = {0}; e = [6, 1, 1, 0], Σe = 8.
        // share_P = 6/8 = 0.75, relative = 0.75 / (1/4) = 3; share_T = 0.25, relative = 0.25 / (3/4) = 1/3.
        let g = group_exposure(&[6, 1, 1, 0], &[true, false, false, false]);
        assert_eq!(g.popular_share, 0.75);
        assert_eq!(g.popular_relative, 3.0);
        assert_eq!(g.long_tail_share, 0.25);
        assert!((g.long_tail_relative - 1.0 / 3.0).abs() < 1e-15);
        // Nothing exposed; empty popular group.
        let z = group_exposure(&[0, 0], &[]);
        assert_eq!(
            (z.popular_share, z.long_tail_share, z.popular_relative, z.long_tail_relative),
            (0.0, 0.0, 0.0, 0.0)
        );
    }

    #[test]
    fn episode_mean_differs_from_pooled_share() {
        // n = 4, P = {0}. Episode A [0, 0, 0, 1] -> LT 1/4; episode B [2] -> LT 1.
        // Pooled: 2 tail steps of 5 = 0.4; episode mean: (0.25 + 1) / 2 = 0.625.
        let popular = [true, false, false, false];
        let eps = vec![Episode::new(0, vec![0, 0, 0, 1], vec![0.0; 4]), Episode::new(1, vec![2], vec![0.0])];
        let e = crate::exposure_counts(&eps, 4);
        assert_eq!(long_tail_share(&e, &popular), 0.4);
        assert_eq!(long_tail_share_episode_mean(&eps, &popular), 0.625);
        assert_eq!(episode_long_tail_share(&[], &popular), None);
        assert_eq!(episode_long_tail_share(&[9], &popular), None);
        assert_eq!(long_tail_share_episode_mean(&[], &popular), 0.0);
    }
}
