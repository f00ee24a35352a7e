//! DSRM-HRL's hierarchical fairness agent (`dsrm-hrl.md` §4.4), after HER4IF's hierarchical PPO with the
//! decision interval of HRL4PFG / LHRL. Both levels and both value heads read the tracker's state ŝ_t; with
//! the DSRM stage the tracker is the frozen tracker + denoiser, so ŝ_t is the purified state.
//!
//! ```text
//! every c steps (t = 0, c, 2c, ...):                      # high level π_H(g | ŝ_t, upp_u, LT_t)
//!   x_H = [ŝ_t, upp_u, running long-tail share of the episode]
//!   (a) weights:      z ~ N(softmax(MLP_H(x_H)), σ²),  g = ReLU(z) = (g_pop, g_lt)
//!   (b) target ratio: z ~ N(MLP_H(x_H), σ²),           ρ* = sigmoid(z)      (or ρ* fixed: nothing to learn)
//! every step:                                             # low level π_L(a | ŝ_t, g)
//!   p̃ = softmax(MLP_L([ŝ_t, goal vector]))               # goal vector (g_pop, g_lt), or (1 − ρ*, ρ*)
//!   (mask shown items in NX modes and renormalise)
//!   (a) p_i ∝ p̃_i · (g_pop if i is popular else g_lt)    # HER4IF's group reweighting
//!   (b) m = Σ_{i long tail} p̃_i, g_lt = ρ*/m, g_pop = (1 − ρ*)/(1 − m)   → exactly ρ* on the long tail
//!   a_t ~ p
//! rewards: r_L,t = r_t;  R_H = Σ_{k<c} r_{t+k} + λ_f · LT_seg / (1 + upp_u)   (option: λ_f · (−ΔGini))
//! update (per collection of whole episodes):
//!   low level:  GAE(γ, λ) over steps with V_L;       PPO clip (or A2C) on log p(a_t), entropy of p
//!   high level: GAE(γ^c, λ) over segments with V_H;  PPO clip (or A2C) on log N(z; μ, σ²), Gaussian entropy
//!   one critic MLP with two value heads (V_H, V_L) on x_H; actors lr 8e-5, critic lr 1e-3, grad clip 10
//! ```
//!
//! The popular / long-tail split is the metrics' split (`dsrm_metrics::popular_set` on the world's distinct
//! training pairs), and upp_u is the share of user u's distinct training items that are popular.
//!
//! Decoupled retuning (`dsrm retune`): `init_from` starts from a finished run's networks and
//! `freeze_low_level` trains only the high level (and V_H) against the frozen low level and tracker.

use crate::a2c::UpdateStats;
use crate::actor_critic::{joint_step, TrainedTracker};
use crate::learner::{EvalPolicy, Iteration, Learner, TrainingEnv};
use crate::rollout::{minibatches, Rollout};
use crate::{AgentError, Result};
use dsrm_metrics::{gini, popular_set, DEFAULT_POPULAR_FRACTION};
use dsrm_nn::checkpoint;
use dsrm_nn::mlp::{Activation, Mlp};
use dsrm_nn::optim::{Adam, AdamConfig};
use dsrm_nn::tch::nn::{self, Module, VarStore};
use dsrm_nn::tch::{self, Device, Kind, Tensor};
use dsrm_policy::select::{select, uniform_allowed};
use dsrm_policy::{ItemMask, Observation, Policy, PolicyRng, Selection};
use dsrm_sim::{EnvSpec, RewardModel, VecEnv, World};
use dsrm_state::{HistoryBatch, StateTracker};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What the high level emits (§4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GoalType {
    /// (a) Group exposure weights (g_pop, g_lt) ≥ 0 (HER4IF).
    #[default]
    Weights,
    /// (b) A target long-tail ratio ρ* ∈ [0, 1], mapped exactly onto group weights.
    TargetRatio,
}

/// The fairness term of the high-level reward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FairnessTerm {
    /// LT_seg / (1 + upp_u): the segment's long-tail share, discounted for users who like popular items.
    #[default]
    LongTail,
    /// −ΔGini of the episode's cumulative exposure over the segment (whole catalogue).
    DeltaGini,
}

/// How both levels are updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Updater {
    /// Clipped surrogate (the default; §4.4 table).
    #[default]
    Ppo,
    /// Plain advantage actor-critic, the cheap alternative (use with [`HrlConfig::a2c`]'s settings).
    A2c,
}

/// HRL hyper-parameters. Defaults: the §4.4 table (HER4IF's settings with GAE and clip 0.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HrlConfig {
    /// Goal type: `weights` (a) or `target-ratio` (b).
    pub goal: GoalType,
    /// Decision interval c of the high level (HER4IF: 1; sweep {1, 3, 5}).
    pub interval: usize,
    /// λ_f, the weight of the fairness term in R_H (HER4IF: 0.1; the Pareto sweep varies it).
    pub lambda_f: f64,
    /// The fairness term of R_H.
    pub fairness: FairnessTerm,
    /// Goal type (b) with ρ* fixed: the high level is not learned (a Pareto point by construction).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_ratio: Option<f64>,
    /// Initial standard deviation of the goal Gaussian (learnable). Default 0.1 for weights (HER4IF), 0.5 on
    /// the logit scale for a target ratio (0.1 there would barely explore).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goal_std: Option<f64>,
    /// PPO or A2C at both levels.
    pub updater: Updater,
    /// Discount γ (segments use γ^c).
    pub gamma: f64,
    /// GAE λ at both levels.
    pub gae_lambda: f64,
    /// PPO clip ε.
    pub clip: f64,
    /// Passes over each collection.
    pub repeat_per_collect: usize,
    /// Minibatch size (steps for the low level, segments for the high level).
    pub batch_size: usize,
    /// Entropy bonus coefficient (applied to H_H and H_L).
    pub ent_coef: f64,
    /// Weight of the value losses.
    pub vf_coef: f64,
    /// Adam learning rate of both actors.
    pub actor_lr: f64,
    /// Adam learning rate of the critic.
    pub critic_lr: f64,
    /// Adam learning rate of the state tracker (a frozen DSRM tracker has nothing to train).
    pub tracker_lr: f64,
    /// Gradient-norm clip of each network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_grad_norm: Option<f64>,
    /// Normalise advantages within each minibatch.
    pub norm_advantages: bool,
    /// Hidden layers of the high actor, the low actor and the critic (HER4IF: [256, 64]).
    pub hidden: Vec<i64>,
    /// Train only the high level (and V_H); the low level, V_L and the tracker stay as they are.
    pub freeze_low_level: bool,
    /// A finished HRL run's `checkpoint.bin` whose networks initialise this one (no optimiser state).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
}

impl Default for HrlConfig {
    fn default() -> Self {
        Self {
            goal: GoalType::Weights,
            interval: 1,
            lambda_f: 0.1,
            fairness: FairnessTerm::LongTail,
            fixed_ratio: None,
            goal_std: None,
            updater: Updater::Ppo,
            gamma: 0.9,
            gae_lambda: 0.95,
            clip: 0.2,
            repeat_per_collect: 4,
            batch_size: 128,
            ent_coef: 5e-4,
            vf_coef: 1.0,
            actor_lr: 8e-5,
            critic_lr: 1e-3,
            tracker_lr: 1e-3,
            max_grad_norm: Some(10.0),
            norm_advantages: true,
            hidden: vec![256, 64],
            freeze_low_level: false,
            init_from: None,
        }
    }
}

impl HrlConfig {
    /// The A2C alternative at both levels: DORL's A2C settings (lr 1e-3, hidden [64, 64], GAE λ 1.0, value
    /// coefficient 0.5, one pass, batch 1024, no clip).
    pub fn a2c() -> Self {
        Self {
            updater: Updater::A2c,
            gae_lambda: 1.0,
            repeat_per_collect: 1,
            batch_size: 1024,
            ent_coef: 0.0,
            vf_coef: 0.5,
            actor_lr: 1e-3,
            critic_lr: 1e-3,
            max_grad_norm: None,
            norm_advantages: false,
            hidden: vec![64, 64],
            ..Self::default()
        }
    }

