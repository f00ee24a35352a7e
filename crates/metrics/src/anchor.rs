//! The anchors' reward, length and coverage metrics (`docs/protocol.md` §6.1), exactly as DORL-codes /
//! EasyRL4Rec log them: `R_tra`, `len_tra`, `ctr` (= R_each), `CV`, `CV_turn`.
//!
//! Conventions for degenerate input (never NaN from an empty denominator): no episode gives 0 for the
//! per-episode means, no step gives 0 for the per-step ratios, an empty catalogue gives CV = 0.

use crate::Episode;

/// R_tra = (1/N_ep) Σ_j Σ_t r_{j,t}: mean cumulative reward per episode (EasyRL4Rec "R_cumu").
/// 0 for no episode.
pub fn r_tra(episodes: &[Episode]) -> f64 {
    if episodes.is_empty() {
        return 0.0;
    }
    total_reward(episodes) / episodes.len() as f64
}

/// Length = (1/N_ep) Σ_j L_j (`len_tra`); exactly k in NX_k. 0 for no episode.
pub fn mean_length(episodes: &[Episode]) -> f64 {
    if episodes.is_empty() {
        return 0.0;
    }
    total_steps(episodes) as f64 / episodes.len() as f64
}

/// R_each = Σ_j Σ_t r_{j,t} / Σ_j L_j = R_tra / Length (`ctr`; EasyRL4Rec "R_avg").
///
/// This is the **pooled** per-step reward, not the mean of per-episode ratios: long episodes weigh more,
/// as in the anchors. 0 when there is no step.
pub fn r_each(episodes: &[Episode]) -> f64 {
    let steps = total_steps(episodes);
    if steps == 0 {
        return 0.0;
    }
    total_reward(episodes) / steps as f64
}

/// CV = |{i : e_i > 0}| / n: the fraction of the catalogue recommended at least once (coverage), from
/// the exposure counts of [`crate::exposure_counts`] (n = `exposure.len()`). 0 for an empty catalogue.
pub fn cv(exposure: &[u64]) -> f64 {
    if exposure.is_empty() {
        return 0.0;
    }
    distinct_exposed(exposure) as f64 / exposure.len() as f64
}

/// CV_turn = |{i : e_i > 0}| / Σ_j L_j ("CV_M" in the anchors' plots): distinct items per step.
///
/// Σ_j L_j is taken as Σ_i e_i, which is the same number when every recommended id is inside the
/// catalogue. 0 when there is no step.
pub fn cv_turn(exposure: &[u64]) -> f64 {
    let steps: u64 = exposure.iter().sum();
    if steps == 0 {
        return 0.0;
    }
    distinct_exposed(exposure) as f64 / steps as f64
}

/// Σ_j Σ_t r_{j,t}, episode by episode, in order.
pub(crate) fn total_reward(episodes: &[Episode]) -> f64 {
    episodes.iter().map(Episode::total_reward).sum()
}

/// Σ_j L_j.
pub(crate) fn total_steps(episodes: &[Episode]) -> usize {
    episodes.iter().map(Episode::len).sum()
}

/// |{i : e_i > 0}|.
pub(crate) fn distinct_exposed(exposure: &[u64]) -> usize {
    exposure.iter().filter(|&&e| e > 0).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposure_counts;

    fn ep(items: &[u32], rewards: &[f64]) -> Episode {
        Episode::new(0, items.to_vec(), rewards.to_vec())
    }

    /// Two episodes over a 5-item catalogue:
    /// e1 = items [0, 1, 1], rewards [1, 2, 3] -> sum 6, L 3
    /// e2 = items [2],       rewards [4]       -> sum 4, L 1
    fn two() -> Vec<Episode> {
        vec![ep(&[0, 1, 1], &[1.0, 2.0, 3.0]), ep(&[2], &[4.0])]
    }

    #[test]
    fn reward_and_length_by_hand() {
        let e = two();
        // R_tra = (6 + 4) / 2 = 5; Length = (3 + 1) / 2 = 2; R_each = 10 / 4 = 2.5.
        assert_eq!(r_tra(&e), 5.0);
        assert_eq!(mean_length(&e), 2.0);
        assert_eq!(r_each(&e), 2.5);
    }

    #[test]
    fn r_each_is_pooled_not_mean_of_ratios() {
        let e = two();
        // Mean of per-episode ratios would be (6/3 + 4/1) / 2 = 3, the pooled value is 10/4 = 2.5.
        let mean_of_ratios = e.iter().map(|x| x.total_reward() / x.len() as f64).sum::<f64>() / 2.0;
        assert_eq!(mean_of_ratios, 3.0);
        assert_eq!(r_each(&e), 2.5);
        assert_ne!(r_each(&e), mean_of_ratios);
        assert_eq!(r_each(&e), r_tra(&e) / mean_length(&e));
    }

    #[test]
    fn coverage_by_hand() {
        let x = exposure_counts(&two(), 5);
        // e = [1, 2, 1, 0, 0]: 3 distinct items, 4 steps, n = 5.
        assert_eq!(x, vec![1, 2, 1, 0, 0]);
        assert_eq!(cv(&x), 3.0 / 5.0);
        assert_eq!(cv_turn(&x), 3.0 / 4.0);
    }

    #[test]
    fn degenerate_inputs_are_zero() {
        assert_eq!(r_tra(&[]), 0.0);
        assert_eq!(mean_length(&[]), 0.0);
        assert_eq!(r_each(&[]), 0.0);
        let empty = [ep(&[], &[])];
        assert_eq!(r_each(&empty), 0.0);
        assert_eq!(mean_length(&empty), 0.0);
        assert_eq!(cv(&[]), 0.0);
        assert_eq!(cv_turn(&[0, 0]), 0.0);
    }
}
