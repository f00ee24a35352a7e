//! PPO's settings, networks and update (the clipped surrogate over minibatch passes, the tracker trained
//! jointly), shared by the PPO agent ([`crate::ppo`], whose header gives the pseudo-code) and FCPO
//! ([`crate::fcpo`]: the same update on a Lagrangian advantage).

use crate::actor_critic::ActorCritic;
use crate::losses::{clipped_surrogate, log_prob_and_entropy, normalise_advantages, Minibatch};
use crate::pace::schedule;
use crate::rollout::Rollout;
use crate::shown::mask_logits;
use crate::trained_tracker::{joint_step, TrainedTracker};
use crate::update_stats::UpdateStats;
use crate::{AgentError, Result};
use dsrm_nn::optim::{Adam, AdamConfig};
use dsrm_nn::tch::{Device, Kind, Tensor};
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
    /// Passes over each collection (unless paced).
    pub repeat_per_collect: usize,
    /// Paced updates instead of passes: this many gradient updates per 1,000 environment steps, whatever the
    /// collection's size (`crate::pace`; the equal-compute schedule of `dsrm study paper`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updates_per_1k_steps: Option<f64>,
    /// Hidden layers of the trunk.
    pub hidden: Vec<i64>,
    /// Policy and value heads share the trunk.
    pub shared_trunk: bool,
    /// Never recommend an item already shown in the episode: blocked in the training collections, the update
    /// and every evaluation mode (`crate::shown`). Off (the default), training masks nothing (FB, DORL's protocol).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mask_shown: bool,
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
            updates_per_1k_steps: None,
            hidden: vec![64, 64],
            shared_trunk: true,
            mask_shown: false,
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
        steps_before: u64,
    ) -> Result<UpdateStats> {
        let device = self.net.vs.device();
        let (window, n_items) = (tracker.tracker.window(), self.net.n_items() as usize);
        let eps = self.cfg.clip;
        let mut stats = UpdateStats::default();
        let (pace, size, repeat) = (self.cfg.updates_per_1k_steps, self.cfg.batch_size, self.cfg.repeat_per_collect);
        for steps in schedule(pace, steps_before, rollout.len(), size, repeat, rng) {
            let mb = Minibatch::new(rollout, &steps, device)?;
            let adv = if self.cfg.norm_advantages {
                normalise_advantages(&mb.advantages)?
            } else {
                mb.advantages.shallow_clone()
            };
            let states = tracker.states(&rollout.history_batch(&steps, window, n_items, device))?;
            let (logits, values) = self.net.forward(&states)?;
            let logits = mask_logits(logits, self.cfg.mask_shown, rollout, &steps)?;
            let (log_prob, entropy) = log_prob_and_entropy(&logits, &mb.actions, self.cfg.ent_coef != 0.0)?;

            let surrogate = clipped_surrogate(&log_prob, &mb.old_log_probs, &adv, eps)?;
            let clip_loss = surrogate.loss;
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
            stats.merge(&UpdateStats {
                loss: loss_value,
                actor_loss: clip_loss.f_double_value(&[])?,
                vf_loss: vf_loss.f_double_value(&[])?,
                entropy: entropy.f_double_value(&[])?,
                approx_kl: surrogate.approx_kl,
                clip_fraction: surrogate.clip_fraction,
                grad_steps: 1,
                ..Default::default()
            });
        }
        Ok(stats)
    }
}