    fn goal_dim(&self) -> i64 {
        match self.goal {
            GoalType::Weights => 2,
            GoalType::TargetRatio => 1,
        }
    }

    fn initial_std(&self) -> f64 {
        self.goal_std.unwrap_or(match self.goal {
            GoalType::Weights => 0.1,
            GoalType::TargetRatio => 0.5,
        })
    }

    /// Settings out of their domain, as readable phrases.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let mut need = |ok: bool, what: &str| {
            if !ok {
                p.push(format!("hrl {what}"));
            }
        };
        need(self.interval >= 1, "interval >= 1");
        need(self.batch_size >= 1 && self.repeat_per_collect >= 1, "batch_size >= 1 and repeat_per_collect >= 1");
        need(
            (0.0..=1.0).contains(&self.gamma) && (0.0..=1.0).contains(&self.gae_lambda),
            "gamma, gae_lambda in [0, 1]",
        );
        need(self.clip > 0.0, "clip > 0");
        need(self.lambda_f.is_finite(), "lambda_f finite");
        need(self.initial_std() > 0.0, "goal_std > 0");
        need(self.hidden.iter().all(|&h| h > 0), "hidden sizes > 0");
        if let Some(r) = self.fixed_ratio {
            need((0.0..=1.0).contains(&r), "fixed_ratio in [0, 1]");
            need(self.goal == GoalType::TargetRatio, "fixed_ratio needs goal = \"target-ratio\"");
        }
        p
    }
}

/// Weights below this count as this (so log-probabilities stay finite and sampling and updates agree).
const WEIGHT_FLOOR: f64 = 1e-8;
/// A long-tail mass this close to 0 or 1 cannot be moved to a target ratio (§4.4 (b)).
const MASS_EPS: f64 = 1e-9;

/// The group weights (w_pop, w_lt) a goal puts on the low level's distribution. `goal` is the goal vector:
/// (g_pop, g_lt) after ReLU for weights, (1 − ρ*, ρ*) for a target ratio; `lt_mass` is m, the long-tail
/// probability mass of p̃ over the allowed items (used by the target ratio only).
///
/// For a target ratio, m·ρ*/m + (1 − m)(1 − ρ*)/(1 − m) = 1, so the reweighted distribution is already
/// normalised and puts exactly ρ* on the long tail; when m is 0 or 1 the target cannot be met and the
/// distribution is left unchanged. All-zero weights (both ReLUs at 0) also leave it unchanged.
pub fn group_weights(goal_type: GoalType, goal: [f32; 2], lt_mass: f64) -> (f64, f64) {
    let (w_pop, w_lt) = match goal_type {
        GoalType::Weights => {
            let (gp, gl) = (f64::from(goal[0]).max(0.0), f64::from(goal[1]).max(0.0));
            if gp + gl <= 0.0 {
                (1.0, 1.0)
            } else {
                (gp, gl)
            }
        }
        GoalType::TargetRatio => {
            let rho = f64::from(goal[1]).clamp(0.0, 1.0);
            if lt_mass <= MASS_EPS || lt_mass >= 1.0 - MASS_EPS {
                (1.0, 1.0)
            } else {
                ((1.0 - rho) / (1.0 - lt_mass), rho / lt_mass)
            }
        }
    };
    (w_pop.max(WEIGHT_FLOOR), w_lt.max(WEIGHT_FLOOR))
}

/// The goal vector the low level reads for a raw high-level action `z` (length 1 or 2).
fn goal_vector(goal_type: GoalType, z: &[f64]) -> [f32; 2] {
    match goal_type {
        GoalType::Weights => [z[0].max(0.0) as f32, z[1].max(0.0) as f32],
        GoalType::TargetRatio => ratio_vector(1.0 / (1.0 + (-z[0]).exp())),
    }
}

fn ratio_vector(rho: f64) -> [f32; 2] {
    [(1.0 - rho) as f32, rho as f32]
}

/// One standard normal draw (Box-Muller) from the run's generator.
fn standard_normal<R: Rng>(rng: &mut R) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_7;

/// The three networks: high actor, low actor, two-headed critic, each with its own var store (so retuning
/// can train one and freeze the others, and each level has its own learning rate).
#[derive(Debug)]
pub struct HrlNets {
    /// π_H: [ŝ, upp, LT] → goal mean; plus `log_std`.
    pub high_vs: VarStore,
    /// π_L: [ŝ, goal vector] → logits over the catalogue.
    pub low_vs: VarStore,
    /// [ŝ, upp, LT] → (V_H, V_L).
    pub critic_vs: VarStore,
    high: Mlp,
    log_std: Tensor,
    low: Mlp,
    critic: Mlp,
    goal: GoalType,
    state_dim: i64,
    n_items: i64,
    cfg_hidden: Vec<i64>,
    init_std: f64,
}

impl HrlNets {
    /// Fresh networks (PyTorch's default initialisation; seed libtorch first).
    pub fn new(cfg: &HrlConfig, state_dim: i64, n_items: i64, device: Device) -> Result<Self> {
        if state_dim <= 0 || n_items <= 0 || cfg.hidden.iter().any(|&h| h <= 0) {
            return Err(AgentError::Config(format!(
                "network sizes must be positive (state {state_dim}, items {n_items}, hidden {:?})",
                cfg.hidden
            )));
        }
        let sizes = |input: i64, output: i64| [&[input][..], &cfg.hidden, &[output]].concat();
        let (high_vs, low_vs, critic_vs) = (VarStore::new(device), VarStore::new(device), VarStore::new(device));
        let high = Mlp::new(&(high_vs.root() / "high"), &sizes(state_dim + 2, cfg.goal_dim()), Activation::Relu);
        let log_std = high_vs.root().var("log_std", &[cfg.goal_dim()], nn::Init::Const(cfg.initial_std().ln()));
        let low = Mlp::new(&(low_vs.root() / "low"), &sizes(state_dim + 2, n_items), Activation::Relu);
        let critic = Mlp::new(&(critic_vs.root() / "critic"), &sizes(state_dim + 2, 2), Activation::Relu);
        Ok(Self {
            high_vs,
            low_vs,
            critic_vs,
            high,
            log_std,
            low,
            critic,
            goal: cfg.goal,
            state_dim,
            n_items,
            cfg_hidden: cfg.hidden.clone(),
            init_std: cfg.initial_std(),
        })
    }

    /// An independent copy with the same weights.
    pub fn try_clone(&self) -> Result<Self> {
        let cfg = HrlConfig {
            goal: self.goal,
            hidden: self.cfg_hidden.clone(),
            goal_std: Some(self.init_std),
            ..Default::default()
        };
        let mut copy = Self::new(&cfg, self.state_dim, self.n_items, self.high_vs.device())?;
        copy.high_vs.copy(&self.high_vs)?;
        copy.low_vs.copy(&self.low_vs)?;
        copy.critic_vs.copy(&self.critic_vs)?;
        Ok(copy)
    }

    /// `[B, goal_dim]` mean of the goal Gaussian (softmax for weights, the logit for a ratio).
    fn goal_mean(&self, x_high: &Tensor) -> Result<Tensor> {
        let out = self.high.forward(x_high);
        Ok(match self.goal {
            GoalType::Weights => out.f_softmax(-1, Kind::Float)?,
            GoalType::TargetRatio => out,
        })
    }

