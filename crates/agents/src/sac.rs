//! Discrete soft actor-critic (Christodoulou 2019; tianshou's `DiscreteSACPolicy`): a softmax policy over the
//! catalogue, twin Q-networks with Polyak-averaged targets, and an entropy temperature α tuned towards a
//! target entropy. Online in the simulated environment like DQN (same buffer, same collection schedule);
//! actions are sampled from the policy.
//!
//! Each gradient step on a uniform minibatch of n-step transitions (s, a, R, s', done):
//!
//! ```text
//! π' = π(·|s'),  V(s') = Σ_a π'(a) [min(Q1_t, Q2_t)(s', a) − α log π'(a)]       # no gradient
//! y  = R + γ^n (1 − done) V(s')
//! s  = tracker(history)                                   # with gradients into the tracker
//! L_Q  = mean_B (Q1(s, a) − y)² + mean_B (Q2(s, a) − y)²  # critics and tracker: one joint step
//! L_π  = mean_B Σ_a π(a|s) [α log π(a|s) − min(Q1, Q2)(s, a)]   # s and Q detached: the actor only
//! L_α  = −log α · mean_B (H_target − H(π(·|s)))          # α rises while the entropy is below target
//! Q_t <- (1 − τ) Q_t + τ Q
//! with `mask_shown`: π(·|s) and π' put 0 on the items their episode had shown (collection, both
//!   expectations, evaluation)
//! ```
//!
//! The target entropy is `target_entropy_ratio × ln |A|` (tianshou's examples use 0.98 of the maximum for
//! Atari's few actions; over thousands of items that is nearly uniform, so the default asks for less).

use crate::learner::{EvalPolicy, Iteration, Learner, TrainingEnv};
use crate::losses::finite;
use crate::qnet::{soft_update, ScoreNet};
use crate::replay::{sample_rows, Collection, ReplayBuffer};
use crate::scored_policy::ScoredPolicy;
use crate::shown::masked_log_softmax;
use crate::soft_q::{mean_entropy, soft_policy_loss, soft_value, temperature_loss};
use crate::step_counter::{counter_tensor, restore_counter};
use crate::trained_tracker::{joint_step, TrainedTracker};
use crate::{Result, UpdateStats};
use dsrm_nn::checkpoint;
use dsrm_nn::optim::{Adam, AdamConfig};
use dsrm_nn::tch::nn::{self, VarStore};
use dsrm_nn::tch::{self, Device, Kind, Tensor};
use dsrm_state::StateTracker;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Discrete SAC hyper-parameters (buffer and schedule as DQN's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SacConfig {
    /// Adam learning rate of the policy.
    pub actor_lr: f64,
    /// Adam learning rate of the twin critics.
    pub critic_lr: f64,
    /// Adam learning rate of log α.
    pub alpha_lr: f64,
    /// Adam learning rate of the state tracker (its own optimiser, stepped on the critic loss).
    pub tracker_lr: f64,
    /// Initial temperature α.
    pub alpha: f64,
    /// Target entropy as a share of the maximum, ln |A|.
    pub target_entropy_ratio: f64,
    /// Discount γ.
    pub gamma: f64,
    /// Steps of the n-step return.
    pub n_step: usize,
    /// Polyak rate τ of the target critics.
    pub tau: f64,
    /// Minibatch size.
    pub batch_size: usize,
    /// Replay buffer capacity in steps.
    pub buffer_size: usize,
    /// Gradient steps per collected step.
    pub update_per_step: f64,
    /// Hidden layers of the policy and of each critic.
    pub hidden: Vec<i64>,
    /// Never recommend an item the episode has shown: π is 0 on them in collection, in the target's and the
    /// actor's expectations, and in evaluation (`crate::shown`).
    pub mask_shown: bool,
}

impl Default for SacConfig {
    fn default() -> Self {
        Self {
            actor_lr: 1e-3,
            critic_lr: 1e-3,
            alpha_lr: 3e-4,
            tracker_lr: 1e-3,
            alpha: 0.05,
            target_entropy_ratio: 0.3,
            gamma: 0.9,
            n_step: 3,
            tau: 0.005,
            batch_size: 64,
            buffer_size: 100_000,
            update_per_step: 0.125,
            hidden: vec![64, 64],
            mask_shown: false,
        }
    }
}

impl SacConfig {
    /// Settings out of their domain.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.batch_size == 0 || self.n_step == 0 || self.buffer_size == 0 {
            p.push("sac batch_size, n_step and buffer_size >= 1".into());
        }
        if !(0.0..=1.0).contains(&self.gamma) || !(0.0..=1.0).contains(&self.tau) {
            p.push("sac gamma and tau in [0, 1]".into());
        }
        if self.alpha <= 0.0 || !(0.0..1.0).contains(&self.target_entropy_ratio) || self.update_per_step <= 0.0 {
            p.push("sac alpha > 0, target_entropy_ratio in [0, 1), update_per_step > 0".into());
        }
        p
    }
}

