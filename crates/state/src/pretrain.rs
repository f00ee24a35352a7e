//! Next-item pretraining of a state tracker's own weights, before the tracker is frozen (a DSRM stage over the
//! paper's Transformer encoder: SASRec, or a GRU, whose attention or recurrent weights would otherwise be random).
//!
//! SASRec (Kang & McAuley, ICDM 2018) learns its encoder by predicting each next item of the user's sequence;
//! we do the same over the tracker's window:
//!
//! ```text
//! for each logged step t of a user u in the TRAINING users:    o_t = tracker(items[..t], rewards[..t])
//!     logits = W o_t + b                                       W: [n_items, d_state], a head used only here
//!     L      = cross_entropy(logits, items[t])                 full softmax over the catalogue
//! Adam on the tracker's trainable variables and the head; after each epoch the mean L on the VALIDATION users'
//! steps; keep the tracker of the best epoch, stop after `patience` epochs without a better one.
//! ```
//!
//! What is trained: every trainable variable of the tracker passed in (a SASRec block and its positions, a GRU,
//! and the tracker's own item table when it is not a pretrained one; a pretrained table stays as it was). What
//! we choose where SASRec differs: the full softmax over the catalogue instead of one sampled negative with a
//! binary loss (the catalogue is small: 300 to 7,583 items), and the next *logged* item whatever its reward.
//! Users the caller holds out are never read; the validation users only choose the epoch.

use crate::{HistoryBatch, StateError, StateTracker};
use dsrm_nn::optim::{Adam, AdamConfig};
use dsrm_nn::tch::nn::{self, Module, VarStore};
use dsrm_nn::tch::{Kind, Reduction, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// `[train.dsrm.tracker_pretrain]`: next-item pretraining of the stage's tracker. Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PretrainConfig {
    /// Most epochs (0 = no pretraining, the default: a tracker on pretrained item factors, DORL's `avg`, has
    /// nothing else to learn).
    pub epochs: usize,
    /// Adam's step size (default 1e-3, SASRec's).
    pub lr: f64,
    /// Steps per minibatch (default 256).
    pub batch_size: usize,
    /// Stop after this many epochs without a lower validation loss (default 3).
    pub patience: usize,
    /// At most this many training steps per epoch, drawn once (0 = all; default 100,000), and as many
    /// validation steps.
    pub max_states: usize,
    /// Seed of the head's initialisation, the subsample and the minibatch order (default 0).
    pub seed: u64,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self { epochs: 0, lr: 1e-3, batch_size: 256, patience: 3, max_states: 100_000, seed: 0 }
    }
}

impl PretrainConfig {
    /// Whether pretraining is on.
    pub fn enabled(&self) -> bool {
        self.epochs > 0
    }

    /// Checks the settings; errors name the key.
    pub fn validate(&self) -> Result<(), StateError> {
        let bad = |m: String| Err(StateError::Config(format!("[train.dsrm.tracker_pretrain] {m}")));
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("lr = {}: need a finite lr > 0", self.lr));
        }
        if self.batch_size == 0 {
            return bad("batch_size = 0: need at least 1".into());
        }
        if self.patience == 0 {
            return bad("patience = 0: need at least 1".into());
        }
        Ok(())
    }
}

/// One pretraining epoch: mean next-item cross-entropy on the training steps (`None` for the untrained
/// tracker's scores) and on the validation steps, and the validation hit rate at 10 (the next item among the 10
/// highest logits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainEpoch {
    pub epoch: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_loss: Option<f64>,
    pub valid_loss: f64,
    pub valid_hit_at_10: f64,
}

/// What pretraining did: the untrained tracker's validation scores (epoch 0), every epoch, the epoch kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainReport {
    pub untrained: PretrainEpoch,
    pub epochs: Vec<PretrainEpoch>,
    pub best_epoch: usize,
    pub train_states: usize,
    pub valid_states: usize,
}

/// One user's logged sequence in time order: (user, items, rewards in ground-truth units).
pub type Sequence<'a> = (u32, &'a [u32], &'a [f64]);