    /// log N(z; μ, σ²) summed over the goal dimensions, `[B]`, and the Gaussian's entropy (a scalar).
    fn goal_log_prob(&self, x_high: &Tensor, z: &Tensor) -> Result<(Tensor, Tensor)> {
        let mean = self.goal_mean(x_high)?;
        let var = self.log_std.f_mul_scalar(2.0)?.f_exp()?;
        let log_prob = z
            .f_sub(&mean)?
            .f_square()?
            .f_div(&var.f_mul_scalar(2.0)?)?
            .f_neg()?
            .f_sub(&self.log_std)?
            .f_sub_scalar(LN_SQRT_2PI)?
            .f_sum_dim_intlist([-1i64].as_slice(), false, Kind::Float)?;
        let entropy = self.log_std.f_add_scalar(0.5 + LN_SQRT_2PI)?.f_sum(Kind::Float)?;
        Ok((log_prob, entropy))
    }

    /// `[B]` V_H and `[B]` V_L.
    fn values(&self, x_high: &Tensor) -> Result<(Tensor, Tensor)> {
        let v = self.critic.forward(x_high);
        Ok((v.f_select(1, 0)?, v.f_select(1, 1)?))
    }

    /// `[B, n_items]` logits of the low level for `[B, state_dim]` states and `[B, 2]` goal vectors.
    fn low_logits(&self, states: &Tensor, goals: &Tensor) -> Result<Tensor> {
        Ok(self.low.forward(&Tensor::f_cat(&[states, goals], 1)?))
    }

    fn std(&self) -> Result<Vec<f64>> {
        Ok(Vec::<f64>::try_from(self.log_std.f_exp()?.f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?)?)
    }
}

/// What every decision needs about users and items: the popular split and upp_u.
#[derive(Debug, Clone)]
pub struct GroupFacts {
    /// Per item: in the popular set P (top ⌈0.2 n⌉ by distinct training pairs).
    pub popular: Vec<bool>,
    /// Per environment user: share of their distinct training-log items that are popular (0 without any).
    pub upp: Vec<f32>,
}

impl GroupFacts {
    /// The split of the fairness metrics and each user's popularity preference, from the training log.
    pub fn of(world: &World) -> Self {
        let n_items = world.spec.n_items();
        let n_users = world.spec.n_users();
        let popular = popular_set(&world.pair_counts, DEFAULT_POPULAR_FRACTION);
        let mut pairs: Vec<(u32, u32)> = world
            .train
            .user
            .iter()
            .zip(&world.train.item)
            .filter(|&(&u, &i)| (u as usize) < n_users && (i as usize) < n_items)
            .map(|(&u, &i)| (u, i))
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        let (mut total, mut pop) = (vec![0u32; n_users], vec![0u32; n_users]);
        for (u, i) in pairs {
            total[u as usize] += 1;
            pop[u as usize] += u32::from(popular[i as usize]);
        }
        let upp = total.iter().zip(&pop).map(|(&t, &p)| if t == 0 { 0.0 } else { p as f32 / t as f32 }).collect();
        Self { popular, upp }
    }

    fn long_tail_share(&self, items: &[u32]) -> f32 {
        if items.is_empty() {
            return 0.0;
        }
        items.iter().filter(|&&i| !self.popular[i as usize]).count() as f32 / items.len() as f32
    }

    /// x_H's extra inputs: (upp_u, running LT share of the episode so far).
    fn aux(&self, user: u32, items: &[u32]) -> [f32; 2] {
        [self.upp.get(user as usize).copied().unwrap_or(0.0), self.long_tail_share(items)]
    }
}

/// One collection, laid out for both levels: `low` holds steps (V_L, log π_L, GAE(γ, λ)); `high` holds
/// segments as its steps (R_H as reward, V_H, log π_H, GAE(γ^c, λ)).
#[derive(Debug, Clone, Default)]
pub struct HierRollout {
    /// Per step.
    pub low: Rollout,
    /// Per segment (its `actions` are unused).
    pub high: Rollout,
    /// Per step: (upp_u, running LT share) at that step.
    pub aux: Vec<[f32; 2]>,
    /// Per step: its segment.
    pub segment_of: Vec<usize>,
    /// Per segment: its first step.
    pub segment_start: Vec<usize>,
    /// Per segment: the raw high-level action z (goal_dim values).
    pub raw_goal: Vec<Vec<f32>>,
    /// Per segment: the goal vector the low level reads.
    pub goal: Vec<[f32; 2]>,
    /// Long-tail steps of the collection (its pooled LT share numerator).
    pub long_tail_steps: usize,
}

struct OpenSegment {
    start: usize,
    raw: Vec<f32>,
    goal: [f32; 2],
    log_prob: f32,
    value: f32,
    reward: f64,
    long_tail: usize,
}

/// A closed segment of one episode.
struct Segment {
    start: usize,
    raw: Vec<f32>,
    goal: [f32; 2],
    log_prob: f32,
    value: f32,
    reward_h: f64,
}

/// The hierarchical agent.
#[derive(Debug)]
pub struct Hrl {
    /// Hyper-parameters.
    pub cfg: HrlConfig,
    /// The networks.
    pub nets: HrlNets,
    high_adam: Adam,
    low_adam: Adam,
    critic_adam: Adam,
    facts: Arc<GroupFacts>,
    /// `[n_items]` float, 1 for popular items (for the reweighting inside the update).
    popular_f: Tensor,
}

impl Hrl {
    /// A fresh agent for states of `state_dim` in `world` (seed libtorch first). With `init_from`, the
    /// networks start from that checkpoint's.
    pub fn new(cfg: HrlConfig, state_dim: i64, world: &World, device: Device) -> Result<Self> {
        let problems = cfg.problems();
        if !problems.is_empty() {
            return Err(AgentError::Config(problems.join("; ")));
        }
        let facts = Arc::new(GroupFacts::of(world));
        let mut nets = HrlNets::new(&cfg, state_dim, world.spec.n_items() as i64, device)?;
        if let Some(path) = &cfg.init_from {
            let (tensors, _) = checkpoint::load(path)?;
            if !tensors.iter().any(|(n, _)| n.starts_with("hrl_low/")) {
                return Err(AgentError::Config(format!("{} is not the checkpoint of an HRL run", path.display())));
            }
            checkpoint::restore("hrl_low", &mut nets.low_vs, &tensors)?;
            checkpoint::restore("hrl_critic", &mut nets.critic_vs, &tensors)?;
            if cfg.fixed_ratio.is_none() {
                checkpoint::restore("hrl_high", &mut nets.high_vs, &tensors)?;
            }
        }
        let adam = |vs: &VarStore, lr: f64| {
            Adam::new(vs, AdamConfig { lr, max_grad_norm: cfg.max_grad_norm, ..Default::default() })
        };
        let high_adam = adam(&nets.high_vs, cfg.actor_lr);
        let low_adam = adam(&nets.low_vs, cfg.actor_lr);
        let critic_adam = adam(&nets.critic_vs, cfg.critic_lr);
        let popular: Vec<f32> = facts.popular.iter().map(|&p| f32::from(u8::from(p))).collect();
        let popular_f = Tensor::from_slice(&popular).f_to_device(device)?;
        Ok(Self { cfg, nets, high_adam, low_adam, critic_adam, facts, popular_f })
    }