/// A discrete SAC agent.
#[derive(Debug)]
pub struct Sac {
    /// Hyper-parameters.
    pub cfg: SacConfig,
    /// π(·|s) logits, in `actor_vs`.
    pub actor: ScoreNet,
    /// The policy's weights.
    pub actor_vs: VarStore,
    /// Twin critics `q1`, `q2`, in `critic_vs` (one optimiser).
    pub q: [ScoreNet; 2],
    /// The critics' weights.
    pub critic_vs: VarStore,
    /// Polyak-averaged copies of the critics.
    pub target: [ScoreNet; 2],
    /// The target critics' weights.
    pub target_vs: VarStore,
    /// log α, in `alpha_vs`.
    pub log_alpha: Tensor,
    /// log α's store.
    pub alpha_vs: VarStore,
    actor_adam: Adam,
    critic_adam: Adam,
    alpha_adam: Adam,
    /// Collected episodes.
    pub buffer: ReplayBuffer,
    /// Gradient steps so far.
    pub grad_steps: u64,
    target_entropy: f64,
}

impl Sac {
    /// A fresh agent (seed libtorch first).
    pub fn new(cfg: SacConfig, state_dim: i64, n_items: i64, device: Device) -> Result<Self> {
        let stores = || VarStore::new(device);
        let (actor_vs, critic_vs, target_vs, alpha_vs) = (stores(), stores(), stores(), stores());
        let actor = ScoreNet::new(&actor_vs, "actor", state_dim, &cfg.hidden, n_items)?;
        let q = [
            ScoreNet::new(&critic_vs, "q1", state_dim, &cfg.hidden, n_items)?,
            ScoreNet::new(&critic_vs, "q2", state_dim, &cfg.hidden, n_items)?,
        ];
        let target = [
            ScoreNet::new(&target_vs, "q1", state_dim, &cfg.hidden, n_items)?,
            ScoreNet::new(&target_vs, "q2", state_dim, &cfg.hidden, n_items)?,
        ];
        soft_update(&target_vs, &critic_vs, 1.0)?;
        let log_alpha = alpha_vs.root().var("log_alpha", &[1], nn::Init::Const(cfg.alpha.ln()));
        let adam = |vs: &VarStore, lr: f64| Adam::new(vs, AdamConfig { lr, ..Default::default() });
        let (actor_adam, critic_adam, alpha_adam) =
            (adam(&actor_vs, cfg.actor_lr), adam(&critic_vs, cfg.critic_lr), adam(&alpha_vs, cfg.alpha_lr));
        let target_entropy = cfg.target_entropy_ratio * (n_items as f64).ln();
        let buffer = ReplayBuffer::new(cfg.buffer_size);
        Ok(Self {
            cfg,
            actor,
            actor_vs,
            q,
            critic_vs,
            target,
            target_vs,
            log_alpha,
            alpha_vs,
            actor_adam,
            critic_adam,
            alpha_adam,
            buffer,
            grad_steps: 0,
            target_entropy,
        })
    }

    /// The current temperature α.
    pub fn alpha(&self) -> Result<f64> {
        Ok(self.log_alpha.f_exp()?.f_double_value(&[0])?)
    }

