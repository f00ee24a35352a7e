//! `sasrec`: one SASRec self-attention block over the window rows; the state is the block's output at the
//! latest row (`docs/protocol.md` §3).
//!
//! The block follows EasyRL4Rec's `StateTracker_SASRec` (itself the SQN/SA2C port of SASRec), with H = d + 1:
//!
//! ```text
//! x   = dropout(rows · √H + P[position]) · mask        positions count from the oldest row in the window
//! q   = LN1(x)
//! a   = dropout(softmax_masked(Wq q · (Wk x)ᵀ / √H) · query_mask) · Wv x + q     1 head, causal + key padding
//! f   = LN_ff(dropout(W2 relu(W1 LN2(a))) + LN2(a))                              point-wise FFN, inner size H
//! o_t = LN3(f · mask)[last column]
//! ```
//!
//! **Padding.** Padded columns (on the left) are zero after the input mask; the latest row attends only to real
//! keys (the key mask) at or before it (the causal mask), and everything after the attention is position-wise,
//! so padded columns cannot reach o_t. Masked scores are set to −(2³² − 1) rather than −∞ (as EasyRL4Rec
//! does), so a padded query whose keys are all masked gets a finite uniform row instead of NaN; the query mask
//! then zeroes it.
//!
//! **Dropout** (p = 0.1 on the inputs, the attention weights and the FFN output) acts only in training mode;
//! trackers start in evaluation mode, so rollouts and evaluation are deterministic unless the agent calls
//! `set_training(true)` around its updates (tianshou's `policy.train()`).

use crate::embedding::ItemTable;
use crate::window::{window_rows, ResetReward, RewardRange};
use crate::{HistoryBatch, StateError, StateTracker};
use dsrm_nn::tch::nn::{self, LayerNorm, Linear, VarStore};
use dsrm_nn::tch::{Device, Kind, Tensor};
use serde::{Deserialize, Serialize};

/// Settings of the `sasrec` tracker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SasRecConfig {
    /// W, the number of most recent steps read; also the number of positional embeddings.
    pub window: usize,
    /// Read the pretrained item embeddings when the caller passes them (DORL-codes: false).
    pub use_pretrained: bool,
    /// Size of the tracker's own item embeddings (DORL-codes: 32).
    pub embedding_dim: i64,
    /// Keep the item table fixed (DSRM-HRL: true). The attention block always trains.
    pub freeze_embeddings: bool,
    /// Initial (r_min, r_max) of the reward normalisation; see `AvgConfig::reward_range`.
    pub reward_range: (f64, f64),
    /// Dropout probability in training mode (SASRec / EasyRL4Rec: 0.1).
    pub dropout: f64,
}

impl Default for SasRecConfig {
    fn default() -> Self {
        Self {
            window: 3,
            use_pretrained: false,
            embedding_dim: 32,
            freeze_embeddings: false,
            reward_range: (0.0, 1.0),
            dropout: 0.1,
        }
    }
}

/// Standard deviation of the tracker's own item embeddings (EasyRL4Rec: N(0, 0.1²)).
const LEARNED_INIT_STD: f64 = 0.1;
/// Standard deviation of the positional embeddings (EasyRL4Rec: N(0, 0.01²)).
const POSITION_INIT_STD: f64 = 0.01;
/// The score given to masked attention entries (EasyRL4Rec's −2³² + 1).
const MASKED_SCORE: f64 = -4_294_967_295.0;
/// LayerNorm epsilon (PyTorch's default).
const LN_EPS: f64 = 1e-5;

/// The `sasrec` tracker (state dimension d + 1).
#[derive(Debug)]
pub struct SasRecTracker {
    vs: VarStore,
    table: ItemTable,
    window: usize,
    range: RewardRange,
    dropout: f64,
    training: bool,
    /// `[W, H]` positional embeddings, position 0 = the oldest row in the window.
    positions: Tensor,
    ln_1: LayerNorm,
    ln_2: LayerNorm,
    ln_3: LayerNorm,
    ln_ff: LayerNorm,
    query: Linear,
    key: Linear,
    value: Linear,
    ff_1: Linear,
    ff_2: Linear,
}

