//! The frozen tracker the denoiser learns from (with its optional history summary), and step 1: replaying the
//! training log through it.

use super::{Result, StageError};
use dsrm_nn::tch::{Device, Kind, Tensor};
use dsrm_sim::World;
use dsrm_state::{HistoryBatch, PretrainReport, StateError, StateTracker, TrackerConfig};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

// ─────────────────────────────────── the frozen tracker (+ summary) ───────────────────────────────────

/// The tracker whose states the denoiser learns, with every variable frozen, and the optional history-summary
/// tracker (same kind and weights, window W_c).
pub(super) struct FrozenTracker {
    pub(super) tracker: Box<dyn StateTracker>,
    pub(super) summary: Option<Box<dyn StateTracker>>,
}

impl FrozenTracker {
    pub(super) fn build(
        cfg: &TrackerConfig,
        condition_window: usize,
        n_items: usize,
        pretrained: Option<&Tensor>,
        device: Device,
    ) -> Result<Self> {
        let mut tracker =
            dsrm_state::build(&frozen_config(cfg, None), n_items, pretrained.map(Tensor::shallow_clone), device)?;
        tracker.var_store_mut().freeze();
        tracker.set_training(false);
        let summary = match condition_window {
            0 => None,
            w => {
                let cfg = frozen_config(cfg, Some(w));
                let mut s = dsrm_state::build(&cfg, n_items, pretrained.map(Tensor::shallow_clone), device)?;
                s.var_store_mut().freeze();
                s.set_training(false);
                Some(s)
            }
        };
        let mut frozen = Self { tracker, summary };
        frozen.sync_summary()?;
        Ok(frozen)
    }

    /// The summary tracker reads the main tracker's weights (only the window differs).
    pub(super) fn sync_summary(&mut self) -> Result<()> {
        if let Some(s) = &mut self.summary {
            s.var_store_mut().copy(self.tracker.var_store()).map_err(|e| {
                StageError::Config(format!(
                    "condition_window: the {} tracker's weights depend on its window ({e})",
                    self.tracker.name()
                ))
            })?;
        }
        Ok(())
    }

    pub(super) fn window(&self) -> usize {
        self.summary.as_ref().map_or(0, |s| s.window()).max(self.tracker.window())
    }

    pub(super) fn set_reward_range(&mut self, r_min: f64, r_max: f64) -> std::result::Result<(), StateError> {
        self.tracker.set_reward_range(r_min, r_max)?;
        self.summary.as_mut().map_or(Ok(()), |s| s.set_reward_range(r_min, r_max))
    }

    /// `[B, d (+ d)]`: o_t, then the history summary when there is one (the denoiser's input layout).
    pub(super) fn observe(&self, batch: &HistoryBatch) -> std::result::Result<Tensor, StateError> {
        let o = self.tracker.try_states(batch)?;
        match &self.summary {
            None => Ok(o),
            Some(s) => Ok(Tensor::f_cat(&[o, s.try_states(batch)?], 1)?),
        }
    }
}

/// The tracker config with its embeddings frozen and, for the summary, its window set to `window`.
pub(super) fn frozen_config(cfg: &TrackerConfig, window: Option<usize>) -> TrackerConfig {
    let mut cfg = cfg.clone();
    cfg.set_freeze_embeddings(true);
    if let Some(w) = window {
        cfg.set_window(w);
    }
    cfg
}

// ───────────────────────────────────── 0. pretrain the tracker ─────────────────────────────────────

