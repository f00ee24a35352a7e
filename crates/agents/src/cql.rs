//! Discrete conservative Q-learning (Kumar et al. 2020, CQL(H)) from the logged data: the double-DQN loss
//! plus a penalty that pushes Q down on every item and up on the logged ones, so the greedy policy stays
//! near the data. No environment interaction in training; evaluation still runs on the ground truth.
//!
//! A training iteration is `grad_steps` gradient steps; each:
//!
//! ```text
//! B     = uniform minibatch of logged n-step transitions (s, a, R, s', done)      # see `replay`
//! y     = R + γ^n (1 − done) Q_target(s', argmax_a Q(s', a))                       # no gradient
//! s     = tracker(history)                                                        # with gradients
//! L_TD  = mean_B (Q(s, a) − y)²
//! L_CQL = mean_B ( logsumexp_a' Q(s, a') − Q(s, a) )
//! loss  = L_TD + min_q_weight · L_CQL;  Adam on Q, Adam on the tracker
//! every `target_update` gradient steps: Q_target <- Q
//! ```
//!
//! DORL runs tianshou's `DiscreteCQLPolicy`, whose Q-head is QR-DQN's (20 quantiles, quantile Huber loss);
//! here the head is a plain expected-value Q (the CQL penalty is the same on its mean). `min_q_weight` 10
//! and the target period 320 are DORL's.

use crate::learner::{EvalPolicy, Iteration, Learner, TrainingEnv};
use crate::losses::finite;
use crate::qnet::{soft_update, ScoreNet};
use crate::replay::{OfflineConfig, ReplayBuffer};
use crate::scored_policy::ScoredPolicy;
use crate::step_counter::{counter_tensor, restore_counter};
use crate::td::double_q_target;
use crate::trained_tracker::{joint_step, TrainedTracker};
use crate::{Result, UpdateStats};
use dsrm_nn::checkpoint;
use dsrm_nn::optim::{Adam, AdamConfig};
use dsrm_nn::tch::nn::VarStore;
use dsrm_nn::tch::{Device, Kind, Tensor};
use dsrm_sim::World;
use dsrm_state::StateTracker;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// CQL's settings: the shared offline ones and the penalty weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CqlConfig {
    /// Shared offline settings.
    #[serde(flatten)]
    pub base: OfflineConfig,
    /// Weight of the conservative penalty.
    pub min_q_weight: f64,
}

impl Default for CqlConfig {
    fn default() -> Self {
        Self { base: OfflineConfig::default(), min_q_weight: 10.0 }
    }
}

/// A discrete CQL agent with its logged buffer.
#[derive(Debug)]
pub struct Cql {
    /// Hyper-parameters.
    pub cfg: CqlConfig,
    q: ScoreNet,
    vs: VarStore,
    target_vs: VarStore,
    target: ScoreNet,
    adam: Adam,
    buffer: ReplayBuffer,
    reward_range: (f64, f64),
    grad_steps: u64,
}

impl Cql {
    /// A fresh agent over the world's logged data (seed libtorch first).
    pub fn new(cfg: CqlConfig, state_dim: i64, world: &World, device: Device) -> Result<Self> {
        let n_items = world.spec.n_items() as i64;
        let (vs, target_vs) = (VarStore::new(device), VarStore::new(device));
        let q = ScoreNet::new(&vs, "q", state_dim, &cfg.base.hidden, n_items)?;
        let target = ScoreNet::new(&target_vs, "q", state_dim, &cfg.base.hidden, n_items)?;
        soft_update(&target_vs, &vs, 1.0)?;
        let adam = Adam::new(&vs, AdamConfig { lr: cfg.base.lr, ..Default::default() });
        let buffer = ReplayBuffer::from_log(&world.train, &world.spec)?;
        let reward_range = buffer.reward_range();
        Ok(Self { cfg, q, vs, target_vs, target, adam, buffer, reward_range, grad_steps: 0 })
    }

    fn learn(&mut self, tracker: &mut TrainedTracker, rng: &mut ChaCha8Rng) -> Result<UpdateStats> {
        let c = &self.cfg.base;
        let (window, n_items, device) = (tracker.tracker.window(), self.q.n_out() as usize, self.vs.device());
        let steps = self.buffer.sample(c.batch_size, rng);
        let tr = self.buffer.transitions(&steps, c.n_step, c.gamma, window, n_items, device)?;
        let blocked = c.next_blocked(&self.buffer, &steps, n_items, device)?;
        let y = double_q_target(&self.q, &self.target, tracker, &tr, c.gamma, c.n_step, blocked.as_ref())?;

        let states = tracker.states(&tr.states)?;
        let q = self.q.forward(&states)?;
        let q_sa = q.f_gather(1, &tr.actions, false)?.f_squeeze_dim(1)?;
        let td = q_sa.f_sub(&y)?.f_square()?.f_mean(Kind::Float)?;
        let penalty = q.f_logsumexp([-1i64].as_slice(), false)?.f_sub(&q_sa)?.f_mean(Kind::Float)?;
        let loss = td.f_add(&penalty.f_mul_scalar(self.cfg.min_q_weight)?)?;

        let loss_value = finite("cql", &loss, self.grad_steps)?;
        joint_step(&loss, &mut self.adam, tracker)?;
        self.grad_steps += 1;
        if self.grad_steps.is_multiple_of(c.target_update as u64) {
            soft_update(&self.target_vs, &self.vs, 1.0)?;
        }
        let mut extra = std::collections::BTreeMap::new();
        extra.insert("cql_penalty".to_string(), penalty.f_double_value(&[])?);
        extra.insert("q_mean".to_string(), q_sa.f_mean(Kind::Float)?.f_double_value(&[])?);
        Ok(UpdateStats {
            loss: loss_value,
            vf_loss: td.f_double_value(&[])?,
            grad_steps: 1,
            extra,
            ..Default::default()
        })
    }
}

impl Learner for Cql {
    fn name(&self) -> &'static str {
        "cql"
    }

    fn iterate(&mut self, _env: &TrainingEnv, tracker: &mut TrainedTracker, rng: &mut ChaCha8Rng) -> Result<Iteration> {
        let (base, range) = (self.cfg.base.clone(), self.reward_range);
        base.iterate(range, tracker, |tracker| self.learn(tracker, rng))
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut t = checkpoint::named("cql_q", &self.vs);
        t.extend(checkpoint::named("cql_target", &self.target_vs));
        t.extend(self.adam.state("cql_adam"));
        t.push(counter_tensor("cql/grad_steps", self.grad_steps));
        t
    }

    fn restore(&mut self, tensors: &[(String, Tensor)]) -> Result<()> {
        checkpoint::restore("cql_q", &mut self.vs, tensors)?;
        checkpoint::restore("cql_target", &mut self.target_vs, tensors)?;
        self.adam.restore("cql_adam", tensors)?;
        self.grad_steps = restore_counter("cql/grad_steps", tensors)?;
        Ok(())
    }

    fn offline_source(&self) -> Option<String> {
        Some(OfflineConfig::source(&self.buffer))
    }

    fn snapshot(&self, tracker: Box<dyn StateTracker>, reward_range: (f64, f64)) -> Result<Box<dyn EvalPolicy>> {
        let n_items = self.q.n_out() as usize;
        let policy = ScoredPolicy::new("cql", tracker, Box::new(self.q.freeze(&self.vs)?), n_items, reward_range)?;
        Ok(Box::new(policy.masking_shown(self.cfg.base.mask_shown)))
    }
}
