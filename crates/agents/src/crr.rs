//! Critic-regularised regression (Wang et al. 2020; tianshou's `DiscreteCRRPolicy`) from the logged data:
//! a critic learns Q of the current policy, and the policy imitates the logged actions weighted by how much
//! better than its own average the critic finds them; tianshou's conservative penalty keeps the critic
//! near the data.
//!
//! A training iteration is `grad_steps` gradient steps; each:
//!
//! ```text
//! B      = uniform minibatch of logged n-step transitions (s, a, R, s', done)
//! y      = R + γ^n (1 − done) Σ_a' π_target(a'|s') Q_target(s', a')              # no gradient
//! s      = tracker(history)                                                     # with gradients
//! L_Q    = ½ mean_B (Q(s, a) − y)²
//! A      = Q(s, a) − Σ_a' π(a'|s) Q(s, a')                                       # detached
//! w      = min(exp(A / β), ratio_upper_bound)      ("exp")   or   1[A > 0]   ("binary")
//! L_π    = −mean_B w · log π(a|s)
//! L_CQL  = mean_B ( logsumexp_a' Q(s, a') − Q(s, a) )
//! loss   = L_π + L_Q + min_q_weight · L_CQL;  one Adam on actor and critic, one on the tracker
//! every `target_update` gradient steps: actor_target, critic_target <- actor, critic
//! ```
//!
//! Acting (evaluation): the policy's logits. Defaults: tianshou's (β 1, "exp", bound 20, `min_q_weight` 10).

use crate::learner::{EvalPolicy, Iteration, Learner, TrainingEnv};
use crate::losses::finite;
use crate::qnet::{soft_update, ScoreNet};
use crate::replay::{OfflineConfig, ReplayBuffer};
use crate::scored_policy::ScoredPolicy;
use crate::shown::masked_log_softmax;
use crate::step_counter::{counter_tensor, restore_counter};
use crate::trained_tracker::{joint_step, TrainedTracker};
use crate::{Result, UpdateStats};
use dsrm_nn::checkpoint;
use dsrm_nn::optim::{Adam, AdamConfig};
use dsrm_nn::tch::nn::VarStore;
use dsrm_nn::tch::{self, Device, Kind, Tensor};
use dsrm_sim::World;
use dsrm_state::StateTracker;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How the advantage weights the imitation of a logged action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Improvement {
    /// w = min(exp(A / β), bound).
    Exp,
    /// w = 1[A > 0].
    Binary,
}

/// CRR's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrrConfig {
    /// Shared offline settings.
    #[serde(flatten)]
    pub base: OfflineConfig,
    /// The advantage weighting.
    pub policy_improvement: Improvement,
    /// β of the exponential weights.
    pub beta: f64,
    /// Upper bound of the exponential weights.
    pub ratio_upper_bound: f64,
    /// Weight of the conservative penalty on the critic (0: none).
    pub min_q_weight: f64,
}

impl Default for CrrConfig {
    fn default() -> Self {
        Self {
            base: OfflineConfig::default(),
            policy_improvement: Improvement::Exp,
            beta: 1.0,
            ratio_upper_bound: 20.0,
            min_q_weight: 10.0,
        }
    }
}

/// A CRR agent with its logged buffer.
#[derive(Debug)]
pub struct Crr {
    /// Hyper-parameters.
    pub cfg: CrrConfig,
    actor: ScoreNet,
    critic: ScoreNet,
    /// `actor` and `critic` (one optimiser).
    vs: VarStore,
    target_actor: ScoreNet,
    target_critic: ScoreNet,
    target_vs: VarStore,
    adam: Adam,
    buffer: ReplayBuffer,
    reward_range: (f64, f64),
    grad_steps: u64,
}

impl Crr {
    /// A fresh agent over the world's logged data (seed libtorch first).
    pub fn new(cfg: CrrConfig, state_dim: i64, world: &World, device: Device) -> Result<Self> {
        let (n_items, hidden) = (world.spec.n_items() as i64, cfg.base.hidden.clone());
        let (vs, target_vs) = (VarStore::new(device), VarStore::new(device));
        let actor = ScoreNet::new(&vs, "actor", state_dim, &hidden, n_items)?;
        let critic = ScoreNet::new(&vs, "critic", state_dim, &hidden, n_items)?;
        let target_actor = ScoreNet::new(&target_vs, "actor", state_dim, &hidden, n_items)?;
        let target_critic = ScoreNet::new(&target_vs, "critic", state_dim, &hidden, n_items)?;
        soft_update(&target_vs, &vs, 1.0)?;
        let adam = Adam::new(&vs, AdamConfig { lr: cfg.base.lr, ..Default::default() });
        let buffer = ReplayBuffer::from_log(&world.train, &world.spec)?;
        let reward_range = buffer.reward_range();
        Ok(Self {
            cfg,
            actor,
            critic,
            vs,
            target_actor,
            target_critic,
            target_vs,
            adam,
            buffer,
            reward_range,
            grad_steps: 0,
        })
    }

