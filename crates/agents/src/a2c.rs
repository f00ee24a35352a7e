//! A2C, as DORL trains its model-based baselines (MBPO, MOPO, DORL, IPS; `simulators.md` §5): tianshou's
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

use crate::actor_critic::{
    actor_critic_tensors, joint_step, on_policy_iteration, restore_actor_critic, ActorCritic, TrainedTracker,
};
use crate::learner::{EvalPolicy, Iteration, Learner, TrainingEnv};
use crate::rl_policy::actor_critic_policy;
use crate::rollout::{minibatches, Rollout};
use crate::{AgentError, Result};
use dsrm_nn::optim::{Adam, AdamConfig};
use dsrm_nn::tch::{self, Device, Kind, Tensor};
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
    /// Passes over each collection.
    pub repeat_per_collect: usize,
    /// Hidden layers of the trunk (tianshou `Net(hidden_sizes)`).
    pub hidden: Vec<i64>,
    /// Policy and value heads share the trunk (DORL: yes; see `actor_critic`).
    pub shared_trunk: bool,
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
            hidden: vec![64, 64],
            shared_trunk: true,
        }
    }
}

/// Means over the minibatches of one update.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateStats {
    /// The optimised loss.
    pub loss: f64,
    /// Its policy term (A2C: −mean log π · A; PPO: the clipped surrogate, negated).
    pub actor_loss: f64,
    /// Its value term, before `vf_coef`.
    pub vf_loss: f64,
    /// Mean entropy of π(·|s) over the minibatch.
    pub entropy: f64,
    /// PPO only: mean (log π_old − log π) over the minibatches, an estimate of KL(π_old ‖ π).
    pub approx_kl: f64,
    /// PPO only: share of steps whose ratio left [1 − ε, 1 + ε].
    pub clip_fraction: f64,
    /// Gradient steps taken.
    pub grad_steps: usize,
    /// Algorithm-specific means (e.g. a Q loss, a Lagrange multiplier), merged like the fields above.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub extra: std::collections::BTreeMap<String, f64>,
}

impl UpdateStats {
    /// Combines the means of two sets of gradient steps, weighted by their step counts.
    pub fn merge(&mut self, other: &UpdateStats) {
        let (a, b) = (self.grad_steps as f64, other.grad_steps as f64);
        if a + b == 0.0 {
            return;
        }
        let mean = |x: f64, y: f64| (x * a + y * b) / (a + b);
        self.loss = mean(self.loss, other.loss);
        self.actor_loss = mean(self.actor_loss, other.actor_loss);
        self.vf_loss = mean(self.vf_loss, other.vf_loss);
        self.entropy = mean(self.entropy, other.entropy);
        self.approx_kl = mean(self.approx_kl, other.approx_kl);
        self.clip_fraction = mean(self.clip_fraction, other.clip_fraction);
        for (key, &y) in &other.extra {
            let x = self.extra.get(key).copied().unwrap_or(y);
            self.extra.insert(key.clone(), mean(x, y));
        }
        self.grad_steps += other.grad_steps;
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

/// Per-step tensors of a minibatch.
pub(crate) struct Minibatch {
    pub actions: Tensor,
    pub advantages: Tensor,
    pub returns: Tensor,
    pub old_log_probs: Tensor,
}

impl Minibatch {
    pub(crate) fn new(rollout: &Rollout, steps: &[usize], device: Device) -> Result<Self> {
        let pick = |v: &[f32]| -> Result<Tensor> {
            let x: Vec<f32> = steps.iter().map(|&s| v[s]).collect();
            Ok(Tensor::from_slice(&x).f_to_device(device)?)
        };
        let actions: Vec<i64> = steps.iter().map(|&s| i64::from(rollout.actions[s])).collect();
        Ok(Self {
            actions: Tensor::from_slice(&actions).f_to_device(device)?.f_unsqueeze(1)?,
            advantages: pick(&rollout.advantages)?,
            returns: pick(&rollout.returns)?,
            old_log_probs: pick(&rollout.log_probs)?,
        })
    }
}

/// log π(a|s) of the taken actions, and the mean entropy of π(·|s), from logits. The entropy joins the
/// autograd graph only when it is weighted (`ent_coef != 0`): with the anchors' 0 it is logged, computed
/// without gradients, and the backward pass skips its two passes over the `[B, n_items]` probabilities.
pub(crate) fn log_prob_and_entropy(logits: &Tensor, actions: &Tensor, with_grad: bool) -> Result<(Tensor, Tensor)> {
    let log_p = logits.f_log_softmax(-1, Kind::Float)?;
    let chosen = log_p.f_gather(1, actions, false)?.f_squeeze_dim(1)?;
    let entropy = |log_p: &Tensor| -> Result<Tensor> {
        let per_row = log_p.f_exp()?.f_mul(log_p)?.f_sum_dim_intlist([-1i64].as_slice(), false, Kind::Float)?;
        Ok(per_row.f_mean(Kind::Float)?.f_neg()?)
    };
    let entropy = if with_grad { entropy(&log_p)? } else { tch::no_grad(|| entropy(&log_p.detach()))? };
    Ok((chosen, entropy))
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
    ) -> Result<UpdateStats> {
        let device = self.net.vs.device();
        let (window, n_items) = (tracker.tracker.window(), self.net.n_items() as usize);
        let mut stats = UpdateStats::default();
        for _ in 0..self.cfg.repeat_per_collect {
            for steps in minibatches(rollout.len(), self.cfg.batch_size, rng) {
                let mb = Minibatch::new(rollout, &steps, device)?;
                let states = tracker.states(&rollout.history_batch(&steps, window, n_items, device))?;
                let (logits, values) = self.net.forward(&states)?;
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
        }
        Ok(stats)
    }
}

impl Learner for A2c {
    fn name(&self) -> &'static str {
        "a2c"
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
        Ok(Box::new(actor_critic_policy("a2c", tracker, self.net.try_clone()?, reward_range)?))
    }
}
