//! MoFIR (Ge, Zhao, et al., WSDM 2022, "Toward Pareto Efficient Fairness-Utility Trade-off in Recommendation
//! through Reinforcement Learning"): a multi-objective actor-critic whose actor and critic both read the
//! preference vector ω over (utility, fairness) as an input, trained over sampled ω, so that one trained model
//! gives a whole fairness-utility front by sweeping ω at evaluation (the paper's conditioned network).
//!
//! ```text
//! r_t = (r_util, r_fair) = (training reward, 1{a_t long-tail})       # the vector reward
//! per collection of whole episodes:
//!   per episode: ω ~ Dirichlet(1, 1) = (u, 1 − u), u ~ U(0, 1)        # uniform on the 2-simplex
//!   a_t ~ softmax(actor(s_t ⊕ ω));  V(s_t, ω) = critic(s_t ⊕ ω) ∈ R²    # s_t = tracker(history)
//!   per objective k: A_k, R_k = GAE(γ, λ) of r_k with V_k              # the advantage vector
//! for each minibatch B (the learner's passes, or `updates_per_1k_steps`):
//!   s      = tracker(history)                                        # with gradients into the tracker
//!   Â_k    = (A_k − mean_B A_k) / std_B A_k                            # each objective on its own scale
//!   L_pi   = −mean_B( log π(a | s, ω) · ω·Â )                          # the scalarised policy gradient
//!   L_V    = mean_B Σ_k (R_k − V_k(s, ω))²                             # the vector critic
//!   loss   = L_pi + vf_coef · L_V − ent_coef · H;  Adam on actor + critic, Adam on the tracker
//! evaluate at ω: argmax or softmax of actor(s ⊕ ω) over the unblocked items
//! with `mask_shown`: the episode's shown items are blocked in collection, update and evaluation (as PPO)
//! ```
//!
//! What is chosen here, and why (the paper has no public code; `paper-protocol.md` §4 marks it [?]):
//!
//! * **Fairness reward.** 1 when the recommended item is long-tail, else 0. The long-tail split is the
//!   evaluation metrics' split (`World::popular`, i.e. `dsrm_metrics::popular_set` on distinct training pairs,
//!   the same one HRL's `GroupFacts` uses): the objective is the exposure the long-tail share measures.
//! * **Scales.** The environment's reward (watch ratio, click, rating) and the 0/1 fairness reward have
//!   different scales; each objective's advantages are normalised per minibatch before the scalarisation, so
//!   ω weighs the two objectives, not their units. The rewards themselves are left as defined.
//! * **Sampling ω.** Dirichlet(1, 1) per training episode (uniform on the simplex), from the run's ChaCha
//!   stream; the paper samples preferences per episode from the simplex as well.
//! * **Update.** A stochastic on-policy actor-critic over the catalogue (the project's A2C form, GAE(γ, λ)),
//!   with the critic's output widened to one value per objective; the paper's conditioned actor-critic acts on
//!   the same inputs. The state is the project's tracker, like every headline row.
//! * **Front.** `eval_omega` (default [0.5, 0.5]) is the policy the trainer evaluates and selects (its
//!   `metrics.json`); `eval_omegas` (default [1, 0], [0.5, 0.5], [0, 1]: three points, as many as DSRM-HRL's λ
//!   sweep) are evaluated on the test users every epoch, and the selected epoch's are the run's `front.json`.
//!
//! With `updates_per_1k_steps` (the paper study's equal compute, `crate::pace`) a collection of n steps after S
//! earns ⌊(S + n)u/1000⌋ − ⌊Su/1000⌋ gradient updates instead of `repeat_per_collect` passes.

