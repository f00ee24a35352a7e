//! The contract every tracker keeps, checked on all three through [`build`] and the [`StateTracker`] trait:
//! shapes, padding that never reaches a state, gradients (and none when frozen), seeded determinism, errors
//! instead of panics on malformed batches, and that a tracker + linear head can actually learn.

use crate::test_support::*;
use crate::{build, AvgConfig, GruConfig, HistoryBatch, SasRecConfig, StateError, StateTracker, TrackerConfig};
use dsrm_nn::checkpoint;
use dsrm_nn::optim::{Adam, AdamConfig};
use dsrm_nn::tch::nn::{self, Module, VarStore};
use dsrm_nn::tch::{self, Device, Kind, Tensor};

const N_ITEMS: usize = 12;

/// Small configs (d = 6, range (0, 5)) of each kind; `freeze` sets `freeze_embeddings`.
fn configs(freeze: bool) -> Vec<TrackerConfig> {
    let range = (0.0, 5.0);
    vec![
        TrackerConfig::Avg(AvgConfig {
            embedding_dim: 6,
            freeze_embeddings: freeze,
            reward_range: range,
            ..AvgConfig::default()
        }),
        TrackerConfig::Gru(GruConfig {
            embedding_dim: 6,
            freeze_embeddings: freeze,
            reward_range: range,
            ..GruConfig::default()
        }),
        TrackerConfig::Sasrec(SasRecConfig {
            embedding_dim: 6,
            freeze_embeddings: freeze,
            reward_range: range,
            ..SasRecConfig::default()
        }),
    ]
}

fn make(cfg: &TrackerConfig) -> Box<dyn StateTracker> {
    build(cfg, N_ITEMS, None, Device::Cpu).unwrap()
}

fn table(tracker: &dyn StateTracker) -> Tensor {
    tracker.var_store().variables()["item_embedding"].shallow_clone()
}

#[test]
fn shapes_are_batch_by_state_dim_including_empty_batches() {
    let _rng = seeded(1);
    for cfg in configs(false) {
        let tracker = make(&cfg);
        assert_eq!(tracker.state_dim(), 7);
        let batch = random_batch(9, 7, 3, N_ITEMS, 1);
        assert_eq!(tracker.states(&batch).size(), [9, 7], "{}", tracker.name());
        let empty = HistoryBatch::new(&[], 3, N_ITEMS, Device::Cpu);
        assert_eq!(tracker.try_states(&empty).unwrap().size(), [0, 7], "{}", tracker.name());
        // A wider batch is read through its last W columns.
        let wide = random_batch(9, 7, 5, N_ITEMS, 1);
        let narrow = random_batch(9, 7, 3, N_ITEMS, 1);
        assert!(tracker.states(&wide).allclose(&tracker.states(&narrow), 1e-6, 1e-6, false), "{}", tracker.name());
    }
}

/// Whatever sits in padded columns (ids, even out of range; rewards, even NaN; the pad row itself) is never read.
#[test]
fn padded_positions_never_reach_the_state() {
    let _rng = seeded(2);
    for cfg in configs(false) {
        for training in [false, true] {
            let mut tracker = make(&cfg);
            tracker.set_training(training);
            let batch = random_batch(32, 5, 3, N_ITEMS, 2);
            tch::manual_seed(9);
            let clean = tracker.states(&batch);

            let pad = batch.mask.eq(0.0);
            let noisy = HistoryBatch {
                items: batch.items.where_self(&pad.logical_not(), &Tensor::full_like(&batch.items, 1_000_000)),
                rewards: batch.rewards.where_self(&pad.logical_not(), &Tensor::full_like(&batch.rewards, f64::NAN)),
                mask: batch.mask.shallow_clone(),
                steps: batch.steps.shallow_clone(),
                users: batch.users.shallow_clone(),
                window: batch.window,
                pad: batch.pad,
            };
            tch::no_grad(|| {
                let _ = table(tracker.as_ref()).get(N_ITEMS as i64).fill_(123.0);
            });
            tch::manual_seed(9);
            let after = tracker.states(&noisy);
            assert!(after.equal(&clean), "{} (training {training})", tracker.name());
        }
    }
}

