//! Turning per-item scores into one action, shared by every score-based policy.

use crate::{ItemMask, PolicyRng, Selection};
use rand::Rng;

/// Pick an allowed item from `scores` (one per catalogue item, higher is better).
///
/// * `Argmax`: the highest score among allowed items; ties go to the smallest id.
/// * `Sampled`: a draw from softmax(scores) restricted to allowed items (blocked items get probability 0,
///   as the anchors' masked logits at -inf).
///
/// Non-finite scores are treated as -inf. When every allowed score is -inf, falls back to a uniform
/// draw over allowed items so a policy never returns a blocked item.
pub fn select(scores: &[f64], mask: &ItemMask, selection: Selection, rng: &mut PolicyRng) -> u32 {
    debug_assert_eq!(scores.len(), mask.n_items());
    let mut best = None::<(u32, f64)>;
    for (i, &s) in scores.iter().enumerate() {
        let s = if s.is_finite() { s } else { f64::NEG_INFINITY };
        if mask.allows(i as u32) && s > f64::NEG_INFINITY && best.is_none_or(|(_, b)| s > b) {
            best = Some((i as u32, s));
        }
    }
    let Some((arg, max)) = best else { return uniform_allowed(mask, rng) };
    if selection == Selection::Argmax {
        return arg;
    }
    let total: f64 = scores
        .iter()
        .enumerate()
        .filter(|&(i, s)| mask.allows(i as u32) && s.is_finite())
        .map(|(_, &s)| (s - max).exp())
        .sum();
    let mut u = rng.gen::<f64>() * total;
    let mut last = arg;
    for (i, &s) in scores.iter().enumerate() {
        if mask.allows(i as u32) && s.is_finite() {
            let w = (s - max).exp();
            if u < w {
                return i as u32;
            }
            u -= w;
            last = i as u32;
        }
    }
    last
}

/// A uniform draw over the allowed items.
pub fn uniform_allowed(mask: &ItemMask, rng: &mut PolicyRng) -> u32 {
    let n = mask.n_items() as u32;
    // Rejection sampling is O(1) expected while most items are allowed (always, with 30-step episodes).
    if mask.n_allowed() * 2 >= mask.n_items() {
        loop {
            let i = rng.gen_range(0..n);
            if mask.allows(i) {
                return i;
            }
        }
    }
    let k = rng.gen_range(0..mask.n_allowed());
    (0..n).filter(|&i| mask.allows(i)).nth(k).expect("n_allowed > 0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn argmax_skips_blocked_and_breaks_ties_low() {
        let mut mask = ItemMask::all(4);
        let mut rng = PolicyRng::seed_from_u64(0);
        assert_eq!(select(&[1.0, 3.0, 3.0, 2.0], &mask, Selection::Argmax, &mut rng), 1);
        mask.block(1);
        assert_eq!(select(&[1.0, 3.0, 3.0, 2.0], &mask, Selection::Argmax, &mut rng), 2);
    }

    #[test]
    fn sampled_follows_softmax_and_never_blocked() {
        let mut mask = ItemMask::all(3);
        mask.block(0);
        let mut rng = PolicyRng::seed_from_u64(7);
        let scores = [10.0, 0.0, (3.0f64).ln()];
        let mut counts = [0u32; 3];
        for _ in 0..40_000 {
            counts[select(&scores, &mask, Selection::Sampled, &mut rng) as usize] += 1;
        }
        assert_eq!(counts[0], 0);
        let p2 = counts[2] as f64 / 40_000.0;
        assert!((p2 - 0.75).abs() < 0.01, "p2 = {p2}");
    }

    #[test]
    fn all_neg_inf_falls_back_to_allowed() {
        let mut mask = ItemMask::all(3);
        mask.block(1);
        let mut rng = PolicyRng::seed_from_u64(1);
        for _ in 0..100 {
            let a = select(&[f64::NEG_INFINITY; 3], &mask, Selection::Sampled, &mut rng);
            assert_ne!(a, 1);
        }
    }
}