    /// Plays `episodes` whole episodes in the training environment with both levels (FB: nothing masked).
    pub fn collect(
        &self,
        spec: &EnvSpec,
        reward_model: &dyn RewardModel,
        tracker: &dyn StateTracker,
        episodes: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<HierRollout> {
        let (n, n_items, c) = (episodes.max(1), spec.n_items(), self.cfg.interval);
        if n_items as i64 != self.nets.n_items || spec.n_users() == 0 {
            return Err(AgentError::Config(format!(
                "the agent has {} actions but the environment has {n_items} items and {} users",
                self.nets.n_items,
                spec.n_users()
            )));
        }
        let device = self.nets.low_vs.device();
        let std = self.nets.std()?;
        let mut env = VecEnv::new(spec, n, spec.max_turn);
        let users: Vec<u32> = (0..n).map(|i| env.reset_random(i, rng)).collect();
        let mut rewards: Vec<Vec<f64>> = vec![Vec::new(); n];
        let mut values_l: Vec<Vec<f32>> = vec![Vec::new(); n];
        let mut log_probs_l: Vec<Vec<f32>> = vec![Vec::new(); n];
        let mut aux: Vec<Vec<[f32; 2]>> = vec![Vec::new(); n];
        let mut segments: Vec<Vec<Segment>> = (0..n).map(|_| Vec::new()).collect();
        let mut open: Vec<Option<OpenSegment>> = (0..n).map(|_| None).collect();
        let mut active: Vec<usize> = (0..n).collect();
        let mut probs: Vec<f32> = Vec::new();
        let mut long_tail_steps = 0usize;

        while !active.is_empty() {
            // ŝ_t, x_H = [ŝ_t, upp, LT], values, goal means, for every unfinished episode.
            let rows: Vec<(u32, &[u32], &[f64])> =
                active.iter().map(|&i| (users[i], env.items(i), rewards[i].as_slice())).collect();
            let step_aux: Vec<[f32; 2]> = active.iter().map(|&i| self.facts.aux(users[i], env.items(i))).collect();
            let batch = HistoryBatch::new(&rows, tracker.window(), n_items, device);
            let (states, v_h, v_l, mean) = tch::no_grad(|| -> Result<_> {
                let states = tracker.try_states(&batch)?;
                let x_high = Tensor::f_cat(&[&states, &aux_tensor(&step_aux, device)?], 1)?;
                let (v_h, v_l) = self.nets.values(&x_high)?;
                let mean = self.nets.goal_mean(&x_high)?;
                Ok((states, to_vec(&v_h)?, to_vec(&v_l)?, to_vec(&mean.f_flatten(0, -1)?)?))
            })?;

            // The high level acts at t = 0, c, 2c, ...: draw z ~ N(μ, σ²).
            let gd = self.cfg.goal_dim() as usize;
            for (k, &i) in active.iter().enumerate() {
                let t = env.items(i).len();
                if !t.is_multiple_of(c) {
                    continue;
                }
                let (raw, goal, log_prob) = match self.cfg.fixed_ratio {
                    Some(rho) => (vec![rho as f32], ratio_vector(rho), 0.0),
                    None => {
                        let mut raw = Vec::with_capacity(gd);
                        let mut lp = 0.0;
                        for d in 0..gd {
                            let eps = standard_normal(rng);
                            let z = f64::from(mean[k * gd + d]) + std[d] * eps;
                            lp += -0.5 * eps * eps - std[d].ln() - LN_SQRT_2PI;
                            raw.push(z);
                        }
                        let goal = goal_vector(self.cfg.goal, &raw);
                        (raw.iter().map(|&z| z as f32).collect(), goal, lp as f32)
                    }
                };
                open[i] = Some(OpenSegment { start: t, raw, goal, log_prob, value: v_h[k], reward: 0.0, long_tail: 0 });
            }

            // The low level: p̃ from [ŝ, g], then the goal's group reweighting.
            let goals: Vec<[f32; 2]> = active.iter().map(|&i| open[i].as_ref().map_or([0.0; 2], |s| s.goal)).collect();
            let p = tch::no_grad(|| -> Result<Tensor> {
                let logits = self.nets.low_logits(&states, &aux_tensor(&goals, device)?)?;
                Ok(logits.f_softmax(-1, Kind::Float)?.f_to_device(Device::Cpu)?.f_contiguous()?)
            })?;
            probs.resize(active.len() * n_items, 0.0);
            p.f_copy_data(&mut probs, active.len() * n_items)?;

            let mut still = Vec::with_capacity(active.len());
            for (k, &i) in active.iter().enumerate() {
                let row = &probs[k * n_items..(k + 1) * n_items];
                let (item, log_prob) = self.sample_reweighted(row, goals[k], rng);
                let r = reward_model.reward(users[i], item, env.items(i));
                let step = env.step(i, item);
                rewards[i].push(r);
                values_l[i].push(v_l[k]);
                log_probs_l[i].push(log_prob);
                aux[i].push(step_aux[k]);
                let tail = !self.facts.popular[item as usize];
                long_tail_steps += usize::from(tail);
                let seg = open[i].as_mut().expect("a goal is set at the start of every segment");
                seg.reward += r;
                seg.long_tail += usize::from(tail);
                let t = env.items(i).len();
                if step.done || t.is_multiple_of(c) {
                    let seg = open[i].take().expect("open segment");
                    let fairness = self.fairness(users[i], env.items(i), seg.start, seg.long_tail);
                    segments[i].push(Segment {
                        start: seg.start,
                        raw: seg.raw,
                        goal: seg.goal,
                        log_prob: seg.log_prob,
                        value: seg.value,
                        reward_h: seg.reward + self.cfg.lambda_f * fairness,
                    });
                }
                if !step.done {
                    still.push(i);
                }
            }
            active = still;
        }

        // Lay both levels out episode after episode, then GAE at each level.
        let mut out = HierRollout { long_tail_steps, ..Default::default() };
        out.low.users = users.clone();
        out.high.users = users;
        for i in 0..n {
            let (step0, seg0) = (out.low.actions.len(), out.high.rewards.len());
            out.low.starts.push(step0);
            out.high.starts.push(seg0);
            let len = rewards[i].len();
            out.low.episode_of.extend(std::iter::repeat_n(i as u32, len));
            out.low.actions.extend_from_slice(env.items(i));
            out.low.rewards.extend_from_slice(&rewards[i]);
            out.low.dones.extend((0..len).map(|t| t + 1 == len));
            out.low.values.extend_from_slice(&values_l[i]);
            out.low.log_probs.extend_from_slice(&log_probs_l[i]);
            out.aux.extend_from_slice(&aux[i]);
            let n_seg = segments[i].len();
            for (j, s) in segments[i].drain(..).enumerate() {
                let end = if j + 1 < n_seg { s.start + c } else { len };
                out.segment_of.extend(std::iter::repeat_n(seg0 + j, end - s.start));
                out.segment_start.push(step0 + s.start);
                out.raw_goal.push(s.raw);
                out.goal.push(s.goal);
                out.high.episode_of.push(i as u32);
                out.high.actions.push(0);
                out.high.rewards.push(s.reward_h);
                out.high.dones.push(j + 1 == n_seg);
                out.high.values.push(s.value);
                out.high.log_probs.push(s.log_prob);
            }
        }
        out.low.starts.push(out.low.actions.len());
        out.high.starts.push(out.high.rewards.len());
        out.low.compute_gae(self.cfg.gamma, self.cfg.gae_lambda);
        out.high.compute_gae(self.cfg.gamma.powi(c as i32), self.cfg.gae_lambda);
        Ok(out)
    }

    /// The fairness term F of the segment that started at step `start` of an episode now showing `items`:
    /// LT_seg / (1 + upp_u), or −ΔGini of the episode's exposure over the whole catalogue.
    fn fairness(&self, user: u32, items: &[u32], start: usize, long_tail: usize) -> f64 {
        match self.cfg.fairness {
            FairnessTerm::LongTail => {
                let lt_seg = long_tail as f64 / (items.len() - start).max(1) as f64;
                lt_seg / (1.0 + f64::from(self.facts.aux(user, &[])[0]))
            }
            FairnessTerm::DeltaGini => {
                let n = self.facts.popular.len();
                let mut counts = vec![0u64; n];
                items[..start].iter().for_each(|&i| counts[i as usize] += 1);
                let before = gini(&counts);
                items[start..].iter().for_each(|&i| counts[i as usize] += 1);
                before - gini(&counts)
            }
        }
    }

    /// Draws an item from p ∝ p̃ · w(group) and returns it with log p(item).
    fn sample_reweighted(&self, row: &[f32], goal: [f32; 2], rng: &mut ChaCha8Rng) -> (u32, f32) {
        let popular = &self.facts.popular;
        let lt_mass: f64 = row.iter().zip(popular).filter(|(_, &p)| !p).map(|(&x, _)| f64::from(x)).sum::<f64>()
            / row.iter().map(|&x| f64::from(x)).sum::<f64>().max(f64::MIN_POSITIVE);
        let (w_pop, w_lt) = group_weights(self.cfg.goal, goal, lt_mass);
        let weight = |i: usize| if popular[i] { w_pop } else { w_lt };
        let total: f64 = row.iter().enumerate().map(|(i, &x)| f64::from(x) * weight(i)).sum();
        let mut u = rng.gen::<f64>() * total;
        let mut chosen = None;
        let mut last = 0;
        for (i, &x) in row.iter().enumerate() {
            let q = f64::from(x) * weight(i);
            if q > 0.0 {
                if u < q {
                    chosen = Some(i);
                    break;
                }
                u -= q;
                last = i;
            }
        }
        let a = chosen.unwrap_or(last);
        (a as u32, (f64::from(row[a]) * weight(a) / total).ln() as f32)
    }

    /// `[B, n_items]` log p of the reweighted low-level distribution, differentiable through the logits (and,
    /// for a target ratio, through the long-tail mass m).
    fn reweighted_log_probs(&self, logits: &Tensor, goals: &Tensor, weights: &Tensor) -> Result<Tensor> {
        let log_p = logits.f_log_softmax(-1, Kind::Float)?;
        let (w_pop, w_lt) = match self.cfg.goal {
            GoalType::Weights => (weights.f_select(1, 0)?, weights.f_select(1, 1)?),
            GoalType::TargetRatio => {
                let tail = self.popular_f.f_neg()?.f_add_scalar(1.0)?;
                let m = log_p.f_exp()?.f_mul(&tail)?.f_sum_dim_intlist([-1i64].as_slice(), false, Kind::Float)?;
                let degenerate = m.f_le(MASS_EPS)?.f_logical_or(&m.f_ge(1.0 - MASS_EPS)?)?.f_detach()?;
                let m = m.f_clamp(MASS_EPS, 1.0 - MASS_EPS)?;
                let rho = goals.f_select(1, 1)?.f_clamp(0.0, 1.0)?;
                let one = Tensor::f_ones_like(&m)?;
                let w_lt = one.f_where_self(&degenerate, &rho.f_div(&m)?)?;
                let w_pop = one.f_where_self(
                    &degenerate,
                    &rho.f_neg()?.f_add_scalar(1.0)?.f_div(&m.f_neg()?.f_add_scalar(1.0)?)?,
                )?;
                (w_pop.f_clamp_min(WEIGHT_FLOOR)?, w_lt.f_clamp_min(WEIGHT_FLOOR)?)
            }
        };
        let (lw_pop, lw_lt) = (w_pop.f_log()?.f_unsqueeze(1)?, w_lt.f_log()?.f_unsqueeze(1)?);
        let log_w = lw_lt.f_add(&self.popular_f.f_unsqueeze(0)?.f_mul(&lw_pop.f_sub(&lw_lt)?)?)?;
        let log_q = log_p.f_add(&log_w)?;
        Ok(log_q.f_sub(&log_q.f_logsumexp([-1i64].as_slice(), true)?)?)
    }

    /// The clipped surrogate (PPO) or −log π · A (A2C), with per-minibatch advantage normalisation.
    fn actor_loss(&self, log_prob: &Tensor, old: &Tensor, adv: &Tensor) -> Result<(Tensor, f64, f64)> {
        let mut adv = adv.shallow_clone();
        if self.cfg.norm_advantages && adv.size()[0] > 1 {
            let (mean, std) = (adv.f_mean(Kind::Float)?, adv.f_std(true)?);
            adv = adv.f_sub(&mean)?.f_div(&std.f_add_scalar(1e-8)?)?;
        }
        let log_ratio = log_prob.f_sub(old)?;
        let approx_kl = log_ratio.f_neg()?.f_mean(Kind::Float)?.f_double_value(&[])?;
        if self.cfg.updater == Updater::A2c {
            return Ok((log_prob.f_mul(&adv)?.f_mean(Kind::Float)?.f_neg()?, approx_kl, 0.0));
        }
        let eps = self.cfg.clip;
        let ratio = log_ratio.f_exp()?;
        let surr = ratio.f_mul(&adv)?.f_minimum(&ratio.f_clamp(1.0 - eps, 1.0 + eps)?.f_mul(&adv)?)?;
        let clip_fraction = ratio
            .f_sub_scalar(1.0)?
            .f_abs()?
            .f_gt(eps)?
            .f_to_kind(Kind::Float)?
            .f_mean(Kind::Float)?
            .f_double_value(&[])?;
        Ok((surr.f_mean(Kind::Float)?.f_neg()?, approx_kl, clip_fraction))
    }

    /// States of `steps` from the tracker: with gradients into it unless the low level (and so the tracker) is
    /// frozen.
    fn states(&self, ro: &HierRollout, steps: &[usize], tracker: &TrainedTracker) -> Result<Tensor> {
        let batch = ro.low.history_batch(
            steps,
            tracker.tracker.window(),
            self.nets.n_items as usize,
            self.nets.low_vs.device(),
        );
        if self.cfg.freeze_low_level {
            Ok(tch::no_grad(|| tracker.states(&batch))?.f_detach()?)
        } else {
            tracker.states(&batch)
        }
    }

    /// One gradient step of `loss` on `actor` and the critic (and the tracker unless frozen): one backward
    /// pass; each network's Adam then applies its own update to the gradients it received.
    fn step(&mut self, loss: &Tensor, high: bool, tracker: &mut TrainedTracker) -> Result<()> {
        zero_grads(&self.nets.critic_vs);
        let actor = if high { &mut self.high_adam } else { &mut self.low_adam };
        if self.cfg.freeze_low_level {
            actor.backward_step(loss)?;
        } else {
            joint_step(loss, actor, tracker)?;
        }
        step_on_existing_grads(&self.nets.critic_vs, &mut self.critic_adam)
    }

    /// PPO (or A2C) on both levels: low level over steps, then high level over segments, per pass.
    pub fn update(
        &mut self,
        ro: &HierRollout,
        tracker: &mut TrainedTracker,
        rng: &mut ChaCha8Rng,
    ) -> Result<UpdateStats> {
        let device = self.nets.low_vs.device();
        let (mut low, mut high) = (UpdateStats::default(), UpdateStats::default());
        let pick = |v: &[f32], idx: &[usize]| -> Result<Tensor> {
            Ok(Tensor::from_slice(&idx.iter().map(|&s| v[s]).collect::<Vec<f32>>()).f_to_device(device)?)
        };
        let learn_high = self.cfg.fixed_ratio.is_none();
        for _ in 0..self.cfg.repeat_per_collect {
            // Low level: π_L and V_L on steps.
            if !self.cfg.freeze_low_level {
                for steps in minibatches(ro.low.len(), self.cfg.batch_size, rng) {
                    let states = self.states(ro, &steps, tracker)?;
                    let aux: Vec<[f32; 2]> = steps.iter().map(|&s| ro.aux[s]).collect();
                    let goals: Vec<[f32; 2]> = steps.iter().map(|&s| ro.goal[ro.segment_of[s]]).collect();
                    let weights: Vec<[f32; 2]> = goals
                        .iter()
                        .map(|&g| {
                            let (p, l) = group_weights(self.cfg.goal, g, 0.5);
                            [p as f32, l as f32]
                        })
                        .collect();
                    let x_high = Tensor::f_cat(&[&states, &aux_tensor(&aux, device)?], 1)?;
                    let goals = aux_tensor(&goals, device)?;
                    let logits = self.nets.low_logits(&states, &goals)?;
                    let log_q = self.reweighted_log_probs(&logits, &goals, &aux_tensor(&weights, device)?)?;
                    let actions: Vec<i64> = steps.iter().map(|&s| i64::from(ro.low.actions[s])).collect();
                    let actions = Tensor::from_slice(&actions).f_to_device(device)?.f_unsqueeze(1)?;
                    let log_prob = log_q.f_gather(1, &actions, false)?.f_squeeze_dim(1)?;
                    let entropy = log_q
                        .f_exp()?
                        .f_mul(&log_q)?
                        .f_sum_dim_intlist([-1i64].as_slice(), false, Kind::Float)?
                        .f_mean(Kind::Float)?
                        .f_neg()?;
                    let (actor_loss, approx_kl, clip_fraction) = self.actor_loss(
                        &log_prob,
                        &pick(&ro.low.log_probs, &steps)?,
                        &pick(&ro.low.advantages, &steps)?,
                    )?;
                    let (_, v_l) = self.nets.values(&x_high)?;
                    let vf_loss = pick(&ro.low.returns, &steps)?.f_sub(&v_l)?.f_square()?.f_mean(Kind::Float)?;
                    let loss = actor_loss
                        .f_add(&vf_loss.f_mul_scalar(self.cfg.vf_coef)?)?
                        .f_sub(&entropy.f_mul_scalar(self.cfg.ent_coef)?)?;
                    let stats = stats_of(&loss, &actor_loss, &vf_loss, &entropy, approx_kl, clip_fraction)?;
                    self.step(&loss, false, tracker)?;
                    low.merge(&stats);
                }
            }
            // High level: π_H and V_H on segments (V_H is trained even when ρ* is fixed).
            for segs in minibatches(ro.high.len(), self.cfg.batch_size, rng) {
                let starts: Vec<usize> = segs.iter().map(|&k| ro.segment_start[k]).collect();
                let states = self.states(ro, &starts, tracker)?;
                let aux: Vec<[f32; 2]> = starts.iter().map(|&s| ro.aux[s]).collect();
                let x_high = Tensor::f_cat(&[&states, &aux_tensor(&aux, device)?], 1)?;
                let (v_h, _) = self.nets.values(&x_high)?;
                let vf_loss = pick(&ro.high.returns, &segs)?.f_sub(&v_h)?.f_square()?.f_mean(Kind::Float)?;
                let mut loss = vf_loss.f_mul_scalar(self.cfg.vf_coef)?;
                let (mut actor_loss, mut entropy, mut kl, mut clip_fraction) =
                    (Tensor::from(0.0f32), Tensor::from(0.0f32), 0.0, 0.0);
                if learn_high {
                    let z: Vec<f32> = segs.iter().flat_map(|&k| ro.raw_goal[k].iter().copied()).collect();
                    let z =
                        Tensor::from_slice(&z).f_to_device(device)?.f_view([segs.len() as i64, self.cfg.goal_dim()])?;
                    let (log_prob, ent) = self.nets.goal_log_prob(&x_high, &z)?;
                    (actor_loss, kl, clip_fraction) = self.actor_loss(
                        &log_prob,
                        &pick(&ro.high.log_probs, &segs)?,
                        &pick(&ro.high.advantages, &segs)?,
                    )?;
                    entropy = ent;
                    loss = loss.f_add(&actor_loss)?.f_sub(&entropy.f_mul_scalar(self.cfg.ent_coef)?)?;
                }
                let stats = stats_of(&loss, &actor_loss, &vf_loss, &entropy, kl, clip_fraction)?;
                self.step(&loss, true, tracker)?;
                high.merge(&stats);
            }
        }
        // The low level's numbers are the headline fields; the high level's go to `extra`.
        let mut stats = if self.cfg.freeze_low_level { high.clone() } else { low };
        for (key, value) in [
            ("high_loss", high.loss),
            ("high_actor_loss", high.actor_loss),
            ("high_vf_loss", high.vf_loss),
            ("high_entropy", high.entropy),
            ("high_approx_kl", high.approx_kl),
            ("high_clip_fraction", high.clip_fraction),
        ] {
            stats.extra.insert(key.into(), value);
        }
        if !self.cfg.freeze_low_level {
            stats.grad_steps += high.grad_steps;
        }
        let n = ro.low.len().max(1) as f64;
        let segments = ro.high.len().max(1) as f64;
        stats.extra.insert("long_tail_share".into(), ro.long_tail_steps as f64 / n);
        stats.extra.insert("segment_return".into(), ro.high.rewards.iter().sum::<f64>() / segments);
        stats.extra.insert("goal_long_tail".into(), ro.goal.iter().map(|g| f64::from(g[1])).sum::<f64>() / segments);
        Ok(stats)
    }
}

fn stats_of(loss: &Tensor, actor: &Tensor, vf: &Tensor, entropy: &Tensor, kl: f64, clip: f64) -> Result<UpdateStats> {
    let loss_value = loss.f_double_value(&[])?;
    if !loss_value.is_finite() {
        return Err(AgentError::Diverged(format!("hrl loss {loss_value}")));
    }
    Ok(UpdateStats {
        loss: loss_value,
        actor_loss: actor.f_double_value(&[])?,
        vf_loss: vf.f_double_value(&[])?,
        entropy: entropy.f_double_value(&[])?,
        approx_kl: kl,
        clip_fraction: clip,
        grad_steps: 1,
        ..Default::default()
    })
}

/// `[B, 2]` float tensor from pairs.
fn aux_tensor(rows: &[[f32; 2]], device: Device) -> Result<Tensor> {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Ok(Tensor::from_slice(&flat).f_to_device(device)?.f_view([rows.len() as i64, 2])?)
}

fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(Vec::<f32>::try_from(t.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?.f_contiguous()?)?)
}

