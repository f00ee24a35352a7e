//! SAC4IR (Shi, Liu, Xie, Shang, ICWS 2023, "Towards Long-term Fairness in Interactive Recommendation: A
//! Maximum Entropy Reinforcement Learning Approach"; public repository `shixiaoyu0216/SAC4IR`): a discrete soft
//! actor-critic over the catalogue whose fairness device is maximum entropy — the temperature α is tuned so that
//! the policy's entropy stays near `target_entropy_scale × ln |A|`, which spreads exposure over many items — with
//! an attention state encoder over the items of the recent window. Online in the simulated environment like SAC
//! (same buffer of whole episodes, n-step transitions, the tracker trained through the critic loss).
//!
//! ```text
//! H_target = target_entropy_scale · ln |A|;  α = exp(log α), log α₀ = ln alpha
//! state(h) = tracker(h)                              with encoder = "tracker" (every headline row reads it)
//!          = tracker(h) ‖ attend(h)                  with encoder = "attention" (SAC4IR's own encoder)
//! attend(h): x_t = E[item_t] over the last `attention_window` items       # own item table, pad row
//!            k_t = W_qk x_t (queries = keys), v_t = W_v x_t
//!            z_t = Σ_u softmax_u(⟨k_t, k_u⟩ / √d, real u) v_u               # self-attention
//!            attend = Σ_t softmax_t(w · z_t, real t) z_t  (0 when the history is empty)  # attention pooling
//! collect: a ~ π(·|state(h)) = softmax(actor(state))
//! each gradient step on a uniform minibatch of n-step transitions (s, a, R, s', done):
//!   s   = state(history)                             # with gradients into the tracker and the encoder
//!   L_π = mean_B Σ_a π(a|sg(s)) [α log π(a|sg(s)) − min(Q1, Q2)(sg(s), a)]   # the actor only
//!   L_α = −log α · (H_target − H(π(·|s)))            # the temperature: α rises while H is below target
//!   y   = R + γ^n (1 − done) Σ_a π'(a) [min(Q1_t, Q2_t)(s', a) − α log π'(a)]   # π' = π(·|s'), no gradient
//!   L_Q = Σ_j mean_B (Q_j(s, a) − y)²                # critics, encoder and tracker: one joint step
//!   Q_t <- (1 − τ) Q_t + τ Q
//! evaluation scores: the actor's logits (sampled: π itself; argmax: its most probable item)
//! with `mask_shown`: π(·|s) and π' put 0 on the items their episode had shown (collection, both
//!   expectations, evaluation)
//! ```
//!
//! The order within a step (policy, temperature, then critics with the new α and policy) is the source's. The
//! soft-actor-critic math is `soft_q.rs`'s.
//!
//! What is adapted from the source, and why:
//!
//! * **Temperature.** The source's temperature loss is `mean(log α · (H_target − H))` with H_target = 1.0 ·
//!   ln |A|; minimised, it *lowers* α while the entropy is below target, and an entropy can never exceed ln |A|,
//!   so α only falls. Here the temperature follows the rule of SAC (and of the paper's maximum-entropy
//!   argument): it rises while the entropy is below target. The target is a share of ln |A| below 1 (default
//!   0.98, Christodoulou's), since at 1 only the uniform policy meets it and α would grow without bound.
//! * **Logits.** The source min-max scales the logits of a whole minibatch into [−1, 1] before the softmax;
//!   that couples the rows of a batch and caps any item's probability at e² times any other's, whatever α.
//!   Here the temperature alone holds the entropy at its target.
//! * **Encoder.** The source's encoder embeds the last 10 items (width 10), maps them to shared queries and keys
//!   and to values, runs a 10-head self-attention, and reduces the result with a linear map over the 10
//!   positions to one number, the state; each of the actor and the two critics has its own copy. Here one
//!   encoder (single-head attention, padded positions masked, attention pooling to a `attention_dim`-vector, so
//!   any window and partial histories work) is trained with the critics, as the tracker is, and the actor reads
//!   it without gradient. Its output is appended to the tracker's state rather than replacing it, so SAC4IR
//!   still reads the rewards the tracker encodes (the source's window holds only items) and the row differs
//!   from the headline rows only by the encoder it adds. Studies label a row with `encoder = "attention"`.
//! * **Targets.** The source copies the critics to the targets every 99 updates; here they are Polyak-averaged
//!   (τ), as SAC's are. Its evaluation is greedy over |logits| × the item's click rate after the last item;
//!   here the evaluation protocol's modes read the logits alone (the sampled mode is the trained policy).
//! * Settings not tied to SAC4IR (learning rates, γ, n-step, batch, buffer, network, schedule) are the ones the
//!   other online off-policy agents here share, so rows differ by their algorithm; the source's α₀ = 1 is kept.
//!
//! With `updates_per_1k_steps` (the paper study's equal compute, `crate::pace`) a collection of n steps after S
//! earns ⌊(S + n)u/1000⌋ − ⌊Su/1000⌋ gradient steps instead of ⌈n · update_per_step⌉.

