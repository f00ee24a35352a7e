//! `avg`: DORL's state tracker, the masked mean of the window rows (`docs/protocol.md` §3).
//!
//! o_t = mean of the window rows [item embedding ⊕ r̂] (see [`crate::window`] for the rows):
//!
//! * t = 0: [start ⊕ 1], the raw 1;
//! * 0 < t < W: the t real rows and the start row [start ⊕ r̂(1)], t + 1 rows in all;
//! * t ≥ W: the last W real rows.
//!
//! Item embeddings are the world model's pretrained DeepFM item embeddings (41-d on KuaiRec, so o_t has 42
//! dimensions; 17-d on KuaiRand-Pure, 18) plus a learned start vector; DORL fine-tunes them with the policy
//! (`freeze_embeddings = false`), DSRM-HRL freezes them so the states DSRM was trained on keep their
//! distribution (`docs/design.md` §4.2).

use crate::batch_one::{check_width, BatchOneTracker};
use crate::embedding::ItemTable;
use crate::window::{window_rows, ResetReward, RewardRange};
use crate::{HistoryBatch, StateError, StateTracker};
use dsrm_nn::tch::nn::VarStore;
use dsrm_nn::tch::{Device, Kind, Tensor};
use serde::{Deserialize, Serialize};

/// Settings of the `avg` tracker; the defaults are DORL's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AvgConfig {
    /// W, the number of most recent steps averaged (DORL `window_size` 3).
    pub window: usize,
    /// Read the pretrained item embeddings when the caller passes them (DORL: always).
    pub use_pretrained: bool,
    /// Size of the learned item embeddings used when there are no pretrained ones (EasyRL4Rec's 32).
    pub embedding_dim: i64,
    /// Keep the item table (start vector included) fixed: DORL false, DSRM-HRL true.
    pub freeze_embeddings: bool,
    /// Initial (r_min, r_max) of the reward normalisation. The caller replaces it with the training range
    /// (0, MAX_R − MIN_R) or the evaluation range (min, max of the ground truth) via `set_reward_range`.
    pub reward_range: (f64, f64),
}

impl Default for AvgConfig {
    fn default() -> Self {
        Self { window: 3, use_pretrained: true, embedding_dim: 32, freeze_embeddings: false, reward_range: (0.0, 1.0) }
    }
}

/// Standard deviation of learned (non-pretrained) item embeddings: EasyRL4Rec's base tracker, N(0, 0.01²).
const LEARNED_INIT_STD: f64 = 0.01;

/// DORL's `avg` tracker (state dimension d + 1).
#[derive(Debug)]
pub struct AvgTracker {
    vs: VarStore,
    table: ItemTable,
    window: usize,
    range: RewardRange,
}

impl AvgTracker {
    /// Builds the tracker on `device`. `pretrained` is the `[n_items, d]` item table of the world model (copied).
    pub fn new(
        cfg: &AvgConfig,
        n_items: usize,
        pretrained: Option<&Tensor>,
        device: Device,
    ) -> Result<Self, StateError> {
        if cfg.window == 0 {
            return Err(StateError::Config("avg: window must be at least 1".into()));
        }
        let range = RewardRange::new(cfg.reward_range.0, cfg.reward_range.1)?;
        let vs = VarStore::new(device);
        let pretrained = pretrained.filter(|_| cfg.use_pretrained);
        let table = ItemTable::new(
            &vs.root(),
            n_items,
            pretrained,
            cfg.embedding_dim,
            LEARNED_INIT_STD,
            cfg.freeze_embeddings,
        )?;
        Ok(Self { vs, table, window: cfg.window, range })
    }

    /// The item table (its catalogue rows can score items against a continuous action).
    pub fn item_table(&self) -> &ItemTable {
        &self.table
    }

    /// The current normalisation range.
    pub fn reward_range(&self) -> RewardRange {
        self.range
    }

    /// The masked mean of the window rows; see the module docs.
    pub fn try_states(&self, batch: &HistoryBatch) -> Result<Tensor, StateError> {
        let win = window_rows(batch, self.window, &self.table, &self.range, ResetReward::Raw)?;
        // Padding rows are exactly zero, so the plain sum is the masked sum.
        let sum = win.rows.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?;
        let count = win.lengths.f_unsqueeze(1)?.f_to_kind(Kind::Float)?.f_clamp_min(1.0)?;
        Ok(sum.f_div(&count)?)
    }
}

impl StateTracker for AvgTracker {
    fn state_dim(&self) -> i64 {
        self.table.dim() + 1
    }

    fn window(&self) -> usize {
        self.window
    }

    /// Panics on a malformed batch; [`StateTracker::try_states`] reports it instead.
    fn states(&self, batch: &HistoryBatch) -> Tensor {
        AvgTracker::try_states(self, batch).unwrap_or_else(|e| panic!("avg tracker: {e}"))
    }

