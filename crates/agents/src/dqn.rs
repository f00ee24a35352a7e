//! Double DQN with a target network, as EasyRL4Rec's off-policy scripts run tianshou's `DQNPolicy`
//! (`docs/protocol.md` §5): n-step returns (3), a target network copied every 320 gradient steps, ε-greedy
//! collection, a replay buffer of 100,000 steps, batch 64, 0.125 gradient steps per collected step.
//! Training runs online in the simulated environment (world-model reward), like A2C; the tracker is trained
//! jointly through the Q loss (one backward pass, its own Adam), as DORL trains it through its losses.
//!
//! Each iteration:
//!
//! ```text
//! collect `parallel_envs` whole episodes: a = argmax_a Q(s, a), or a uniform item with probability ε
//! append them to the replay buffer (oldest episodes dropped beyond its capacity)
//! repeat ⌈steps collected × update_per_step⌉ times (once the buffer holds a minibatch):
//!   B      = uniform minibatch of n-step transitions (s, a, R = Σ_{k<n} γ^k r, s', done)
//!   a*     = argmax_a Q(s', a)                               # online network picks (double DQN)
//!   y      = R + γ^n (1 − done) Q_target(s', a*)             # target network evaluates; no gradient
//!   s      = tracker(history)                                # recomputed, with gradients into the tracker
//!   loss   = mean_B (Q(s, a) − y)²
//!   one backward pass; Adam on Q, Adam on the tracker
//!   every `target_update` gradient steps: Q_target <- Q
//! with `mask_shown`: the episode's shown items are never collected (greedy or uniform), never the target's
//!   a* (those shown before s'), never recommended in evaluation
//! ```
//!
//! The successor states s' are built by the current tracker without gradients (tianshou's DQN has no
//! tracker; DORL's trackers are not target-copied). The buffer, the target network and the step counter
//! are checkpointed, so a resumed run continues bit-identically.

use crate::learner::{EvalPolicy, Iteration, Learner, TrainingEnv};
use crate::losses::finite;
use crate::qnet::{soft_update, ScoreNet};
use crate::replay::{argmax_rows, Collection, ReplayBuffer};
use crate::scored_policy::ScoredPolicy;
use crate::step_counter::{counter_tensor, restore_counter};
use crate::td::double_q_target;
use crate::trained_tracker::{joint_step, TrainedTracker};
use crate::{Result, UpdateStats};
use dsrm_nn::checkpoint;
use dsrm_nn::optim::{Adam, AdamConfig};
use dsrm_nn::tch::nn::VarStore;
use dsrm_nn::tch::{self, Device, Kind, Tensor};
use dsrm_state::StateTracker;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// DQN hyper-parameters. Defaults: EasyRL4Rec's off-policy settings with DORL's shared ones (lr, γ, network).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DqnConfig {
    /// Adam learning rate of the Q-network.
    pub lr: f64,
    /// Adam learning rate of the state tracker (its own optimiser).
    pub tracker_lr: f64,
    /// Discount γ.
    pub gamma: f64,
    /// Steps of the n-step return.
    pub n_step: usize,
    /// Minibatch size.
    pub batch_size: usize,
    /// Replay buffer capacity in steps.
    pub buffer_size: usize,
    /// Gradient steps between copies of the Q-network into the target network.
    pub target_update: usize,
    /// Exploration: probability of a uniform item while collecting.
    pub eps_train: f64,
    /// Gradient steps per collected step.
    pub update_per_step: f64,
    /// Hidden layers of the Q-network.
    pub hidden: Vec<i64>,
    /// Global gradient-norm clip of the Q-network (none by default, as tianshou's DQN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_grad_norm: Option<f64>,
    /// Never recommend an item the episode has shown: collection (greedy and exploring), the target's argmax
    /// and evaluation skip them (`crate::shown`).
    pub mask_shown: bool,
}

impl Default for DqnConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            tracker_lr: 1e-3,
            gamma: 0.9,
            n_step: 3,
            batch_size: 64,
            buffer_size: 100_000,
            target_update: 320,
            eps_train: 0.1,
            update_per_step: 0.125,
            hidden: vec![64, 64],
            max_grad_norm: None,
            mask_shown: false,
        }
    }
}

impl DqnConfig {
    /// Settings out of their domain.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.batch_size == 0 || self.n_step == 0 || self.target_update == 0 || self.buffer_size == 0 {
            p.push("dqn batch_size, n_step, target_update and buffer_size >= 1".into());
        }
        if !(0.0..=1.0).contains(&self.gamma) || !(0.0..=1.0).contains(&self.eps_train) {
            p.push("dqn gamma and eps_train in [0, 1]".into());
        }
        if self.update_per_step <= 0.0 {
            p.push("dqn update_per_step > 0".into());
        }
        p
    }
}

/// A double-DQN agent: Q-network, target network, optimiser, replay buffer.
#[derive(Debug)]
pub struct Dqn {
    /// Hyper-parameters.
    pub cfg: DqnConfig,
    /// Q(s, ·) over the catalogue, in `vs`.
    pub q: ScoreNet,
    /// Q's weights.
    pub vs: VarStore,
    /// The periodically copied target network, in `target_vs`.
    pub target: ScoreNet,
    /// The target network's weights.
    pub target_vs: VarStore,
    /// Q's optimiser (the tracker has its own).
    pub adam: Adam,
    /// Collected episodes.
    pub buffer: ReplayBuffer,
    /// Gradient steps so far (schedules the target copies).
    pub grad_steps: u64,
}