/// Step 0: a tracker with weights of its own (`gru`, `sasrec`) learns them by next-item prediction on the
/// training users' logged sequences, the epoch chosen on the validation users (held-out users are not read;
/// the split is the stage's one split, [`split_users`] of the same log), then is frozen again
/// ([`dsrm_state::pretrain`]). `None` when pretraining is off, which a `gru` or `sasrec` tracker refuses: its
/// frozen weights would be random.
pub(super) fn pretrain_tracker(
    frozen: &mut FrozenTracker,
    tracker_cfg: &TrackerConfig,
    pretrained: Option<&Tensor>,
    world: &World,
    cfg: &super::DsrmStageConfig,
    progress: &mut dyn FnMut(super::StageEvent),
) -> Result<Option<PretrainReport>> {
    if !cfg.tracker_pretrain.enabled() {
        if tracker_cfg.has_own_weights() {
            return Err(StageError::Config(format!(
                "[train.dsrm] the {} tracker's own weights would be frozen at their random start: set \
                 [train.dsrm.tracker_pretrain] epochs > 0 (next-item pretraining on the training users)",
                frozen.tracker.name()
            )));
        }
        return Ok(None);
    }
    let log = &world.train;
    let n_items = world.spec.n_items();
    let split = split_users(&log.user, cfg.validation_fraction, cfg.holdout_fraction, cfg.seed)?;
    // A trainable copy of the frozen tracker: the same start, its item table trained unless it is the
    // pretrained one.
    let mut trainable_cfg = frozen_config(tracker_cfg, None);
    trainable_cfg.set_freeze_embeddings(pretrained.is_some() && tracker_cfg.uses_pretrained());
    let device = frozen.tracker.var_store().device();
    let mut trainable = dsrm_state::build(&trainable_cfg, n_items, pretrained.map(Tensor::shallow_clone), device)?;
    trainable.var_store_mut().copy(frozen.tracker.var_store())?;
    let range = world.spec.rewards.range();
    trainable.set_reward_range(range.0, range.1)?;
    let mut sequences = Vec::new();
    let mut start = 0;
    while start < log.len() {
        let user = log.user[start];
        let end = start + log.user[start..].iter().take_while(|&&u| u == user).count();
        sequences.push((user, &log.item[start..end], &log.target[start..end]));
        start = end;
    }
    let side = |u: u32| match split.side_of(u) {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    };
    let mut report_epoch = |e: &dsrm_state::PretrainEpoch| progress(super::StageEvent::TrackerEpoch(e.clone()));
    let report = dsrm_state::pretrain_next_item(
        trainable.as_mut(),
        &sequences,
        &side,
        n_items,
        &cfg.tracker_pretrain,
        &mut report_epoch,
    )?;
    frozen.tracker.var_store_mut().copy(trainable.var_store())?;
    frozen.sync_summary()?;
    Ok(Some(report))
}

// ───────────────────────────────────────── 1. replay the log ─────────────────────────────────────────

/// Observed states replayed from the training log: one row per logged step, and its (dense) user.
#[derive(Debug)]
pub struct ReplayedStates {
    /// `[N, input width]` f32: o_t (⊕ the history summary), the state *before* each logged step.
    pub states: Tensor,
    /// The user of each row.
    pub users: Vec<u32>,
    /// t: how many of the user's logged steps the state has seen.
    pub steps: Vec<u32>,
    /// The `world.train` row of the step the state precedes (its window is the `min(t, W)` rows before it).
    pub log_rows: Vec<usize>,
}

/// Replays `world.train` user by user, in time order: the state before step t of a sequence is the tracker's
/// state of its first t (item, reward) pairs (t = 0: the start state).
pub(super) fn replay(frozen: &FrozenTracker, world: &World) -> Result<ReplayedStates> {
    const CHUNK: usize = 4096;
    let log = &world.train;
    let n_items = world.spec.n_items();
    if let Some(bad) = log.item.iter().find(|&&i| i as usize >= n_items) {
        return Err(StageError::Config(format!("training log item {bad} is outside the {n_items}-item catalogue")));
    }
    let window = frozen.window();
    let device = frozen.tracker.var_store().device();
    let (mut parts, mut users, mut steps, mut log_rows) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut histories: Vec<(u32, &[u32], &[f64])> = Vec::with_capacity(CHUNK);
    let mut flush = |histories: &mut Vec<(u32, &[u32], &[f64])>| -> Result<()> {
        if !histories.is_empty() {
            let batch = HistoryBatch::new(histories, window, n_items, device);
            parts.push(dsrm_nn::tch::no_grad(|| frozen.observe(&batch))?.f_to_device(Device::Cpu)?);
            histories.clear();
        }
        Ok(())
    };
    let mut start = 0;
    while start < log.len() {
        let user = log.user[start];
        let end = start + log.user[start..].iter().take_while(|&&u| u == user).count();
        for t in 0..end - start {
            histories.push((user, &log.item[start..start + t], &log.target[start..start + t]));
            users.push(user);
            steps.push(t as u32);
            log_rows.push(start + t);
            if histories.len() == CHUNK {
                flush(&mut histories)?;
            }
        }
        start = end;
    }
    flush(&mut histories)?;
    if parts.is_empty() {
        return Err(StageError::Config("the training log is empty: no states to train the DSRM on".into()));
    }
    Ok(ReplayedStates { states: Tensor::f_cat(&parts, 0)?.f_to_kind(Kind::Float)?, users, steps, log_rows })
}

