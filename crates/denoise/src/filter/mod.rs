//! History filters: the heuristic denoisers of the paper's ablation (Table 3: "HRL + R-CE", "HRL + T-CE"),
//! which clean the state by removing interactions from the history the tracker reads, instead of purifying the
//! state it computes (the DSRM).
//!
//! ```text
//! history h_t = (i_1, r_1) … (i_t, r_t)                         the episode so far
//! kept        = [(i_j, r_j) in the last `lookback` of h_t : filter.keep(u, i_j, r_j)]
//! o_t         = tracker(the last W of kept)                      W = the tracker's window
//! ```
//!
//! [`FilteredTracker`] does this in front of any tracker (with or without a DSRM stage behind it), behind the
//! ordinary `StateTracker` trait, so agents, evaluation and serving are unchanged. It reads `lookback` steps
//! (default 2·W) so that after dropping there are still up to W to keep; the step count it passes on is the
//! episode's minus the dropped ones, so DORL's start row appears only while fewer than W interactions are
//! kept. Dropping rather than down-weighting: the trackers' masks are 0/1 (a GRU or SASRec has no notion of
//! half a step), so a filter decides keep or drop, and R-CE's reweighting acts in its user model's training.
//!
//! * [`loss_based`]: T-CE and R-CE (Wang et al., WSDM 2021) — drop the interactions a denoised user model
//!   finds least believable.
//! * [`bod`]: BOD (Wang et al., KDD 2023) — the same cut, on a user model trained with per-interaction
//!   weights learned by bi-level optimisation.
//!
//! Both fit their user model on the same implicit-feedback rows and calibrate their cut the same way
//! (`implicit`).

pub mod bod;
mod implicit;
pub mod loss_based;

pub use bod::{BodFilter, BodFilterStats};
pub use loss_based::{LossBasedFilter, LossFilterStats};

use crate::DenoiseError;
use dsrm_models::{BodConfig, MfConfig};
use dsrm_nn::tch::{Kind, Tensor};
use dsrm_sim::World;
use dsrm_state::{HistoryBatch, StateError, StateTracker};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Decides which interactions of a history the state keeps.
pub trait HistoryFilter: Send + Sync {
    /// Whether the state keeps `user`'s interaction with `item` (rewarded `reward`). Users or items the
    /// filter has never seen are kept.
    fn keep(&self, user: u32, item: u32, reward: f32) -> bool;
    /// Name for logs and tables (`tce`, `rce`, `bod`).
    fn name(&self) -> &'static str;
}

/// Which heuristic denoiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FilterKind {
    /// T-CE: the user model trained with the truncated loss.
    Tce,
    /// R-CE: the user model trained with the reweighted loss.
    Rce,
    /// BOD: the user model trained with weights learned by bi-level optimisation.
    Bod,
}

impl FilterKind {
    /// The name in configs, logs and `history_filter.json`.
    pub fn name(self) -> &'static str {
        match self {
            FilterKind::Tce => "tce",
            FilterKind::Rce => "rce",
            FilterKind::Bod => "bod",
        }
    }
}

/// `[train.history_filter]`. Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryFilterConfig {
    /// `"tce"`, `"rce"` or `"bod"`.
    pub kind: FilterKind,
    /// ε: the share of the training log's clicks the user model believes least in — T-CE's ε_max while it
    /// trains, and for every kind the cut at state time (a history interaction less believable than this share
    /// of training clicks is dropped). Wang et al. search 0.05–0.2. Default 0.2.
    #[serde(default = "default_drop_rate")]
    pub drop_rate: f64,
    /// T-CE: epochs over which the training drop rate grows to `drop_rate`. Default 5.
    #[serde(default = "default_warmup")]
    pub warmup_epochs: usize,
    /// R-CE: β of the weights ŷ^β / (1 − ŷ)^β. Default 0.25.
    #[serde(default = "default_beta")]
    pub beta: f64,
    /// BOD: Adam step size of the weight generator (0: no outer step, uniform weights). Default 0.01.
    #[serde(default = "default_generator_lr")]
    pub generator_learning_rate: f64,
    /// BOD: rows per inner step and per outer batch. Default 256.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// BOD: share of the user model's rows held out of its training, whose unweighted loss is the outer
    /// objective. Default 0.1.
    #[serde(default = "default_holdout")]
    pub holdout: f64,
    /// Sampled non-clicks per click of the log (uniform over the items the user has no row with). Default 1.
    #[serde(default = "one")]
    pub negatives: usize,
    /// History steps read before filtering (0: twice the tracker's window). Default 0.
    #[serde(default)]
    pub lookback: usize,
    /// The user model (its `loss` is always logistic; the run's seed is added to its `seed`).
    #[serde(default)]
    pub mf: MfConfig,
}

fn default_drop_rate() -> f64 {
    0.2
}

