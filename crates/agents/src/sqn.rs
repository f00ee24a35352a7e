//! Self-supervised Q-learning (SQN, Xin et al. 2020) from the logged data: one encoder (the tracker and a
//! shared trunk) with two heads, a supervised next-item head trained by cross-entropy on the logged item
//! and a Q head trained by double Q-learning; the supervised signal shapes the encoder the Q head reads.
//!
//! A training iteration is `grad_steps` gradient steps; each:
//!
//! ```text
//! B      = uniform minibatch of logged n-step transitions (s, a, R, s', done)
//! h(x)   = relu(trunk(tracker(x)))
//! y      = R + γ^n (1 − done) Q_target(h_t(s'), argmax_a Q(h(s'), a))                  # no gradient
//! L_sup  = cross_entropy(S(h(s)), a)
//! L_Q    = mean_B (Q(h(s), a) − y)²
//! loss   = L_sup + L_Q;  one Adam on trunk and heads, one on the tracker
//! every `target_update` gradient steps: trunk_t, Q_t <- trunk, Q
//! ```
//!
//! Acting (evaluation) reads one head: `act_head = "q"` (DORL's `which_head qhead`, the default) or
//! `"supervised"` (EasyRL4Rec's `shead`).

use crate::learner::{EvalPolicy, Iteration, Learner, TrainingEnv};
use crate::losses::finite;
use crate::qnet::{soft_update, ScoreNet};
use crate::replay::{OfflineConfig, ReplayBuffer};
use crate::scored_policy::{ScoredPolicy, Scorer};
use crate::step_counter::{counter_tensor, restore_counter};
use crate::trained_tracker::{joint_step, TrainedTracker};
use crate::{AgentError, Result, UpdateStats};
use dsrm_nn::checkpoint;
use dsrm_nn::optim::{Adam, AdamConfig};
use dsrm_nn::tch::nn::VarStore;
use dsrm_nn::tch::{self, Device, Kind, Reduction, Tensor};
use dsrm_sim::World;
use dsrm_state::StateTracker;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Which head recommends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActHead {
    /// The Q head (DORL).
    Q,
    /// The supervised next-item head (EasyRL4Rec).
    Supervised,
}

/// SQN's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqnConfig {
    /// Shared offline settings (`hidden`: the shared trunk; at least one layer).
    #[serde(flatten)]
    pub base: OfflineConfig,
    /// The head that recommends.
    pub act_head: ActHead,
}

impl Default for SqnConfig {
    fn default() -> Self {
        Self { base: OfflineConfig::default(), act_head: ActHead::Q }
    }
}

/// The shared trunk and both heads, in one store (or the trunk and one head, in a target or snapshot).
#[derive(Debug)]
struct Encoder {
    trunk: ScoreNet,
}

impl Encoder {
    fn new(vs: &VarStore, state_dim: i64, hidden: &[i64]) -> Result<(Self, i64)> {
        let (&width, inner) = hidden
            .split_last()
            .ok_or_else(|| AgentError::Config("sqn needs at least one hidden layer (the shared trunk)".into()))?;
        Ok((Self { trunk: ScoreNet::new(vs, "trunk", state_dim, inner, width)? }, width))
    }

    fn features(&self, states: &Tensor) -> Result<Tensor> {
        Ok(self.trunk.forward(states)?.f_relu()?)
    }
}

/// An SQN agent with its logged buffer.
#[derive(Debug)]
pub struct Sqn {
    /// Hyper-parameters.
    pub cfg: SqnConfig,
    encoder: Encoder,
    q: ScoreNet,
    supervised: ScoreNet,
    vs: VarStore,
    target_encoder: Encoder,
    target_q: ScoreNet,
    target_vs: VarStore,
    adam: Adam,
    buffer: ReplayBuffer,
    reward_range: (f64, f64),
    grad_steps: u64,
}

impl Sqn {
    /// A fresh agent over the world's logged data (seed libtorch first).
    pub fn new(cfg: SqnConfig, state_dim: i64, world: &World, device: Device) -> Result<Self> {
        let n_items = world.spec.n_items() as i64;
        let (vs, target_vs) = (VarStore::new(device), VarStore::new(device));
        let (encoder, width) = Encoder::new(&vs, state_dim, &cfg.base.hidden)?;
        let q = ScoreNet::new(&vs, "q", width, &[], n_items)?;
        let supervised = ScoreNet::new(&vs, "supervised", width, &[], n_items)?;
        let (target_encoder, _) = Encoder::new(&target_vs, state_dim, &cfg.base.hidden)?;
        let target_q = ScoreNet::new(&target_vs, "q", width, &[], n_items)?;
        soft_update(&target_vs, &vs, 1.0)?;
        let adam = Adam::new(&vs, AdamConfig { lr: cfg.base.lr, ..Default::default() });
        let buffer = ReplayBuffer::from_log(&world.train, &world.spec)?;
        let reward_range = buffer.reward_range();
        Ok(Self {
            cfg,
            encoder,
            q,
            supervised,
            vs,
            target_encoder,
            target_q,
            target_vs,
            adam,
            buffer,
            reward_range,
            grad_steps: 0,
        })
    }

