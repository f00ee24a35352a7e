//! State trackers: how the observed user state o_t is built from the episode's recent (item, reward)
//! history (`docs/protocol.md` §3). One trait; agents do not care which tracker they get.
//!
//! Pipeline position: data -> sim -> **state** (-> denoiser) -> agents -> evaluation.
//!
//! * [`avg`]: DORL's masked mean over the window (the default; exact DORL semantics).
//! * [`gru`]: a 1-layer GRU over the window.
//! * [`sasrec`]: one SASRec self-attention block over the window.
//! * [`config`]: the `[tracker]` config ([`TrackerConfig`]) and [`build`], which picks one.
//!
//! All three read the same window of rows [item embedding ⊕ normalised reward] ([`window`]), built from the
//! same item table ([`embedding`]): the catalogue, a padding row and DORL's learned "start" row.
//! Every tracker owns its [`VarStore`], so agents give it its own optimiser (DORL: separate Adam for the policy
//! and the tracker) and checkpoint it by name.

pub mod avg;
pub mod batch_one;
pub mod config;
pub mod embedding;
pub mod gru;
pub mod pretrain;
pub mod sasrec;
pub mod window;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tracker_tests;

pub use avg::{AvgConfig, AvgTracker};
pub use batch_one::BatchOneTracker;
pub use config::{build, TrackerConfig};
pub use embedding::ItemTable;
pub use gru::{GruConfig, GruTracker};
pub use pretrain::{pretrain_next_item, PretrainConfig, PretrainEpoch, PretrainReport};
pub use sasrec::{SasRecConfig, SasRecTracker};
pub use window::RewardRange;

use dsrm_nn::tch::nn::VarStore;
use dsrm_nn::tch::{Device, Kind, TchError, Tensor};

/// Errors from building or running a state tracker. Shapes and ids come from data, so they are checked and
/// reported here instead of panicking inside libtorch.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("libtorch: {0}")]
    Torch(#[from] TchError),
    /// A [`HistoryBatch`] whose tensors do not fit together or do not fit the tracker.
    #[error("history batch: {0}")]
    Batch(String),
    /// Pretrained item embeddings of the wrong shape or kind.
    #[error("pretrained item embeddings: {0}")]
    Embeddings(String),
    /// A reward range that cannot normalise (r_max must be finite and above r_min).
    #[error("reward range ({r_min}, {r_max}): need finite r_min < r_max")]
    RewardRange { r_min: f64, r_max: f64 },
    /// A configuration value out of its domain.
    #[error("tracker config: {0}")]
    Config(String),
}

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

    /// Like [`states`](Self::states), but a malformed batch (shapes that do not fit, item ids outside the
    /// catalogue) is an error instead of a panic. The trackers of this crate implement `states` on top of it,
    /// so callers that build batches from untrusted data should call this one.
    fn try_states(&self, batch: &HistoryBatch) -> Result<Tensor, StateError> {
        Ok(self.states(batch))
    }

    /// A loss the agent adds to its own when it trains on states computed from `batch` (`None`: none). The
    /// DSRM stage under joint fine-tuning returns λ_D · L_DSRM here, so every agent fine-tunes the denoiser
    /// without knowing it is there.
    fn auxiliary_loss(&self, _batch: &HistoryBatch) -> Result<Option<Tensor>, StateError> {
        Ok(None)
    }

    /// Switches train-only behaviour on or off (SASRec's dropout; PyTorch's `train()` / `eval()`).
    /// Trackers without such behaviour ignore it.
    fn set_training(&mut self, _training: bool) {}

    /// Sets the (r_min, r_max) range rewards are normalised with: training uses the simulated environment's
    /// (0, MAX_R − MIN_R), evaluation the ground truth's (min, max) (`docs/protocol.md` §3), so one tracker
    /// switches between them. Trackers that do not read rewards ignore it.
    fn set_reward_range(&mut self, _r_min: f64, _r_max: f64) -> Result<(), StateError> {
        Ok(())
    }

    /// Forgets the states a tracker remembers between calls (the frozen DSRM stage's memo of purified rows);
    /// the trainer calls it at every epoch start, so an epoch's states depend on that epoch alone and a resumed
    /// run computes what an uninterrupted one did. Trackers that remember nothing ignore it.
    fn clear_cache(&self) {}

    /// A copy of the tracker as it is now (weights and reward range) that computes one history's state
    /// without libtorch ([`batch_one`]), for a server; `None` (the default) where the tracker has none.
    fn batch_one(&self) -> Result<Option<Box<dyn BatchOneTracker>>, StateError> {
        Ok(None)
    }
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