    fn learn(&mut self, tracker: &mut TrainedTracker, rng: &mut ChaCha8Rng) -> Result<UpdateStats> {
        let c = &self.cfg.base;
        let (window, n_items, device) = (tracker.tracker.window(), self.actor.n_out() as usize, self.vs.device());
        let steps = self.buffer.sample(c.batch_size, rng);
        let tr = self.buffer.transitions(&steps, c.n_step, c.gamma, window, n_items, device)?;
        let blocked = c.next_blocked(&self.buffer, &steps, n_items, device)?;
        let sum_items = |x: Tensor| x.f_sum_dim_intlist([-1i64].as_slice(), false, Kind::Float);
        let y = tch::no_grad(|| -> Result<Tensor> {
            let next = tracker.states(&tr.next)?;
            let p = masked_log_softmax(self.target_actor.forward(&next)?, blocked.as_ref())?.f_exp()?;
            let v = sum_items(p.f_mul(&self.target_critic.forward(&next)?)?)?;
            let live = tr.dones.f_neg()?.f_add_scalar(1.0)?;
            Ok(tr.rewards.f_add(&v.f_mul(&live)?.f_mul_scalar(c.gamma.powi(c.n_step as i32))?)?)
        })?;

        let states = tracker.states(&tr.states)?;
        let q = self.critic.forward(&states)?;
        let q_sa = q.f_gather(1, &tr.actions, false)?.f_squeeze_dim(1)?;
        let critic_loss = q_sa.f_sub(&y)?.f_square()?.f_mean(Kind::Float)?.f_mul_scalar(0.5)?;
        let log_p = self.actor.forward(&states)?.f_log_softmax(-1, Kind::Float)?;
        let advantage = tch::no_grad(|| -> Result<Tensor> { Ok(q_sa.f_sub(&sum_items(log_p.f_exp()?.f_mul(&q)?)?)?) })?;
        let weight = match self.cfg.policy_improvement {
            Improvement::Exp => {
                advantage.f_div_scalar(self.cfg.beta)?.f_exp()?.f_clamp_max(self.cfg.ratio_upper_bound)?
            }
            Improvement::Binary => advantage.f_gt(0.0)?.f_to_kind(Kind::Float)?,
        };
        let log_p_a = log_p.f_gather(1, &tr.actions, false)?.f_squeeze_dim(1)?;
        let actor_loss = log_p_a.f_mul(&weight)?.f_mean(Kind::Float)?.f_neg()?;
        let penalty = q.f_logsumexp([-1i64].as_slice(), false)?.f_sub(&q_sa)?.f_mean(Kind::Float)?;
        let loss = actor_loss.f_add(&critic_loss)?.f_add(&penalty.f_mul_scalar(self.cfg.min_q_weight)?)?;

        let loss_value = finite("crr", &loss, self.grad_steps)?;
        joint_step(&loss, &mut self.adam, tracker)?;
        self.grad_steps += 1;
        if self.grad_steps.is_multiple_of(c.target_update as u64) {
            soft_update(&self.target_vs, &self.vs, 1.0)?;
        }
        let mut extra = std::collections::BTreeMap::new();
        extra.insert("weight_mean".to_string(), weight.f_mean(Kind::Float)?.f_double_value(&[])?);
        Ok(UpdateStats {
            loss: loss_value,
            actor_loss: actor_loss.f_double_value(&[])?,
            vf_loss: critic_loss.f_double_value(&[])?,
            grad_steps: 1,
            extra,
            ..Default::default()
        })
    }
}

impl Learner for Crr {
    fn name(&self) -> &'static str {
        "crr"
    }

    fn iterate(&mut self, _env: &TrainingEnv, tracker: &mut TrainedTracker, rng: &mut ChaCha8Rng) -> Result<Iteration> {
        let (base, range) = (self.cfg.base.clone(), self.reward_range);
        base.iterate(range, tracker, |tracker| self.learn(tracker, rng))
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut t = checkpoint::named("crr_net", &self.vs);
        t.extend(checkpoint::named("crr_target", &self.target_vs));
        t.extend(self.adam.state("crr_adam"));
        t.push(counter_tensor("crr/grad_steps", self.grad_steps));
        t
    }

    fn restore(&mut self, tensors: &[(String, Tensor)]) -> Result<()> {
        checkpoint::restore("crr_net", &mut self.vs, tensors)?;
        checkpoint::restore("crr_target", &mut self.target_vs, tensors)?;
        self.adam.restore("crr_adam", tensors)?;
        self.grad_steps = restore_counter("crr/grad_steps", tensors)?;
        Ok(())
    }

    fn offline_source(&self) -> Option<String> {
        Some(OfflineConfig::source(&self.buffer))
    }

    fn snapshot(&self, tracker: Box<dyn StateTracker>, reward_range: (f64, f64)) -> Result<Box<dyn EvalPolicy>> {
        let n_items = self.actor.n_out() as usize;
        let actor = self.actor.freeze(&self.vs)?;
        let policy = ScoredPolicy::new("crr", tracker, Box::new(actor), n_items, reward_range)?;
        Ok(Box::new(policy.masking_shown(self.cfg.base.mask_shown)))
    }
}