/// Option B's targets (the `debiased` ablation): for each replayed state (row of `replayed`), its user's inverse-popularity-weighted mean
/// state over the whole log, `[N, d]` (the state part only). A state's weight is 1 / (log count of the item its
/// window ends on); start states (no item yet) weigh 0, and a user with no weighted state gets the plain mean.
pub fn debiased_targets(replayed: &ReplayedStates, world: &World, d: i64) -> Result<Tensor> {
    let log = &world.train;
    let mut count = vec![0u64; world.spec.n_items()];
    log.item.iter().for_each(|&i| count[i as usize] += 1);
    let weights: Vec<f32> = (0..replayed.users.len())
        .map(|n| match replayed.steps[n] {
            0 => 0.0,
            _ => 1.0 / count[log.item[replayed.log_rows[n] - 1] as usize] as f32,
        })
        .collect();
    let states = replayed.states.f_narrow(1, 0, d)?.f_to_kind(Kind::Float)?.f_contiguous()?;
    let values = Vec::<f32>::try_from(states.f_view([-1])?)?;
    let (d, mut out) = (d as usize, vec![0f32; values.len()]);
    let mut start = 0;
    while start < replayed.users.len() {
        let user = replayed.users[start];
        let end = start + replayed.users[start..].iter().take_while(|&&u| u == user).count();
        let total: f32 = weights[start..end].iter().sum();
        let mut mean = vec![0f32; d];
        for n in start..end {
            let w = if total > 0.0 { weights[n] / total } else { 1.0 / (end - start) as f32 };
            mean.iter_mut().zip(&values[n * d..(n + 1) * d]).for_each(|(m, v)| *m += w * v);
        }
        (start..end).for_each(|n| out[n * d..(n + 1) * d].copy_from_slice(&mean));
        start = end;
    }
    Ok(Tensor::f_from_slice(&out)?.f_view([-1, d as i64])?)
}

/// The stage's one split of the log's users (dense ids, each list sorted): drawn once with the stage's seed
/// and saved with the stage, so every consumer (the denoiser's training, its early stopping, the fidelity
/// probe) reads the same users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserSplit {
    /// The seed of the shuffle (the stage's `seed`).
    pub seed: u64,
    /// Share of the users that early-stop the denoiser (as configured).
    pub validation_fraction: f64,
    /// Share of the users held out of the denoiser altogether (as configured).
    pub holdout_fraction: f64,
    /// Users whose states train the denoiser.
    pub train: Vec<u32>,
    /// Users whose states early-stop it (and on whom any default is chosen).
    pub valid: Vec<u32>,
    /// Users the denoiser never sees (the fidelity probe scores on them).
    pub held_out: Vec<u32>,
}

impl UserSplit {
    /// Which side `user` is on: 0 train, 1 validation, 2 held out.
    pub fn side_of(&self, user: u32) -> u8 {
        if self.valid.binary_search(&user).is_ok() {
            1
        } else if self.held_out.binary_search(&user).is_ok() {
            2
        } else {
            0
        }
    }
}

/// Splits the distinct `users`: shuffled with `seed`, the first `validation_fraction` (at least one) validate,
/// the next `holdout_fraction` (at least one when > 0) are held out, the rest (at least one) train.
pub fn split_users(users: &[u32], validation_fraction: f64, holdout_fraction: f64, seed: u64) -> Result<UserSplit> {
    let mut distinct: Vec<u32> = users.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let (v, h) = (validation_fraction, holdout_fraction);
    let needed = 2 + usize::from(h > 0.0);
    if distinct.len() < needed || !(v > 0.0 && v < 1.0) || !(0.0..1.0).contains(&h) || v + h >= 1.0 {
        return Err(StageError::Config(format!(
            "a user split needs >= {needed} users, 0 < validation_fraction < 1, 0 <= holdout_fraction < 1 and a sum \
             below 1 (users {}, validation_fraction {v}, holdout_fraction {h})",
            distinct.len()
        )));
    }
    distinct.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n = distinct.len();
    let n_valid = ((n as f64 * v).round() as usize).clamp(1, n - 1);
    let n_held = if h > 0.0 { ((n as f64 * h).round() as usize).clamp(1, n - n_valid - 1) } else { 0 };
    let sorted = |s: &[u32]| {
        let mut s = s.to_vec();
        s.sort_unstable();
        s
    };
    Ok(UserSplit {
        seed,
        validation_fraction: v,
        holdout_fraction: h,
        valid: sorted(&distinct[..n_valid]),
        held_out: sorted(&distinct[n_valid..n_valid + n_held]),
        train: sorted(&distinct[n_valid + n_held..]),
    })
}

/// Splits the rows by user: a seeded `fraction` of the users (at least one, and never all) for validation
/// ([`split_users`] without a held-out share). Returns (train rows, validation rows), each in log order.
pub fn split_by_user(users: &[u32], fraction: f64, seed: u64) -> Result<(Vec<i64>, Vec<i64>)> {
    let split = split_users(users, fraction, 0.0, seed)?;
    let (mut train, mut valid) = (Vec::new(), Vec::new());
    for (row, &u) in users.iter().enumerate() {
        if split.side_of(u) == 1 {
            valid.push(row as i64)
        } else {
            train.push(row as i64)
        }
    }
    Ok((train, valid))
}
