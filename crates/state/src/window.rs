//! The window every tracker reads: one row [item embedding ⊕ normalised reward] per step, plus DORL's start
//! row while the episode is shorter than the window (`docs/protocol.md` §3).
//!
//! For a history batch right-aligned in a window of W columns and an episode at step t (t actions taken):
//!
//! * columns holding a real step get [e(item) ⊕ r̂(reward)];
//! * if t < W, the column just left of the first real step (column W − 1 − t) gets the start row
//!   [start ⊕ r̂(1)]: DORL keeps the reset observation (start item, reward 1) in its buffer and walks back to
//!   it, so it is one element of the window until W real steps push it out;
//! * at t = 0 the start row is the only one, and DORL returns it with the raw reward 1, not r̂(1) (its reset
//!   branch skips normalisation). [`ResetReward`] chooses between that quirk and a normalised 1;
//! * every other column is padding: all-zero row, mask 0.
//!
//! Normalisation: r̂ = (r − r_min) / (r_max − r_min), then values above 1 become 1 (values below 0 are kept:
//! DORL clips only from above).

use crate::embedding::ItemTable;
use crate::{HistoryBatch, StateError};
use dsrm_nn::tch::{Kind, Tensor};
use serde::{Deserialize, Serialize};

/// The (r_min, r_max) range rewards are normalised with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RewardRange {
    r_min: f64,
    r_max: f64,
}

impl RewardRange {
    /// A validated range: both finite and r_min < r_max (otherwise r̂ would divide by zero or flip sign).
    pub fn new(r_min: f64, r_max: f64) -> Result<Self, StateError> {
        if r_min.is_finite() && r_max.is_finite() && r_min < r_max {
            Ok(Self { r_min, r_max })
        } else {
            Err(StateError::RewardRange { r_min, r_max })
        }
    }

    /// (r_min, r_max).
    pub fn bounds(&self) -> (f64, f64) {
        (self.r_min, self.r_max)
    }

    /// r̂ = min(1, (r − r_min) / (r_max − r_min)).
    pub fn normalise(&self, r: f64) -> f64 {
        ((r - self.r_min) / (self.r_max - self.r_min)).min(1.0)
    }

    /// Element-wise [`normalise`](Self::normalise).
    pub fn normalise_tensor(&self, r: &Tensor) -> Result<Tensor, StateError> {
        Ok(r.f_sub_scalar(self.r_min)?.f_div_scalar(self.r_max - self.r_min)?.f_clamp_max(1.0)?)
    }
}

/// What reward the start row carries at t = 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReward {
    /// DORL's `avg`: the raw 1 (its reset branch does not normalise).
    Raw,
    /// r̂(1), as at every later step (EasyRL4Rec's sequence trackers build every row the same way).
    Normalised,
}

/// The window of one batch, on the tracker's device.
#[derive(Debug)]
pub struct WindowRows {
    /// `[B, W, d + 1]`; padding rows are exactly zero.
    pub rows: Tensor,
    /// `[B, W]` bool: real steps and the start row.
    pub mask: Tensor,
    /// `[B]` int64: rows per episode (the mask's row sums).
    pub lengths: Tensor,
}

/// Builds the window rows of `batch` for a tracker reading `window` steps.
///
/// The batch may be wider than `window` (its last `window` columns are read). Ids in padded columns are
/// ignored (replaced by the pad id before the lookup); ids in real columns must lie in `0..n_items`.
pub fn window_rows(
    batch: &HistoryBatch,
    window: usize,
    table: &ItemTable,
    range: &RewardRange,
    reset_reward: ResetReward,
) -> Result<WindowRows, StateError> {
    let device = table.weight().device();
    let w = i64::try_from(window).map_err(|_| StateError::Batch(format!("window {window} too large")))?;
    let size = batch.items.size();
    let (b, wb) = match size[..] {
        [b, wb] => (b, wb),
        _ => return Err(StateError::Batch(format!("items must be [B, window], got {size:?}"))),
    };
    for (name, t) in [("rewards", &batch.rewards), ("mask", &batch.mask)] {
        if t.size() != size {
            return Err(StateError::Batch(format!("{name} is {:?}, items is {size:?}", t.size())));
        }
    }
    if batch.steps.size() != [b] {
        return Err(StateError::Batch(format!("steps is {:?}, expected [{b}]", batch.steps.size())));
    }
    if wb < w {
        return Err(StateError::Batch(format!("batch window {wb} is shorter than the tracker's {w}")));
    }

    let last = |t: &Tensor, kind: Kind| -> Result<Tensor, StateError> {
        Ok(t.f_narrow(1, wb - w, w)?.f_to_device(device)?.f_to_kind(kind)?)
    };
    let items = last(&batch.items, Kind::Int64)?;
    let rewards = last(&batch.rewards, Kind::Float)?;
    let real = last(&batch.mask, Kind::Float)?.f_gt(0.5)?;
    let steps = batch.steps.f_to_device(device)?.f_to_kind(Kind::Int64)?;

    // Real ids must be in the catalogue (libtorch would fail, or on CUDA abort, on an out-of-range lookup).
    if b > 0 {
        let checked = items.f_where_scalarother(&real, 0)?;
        let lo = checked.f_min()?.f_int64_value(&[])?;
        let hi = checked.f_max()?.f_int64_value(&[])?;
        if lo < 0 || hi >= table.n_items() {
            return Err(StateError::Batch(format!(
                "item ids in [{lo}, {hi}] outside the catalogue 0..{}",
                table.n_items()
            )));
        }
    }

    // Real rows: [e(item) ⊕ r̂]. Padded ids become the pad id, so whatever a caller left there is never read.
    let ids = items.f_where_scalarother(&real, table.pad_id())?;
    let emb = table.lookup(&ids)?;
    let r_hat = range.normalise_tensor(&rewards)?;
    let real_rows = Tensor::f_cat(&[emb, r_hat.f_unsqueeze(-1)?], -1)?;

    // The start row sits in column W − 1 − t (only exists while t < W); real rows win any collision.
    let column = Tensor::f_arange(w, (Kind::Int64, device))?.f_unsqueeze(0)?;
    let start_column = steps.f_neg()?.f_add_scalar(w - 1)?.f_unsqueeze(1)?;
    let is_start = column.f_eq_tensor(&start_column)?.f_logical_and(&real.f_logical_not()?)?;
    let start_r = Tensor::f_full([b], range.normalise(1.0), (Kind::Float, device))?;
    let start_r = match reset_reward {
        ResetReward::Raw => start_r.f_where_scalarother(&steps.f_ne(0)?, 1.0)?,
        ResetReward::Normalised => start_r,
    };
    let d = table.dim();
    let start_vec = table.start()?.f_expand([b, d], false)?;
    let start_rows = Tensor::f_cat(&[start_vec, start_r.f_unsqueeze(1)?], 1)?.f_unsqueeze(1)?;

    let start_or_zero = start_rows.f_where_scalarother(&is_start.f_unsqueeze(-1)?, 0.0)?;
    let rows = real_rows.f_where_self(&real.f_unsqueeze(-1)?, &start_or_zero)?;
    let mask = real.f_logical_or(&is_start)?;
    let lengths = mask.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Int64)?;
    Ok(WindowRows { rows, mask, lengths })
}
