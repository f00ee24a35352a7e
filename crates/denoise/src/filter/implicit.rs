//! What the history filters' user models learn from and how their state-time cut is set, shared by every kind:
//!
//! ```text
//! clicks    = the distinct (u, i) pairs of the training log     (implicit feedback: a row is a click)
//! negatives = `negatives` items per click, uniform over the catalogue, redrawn while u has a row with the
//!             item (seeded; up to 32 draws, then the last one is kept)
//! cut       = the belief below which the least-believed `drop_rate` share of the clicks lies (ties kept)
//! ```

use crate::DenoiseError;
use dsrm_models::truncation::truncation_threshold;
use dsrm_models::Interactions;
use dsrm_sim::World;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;

/// The training log as implicit feedback: its distinct clicks (sorted), and the user model's rows — each
/// click (target 1) followed by its `negatives` sampled non-clicks (target 0).
pub(crate) fn implicit_feedback(
    world: &World,
    negatives: usize,
    seed: u64,
) -> Result<(Vec<(u32, u32)>, Interactions), DenoiseError> {
    let log = &world.train;
    let mut pairs: Vec<(u32, u32)> = log.user.iter().copied().zip(log.item.iter().copied()).collect();
    pairs.sort_unstable();
    pairs.dedup();
    if pairs.is_empty() {
        return Err(DenoiseError::Data("history_filter: the training log has no rows".into()));
    }
    let seen: HashSet<(u32, u32)> = pairs.iter().copied().collect();
    let n_items = log.n_items as u32;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_f117);
    let mut data = Interactions { n_users: log.n_users, n_items: log.n_items, ..Default::default() };
    for &(u, i) in &pairs {
        data.user.push(u);
        data.item.push(i);
        data.target.push(1.0);
        for _ in 0..negatives {
            let mut j = rng.gen_range(0..n_items);
            for _ in 0..32 {
                if !seen.contains(&(u, j)) {
                    break;
                }
                j = rng.gen_range(0..n_items);
            }
            data.user.push(u);
            data.item.push(j);
            data.target.push(0.0);
        }
    }
    Ok((pairs, data))
}

/// The cut over the training clicks' beliefs (each in (0, 1]): the least belief a kept interaction has, and
/// the share of the clicks below it (at most `drop_rate`; ties at the cut are kept). Computed on −ln belief,
/// so that equal beliefs tie exactly as T-CE's losses do.
pub(crate) fn belief_cut(beliefs: &[f64], drop_rate: f64) -> (f64, f64) {
    let losses: Vec<f64> = beliefs.iter().map(|b| -b.max(f64::MIN_POSITIVE).ln()).collect();
    let tau = truncation_threshold(&losses, drop_rate);
    let dropped = losses.iter().filter(|&&l| l > tau).count();
    ((-tau).exp(), dropped as f64 / losses.len().max(1) as f64)
}
