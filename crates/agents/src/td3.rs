//! TD3 over items (Fujimoto, van Hoof, Meger 2018, "Addressing Function Approximation Error in Actor-Critic
//! Methods"), with the continuous action mapped to an item as EasyRL4Rec's `RecPolicy` maps it: the actor emits
//! a proto-action in item-embedding space, an item's score is its dot product with the L2-normalised item
//! embeddings, and the recommended item is the best one not masked. Online in the simulated environment like
//! DQN and SAC (same buffer of whole episodes, n-step transitions, the tracker trained through the critic loss).
//!
//! ```text
//! ê_i   = L2-normalised MF item factors of the training log         # item_factors.rs; fixed
//! π(s)  = unit(actor(s))                                           # unit(x) = x / ‖x‖: where ê lives
//! collect: x = unit(π(s) + ε), ε ~ N(0, σ_explore² / d · I);  a = argmax_i ⟨x, ê_i⟩
//! each gradient step on a uniform minibatch of n-step transitions (s, a, R, s', done):
//!   ξ  = clip(N(0, σ_policy² / d · I), ±c/√d)                       # target policy smoothing
//!   x' = unit(π_t(s') + ξ)
//!   y  = R + γ^n (1 − done) min(Q1_t, Q2_t)(s', x')                 # clipped double Q; no gradient
//!   s  = tracker(history)                                          # with gradients into the tracker
//!   L_Q = Σ_j mean_B (Q_j(s, ê_a) − y)²                            # critics and tracker: one joint step
//!   every `policy_delay` critic steps (delayed policy updates):
//!     L_π = −mean_B Q1(sg(s), π(sg(s)))                            # the actor only
//!     θ_t <- (1 − τ) θ_t + τ θ  for the actor and both critics
//! evaluation scores: κ · ⟨π(s), ê_i⟩ (κ = `score_scale`); argmax = the best unmasked item
//! with `mask_shown`: the collection's argmax and every evaluation skip the episode's shown items; the
//!   target needs no mask (it reads the proto-action x', never an item)
//! ```
//!
//! Where this departs from EasyRL4Rec and why:
//!
//! * The critic reads the embedding of the item actually recommended, ê_a, not the proto-action x (the
//!   refinement step of Dulac-Arnold et al. 2015, "Deep RL in Large Discrete Action Spaces", with k = 1): the
//!   environment only ever sees the item, so that is what Q values, and the buffer stores items as it does for
//!   every other agent here. The proto-action is normalised so that it lives on the unit sphere with ê.
//! * EasyRL4Rec takes its item embeddings from its user model; here the user model behind them is a biased MF
//!   fitted on the training log (`mf`, seeded, rebuilt identically on resume).
//! * Noise is scaled by 1/√d per coordinate, so σ is the expected norm of the noise on a unit action
//!   (Fujimoto's σ = 0.1 / 0.2, c = 0.5 are stated for actions in [−1, 1] per coordinate).
//! * The evaluation protocol's sampled mode draws from a softmax over the scores; cosines in [−1, 1] would make
//!   it nearly uniform over thousands of items, so they are multiplied by `score_scale` (argmax is unchanged).
//! * Noise is drawn from the run's ChaCha stream (never libtorch's), so a resumed run continues bit-identically.
//!
//! With `updates_per_1k_steps` set (the paper study's equal compute, `crate::pace`), a collection of n steps
//! after S earns ⌊(S + n)u/1000⌋ − ⌊Su/1000⌋ critic steps instead of ⌈n · update_per_step⌉.