/// Pretrains `tracker`'s trainable variables on next-item prediction over `sequences` whose user
/// `is_valid(user) == Some(false)` (training) and chooses the epoch on those with `Some(true)` (validation);
/// users with `None` are not read. The tracker is left in evaluation mode holding the best epoch's weights.
/// Deterministic for a given seed (one libtorch thread).
pub fn pretrain_next_item(
    tracker: &mut dyn StateTracker,
    sequences: &[Sequence<'_>],
    is_valid: &dyn Fn(u32) -> Option<bool>,
    n_items: usize,
    cfg: &PretrainConfig,
    progress: &mut dyn FnMut(&PretrainEpoch),
) -> Result<PretrainReport, StateError> {
    cfg.validate()?;
    let trainable: Vec<(String, Tensor)> =
        tracker.var_store().variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    if trainable.is_empty() {
        return Err(StateError::Config(format!(
            "[train.dsrm.tracker_pretrain] the {} tracker has no trainable weights to pretrain (its item table is \
             the pretrained one): set epochs = 0",
            tracker.name()
        )));
    }
    // (sequence, t): predict items[t] from the first t steps.
    let (mut train, mut valid) = (Vec::new(), Vec::new());
    for (s, &(user, items, _)) in sequences.iter().enumerate() {
        if let Some(v) = is_valid(user) {
            (0..items.len()).for_each(|t| if v { valid.push((s, t)) } else { train.push((s, t)) });
        }
    }
    if train.is_empty() || valid.is_empty() {
        return Err(StateError::Config(format!(
            "[train.dsrm.tracker_pretrain] needs training and validation steps, got {} and {}",
            train.len(),
            valid.len()
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    for rows in [&mut train, &mut valid] {
        if cfg.max_states > 0 && rows.len() > cfg.max_states {
            rows.shuffle(&mut rng);
            rows.truncate(cfg.max_states);
            rows.sort_unstable();
        }
    }

    let device = tracker.var_store().device();
    dsrm_nn::runtime::seed(cfg.seed);
    let head_vs = VarStore::new(device);
    let head = nn::linear(head_vs.root() / "next_item", tracker.state_dim(), n_items as i64, Default::default());
    let mut vars = trainable;
    vars.extend(head_vs.variables().into_iter().map(|(n, t)| (format!("head/{n}"), t)));
    let mut adam = Adam::over(vars, AdamConfig { lr: cfg.lr, ..Default::default() });
    let window = tracker.window();
    let batch = |rows: &[(usize, usize)]| {
        let histories: Vec<Sequence<'_>> = rows
            .iter()
            .map(|&(s, t)| {
                let (user, items, rewards) = sequences[s];
                (user, &items[..t], &rewards[..t])
            })
            .collect();
        let next: Vec<i64> = rows.iter().map(|&(s, t)| sequences[s].1[t] as i64).collect();
        (HistoryBatch::new(&histories, window, n_items, device), next)
    };
    let score = |tracker: &dyn StateTracker| -> Result<PretrainEpoch, StateError> {
        let (mut loss, mut hits) = (0.0, 0.0);
        dsrm_nn::tch::no_grad(|| -> Result<(), StateError> {
            for chunk in valid.chunks(cfg.batch_size.max(1024)) {
                let (b, next) = batch(chunk);
                let logits = head.forward(&tracker.try_states(&b)?);
                let next = Tensor::f_from_slice(&next)?.f_to_device(device)?;
                loss += cross_entropy(&logits, &next)?.double_value(&[]) * chunk.len() as f64;
                let top = logits.f_topk(10.min(n_items as i64), 1, true, false)?.1;
                hits += top.f_eq_tensor(&next.f_unsqueeze(1)?)?.f_sum(Kind::Float)?.double_value(&[]);
            }
            Ok(())
        })?;
        let n = valid.len() as f64;
        Ok(PretrainEpoch { epoch: 0, train_loss: None, valid_loss: loss / n, valid_hit_at_10: hits / n })
    };

    tracker.set_training(false);
    let untrained = score(tracker)?;
    let (mut best, mut best_loss, mut since) = (snapshot(tracker.var_store()), f64::INFINITY, 0);
    let (mut epochs, mut best_epoch) = (Vec::new(), 0);
    for epoch in 1..=cfg.epochs {
        let mut order = train.clone();
        let mut shuffle = ChaCha8Rng::seed_from_u64(cfg.seed);
        shuffle.set_stream(epoch as u64);
        order.shuffle(&mut shuffle);
        tracker.set_training(true);
        let mut total = 0.0;
        for chunk in order.chunks(cfg.batch_size) {
            let (b, next) = batch(chunk);
            let logits = head.forward(&tracker.try_states(&b)?);
            let loss = cross_entropy(&logits, &Tensor::f_from_slice(&next)?.f_to_device(device)?)?;
            adam.backward_step(&loss).map_err(|e| StateError::Config(format!("pretraining step: {e}")))?;
            total += loss.double_value(&[]) * chunk.len() as f64;
        }
        tracker.set_training(false);
        let e = PretrainEpoch { epoch, train_loss: Some(total / order.len() as f64), ..score(tracker)? };
        progress(&e);
        if e.valid_loss < best_loss {
            (best, best_loss, best_epoch, since) = (snapshot(tracker.var_store()), e.valid_loss, epoch, 0);
        } else {
            since += 1;
        }
        epochs.push(e);
        if since >= cfg.patience {
            break;
        }
    }
    restore(tracker.var_store_mut(), &best)?;
    Ok(PretrainReport { untrained, epochs, best_epoch, train_states: train.len(), valid_states: valid.len() })
}

/// Mean cross-entropy of `logits` `[B, n]` against the classes `next` `[B]`.
fn cross_entropy(logits: &Tensor, next: &Tensor) -> Result<Tensor, StateError> {
    Ok(logits.f_log_softmax(-1, Kind::Float)?.f_nll_loss(next, None::<Tensor>, Reduction::Mean, -100)?)
}

/// Copies of every variable of `vs`.
fn snapshot(vs: &VarStore) -> Vec<(String, Tensor)> {
    vs.variables().into_iter().map(|(n, t)| (n, t.detach().copy())).collect()
}

/// Writes `saved` back into `vs`'s variables of the same names.
fn restore(vs: &mut VarStore, saved: &[(String, Tensor)]) -> Result<(), StateError> {
    let vars = vs.variables();
    dsrm_nn::tch::no_grad(|| -> Result<(), StateError> {
        for (name, value) in saved {
            let mut v = vars.get(name).expect("a snapshot of this store").shallow_clone();
            v.f_copy_(value)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SasRecConfig, SasRecTracker};
    use dsrm_nn::tch::Device;

    /// Users who walk the catalogue in a fixed cycle (item t+1 follows item t), rewards all 1: the next item is
    /// a function of the last one, which an untrained encoder cannot know and a trained one can.
    fn cycles(n_users: u32, len: usize, n_items: u32) -> Vec<(u32, Vec<u32>, Vec<f64>)> {
        (0..n_users)
            .map(|u| {
                let items = (0..len as u32).map(|t| (u * 7 + t) % n_items).collect();
                (u, items, vec![1.0; len])
            })
            .collect()
    }

    #[test]
    fn next_item_pretraining_learns_a_predictable_sequence_and_keeps_the_best_epoch() {
        let _torch = dsrm_nn::runtime::exclusive();
        let n_items = 20;
        let data = cycles(40, 12, n_items as u32);
        let seqs: Vec<Sequence<'_>> = data.iter().map(|(u, i, r)| (*u, &i[..], &r[..])).collect();
        dsrm_nn::runtime::seed(1);
        let cfg = SasRecConfig { embedding_dim: 8, ..Default::default() };
        let mut tracker = SasRecTracker::new(&cfg, n_items, None, Device::Cpu).unwrap();
        let before = snapshot(tracker.var_store());
        // Users 0..29 train, 30..34 validate, 35..39 are held out (never read).
        let split = |u: u32| match u {
            0..=29 => Some(false),
            30..=34 => Some(true),
            _ => None,
        };
        let pcfg = PretrainConfig { epochs: 30, lr: 1e-2, batch_size: 32, patience: 5, ..Default::default() };
        let mut seen = Vec::new();
        let report =
            pretrain_next_item(&mut tracker, &seqs, &split, n_items, &pcfg, &mut |e| seen.push(e.epoch)).unwrap();
        assert_eq!((report.train_states, report.valid_states), (30 * 12, 5 * 12));
        assert_eq!(seen.len(), report.epochs.len());
        let best = &report.epochs[report.best_epoch - 1];
        assert!(report.untrained.valid_loss > (n_items as f64).ln() * 0.9, "{report:?}");
        assert!(best.valid_loss < 0.5 * report.untrained.valid_loss, "{report:?}");
        assert!(best.valid_hit_at_10 > 0.9 && report.untrained.valid_hit_at_10 < 0.8, "{report:?}");
        assert!(report.epochs.iter().all(|e| e.valid_loss >= best.valid_loss));
        // The tracker holds the best epoch's weights: the attention block moved.
        let after: std::collections::HashMap<String, Tensor> = snapshot(tracker.var_store()).into_iter().collect();
        assert_eq!(after.len(), before.len());
        assert!(!before
            .iter()
            .find(|(n, _)| n == "attn_q.weight")
            .map(|(_, t)| t.equal(&after["attn_q.weight"]))
            .unwrap());
    }

    #[test]
    fn a_tracker_with_nothing_to_train_and_bad_settings_are_errors() {
        let _torch = dsrm_nn::runtime::exclusive();
        let data = cycles(10, 5, 10);
        let seqs: Vec<Sequence<'_>> = data.iter().map(|(u, i, r)| (*u, &i[..], &r[..])).collect();
        let split = |u: u32| Some(u >= 8);
        let cfg = SasRecConfig { embedding_dim: 4, ..Default::default() };
        let mut tracker = SasRecTracker::new(&cfg, 10, None, Device::Cpu).unwrap();
        let on = PretrainConfig { epochs: 1, ..Default::default() };
        for bad in [PretrainConfig { lr: 0.0, ..on.clone() }, PretrainConfig { batch_size: 0, ..on.clone() }] {
            let err = pretrain_next_item(&mut tracker, &seqs, &split, 10, &bad, &mut |_| {}).unwrap_err();
            assert!(err.to_string().contains("[train.dsrm.tracker_pretrain]"), "{err}");
        }
        let none = |_: u32| None;
        let err = pretrain_next_item(&mut tracker, &seqs, &none, 10, &on, &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("training and validation steps"), "{err}");
        tracker.var_store_mut().freeze();
        let err = pretrain_next_item(&mut tracker, &seqs, &split, 10, &on, &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("no trainable weights"), "{err}");
    }
}