fn default_warmup() -> usize {
    5
}

fn default_beta() -> f64 {
    0.25
}

fn default_generator_lr() -> f64 {
    BodConfig::default().generator_learning_rate
}

fn default_batch_size() -> usize {
    BodConfig::default().batch_size
}

fn default_holdout() -> f64 {
    BodConfig::default().holdout
}

fn one() -> usize {
    1
}

impl HistoryFilterConfig {
    /// Settings out of their domain, as readable phrases naming the key (empty when valid).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(self.drop_rate > 0.0 && self.drop_rate < 1.0) {
            p.push(format!("history_filter.drop_rate must lie in (0, 1), got {}", self.drop_rate));
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            p.push(format!("history_filter.beta must be finite and >= 0, got {}", self.beta));
        }
        if self.negatives == 0 {
            p.push("history_filter.negatives must be >= 1 (the user model needs non-clicks)".into());
        }
        if self.mf.epochs == 0 {
            p.push("history_filter.mf.epochs must be >= 1".into());
        }
        p.extend(self.bod().problems().into_iter().map(|q| format!("history_filter.{q}")));
        p
    }

    /// BOD's settings.
    pub fn bod(&self) -> BodConfig {
        BodConfig {
            batch_size: self.batch_size,
            generator_learning_rate: self.generator_learning_rate,
            holdout: self.holdout,
        }
    }

    /// Fits the filter on `world`'s training log (deterministic in `seed`).
    pub fn fit(&self, world: &World, seed: u64) -> Result<FittedHistoryFilter, DenoiseError> {
        if let Some(problem) = self.problems().into_iter().next() {
            return Err(DenoiseError::Config(problem));
        }
        Ok(match self.kind {
            FilterKind::Tce | FilterKind::Rce => {
                FittedHistoryFilter::LossBased(LossBasedFilter::fit(self, world, seed)?)
            }
            FilterKind::Bod => FittedHistoryFilter::Bod(BodFilter::fit(self, world, seed)?),
        })
    }
}

/// A fitted history filter of any kind.
#[derive(Debug, Clone)]
pub enum FittedHistoryFilter {
    /// T-CE or R-CE.
    LossBased(LossBasedFilter),
    /// BOD.
    Bod(BodFilter),
}

/// What a fitted filter is (`RUN/history_filter.json`): the kind's own record, written as it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FilterStats {
    LossBased(LossFilterStats),
    Bod(BodFilterStats),
}

impl FittedHistoryFilter {
    /// What was fitted.
    pub fn stats(&self) -> FilterStats {
        match self {
            FittedHistoryFilter::LossBased(f) => FilterStats::LossBased(f.stats().clone()),
            FittedHistoryFilter::Bod(f) => FilterStats::Bod(f.stats().clone()),
        }
    }
}

impl HistoryFilter for FittedHistoryFilter {
    fn keep(&self, user: u32, item: u32, reward: f32) -> bool {
        match self {
            FittedHistoryFilter::LossBased(f) => f.keep(user, item, reward),
            FittedHistoryFilter::Bod(f) => f.keep(user, item, reward),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            FittedHistoryFilter::LossBased(f) => f.name(),
            FittedHistoryFilter::Bod(f) => f.name(),
        }
    }
}

/// How much of the histories it read a filter dropped: interactions counted each time a state is built from
/// them (a step's window is read again at the next step and in updates), across every tracker sharing it.
/// A filter that drops nothing leaves its agent's run identical to the unfiltered one; this says so.
#[derive(Debug, Default)]
pub struct FilterUsage {
    read: AtomicU64,
    dropped: AtomicU64,
}

impl FilterUsage {
    /// (interactions read, of them dropped) since the last call; the counts start again from zero.
    pub fn take(&self) -> (u64, u64) {
        (self.read.swap(0, Ordering::Relaxed), self.dropped.swap(0, Ordering::Relaxed))
    }
}

/// A tracker that reads a filtered history (module docs).
pub struct FilteredTracker {
    inner: Box<dyn StateTracker>,
    filter: Arc<dyn HistoryFilter>,
    lookback: usize,
    usage: Arc<FilterUsage>,
}

impl FilteredTracker {
    /// `inner` reading the histories `filter` keeps, from the last `lookback` steps (0: twice its window).
    pub fn new(inner: Box<dyn StateTracker>, filter: Arc<dyn HistoryFilter>, lookback: usize) -> Self {
        let lookback = if lookback == 0 { 2 * inner.window() } else { lookback.max(inner.window()) };
        FilteredTracker { inner, filter, lookback, usage: Arc::default() }
    }

    /// Counts what it reads and drops into `usage` (shared with other trackers).
    pub fn counting(self, usage: Arc<FilterUsage>) -> Self {
        FilteredTracker { usage, ..self }
    }