impl Dqn {
    /// A fresh agent (seed libtorch first).
    pub fn new(cfg: DqnConfig, state_dim: i64, n_items: i64, device: Device) -> Result<Self> {
        let (vs, target_vs) = (VarStore::new(device), VarStore::new(device));
        let q = ScoreNet::new(&vs, "q", state_dim, &cfg.hidden, n_items)?;
        let target = ScoreNet::new(&target_vs, "q", state_dim, &cfg.hidden, n_items)?;
        soft_update(&target_vs, &vs, 1.0)?;
        let adam = Adam::new(&vs, AdamConfig { lr: cfg.lr, max_grad_norm: cfg.max_grad_norm, ..Default::default() });
        let buffer = ReplayBuffer::new(cfg.buffer_size);
        Ok(Self { cfg, q, vs, target, target_vs, adam, buffer, grad_steps: 0 })
    }

    /// One gradient step on a uniform minibatch.
    pub fn learn(&mut self, tracker: &mut TrainedTracker, rng: &mut ChaCha8Rng) -> Result<UpdateStats> {
        let (window, n_items, device) = (tracker.tracker.window(), self.q.n_out() as usize, self.vs.device());
        let steps = self.buffer.sample(self.cfg.batch_size, rng);
        let tr = self.buffer.transitions(&steps, self.cfg.n_step, self.cfg.gamma, window, n_items, device)?;
        let blocked = match self.cfg.mask_shown {
            true => Some(self.buffer.shown_penalty(&steps, self.cfg.n_step, n_items, device)?),
            false => None,
        };
        let (gamma, n_step) = (self.cfg.gamma, self.cfg.n_step);
        let y = double_q_target(&self.q, &self.target, tracker, &tr, gamma, n_step, blocked.as_ref())?;

        let states = tracker.states(&tr.states)?;
        let q_sa = self.q.forward(&states)?.f_gather(1, &tr.actions, false)?.f_squeeze_dim(1)?;
        let loss = q_sa.f_sub(&y)?.f_square()?.f_mean(Kind::Float)?;

        let loss_value = finite("dqn", &loss, self.grad_steps)?;
        joint_step(&loss, &mut self.adam, tracker)?;
        self.grad_steps += 1;
        if self.grad_steps.is_multiple_of(self.cfg.target_update as u64) {
            soft_update(&self.target_vs, &self.vs, 1.0)?;
        }
        let mut extra = std::collections::BTreeMap::new();
        extra.insert("q_mean".to_string(), q_sa.f_mean(Kind::Float)?.f_double_value(&[])?);
        Ok(UpdateStats { loss: loss_value, vf_loss: loss_value, grad_steps: 1, extra, ..Default::default() })
    }
}

impl Learner for Dqn {
    fn name(&self) -> &'static str {
        "dqn"
    }

    fn iterate(&mut self, env: &TrainingEnv, tracker: &mut TrainedTracker, rng: &mut ChaCha8Rng) -> Result<Iteration> {
        let t = Instant::now();
        let (q, eps, n_items) = (&self.q, self.cfg.eps_train, self.q.n_out() as u32);
        let device = self.vs.device();
        let collection = Collection::new(env, tracker.tracker.as_ref(), device).masking_shown(self.cfg.mask_shown);
        let rollout = collection.run(rng, |rows, rng| {
            let greedy = tch::no_grad(|| -> Result<Vec<u32>> { argmax_rows(&rows.masked(q.forward(&rows.states)?)?) })?;
            // One coin per row, drawn whether or not it explores, so the stream does not depend on Q.
            Ok(greedy
                .into_iter()
                .enumerate()
                .map(|(k, a)| {
                    if rng.gen::<f64>() >= eps {
                        a
                    } else if rows.blocks_shown(k) {
                        let open: Vec<u32> = (0..n_items).filter(|i| !rows.shown[k].contains(i)).collect();
                        open[rng.gen_range(0..open.len())]
                    } else {
                        rng.gen_range(0..n_items)
                    }
                })
                .collect())
        })?;
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
        let mut t = checkpoint::named("dqn_q", &self.vs);
        t.extend(checkpoint::named("dqn_target", &self.target_vs));
        t.extend(self.adam.state("dqn_adam"));
        t.extend(self.buffer.tensors("dqn_replay"));
        t.push(counter_tensor("dqn/grad_steps", self.grad_steps));
        t
    }

    fn restore(&mut self, tensors: &[(String, Tensor)]) -> Result<()> {
        checkpoint::restore("dqn_q", &mut self.vs, tensors)?;
        checkpoint::restore("dqn_target", &mut self.target_vs, tensors)?;
        self.adam.restore("dqn_adam", tensors)?;
        self.buffer.restore("dqn_replay", tensors)?;
        self.grad_steps = restore_counter("dqn/grad_steps", tensors)?;
        Ok(())
    }

    fn snapshot(&self, tracker: Box<dyn StateTracker>, reward_range: (f64, f64)) -> Result<Box<dyn EvalPolicy>> {
        let n_items = self.q.n_out() as usize;
        let policy = ScoredPolicy::new("dqn", tracker, Box::new(self.q.freeze(&self.vs)?), n_items, reward_range)?;
        Ok(Box::new(policy.masking_shown(self.cfg.mask_shown)))
    }
}
