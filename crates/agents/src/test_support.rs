//! Fixtures for this crate's tests and the trainer's (feature `test-support`): a small averaging tracker, so
//! the agents are tested independently of `dsrm-state`'s trackers. The tiny world is `dsrm_sim::test_support`.

use dsrm_nn::tch::nn::{self, VarStore};
use dsrm_nn::tch::{Device, Kind, Tensor};
use dsrm_state::{HistoryBatch, StateTracker};

/// Mean of the window's item embeddings ⊕ mean normalised reward: `avg` without pretrained embeddings.
pub struct MeanTracker {
    vs: VarStore,
    emb: nn::Embedding,
    dim: i64,
    window: usize,
    range: (f64, f64),
}

impl MeanTracker {
    pub fn new(n_items: usize, dim: i64, window: usize) -> Self {
        let vs = VarStore::new(Device::Cpu);
        let emb = nn::embedding(
            vs.root() / "emb",
            n_items as i64 + 1,
            dim,
            nn::EmbeddingConfig { ws_init: nn::Init::Randn { mean: 0.0, stdev: 0.1 }, ..Default::default() },
        );
        Self { vs, emb, dim, window, range: (0.0, 1.0) }
    }
}

impl StateTracker for MeanTracker {
    fn state_dim(&self) -> i64 {
        self.dim + 1
    }
    fn window(&self) -> usize {
        self.window
    }
    fn states(&self, b: &HistoryBatch) -> Tensor {
        let mask = b.mask.unsqueeze(-1);
        let count = b.mask.sum_dim_intlist([1i64].as_slice(), true, Kind::Float).clamp_min(1.0);
        let e = b.items.apply(&self.emb) * &mask;
        let e = e.sum_dim_intlist([1i64].as_slice(), false, Kind::Float) / &count;
        let (lo, hi) = self.range;
        let r = ((&b.rewards - lo) / (hi - lo).max(1e-12)).clamp_max(1.0) * &b.mask;
        let r = r.sum_dim_intlist([1i64].as_slice(), true, Kind::Float) / &count;
        Tensor::cat(&[e, r], 1)
    }
    fn var_store(&self) -> &VarStore {
        &self.vs
    }
    fn var_store_mut(&mut self) -> &mut VarStore {
        &mut self.vs
    }
    fn name(&self) -> &'static str {
        "test-mean"
    }
    fn set_reward_range(&mut self, r_min: f64, r_max: f64) -> Result<(), dsrm_state::StateError> {
        self.range = (r_min, r_max);
        Ok(())
    }
}