use crate::learner::{EvalPolicy, Iteration, Learner, TrainingEnv};
use crate::losses::{finite, log_prob_and_entropy, normalise_advantages};
use crate::pace::schedule;
use crate::replay::Collection;
use crate::rollout::{logits_row, sample_index, Rollout};
use crate::scored_policy::{ScoredPolicy, Scorer};
use crate::shown::{block_shown_exactly, mask_logits};
use crate::trained_tracker::{joint_step, TrainedTracker};
use crate::{AgentError, Result, UpdateStats};
use dsrm_nn::checkpoint;
use dsrm_nn::mlp::{Activation, Mlp};
use dsrm_nn::optim::{Adam, AdamConfig};
use dsrm_nn::tch::nn::{self, VarStore};
use dsrm_nn::tch::{self, Device, Kind, Tensor};
use dsrm_sim::World;
use dsrm_state::StateTracker;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

/// MoFIR hyper-parameters. Defaults: the project's A2C (DORL's) where the paper is silent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MofirConfig {
    /// Adam learning rate of the actor and critic.
    pub lr: f64,
    /// Adam learning rate of the state tracker.
    pub tracker_lr: f64,
    /// Discount γ.
    pub gamma: f64,
    /// GAE λ.
    pub gae_lambda: f64,
    /// Weight of the vector critic's loss.
    pub vf_coef: f64,
    /// Weight of the entropy bonus (0: none).
    pub ent_coef: f64,
    /// Minibatch size of the update.
    pub batch_size: usize,
    /// Passes over each collection (unless paced).
    pub repeat_per_collect: usize,
    /// Paced updates: this many gradient updates per 1,000 environment steps (`crate::pace`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updates_per_1k_steps: Option<f64>,
    /// Hidden layers of the actor's and the critic's trunks (each its own), over state ⊕ ω.
    pub hidden: Vec<i64>,
    /// The preference (utility, fairness) the trainer evaluates and selects on: `metrics.json`.
    pub eval_omega: [f64; 2],
    /// The preferences of the run's `front.json`, one metrics entry each.
    pub eval_omegas: Vec<[f64; 2]>,
    /// Never recommend an item the episode has shown: collection, update and evaluation block them
    /// (`crate::shown`, as for PPO).
    pub mask_shown: bool,
}

impl Default for MofirConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            tracker_lr: 1e-3,
            gamma: 0.9,
            gae_lambda: 1.0,
            vf_coef: 0.5,
            ent_coef: 0.0,
            batch_size: 1024,
            repeat_per_collect: 1,
            updates_per_1k_steps: None,
            hidden: vec![64, 64],
            eval_omega: [0.5, 0.5],
            eval_omegas: vec![[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]],
            mask_shown: false,
        }
    }
}

fn on_simplex(w: &[f64; 2]) -> bool {
    w.iter().all(|x| x.is_finite() && *x >= 0.0) && (w[0] + w[1] - 1.0).abs() < 1e-6
}

impl MofirConfig {
    /// Settings out of their domain, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(self.lr > 0.0 && self.tracker_lr > 0.0) {
            p.push("mofir lr and tracker_lr > 0".into());
        }
        if !(0.0..=1.0).contains(&self.gamma) || !(0.0..=1.0).contains(&self.gae_lambda) {
            p.push("mofir gamma and gae_lambda in [0, 1]".into());
        }
        if self.batch_size == 0 || self.repeat_per_collect == 0 {
            p.push("mofir batch_size >= 1 and repeat_per_collect >= 1".into());
        }
        if self.vf_coef < 0.0 || self.ent_coef < 0.0 {
            p.push("mofir vf_coef and ent_coef >= 0".into());
        }
        if self.hidden.iter().any(|&h| h <= 0) {
            p.push(format!("mofir hidden = {:?}: every layer >= 1", self.hidden));
        }
        if !on_simplex(&self.eval_omega) {
            p.push(format!("mofir eval_omega = {:?}: two weights >= 0 summing to 1", self.eval_omega));
        }
        if self.eval_omegas.is_empty() || !self.eval_omegas.iter().all(on_simplex) {
            p.push(format!("mofir eval_omegas = {:?}: one or more [u, f] with u, f >= 0, u + f = 1", self.eval_omegas));
        }
        p
    }
}

/// The actor (logits over the catalogue) and the vector critic (one value per objective), both over s ⊕ ω.
#[derive(Debug)]
pub struct MofirNets {
    /// Every parameter of both networks.
    pub vs: VarStore,
    actor_trunk: Mlp,
    actor: nn::Linear,
    critic_trunk: Mlp,
    critic: nn::Linear,
    state_dim: i64,
    n_items: i64,
    hidden: Vec<i64>,
}

