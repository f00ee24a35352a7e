//! Fixtures for this crate's tests: a tiny synthetic KuaiRec world (generated once per test binary) and a
//! small averaging tracker, so the agents are tested independently of `dsrm-state`'s trackers.

use crate::trainer::TrackerBuilder;
use dsrm_nn::tch::nn::{self, VarStore};
use dsrm_nn::tch::{Device, Kind, Tensor};
use dsrm_sim::World;
use dsrm_state::{HistoryBatch, StateTracker};
use std::sync::OnceLock;

/// The tiny synthetic KuaiRec world (60 users x 200 items), DORL paper settings.
pub fn tiny_world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        use dsrm_data::synth::{generate, SynthConfig, SynthSize};
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("tiny");
        generate(&SynthConfig::for_size(SynthSize::Tiny), 7, &out, &mut |_, _, _| {}).unwrap();
        let data = dsrm_data::kuairec::load(&out, &Default::default()).unwrap();
        World::kuairec(&data, dsrm_sim::Preset::DorlPaper.settings(), &Default::default()).unwrap()
    })
}

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

/// Builds [`MeanTracker`]s (8-d embeddings, window 3) for the trainer.
pub fn mean_tracker_builder(n_items: usize) -> Box<TrackerBuilder<'static>> {
    Box::new(move || Ok(Box::new(MeanTracker::new(n_items, 8, 3)) as Box<dyn StateTracker>))
}