fn zero_grads(vs: &VarStore) {
    for mut p in vs.trainable_variables() {
        p.zero_grad();
    }
}

/// Steps `adam` on the gradients the last backward pass left in `vs`: its `backward_step` on the surrogate
/// Σ⟨p, g⟩, whose gradient is exactly g (as `joint_step` does for the tracker).
fn step_on_existing_grads(vs: &VarStore, adam: &mut Adam) -> Result<()> {
    let mut surrogate: Option<Tensor> = None;
    for p in vs.trainable_variables() {
        let g = p.grad();
        if !g.defined() {
            continue;
        }
        let term = p.f_mul(&g.f_detach_copy()?)?.f_sum(p.kind())?;
        surrogate = Some(match surrogate {
            Some(s) => s.f_add(&term)?,
            None => term,
        });
    }
    if let Some(s) = surrogate {
        adam.backward_step(&s)?;
    }
    Ok(())
}

impl Learner for Hrl {
    fn name(&self) -> &'static str {
        "hrl"
    }

    fn iterate(&mut self, env: &TrainingEnv, tracker: &mut TrainedTracker, rng: &mut ChaCha8Rng) -> Result<Iteration> {
        let t = Instant::now();
        let ro = self.collect(env.spec, env.reward_model, tracker.tracker.as_ref(), env.episodes, rng)?;
        let collect_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let stats = self.update(&ro, tracker, rng)?;
        Ok(Iteration::of(&ro.low, stats, collect_s, t.elapsed().as_secs_f64()))
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut tensors = checkpoint::named("hrl_high", &self.nets.high_vs);
        tensors.extend(checkpoint::named("hrl_low", &self.nets.low_vs));
        tensors.extend(checkpoint::named("hrl_critic", &self.nets.critic_vs));
        tensors.extend(self.high_adam.state("hrl_high_adam"));
        tensors.extend(self.low_adam.state("hrl_low_adam"));
        tensors.extend(self.critic_adam.state("hrl_critic_adam"));
        tensors
    }

    fn restore(&mut self, tensors: &[(String, Tensor)]) -> Result<()> {
        checkpoint::restore("hrl_high", &mut self.nets.high_vs, tensors)?;
        checkpoint::restore("hrl_low", &mut self.nets.low_vs, tensors)?;
        checkpoint::restore("hrl_critic", &mut self.nets.critic_vs, tensors)?;
        self.high_adam.restore("hrl_high_adam", tensors)?;
        self.low_adam.restore("hrl_low_adam", tensors)?;
        self.critic_adam.restore("hrl_critic_adam", tensors)?;
        Ok(())
    }

    fn snapshot(&self, mut tracker: Box<dyn StateTracker>, reward_range: (f64, f64)) -> Result<Box<dyn EvalPolicy>> {
        tracker.set_training(false);
        tracker.set_reward_range(reward_range.0, reward_range.1)?;
        if tracker.state_dim() != self.nets.state_dim {
            return Err(AgentError::Config(format!(
                "tracker states have {} dimensions but the agent reads {}",
                tracker.state_dim(),
                self.nets.state_dim
            )));
        }
        let n_items = self.nets.n_items as usize;
        let snapshot = HrlSnapshot {
            tracker,
            nets: self.nets.try_clone()?,
            facts: Arc::clone(&self.facts),
            goal_type: self.cfg.goal,
            interval: self.cfg.interval,
            fixed_ratio: self.cfg.fixed_ratio,
            goal: [0.0; 2],
            logits: vec![0.0; n_items],
            scores: vec![0.0; n_items],
            error: None,
        };
        Ok(Box::new(HrlPolicy { inner: Arc::new(Mutex::new(snapshot)) }))
    }
}

