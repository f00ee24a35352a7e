//! Blocking the items an episode has already shown (the agents' `mask_shown`). The paper's low level samples
//! "after masking"; with the setting on, an agent never repeats an item within an episode, and the same items
//! are blocked in the training collection (probability 0), in the update (logits pushed to −1e9, so the PPO
//! ratio reads the distribution the collection sampled) and in every evaluation mode, free browsing included.
//!
//! ```text
//! S_t = the items of the episode before step t
//! blocked(S_t) = S_t  unless S_t covers the whole catalogue (then nothing: an episode longer than the catalogue)
//! collection:  p_i ← 0 for i ∈ blocked(S_t), a_t ~ p / Σ p,  log π(a_t) = ln(p_a / Σ p)
//!              (Σ p < 1e-20 in float32: p recomputed in float64 from the row's logits, `block_shown_exactly`)
//! update:      logits_i ← logits_i − 1e9 for i ∈ blocked(S_t)      (finite, so p · log p stays 0)
//! evaluation:  the mode's mask plus blocked(S_t)
//! ```

use crate::rollout::Rollout;
use crate::Result;
use dsrm_nn::tch::{Device, Tensor};
use dsrm_policy::ItemMask;

/// Whether the items `shown` are blocked: unless they are every one of the `n_items`.
pub fn masks_shown(shown: &[u32], n_items: usize) -> bool {
    if shown.len() < n_items {
        return true;
    }
    let mut distinct = shown.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    distinct.len() < n_items
}

/// Zeroes the probabilities of the `shown` items in `row` (a distribution over the catalogue) and returns the
/// mass left, by which the caller renormalises; 1 when nothing is blocked.
pub fn block_shown(row: &mut [f32], shown: &[u32]) -> f64 {
    if !masks_shown(shown, row.len()) {
        return 1.0;
    }
    for &item in shown {
        row[item as usize] = 0.0;
    }
    row.iter().map(|&p| f64::from(p)).sum()
}

/// Below this mass left outside the shown items, a float32 softmax row cannot be renormalised: the unshown items'
/// probabilities may all have underflowed to 0 (the policy put nearly all its mass on items it has shown).
const MIN_MASS: f64 = 1e-20;

/// [`block_shown`], except that a row with less than 1e-20 of its mass left is recomputed from its `logits`
/// (fetched only then): softmax over the unshown items in float64, stored back as float32. Returns the mass by
/// which the caller renormalises (≈ 1 for a recomputed row). Rows with more mass are left exactly as
/// [`block_shown`] leaves them, so runs that never meet such a row are unchanged.
pub fn block_shown_exactly(row: &mut [f32], shown: &[u32], logits: impl FnOnce() -> Result<Vec<f32>>) -> Result<f64> {
    let mass = block_shown(row, shown);
    if mass >= MIN_MASS {
        return Ok(mass);
    }
    let logits = logits()?;
    let mut blocked = vec![false; row.len()];
    shown.iter().for_each(|&i| blocked[i as usize] = true);
    let open = || logits.iter().zip(&blocked).filter(|(_, &b)| !b).map(|(&l, _)| f64::from(l));
    let max = open().fold(f64::NEG_INFINITY, f64::max);
    let total: f64 = open().map(|l| (l - max).exp()).sum();
    for ((p, &l), &b) in row.iter_mut().zip(&logits).zip(&blocked) {
        *p = if b { 0.0 } else { ((f64::from(l) - max).exp() / total) as f32 };
    }
    Ok(row.iter().map(|&p| f64::from(p)).sum())
}

/// The update's `[steps.len(), n_items]` logits with, when `on`, the items each step's episode had shown before
/// it pushed to −1e9; unchanged otherwise.
pub fn mask_logits(logits: Tensor, on: bool, ro: &Rollout, steps: &[usize]) -> Result<Tensor> {
    if !on {
        return Ok(logits);
    }
    let n_items = logits.size().last().copied().unwrap_or(0) as usize;
    Ok(logits.f_add(&rollout_penalty(ro, steps, n_items, logits.device())?)?)
}

/// `[steps.len(), n_items]`: −1e9 at the items each step's episode had shown before it, 0 elsewhere.
fn rollout_penalty(ro: &Rollout, steps: &[usize], n_items: usize, device: Device) -> Result<Tensor> {
    let shown: Vec<&[u32]> = steps.iter().map(|&s| &ro.actions[ro.starts[ro.episode_of[s] as usize]..s]).collect();
    shown_penalty(&shown, n_items, device)
}