use crate::item_factors::ItemFactors;
use crate::item_factors::MfConfig;
use crate::learner::{EvalPolicy, Iteration, Learner, TrainingEnv};
use crate::losses::finite;
use crate::pace::paced_updates;
use crate::qnet::{soft_update, FrozenNet, ScoreNet};
use crate::replay::{argmax_rows, Collection, ReplayBuffer};
use crate::scored_policy::{ScoredPolicy, Scorer};
use crate::step_counter::{counter_tensor, restore_counter};
use crate::trained_tracker::{joint_step, TrainedTracker};
use crate::{AgentError, Result, UpdateStats};
use dsrm_nn::checkpoint;
use dsrm_nn::optim::{Adam, AdamConfig};
use dsrm_nn::tch::nn::VarStore;
use dsrm_nn::tch::{self, Device, Kind, Tensor};
use dsrm_sim::World;
use dsrm_state::StateTracker;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// TD3 hyper-parameters. Defaults: Fujimoto et al.'s (τ, policy delay, noise) with the off-policy settings the
/// other agents share (EasyRL4Rec's buffer, batch, n-step and schedule; DORL's lr, γ, network).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Td3Config {
    /// Adam learning rate of the actor.
    pub actor_lr: f64,
    /// Adam learning rate of the twin critics.
    pub critic_lr: f64,
    /// Adam learning rate of the state tracker (its own optimiser, stepped on the critic loss).
    pub tracker_lr: f64,
    /// Discount γ.
    pub gamma: f64,
    /// Steps of the n-step return.
    pub n_step: usize,
    /// Polyak rate τ of the target actor and critics.
    pub tau: f64,
    /// Critic steps per actor step (and per target update).
    pub policy_delay: usize,
    /// Expected norm of the collection noise on the unit proto-action.
    pub exploration_noise: f64,
    /// Expected norm of the target policy smoothing noise.
    pub policy_noise: f64,
    /// Clip of the smoothing noise, per coordinate in units of 1/√d.
    pub noise_clip: f64,
    /// Evaluation scores are `score_scale × cosine` (the sampled mode's softmax temperature is its inverse).
    pub score_scale: f64,
    /// Minibatch size.
    pub batch_size: usize,
    /// Replay buffer capacity in steps.
    pub buffer_size: usize,
    /// Critic steps per collected step (unless paced).
    pub update_per_step: f64,
    /// Paced critic steps per 1,000 environment steps (`crate::pace`); overrides `update_per_step`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updates_per_1k_steps: Option<f64>,
    /// Hidden layers of the actor and of each critic.
    pub hidden: Vec<i64>,
    /// The MF whose normalised item factors are the item embeddings (`dim` is the action width).
    pub mf: MfConfig,
    /// Never recommend an item the episode has shown: collection takes the best unshown item, evaluation
    /// blocks them in every mode (`crate::shown`). The critic's target reads the proto-action, not an item.
    pub mask_shown: bool,
}

impl Default for Td3Config {
    fn default() -> Self {
        Self {
            actor_lr: 1e-3,
            critic_lr: 1e-3,
            tracker_lr: 1e-3,
            gamma: 0.9,
            n_step: 3,
            tau: 0.005,
            policy_delay: 2,
            exploration_noise: 0.1,
            policy_noise: 0.2,
            noise_clip: 0.5,
            score_scale: 20.0,
            batch_size: 64,
            buffer_size: 100_000,
            update_per_step: 0.125,
            updates_per_1k_steps: None,
            hidden: vec![64, 64],
            mf: MfConfig::default(),
            mask_shown: false,
        }
    }
}

impl Td3Config {
    /// Settings out of their domain.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.batch_size == 0 || self.n_step == 0 || self.buffer_size == 0 || self.policy_delay == 0 {
            p.push("td3 batch_size, n_step, buffer_size and policy_delay >= 1".into());
        }
        if !(0.0..=1.0).contains(&self.gamma) || !(0.0..=1.0).contains(&self.tau) {
            p.push("td3 gamma and tau in [0, 1]".into());
        }
        let noise = [self.exploration_noise, self.policy_noise, self.noise_clip];
        if noise.iter().any(|x| !(x.is_finite() && *x >= 0.0)) {
            p.push("td3 exploration_noise, policy_noise and noise_clip finite and >= 0".into());
        }
        if !(self.score_scale.is_finite() && self.score_scale > 0.0) || self.update_per_step <= 0.0 {
            p.push("td3 score_scale > 0 and update_per_step > 0".into());
        }
        if self.mf.dim == 0 {
            p.push("td3 mf.dim >= 1 (the action width)".into());
        }
        p
    }
}

/// Gaussian draws from the run's stream (Box-Muller), `std` each, clipped to ±`clip` when given.
fn gaussian(n: usize, std: f64, clip: Option<f64>, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let (u1, u2) = (1.0 - rng.gen::<f64>(), rng.gen::<f64>());
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos() * std;
            (match clip {
                Some(c) => z.clamp(-c, c),
                None => z,
            }) as f32
        })
        .collect()
}

/// x / ‖x‖ row-wise.
fn unit(x: &Tensor) -> Result<Tensor> {
    let norm = x.f_norm_scalaropt_dim(2.0, [-1i64].as_slice(), true)?.f_clamp_min(1e-6)?;
    Ok(x.f_div(&norm)?)
}