impl MofirNets {
    /// PyTorch's default initialisation (consumes libtorch's generator).
    pub fn new(state_dim: i64, n_items: i64, hidden: &[i64], device: Device) -> Result<Self> {
        if state_dim <= 0 || n_items <= 0 || hidden.iter().any(|&h| h <= 0) {
            return Err(AgentError::Config(format!(
                "mofir network sizes must be positive (state {state_dim}, items {n_items}, hidden {hidden:?})"
            )));
        }
        let vs = VarStore::new(device);
        let root = vs.root();
        let sizes = [&[state_dim + 2][..], hidden].concat();
        let last = hidden.last().copied().unwrap_or(state_dim + 2);
        let actor_trunk = Mlp::hidden_stack(&(&root / "actor_trunk"), &sizes, Activation::Relu)?;
        let actor = nn::linear(&root / "actor", last, n_items, Default::default());
        let critic_trunk = Mlp::hidden_stack(&(&root / "critic_trunk"), &sizes, Activation::Relu)?;
        let critic = nn::linear(&root / "critic", last, 2, Default::default());
        Ok(Self { vs, actor_trunk, actor, critic_trunk, critic, state_dim, n_items, hidden: hidden.to_vec() })
    }

    /// An independent copy with the same weights.
    pub fn try_clone(&self) -> Result<Self> {
        let mut copy = Self::new(self.state_dim, self.n_items, &self.hidden, self.vs.device())?;
        copy.vs.copy(&self.vs)?;
        Ok(copy)
    }

    /// `[B, n_items]` logits of π(·|s, ω) for `[B, state_dim]` states and `[B, 2]` preferences.
    pub fn logits(&self, states: &Tensor, omega: &Tensor) -> Result<Tensor> {
        let x = Tensor::f_cat(&[states, omega], 1)?;
        Ok(self.actor_trunk.try_forward(&x)?.f_linear(&self.actor.ws, self.actor.bs.as_ref())?)
    }

    /// `[B, 2]` values (utility, fairness) of V(s, ω).
    pub fn values(&self, states: &Tensor, omega: &Tensor) -> Result<Tensor> {
        let x = Tensor::f_cat(&[states, omega], 1)?;
        Ok(self.critic_trunk.try_forward(&x)?.f_linear(&self.critic.ws, self.critic.bs.as_ref())?)
    }
}

/// A collection with its vector reward: the utility half lives in `rollout` (its rewards, values, GAE), the
/// fairness half in `fair`, a copy with the fairness rewards and values.
struct VectorRollout {
    rollout: Rollout,
    fair: Rollout,
    /// Per episode: its ω.
    omegas: Vec<[f64; 2]>,
}

/// A MoFIR agent.
#[derive(Debug)]
pub struct Mofir {
    /// Hyper-parameters.
    pub cfg: MofirConfig,
    /// Actor and vector critic.
    pub nets: MofirNets,
    /// Their optimiser (the tracker has its own).
    pub adam: Adam,
    /// Per catalogue item: long-tail (not in the metrics' popular set).
    long_tail: Arc<Vec<bool>>,
}

impl Mofir {
    /// A fresh agent for states of `state_dim` in `world` (seed libtorch first).
    pub fn new(cfg: MofirConfig, state_dim: i64, world: &World, device: Device) -> Result<Self> {
        let pace = crate::pace::pace_problems(cfg.updates_per_1k_steps);
        if let Some(problem) = cfg.problems().into_iter().chain(pace).next() {
            return Err(AgentError::Config(problem));
        }
        let n_items = world.spec.n_items() as i64;
        let nets = MofirNets::new(state_dim, n_items, &cfg.hidden, device)?;
        let adam = Adam::new(&nets.vs, AdamConfig { lr: cfg.lr, ..Default::default() });
        let long_tail = Arc::new(world.popular().iter().map(|&p| !p).collect());
        Ok(Self { cfg, nets, adam, long_tail })
    }

