//! The cut that drops the largest share of a set of scores (losses, or negated beliefs): T-CE truncates its
//! training rows with it (`crate::denoising_loss`), and the history filters of the DSRM ablation calibrate their
//! state-time cut with it over the training clicks (`dsrm_denoise::filter`).

/// The largest loss a row may have and still be kept when the `drop` share of `losses` with the largest
/// values is dropped: the ⌊drop · n⌋-th largest loss is the first one cut. Rows tied with the cut are kept, so
/// at most that share is dropped. `f64::INFINITY` when nothing is dropped.
pub fn truncation_threshold(losses: &[f64], drop: f64) -> f64 {
    let n_drop = (drop * losses.len() as f64).floor() as usize;
    if n_drop == 0 || losses.is_empty() {
        return f64::INFINITY;
    }
    let mut sorted = losses.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    // Keep strictly below the smallest dropped loss... unless it equals the largest kept one (a tie): then
    // keep the tie, dropping fewer.
    let cut = sorted[n_drop - 1];
    let largest_kept = sorted.get(n_drop).copied().unwrap_or(f64::NEG_INFINITY);
    if largest_kept >= cut {
        cut
    } else {
        largest_kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_drops_the_largest_losses_and_keeps_ties() {
        let losses = [0.1, 5.0, 0.3, 2.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8];
        // 20% of 10 rows: the two largest (5.0 and 2.0) go.
        let th = truncation_threshold(&losses, 0.2);
        assert_eq!(losses.iter().filter(|&&l| l <= th).count(), 8);
        assert!((0.8..2.0).contains(&th));
        // A tie at the cut is kept.
        let tied = [1.0, 1.0, 1.0, 0.5];
        assert_eq!(truncation_threshold(&tied, 0.5), 1.0);
        assert_eq!(truncation_threshold(&losses, 0.05), f64::INFINITY);
    }
}