    /// One gradient step of critics (with the tracker), actor and temperature.
    pub fn learn(&mut self, tracker: &mut TrainedTracker, rng: &mut ChaCha8Rng) -> Result<UpdateStats> {
        let (window, n_items, device) = (tracker.tracker.window(), self.actor.n_out() as usize, self.actor_vs.device());
        let (gamma, n_step) = (self.cfg.gamma, self.cfg.n_step);
        let steps = self.buffer.sample(self.cfg.batch_size, rng);
        let tr = self.buffer.transitions(&steps, n_step, gamma, window, n_items, device)?;
        let alpha = self.alpha()?;
        let blocked = |ahead: usize| -> Result<Option<Tensor>> {
            match self.cfg.mask_shown {
                true => Ok(Some(self.buffer.shown_penalty(&steps, ahead, n_items, device)?)),
                false => Ok(None),
            }
        };
        let (blocked_now, blocked_next) = (blocked(0)?, blocked(n_step)?);

        // Critics (and the tracker) on the soft TD target.
        let y = tch::no_grad(|| -> Result<Tensor> {
            let next = tracker.states(&tr.next)?;
            let log_p = masked_log_softmax(self.actor.forward(&next)?, blocked_next.as_ref())?;
            let q_min = self.target[0].forward(&next)?.f_minimum(&self.target[1].forward(&next)?)?;
            let v = soft_value(&log_p, &q_min, alpha)?;
            let live = tr.dones.f_neg()?.f_add_scalar(1.0)?;
            Ok(tr.rewards.f_add(&v.f_mul(&live)?.f_mul_scalar(gamma.powi(n_step as i32))?)?)
        })?;
        let states = tracker.states(&tr.states)?;
        let q_all = [self.q[0].forward(&states)?, self.q[1].forward(&states)?];
        let mut critic_loss = Tensor::zeros([], (Kind::Float, device));
        for q in &q_all {
            let q_sa = q.f_gather(1, &tr.actions, false)?.f_squeeze_dim(1)?;
            critic_loss = critic_loss.f_add(&q_sa.f_sub(&y)?.f_square()?.f_mean(Kind::Float)?)?;
        }
        let critic_value = finite("sac critic", &critic_loss, self.grad_steps)?;
        joint_step(&critic_loss, &mut self.critic_adam, tracker)?;

        // Actor on detached states and Q-values.
        let states = states.f_detach()?;
        let q_min = q_all[0].f_minimum(&q_all[1])?.f_detach()?;
        let log_p = masked_log_softmax(self.actor.forward(&states)?, blocked_now.as_ref())?;
        let actor_loss = soft_policy_loss(&log_p, &q_min, alpha)?;
        let actor_value = finite("sac actor", &actor_loss, self.grad_steps)?;
        self.actor_adam.backward_step(&actor_loss)?;

        // Temperature towards the target entropy.
        let entropy = mean_entropy(&log_p)?;
        let alpha_loss = temperature_loss(&self.log_alpha, &entropy, self.target_entropy)?;
        self.alpha_adam.backward_step(&alpha_loss)?;

        soft_update(&self.target_vs, &self.critic_vs, self.cfg.tau)?;
        self.grad_steps += 1;
        let mut extra = std::collections::BTreeMap::new();
        extra.insert("alpha".to_string(), alpha);
        Ok(UpdateStats {
            loss: critic_value + actor_value,
            actor_loss: actor_value,
            vf_loss: critic_value,
            entropy: entropy.f_double_value(&[])?,
            grad_steps: 1,
            extra,
            ..Default::default()
        })
    }
}

impl Learner for Sac {
    fn name(&self) -> &'static str {
        "sac"
    }

    fn iterate(&mut self, env: &TrainingEnv, tracker: &mut TrainedTracker, rng: &mut ChaCha8Rng) -> Result<Iteration> {
        let t = Instant::now();
        let (actor, device) = (&self.actor, self.actor_vs.device());
        let collection = Collection::new(env, tracker.tracker.as_ref(), device).masking_shown(self.cfg.mask_shown);
        let rollout = collection
            .run(rng, |rows, rng| sample_rows(&rows.masked(tch::no_grad(|| actor.forward(&rows.states))?)?, rng))?;
        self.buffer.push_rollout(&rollout);
        let collect_s = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let mut stats = UpdateStats::default();
        if self.buffer.len() >= self.cfg.batch_size {
            let updates = (rollout.len() as f64 * self.cfg.update_per_step).ceil() as usize;
            for _ in 0..updates {
                stats.merge(&self.learn(tracker, rng)?);
            }
        }
        Ok(Iteration::of(&rollout, stats, collect_s, t.elapsed().as_secs_f64()))
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut t = checkpoint::named("sac_actor", &self.actor_vs);
        t.extend(checkpoint::named("sac_critic", &self.critic_vs));
        t.extend(checkpoint::named("sac_target", &self.target_vs));
        t.extend(checkpoint::named("sac_alpha", &self.alpha_vs));
        t.extend(self.actor_adam.state("sac_actor_adam"));
        t.extend(self.critic_adam.state("sac_critic_adam"));
        t.extend(self.alpha_adam.state("sac_alpha_adam"));
        t.extend(self.buffer.tensors("sac_replay"));
        t.push(counter_tensor("sac/grad_steps", self.grad_steps));
        t
    }

    fn restore(&mut self, tensors: &[(String, Tensor)]) -> Result<()> {
        checkpoint::restore("sac_actor", &mut self.actor_vs, tensors)?;
        checkpoint::restore("sac_critic", &mut self.critic_vs, tensors)?;
        checkpoint::restore("sac_target", &mut self.target_vs, tensors)?;
        checkpoint::restore("sac_alpha", &mut self.alpha_vs, tensors)?;
        self.actor_adam.restore("sac_actor_adam", tensors)?;
        self.critic_adam.restore("sac_critic_adam", tensors)?;
        self.alpha_adam.restore("sac_alpha_adam", tensors)?;
        self.buffer.restore("sac_replay", tensors)?;
        self.grad_steps = restore_counter("sac/grad_steps", tensors)?;
        Ok(())
    }

    fn snapshot(&self, tracker: Box<dyn StateTracker>, reward_range: (f64, f64)) -> Result<Box<dyn EvalPolicy>> {
        let n_items = self.actor.n_out() as usize;
        let actor = self.actor.freeze(&self.actor_vs)?;
        let policy = ScoredPolicy::new("sac", tracker, Box::new(actor), n_items, reward_range)?;
        Ok(Box::new(policy.masking_shown(self.cfg.mask_shown)))
    }
}