#[test]
fn gradients_reach_the_item_table_but_not_its_padding_row() {
    let _rng = seeded(3);
    for cfg in configs(false) {
        let tracker = make(&cfg);
        let table = table(tracker.as_ref());
        let batch = batch_of(&[(0, vec![4, 5], vec![1.0, 2.0]), (1, vec![], vec![])], 3, N_ITEMS);
        tracker.states(&batch).square().sum(Kind::Float).backward();
        let grad = table.grad();
        assert!(grad.defined(), "{}", tracker.name());
        let row_norm = |i: i64| grad.get(i).abs().sum(Kind::Float).double_value(&[]);
        assert!(row_norm(4) > 0.0 && row_norm(5) > 0.0, "{}: used items get gradient", tracker.name());
        assert!(row_norm(N_ITEMS as i64 + 1) > 0.0, "{}: the start row gets gradient", tracker.name());
        assert_eq!(row_norm(N_ITEMS as i64), 0.0, "{}: the padding row gets none", tracker.name());
        assert_eq!(row_norm(0), 0.0, "{}: unused items get none", tracker.name());
    }
}

#[test]
fn frozen_embeddings_get_no_gradient_and_do_not_move_under_adam() {
    let _rng = seeded(4);
    for cfg in configs(true) {
        let tracker = make(&cfg);
        let table = table(tracker.as_ref());
        assert!(!table.requires_grad(), "{}", tracker.name());
        let before = table.copy();
        let head_vs = VarStore::new(Device::Cpu);
        let head = nn::linear(head_vs.root(), tracker.state_dim(), 1, Default::default());
        let mut opt_tracker = Adam::new(tracker.var_store(), AdamConfig { lr: 0.1, ..AdamConfig::default() });
        let mut opt_head = Adam::new(&head_vs, AdamConfig { lr: 0.1, ..AdamConfig::default() });
        let batch = random_batch(16, 5, 3, N_ITEMS, 4);
        let other_before: Vec<Tensor> = tracker.var_store().trainable_variables().iter().map(|t| t.copy()).collect();
        let loss = || head.forward(&tracker.states(&batch)).square().mean(Kind::Float);
        for _ in 0..3 {
            // Each optimiser zeroes only its own gradients, so each gets its own backward pass.
            opt_tracker.backward_step(&loss()).unwrap();
            opt_head.backward_step(&loss()).unwrap();
        }
        assert!(!table.grad().defined(), "{}", tracker.name());
        assert!(table.equal(&before), "{}: frozen table moved", tracker.name());
        // The rest of a sequence tracker still trains.
        let moved = tracker.var_store().trainable_variables().iter().zip(&other_before).any(|(a, b)| !a.equal(b));
        assert_eq!(moved, tracker.name() != "avg", "{}", tracker.name());
    }
}

#[test]
fn a_fixed_seed_gives_identical_trackers_and_states() {
    for cfg in configs(false) {
        let run = || {
            let _rng = seeded(42);
            let mut tracker = make(&cfg);
            tracker.set_training(true);
            tracker.states(&random_batch(8, 5, 3, N_ITEMS, 5))
        };
        let (a, b) = (run(), run());
        assert!(a.equal(&b), "{cfg:?}");
    }
}

/// Agents checkpoint `var_store()` by name and restore through `var_store_mut()`; frozen tables included.
#[test]
fn checkpointed_variables_restore_into_a_fresh_tracker() {
    for cfg in configs(false).into_iter().chain(configs(true)) {
        let _rng = seeded(10);
        let saved = make(&cfg);
        let mut fresh = make(&cfg);
        let batch = random_batch(8, 5, 3, N_ITEMS, 10);
        assert!(!saved.states(&batch).equal(&fresh.states(&batch)), "{cfg:?}");
        let tensors = checkpoint::named("tracker", saved.var_store());
        checkpoint::restore("tracker", fresh.var_store_mut(), &tensors).unwrap();
        assert!(saved.states(&batch).equal(&fresh.states(&batch)), "{cfg:?}");
    }
}