    /// Collects whole episodes, each under its own ω ~ Dirichlet(1, 1), with both GAEs computed.
    fn collect(&self, env: &TrainingEnv, tracker: &TrainedTracker, rng: &mut ChaCha8Rng) -> Result<VectorRollout> {
        let n = env.episodes.max(1);
        let omegas: Vec<[f64; 2]> = (0..n)
            .map(|_| {
                let u = rng.gen::<f64>();
                [u, 1.0 - u]
            })
            .collect();
        let n_items = self.nets.n_items as usize;
        let device = self.nets.vs.device();
        let mut values: Vec<Vec<[f32; 2]>> = vec![Vec::new(); n];
        let mut probs: Vec<f32> = Vec::new();
        let collection = Collection::new(env, tracker.tracker.as_ref(), device).masking_shown(self.cfg.mask_shown);
        let rollout = collection.run(rng, |rows, rng| {
            let omega = omega_tensor(rows.episodes.iter().map(|&e| omegas[e]), device)?;
            let (p, v, logits) = tch::no_grad(|| -> Result<(Tensor, Tensor, Tensor)> {
                let logits = self.nets.logits(&rows.states, &omega)?;
                let p = logits.f_softmax(-1, Kind::Float)?.f_to_device(Device::Cpu)?.f_contiguous()?;
                let v = self.nets.values(&rows.states, &omega)?.f_to_device(Device::Cpu)?.f_contiguous()?;
                Ok((p, v, logits))
            })?;
            let n_rows = rows.len();
            probs.resize(n_rows * n_items, 0.0);
            p.f_copy_data(&mut probs, n_rows * n_items)?;
            let mut v2 = vec![0f32; n_rows * 2];
            v.f_copy_data(&mut v2, n_rows * 2)?;
            rows.episodes
                .iter()
                .enumerate()
                .map(|(k, &e)| {
                    values[e].push([v2[2 * k], v2[2 * k + 1]]);
                    let row = &mut probs[k * n_items..(k + 1) * n_items];
                    if self.cfg.mask_shown {
                        block_shown_exactly(row, rows.shown[k], || logits_row(&logits, k))?;
                    }
                    Ok(sample_index(row, rng) as u32)
                })
                .collect()
        })?;
        let mut rollout = rollout;
        let flat: Vec<[f32; 2]> = values.concat();
        rollout.values = flat.iter().map(|v| v[0]).collect();
        rollout.log_probs = vec![0.0; rollout.len()];
        let mut fair = rollout.clone();
        fair.rewards = rollout.actions.iter().map(|&a| f64::from(u8::from(self.long_tail[a as usize]))).collect();
        fair.values = flat.iter().map(|v| v[1]).collect();
        rollout.compute_gae(self.cfg.gamma, self.cfg.gae_lambda);
        fair.compute_gae(self.cfg.gamma, self.cfg.gae_lambda);
        Ok(VectorRollout { rollout, fair, omegas })
    }