    fn try_states(&self, batch: &HistoryBatch) -> Result<Tensor, StateError> {
        AvgTracker::try_states(self, batch)
    }

    fn var_store(&self) -> &VarStore {
        &self.vs
    }

    fn var_store_mut(&mut self) -> &mut VarStore {
        &mut self.vs
    }

    fn name(&self) -> &'static str {
        "avg"
    }

    fn batch_one(&self) -> Result<Option<Box<dyn BatchOneTracker>>, StateError> {
        let table = dsrm_nn::frozen_mlp::to_f32(self.table.weight()).map_err(|e| StateError::Batch(e.to_string()))?;
        let dim = self.table.dim() as usize;
        let n_items = self.table.n_items() as usize;
        Ok(Some(Box::new(AvgBatchOne { table, dim, n_items, window: self.window, range: self.range })))
    }

    fn set_reward_range(&mut self, r_min: f64, r_max: f64) -> Result<(), StateError> {
        self.range = RewardRange::new(r_min, r_max)?;
        Ok(())
    }
}

/// The `avg` tracker without libtorch (`StateTracker::batch_one`): the same rows as [`crate::window`] for one
/// history, summed and divided by their count.
struct AvgBatchOne {
    /// The `[n_items + 2, d]` item table, row-major (row n_items + 1 is the start vector).
    table: Vec<f32>,
    dim: usize,
    n_items: usize,
    window: usize,
    range: RewardRange,
}

impl BatchOneTracker for AvgBatchOne {
    fn state_dim(&self) -> usize {
        self.dim + 1
    }

    fn state(&mut self, items: &[u32], rewards: &[f64], out: &mut [f32]) -> Result<(), StateError> {
        check_width(out, self.dim + 1)?;
        if items.len() != rewards.len() {
            return Err(StateError::Batch(format!("{} items but {} rewards", items.len(), rewards.len())));
        }
        let (t, d) = (items.len(), self.dim);
        let keep = t.min(self.window);
        out.fill(0.0);
        let (r_min, r_max) = self.range.bounds();
        // r̂ in f32, as the libtorch rows compute it from the batch's f32 rewards.
        let r_hat = |r: f32| ((r - r_min as f32) / (r_max - r_min) as f32).min(1.0);
        let mut add = |row: usize, r: f32| {
            let e = &self.table[row * d..(row + 1) * d];
            out[..d].iter_mut().zip(e).for_each(|(o, &x)| *o += x);
            out[d] += r;
        };
        for (&item, &r) in items[t - keep..].iter().zip(&rewards[t - keep..]) {
            if item as usize >= self.n_items {
                return Err(StateError::Batch(format!("item id {item} outside the catalogue 0..{}", self.n_items)));
            }
            add(item as usize, r_hat(r as f32));
        }
        if t < self.window {
            // DORL's start row; at t = 0 with the raw reward 1 (`ResetReward::Raw`).
            add(self.n_items + 1, if t == 0 { 1.0 } else { r_hat(1.0) });
        }
        let count = (keep + usize::from(t < self.window)).max(1) as f32;
        out.iter_mut().for_each(|o| *o /= count);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    /// Hand-set table: d = 2, items e0 = [1, 2], e1 = [3, 4], e2 = [5, 6], e3 = [7, 8]; start = [0.5, −0.5].
    fn hand_tracker() -> AvgTracker {
        let pretrained = Tensor::from_slice(&[1f32, 2., 3., 4., 5., 6., 7., 8.]).reshape([4, 2]);
        let cfg = AvgConfig { reward_range: (0.0, 5.0), ..AvgConfig::default() };
        let t = AvgTracker::new(&cfg, 4, Some(&pretrained), Device::Cpu).unwrap();
        set_start(t.item_table(), &[0.5, -0.5]);
        t
    }

    /// The §3 numbers, by hand. Range (0, 5); episode items [0, 1, 2, 3, 0] with rewards [2, 5, 10, −1, 1],
    /// so r̂ = [0.4, 1, 1 (2 clipped to 1), −0.2 (no lower clip), 0.2]; the start row's r̂(1) = 0.2.
    ///
    /// * t = 0: [start ⊕ 1 (raw)] = [0.5, −0.5, 1]
    /// * t = 1: mean([0.5, −0.5, 0.2], [1, 2, 0.4]) = [0.75, 0.75, 0.3]
    /// * t = 2: mean(start, [1, 2, 0.4], [3, 4, 1]) = [4.5, 5.5, 1.6] / 3 = [1.5, 1.8333, 0.5333]
    /// * t = 3: mean([1, 2, 0.4], [3, 4, 1], [5, 6, 1]) = [9, 12, 2.4] / 3 = [3, 4, 0.8]
    /// * t = 5: mean([5, 6, 1], [7, 8, −0.2], [1, 2, 0.2]) = [13, 16, 1] / 3 = [4.3333, 5.3333, 0.3333]
    #[test]
    fn reproduces_the_dorl_numbers_by_hand() {
        let _rng = seeded(1);
        let tracker = hand_tracker();
        let items = [0u32, 1, 2, 3, 0];
        let rewards = [2.0, 5.0, 10.0, -1.0, 1.0];
        let expected: [(usize, [f32; 3]); 5] = [
            (0, [0.5, -0.5, 1.0]),
            (1, [0.75, 0.75, 0.3]),
            (2, [1.5, 11.0 / 6.0, 1.6 / 3.0]),
            (3, [3.0, 4.0, 0.8]),
            (5, [13.0 / 3.0, 16.0 / 3.0, 1.0 / 3.0]),
        ];
        let histories: Vec<(u32, &[u32], &[f64])> =
            expected.iter().map(|(t, _)| (0, &items[..*t], &rewards[..*t])).collect();
        let batch = HistoryBatch::new(&histories, 3, 4, Device::Cpu);
        let states = tracker.states(&batch);
        assert_eq!(states.size(), [5, 3]);
        for (row, (t, want)) in expected.iter().enumerate() {
            assert_close(&states.get(row as i64), want, &format!("t = {t}"));
        }
    }

    #[test]
    fn the_batch_one_form_gives_the_same_states_and_refuses_bad_histories() {
        let _rng = seeded(3);
        let mut tracker = hand_tracker();
        tracker.set_reward_range(-1.0, 4.0).unwrap();
        let mut one = tracker.batch_one().unwrap().expect("avg has a batch-one form");
        assert_eq!(one.state_dim(), 3);
        let items = [0u32, 1, 2, 3, 0, 2];
        let rewards = [2.0, 5.0, 10.0, -1.0, 1.0, 0.3];
        let mut out = [0f32; 3];
        for t in 0..=items.len() {
            let batch = HistoryBatch::new(&[(0, &items[..t], &rewards[..t])], 3, 4, Device::Cpu);
            let want = Vec::<f32>::try_from(tracker.states(&batch).flatten(0, -1)).unwrap();
            one.state(&items[..t], &rewards[..t], &mut out).unwrap();
            assert!(out.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6), "t = {t}: {out:?} vs {want:?}");
        }
        assert!(one.state(&[4], &[1.0], &mut out).is_err(), "outside the catalogue");
        assert!(one.state(&[1], &[1.0], &mut [0f32; 2]).is_err(), "a wrong buffer width");
        assert!(one.state(&[1, 2], &[1.0], &mut out).is_err(), "rewards missing");
    }

