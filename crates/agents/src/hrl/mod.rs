//! DSRM-HRL's hierarchical fairness agent (`docs/design.md` §4.4), after HER4IF's hierarchical PPO with the
//! decision interval of HRL4PFG / LHRL. Both levels and both value heads read the tracker's state ŝ_t; with
//! the DSRM stage the tracker is the frozen tracker + denoiser, so ŝ_t is the purified state.
//!
//! ```text
//! every c steps (t = 0, c, 2c, ...):                      # high level π_H(g | ŝ_t, upp_u, LT_t)
//!   x_H = [ŝ_t, upp_u, running long-tail share of the episode]
//!   (a) weights:      z ~ N(softmax(MLP_H(x_H)), σ²),  g = ReLU(z) = (g_pop, g_lt)
//!   (b) target ratio: z ~ N(MLP_H(x_H), σ²),           ρ* = sigmoid(z)      (or ρ* fixed: nothing to learn)
//!   (c) paper:        z ~ N(softplus(MLP_H(x_H) + b₀), σ²), g = ReLU(z) = (ω_acc, ω_fair)
//!                     b₀ such that a fresh network starts at ω ≈ (1, 0.05): engagement first, λ buys fairness
//! every step:                                             # low level π_L(a | ŝ_t, g)
//!   (a), (b): p̃ = softmax(MLP_L([ŝ_t, goal vector]))     # goal vector (g_pop, g_lt), or (1 − ρ*, ρ*)
//!   (mask shown items in NX modes and renormalise)
//!   (a) p_i ∝ p̃_i · (g_pop if i is popular else g_lt)    # HER4IF's group reweighting
//!   (b) m = Σ_{i long tail} p̃_i, g_lt = ρ*/m, g_pop = (1 − ρ*)/(1 − m)   → exactly ρ* on the long tail
//!   (c) q_t = MLP_L(ŝ_t);  Ψ(i) = ω_acc · cos(q_t, e_i) − ω_fair · c̄_i;  p ∝ exp(Ψ / τ) over allowed items
//!       e_i learned item embeddings (starting at N(0, 1) rows, or at the training log's MF item factors with
//!       `item_init = "mf"`); c̄_i = ln(1 + count_i) / max_j ln(1 + count_j), count_i = item i's rows
//!       in the training log (its logged exposure; the paper writes log pop_i)
//!   a_t ~ p
//! rewards: r_L,t = r_t;  R_H = Σ_{k<c} r_{t+k} + λ_f · F_seg, with F_seg one of
//!   long-tail:   LT_seg / (1 + upp_u)
//!   delta-gini:  −ΔGini of the episode's exposure over the segment
//!   window-gini: −Gini(L_t), L_t the exposure of the episode's last `gini_window` recommendations up to the
//!                segment's end, at popular / long-tail resolution (`GroupFacts::window_gini`; the paper's term)
//! update (per collection of whole episodes):
//!   low level:  GAE(γ, λ) over steps with V_L([x_H, g]);  PPO clip (or A2C) on log p(a_t), entropy of p
//!   high level: GAE(γ^c, λ) over segments with V_H(x_H);  PPO clip (or A2C) on log N(z; μ, σ²), Gaussian entropy
//!   critics V_H and V_L (V_L reads the goal); actors lr 8e-5, critic lr 1e-3, grad clip 10
//! ```
//!
//! The popular / long-tail split is the metrics' split (`dsrm_metrics::popular_set` on the world's distinct
//! training pairs). upp_u is the share of user u's distinct items in the whole training log (`train_full`)
//! that are popular by that log's own counts (KuaiRec: the big matrix over all its videos), so it is defined
//! for environment users that have no training row on the catalogue.
//!
//! Decoupled retuning (`dsrm retune`): `init_from` starts from a finished run's networks and
//! `freeze_low_level` trains only the high level (and V_H) against the frozen low level and tracker.
mod collect;
mod config;
mod networks;
mod policy;
mod serving;
mod update;