    /// The update on one collection (both advantages computed), training the tracker jointly.
    fn update(
        &mut self,
        data: &VectorRollout,
        tracker: &mut TrainedTracker,
        rng: &mut ChaCha8Rng,
        steps_before: u64,
    ) -> Result<UpdateStats> {
        let (r, f) = (&data.rollout, &data.fair);
        let device = self.nets.vs.device();
        let (window, n_items) = (tracker.tracker.window(), self.nets.n_items as usize);
        let mut stats = UpdateStats::default();
        let (pace, size, repeat) = (self.cfg.updates_per_1k_steps, self.cfg.batch_size, self.cfg.repeat_per_collect);
        for steps in schedule(pace, steps_before, r.len(), size, repeat, rng) {
            let pick = |v: &[f32]| -> Result<Tensor> {
                let x: Vec<f32> = steps.iter().map(|&s| v[s]).collect();
                Ok(Tensor::from_slice(&x).f_to_device(device)?)
            };
            let actions: Vec<i64> = steps.iter().map(|&s| i64::from(r.actions[s])).collect();
            let actions = Tensor::from_slice(&actions).f_to_device(device)?.f_unsqueeze(1)?;
            let omega = omega_tensor(steps.iter().map(|&s| data.omegas[r.episode_of[s] as usize]), device)?;
            let adv = Tensor::f_stack(
                &[normalise_advantages(&pick(&r.advantages)?)?, normalise_advantages(&pick(&f.advantages)?)?],
                1,
            )?;
            let returns = Tensor::f_stack(&[pick(&r.returns)?, pick(&f.returns)?], 1)?;
            let scalar_adv = adv.f_mul(&omega)?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?;

            let states = tracker.states(&r.history_batch(&steps, window, n_items, device))?;
            let logits = mask_logits(self.nets.logits(&states, &omega)?, self.cfg.mask_shown, r, &steps)?;
            let values = self.nets.values(&states, &omega)?;
            let (log_prob, entropy) = log_prob_and_entropy(&logits, &actions, self.cfg.ent_coef != 0.0)?;
            let actor_loss = log_prob.f_mul(&scalar_adv)?.f_mean(Kind::Float)?.f_neg()?;
            let vf_loss = returns
                .f_sub(&values)?
                .f_square()?
                .f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?
                .f_mean(Kind::Float)?;
            let mut loss = actor_loss.f_add(&vf_loss.f_mul_scalar(self.cfg.vf_coef)?)?;
            if self.cfg.ent_coef != 0.0 {
                loss = loss.f_sub(&entropy.f_mul_scalar(self.cfg.ent_coef)?)?;
            }
            let loss_value = finite("mofir", &loss, stats.grad_steps as u64)?;
            joint_step(&loss, &mut self.adam, tracker)?;
            let mut extra = std::collections::BTreeMap::new();
            let long_tail = steps.iter().filter(|&&s| self.long_tail[r.actions[s] as usize]).count();
            extra.insert("long_tail_share".to_string(), long_tail as f64 / steps.len().max(1) as f64);
            stats.merge(&UpdateStats {
                loss: loss_value,
                actor_loss: actor_loss.f_double_value(&[])?,
                vf_loss: vf_loss.f_double_value(&[])?,
                entropy: entropy.f_double_value(&[])?,
                grad_steps: 1,
                extra,
                ..Default::default()
            });
        }
        Ok(stats)
    }

    /// A frozen copy acting at preference `omega`.
    fn snapshot_at(
        &self,
        omega: [f64; 2],
        tracker: Box<dyn StateTracker>,
        reward_range: (f64, f64),
    ) -> Result<Box<dyn EvalPolicy>> {
        if tracker.state_dim() != self.nets.state_dim {
            return Err(AgentError::Config(format!(
                "tracker states have {} dimensions but mofir reads {}",
                tracker.state_dim(),
                self.nets.state_dim
            )));
        }
        let scorer = OmegaScorer { nets: self.nets.try_clone()?, omega };
        let n_items = self.nets.n_items as usize;
        let policy = ScoredPolicy::new("mofir", tracker, Box::new(scorer), n_items, reward_range)?;
        Ok(Box::new(policy.masking_shown(self.cfg.mask_shown)))
    }
}

/// `[B, 2]` preferences.
fn omega_tensor(rows: impl Iterator<Item = [f64; 2]>, device: Device) -> Result<Tensor> {
    let flat: Vec<f32> = rows.flat_map(|w| [w[0] as f32, w[1] as f32]).collect();
    let n = flat.len() as i64 / 2;
    Ok(Tensor::from_slice(&flat).f_reshape([n, 2])?.f_to_device(device)?)
}

