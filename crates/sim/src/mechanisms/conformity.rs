//! Popularity-biased feedback (conformity; Mansoury et al., CIKM 2020, "Feedback loop and bias amplification
//! in recommender systems"): users report more liking for what is already popular, so the *logged* reward of a
//! served item is inflated by its popularity while the true reward (what they get) is not.
//!
//! ```text
//! z_i   = (ln(1 + n_i) − mean_j ln(1 + n_j)) / sd_j ln(1 + n_j)     n_i: rows of item i in the log so far
//! r_obs = r_true + β · z_i                                          (logged; metrics always use r_true)
//! ```
//!
//! The counts are the log's at the start of the round (a round's own serving is logged after it), over the
//! catalogue; with every count equal, z = 0.

/// z_i of every catalogue item from its log count; all 0 when the counts do not vary.
pub fn standardised_log_exposure(counts: &[u64]) -> Vec<f64> {
    let logs: Vec<f64> = counts.iter().map(|&c| (1.0 + c as f64).ln()).collect();
    let n = logs.len().max(1) as f64;
    let mean = logs.iter().sum::<f64>() / n;
    let sd = (logs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt();
    if sd <= f64::EPSILON {
        return vec![0.0; logs.len()];
    }
    logs.iter().map(|x| (x - mean) / sd).collect()
}

/// The logged rewards of one served episode: r_true + β · z_i per step.
pub fn logged(items: &[u32], rewards: &[f64], z: &[f64], beta: f64) -> Vec<f64> {
    items.iter().zip(rewards).map(|(&i, &r)| r + beta * z[i as usize]).collect()
}

/// Rows per catalogue item (`items` of a log; ids ≥ `n_items` are not the catalogue's and are skipped).
pub fn log_counts(items: &[u32], n_items: usize) -> Vec<u64> {
    let mut counts = vec![0u64; n_items];
    items.iter().filter(|&&i| (i as usize) < n_items).for_each(|&i| counts[i as usize] += 1);
    counts
}