    /// The batch `inner` reads: each row's kept interactions, right-aligned in its window.
    pub fn filtered(&self, batch: &HistoryBatch) -> Result<HistoryBatch, StateError> {
        let size = batch.items.size();
        let (b, wb) = match size[..] {
            [b, wb] => (b as usize, wb as usize),
            _ => return Err(StateError::Batch(format!("items must be [B, window], got {size:?}"))),
        };
        let device = batch.items.device();
        let items = Vec::<i64>::try_from(batch.items.f_to_kind(Kind::Int64)?.f_reshape([-1])?)?;
        let rewards = Vec::<f32>::try_from(batch.rewards.f_to_kind(Kind::Float)?.f_reshape([-1])?)?;
        let mask = Vec::<f32>::try_from(batch.mask.f_to_kind(Kind::Float)?.f_reshape([-1])?)?;
        let steps = Vec::<i64>::try_from(batch.steps.f_to_kind(Kind::Int64)?)?;
        let users = Vec::<i64>::try_from(batch.users.f_to_kind(Kind::Int64)?)?;
        if [items.len(), rewards.len(), mask.len()].iter().any(|&n| n != b * wb) || steps.len() != b || users.len() != b
        {
            return Err(StateError::Batch("items, rewards, mask, steps and users do not fit together".into()));
        }
        let w = self.inner.window();
        let from = wb.saturating_sub(self.lookback);
        let (mut out_items, mut out_rewards, mut out_mask) =
            (vec![batch.pad; b * w], vec![0f32; b * w], vec![0f32; b * w]);
        let mut out_steps = Vec::with_capacity(b);
        let (mut read, mut dropped_total) = (0u64, 0u64);
        for row in 0..b {
            let user = u32::try_from(users[row]).ok();
            let mut kept: Vec<(i64, f32)> = Vec::new();
            let mut dropped = 0i64;
            for j in from..wb {
                let k = row * wb + j;
                if mask[k] <= 0.5 {
                    continue;
                }
                let keep = match (user, u32::try_from(items[k])) {
                    (Some(u), Ok(i)) => self.filter.keep(u, i, rewards[k]),
                    _ => true,
                };
                if keep {
                    kept.push((items[k], rewards[k]));
                } else {
                    dropped += 1;
                }
            }
            read += kept.len() as u64 + dropped as u64;
            dropped_total += dropped as u64;
            let last = &kept[kept.len().saturating_sub(w)..];
            for (n, &(item, reward)) in last.iter().enumerate() {
                let j = row * w + (w - last.len() + n);
                (out_items[j], out_rewards[j], out_mask[j]) = (item, reward, 1.0);
            }
            out_steps.push((steps[row] - dropped).max(kept.len() as i64));
        }
        self.usage.read.fetch_add(read, Ordering::Relaxed);
        self.usage.dropped.fetch_add(dropped_total, Ordering::Relaxed);
        let shape = [b as i64, w as i64];
        Ok(HistoryBatch {
            items: Tensor::from_slice(&out_items).f_reshape(shape)?.f_to_device(device)?,
            rewards: Tensor::from_slice(&out_rewards).f_reshape(shape)?.f_to_device(device)?,
            mask: Tensor::from_slice(&out_mask).f_reshape(shape)?.f_to_device(device)?,
            steps: Tensor::from_slice(&out_steps).f_to_device(device)?,
            users: batch.users.shallow_clone(),
            window: w,
            pad: batch.pad,
        })
    }
}

impl StateTracker for FilteredTracker {
    fn state_dim(&self) -> i64 {
        self.inner.state_dim()
    }

    /// The lookback: callers build batches this long, and the filter keeps up to the inner window of them.
    fn window(&self) -> usize {
        self.lookback
    }

    fn states(&self, batch: &HistoryBatch) -> Tensor {
        self.try_states(batch).unwrap_or_else(|e| panic!("{} filter: {e}", self.filter.name()))
    }

    fn try_states(&self, batch: &HistoryBatch) -> Result<Tensor, StateError> {
        self.inner.try_states(&self.filtered(batch)?)
    }

    fn auxiliary_loss(&self, batch: &HistoryBatch) -> Result<Option<Tensor>, StateError> {
        self.inner.auxiliary_loss(&self.filtered(batch)?)
    }

    fn var_store(&self) -> &dsrm_nn::tch::nn::VarStore {
        self.inner.var_store()
    }

    fn var_store_mut(&mut self) -> &mut dsrm_nn::tch::nn::VarStore {
        self.inner.var_store_mut()
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn set_training(&mut self, training: bool) {
        self.inner.set_training(training)
    }

    fn set_reward_range(&mut self, r_min: f64, r_max: f64) -> Result<(), StateError> {
        self.inner.set_reward_range(r_min, r_max)
    }

    fn clear_cache(&self) {
        self.inner.clear_cache()
    }
}

#[cfg(test)]
mod tests;
