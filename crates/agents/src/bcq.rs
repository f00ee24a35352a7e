//! Discrete batch-constrained Q-learning (Fujimoto et al. 2019; tianshou's `DiscreteBCQPolicy`) from the
//! logged data: a Q-network and an imitation network G(a|s) (the behaviour policy's model), where Q only
//! bootstraps and acts on items G finds likely enough relative to its favourite:
//! allowed(s) = { a : G(a|s) / max_a' G(a'|s) > τ }.
//!
//! A training iteration is `grad_steps` gradient steps; each:
//!
//! ```text
//! B     = uniform minibatch of logged n-step transitions (s, a, R, s', done)
//! a*    = argmax_{a ∈ allowed(s')} Q(s', a)
//! y     = R + γ^n (1 − done) Q_target(s', a*)                                   # no gradient
//! s     = tracker(history)                                                     # with gradients
//! L_Q   = smooth_l1(Q(s, a), y)
//! L_G   = cross_entropy(G(s), a) + imitation_penalty · mean_B mean_a logits_G(s)²
//! loss  = L_Q + L_G;  one Adam on Q and G, one on the tracker
//! every `target_update` gradient steps: Q_target <- Q
//! with `mask_shown`: a* is never an item its logged episode had shown before s'; evaluation blocks them
//! ```
//!
//! Acting (evaluation): argmax / softmax of Q over the allowed items (the others are never recommended).
//! DORL's settings: τ 0.6, imitation logits penalty 0.01, target period 320.

use crate::learner::{EvalPolicy, Iteration, Learner, TrainingEnv};
use crate::losses::finite;
use crate::qnet::{soft_update, FrozenNet, ScoreNet};
use crate::replay::{OfflineConfig, ReplayBuffer};
use crate::scored_policy::{ScoredPolicy, Scorer};
use crate::step_counter::{counter_tensor, restore_counter};
use crate::trained_tracker::{joint_step, TrainedTracker};
use crate::{Result, UpdateStats};
use dsrm_nn::checkpoint;
use dsrm_nn::optim::{Adam, AdamConfig};
use dsrm_nn::tch::nn::VarStore;
use dsrm_nn::tch::{self, Device, Kind, Reduction, Tensor};
use dsrm_sim::World;
use dsrm_state::StateTracker;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// BCQ's settings: the shared offline ones, the threshold and the imitation penalty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BcqConfig {
    /// Shared offline settings.
    #[serde(flatten)]
    pub base: OfflineConfig,
    /// τ: an item is allowed when G(a|s) / max G(·|s) exceeds it.
    pub unlikely_action_threshold: f64,
    /// Weight of the squared imitation logits (keeps G's logits bounded).
    pub imitation_logits_penalty: f64,
}

impl Default for BcqConfig {
    fn default() -> Self {
        Self { base: OfflineConfig::default(), unlikely_action_threshold: 0.6, imitation_logits_penalty: 0.01 }
    }
}

/// Q-values with the items G finds unlikely set to −∞.
fn filtered_q(q: &Tensor, imitation_logits: &Tensor, threshold: f64) -> Result<Tensor> {
    let log_g = imitation_logits.f_log_softmax(-1, Kind::Float)?;
    let (max, _) = log_g.f_max_dim(-1, true)?;
    let unlikely = log_g.f_sub(&max)?.f_le(threshold.ln())?;
    Ok(q.f_masked_fill(&unlikely, f64::NEG_INFINITY)?)
}

/// A discrete BCQ agent with its logged buffer.
#[derive(Debug)]
pub struct Bcq {
    /// Hyper-parameters.
    pub cfg: BcqConfig,
    q: ScoreNet,
    imitation: ScoreNet,
    /// `q` and `imitation` (one optimiser).
    vs: VarStore,
    target: ScoreNet,
    target_vs: VarStore,
    adam: Adam,
    buffer: ReplayBuffer,
    reward_range: (f64, f64),
    grad_steps: u64,
}

impl Bcq {
    /// A fresh agent over the world's logged data (seed libtorch first).
    pub fn new(cfg: BcqConfig, state_dim: i64, world: &World, device: Device) -> Result<Self> {
        let (n_items, hidden) = (world.spec.n_items() as i64, cfg.base.hidden.clone());
        let (vs, target_vs) = (VarStore::new(device), VarStore::new(device));
        let q = ScoreNet::new(&vs, "q", state_dim, &hidden, n_items)?;
        let imitation = ScoreNet::new(&vs, "imitation", state_dim, &hidden, n_items)?;
        let target = ScoreNet::new(&target_vs, "q", state_dim, &hidden, n_items)?;
        soft_update(&target_vs, &vs, 1.0)?;
        let adam = Adam::new(&vs, AdamConfig { lr: cfg.base.lr, ..Default::default() });
        let buffer = ReplayBuffer::from_log(&world.train, &world.spec)?;
        let reward_range = buffer.reward_range();
        Ok(Self { cfg, q, imitation, vs, target, target_vs, adam, buffer, reward_range, grad_steps: 0 })
    }