impl Learner for Mofir {
    fn name(&self) -> &'static str {
        "mofir"
    }

    fn iterate(&mut self, env: &TrainingEnv, tracker: &mut TrainedTracker, rng: &mut ChaCha8Rng) -> Result<Iteration> {
        let t = Instant::now();
        let data = self.collect(env, tracker, rng)?;
        let collect_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let stats = self.update(&data, tracker, rng, env.steps_before)?;
        Ok(Iteration::of(&data.rollout, stats, collect_s, t.elapsed().as_secs_f64()))
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut t = checkpoint::named("mofir", &self.nets.vs);
        t.extend(self.adam.state("mofir_adam"));
        t
    }

    fn restore(&mut self, tensors: &[(String, Tensor)]) -> Result<()> {
        checkpoint::restore("mofir", &mut self.nets.vs, tensors)?;
        self.adam.restore("mofir_adam", tensors)?;
        Ok(())
    }

    fn snapshot(&self, tracker: Box<dyn StateTracker>, reward_range: (f64, f64)) -> Result<Box<dyn EvalPolicy>> {
        self.snapshot_at(self.cfg.eval_omega, tracker, reward_range)
    }

    fn front_points(&self) -> Vec<Vec<f64>> {
        self.cfg.eval_omegas.iter().map(|w| w.to_vec()).collect()
    }

    fn snapshot_front(
        &self,
        point: usize,
        tracker: Box<dyn StateTracker>,
        reward_range: (f64, f64),
    ) -> Result<Box<dyn EvalPolicy>> {
        let omega = *self.cfg.eval_omegas.get(point).ok_or_else(|| {
            AgentError::Config(format!(
                "mofir eval_omegas has {} points, not {}",
                self.cfg.eval_omegas.len(),
                point + 1
            ))
        })?;
        self.snapshot_at(omega, tracker, reward_range)
    }
}

/// The frozen actor at a fixed ω.
struct OmegaScorer {
    nets: MofirNets,
    omega: [f64; 2],
}

impl Scorer for OmegaScorer {
    fn scores(&self, states: &Tensor) -> Result<Tensor> {
        let rows = states.size()[0] as usize;
        let omega = omega_tensor(std::iter::repeat_n(self.omega, rows), states.device())?;
        self.nets.logits(states, &omega)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learner::Algorithm;

    #[test]
    fn settings_out_of_their_domain_are_named() {
        let named = |c: MofirConfig, key: &str| {
            let p = Algorithm::Mofir(c.clone()).problems().join("; ");
            assert!(p.contains(key), "{key}: {p}");
            let world = dsrm_sim::test_support::tiny_world();
            let err = Mofir::new(c, 4, world, Device::Cpu).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        };
        named(MofirConfig { eval_omega: [0.7, 0.7], ..Default::default() }, "eval_omega");
        named(MofirConfig { eval_omegas: vec![], ..Default::default() }, "eval_omegas");
        named(MofirConfig { eval_omegas: vec![[1.0, 0.0], [-0.5, 1.5]], ..Default::default() }, "eval_omegas");
        named(MofirConfig { gamma: 1.5, ..Default::default() }, "gamma");
        named(MofirConfig { batch_size: 0, ..Default::default() }, "batch_size");
        named(MofirConfig { hidden: vec![0], ..Default::default() }, "hidden");
        named(MofirConfig { updates_per_1k_steps: Some(0.0), ..Default::default() }, "updates_per_1k_steps");
        assert!(Algorithm::Mofir(MofirConfig::default()).problems().is_empty());
    }

    #[test]
    fn the_critic_has_one_value_per_objective_and_omega_changes_the_policy() {
        let _torch = dsrm_nn::runtime::exclusive();
        dsrm_nn::runtime::seed(0);
        let nets = MofirNets::new(5, 7, &[8], Device::Cpu).unwrap();
        let s = Tensor::randn([3, 5], (Kind::Float, Device::Cpu));
        let a = omega_tensor(std::iter::repeat_n([1.0, 0.0], 3), Device::Cpu).unwrap();
        let b = omega_tensor(std::iter::repeat_n([0.0, 1.0], 3), Device::Cpu).unwrap();
        assert_eq!(nets.values(&s, &a).unwrap().size(), [3, 2]);
        assert_eq!(nets.logits(&s, &a).unwrap().size(), [3, 7]);
        let diff = nets.logits(&s, &a).unwrap().f_sub(&nets.logits(&s, &b).unwrap()).unwrap();
        assert!(diff.abs().max().double_value(&[]) > 0.0, "ω is an input of the actor");
    }
}