/// Q(s, x) of a critic built as a `ScoreNet` over [s ‖ x] with one output.
fn q_value(critic: &ScoreNet, states: &Tensor, actions: &Tensor) -> Result<Tensor> {
    Ok(critic.forward(&Tensor::f_cat(&[states, actions], 1)?)?.f_squeeze_dim(1)?)
}

/// A TD3 agent over the catalogue.
#[derive(Debug)]
pub struct Td3 {
    /// Hyper-parameters.
    pub cfg: Td3Config,
    /// The proto-action network (normalised by [`unit`]), in `actor_vs`.
    pub actor: ScoreNet,
    /// The actor's weights.
    pub actor_vs: VarStore,
    /// Its Polyak-averaged copy.
    pub actor_target: ScoreNet,
    /// The target actor's weights.
    pub actor_target_vs: VarStore,
    /// Twin critics over [state ‖ item embedding], in `critic_vs` (one optimiser).
    pub q: [ScoreNet; 2],
    /// The critics' weights.
    pub critic_vs: VarStore,
    /// Polyak-averaged copies of the critics.
    pub q_target: [ScoreNet; 2],
    /// The target critics' weights.
    pub critic_target_vs: VarStore,
    actor_adam: Adam,
    critic_adam: Adam,
    /// `[n_items, d]` normalised item embeddings (fixed).
    pub items: Tensor,
    /// Collected episodes.
    pub buffer: ReplayBuffer,
    /// Critic steps so far (schedules the delayed actor steps).
    pub grad_steps: u64,
}

impl Td3 {
    /// A fresh agent for `world`'s catalogue (fits the item embeddings; seed libtorch first).
    pub fn new(cfg: Td3Config, state_dim: i64, world: &World, device: Device) -> Result<Self> {
        let factors = ItemFactors::fit(world, &cfg.mf)?;
        let d = factors.dim as i64;
        let items = Tensor::from_slice(&factors.rows).f_view([factors.n_items as i64, d])?.f_to_device(device)?;
        let store = || VarStore::new(device);
        let (actor_vs, actor_target_vs, critic_vs, critic_target_vs) = (store(), store(), store(), store());
        let actor = ScoreNet::new(&actor_vs, "actor", state_dim, &cfg.hidden, d)?;
        let actor_target = ScoreNet::new(&actor_target_vs, "actor", state_dim, &cfg.hidden, d)?;
        let critic = |vs: &VarStore, name: &str| ScoreNet::new(vs, name, state_dim + d, &cfg.hidden, 1);
        let q = [critic(&critic_vs, "q1")?, critic(&critic_vs, "q2")?];
        let q_target = [critic(&critic_target_vs, "q1")?, critic(&critic_target_vs, "q2")?];
        soft_update(&actor_target_vs, &actor_vs, 1.0)?;
        soft_update(&critic_target_vs, &critic_vs, 1.0)?;
        let adam = |vs: &VarStore, lr: f64| Adam::new(vs, AdamConfig { lr, ..Default::default() });
        let (actor_adam, critic_adam) = (adam(&actor_vs, cfg.actor_lr), adam(&critic_vs, cfg.critic_lr));
        let buffer = ReplayBuffer::new(cfg.buffer_size);
        Ok(Self {
            cfg,
            actor,
            actor_vs,
            actor_target,
            actor_target_vs,
            q,
            critic_vs,
            q_target,
            critic_target_vs,
            actor_adam,
            critic_adam,
            items,
            buffer,
            grad_steps: 0,
        })
    }

    /// Action width d.
    fn dim(&self) -> usize {
        self.items.size()[1] as usize
    }

    /// `[B, d]` noise of expected norm `sigma` (coordinates N(0, σ²/d)), clipped per coordinate at `clip`/√d.
    fn noise(&self, rows: usize, sigma: f64, clip: Option<f64>, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let d = self.dim();
        let scale = 1.0 / (d as f64).sqrt();
        let v = gaussian(rows * d, sigma * scale, clip.map(|c| c * scale), rng);
        Ok(Tensor::from_slice(&v).f_view([rows as i64, d as i64])?.f_to_device(self.items.device())?)
    }

