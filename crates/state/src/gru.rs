//! `gru`: a 1-layer GRU over the window rows; the state is its last hidden state (`docs/protocol.md` §3).
//!
//! Input and hidden size are both d + 1 (the rows [item embedding ⊕ r̂]); DORL-codes gives the tracker its own
//! 32-d item embeddings, so o_t has 33 dimensions by default.
//!
//! **Padding.** The window is right-aligned: padding sits on the left. A GRU run from h0 = 0 over padded steps
//! would still move h (its biases act on a zero input), so the padding would leak into the state. Instead of
//! PyTorch's packing (EasyRL4Rec's `pack_padded_sequence`), the cell is stepped over the W columns and a step
//! updates h only where its row is real: h ← mask ? GRUCell(x_j, h) : h. Padded steps leave h at h0 = 0, so the
//! result equals a GRU run over the real rows alone, and the last column always holds the latest row.

use crate::embedding::ItemTable;
use crate::window::{window_rows, ResetReward, RewardRange};
use crate::{HistoryBatch, StateError, StateTracker};
use dsrm_nn::tch::nn::VarStore;
use dsrm_nn::tch::{Device, Kind, Tensor};
use serde::{Deserialize, Serialize};

/// Settings of the `gru` tracker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GruConfig {
    /// W, the number of most recent steps read (DORL's runs use 3).
    pub window: usize,
    /// Read the pretrained item embeddings when the caller passes them (EasyRL4Rec: true; DORL-codes: false,
    /// the tracker learns its own).
    pub use_pretrained: bool,
    /// Size of the tracker's own item embeddings (DORL-codes: 32).
    pub embedding_dim: i64,
    /// Keep the item table fixed (DSRM-HRL: true). The GRU itself always trains.
    pub freeze_embeddings: bool,
    /// Initial (r_min, r_max) of the reward normalisation; see `AvgConfig::reward_range`.
    pub reward_range: (f64, f64),
}

impl Default for GruConfig {
    fn default() -> Self {
        Self { window: 3, use_pretrained: false, embedding_dim: 32, freeze_embeddings: false, reward_range: (0.0, 1.0) }
    }
}

/// Standard deviation of the tracker's own item embeddings (EasyRL4Rec's sequence trackers: N(0, 0.1²)).
const LEARNED_INIT_STD: f64 = 0.1;

/// The `gru` tracker (state dimension d + 1).
#[derive(Debug)]
pub struct GruTracker {
    vs: VarStore,
    table: ItemTable,
    window: usize,
    range: RewardRange,
    /// `[3H, H]`, `[3H, H]`, `[3H]`, `[3H]` in PyTorch's gate order (reset, update, new).
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
}

impl GruTracker {
    /// Builds the tracker on `device`; `pretrained` is read only when `cfg.use_pretrained`.
    pub fn new(
        cfg: &GruConfig,
        n_items: usize,
        pretrained: Option<&Tensor>,
        device: Device,
    ) -> Result<Self, StateError> {
        if cfg.window == 0 {
            return Err(StateError::Config("gru: window must be at least 1".into()));
        }
        let range = RewardRange::new(cfg.reward_range.0, cfg.reward_range.1)?;
        let vs = VarStore::new(device);
        let root = vs.root();
        let pretrained = pretrained.filter(|_| cfg.use_pretrained);
        let table =
            ItemTable::new(&root, n_items, pretrained, cfg.embedding_dim, LEARNED_INIT_STD, cfg.freeze_embeddings)?;
        // torch.nn.GRU's initialisation: every weight and bias U(−1/√H, 1/√H).
        let h = table.dim() + 1;
        let bound = 1.0 / (h as f64).sqrt();
        let gru = root.sub("gru");
        let w_ih = gru.f_uniform("weight_ih_l0", &[3 * h, h], -bound, bound)?;
        let w_hh = gru.f_uniform("weight_hh_l0", &[3 * h, h], -bound, bound)?;
        let b_ih = gru.f_uniform("bias_ih_l0", &[3 * h], -bound, bound)?;
        let b_hh = gru.f_uniform("bias_hh_l0", &[3 * h], -bound, bound)?;
        Ok(Self { vs, table, window: cfg.window, range, w_ih, w_hh, b_ih, b_hh })
    }

