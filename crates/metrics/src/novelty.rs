//! EasyRL4Rec's Novelty (`docs/protocol.md` §6.1): how unpopular the recommended items are, as mean
//! self-information −ln pop(i) per step, averaged over episodes.

use crate::Episode;

/// The replacement for zero popularities: the smallest positive popularity in the vector.
///
/// EasyRL4Rec replaces pop(i) = 0 (items never seen in the popularity log) by this value before taking
/// logarithms, so unseen items get the largest finite novelty instead of +∞. Negative and non-finite
/// entries are treated as 0. `None` when no entry is positive.
pub fn popularity_floor(popularity: &[f64]) -> Option<f64> {
    popularity.iter().copied().filter(|p| p.is_finite() && *p > 0.0).min_by(f64::total_cmp)
}

/// Novelty of one episode: the mean over steps of −ln pop(a_t), zero popularities replaced by
/// [`popularity_floor`]. Ids outside `popularity` are unseen items (popularity 0). `None` for an empty
/// episode. When no popularity at all is positive there is nothing to measure against and every step
/// counts 0. Computes the floor on each call (O(n)); [`novelty`] computes it once.
pub fn episode_novelty(items: &[u32], popularity: &[f64]) -> Option<f64> {
    episode_novelty_with_floor(items, popularity, popularity_floor(popularity))
}

/// Novelty = the mean over episodes of [`episode_novelty`]. Empty episodes are left out of the mean;
/// 0 when no episode has a step.
pub fn novelty(episodes: &[Episode], popularity: &[f64]) -> f64 {
    let floor = popularity_floor(popularity);
    let (mut sum, mut n) = (0.0, 0usize);
    for e in episodes {
        if let Some(v) = episode_novelty_with_floor(&e.items, popularity, floor) {
            sum += v;
            n += 1;
        }
    }
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// [`episode_novelty`] with the floor computed by the caller.
pub(crate) fn episode_novelty_with_floor(items: &[u32], popularity: &[f64], floor: Option<f64>) -> Option<f64> {
    if items.is_empty() {
        return None;
    }
    let Some(floor) = floor else {
        return Some(0.0);
    };
    let sum: f64 = items
        .iter()
        .map(|&i| {
            let p = popularity.get(i as usize).copied().filter(|p| p.is_finite() && *p > 0.0).unwrap_or(floor);
            -p.ln()
        })
        .sum();
    Some(sum / items.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_is_smallest_positive() {
        assert_eq!(popularity_floor(&[0.0, 0.5, 0.25, -1.0, f64::NAN]), Some(0.25));
        assert_eq!(popularity_floor(&[0.0, 0.0]), None);
        assert_eq!(popularity_floor(&[]), None);
    }

    #[test]
    fn min_positive_replacement_by_hand() {
        // pop = [0.5, 0, 0.25]: item 1 is unseen and takes 0.25.
        // Episode [0, 1]: (-ln 0.5 - ln 0.25) / 2 = (ln 2 + 2 ln 2) / 2 = 1.5 ln 2.
        let pop = [0.5, 0.0, 0.25];
        let v = episode_novelty(&[0, 1], &pop).unwrap();
        assert!((v - 1.5 * std::f64::consts::LN_2).abs() < 1e-15);
        // An id outside the vector is unseen too: same as item 1.
        assert_eq!(episode_novelty(&[9], &pop), episode_novelty(&[1], &pop));
    }

    #[test]
    fn mean_over_episodes() {
        // [0, 1] -> 1.5 ln 2, [2] -> 2 ln 2, [] skipped: mean 1.75 ln 2.
        let pop = [0.5, 0.0, 0.25];
        let eps = vec![
            Episode::new(0, vec![0, 1], vec![0.0; 2]),
            Episode::new(1, vec![2], vec![0.0]),
            Episode::new(2, vec![], vec![]),
        ];
        assert!((novelty(&eps, &pop) - 1.75 * std::f64::consts::LN_2).abs() < 1e-15);
        assert_eq!(novelty(&[], &pop), 0.0);
    }

    #[test]
    fn no_positive_popularity_gives_zero_not_infinity() {
        assert_eq!(episode_novelty(&[0, 1], &[0.0, 0.0]), Some(0.0));
        assert_eq!(episode_novelty(&[], &[0.5]), None);
    }
}