use crate::learner::{EvalPolicy, Iteration, Learner, TrainingEnv};
use crate::losses::finite;
use crate::pace::paced_updates;
use crate::qnet::{soft_update, ScoreNet};
use crate::replay::{sample_rows, Collection, ReplayBuffer};
use crate::scored_policy::ScoredPolicy;
use crate::shown::masked_log_softmax;
use crate::soft_q::{mean_entropy, soft_policy_loss, soft_value, temperature_loss};
use crate::step_counter::{counter_tensor, restore_counter};
use crate::trained_tracker::{joint_step, TrainedTracker};
use crate::{AgentError, Result, UpdateStats};
use dsrm_nn::checkpoint;
use dsrm_nn::optim::{Adam, AdamConfig};
use dsrm_nn::tch::nn::{self, VarStore};
use dsrm_nn::tch::{self, Device, Kind, Tensor};
use dsrm_state::{HistoryBatch, StateError, StateTracker};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Added to the attention scores of padded positions (masked out; finite, so an empty history stays finite).
const MASKED: f64 = -1e9;

/// What the actor and the critics read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sac4irEncoder {
    /// The tracker's state alone, like every headline row.
    Tracker,
    /// The tracker's state ‖ SAC4IR's attention encoding of the recent items (its own encoder; label the row).
    Attention,
}

/// SAC4IR hyper-parameters. Defaults: SAC4IR's initial temperature (α₀ = 1), its encoder's width and window (10
/// items) and Christodoulou's target entropy share (0.98); the rest the settings the other online off-policy
/// agents share (EasyRL4Rec's buffer, batch, n-step and schedule; DORL's lr, γ and network).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sac4irConfig {
    /// Adam learning rate of the policy.
    pub actor_lr: f64,
    /// Adam learning rate of the twin critics and of the attention encoder.
    pub critic_lr: f64,
    /// Adam learning rate of log α.
    pub alpha_lr: f64,
    /// Adam learning rate of the state tracker (its own optimiser, stepped on the critic loss).
    pub tracker_lr: f64,
    /// Initial temperature α.
    pub alpha: f64,
    /// The target entropy as a share of the maximum, ln |A|: the fairness device (higher spreads exposure more).
    pub target_entropy_scale: f64,
    /// `"attention"` (SAC4IR's encoder beside the tracker) or `"tracker"` (the tracker alone).
    pub encoder: Sac4irEncoder,
    /// Width d of the attention encoder (item embeddings, keys, values, output).
    pub attention_dim: i64,
    /// Recent items the attention encoder reads.
    pub attention_window: usize,
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
    /// Gradient steps per collected step (unless paced).
    pub update_per_step: f64,
    /// Paced gradient steps per 1,000 environment steps (`crate::pace`); overrides `update_per_step`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updates_per_1k_steps: Option<f64>,
    /// Hidden layers of the policy and of each critic.
    pub hidden: Vec<i64>,
    /// Never recommend an item the episode has shown: π is 0 on them in collection, in the actor's and the
    /// target's expectations, and in evaluation (`crate::shown`).
    pub mask_shown: bool,
}