pub use collect::HierRollout;
pub use config::{FairnessTerm, GoalType, HrlConfig, ItemInit, Updater};
pub use networks::{group_weights, GroupFacts, HrlNets};
pub use policy::HrlPolicy;

use crate::item_factors::ItemFactors;
use crate::learner::{EvalPolicy, Iteration, Learner, TrainingEnv};
use crate::trained_tracker::TrainedTracker;
use crate::{AgentError, Result};
use dsrm_nn::checkpoint;
use dsrm_nn::optim::{Adam, AdamConfig};
use dsrm_nn::tch::nn::VarStore;
use dsrm_nn::tch::{Device, Tensor};
use dsrm_sim::World;
use dsrm_state::StateTracker;
use policy::HrlSnapshot;
use rand_chacha::ChaCha8Rng;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The hierarchical agent.
#[derive(Debug)]
pub struct Hrl {
    /// Hyper-parameters.
    pub cfg: HrlConfig,
    /// The networks.
    pub nets: HrlNets,
    high_adam: Adam,
    low_adam: Adam,
    /// One optimiser per critic: a level's step moves only its own critic (one Adam over both would move the
    /// other critic on momentum alone, and only where its gradient had been defined — not after a resume).
    critic_high_adam: Adam,
    critic_low_adam: Adam,
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
        nets.set_item_cost(&facts.item_cost)?;
        if cfg.item_init == ItemInit::Mf {
            nets.set_item_embeddings(&ItemFactors::fit(world, &cfg.mf)?)?;
        }
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
        let critic_adam = |high: bool| {
            let cfg = AdamConfig { lr: cfg.critic_lr, max_grad_norm: cfg.max_grad_norm, ..Default::default() };
            Adam::over(nets.critic_vars(high), cfg)
        };
        let (critic_high_adam, critic_low_adam) = (critic_adam(true), critic_adam(false));
        let popular: Vec<f32> = facts.popular.iter().map(|&p| f32::from(u8::from(p))).collect();
        let popular_f = Tensor::from_slice(&popular).f_to_device(device)?;
        Ok(Self { cfg, nets, high_adam, low_adam, critic_high_adam, critic_low_adam, facts, popular_f })
    }
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
        let stats = self.update(&ro, tracker, rng, env.steps_before)?;
        Ok(Iteration::of(&ro.low, stats, collect_s, t.elapsed().as_secs_f64()))
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut tensors = checkpoint::named("hrl_high", &self.nets.high_vs);
        tensors.extend(checkpoint::named("hrl_low", &self.nets.low_vs));
        tensors.extend(checkpoint::named("hrl_critic", &self.nets.critic_vs));
        tensors.extend(self.high_adam.state("hrl_high_adam"));
        tensors.extend(self.low_adam.state("hrl_low_adam"));
        tensors.extend(self.critic_high_adam.state("hrl_critic_high_adam"));
        tensors.extend(self.critic_low_adam.state("hrl_critic_low_adam"));
        tensors
    }

    fn restore(&mut self, tensors: &[(String, Tensor)]) -> Result<()> {
        checkpoint::restore("hrl_high", &mut self.nets.high_vs, tensors)?;
        checkpoint::restore("hrl_low", &mut self.nets.low_vs, tensors)?;
        checkpoint::restore("hrl_critic", &mut self.nets.critic_vs, tensors)?;
        self.high_adam.restore("hrl_high_adam", tensors)?;
        self.low_adam.restore("hrl_low_adam", tensors)?;
        self.critic_high_adam.restore("hrl_critic_high_adam", tensors)?;
        self.critic_low_adam.restore("hrl_critic_low_adam", tensors)?;
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
            mask_shown: self.cfg.mask_shown,
            trained: (self.cfg.goal, self.cfg.fixed_ratio),
            goal: [0.0; 2],
            hold_goal: false,
            logits: vec![0.0; n_items],
            scores: vec![0.0; n_items],
            error: None,
            cpu: None,
        };
        Ok(Box::new(HrlPolicy { inner: Arc::new(Mutex::new(snapshot)) }))
    }
}

#[cfg(test)]
mod tests;