    fn learn(&mut self, tracker: &mut TrainedTracker, rng: &mut ChaCha8Rng) -> Result<UpdateStats> {
        let c = &self.cfg.base;
        let (window, n_items, device) = (tracker.tracker.window(), self.q.n_out() as usize, self.vs.device());
        let steps = self.buffer.sample(c.batch_size, rng);
        let tr = self.buffer.transitions(&steps, c.n_step, c.gamma, window, n_items, device)?;
        let blocked = c.next_blocked(&self.buffer, &steps, n_items, device)?;
        let y = tch::no_grad(|| -> Result<Tensor> {
            let next = tracker.states(&tr.next)?;
            let allowed_q = filtered_q(
                &self.q.forward(&next)?,
                &self.imitation.forward(&next)?,
                self.cfg.unlikely_action_threshold,
            )?;
            let best = match &blocked {
                Some(b) => allowed_q.f_add(b)?.f_argmax(-1, true)?,
                None => allowed_q.f_argmax(-1, true)?,
            };
            let q_next = self.target.forward(&next)?.f_gather(1, &best, false)?.f_squeeze_dim(1)?;
            let live = tr.dones.f_neg()?.f_add_scalar(1.0)?;
            Ok(tr.rewards.f_add(&q_next.f_mul(&live)?.f_mul_scalar(c.gamma.powi(c.n_step as i32))?)?)
        })?;

        let states = tracker.states(&tr.states)?;
        let q_sa = self.q.forward(&states)?.f_gather(1, &tr.actions, false)?.f_squeeze_dim(1)?;
        let q_loss = q_sa.f_smooth_l1_loss(&y, Reduction::Mean, 1.0)?;
        let logits = self.imitation.forward(&states)?;
        let targets = tr.actions.f_squeeze_dim(1)?;
        let imitation_loss =
            logits.f_log_softmax(-1, Kind::Float)?.f_nll_loss(&targets, None::<Tensor>, Reduction::Mean, -100)?;
        let logits_penalty = logits.f_square()?.f_mean(Kind::Float)?;
        let loss =
            q_loss.f_add(&imitation_loss)?.f_add(&logits_penalty.f_mul_scalar(self.cfg.imitation_logits_penalty)?)?;

        let loss_value = finite("bcq", &loss, self.grad_steps)?;
        joint_step(&loss, &mut self.adam, tracker)?;
        self.grad_steps += 1;
        if self.grad_steps.is_multiple_of(c.target_update as u64) {
            soft_update(&self.target_vs, &self.vs, 1.0)?;
        }
        let mut extra = std::collections::BTreeMap::new();
        extra.insert("imitation_loss".to_string(), imitation_loss.f_double_value(&[])?);
        Ok(UpdateStats {
            loss: loss_value,
            vf_loss: q_loss.f_double_value(&[])?,
            actor_loss: imitation_loss.f_double_value(&[])?,
            grad_steps: 1,
            extra,
            ..Default::default()
        })
    }
}

/// BCQ's acting scores: Q over the allowed items.
struct BcqScorer {
    q: FrozenNet,
    imitation: FrozenNet,
    threshold: f64,
}

impl Scorer for BcqScorer {
    fn scores(&self, states: &Tensor) -> Result<Tensor> {
        filtered_q(&self.q.scores(states)?, &self.imitation.scores(states)?, self.threshold)
    }
}

impl Learner for Bcq {
    fn name(&self) -> &'static str {
        "bcq"
    }

    fn iterate(&mut self, _env: &TrainingEnv, tracker: &mut TrainedTracker, rng: &mut ChaCha8Rng) -> Result<Iteration> {
        let (base, range) = (self.cfg.base.clone(), self.reward_range);
        base.iterate(range, tracker, |tracker| self.learn(tracker, rng))
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut t = checkpoint::named("bcq_net", &self.vs);
        t.extend(checkpoint::named("bcq_target", &self.target_vs));
        t.extend(self.adam.state("bcq_adam"));
        t.push(counter_tensor("bcq/grad_steps", self.grad_steps));
        t
    }

    fn restore(&mut self, tensors: &[(String, Tensor)]) -> Result<()> {
        checkpoint::restore("bcq_net", &mut self.vs, tensors)?;
        checkpoint::restore("bcq_target", &mut self.target_vs, tensors)?;
        self.adam.restore("bcq_adam", tensors)?;
        self.grad_steps = restore_counter("bcq/grad_steps", tensors)?;
        Ok(())
    }

    fn offline_source(&self) -> Option<String> {
        Some(OfflineConfig::source(&self.buffer))
    }

    fn snapshot(&self, tracker: Box<dyn StateTracker>, reward_range: (f64, f64)) -> Result<Box<dyn EvalPolicy>> {
        let scorer = BcqScorer {
            q: self.q.freeze(&self.vs)?,
            imitation: self.imitation.freeze(&self.vs)?,
            threshold: self.cfg.unlikely_action_threshold,
        };
        let n_items = self.q.n_out() as usize;
        let policy = ScoredPolicy::new("bcq", tracker, Box::new(scorer), n_items, reward_range)?;
        Ok(Box::new(policy.masking_shown(self.cfg.base.mask_shown)))
    }
}