    #[test]
    fn switching_the_reward_range_renormalises_the_start_row_too() {
        let _rng = seeded(2);
        let mut tracker = hand_tracker();
        tracker.set_reward_range(0.0, 10.0).unwrap();
        let batch = HistoryBatch::new(&[(0, &[0], &[2.0]), (0, &[], &[])], 3, 4, Device::Cpu);
        let states = tracker.states(&batch);
        // t = 1: mean([0.5, −0.5, 0.1], [1, 2, 0.2]); t = 0 keeps its raw 1.
        assert_close(&states.get(0), &[0.75, 0.75, 0.15], "t = 1");
        assert_close(&states.get(1), &[0.5, -0.5, 1.0], "t = 0");
        assert!(tracker.set_reward_range(1.0, 1.0).is_err());
        assert!(tracker.set_reward_range(0.0, f64::NAN).is_err());
    }

    #[test]
    fn state_size_is_42_on_kuairec_embeddings() {
        let _rng = seeded(3);
        let pretrained = Tensor::randn([50, 41], (Kind::Float, Device::Cpu));
        let tracker = AvgTracker::new(&AvgConfig::default(), 50, Some(&pretrained), Device::Cpu).unwrap();
        assert_eq!(tracker.state_dim(), 42);
        let learned = AvgTracker::new(&AvgConfig::default(), 50, None, Device::Cpu).unwrap();
        assert_eq!(learned.state_dim(), 33);
        let batch = random_batch(7, 5, 3, 50, 9);
        assert_eq!(tracker.states(&batch).size(), [7, 42]);
    }

    #[test]
    fn bad_pretrained_tables_are_errors() {
        let _rng = seeded(4);
        let wrong_rows = Tensor::randn([49, 41], (Kind::Float, Device::Cpu));
        let ints = Tensor::zeros([50, 41], (Kind::Int64, Device::Cpu));
        for t in [wrong_rows, ints] {
            let err = AvgTracker::new(&AvgConfig::default(), 50, Some(&t), Device::Cpu).unwrap_err();
            assert!(matches!(err, StateError::Embeddings(_)), "{err}");
        }
    }
}