impl SasRecTracker {
    /// Builds the tracker on `device`, in evaluation mode; `pretrained` is read only when `cfg.use_pretrained`.
    pub fn new(
        cfg: &SasRecConfig,
        n_items: usize,
        pretrained: Option<&Tensor>,
        device: Device,
    ) -> Result<Self, StateError> {
        if cfg.window == 0 {
            return Err(StateError::Config("sasrec: window must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&cfg.dropout) {
            return Err(StateError::Config(format!("sasrec: dropout must be in [0, 1), got {}", cfg.dropout)));
        }
        let range = RewardRange::new(cfg.reward_range.0, cfg.reward_range.1)?;
        let vs = VarStore::new(device);
        let root = vs.root();
        let pretrained = pretrained.filter(|_| cfg.use_pretrained);
        let table =
            ItemTable::new(&root, n_items, pretrained, cfg.embedding_dim, LEARNED_INIT_STD, cfg.freeze_embeddings)?;
        let h = table.dim() + 1;
        let w = cfg.window as i64;
        let positions = root.f_randn("pos_embedding", &[w, h], 0.0, POSITION_INIT_STD)?;
        let ln = |name: &str| nn::layer_norm(&root / name, vec![h], Default::default());
        let lin = |name: &str| nn::linear(&root / name, h, h, Default::default());
        Ok(Self {
            table,
            window: cfg.window,
            range,
            dropout: cfg.dropout,
            training: false,
            positions,
            ln_1: ln("ln_1"),
            ln_2: ln("ln_2"),
            ln_3: ln("ln_3"),
            ln_ff: ln("ln_ff"),
            query: lin("attn_q"),
            key: lin("attn_k"),
            value: lin("attn_v"),
            ff_1: lin("ff_1"),
            ff_2: lin("ff_2"),
            vs,
        })
    }

    /// Training mode turns dropout on (PyTorch's `train()`); evaluation mode (the default) turns it off.
    pub fn set_training(&mut self, training: bool) {
        self.training = training;
    }

    /// Whether dropout is active.
    pub fn is_training(&self) -> bool {
        self.training
    }

    /// The item table.
    pub fn item_table(&self) -> &ItemTable {
        &self.table
    }

    /// The current normalisation range.
    pub fn reward_range(&self) -> RewardRange {
        self.range
    }

    fn layer_norm(ln: &LayerNorm, x: &Tensor) -> Result<Tensor, StateError> {
        Ok(x.f_layer_norm(ln.normalized_shape.as_slice(), ln.ws.as_ref(), ln.bs.as_ref(), LN_EPS, true)?)
    }

    fn linear(l: &Linear, x: &Tensor) -> Result<Tensor, StateError> {
        Ok(x.f_linear(&l.ws, l.bs.as_ref())?)
    }

    fn drop(&self, x: &Tensor) -> Result<Tensor, StateError> {
        Ok(x.f_dropout(self.dropout, self.training)?)
    }

    /// The block's output at the latest row; see the module docs.
    pub fn try_states(&self, batch: &HistoryBatch) -> Result<Tensor, StateError> {
        let win = window_rows(batch, self.window, &self.table, &self.range, ResetReward::Normalised)?;
        let device = self.vs.device();
        let w = self.window as i64;
        let h = self.state_dim();
        let mask = win.mask.f_to_kind(Kind::Float)?.f_unsqueeze(-1)?; // [B, W, 1]

        // Positions count from the oldest row, as in EasyRL4Rec's left-aligned layout: p = j − (W − len).
        let column = Tensor::f_arange(w, (Kind::Int64, device))?.f_unsqueeze(0)?;
        let first = win.lengths.f_neg()?.f_add_scalar(w)?.f_unsqueeze(1)?;
        let position = column.f_sub(&first)?.f_clamp_min(0)?;
        let pos = Tensor::f_embedding(&self.positions, &position, -1, false, false)?;
        let x = win.rows.f_mul_scalar((h as f64).sqrt())?.f_add(&pos)?;
        let x = self.drop(&x)?.f_mul(&mask)?;

        // One head of causal self-attention; queries are normalised, keys and values are not (SASRec).
        let q_in = Self::layer_norm(&self.ln_1, &x)?;
        let q = Self::linear(&self.query, &q_in)?;
        let k = Self::linear(&self.key, &x)?;
        let v = Self::linear(&self.value, &x)?;
        let scores = q.f_matmul(&k.f_transpose(1, 2)?)?.f_div_scalar((h as f64).sqrt())?; // [B, Wq, Wk]
        let key_idx = Tensor::f_arange(w, (Kind::Int64, device))?;
        let causal = key_idx.f_unsqueeze(0)?.f_le_tensor(&key_idx.f_unsqueeze(1)?)?.f_unsqueeze(0)?; // k ≤ q
        let allowed = causal.f_logical_and(&win.mask.f_unsqueeze(1)?)?;
        let weights = scores.f_where_scalarother(&allowed, MASKED_SCORE)?.f_softmax(-1, Kind::Float)?.f_mul(&mask)?;
        let attended = self.drop(&weights)?.f_matmul(&v)?.f_add(&q_in)?;

        // Point-wise feed-forward with its own residual LayerNorm.
        let ff_in = Self::layer_norm(&self.ln_2, &attended)?;
        let ff = Self::linear(&self.ff_2, &Self::linear(&self.ff_1, &ff_in)?.f_relu()?)?;
        let ff = Self::layer_norm(&self.ln_ff, &self.drop(&ff)?.f_add(&ff_in)?)?;
        let out = Self::layer_norm(&self.ln_3, &ff.f_mul(&mask)?)?;
        Ok(out.f_select(1, w - 1)?)
    }
}

impl StateTracker for SasRecTracker {
    fn state_dim(&self) -> i64 {
        self.table.dim() + 1
    }

    fn window(&self) -> usize {
        self.window
    }

    /// Panics on a malformed batch; [`StateTracker::try_states`] reports it instead.
    fn states(&self, batch: &HistoryBatch) -> Tensor {
        SasRecTracker::try_states(self, batch).unwrap_or_else(|e| panic!("sasrec tracker: {e}"))
    }

    fn try_states(&self, batch: &HistoryBatch) -> Result<Tensor, StateError> {
        SasRecTracker::try_states(self, batch)
    }

    fn var_store(&self) -> &VarStore {
        &self.vs
    }

    fn var_store_mut(&mut self) -> &mut VarStore {
        &mut self.vs
    }

    fn name(&self) -> &'static str {
        "sasrec"
    }

    fn set_training(&mut self, training: bool) {
        SasRecTracker::set_training(self, training);
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

    fn tracker() -> SasRecTracker {
        let cfg = SasRecConfig { embedding_dim: 5, reward_range: (0.0, 5.0), ..SasRecConfig::default() };
        SasRecTracker::new(&cfg, 8, None, Device::Cpu).unwrap()
    }

    /// Short episodes use positions 0..len only: the last positional embedding cannot reach a t = 1 state
    /// (2 rows: start and one item), but does reach a full window.
    #[test]
    fn unused_positions_do_not_reach_short_episodes() {
        let _rng = seeded(5);
        let tracker = tracker();
        let short = HistoryBatch::new(&[(0, &[3], &[4.0])], 3, 8, Device::Cpu);
        let full = HistoryBatch::new(&[(0, &[3, 1, 2], &[4.0, 1.0, 2.0])], 3, 8, Device::Cpu);
        let (s0, f0) = (tracker.states(&short), tracker.states(&full));
        dsrm_nn::tch::no_grad(|| {
            let _ = tracker.positions.get(2).f_add_scalar_(3.0).unwrap();
        });
        assert!(tracker.states(&short).allclose(&s0, 1e-6, 1e-6, false));
        assert!(!tracker.states(&full).allclose(&f0, 1e-6, 1e-6, false));
    }

    #[test]
    fn dropout_only_in_training_mode() {
        let _rng = seeded(6);
        let mut tracker = tracker();
        let batch = random_batch(16, 3, 3, 8, 2);
        assert!(tracker.states(&batch).equal(&tracker.states(&batch)), "evaluation mode is deterministic");
        let eval = tracker.states(&batch);
        tracker.set_training(true);
        let (a, b) = (tracker.states(&batch), tracker.states(&batch));
        assert!(!a.equal(&b), "dropout draws differ between calls");
        assert!(!a.equal(&eval));
        StateTracker::set_training(&mut tracker, false);
        assert!(tracker.states(&batch).equal(&eval));
    }

    #[test]
    fn bad_dropout_is_a_config_error() {
        let cfg = SasRecConfig { dropout: 1.0, ..SasRecConfig::default() };
        assert!(matches!(SasRecTracker::new(&cfg, 4, None, Device::Cpu), Err(StateError::Config(_))));
    }
}
