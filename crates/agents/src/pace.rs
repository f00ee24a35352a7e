//! Paced updates: a fixed number of gradient updates per environment step, whatever a collection's size.
//!
//! An on-policy learner's own schedule (`repeat_per_collect` passes of `batch_size` minibatches over each
//! collection) makes a whole number of updates per collection. Collections are whole episodes, so a method
//! whose users leave sooner makes more collections, and more updates, per environment step: at equal steps the
//! methods would not have equal compute. With `updates_per_1k_steps = u` the learner instead makes
//!
//! ```text
//! k = ⌊(S + n) · u / 1000⌋ − ⌊S · u / 1000⌋
//! ```
//!
//! updates on a collection of n steps that follows S earlier steps of the run (S from the trainer, so a resumed
//! run continues the same count), each on a minibatch of `batch_size` steps (the whole collection when smaller),
//! drawn by walking through freshly shuffled passes over the collection. After S steps a run has made exactly
//! ⌊S · u / 1000⌋ updates, for every method and episode length. Both levels of a hierarchical learner draw from
//! one pace (every update counts, whichever level it trains).

use crate::rollout::minibatches;
use rand_chacha::ChaCha8Rng;

/// Updates earned by a collection of `n` steps after `steps_before` steps at `per_1k` updates per 1,000 steps.
pub fn paced_updates(per_1k: f64, steps_before: u64, n: usize) -> usize {
    let count = |s: u64| (s as f64 * per_1k / 1000.0).floor();
    (count(steps_before + n as u64) - count(steps_before)).max(0.0) as usize
}

/// `k` minibatches of `min(size, n)` indices into a collection of `n`, walking through shuffled passes: each
/// pass is a fresh permutation cut as [`minibatches`] cuts it, and the walk stops after `k` minibatches.
pub fn paced_minibatches(n: usize, size: usize, k: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
    let mut out = Vec::with_capacity(k);
    if n == 0 {
        return out;
    }
    while out.len() < k {
        for batch in minibatches(n, size, rng) {
            if out.len() == k {
                break;
            }
            out.push(batch);
        }
    }
    out
}

/// The minibatches of one update: the learner's own schedule (`repeat` passes of `size`) when unpaced, else
/// the paced count for a collection of `n` steps after `steps_before` (see the module's header).
pub fn schedule(
    pace: Option<f64>,
    steps_before: u64,
    n: usize,
    size: usize,
    repeat: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<Vec<usize>> {
    match pace {
        Some(per_1k) => paced_minibatches(n, size, paced_updates(per_1k, steps_before, n), rng),
        None => (0..repeat).flat_map(|_| minibatches(n, size, rng)).collect(),
    }
}

/// The setting's problems, for `Algorithm::problems`.
pub fn pace_problems(pace: Option<f64>) -> Option<String> {
    match pace {
        Some(u) if !(u.is_finite() && u > 0.0) => {
            Some(format!("updates_per_1k_steps = {u}: needs a finite number > 0 (or leave it out)"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn paced_updates_depend_on_steps_only_not_on_how_they_were_collected() {
        // Two runs at 8 updates per 1k steps, one with short collections, one with long ones.
        for sizes in [vec![517usize; 40], vec![1203; 17], vec![31, 2000, 7, 999, 64]] {
            let mut before = 0u64;
            let mut total = 0usize;
            for &n in &sizes {
                total += paced_updates(8.0, before, n);
                before += n as u64;
            }
            assert_eq!(total as u64, before * 8 / 1000, "{sizes:?}");
        }
        assert_eq!(paced_updates(8.0, 0, 124), 0);
        assert_eq!(paced_updates(8.0, 124, 1), 1);
    }

    #[test]
    fn paced_minibatches_walk_through_whole_passes() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let batches = paced_minibatches(600, 256, 5, &mut rng);
        assert_eq!(batches.len(), 5);
        // A pass of 600 at 256 is cut into 256 + 344; five batches = two passes and a half.
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![256, 344, 256, 344, 256]);
        let mut first_pass: Vec<usize> = batches[0].iter().chain(&batches[1]).copied().collect();
        first_pass.sort_unstable();
        assert_eq!(first_pass, (0..600).collect::<Vec<_>>());
        // Smaller than a minibatch: the whole collection each time.
        assert!(paced_minibatches(100, 256, 3, &mut rng).iter().all(|b| b.len() == 100));
        assert!(paced_minibatches(0, 256, 3, &mut rng).is_empty());
    }

    #[test]
    fn unpaced_is_the_learners_own_schedule() {
        let mut a = ChaCha8Rng::seed_from_u64(1);
        let mut b = ChaCha8Rng::seed_from_u64(1);
        let own = schedule(None, 0, 1000, 128, 4, &mut a);
        let reference: Vec<Vec<usize>> = (0..4).flat_map(|_| minibatches(1000, 128, &mut b)).collect();
        assert_eq!(own, reference);
        assert!(pace_problems(Some(0.0)).is_some() && pace_problems(Some(f64::NAN)).is_some());
        assert!(pace_problems(Some(8.0)).is_none() && pace_problems(None).is_none());
    }
}