    /// The item table.
    pub fn item_table(&self) -> &ItemTable {
        &self.table
    }

    /// The current normalisation range.
    pub fn reward_range(&self) -> RewardRange {
        self.range
    }

    /// One GRU cell step on `[B, H]` inputs.
    fn cell(&self, x: &Tensor, h: &Tensor) -> Result<Tensor, StateError> {
        Ok(x.f_gru_cell(h, &self.w_ih, &self.w_hh, Some(&self.b_ih), Some(&self.b_hh))?)
    }

    /// The GRU's hidden state after the last real row; see the module docs for how padding is skipped.
    pub fn try_states(&self, batch: &HistoryBatch) -> Result<Tensor, StateError> {
        let win = window_rows(batch, self.window, &self.table, &self.range, ResetReward::Normalised)?;
        let b = win.rows.size()[0];
        let mut h = Tensor::f_zeros([b, self.state_dim()], (Kind::Float, self.vs.device()))?;
        for j in 0..self.window as i64 {
            let next = self.cell(&win.rows.f_select(1, j)?, &h)?;
            h = next.f_where_self(&win.mask.f_select(1, j)?.f_unsqueeze(1)?, &h)?;
        }
        Ok(h)
    }
}

impl StateTracker for GruTracker {
    fn state_dim(&self) -> i64 {
        self.table.dim() + 1
    }

    fn window(&self) -> usize {
        self.window
    }

    /// Panics on a malformed batch; [`StateTracker::try_states`] reports it instead.
    fn states(&self, batch: &HistoryBatch) -> Tensor {
        GruTracker::try_states(self, batch).unwrap_or_else(|e| panic!("gru tracker: {e}"))
    }

    fn try_states(&self, batch: &HistoryBatch) -> Result<Tensor, StateError> {
        GruTracker::try_states(self, batch)
    }

    fn var_store(&self) -> &VarStore {
        &self.vs
    }

    fn var_store_mut(&mut self) -> &mut VarStore {
        &mut self.vs
    }

    fn name(&self) -> &'static str {
        "gru"
    }

    fn set_reward_range(&mut self, r_min: f64, r_max: f64) -> Result<(), StateError> {
        self.range = RewardRange::new(r_min, r_max)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    /// At t = 1 (window 3) the rows are [pad, start ⊕ r̂(1), e(item) ⊕ r̂(r)]; the state must be two cell steps
    /// from h0 = 0 over the last two, as if the padded column did not exist.
    #[test]
    fn padded_steps_do_not_advance_the_hidden_state() {
        let _rng = seeded(11);
        let cfg = GruConfig { embedding_dim: 4, reward_range: (0.0, 5.0), ..GruConfig::default() };
        let tracker = GruTracker::new(&cfg, 6, None, Device::Cpu).unwrap();
        let batch = HistoryBatch::new(&[(0, &[2], &[3.0])], 3, 6, Device::Cpu);
        let got = tracker.states(&batch);

        let table = tracker.item_table();
        let start = Tensor::cat(&[table.start().unwrap(), Tensor::from_slice(&[0.2f32]).reshape([1, 1])], 1);
        let item =
            Tensor::cat(&[table.weight().get(2).reshape([1, 4]), Tensor::from_slice(&[0.6f32]).reshape([1, 1])], 1);
        let h0 = Tensor::zeros([1, 5], (Kind::Float, Device::Cpu));
        let h1 = tracker.cell(&start, &h0).unwrap();
        let want = tracker.cell(&item, &h1).unwrap();
        assert!(got.allclose(&want, 1e-6, 1e-6, false), "{got} vs {want}");
        // Whereas running the cell over the padded zero row first would change the result.
        let after_pad = tracker.cell(&Tensor::zeros([1, 5], (Kind::Float, Device::Cpu)), &h0).unwrap();
        let leaked = tracker.cell(&item, &tracker.cell(&start, &after_pad).unwrap()).unwrap();
        assert!(!got.allclose(&leaked, 1e-6, 1e-6, false));
    }
}
