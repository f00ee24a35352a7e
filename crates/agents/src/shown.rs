//! Blocking the items an episode has already shown (`mask_shown` of PPO and HRL). The paper's low level samples
//! "after masking"; with the setting on, an agent never repeats an item within an episode, and the same items
//! are blocked in the training collection (probability 0), in the update (logits pushed to −1e9, so the PPO
//! ratio reads the distribution the collection sampled) and in every evaluation mode, free browsing included.
//!
//! ```text
//! S_t = the items of the episode before step t
//! blocked(S_t) = S_t  unless S_t covers the whole catalogue (then nothing: an episode longer than the catalogue)
//! collection:  p_i ← 0 for i ∈ blocked(S_t), a_t ~ p / Σ p,  log π(a_t) = ln(p_a / Σ p)
//! update:      logits_i ← logits_i − 1e9 for i ∈ blocked(S_t)      (finite, so p · log p stays 0)
//! evaluation:  the mode's mask plus blocked(S_t)
//! ```

use crate::rollout::Rollout;
use crate::Result;
use dsrm_nn::tch::{Device, Tensor};
use dsrm_policy::ItemMask;

/// Whether the items `shown` are blocked: unless they are every one of the `n_items`.
pub fn masks_shown(shown: &[u32], n_items: usize) -> bool {
    if shown.len() < n_items {
        return true;
    }
    let mut distinct = shown.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    distinct.len() < n_items
}

/// Zeroes the probabilities of the `shown` items in `row` (a distribution over the catalogue) and returns the
/// mass left, by which the caller renormalises; 1 when nothing is blocked.
pub fn block_shown(row: &mut [f32], shown: &[u32]) -> f64 {
    if !masks_shown(shown, row.len()) {
        return 1.0;
    }
    for &item in shown {
        row[item as usize] = 0.0;
    }
    row.iter().map(|&p| f64::from(p)).sum()
}

/// The update's `[steps.len(), n_items]` logits with, when `on`, the items each step's episode had shown before
/// it pushed to −1e9; unchanged otherwise.
pub fn mask_logits(logits: Tensor, on: bool, ro: &Rollout, steps: &[usize]) -> Result<Tensor> {
    if !on {
        return Ok(logits);
    }
    let n_items = logits.size().last().copied().unwrap_or(0) as usize;
    Ok(logits.f_add(&shown_penalty(ro, steps, n_items, logits.device())?)?)
}

/// `[steps.len(), n_items]`: −1e9 at the items each step's episode had shown before it, 0 elsewhere.
fn shown_penalty(ro: &Rollout, steps: &[usize], n_items: usize, device: Device) -> Result<Tensor> {
    let mut penalty = vec![0f32; steps.len() * n_items];
    for (k, &s) in steps.iter().enumerate() {
        let start = ro.starts[ro.episode_of[s] as usize];
        let shown = &ro.actions[start..s];
        if masks_shown(shown, n_items) {
            for &item in shown {
                penalty[k * n_items + item as usize] = -1e9;
            }
        }
    }
    Ok(Tensor::from_slice(&penalty).f_reshape([steps.len() as i64, n_items as i64])?.f_to_device(device)?)
}

/// When `on`, the evaluation mode's `mask` with the `shown` items blocked too; `None` when off, when that blocks
/// nothing new or when it would leave no item allowed.
pub fn with_shown_blocked(on: bool, mask: &ItemMask, shown: &[u32]) -> Option<ItemMask> {
    if !on || !masks_shown(shown, mask.n_items()) || shown.iter().all(|&i| !mask.allows(i)) {
        return None;
    }
    let mut m = mask.clone();
    shown.iter().for_each(|&i| m.block(i));
    (m.n_allowed() > 0).then_some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_episode_that_showed_the_whole_catalogue_blocks_nothing() {
        assert!(masks_shown(&[0, 1, 1], 3));
        assert!(!masks_shown(&[2, 0, 1, 1], 3));
        let mut row = [0.25f32, 0.25, 0.5];
        assert_eq!(block_shown(&mut row, &[2]), 0.5);
        assert_eq!(row, [0.25, 0.25, 0.0]);
        let mut row = [0.25f32, 0.25, 0.5];
        assert_eq!(block_shown(&mut row, &[0, 1, 2]), 1.0);
        assert_eq!(row, [0.25, 0.25, 0.5]);
        let mask = ItemMask::all(3);
        let m = with_shown_blocked(true, &mask, &[1]).expect("blocks item 1");
        assert!(m.allows(0) && !m.allows(1) && m.allows(2));
        assert!(with_shown_blocked(true, &mask, &[0, 1, 2]).is_none());
        assert!(with_shown_blocked(true, &m, &[1]).is_none(), "already blocked: nothing new");
        assert!(with_shown_blocked(false, &mask, &[1]).is_none(), "off: the mode's mask alone");
    }
}