#[test]
fn malformed_batches_are_errors_not_panics() {
    let _rng = seeded(6);
    for cfg in configs(false) {
        let tracker = make(&cfg);
        let is_batch_error = |batch: &HistoryBatch| matches!(tracker.try_states(batch), Err(StateError::Batch(_)));
        assert!(is_batch_error(&random_batch(4, 5, 2, N_ITEMS, 6)), "window 2 < 3");
        assert!(is_batch_error(&batch_of(&[(0, vec![N_ITEMS as u32], vec![1.0])], 3, N_ITEMS)), "id out of range");
        let good = random_batch(4, 5, 3, N_ITEMS, 6);
        let bad = HistoryBatch { rewards: good.rewards.narrow(0, 0, 3), ..good };
        assert!(is_batch_error(&bad), "rewards rows");
        let good = random_batch(4, 5, 3, N_ITEMS, 6);
        let bad = HistoryBatch { steps: good.steps.narrow(0, 0, 2), ..good };
        assert!(is_batch_error(&bad), "steps rows");
        let good = random_batch(4, 5, 3, N_ITEMS, 6);
        let bad = HistoryBatch { items: good.items.reshape([-1]), ..good };
        assert!(is_batch_error(&bad), "1-D items");
    }
}

/// Each tracker + a linear head, trained with two Adams (DORL's separate tracker optimiser), learns a target that
/// needs its inputs. The sequence trackers predict the last normalised reward (order matters). `avg` is a
/// permutation-invariant mean and cannot tell which row is last, so it predicts the window mean of a hidden
/// per-item score instead, which it can only learn through its item embeddings.
#[test]
fn each_tracker_with_a_linear_head_learns() {
    for cfg in configs(false) {
        let _rng = seeded(7);
        let is_avg = matches!(cfg, TrackerConfig::Avg(_));
        let histories = random_histories(256, if is_avg { 3 } else { 1 }, 6, N_ITEMS, 7);
        let mut rng = Rng::new(8);
        let score: Vec<f32> = (0..N_ITEMS).map(|_| (2.0 * rng.unit() - 1.0) as f32).collect();
        let target: Vec<f32> = histories
            .iter()
            .map(|(_, items, rewards)| match is_avg {
                true => items[items.len() - 3..].iter().map(|&i| score[i as usize]).sum::<f32>() / 3.0,
                false => (rewards[rewards.len() - 1] / 5.0) as f32,
            })
            .collect();
        let target = Tensor::from_slice(&target).reshape([-1, 1]);
        let batch = batch_of(&histories, 3, N_ITEMS);

        let tracker = make(&cfg);
        let head_vs = VarStore::new(Device::Cpu);
        let head = nn::linear(head_vs.root(), tracker.state_dim(), 1, Default::default());
        let adam = AdamConfig { lr: 1e-2, ..AdamConfig::default() };
        let (mut opt_tracker, mut opt_head) = (Adam::new(tracker.var_store(), adam), Adam::new(&head_vs, adam));
        let loss = || head.forward(&tracker.states(&batch)).mse_loss(&target, tch::Reduction::Mean);
        let first = loss().double_value(&[]);
        for _ in 0..150 {
            // Both optimisers zero their own gradients, so each backward serves one of them.
            opt_tracker.backward_step(&loss()).unwrap();
            opt_head.backward_step(&loss()).unwrap();
        }
        let last = loss().double_value(&[]);
        // Beating the best constant prediction (the target's variance) shows the state carries the information.
        let constant = target.var(false).double_value(&[]);
        assert!(last < first / 20.0 && last < constant / 10.0, "{}: loss {first} -> {last}", tracker.name());
    }
}
