//! The HRL agent's networks (high actor, low actor, two-headed critic), the group reweighting a goal puts on
//! the low level's distribution, and the per-user and per-item facts every decision reads.

use super::config::{GoalType, HrlConfig};
use crate::{AgentError, Result};
use dsrm_nn::mlp::{Activation, Mlp};
use dsrm_nn::tch::nn::{self, Module, VarStore};
use dsrm_nn::tch::{Device, Kind, Tensor};
use dsrm_sim::World;
use rand::Rng;

/// Weights below this count as this (so log-probabilities stay finite and sampling and updates agree).
pub(super) const WEIGHT_FLOOR: f64 = 1e-8;
/// A long-tail mass this close to 0 or 1 cannot be moved to a target ratio (§4.4 (b)).
pub(super) const MASS_EPS: f64 = 1e-9;

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
pub(super) fn goal_vector(goal_type: GoalType, z: &[f64]) -> [f32; 2] {
    match goal_type {
        GoalType::Weights => [z[0].max(0.0) as f32, z[1].max(0.0) as f32],
        GoalType::TargetRatio => ratio_vector(1.0 / (1.0 + (-z[0]).exp())),
    }
}

pub(super) fn ratio_vector(rho: f64) -> [f32; 2] {
    [(1.0 - rho) as f32, rho as f32]
}

/// One standard normal draw (Box-Muller) from the run's generator.
pub(super) fn standard_normal<R: Rng>(rng: &mut R) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

pub(super) const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_7;

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
    pub(super) high: Mlp,
    pub(super) log_std: Tensor,
    pub(super) low: Mlp,
    pub(super) critic: Mlp,
    pub(super) goal: GoalType,
    pub(super) state_dim: i64,
    pub(super) n_items: i64,
    pub(super) cfg_hidden: Vec<i64>,
    pub(super) init_std: f64,
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
    pub(super) fn goal_mean(&self, x_high: &Tensor) -> Result<Tensor> {
        let out = self.high.forward(x_high);
        Ok(match self.goal {
            GoalType::Weights => out.f_softmax(-1, Kind::Float)?,
            GoalType::TargetRatio => out,
        })
    }

    /// log N(z; μ, σ²) summed over the goal dimensions, `[B]`, and the Gaussian's entropy (a scalar).
    pub(super) fn goal_log_prob(&self, x_high: &Tensor, z: &Tensor) -> Result<(Tensor, Tensor)> {
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
    pub(super) fn values(&self, x_high: &Tensor) -> Result<(Tensor, Tensor)> {
        let v = self.critic.forward(x_high);
        Ok((v.f_select(1, 0)?, v.f_select(1, 1)?))
    }

    /// `[B, n_items]` logits of the low level for `[B, state_dim]` states and `[B, 2]` goal vectors.
    pub(super) fn low_logits(&self, states: &Tensor, goals: &Tensor) -> Result<Tensor> {
        Ok(self.low.forward(&Tensor::f_cat(&[states, goals], 1)?))
    }

    pub(super) fn std(&self) -> Result<Vec<f64>> {
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
        let popular = world.popular();
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

    pub(super) fn long_tail_share(&self, items: &[u32]) -> f32 {
        if items.is_empty() {
            return 0.0;
        }
        items.iter().filter(|&&i| !self.popular[i as usize]).count() as f32 / items.len() as f32
    }

    /// x_H's extra inputs: (upp_u, running LT share of the episode so far).
    pub(super) fn aux(&self, user: u32, items: &[u32]) -> [f32; 2] {
        [self.upp.get(user as usize).copied().unwrap_or(0.0), self.long_tail_share(items)]
    }
}

/// `[B, 2]` float tensor from pairs.
pub(super) fn aux_tensor(rows: &[[f32; 2]], device: Device) -> Result<Tensor> {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Ok(Tensor::from_slice(&flat).f_to_device(device)?.f_view([rows.len() as i64, 2])?)
}

pub(super) fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(Vec::<f32>::try_from(t.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?.f_contiguous()?)?)
}
