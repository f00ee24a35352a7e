//! State trackers: how the observed user state o_t is built from the episode's recent (item, reward)
//! history (`simulators.md` §3). One trait; agents do not care which tracker they get.
//!
//! Pipeline position: data -> sim -> **state** (-> denoiser) -> agents -> evaluation.

use dsrm_nn::tch::nn::VarStore;
use dsrm_nn::tch::{Device, Kind, Tensor};

/// A batch of partial episodes, right-aligned in a window of the last `window` steps.
///
/// `items[b, j]` / `rewards[b, j]` hold the j-th of the last `window` steps of episode b, oldest first;
/// positions before the episode's start hold `pad` (= n_items) and reward 0, with `mask[b, j] = 0`.
#[derive(Debug)]
pub struct HistoryBatch {
    /// `[B, window]` int64 item ids, `pad` where empty.
    pub items: Tensor,
    /// `[B, window]` float raw rewards (trackers normalise them).
    pub rewards: Tensor,
    /// `[B, window]` float, 1 for a real step.
    pub mask: Tensor,
    /// `[B]` int64: steps taken so far in each episode (t), which may exceed `window`.
    pub steps: Tensor,
    /// `[B]` int64 dense user ids.
    pub users: Tensor,
    pub window: usize,
    /// The padding item id (the catalogue size).
    pub pad: i64,
}

impl HistoryBatch {
    /// Builds a batch from per-episode `(user, items, rewards)` histories (full episodes so far; only the last
    /// `window` steps are kept).
    pub fn new(histories: &[(u32, &[u32], &[f64])], window: usize, n_items: usize, device: Device) -> Self {
        let b = histories.len();
        let pad = n_items as i64;
        let mut items = vec![pad; b * window];
        let mut rewards = vec![0f32; b * window];
        let mut mask = vec![0f32; b * window];
        let mut steps = Vec::with_capacity(b);
        let mut users = Vec::with_capacity(b);
        for (row, (user, its, rs)) in histories.iter().enumerate() {
            let t = its.len();
            let keep = t.min(window);
            for k in 0..keep {
                let j = window - keep + k;
                items[row * window + j] = i64::from(its[t - keep + k]);
                rewards[row * window + j] = rs[t - keep + k] as f32;
                mask[row * window + j] = 1.0;
            }
            steps.push(t as i64);
            users.push(i64::from(*user));
        }
        let shape = [b as i64, window as i64];
        Self {
            items: Tensor::from_slice(&items).reshape(shape).to_device(device),
            rewards: Tensor::from_slice(&rewards).reshape(shape).to_device(device),
            mask: Tensor::from_slice(&mask).reshape(shape).to_device(device),
            steps: Tensor::from_slice(&steps).to_device(device),
            users: Tensor::from_slice(&users).to_device(device),
            window,
            pad,
        }
    }

    /// Number of episodes in the batch.
    pub fn len(&self) -> usize {
        self.items.size()[0] as usize
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Float kind used by trackers.
    pub const KIND: Kind = Kind::Float;
}

/// Builds the observed state o_t of each episode in a batch.
pub trait StateTracker: Send {
    /// Dimension of o_t.
    fn state_dim(&self) -> i64;
    /// How many past steps the tracker reads (the `HistoryBatch` window to build).
    fn window(&self) -> usize;
    /// `[B, state_dim]` states, differentiable with respect to the tracker's parameters.
    fn states(&self, batch: &HistoryBatch) -> Tensor;
    /// The tracker's parameters (for optimisers and checkpoints); may hold frozen variables.
    fn var_store(&self) -> &VarStore;
    /// Mutable access, for restoring checkpoints.
    fn var_store_mut(&mut self) -> &mut VarStore;
    /// Name for logs (`avg`, `gru`, `sasrec`).
    fn name(&self) -> &'static str;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_batch_right_aligns_the_last_window_steps() {
        let b = HistoryBatch::new(&[(0, &[5, 6, 7, 8], &[0.1, 0.2, 0.3, 0.4]), (1, &[], &[])], 3, 10, Device::Cpu);
        assert_eq!(Vec::<i64>::try_from(b.items.reshape([-1])).unwrap(), [6, 7, 8, 10, 10, 10]);
        assert_eq!(Vec::<f32>::try_from(b.mask.reshape([-1])).unwrap(), [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(Vec::<i64>::try_from(&b.steps).unwrap(), [4, 0]);
    }
}