/// A frozen HRL agent acting on the ground truth: the high level sets a goal every c steps (sampled, or its
/// mean under argmax selection), the low level's distribution is masked, reweighted to the goal, and then
/// sampled or maximised.
#[derive(Clone)]
pub struct HrlPolicy {
    inner: Arc<Mutex<HrlSnapshot>>,
}

struct HrlSnapshot {
    tracker: Box<dyn StateTracker>,
    nets: HrlNets,
    facts: Arc<GroupFacts>,
    goal_type: GoalType,
    interval: usize,
    fixed_ratio: Option<f64>,
    /// The goal of the current segment (episodes are played one at a time).
    goal: [f32; 2],
    logits: Vec<f32>,
    scores: Vec<f64>,
    error: Option<String>,
}

impl HrlSnapshot {
    /// Fills `scores` with log p of the goal-reweighted distribution over the allowed items (−∞ elsewhere).
    fn score(&mut self, obs: &Observation, mask: &ItemMask, selection: Selection, rng: &mut PolicyRng) -> Result<()> {
        let device = self.nets.low_vs.device();
        let n_items = self.logits.len();
        let batch = HistoryBatch::new(&[(obs.user, obs.items, obs.rewards)], self.tracker.window(), n_items, device);
        let aux = self.facts.aux(obs.user, obs.items);
        let new_segment = obs.items.len().is_multiple_of(self.interval);
        let logits = tch::no_grad(|| -> Result<Tensor> {
            let states = self.tracker.try_states(&batch)?;
            let mean = if new_segment && self.fixed_ratio.is_none() {
                let x_high = Tensor::f_cat(&[&states, &aux_tensor(&[aux], device)?], 1)?;
                to_vec(&self.nets.goal_mean(&x_high)?.f_flatten(0, -1)?)?
            } else {
                Vec::new()
            };
            if new_segment {
                self.goal = match self.fixed_ratio {
                    Some(rho) => ratio_vector(rho),
                    None => {
                        let std = self.nets.std()?;
                        let z: Vec<f64> = mean
                            .iter()
                            .zip(&std)
                            .map(|(&m, &s)| match selection {
                                Selection::Argmax => f64::from(m),
                                Selection::Sampled => f64::from(m) + s * standard_normal(rng),
                            })
                            .collect();
                        goal_vector(self.goal_type, &z)
                    }
                };
            }
            let logits = self.nets.low_logits(&states, &aux_tensor(&[self.goal], device)?)?;
            Ok(logits.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?.f_contiguous()?)
        })?;
        logits.f_copy_data(&mut self.logits, n_items)?;
        // m over the allowed items (masking first, as §4.4 says), then log p̃ + log w.
        let max = (0..n_items)
            .filter(|&i| mask.allows(i as u32))
            .map(|i| f64::from(self.logits[i]))
            .fold(f64::NEG_INFINITY, f64::max);
        let (mut total, mut tail) = (0.0, 0.0);
        for i in (0..n_items).filter(|&i| mask.allows(i as u32)) {
            let e = (f64::from(self.logits[i]) - max).exp();
            total += e;
            if !self.facts.popular[i] {
                tail += e;
            }
        }
        let (w_pop, w_lt) = group_weights(self.goal_type, self.goal, if total > 0.0 { tail / total } else { 0.0 });
        let (l_pop, l_lt) = (w_pop.ln(), w_lt.ln());
        for (i, s) in self.scores.iter_mut().enumerate() {
            *s = if mask.allows(i as u32) {
                f64::from(self.logits[i]) + if self.facts.popular[i] { l_pop } else { l_lt }
            } else {
                f64::NEG_INFINITY
            };
        }
        Ok(())
    }
}

