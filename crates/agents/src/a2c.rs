//! A2C, as DORL trains its model-based baselines (MBPO, MOPO, DORL, IPS; `docs/protocol.md` §5): tianshou's
//! `A2CPolicy` with a Categorical distribution over the whole catalogue, on-policy, one pass over each
//! collection.
//!
//! For each collection of whole episodes (advantages from GAE(γ, λ) with the values at collection time):
//!
//! ```text
//! repeat `repeat_per_collect` times:
//!   for each minibatch B (random permutation, tianshou's merge-last split):
//!     s      = tracker(history)                           # recomputed, with gradients into the tracker
//!     logits, V = actor(s), critic(s)
//!     L_pi   = −mean_B( log π(a|s) · A )
//!     L_V    = mean_B( (R − V(s))² )
//!     H      = mean_B( entropy π(·|s) )
//!     loss   = L_pi + vf_coef · L_V − ent_coef · H
//!     one backward pass; Adam on the policy networks, Adam on the tracker
//! ```

use crate::actor_critic::{actor_critic_tensors, on_policy_iteration, restore_actor_critic, ActorCritic};
use crate::learner::{EvalPolicy, Iteration, Learner, TrainingEnv};
use crate::losses::{log_prob_and_entropy, Minibatch};
use crate::pace::schedule;
use crate::rl_policy::actor_critic_policy;
use crate::rollout::Rollout;
use crate::shown::mask_logits;
use crate::trained_tracker::{joint_step, TrainedTracker};
use crate::update_stats::UpdateStats;
use crate::{AgentError, Result};
use dsrm_nn::optim::{Adam, AdamConfig};
use dsrm_nn::tch::{Device, Kind, Tensor};
use dsrm_state::StateTracker;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A2C hyper-parameters. Defaults: DORL's `run_Policy_Main.py` and its paper logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct A2cConfig {
    /// Adam learning rate of the policy and value networks.
    pub lr: f64,
    /// Adam learning rate of the state tracker (its own optimiser, as DORL's `optim_state`).
    pub tracker_lr: f64,
    /// Discount γ.
    pub gamma: f64,
    /// GAE λ; 1.0 makes the advantage the discounted return minus the value.
    pub gae_lambda: f64,
    /// Weight of the value loss.
    pub vf_coef: f64,
    /// Weight of the entropy bonus (0: none).
    pub ent_coef: f64,
    /// Global gradient-norm clip of the policy networks (DORL: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_grad_norm: Option<f64>,
    /// Minibatch size of the update.
    pub batch_size: usize,
    /// Passes over each collection (unless paced).
    pub repeat_per_collect: usize,
    /// Paced updates instead of passes: this many gradient updates per 1,000 environment steps, whatever the
    /// collection's size (`crate::pace`; the equal-compute schedule of `dsrm study paper`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updates_per_1k_steps: Option<f64>,
    /// Hidden layers of the trunk (tianshou `Net(hidden_sizes)`).
    pub hidden: Vec<i64>,
    /// Policy and value heads share the trunk (DORL: yes; see `actor_critic`).
    pub shared_trunk: bool,
    /// Never recommend an item already shown in the episode: blocked in the training collections, the update
    /// and every evaluation mode (`crate::shown`). Off (the default), training masks nothing (FB, DORL's protocol).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mask_shown: bool,
}

impl Default for A2cConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            tracker_lr: 1e-3,
            gamma: 0.9,
            gae_lambda: 1.0,
            vf_coef: 0.5,
            ent_coef: 0.0,
            max_grad_norm: None,
            batch_size: 1024,
            repeat_per_collect: 1,
            updates_per_1k_steps: None,
            hidden: vec![64, 64],
            shared_trunk: true,
            mask_shown: false,
        }
    }
}

/// An A2C agent: the networks and their optimiser.
#[derive(Debug)]
pub struct A2c {
    /// Hyper-parameters.
    pub cfg: A2cConfig,
    /// Policy and value networks.
    pub net: ActorCritic,
    /// Their optimiser (the tracker has its own).
    pub adam: Adam,
}

impl A2c {
    /// A fresh agent for states of `state_dim` and a catalogue of `n_items` (seed libtorch first).
    pub fn new(cfg: A2cConfig, state_dim: i64, n_items: i64, device: Device) -> Result<Self> {
        let net = ActorCritic::new(state_dim, n_items, &cfg.hidden, cfg.shared_trunk, device)?;
        let adam =
            Adam::new(&net.vs, AdamConfig { lr: cfg.lr, max_grad_norm: cfg.max_grad_norm, ..Default::default() });
        Ok(Self { cfg, net, adam })
    }