    fn learn(&mut self, tracker: &mut TrainedTracker, rng: &mut ChaCha8Rng) -> Result<UpdateStats> {
        let c = &self.cfg.base;
        let (window, n_items, device) = (tracker.tracker.window(), self.q.n_out() as usize, self.vs.device());
        let steps = self.buffer.sample(c.batch_size, rng);
        let tr = self.buffer.transitions(&steps, c.n_step, c.gamma, window, n_items, device)?;
        let blocked = c.next_blocked(&self.buffer, &steps, n_items, device)?;
        let y = tch::no_grad(|| -> Result<Tensor> {
            let next = tracker.states(&tr.next)?;
            let q_next = self.q.forward(&self.encoder.features(&next)?)?;
            let best = match &blocked {
                Some(b) => q_next.f_add(b)?.f_argmax(-1, true)?,
                None => q_next.f_argmax(-1, true)?,
            };
            let target_q = self.target_q.forward(&self.target_encoder.features(&next)?)?;
            let q_next = target_q.f_gather(1, &best, false)?.f_squeeze_dim(1)?;
            let live = tr.dones.f_neg()?.f_add_scalar(1.0)?;
            Ok(tr.rewards.f_add(&q_next.f_mul(&live)?.f_mul_scalar(c.gamma.powi(c.n_step as i32))?)?)
        })?;

        let h = self.encoder.features(&tracker.states(&tr.states)?)?;
        let q_sa = self.q.forward(&h)?.f_gather(1, &tr.actions, false)?.f_squeeze_dim(1)?;
        let q_loss = q_sa.f_sub(&y)?.f_square()?.f_mean(Kind::Float)?;
        let targets = tr.actions.f_squeeze_dim(1)?;
        let log_p = self.supervised.forward(&h)?.f_log_softmax(-1, Kind::Float)?;
        let sup_loss = log_p.f_nll_loss(&targets, None::<Tensor>, Reduction::Mean, -100)?;
        let loss = sup_loss.f_add(&q_loss)?;

        let loss_value = finite("sqn", &loss, self.grad_steps)?;
        joint_step(&loss, &mut self.adam, tracker)?;
        self.grad_steps += 1;
        if self.grad_steps.is_multiple_of(c.target_update as u64) {
            soft_update(&self.target_vs, &self.vs, 1.0)?;
        }
        Ok(UpdateStats {
            loss: loss_value,
            actor_loss: sup_loss.f_double_value(&[])?,
            vf_loss: q_loss.f_double_value(&[])?,
            grad_steps: 1,
            ..Default::default()
        })
    }
}

/// A frozen trunk and one head, in a store of their own.
struct SqnScorer {
    _vs: VarStore,
    encoder: Encoder,
    head: ScoreNet,
}

impl Scorer for SqnScorer {
    fn scores(&self, states: &Tensor) -> Result<Tensor> {
        self.head.forward(&self.encoder.features(states)?)
    }
}

impl Learner for Sqn {
    fn name(&self) -> &'static str {
        "sqn"
    }

    fn iterate(&mut self, _env: &TrainingEnv, tracker: &mut TrainedTracker, rng: &mut ChaCha8Rng) -> Result<Iteration> {
        let (base, range) = (self.cfg.base.clone(), self.reward_range);
        base.iterate(range, tracker, |tracker| self.learn(tracker, rng))
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut t = checkpoint::named("sqn_net", &self.vs);
        t.extend(checkpoint::named("sqn_target", &self.target_vs));
        t.extend(self.adam.state("sqn_adam"));
        t.push(counter_tensor("sqn/grad_steps", self.grad_steps));
        t
    }

    fn restore(&mut self, tensors: &[(String, Tensor)]) -> Result<()> {
        checkpoint::restore("sqn_net", &mut self.vs, tensors)?;
        checkpoint::restore("sqn_target", &mut self.target_vs, tensors)?;
        self.adam.restore("sqn_adam", tensors)?;
        self.grad_steps = restore_counter("sqn/grad_steps", tensors)?;
        Ok(())
    }

    fn offline_source(&self) -> Option<String> {
        Some(OfflineConfig::source(&self.buffer))
    }

    fn snapshot(&self, tracker: Box<dyn StateTracker>, reward_range: (f64, f64)) -> Result<Box<dyn EvalPolicy>> {
        let vs = VarStore::new(self.vs.device());
        let (encoder, width) = Encoder::new(&vs, self.encoder.trunk.state_dim(), &self.cfg.base.hidden)?;
        let name = match self.cfg.act_head {
            ActHead::Q => "q",
            ActHead::Supervised => "supervised",
        };
        let head = ScoreNet::new(&vs, name, width, &[], self.q.n_out())?;
        soft_update(&vs, &self.vs, 1.0)?;
        let n_items = self.q.n_out() as usize;
        let scorer = SqnScorer { _vs: vs, encoder, head };
        let policy = ScoredPolicy::new("sqn", tracker, Box::new(scorer), n_items, reward_range)?;
        Ok(Box::new(policy.masking_shown(self.cfg.base.mask_shown)))
    }
}