    /// One critic step (with the tracker), and on every `policy_delay`-th the actor step and target updates.
    pub fn learn(&mut self, tracker: &mut TrainedTracker, rng: &mut ChaCha8Rng) -> Result<UpdateStats> {
        let (window, n_items, device) = (tracker.tracker.window(), self.items.size()[0] as usize, self.items.device());
        let (gamma, n_step, bs) = (self.cfg.gamma, self.cfg.n_step, self.cfg.batch_size);
        let steps = self.buffer.sample(bs, rng);
        let tr = self.buffer.transitions(&steps, n_step, gamma, window, n_items, device)?;
        let xi = self.noise(bs, self.cfg.policy_noise, Some(self.cfg.noise_clip), rng)?;

        // Clipped double-Q target with target policy smoothing.
        let y = tch::no_grad(|| -> Result<Tensor> {
            let next = tracker.states(&tr.next)?;
            let x_next = unit(&unit(&self.actor_target.forward(&next)?)?.f_add(&xi)?)?;
            let q_next =
                q_value(&self.q_target[0], &next, &x_next)?.f_minimum(&q_value(&self.q_target[1], &next, &x_next)?)?;
            let live = tr.dones.f_neg()?.f_add_scalar(1.0)?;
            Ok(tr.rewards.f_add(&q_next.f_mul(&live)?.f_mul_scalar(gamma.powi(n_step as i32))?)?)
        })?;
        let states = tracker.states(&tr.states)?;
        let taken = self.items.f_index_select(0, &tr.actions.f_squeeze_dim(1)?)?;
        let mut critic_loss = Tensor::zeros([], (Kind::Float, device));
        let mut q1_mean = 0.0;
        for (j, q) in self.q.iter().enumerate() {
            let q_sa = q_value(q, &states, &taken)?;
            if j == 0 {
                q1_mean = q_sa.f_mean(Kind::Float)?.f_double_value(&[])?;
            }
            critic_loss = critic_loss.f_add(&q_sa.f_sub(&y)?.f_square()?.f_mean(Kind::Float)?)?;
        }
        let critic_value = finite("td3 critic", &critic_loss, self.grad_steps)?;
        joint_step(&critic_loss, &mut self.critic_adam, tracker)?;
        self.grad_steps += 1;

        let mut stats = UpdateStats { loss: critic_value, vf_loss: critic_value, grad_steps: 1, ..Default::default() };
        stats.extra.insert("q_mean".to_string(), q1_mean);
        if self.grad_steps.is_multiple_of(self.cfg.policy_delay as u64) {
            let states = states.f_detach()?;
            let x = unit(&self.actor.forward(&states)?)?;
            let actor_loss = q_value(&self.q[0], &states, &x)?.f_mean(Kind::Float)?.f_neg()?;
            let actor_value = finite("td3 actor", &actor_loss, self.grad_steps)?;
            self.actor_adam.backward_step(&actor_loss)?;
            soft_update(&self.actor_target_vs, &self.actor_vs, self.cfg.tau)?;
            soft_update(&self.critic_target_vs, &self.critic_vs, self.cfg.tau)?;
            stats.actor_loss = actor_value;
            stats.loss += actor_value;
            stats.extra.insert("actor_steps".to_string(), 1.0);
        } else {
            stats.extra.insert("actor_steps".to_string(), 0.0);
        }
        Ok(stats)
    }
}