    /// One A2C update on a collection (advantages already computed), training the tracker jointly.
    pub fn update(
        &mut self,
        rollout: &Rollout,
        tracker: &mut TrainedTracker,
        rng: &mut ChaCha8Rng,
        steps_before: u64,
    ) -> Result<UpdateStats> {
        let device = self.net.vs.device();
        let (window, n_items) = (tracker.tracker.window(), self.net.n_items() as usize);
        let mut stats = UpdateStats::default();
        let (pace, size, repeat) = (self.cfg.updates_per_1k_steps, self.cfg.batch_size, self.cfg.repeat_per_collect);
        for steps in schedule(pace, steps_before, rollout.len(), size, repeat, rng) {
            let mb = Minibatch::new(rollout, &steps, device)?;
            let states = tracker.states(&rollout.history_batch(&steps, window, n_items, device))?;
            let (logits, values) = self.net.forward(&states)?;
            let logits = mask_logits(logits, self.cfg.mask_shown, rollout, &steps)?;
            let (log_prob, entropy) = log_prob_and_entropy(&logits, &mb.actions, self.cfg.ent_coef != 0.0)?;

            let actor_loss = log_prob.f_mul(&mb.advantages)?.f_mean(Kind::Float)?.f_neg()?;
            let vf_loss = mb.returns.f_sub(&values)?.f_square()?.f_mean(Kind::Float)?;
            let mut loss = actor_loss.f_add(&vf_loss.f_mul_scalar(self.cfg.vf_coef)?)?;
            if self.cfg.ent_coef != 0.0 {
                loss = loss.f_sub(&entropy.f_mul_scalar(self.cfg.ent_coef)?)?;
            }

            let loss_value = loss.f_double_value(&[])?;
            if !loss_value.is_finite() {
                return Err(AgentError::Diverged(format!(
                    "a2c loss {loss_value} after {} gradient steps",
                    stats.grad_steps
                )));
            }
            joint_step(&loss, &mut self.adam, tracker)?;
            stats.merge(&UpdateStats {
                loss: loss_value,
                actor_loss: actor_loss.f_double_value(&[])?,
                vf_loss: vf_loss.f_double_value(&[])?,
                entropy: entropy.f_double_value(&[])?,
                grad_steps: 1,
                ..Default::default()
            });
        }
        Ok(stats)
    }
}

impl Learner for A2c {
    fn name(&self) -> &'static str {
        "a2c"
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
        let policy = actor_critic_policy("a2c", tracker, self.net.try_clone()?, reward_range)?;
        Ok(Box::new(policy.masking_shown(self.cfg.mask_shown)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::MeanTracker;
    use dsrm_policy::{ItemMask, Observation, PolicyRng, Selection};
    use dsrm_sim::test_support::tiny_world;
    use dsrm_sim::GroundTruthReward;
    use rand::SeedableRng;

    #[test]
    fn an_a2c_with_mask_shown_trains_on_masked_collections_and_blocks_shown_items_when_evaluated() {
        let _torch = dsrm_nn::runtime::exclusive();
        let world = tiny_world();
        let n = world.spec.n_items();
        let reward = GroundTruthReward::new(&world.spec.rewards);
        let (shown, rewards) = ([0u32, 2], [1.0, 0.0]);
        for mask_shown in [false, true] {
            dsrm_nn::runtime::seed(1);
            let mut tracker = TrainedTracker::new(Box::new(MeanTracker::new(n, 8, 3)), 1e-3);
            let cfg = A2cConfig { mask_shown, batch_size: 64, ..Default::default() };
            let mut a2c = A2c::new(cfg, tracker.tracker.state_dim(), n as i64, Device::Cpu).unwrap();
            let env = TrainingEnv { spec: &world.spec, reward_model: &reward, episodes: 20, steps_before: 0 };
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let it = a2c.iterate(&env, &mut tracker, &mut rng).unwrap();
            assert!(it.update.loss.is_finite(), "mask_shown {mask_shown}: loss {}", it.update.loss);
            let mut policy = a2c.snapshot(tracker.tracker, (0.0, 2.0)).unwrap();
            let obs = Observation { user: 0, items: &shown, rewards: &rewards, initial_item: None };
            let mut rng = PolicyRng::seed_from_u64(2);
            for _ in 0..50 {
                let a = policy.act(&obs, &ItemMask::all(n), Selection::Sampled, &mut rng);
                assert!(!mask_shown || !shown.contains(&a), "recommended shown item {a}");
            }
            let mut scores = Vec::new();
            policy.score_all(&obs, &ItemMask::all(n), Selection::Argmax, &mut rng, &mut scores).unwrap();
            let blocked = scores.iter().filter(|s| !s.is_finite()).count();
            assert_eq!(blocked, if mask_shown { shown.len() } else { 0 });
        }
    }
}