impl Default for Sac4irConfig {
    fn default() -> Self {
        Self {
            actor_lr: 1e-3,
            critic_lr: 1e-3,
            alpha_lr: 3e-4,
            tracker_lr: 1e-3,
            alpha: 1.0,
            target_entropy_scale: 0.98,
            encoder: Sac4irEncoder::Attention,
            attention_dim: 10,
            attention_window: 10,
            gamma: 0.9,
            n_step: 3,
            tau: 0.005,
            batch_size: 64,
            buffer_size: 100_000,
            update_per_step: 0.125,
            updates_per_1k_steps: None,
            hidden: vec![64, 64],
            mask_shown: false,
        }
    }
}

impl Sac4irConfig {
    /// Settings out of their domain.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.batch_size == 0 || self.n_step == 0 || self.buffer_size == 0 {
            p.push("sac4ir batch_size, n_step and buffer_size >= 1".into());
        }
        if !(0.0..=1.0).contains(&self.gamma) || !(0.0..=1.0).contains(&self.tau) {
            p.push("sac4ir gamma and tau in [0, 1]".into());
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            p.push(format!("sac4ir alpha = {}: needs a finite number > 0", self.alpha));
        }
        if !(0.0..1.0).contains(&self.target_entropy_scale) {
            p.push(format!(
                "sac4ir target_entropy_scale = {}: needs [0, 1) (at 1 only the uniform policy meets the target)",
                self.target_entropy_scale
            ));
        }
        if self.update_per_step.is_nan() || self.update_per_step <= 0.0 {
            p.push("sac4ir update_per_step > 0".into());
        }
        if self.attention_dim <= 0 || self.attention_window == 0 {
            p.push("sac4ir attention_dim and attention_window >= 1".into());
        }
        p
    }
}

/// SAC4IR's attention state encoder (see the module's header): an item table of its own, self-attention with
/// shared queries and keys, and attention pooling over the real positions of the window.
#[derive(Debug)]
struct AttentionEncoder {
    items: Tensor,
    qk: nn::Linear,
    v: nn::Linear,
    pool: nn::Linear,
    dim: i64,
    window: usize,
}

impl AttentionEncoder {
    /// Adds the encoder to `path` (consumes libtorch's generator).
    fn new(path: &nn::Path, n_items: i64, dim: i64, window: usize) -> Self {
        let init = nn::Init::Randn { mean: 0.0, stdev: 0.1 };
        Self {
            items: path.var("items", &[n_items + 1, dim], init),
            qk: nn::linear(path / "qk", dim, dim, Default::default()),
            v: nn::linear(path / "v", dim, dim, Default::default()),
            pool: nn::linear(path / "pool", dim, 1, Default::default()),
            dim,
            window,
        }
    }

    /// `[B, d]` encodings of the last `window` steps of `batch` (a batch of at least that window).
    fn forward(&self, batch: &HistoryBatch) -> Result<Tensor> {
        let b = last_steps(batch, self.window)?;
        let linear = |x: &Tensor, l: &nn::Linear| x.f_linear(&l.ws, l.bs.as_ref());
        let x = Tensor::f_embedding(&self.items, &b.items, -1, false, false)?; // [B, W, d]
        let k = linear(&x, &self.qk)?;
        let v = linear(&x, &self.v)?;
        // Padded positions get MASKED added: as keys in the attention, and as candidates of the pooling.
        let masked = b.mask.f_neg()?.f_add_scalar(1.0)?.f_mul_scalar(MASKED)?; // [B, W]
        let scores = k.f_matmul(&k.f_transpose(1, 2)?)?.f_div_scalar((self.dim as f64).sqrt())?;
        let attn = scores.f_add(&masked.f_unsqueeze(1)?)?.f_softmax(-1, Kind::Float)?;
        let z = attn.f_matmul(&v)?; // [B, W, d]
        let w = linear(&z, &self.pool)?.f_squeeze_dim(-1)?.f_add(&masked)?.f_softmax(-1, Kind::Float)?;
        // An empty history: uniform weights over padding, zeroed by the mask.
        let w = w.f_mul(&b.mask)?.f_unsqueeze(-1)?;
        Ok(z.f_mul(&w)?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?)
    }
}