impl Learner for Td3 {
    fn name(&self) -> &'static str {
        "td3"
    }

    fn iterate(&mut self, env: &TrainingEnv, tracker: &mut TrainedTracker, rng: &mut ChaCha8Rng) -> Result<Iteration> {
        let t = Instant::now();
        let device = self.items.device();
        let rollout = {
            let this = &*self;
            let collection = Collection::new(env, tracker.tracker.as_ref(), device).masking_shown(this.cfg.mask_shown);
            collection.run(rng, |rows, rng| {
                // Noise for every row, drawn before the forward pass, so the stream does not depend on π.
                let eps = this.noise(rows.len(), this.cfg.exploration_noise, None, rng)?;
                let scores = tch::no_grad(|| -> Result<Tensor> {
                    let x = unit(&unit(&this.actor.forward(&rows.states)?)?.f_add(&eps)?)?;
                    Ok(x.f_matmul(&this.items.f_tr()?)?)
                })?;
                argmax_rows(&rows.masked(scores)?)
            })?
        };
        self.buffer.push_rollout(&rollout);
        let collect_s = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let mut stats = UpdateStats::default();
        let updates = match self.cfg.updates_per_1k_steps {
            Some(u) if !self.buffer.is_empty() => paced_updates(u, env.steps_before, rollout.len()),
            None if self.buffer.len() >= self.cfg.batch_size => {
                (rollout.len() as f64 * self.cfg.update_per_step).ceil() as usize
            }
            _ => 0,
        };
        for _ in 0..updates {
            stats.merge(&self.learn(tracker, rng)?);
        }
        Ok(Iteration::of(&rollout, stats, collect_s, t.elapsed().as_secs_f64()))
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut t = checkpoint::named("td3_actor", &self.actor_vs);
        t.extend(checkpoint::named("td3_actor_target", &self.actor_target_vs));
        t.extend(checkpoint::named("td3_critic", &self.critic_vs));
        t.extend(checkpoint::named("td3_critic_target", &self.critic_target_vs));
        t.extend(self.actor_adam.state("td3_actor_adam"));
        t.extend(self.critic_adam.state("td3_critic_adam"));
        t.extend(self.buffer.tensors("td3_replay"));
        t.push(counter_tensor("td3/grad_steps", self.grad_steps));
        t
    }

    fn restore(&mut self, tensors: &[(String, Tensor)]) -> Result<()> {
        checkpoint::restore("td3_actor", &mut self.actor_vs, tensors)?;
        checkpoint::restore("td3_actor_target", &mut self.actor_target_vs, tensors)?;
        checkpoint::restore("td3_critic", &mut self.critic_vs, tensors)?;
        checkpoint::restore("td3_critic_target", &mut self.critic_target_vs, tensors)?;
        self.actor_adam.restore("td3_actor_adam", tensors)?;
        self.critic_adam.restore("td3_critic_adam", tensors)?;
        self.buffer.restore("td3_replay", tensors)?;
        self.grad_steps = restore_counter("td3/grad_steps", tensors)?;
        Ok(())
    }

    fn snapshot(&self, tracker: Box<dyn StateTracker>, reward_range: (f64, f64)) -> Result<Box<dyn EvalPolicy>> {
        let n_items = self.items.size()[0] as usize;
        let scorer = ItemScorer {
            actor: self.actor.freeze(&self.actor_vs)?,
            items_t: self.items.f_tr()?.f_contiguous()?.f_mul_scalar(self.cfg.score_scale)?,
        };
        let policy = ScoredPolicy::new("td3", tracker, Box::new(scorer), n_items, reward_range)?;
        Ok(Box::new(policy.masking_shown(self.cfg.mask_shown)))
    }
}

/// A frozen actor scoring every item by κ · ⟨π(s), ê_i⟩.
struct ItemScorer {
    actor: FrozenNet,
    /// `[d, n_items]` κ · ê^T.
    items_t: Tensor,
}

impl Scorer for ItemScorer {
    fn scores(&self, states: &Tensor) -> Result<Tensor> {
        let x = unit(&self.actor.net.forward(states)?)?;
        x.f_matmul(&self.items_t).map_err(AgentError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learner::Algorithm;
    use rand::SeedableRng;

    #[test]
    fn settings_out_of_their_domain_are_named() {
        let named = |c: Td3Config, key: &str| {
            let p = Algorithm::Td3(c).problems().join("; ");
            assert!(p.contains(key), "{key}: {p}");
        };
        named(Td3Config { policy_delay: 0, ..Default::default() }, "policy_delay");
        named(Td3Config { noise_clip: -1.0, ..Default::default() }, "noise_clip");
        named(Td3Config { score_scale: 0.0, ..Default::default() }, "score_scale");
        named(Td3Config { updates_per_1k_steps: Some(0.0), ..Default::default() }, "updates_per_1k_steps");
        named(Td3Config { mf: MfConfig { dim: 0, ..Default::default() }, ..Default::default() }, "mf.dim");
        assert!(Algorithm::Td3(Td3Config::default()).problems().is_empty());
    }

    #[test]
    fn noise_has_the_asked_spread_and_clip() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let z = gaussian(40_000, 0.5, None, &mut rng);
        let var = z.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / z.len() as f64;
        assert!((var.sqrt() - 0.5).abs() < 0.01, "std {}", var.sqrt());
        let z = gaussian(1_000, 1.0, Some(0.3), &mut rng);
        assert!(z.iter().all(|x| x.abs() <= 0.3) && z.iter().any(|x| x.abs() == 0.3));
    }
}