impl EvalPolicy for HrlPolicy {
    fn take_error(&self) -> Option<String> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).error.take()
    }
}

impl Policy for HrlPolicy {
    fn name(&self) -> String {
        "hrl".into()
    }

    fn act(&mut self, obs: &Observation, mask: &ItemMask, selection: Selection, rng: &mut PolicyRng) -> u32 {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match s.score(obs, mask, selection, rng) {
            Ok(()) => select(&s.scores, mask, selection, rng),
            Err(e) => {
                s.error.get_or_insert_with(|| e.to_string());
                uniform_allowed(mask, rng)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{mean_tracker_builder, tiny_world};
    use dsrm_sim::GroundTruthReward;
    use rand::SeedableRng;

    #[test]
    fn a_target_ratio_puts_exactly_that_mass_on_the_long_tail() {
        // n = 5, P = {0, 1}; p̃ with long-tail mass m = 0.3.
        let popular = [true, true, false, false, false];
        let p = [0.5, 0.2, 0.1, 0.15, 0.05];
        let m: f64 = p.iter().zip(&popular).filter(|(_, &pop)| !pop).map(|(x, _)| x).sum();
        for rho in [0.0, 0.1, 0.3, 0.55, 0.9, 1.0] {
            let (w_pop, w_lt) = group_weights(GoalType::TargetRatio, ratio_vector(rho), m);
            let q: Vec<f64> = p.iter().zip(&popular).map(|(&x, &pop)| x * if pop { w_pop } else { w_lt }).collect();
            let total: f64 = q.iter().sum();
            let tail: f64 = q.iter().zip(&popular).filter(|(_, &pop)| !pop).map(|(x, _)| x).sum();
            assert!((total - 1.0).abs() < 1e-6, "ρ {rho}: already normalised, Σ = {total}");
            assert!((tail / total - rho).abs() < 1e-6, "ρ {rho}: long-tail mass {}", tail / total);
        }
        // m = 0 or 1: the target cannot be met, nothing changes; weights: ReLU'd, all-zero means unchanged.
        assert_eq!(group_weights(GoalType::TargetRatio, ratio_vector(0.4), 0.0), (1.0, 1.0));
        assert_eq!(group_weights(GoalType::TargetRatio, ratio_vector(0.4), 1.0), (1.0, 1.0));
        assert_eq!(group_weights(GoalType::Weights, [-0.2, 0.0], 0.5), (1.0, 1.0));
        assert_eq!(group_weights(GoalType::Weights, [0.25, 0.75], 0.5), (0.25, 0.75));
        assert_eq!(goal_vector(GoalType::Weights, &[-1.0, 0.3]), [0.0, 0.3]);
        assert!((goal_vector(GoalType::TargetRatio, &[0.0])[1] - 0.5).abs() < 1e-7);
    }

    fn agent(cfg: HrlConfig) -> (Hrl, TrainedTracker) {
        let world = tiny_world();
        dsrm_nn::runtime::seed(1);
        let tracker = mean_tracker_builder(world.spec.n_items())().unwrap();
        let hrl = Hrl::new(cfg.clone(), tracker.state_dim(), world, Device::Cpu).unwrap();
        (hrl, TrainedTracker::new(tracker, cfg.tracker_lr))
    }

    #[test]
    fn segments_cover_the_steps_and_the_update_log_probs_match_collection() {
        let _torch = dsrm_nn::runtime::exclusive();
        dsrm_nn::tch::set_num_threads(1);
        let world = tiny_world();
        let reward = GroundTruthReward::new(&world.spec.rewards);
        for (goal, c) in [(GoalType::Weights, 1), (GoalType::TargetRatio, 3)] {
            let (hrl, tracker) = agent(HrlConfig { goal, interval: c, ..Default::default() });
            let mut rng = ChaCha8Rng::seed_from_u64(4);
            let ro = hrl.collect(&world.spec, &reward, tracker.tracker.as_ref(), 12, &mut rng).unwrap();
            assert_eq!(ro.segment_of.len(), ro.low.len());
            assert_eq!(ro.high.n_episodes(), 12);
            for e in 0..12 {
                let (s0, s1) = (ro.low.starts[e], ro.low.starts[e + 1]);
                let expected = (s1 - s0).div_ceil(c);
                assert_eq!(ro.high.starts[e + 1] - ro.high.starts[e], expected, "segments of episode {e}");
                for s in s0..s1 {
                    let k = ro.segment_of[s];
                    assert_eq!(ro.segment_start[k], s0 + (s - s0) / c * c);
                }
            }
            // Recomputing log p(a) of the reweighted distribution gives the collection's values.
            let steps: Vec<usize> = (0..ro.low.len()).collect();
            let states = hrl.states(&ro, &steps, &tracker).unwrap();
            let goals: Vec<[f32; 2]> = steps.iter().map(|&s| ro.goal[ro.segment_of[s]]).collect();
            let weights: Vec<[f32; 2]> = goals
                .iter()
                .map(|&g| {
                    let (p, l) = group_weights(goal, g, 0.5);
                    [p as f32, l as f32]
                })
                .collect();
            let goals = aux_tensor(&goals, Device::Cpu).unwrap();
            let logits = hrl.nets.low_logits(&states, &goals).unwrap();
            let log_q = hrl.reweighted_log_probs(&logits, &goals, &aux_tensor(&weights, Device::Cpu).unwrap()).unwrap();
            let actions: Vec<i64> = ro.low.actions.iter().map(|&a| i64::from(a)).collect();
            let lp = log_q.gather(1, &Tensor::from_slice(&actions).unsqueeze(1), false).squeeze_dim(1);
            let old = Tensor::from_slice(&ro.low.log_probs);
            let diff = (lp - old).abs().max().double_value(&[]);
            assert!(diff < 1e-4, "{goal:?}: max |Δ log p| = {diff}");
        }
    }

    /// Long-tail share of the agent's training collections after `iterations` updates with `lambda_f`.
    fn long_tail_after_training(lambda_f: f64, iterations: usize) -> f64 {
        let world = tiny_world();
        let reward = GroundTruthReward::new(&world.spec.rewards);
        // Goal type (b) (the high level's action is the long-tail share itself) and a faster high level than the
        // §4.4 defaults, so that a few updates on ~120-step collections show the effect.
        let cfg = HrlConfig {
            lambda_f,
            goal: GoalType::TargetRatio,
            actor_lr: 1e-2,
            batch_size: 32,
            hidden: vec![32],
            ..Default::default()
        };
        let (mut hrl, mut tracker) = agent(cfg);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let env = TrainingEnv { spec: &world.spec, reward_model: &reward, episodes: 20 };
        let mut shares = Vec::new();
        for _ in 0..iterations {
            let it = hrl.iterate(&env, &mut tracker, &mut rng).unwrap();
            assert!(it.update.loss.is_finite() && it.update.extra["high_entropy"].is_finite());
            shares.push(it.update.extra["long_tail_share"]);
        }
        // The mean over the last third of the collections.
        let tail = &shares[iterations * 2 / 3..];
        tail.iter().sum::<f64>() / tail.len() as f64
    }

    #[test]
    fn a_larger_lambda_f_raises_the_long_tail_share() {
        let _torch = dsrm_nn::runtime::exclusive();
        dsrm_nn::tch::set_num_threads(1);
        let (plain, fair) = (long_tail_after_training(0.0, 25), long_tail_after_training(20.0, 25));
        eprintln!("long-tail share of training recommendations: λ_f 0 -> {plain:.3}, λ_f 20 -> {fair:.3}");
        assert!(fair > plain + 0.05, "λ_f 20 gave {fair:.3}, λ_f 0 gave {plain:.3}");
    }

    /// Runs the trainer on the tiny world (ground-truth reward, mean tracker).
    fn train_tiny(cfg: &crate::TrainConfig, dir: &std::path::Path, resume: bool) -> crate::TrainSummary {
        let world = tiny_world();
        let inputs = dsrm_eval::MetricInputs::new(world, Default::default());
        let reward = GroundTruthReward::new(&world.spec.rewards);
        let builder = mean_tracker_builder(world.spec.n_items());
        crate::train_with_tracker(cfg, world, &inputs, &reward, &*builder, dir, resume, &mut |_| {}).unwrap()
    }

    #[test]
    fn hrl_fcpo_and_shaped_runs_resume_bit_identically() {
        let _torch = dsrm_nn::runtime::exclusive();
        use crate::learner::Algorithm;
        let small = HrlConfig { hidden: vec![16], batch_size: 256, repeat_per_collect: 2, ..Default::default() };
        let ppo = crate::PpoConfig { batch_size: 256, hidden: vec![16], ..Default::default() };
        let cases = [
            (Algorithm::Hrl(small.clone()), None),
            (Algorithm::Hrl(HrlConfig { goal: GoalType::TargetRatio, interval: 3, ..small }), None),
            (Algorithm::Fcpo(crate::FcpoConfig { ppo: ppo.clone(), ..Default::default() }), None),
            (Algorithm::Ppo(ppo), Some(crate::RewardShaping::DeltaGini { lambda: 1.0 })),
        ];
        for (algorithm, reward_shaping) in cases {
            let cfg = |epochs| crate::TrainConfig {
                algorithm: algorithm.clone(),
                reward_shaping,
                epochs,
                steps_per_epoch: 400,
                parallel_envs: 20,
                eval: dsrm_eval::EvalConfig { episodes: 10, ..Default::default() },
                seed: 5,
                ..Default::default()
            };
            let (full, split) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            train_tiny(&cfg(3), full.path(), false);
            train_tiny(&cfg(2), split.path(), false);
            train_tiny(&cfg(3), split.path(), true);
            for name in ["log.jsonl", "metrics.json", "summary.json"] {
                let read = |d: &tempfile::TempDir| std::fs::read(d.path().join(name)).unwrap();
                assert_eq!(read(&full), read(&split), "{}: {name}", algorithm.name());
            }
            let log = std::fs::read_to_string(full.path().join("log.jsonl")).unwrap();
            let key = match algorithm {
                Algorithm::Hrl(_) => "high_vf_loss",
                Algorithm::Fcpo(_) => "multiplier",
                _ => "loss",
            };
            assert!(log.contains(key), "{}: {key} not logged", algorithm.name());
        }
    }

    #[test]
    fn a_fixed_target_ratio_sets_the_long_tail_share_of_recommendations() {
        let _torch = dsrm_nn::runtime::exclusive();
        dsrm_nn::tch::set_num_threads(1);
        let world = tiny_world();
        let reward = GroundTruthReward::new(&world.spec.rewards);
        for rho in [0.1, 0.9] {
            let cfg = HrlConfig { goal: GoalType::TargetRatio, fixed_ratio: Some(rho), ..Default::default() };
            let (hrl, tracker) = agent(cfg);
            let mut rng = ChaCha8Rng::seed_from_u64(2);
            let ro = hrl.collect(&world.spec, &reward, tracker.tracker.as_ref(), 60, &mut rng).unwrap();
            let share = ro.long_tail_steps as f64 / ro.low.len() as f64;
            assert!((share - rho).abs() < 0.08, "ρ* {rho}: long-tail share {share} over {} steps", ro.low.len());
        }
    }
}
