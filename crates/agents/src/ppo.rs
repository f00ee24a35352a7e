//! PPO with the clipped surrogate objective, as EasyRL4Rec's on-policy scripts run tianshou's `PPOPolicy`
//! (`simulators.md` §5): Categorical over the whole catalogue, GAE λ 0.95, clip ε 0.2, per-minibatch
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

use crate::a2c::{log_prob_and_entropy, Minibatch, UpdateStats};
use crate::actor_critic::{
    actor_critic_tensors, joint_step, on_policy_iteration, restore_actor_critic, ActorCritic, TrainedTracker,
};
use crate::learner::{EvalPolicy, Iteration, Learner, TrainingEnv};
use crate::rl_policy::actor_critic_policy;
use crate::rollout::{minibatches, Rollout};
use crate::{AgentError, Result};
use dsrm_nn::optim::{Adam, AdamConfig};
use dsrm_nn::tch::{Device, Kind, Tensor};
use dsrm_state::StateTracker;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// PPO hyper-parameters. Defaults: EasyRL4Rec's PPO settings, with DORL's shared ones (lr, γ, network, batch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PpoConfig {
    /// Adam learning rate of the policy and value networks.
    pub lr: f64,
    /// Adam learning rate of the state tracker (its own optimiser).
    pub tracker_lr: f64,
    /// Discount γ.
    pub gamma: f64,
    /// GAE λ.
    pub gae_lambda: f64,
    /// Clip range ε of the probability ratio.
    pub clip: f64,
    /// Weight of the value loss.
    pub vf_coef: f64,
    /// Weight of the entropy bonus.
    pub ent_coef: f64,
    /// Global gradient-norm clip of the policy networks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_grad_norm: Option<f64>,
    /// Normalise advantages within each minibatch (tianshou `advantage_normalization`).
    pub norm_advantages: bool,
    /// Clip the value update around the collection-time value (tianshou `value_clip`; off in EasyRL4Rec).
    pub value_clip: bool,
    /// Minibatch size of the update.
    pub batch_size: usize,
    /// Passes over each collection.
    pub repeat_per_collect: usize,
    /// Hidden layers of the trunk.
    pub hidden: Vec<i64>,
    /// Policy and value heads share the trunk.
    pub shared_trunk: bool,
}

impl Default for PpoConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            tracker_lr: 1e-3,
            gamma: 0.9,
            gae_lambda: 0.95,
            clip: 0.2,
            vf_coef: 0.5,
            ent_coef: 0.0,
            max_grad_norm: Some(0.5),
            norm_advantages: true,
            value_clip: false,
            batch_size: 1024,
            repeat_per_collect: 1,
            hidden: vec![64, 64],
            shared_trunk: true,
        }
    }
}

/// A PPO agent: the networks and their optimiser.
#[derive(Debug)]
pub struct Ppo {
    /// Hyper-parameters.
    pub cfg: PpoConfig,
    /// Policy and value networks.
    pub net: ActorCritic,
    /// Their optimiser, with the gradient-norm clip (the tracker has its own).
    pub adam: Adam,
}

impl Ppo {
    /// A fresh agent for states of `state_dim` and a catalogue of `n_items` (seed libtorch first).
    pub fn new(cfg: PpoConfig, state_dim: i64, n_items: i64, device: Device) -> Result<Self> {
        let net = ActorCritic::new(state_dim, n_items, &cfg.hidden, cfg.shared_trunk, device)?;
        let adam =
            Adam::new(&net.vs, AdamConfig { lr: cfg.lr, max_grad_norm: cfg.max_grad_norm, ..Default::default() });
        Ok(Self { cfg, net, adam })
    }

    /// One PPO update on a collection (advantages and old log-probabilities already stored), training the
    /// tracker jointly.
    pub fn update(
        &mut self,
        rollout: &Rollout,
        tracker: &mut TrainedTracker,
        rng: &mut ChaCha8Rng,
    ) -> Result<UpdateStats> {
        let device = self.net.vs.device();
        let (window, n_items) = (tracker.tracker.window(), self.net.n_items() as usize);
        let eps = self.cfg.clip;
        let mut stats = UpdateStats::default();
        for _ in 0..self.cfg.repeat_per_collect {
            for steps in minibatches(rollout.len(), self.cfg.batch_size, rng) {
                let mb = Minibatch::new(rollout, &steps, device)?;
                let mut adv = mb.advantages.shallow_clone();
                if self.cfg.norm_advantages && steps.len() > 1 {
                    let (mean, std) = (adv.f_mean(Kind::Float)?, adv.f_std(true)?);
                    adv = adv.f_sub(&mean)?.f_div(&std.f_add_scalar(1e-8)?)?;
                }
                let states = tracker.states(&rollout.history_batch(&steps, window, n_items, device))?;
                let (logits, values) = self.net.forward(&states)?;
                let (log_prob, entropy) = log_prob_and_entropy(&logits, &mb.actions, self.cfg.ent_coef != 0.0)?;

                let log_ratio = log_prob.f_sub(&mb.old_log_probs)?;
                let ratio = log_ratio.f_exp()?;
                let surr1 = ratio.f_mul(&adv)?;
                let surr2 = ratio.f_clamp(1.0 - eps, 1.0 + eps)?.f_mul(&adv)?;
                let clip_loss = surr1.f_minimum(&surr2)?.f_mean(Kind::Float)?.f_neg()?;
                let vf_loss = if self.cfg.value_clip {
                    let old_v = Tensor::from_slice(&steps.iter().map(|&s| rollout.values[s]).collect::<Vec<f32>>())
                        .f_to_device(device)?;
                    let clipped = old_v.f_add(&values.f_sub(&old_v)?.f_clamp(-eps, eps)?)?;
                    let vf1 = mb.returns.f_sub(&values)?.f_square()?;
                    let vf2 = mb.returns.f_sub(&clipped)?.f_square()?;
                    vf1.f_maximum(&vf2)?.f_mean(Kind::Float)?
                } else {
                    mb.returns.f_sub(&values)?.f_square()?.f_mean(Kind::Float)?
                };
                let mut loss = clip_loss.f_add(&vf_loss.f_mul_scalar(self.cfg.vf_coef)?)?;
                if self.cfg.ent_coef != 0.0 {
                    loss = loss.f_sub(&entropy.f_mul_scalar(self.cfg.ent_coef)?)?;
                }

                let loss_value = loss.f_double_value(&[])?;
                if !loss_value.is_finite() {
                    return Err(AgentError::Diverged(format!(
                        "ppo loss {loss_value} after {} gradient steps",
                        stats.grad_steps
                    )));
                }
                joint_step(&loss, &mut self.adam, tracker)?;
                let approx_kl = log_ratio.f_neg()?.f_mean(Kind::Float)?.f_double_value(&[])?;
                let clip_fraction = ratio
                    .f_sub_scalar(1.0)?
                    .f_abs()?
                    .f_gt(eps)?
                    .f_to_kind(Kind::Float)?
                    .f_mean(Kind::Float)?
                    .f_double_value(&[])?;
                stats.merge(&UpdateStats {
                    loss: loss_value,
                    actor_loss: clip_loss.f_double_value(&[])?,
                    vf_loss: vf_loss.f_double_value(&[])?,
                    entropy: entropy.f_double_value(&[])?,
                    approx_kl,
                    clip_fraction,
                    grad_steps: 1,
                    ..Default::default()
                });
            }
        }
        Ok(stats)
    }
}

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
            |a, rollout, tracker, rng| a.update(rollout, tracker, rng),
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
