//! The HRL agent's networks (high actor, low actor, the critics V_H and V_L), the group reweighting a goal puts on
//! the low level's distribution, and the per-user and per-item facts every decision reads.

use super::config::{GoalType, HrlConfig};
use crate::item_factors::ItemFactors;
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
        // The paper's goal acts inside the item score, not by reweighting groups.
        GoalType::Paper => (1.0, 1.0),
    };
    (w_pop.max(WEIGHT_FLOOR), w_lt.max(WEIGHT_FLOOR))
}

/// The goal vector the low level reads for a raw high-level action `z` (length 1 or 2).
pub(super) fn goal_vector(goal_type: GoalType, z: &[f64]) -> [f32; 2] {
    match goal_type {
        GoalType::Weights | GoalType::Paper => [z[0].max(0.0) as f32, z[1].max(0.0) as f32],
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

/// Goal type (c) starts at the engagement operating point: softplus(0 + offset) ≈ (ω_acc, ω_fair) = (1, 0.05)
/// for a fresh network, so an untrained low level ranks by similarity, and fairness is what λ's reward buys
/// (with both weights near softplus(0) ≈ 0.69 the exposure cost, over τ = 0.1, would dominate the ranking
/// and make an untrained agent 98% long-tail whatever its λ; measured on the tiny test world). Offsets:
/// softplus⁻¹(1) = ln(e − 1), softplus⁻¹(0.05) = ln(e^0.05 − 1).
pub(super) const PAPER_GOAL_OFFSET: [f32; 2] = [0.541_324_9, -2.970_628];

pub(super) const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_7;

/// The networks: high actor, low actor, and the critics V_H and V_L, in three var stores (so retuning can
/// train one level and freeze the other, and each has its own learning rate).
#[derive(Debug)]
pub struct HrlNets {
    /// π_H: [ŝ, upp, LT] → goal mean; plus `log_std`.
    pub high_vs: VarStore,
    /// π_L: [ŝ, goal vector] → logits over the catalogue (goal types (a), (b)); ŝ → q_t and the item
    /// embeddings e_i (goal type (c)).
    pub low_vs: VarStore,
    /// V_H: [ŝ, upp, LT] → value of the segment to come; V_L: [ŝ, upp, LT, goal vector] → value of the step
    /// under the current goal.
    pub critic_vs: VarStore,
    pub(super) high: Mlp,
    pub(super) log_std: Tensor,
    pub(super) low: Mlp,
    /// e_i, `[n_items, query_dim]` (goal type (c) only).
    pub(super) item_emb: Option<Tensor>,
    /// c̄_i = ln(1 + count_i) / max_j ln(1 + count_j), `[n_items]` (goal type (c) only; set by the agent).
    pub(super) item_cost: Option<Tensor>,
    pub(super) critic_high: Mlp,
    pub(super) critic_low: Mlp,
    pub(super) goal: GoalType,
    pub(super) state_dim: i64,
    pub(super) n_items: i64,
    pub(super) cfg_hidden: Vec<i64>,
    pub(super) init_std: f64,
    pub(super) query_dim: i64,
    pub(super) temperature: f64,
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
        let (low, item_emb) = match cfg.goal {
            GoalType::Paper => (
                Mlp::new(&(low_vs.root() / "query"), &sizes(state_dim, cfg.query_dim), Activation::Relu),
                Some(low_vs.root().var(
                    "item_emb",
                    &[n_items, cfg.query_dim],
                    nn::Init::Randn { mean: 0.0, stdev: 1.0 },
                )),
            ),
            _ => (Mlp::new(&(low_vs.root() / "low"), &sizes(state_dim + 2, n_items), Activation::Relu), None),
        };
        let critic_high = Mlp::new(&(critic_vs.root() / "v_high"), &sizes(state_dim + 2, 1), Activation::Relu);
        let critic_low = Mlp::new(&(critic_vs.root() / "v_low"), &sizes(state_dim + 4, 1), Activation::Relu);
        Ok(Self {
            high_vs,
            low_vs,
            critic_vs,
            high,
            log_std,
            low,
            item_emb,
            item_cost: None,
            critic_high,
            critic_low,
            goal: cfg.goal,
            state_dim,
            n_items,
            cfg_hidden: cfg.hidden.clone(),
            init_std: cfg.initial_std(),
            query_dim: cfg.query_dim,
            temperature: cfg.temperature,
        })
    }

    /// The variables of V_H (`high`) or V_L, named as in `critic_vs`.
    pub(super) fn critic_vars(&self, high: bool) -> Vec<(String, Tensor)> {
        let prefix = if high { "v_high/" } else { "v_low/" };
        self.critic_vs.variables().into_iter().filter(|(name, _)| name.starts_with(prefix)).collect()
    }

    /// Starts goal type (c)'s item embeddings at `factors`' rows; an all-zero row (an item without training
    /// rows) keeps its random start. A width other than `query_dim` is an error.
    pub(super) fn set_item_embeddings(&mut self, factors: &ItemFactors) -> Result<()> {
        let Some(item_emb) = &self.item_emb else {
            return Err(AgentError::Config("item_init = \"mf\" needs goal = \"paper\"".into()));
        };
        if factors.dim as i64 != self.query_dim || factors.n_items as i64 != self.n_items {
            return Err(AgentError::Config(format!(
                "item factors of {} items × {} do not fit the item embeddings ({} × {})",
                factors.n_items, factors.dim, self.n_items, self.query_dim
            )));
        }
        let mut rows = to_vec(&item_emb.f_reshape([-1])?)?;
        for (i, row) in rows.chunks_mut(factors.dim).enumerate() {
            let f = factors.row(i);
            if f.iter().any(|&x| x != 0.0) {
                row.copy_from_slice(f);
            }
        }
        let values = Tensor::from_slice(&rows).f_reshape([self.n_items, self.query_dim])?;
        dsrm_nn::tch::no_grad(|| item_emb.shallow_clone().f_copy_(&values))?;
        Ok(())
    }

    /// Sets goal type (c)'s per-item exposure cost c̄_i (`[n_items]`).
    pub(super) fn set_item_cost(&mut self, cost: &[f32]) -> Result<()> {
        self.item_cost = Some(Tensor::from_slice(cost).f_to_device(self.low_vs.device())?);
        Ok(())
    }

    /// An independent copy with the same weights.
    pub fn try_clone(&self) -> Result<Self> {
        let cfg = HrlConfig {
            goal: self.goal,
            hidden: self.cfg_hidden.clone(),
            goal_std: Some(self.init_std),
            query_dim: self.query_dim,
            temperature: self.temperature,
            ..Default::default()
        };
        let mut copy = Self::new(&cfg, self.state_dim, self.n_items, self.high_vs.device())?;
        copy.item_cost = self.item_cost.as_ref().map(Tensor::shallow_clone);
        copy.high_vs.copy(&self.high_vs)?;
        copy.low_vs.copy(&self.low_vs)?;
        copy.critic_vs.copy(&self.critic_vs)?;
        Ok(copy)
    }

    /// `[B, goal_dim]` mean of the goal Gaussian (softmax for weights, the logit for a ratio, softplus for the
    /// paper's ω).
    pub(super) fn goal_mean(&self, x_high: &Tensor) -> Result<Tensor> {
        let out = self.high.forward(x_high);
        Ok(match self.goal {
            GoalType::Weights => out.f_softmax(-1, Kind::Float)?,
            GoalType::TargetRatio => out,
            GoalType::Paper => {
                out.f_add(&Tensor::from_slice(&PAPER_GOAL_OFFSET).f_to_device(out.device())?)?.f_softplus()?
            }
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

    /// `[B]` V_H on x_H = [ŝ, upp, LT].
    pub(super) fn value_high(&self, x_high: &Tensor) -> Result<Tensor> {
        Ok(self.critic_high.forward(x_high).f_squeeze_dim(1)?)
    }

    /// `[B]` V_L on [x_H, goal vector]: the low level's value under the goal it is pursuing.
    pub(super) fn value_low(&self, x_high: &Tensor, goals: &Tensor) -> Result<Tensor> {
        Ok(self.critic_low.forward(&Tensor::f_cat(&[x_high, goals], 1)?).f_squeeze_dim(1)?)
    }

    /// `[B, n_items]` logits of the low level for `[B, state_dim]` states and `[B, 2]` goal vectors: MLP_L([ŝ, g])
    /// for goal types (a) and (b); Ψ / τ = (ω_acc · cos(q_t, e_i) − ω_fair · c̄_i) / τ for (c).
    pub(super) fn low_logits(&self, states: &Tensor, goals: &Tensor) -> Result<Tensor> {
        let (Some(item_emb), GoalType::Paper) = (&self.item_emb, self.goal) else {
            return Ok(self.low.forward(&Tensor::f_cat(&[states, goals], 1)?));
        };
        let cost = self.item_cost.as_ref().ok_or_else(|| {
            AgentError::Config("the paper's goal needs the items' exposure costs (HrlNets::set_item_cost)".into())
        })?;
        let unit = |x: &Tensor| -> Result<Tensor> {
            let norm = x.f_norm_scalaropt_dim(2.0, [-1i64].as_slice(), true)?.f_clamp_min(1e-8)?;
            Ok(x.f_div(&norm)?)
        };
        let sim = unit(&self.low.forward(states))?.f_matmul(&unit(item_emb)?.f_transpose(0, 1)?)?;
        let (w_acc, w_fair) = (goals.f_narrow(1, 0, 1)?, goals.f_narrow(1, 1, 1)?);
        let psi = sim.f_mul(&w_acc)?.f_sub(&w_fair.f_mul(&cost.f_unsqueeze(0)?)?)?;
        Ok(psi.f_div_scalar(self.temperature)?)
    }

    pub(super) fn std(&self) -> Result<Vec<f64>> {
        Ok(Vec::<f64>::try_from(self.log_std.f_exp()?.f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?)?)
    }
}

/// What every decision needs about users and items: the popular split, upp_u and the exposure costs.
#[derive(Debug, Clone)]
pub struct GroupFacts {
    /// Per item: in the popular set P (top ⌈0.2 n⌉ by distinct training pairs).
    pub popular: Vec<bool>,
    /// Per environment user: the share of their distinct items in the whole training log (`train_full`: on
    /// KuaiRec the big matrix, catalogue or not) that are popular by the whole log's counts (the top
    /// popular fraction of all its items by distinct users); 0 for a user without any.
    pub upp: Vec<f32>,
    /// Per catalogue item: c̄_i = ln(1 + count_i) / max_j ln(1 + count_j), count_i its rows in the training log
    /// (its logged exposure); goal type (c)'s fairness cost.
    pub item_cost: Vec<f32>,
}

impl GroupFacts {
    /// The split of the fairness metrics, each user's popularity preference and each item's exposure cost, from
    /// the training log.
    pub fn of(world: &World) -> Self {
        let n_users = world.spec.n_users();
        let popular = world.popular();
        // upp_u over the whole log: on KuaiRec-format data the environment users have no training rows on the
        // catalogue (the small matrix's cells are not in the big matrix), but hundreds elsewhere.
        let full = &world.train_full;
        let mut pairs: Vec<(u32, u32)> = full.user.iter().zip(&full.item).map(|(&u, &i)| (u, i)).collect();
        pairs.sort_unstable();
        pairs.dedup();
        let n_full = full.n_items.max(pairs.iter().map(|&(_, i)| i as usize + 1).max().unwrap_or(0));
        let mut users_of = vec![0u64; n_full];
        pairs.iter().for_each(|&(_, i)| users_of[i as usize] += 1);
        let popular_full = dsrm_metrics::popular_set(&users_of, world.popular_fraction());
        let (mut total, mut pop) = (vec![0u32; n_users], vec![0u32; n_users]);
        for &(u, i) in pairs.iter().filter(|&&(u, _)| (u as usize) < n_users) {
            total[u as usize] += 1;
            pop[u as usize] += u32::from(popular_full[i as usize]);
        }
        let upp = total.iter().zip(&pop).map(|(&t, &p)| if t == 0 { 0.0 } else { p as f32 / t as f32 }).collect();
        let n_items = popular.len();
        let mut rows = vec![0u64; n_items];
        world.train.item.iter().filter(|&&i| (i as usize) < n_items).for_each(|&i| rows[i as usize] += 1);
        let log_rows: Vec<f64> = rows.iter().map(|&c| (1.0 + c as f64).ln()).collect();
        let max = log_rows.iter().copied().fold(0.0, f64::max);
        let item_cost = log_rows.iter().map(|&l| if max > 0.0 { (l / max) as f32 } else { 0.0 }).collect();
        Self { popular, upp, item_cost }
    }

    /// The paper's Gini of long-term exposure over a window of recommendations, at the resolution of the
    /// popular / long-tail split: with popular fraction f of the catalogue and popular share s_P of the window,
    /// each item gets its group's mean exposure and the Gini coefficient of that exposure is
    /// f (1 − f) |s_P / f − (1 − s_P) / (1 − f)|: 0 when exposure is proportional to group size, 1 − f when only
    /// popular items are shown, f when only long-tail ones are. Unlike the item-level Gini of a short window
    /// (constant when no item repeats), it moves with what the window shows.
    pub fn window_gini(&self, window: &[u32]) -> f64 {
        let n = self.popular.len();
        let n_pop = self.popular.iter().filter(|&&p| p).count();
        if window.is_empty() || n_pop == 0 || n_pop == n {
            return 0.0;
        }
        let f = n_pop as f64 / n as f64;
        let s_p = window.iter().filter(|&&i| self.popular[i as usize]).count() as f64 / window.len() as f64;
        f * (1.0 - f) * (s_p / f - (1.0 - s_p) / (1.0 - f)).abs()
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
