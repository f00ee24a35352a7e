//! PPO with the clipped surrogate objective, as EasyRL4Rec's on-policy scripts run tianshou's `PPOPolicy`
//! (`docs/protocol.md` §5): Categorical over the whole catalogue, GAE λ 0.95, clip ε 0.2, per-minibatch
//! advantage normalisation, gradient-norm clip 0.5.
//!
//! For each collection of whole episodes (advantages from GAE(γ, λ); π_old = the log-probabilities at
//! collection time):
//!
//! ```text
//! repeat `repeat_per_collect` times:
//!   for each minibatch B (random permutation, tianshou's merge-last split):
//!     A      = (A − mean_B A) / (std_B A + 1e-8)           # if norm_advantages
//!     s      = tracker(history)                           # recomputed, with gradients into the tracker
//!     ratio  = exp(log π(a|s) − log π_old(a|s))
//!     L_clip = −mean_B( min(ratio · A, clip(ratio, 1 − ε, 1 + ε) · A) )
//!     L_V    = mean_B( (R − V(s))² )                      # or the clipped value loss if value_clip
//!     H      = mean_B( entropy π(·|s) )
//!     loss   = L_clip + vf_coef · L_V − ent_coef · H
//!     one backward pass; clip the policy networks' gradient norm; Adam on the networks, Adam on the tracker
//! ```

use crate::actor_critic::{actor_critic_tensors, on_policy_iteration, restore_actor_critic};
use crate::learner::{EvalPolicy, Iteration, Learner, TrainingEnv};
pub use crate::ppo_update::{Ppo, PpoConfig};
use crate::rl_policy::actor_critic_policy;
use crate::trained_tracker::TrainedTracker;
use crate::Result;
use dsrm_nn::tch::Tensor;
use dsrm_state::StateTracker;
use rand_chacha::ChaCha8Rng;

impl Learner for Ppo {
    fn name(&self) -> &'static str {
        "ppo"
    }

    fn iterate(&mut self, env: &TrainingEnv, tracker: &mut TrainedTracker, rng: &mut ChaCha8Rng) -> Result<Iteration> {
        let gamma_lambda = (self.cfg.gamma, self.cfg.gae_lambda, self.cfg.mask_shown);
        on_policy_iteration(
            self,
            |a| &a.net,
            env,
            gamma_lambda,
            tracker,
            rng,
            |a, rollout, tracker, rng, before| a.update(rollout, tracker, rng, before),
        )
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        actor_critic_tensors(&self.net, &self.adam)
    }

    fn restore(&mut self, tensors: &[(String, Tensor)]) -> Result<()> {
        restore_actor_critic(&mut self.net, &mut self.adam, tensors)
    }

    fn snapshot(&self, tracker: Box<dyn StateTracker>, reward_range: (f64, f64)) -> Result<Box<dyn EvalPolicy>> {
        let policy = actor_critic_policy("ppo", tracker, self.net.try_clone()?, reward_range)?;
        Ok(Box::new(policy.masking_shown(self.cfg.mask_shown)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::{collect, RolloutConfig};
    use crate::test_support::MeanTracker;
    use dsrm_nn::tch::{Device, Kind};
    use dsrm_policy::{ItemMask, Observation, PolicyRng, Selection};
    use dsrm_sim::test_support::tiny_world;
    use dsrm_sim::GroundTruthReward;
    use rand::SeedableRng;

    #[test]
    fn mask_shown_never_repeats_an_item_and_the_update_reads_the_collections_distribution() {
        let _torch = dsrm_nn::runtime::exclusive();
        let world = tiny_world();
        let n = world.spec.n_items();
        let reward = GroundTruthReward::new(&world.spec.rewards);
        for mask_shown in [false, true] {
            dsrm_nn::runtime::seed(1);
            let tracker: Box<dyn StateTracker> = Box::new(MeanTracker::new(n, 8, 3));
            let cfg = PpoConfig { mask_shown, ..Default::default() };
            let ppo = crate::ppo_update::Ppo::new(cfg, tracker.state_dim(), n as i64, Device::Cpu).unwrap();
            let rc = RolloutConfig { episodes: 200, gamma: 0.9, gae_lambda: 0.95, mask_shown };
            let mut rng = ChaCha8Rng::seed_from_u64(4);
            let ro = collect(&world.spec, &reward, &ppo.net, tracker.as_ref(), &rc, &mut rng).unwrap();
            let mut repeats = 0;
            for e in 0..200 {
                let items = &ro.actions[ro.starts[e]..ro.starts[e + 1]];
                repeats += (0..items.len()).filter(|&t| items[..t].contains(&items[t])).count();
            }
            if mask_shown {
                assert_eq!(repeats, 0, "a masked collection repeated an item");
            } else {
                assert!(repeats > 0, "the unmasked collections repeat items (else the check proves nothing)");
            }
            // The update's log π(a|s), masked as the collection was, equals the collection's.
            let steps: Vec<usize> = (0..ro.len()).collect();
            let states = tracker.try_states(&ro.history_batch(&steps, tracker.window(), n, Device::Cpu)).unwrap();
            let (logits, _) = ppo.net.forward(&states).unwrap();
            let logits = crate::shown::mask_logits(logits, mask_shown, &ro, &steps).unwrap();
            let actions: Vec<i64> = ro.actions.iter().map(|&a| i64::from(a)).collect();
            let lp = logits
                .log_softmax(-1, Kind::Float)
                .gather(1, &Tensor::from_slice(&actions).unsqueeze(1), false)
                .squeeze_dim(1);
            let diff = (lp - Tensor::from_slice(&ro.log_probs)).abs().max().double_value(&[]);
            assert!(diff < 1e-4, "mask_shown {mask_shown}: max |Δ log p| = {diff}");
        }
    }

    #[test]
    fn a_ppo_trained_with_mask_shown_blocks_shown_items_in_free_browsing_evaluation() {
        let _torch = dsrm_nn::runtime::exclusive();
        let world = tiny_world();
        let n = world.spec.n_items();
        let (shown, rewards) = ([1u32, 3], [1.0, 0.0]);
        for mask_shown in [false, true] {
            dsrm_nn::runtime::seed(1);
            let tracker: Box<dyn StateTracker> = Box::new(MeanTracker::new(n, 8, 3));
            let cfg = PpoConfig { mask_shown, ..Default::default() };
            let ppo = Ppo::new(cfg, tracker.state_dim(), n as i64, Device::Cpu).unwrap();
            let mut policy = ppo.snapshot(tracker, (0.0, 2.0)).unwrap();
            let obs = Observation { user: 0, items: &shown, rewards: &rewards, initial_item: None };
            let mut scores = Vec::new();
            let mut rng = PolicyRng::seed_from_u64(2);
            policy.score_all(&obs, &ItemMask::all(n), Selection::Sampled, &mut rng, &mut scores).unwrap();
            for (i, s) in scores.iter().enumerate() {
                let blocked = mask_shown && shown.contains(&(i as u32));
                assert_eq!(s.is_finite(), !blocked, "mask_shown {mask_shown}, item {i}");
            }
            for _ in 0..50 {
                let a = policy.act(&obs, &ItemMask::all(n), Selection::Sampled, &mut rng);
                assert!(!mask_shown || !shown.contains(&a), "recommended shown item {a}");
            }
        }
    }
}