/// The last `w` steps of a right-aligned batch (the batch `HistoryBatch::new` builds at window `w`).
fn last_steps(b: &HistoryBatch, w: usize) -> Result<HistoryBatch> {
    if w > b.window {
        return Err(AgentError::Config(format!("a window of {w} steps from a batch of {}", b.window)));
    }
    let cut = |t: &Tensor| -> Result<Tensor> { Ok(t.f_narrow(1, (b.window - w) as i64, w as i64)?.f_contiguous()?) };
    Ok(HistoryBatch {
        items: cut(&b.items)?,
        rewards: cut(&b.rewards)?,
        mask: cut(&b.mask)?,
        steps: b.steps.shallow_clone(),
        users: b.users.shallow_clone(),
        window: w,
        pad: b.pad,
    })
}

/// A SAC4IR agent.
#[derive(Debug)]
pub struct Sac4ir {
    /// Hyper-parameters.
    pub cfg: Sac4irConfig,
    /// π(·|s) logits, in `actor_vs`.
    pub actor: ScoreNet,
    /// The policy's weights.
    pub actor_vs: VarStore,
    /// Twin critics `q1`, `q2` and the attention encoder `encoder`, in `critic_vs` (one optimiser).
    pub q: [ScoreNet; 2],
    /// The critics' and the encoder's weights.
    pub critic_vs: VarStore,
    /// Polyak-averaged copies of the critics.
    pub target: [ScoreNet; 2],
    /// The target critics' weights.
    pub target_vs: VarStore,
    /// log α, in `alpha_vs`.
    pub log_alpha: Tensor,
    /// log α's store.
    pub alpha_vs: VarStore,
    encoder: Option<AttentionEncoder>,
    actor_adam: Adam,
    critic_adam: Adam,
    alpha_adam: Adam,
    /// Collected episodes.
    pub buffer: ReplayBuffer,
    /// Gradient steps so far.
    pub grad_steps: u64,
    target_entropy: f64,
}

