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
        let gamma_lambda = (self.cfg.gamma, self.cfg.gae_lambda);
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
        Ok(Box::new(actor_critic_policy("ppo", tracker, self.net.try_clone()?, reward_range)?))
    }
}