/// `[shown.len(), n_items]`: −1e9 at each row's `shown` items where they block ([`masks_shown`]), 0 elsewhere.
pub fn shown_penalty(shown: &[&[u32]], n_items: usize, device: Device) -> Result<Tensor> {
    let mut penalty = vec![0f32; shown.len() * n_items];
    for (k, row) in shown.iter().enumerate() {
        if masks_shown(row, n_items) {
            for &item in row.iter() {
                penalty[k * n_items + item as usize] = -1e9;
            }
        }
    }
    Ok(Tensor::from_slice(&penalty).f_reshape([shown.len() as i64, n_items as i64])?.f_to_device(device)?)
}

/// `[B, n]` log_softmax(`logits`) with the items `blocked` marks (a [`shown_penalty`]) at probability 0: the
/// policy whose expectations the soft and critic-regularised targets take, once `mask_shown` is on.
pub fn masked_log_softmax(logits: Tensor, blocked: Option<&Tensor>) -> Result<Tensor> {
    let logits = match blocked {
        Some(b) => logits.f_add(b)?,
        None => logits,
    };
    Ok(logits.f_log_softmax(-1, dsrm_nn::tch::Kind::Float)?)
}

/// When `on`, the evaluation mode's `mask` with the `shown` items blocked too; `None` when off, when that blocks
/// nothing new or when it would leave no item allowed.
pub fn with_shown_blocked(on: bool, mask: &ItemMask, shown: &[u32]) -> Option<ItemMask> {
    if !on || !masks_shown(shown, mask.n_items()) || shown.iter().all(|&i| !mask.allows(i)) {
        return None;
    }
    let mut m = mask.clone();
    shown.iter().for_each(|&i| m.block(i));
    (m.n_allowed() > 0).then_some(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learner::{Algorithm, TrainingEnv};
    use crate::test_support::MeanTracker;
    use crate::trained_tracker::TrainedTracker;
    use dsrm_policy::{Observation, PolicyRng, Selection};
    use dsrm_sim::test_support::tiny_world;
    use dsrm_sim::GroundTruthReward;
    use dsrm_state::StateTracker;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn every_algorithm() -> Vec<Algorithm> {
        vec![
            Algorithm::A2c(Default::default()),
            Algorithm::Ppo(Default::default()),
            Algorithm::Hrl(Default::default()),
            Algorithm::Fcpo(Default::default()),
            Algorithm::Dqn(Default::default()),
            Algorithm::Sac(Default::default()),
            Algorithm::Sac4ir(Default::default()),
            Algorithm::Td3(Default::default()),
            Algorithm::Dnair(Default::default()),
            Algorithm::Mofir(Default::default()),
            Algorithm::Bcq(Default::default()),
            Algorithm::Cql(Default::default()),
            Algorithm::Crr(Default::default()),
            Algorithm::Sqn(Default::default()),
        ]
    }

    /// The scores a fresh `alg` (seeded) gives after the items `shown`, in free browsing (nothing else masked).
    fn fresh_scores(alg: &Algorithm, shown: &[u32]) -> Vec<f64> {
        let world = tiny_world();
        let n = world.spec.n_items();
        dsrm_nn::runtime::seed(3);
        let tracker = MeanTracker::new(n, 8, 3);
        let learner = alg.build(tracker.state_dim(), world, Device::Cpu).unwrap();
        let mut policy = learner.snapshot(Box::new(tracker), (0.0, 2.0)).unwrap();
        let rewards = vec![1.0; shown.len()];
        let obs = Observation { user: 0, items: shown, rewards: &rewards, initial_item: None };
        let mut rng = PolicyRng::seed_from_u64(2);
        let mut scores = Vec::new();
        policy.score_all(&obs, &ItemMask::all(n), Selection::Sampled, &mut rng, &mut scores).unwrap();
        for _ in 0..30 {
            let a = policy.act(&obs, &ItemMask::all(n), Selection::Argmax, &mut rng);
            assert!(!alg.mask_shown() || !shown.contains(&a), "{}: recommended shown item {a}", alg.name());
        }
        scores
    }

    #[test]
    fn every_learner_with_mask_shown_blocks_exactly_the_shown_items_and_trains_without_repeating() {
        let _torch = dsrm_nn::runtime::exclusive();
        let world = tiny_world();
        let n = world.spec.n_items();
        let reward = GroundTruthReward::new(&world.spec.rewards);
        let shown = [1u32, 4, 2];
        for mut alg in every_algorithm() {
            let name = alg.name();
            let open = fresh_scores(&alg, &shown);
            alg.set_mask_shown(true);
            assert!(alg.mask_shown(), "{name}");
            let masked = fresh_scores(&alg, &shown);
            for i in 0..n {
                if shown.contains(&(i as u32)) {
                    assert!(open[i].is_finite() || name == "bcq", "{name}: item {i} blocked without the mask");
                    assert_eq!(masked[i], f64::NEG_INFINITY, "{name}: shown item {i} not blocked");
                } else {
                    assert_eq!(masked[i].to_bits(), open[i].to_bits(), "{name}: unshown item {i} changed");
                }
            }
            // Training with the mask: the collection refuses a repeated item (replay.rs), the targets and
            // updates read the masked distributions; a few iterations must run and update.
            dsrm_nn::runtime::seed(5);
            let tracker = MeanTracker::new(n, 8, 3);
            let mut learner = alg.build(tracker.state_dim(), world, Device::Cpu).unwrap();
            let mut tracker = TrainedTracker::new(Box::new(tracker), alg.tracker_lr());
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            let mut grad_steps = 0;
            for k in 0..3 {
                let env = TrainingEnv { spec: &world.spec, reward_model: &reward, episodes: 24, steps_before: k * 200 };
                let it = learner.iterate(&env, &mut tracker, &mut rng).unwrap_or_else(|e| panic!("{name}: {e}"));
                grad_steps += it.update.grad_steps;
                assert!(it.update.loss.is_finite(), "{name}: loss {}", it.update.loss);
            }
            assert!(grad_steps > 0, "{name}: no update in three iterations");
        }
    }

    #[test]
    fn a_row_whose_mass_sat_on_shown_items_is_recomputed_from_its_logits() {
        // Item 0 holds all the float32 mass; items 1 and 2 underflowed to 0 though their logits differ.
        let logits = vec![0.0f32, -120.0, -121.0];
        let p = Tensor::from_slice(&logits).softmax(-1, dsrm_nn::tch::Kind::Float);
        let mut row: Vec<f32> = Vec::try_from(p).unwrap();
        assert_eq!(row, [1.0, 0.0, 0.0]);
        let mut plain = row.clone();
        assert_eq!(block_shown(&mut plain, &[0]), 0.0, "nothing left to sample from");
        let mass = block_shown_exactly(&mut row, &[0], || Ok(logits.clone())).unwrap();
        let e = (-1f64).exp();
        assert!((row[1] as f64 - 1.0 / (1.0 + e)).abs() < 1e-6 && (row[2] as f64 - e / (1.0 + e)).abs() < 1e-6);
        assert!(row[0] == 0.0 && (mass - 1.0).abs() < 1e-6, "{row:?} {mass}");
        // A row with mass left is blocked as before, its logits never read.
        let mut row = [0.25f32, 0.25, 0.5];
        let mass = block_shown_exactly(&mut row, &[2], || panic!("logits read")).unwrap();
        assert_eq!((row, mass), ([0.25, 0.25, 0.0], 0.5));
    }

    #[test]
    fn an_episode_that_showed_the_whole_catalogue_blocks_nothing() {
        assert!(masks_shown(&[0, 1, 1], 3));
        assert!(!masks_shown(&[2, 0, 1, 1], 3));
        let mut row = [0.25f32, 0.25, 0.5];
        assert_eq!(block_shown(&mut row, &[2]), 0.5);
        assert_eq!(row, [0.25, 0.25, 0.0]);
        let mut row = [0.25f32, 0.25, 0.5];
        assert_eq!(block_shown(&mut row, &[0, 1, 2]), 1.0);
        assert_eq!(row, [0.25, 0.25, 0.5]);
        let mask = ItemMask::all(3);
        let m = with_shown_blocked(true, &mask, &[1]).expect("blocks item 1");
        assert!(m.allows(0) && !m.allows(1) && m.allows(2));
        assert!(with_shown_blocked(true, &mask, &[0, 1, 2]).is_none());
        assert!(with_shown_blocked(true, &m, &[1]).is_none(), "already blocked: nothing new");
        assert!(with_shown_blocked(false, &mask, &[1]).is_none(), "off: the mode's mask alone");
    }
}