impl Sac4ir {
    /// A fresh agent over `n_items` items reading tracker states of `state_dim` (seed libtorch first).
    pub fn new(cfg: Sac4irConfig, state_dim: i64, n_items: i64, device: Device) -> Result<Self> {
        let stores = || VarStore::new(device);
        let (actor_vs, critic_vs, target_vs, alpha_vs) = (stores(), stores(), stores(), stores());
        let encoder = (cfg.encoder == Sac4irEncoder::Attention).then(|| {
            AttentionEncoder::new(&(critic_vs.root() / "encoder"), n_items, cfg.attention_dim, cfg.attention_window)
        });
        let input = state_dim + encoder.as_ref().map_or(0, |e| e.dim);
        let actor = ScoreNet::new(&actor_vs, "actor", input, &cfg.hidden, n_items)?;
        let critic = |vs: &VarStore, name: &str| ScoreNet::new(vs, name, input, &cfg.hidden, n_items);
        let q = [critic(&critic_vs, "q1")?, critic(&critic_vs, "q2")?];
        let target = [critic(&target_vs, "q1")?, critic(&target_vs, "q2")?];
        soft_update(&target_vs, &critic_vs, 1.0)?;
        let log_alpha = alpha_vs.root().var("log_alpha", &[1], nn::Init::Const(cfg.alpha.ln()));
        let adam = |vs: &VarStore, lr: f64| Adam::new(vs, AdamConfig { lr, ..Default::default() });
        let (actor_adam, critic_adam, alpha_adam) =
            (adam(&actor_vs, cfg.actor_lr), adam(&critic_vs, cfg.critic_lr), adam(&alpha_vs, cfg.alpha_lr));
        let target_entropy = cfg.target_entropy_scale * (n_items as f64).ln();
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
            encoder,
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

    /// The window of the batches this agent builds: the tracker's, or the encoder's when that is longer.
    fn window(&self, tracker: &dyn StateTracker) -> usize {
        tracker.window().max(self.encoder.as_ref().map_or(0, |e| e.window))
    }

    /// The states the networks read: the tracker's (on its own window of `batch`) ‖ the encoder's, if any.
    fn states(&self, tracker: &TrainedTracker, batch: &HistoryBatch) -> Result<Tensor> {
        let s = tracker.states(&last_steps(batch, tracker.tracker.window())?)?;
        match &self.encoder {
            Some(e) => Ok(Tensor::f_cat(&[s, e.forward(batch)?], 1)?),
            None => Ok(s),
        }
    }

    /// One gradient step of the actor, the temperature, and the critics (with the encoder and the tracker).
    pub fn learn(&mut self, tracker: &mut TrainedTracker, rng: &mut ChaCha8Rng) -> Result<UpdateStats> {
        let (window, n_items) = (self.window(tracker.tracker.as_ref()), self.actor.n_out() as usize);
        let (gamma, n_step, device) = (self.cfg.gamma, self.cfg.n_step, self.actor_vs.device());
        let steps = self.buffer.sample(self.cfg.batch_size, rng);
        let tr = self.buffer.transitions(&steps, n_step, gamma, window, n_items, device)?;
        let states = self.states(tracker, &tr.states)?;
        let q_all = [self.q[0].forward(&states)?, self.q[1].forward(&states)?];
        let blocked = |ahead: usize| -> Result<Option<Tensor>> {
            match self.cfg.mask_shown {
                true => Ok(Some(self.buffer.shown_penalty(&steps, ahead, n_items, device)?)),
                false => Ok(None),
            }
        };
        let (blocked_now, blocked_next) = (blocked(0)?, blocked(n_step)?);

        // Policy on detached states and Q-values, at the current α.
        let alpha = self.alpha()?;
        let q_min = q_all[0].f_minimum(&q_all[1])?.f_detach()?;
        let log_p = masked_log_softmax(self.actor.forward(&states.f_detach()?)?, blocked_now.as_ref())?;
        let actor_loss = soft_policy_loss(&log_p, &q_min, alpha)?;
        let actor_value = finite("sac4ir actor", &actor_loss, self.grad_steps)?;
        self.actor_adam.backward_step(&actor_loss)?;

        // Temperature towards the target entropy.
        let entropy = mean_entropy(&log_p)?;
        self.alpha_adam.backward_step(&temperature_loss(&self.log_alpha, &entropy, self.target_entropy)?)?;

        // Critics (with the encoder and the tracker) on the soft TD target of the updated policy and α.
        let alpha = self.alpha()?;
        let y = tch::no_grad(|| -> Result<Tensor> {
            let next = self.states(tracker, &tr.next)?;
            let log_p = masked_log_softmax(self.actor.forward(&next)?, blocked_next.as_ref())?;
            let q_next = self.target[0].forward(&next)?.f_minimum(&self.target[1].forward(&next)?)?;
            let live = tr.dones.f_neg()?.f_add_scalar(1.0)?;
            let v = soft_value(&log_p, &q_next, alpha)?;
            Ok(tr.rewards.f_add(&v.f_mul(&live)?.f_mul_scalar(gamma.powi(n_step as i32))?)?)
        })?;
        let mut critic_loss = Tensor::zeros([], (Kind::Float, device));
        for q in &q_all {
            let q_sa = q.f_gather(1, &tr.actions, false)?.f_squeeze_dim(1)?;
            critic_loss = critic_loss.f_add(&q_sa.f_sub(&y)?.f_square()?.f_mean(Kind::Float)?)?;
        }
        let critic_value = finite("sac4ir critic", &critic_loss, self.grad_steps)?;
        joint_step(&critic_loss, &mut self.critic_adam, tracker)?;

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

impl Learner for Sac4ir {
    fn name(&self) -> &'static str {
        "sac4ir"
    }

    fn iterate(&mut self, env: &TrainingEnv, tracker: &mut TrainedTracker, rng: &mut ChaCha8Rng) -> Result<Iteration> {
        let t = Instant::now();
        let (device, window) = (self.actor_vs.device(), self.window(tracker.tracker.as_ref()));
        let rollout = {
            let (this, tracker) = (&*self, &*tracker);
            let inner = tracker.tracker.as_ref();
            let collection = Collection::new(env, inner, device).reading(window).masking_shown(this.cfg.mask_shown);
            collection.run(rng, |rows, rng| {
                let logits = tch::no_grad(|| -> Result<Tensor> {
                    let s = match &this.encoder {
                        Some(e) => {
                            let own =
                                rows.own.as_ref().ok_or_else(|| AgentError::Config("no window to encode".into()))?;
                            Tensor::f_cat(&[rows.states.shallow_clone(), e.forward(own)?], 1)?
                        }
                        None => rows.states.shallow_clone(),
                    };
                    this.actor.forward(&s)
                })?;
                sample_rows(&rows.masked(logits)?, rng)
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
        let mut t = checkpoint::named("sac4ir_actor", &self.actor_vs);
        t.extend(checkpoint::named("sac4ir_critic", &self.critic_vs));
        t.extend(checkpoint::named("sac4ir_target", &self.target_vs));
        t.extend(checkpoint::named("sac4ir_alpha", &self.alpha_vs));
        t.extend(self.actor_adam.state("sac4ir_actor_adam"));
        t.extend(self.critic_adam.state("sac4ir_critic_adam"));
        t.extend(self.alpha_adam.state("sac4ir_alpha_adam"));
        t.extend(self.buffer.tensors("sac4ir_replay"));
        t.push(counter_tensor("sac4ir/grad_steps", self.grad_steps));
        t
    }

    fn restore(&mut self, tensors: &[(String, Tensor)]) -> Result<()> {
        checkpoint::restore("sac4ir_actor", &mut self.actor_vs, tensors)?;
        checkpoint::restore("sac4ir_critic", &mut self.critic_vs, tensors)?;
        checkpoint::restore("sac4ir_target", &mut self.target_vs, tensors)?;
        checkpoint::restore("sac4ir_alpha", &mut self.alpha_vs, tensors)?;
        self.actor_adam.restore("sac4ir_actor_adam", tensors)?;
        self.critic_adam.restore("sac4ir_critic_adam", tensors)?;
        self.alpha_adam.restore("sac4ir_alpha_adam", tensors)?;
        self.buffer.restore("sac4ir_replay", tensors)?;
        self.grad_steps = restore_counter("sac4ir/grad_steps", tensors)?;
        Ok(())
    }

    fn snapshot(&self, tracker: Box<dyn StateTracker>, reward_range: (f64, f64)) -> Result<Box<dyn EvalPolicy>> {
        let n_items = self.actor.n_out() as usize;
        let actor = self.actor.freeze(&self.actor_vs)?;
        let tracker: Box<dyn StateTracker> = match &self.encoder {
            Some(e) => Box::new(EncodedTracker::freeze(tracker, e, &self.critic_vs, n_items as i64)?),
            None => tracker,
        };
        let policy = ScoredPolicy::new("sac4ir", tracker, Box::new(actor), n_items, reward_range)?;
        Ok(Box::new(policy.masking_shown(self.cfg.mask_shown)))
    }
}

/// An evaluation snapshot's state: a tracker copy ‖ a frozen copy of the attention encoder, on a window long
/// enough for both (the tracker reads its own last steps of it).
struct EncodedTracker {
    inner: Box<dyn StateTracker>,
    vs: VarStore,
    encoder: AttentionEncoder,
}

impl EncodedTracker {
    /// Wraps `inner` with a copy of `encoder`, whose weights live in `source` under `encoder`.
    fn freeze(inner: Box<dyn StateTracker>, e: &AttentionEncoder, source: &VarStore, n_items: i64) -> Result<Self> {
        let mut vs = VarStore::new(source.device());
        let encoder = AttentionEncoder::new(&(vs.root() / "encoder"), n_items, e.dim, e.window);
        soft_update(&vs, source, 1.0)?;
        vs.freeze();
        Ok(Self { inner, vs, encoder })
    }
}

impl StateTracker for EncodedTracker {
    fn state_dim(&self) -> i64 {
        self.inner.state_dim() + self.encoder.dim
    }
    fn window(&self) -> usize {
        self.inner.window().max(self.encoder.window)
    }
    /// Panics on a malformed batch; [`StateTracker::try_states`] reports it instead.
    fn states(&self, batch: &HistoryBatch) -> Tensor {
        self.try_states(batch).unwrap_or_else(|e| panic!("sac4ir encoder: {e}"))
    }
    fn try_states(&self, batch: &HistoryBatch) -> std::result::Result<Tensor, StateError> {
        let to_state = |e: AgentError| StateError::Batch(e.to_string());
        let own = last_steps(batch, self.inner.window()).map_err(to_state)?;
        let s = self.inner.try_states(&own)?;
        Ok(Tensor::f_cat(&[s, self.encoder.forward(batch).map_err(to_state)?], 1)?)
    }
    fn var_store(&self) -> &VarStore {
        &self.vs
    }
    fn var_store_mut(&mut self) -> &mut VarStore {
        &mut self.vs
    }
    fn name(&self) -> &'static str {
        "sac4ir-attention"
    }
    fn set_training(&mut self, training: bool) {
        self.inner.set_training(training);
    }
    fn set_reward_range(&mut self, r_min: f64, r_max: f64) -> std::result::Result<(), StateError> {
        self.inner.set_reward_range(r_min, r_max)
    }
    fn clear_cache(&self) {
        self.inner.clear_cache()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learner::Algorithm;
    use crate::test_support::MeanTracker;

    #[test]
    fn sac4ir_settings_out_of_their_domain_are_named() {
        let named = |c: Sac4irConfig, key: &str| {
            let p = Algorithm::Sac4ir(c).problems().join("; ");
            assert!(p.contains(key), "{key}: {p}");
        };
        named(Sac4irConfig { target_entropy_scale: 1.0, ..Default::default() }, "target_entropy_scale");
        named(Sac4irConfig { alpha: 0.0, ..Default::default() }, "alpha");
        named(Sac4irConfig { attention_window: 0, ..Default::default() }, "attention_window");
        named(Sac4irConfig { n_step: 0, ..Default::default() }, "n_step");
        named(Sac4irConfig { updates_per_1k_steps: Some(-1.0), ..Default::default() }, "updates_per_1k_steps");
        assert!(Algorithm::Sac4ir(Sac4irConfig::default()).problems().is_empty());
        let err = serde_json::from_value::<Algorithm>(serde_json::json!({"kind": "sac4ir", "target_entropy": 1.0}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `target_entropy`"), "{err}");
        let err = serde_json::from_value::<Algorithm>(serde_json::json!({"kind": "sac4ir", "encoder": "gru"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `gru`"), "{err}");
    }

    #[test]
    fn sac4ir_attention_reads_only_the_real_steps_of_its_window() {
        let _torch = dsrm_nn::runtime::exclusive();
        tch::manual_seed(0);
        let vs = VarStore::new(Device::Cpu);
        let enc = AttentionEncoder::new(&(vs.root() / "encoder"), 6, 4, 3);
        let batch = |rows: &[(u32, &[u32], &[f64])], w: usize| HistoryBatch::new(rows, w, 6, Device::Cpu);
        let out = |b: &HistoryBatch| Vec::<f32>::try_from(enc.forward(b).unwrap().reshape([-1])).unwrap();
        // A wider batch than the encoder's window gives the same encoding: only the last 3 items count.
        let a = out(&batch(&[(0, &[1, 2, 3], &[0.0; 3]), (0, &[5], &[1.0])], 3));
        let b = out(&batch(&[(0, &[4, 0, 1, 2, 3], &[1.0; 5]), (0, &[5], &[0.0])], 5));
        assert_eq!(a, b);
        // An empty history encodes as 0; one item differs from another.
        let e = out(&batch(&[(0, &[], &[]), (0, &[4], &[1.0])], 3));
        assert!(e[..4].iter().all(|&x| x == 0.0) && e[4..] != a[4..]);
        // The snapshot's state: the tracker's on its own window ‖ the encoder's.
        let mut tracker = MeanTracker::new(6, 2, 2);
        tracker.set_reward_range(0.0, 1.0).unwrap();
        let inner_dim = tracker.state_dim();
        let frozen = EncodedTracker::freeze(Box::new(tracker), &enc, &vs, 6).unwrap();
        assert_eq!((frozen.window(), frozen.state_dim()), (3, inner_dim + 4));
        let s = frozen.try_states(&batch(&[(0, &[1, 2, 3], &[0.0; 3]), (0, &[5], &[1.0])], 3)).unwrap();
        let tail = Vec::<f32>::try_from(s.narrow(1, inner_dim, 4).reshape([-1])).unwrap();
        assert_eq!(tail, a);
    }
}
