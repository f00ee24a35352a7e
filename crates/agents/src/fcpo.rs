//! FCPO-style fairness-constrained PPO (Ge et al., WSDM 2021, arXiv 2101.03584; `docs/design.md` §5): PPO on a
//! Lagrangian of the reward and a cost on the exposure of the popular group, with dual ascent on the
//! multiplier. FCPO itself solves a trust-region CPO step; this is the Lagrangian relaxation (PPO-Lagrangian),
//! which keeps its two critics (reward, cost) and its constraint.
//!
//! ```text
//! cost        c_t = 1[a_t ∈ P] − d   (`cost = "share"`, default)   # a popular item was shown, centred at d
//!             c_t = 1[a_t ∈ P]       (`cost = "count"`, FCPO's code)
//! constraint  J_C = popular share of recommendations ≤ d = 1 − long_tail_target
//! per collection (whole episodes; A_R, R from GAE on rewards with V_R as in PPO):
//!   V_C(s)    = cost critic on the (detached) states;  A_C = GAE(γ, λ) on c with V_C
//!   A         = (A_R − μ · A_C) / (1 + μ)                        # the Lagrangian's advantage, rescaled
//!   PPO update of π and V_R on A (clip, minibatches; the tracker trains through it as in PPO)
//!   cost critic: minibatch MSE to the cost returns
//!   μ        ← max(0, μ + η · (Ĵ_C − d))                          # dual ascent on the measured popular share
//! ```
//!
//! Why the centred cost: FCPO's code runs fixed-length episodes, where the count of popular items and their share
//! are the same constraint. Under abandonment they are not: an episode's count falls when it ends early, so as μ
//! grows the counted cost rewards ending sessions (on the masked Coat feedback loop, μ climbed to 12 over ten
//! rounds and training sessions fell from 22 steps to 2). With the centred cost an episode's sum is its length ×
//! (its popular share − d): ending a session early lowers it only when the rest of the session would have
//! exceeded the share d, the constraint the dual ascent measures.
//!
//! The multiplier, the measured share and the constraint gap are logged in `UpdateStats.extra`.

use crate::actor_critic::{actor_critic_tensors, on_policy_iteration, restore_actor_critic};
use crate::learner::{EvalPolicy, Iteration, Learner, TrainingEnv};
use crate::pace::schedule;
use crate::ppo_update::{Ppo, PpoConfig};
use crate::rl_policy::actor_critic_policy;
use crate::rollout::Rollout;
use crate::trained_tracker::TrainedTracker;
use crate::update_stats::UpdateStats;
use crate::{AgentError, Result};
use dsrm_nn::checkpoint;
use dsrm_nn::mlp::{Activation, Mlp};
use dsrm_nn::optim::{Adam, AdamConfig};
use dsrm_nn::tch::nn::{Module, VarStore};
use dsrm_nn::tch::{self, Device, Kind, Tensor};
use dsrm_sim::World;
use dsrm_state::StateTracker;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// What a step costs: the popular indicator centred at the allowed share, or the indicator alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FcpoCost {
    /// c_t = 1[a_t ∈ P] − d: an episode's cost is its length × (its popular share − d), the share constraint.
    #[default]
    Share,
    /// c_t = 1[a_t ∈ P] (FCPO's code): the number of popular items, the same constraint only when every episode
    /// has the same length; under abandonment a shorter session costs less.
    Count,
}

/// Each step's cost: `popular[a]` as 1 or 0, less `limit` (the allowed popular share) under [`FcpoCost::Share`].
pub fn step_costs(actions: &[u32], popular: &[bool], limit: f64, cost: FcpoCost) -> Vec<f64> {
    let offset = match cost {
        FcpoCost::Share => limit,
        FcpoCost::Count => 0.0,
    };
    actions.iter().map(|&a| f64::from(u8::from(popular[a as usize])) - offset).collect()
}

/// FCPO hyper-parameters: the constraint and the dual step, and the PPO underneath (`[train.algorithm.ppo]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FcpoConfig {
    /// Required long-tail share of recommendations: the popular share may be at most 1 − this.
    pub long_tail_target: f64,
    /// What a step costs (`"share"`, the default, or `"count"`; see the module's note).
    pub cost: FcpoCost,
    /// Dual ascent step η on the multiplier μ.
    pub multiplier_lr: f64,
    /// μ at the start of training.
    pub initial_multiplier: f64,
    /// Adam learning rate of the cost critic.
    pub cost_critic_lr: f64,
    /// Hidden layers of the cost critic.
    pub cost_hidden: Vec<i64>,
    /// The PPO that optimises the Lagrangian.
    pub ppo: PpoConfig,
}

impl Default for FcpoConfig {
    fn default() -> Self {
        Self {
            long_tail_target: 0.5,
            cost: FcpoCost::Share,
            multiplier_lr: 0.5,
            initial_multiplier: 0.0,
            cost_critic_lr: 1e-3,
            cost_hidden: vec![64, 64],
            ppo: PpoConfig::default(),
        }
    }
}

impl FcpoConfig {
    /// Settings out of their domain, as readable phrases.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(0.0..=1.0).contains(&self.long_tail_target) {
            p.push("fcpo long_tail_target in [0, 1]".into());
        }
        if !(self.multiplier_lr >= 0.0 && self.initial_multiplier >= 0.0) {
            p.push("fcpo multiplier_lr >= 0 and initial_multiplier >= 0".into());
        }
        if self.cost_hidden.iter().any(|&h| h <= 0) {
            p.push("fcpo cost_hidden sizes > 0".into());
        }
        p
    }
}

/// An FCPO agent: PPO's networks, a cost critic and the Lagrange multiplier.
#[derive(Debug)]
pub struct Fcpo {
    /// Hyper-parameters.
    pub cfg: FcpoConfig,
    /// The policy, its reward critic and their optimiser.
    pub ppo: Ppo,
    cost_vs: VarStore,
    cost_critic: Mlp,
    cost_adam: Adam,
    /// The Lagrange multiplier μ ≥ 0.
    pub multiplier: f64,
    popular: Vec<bool>,
}

impl Fcpo {
    /// A fresh agent for states of `state_dim` in `world` (seed libtorch first).
    pub fn new(cfg: FcpoConfig, state_dim: i64, world: &World, device: Device) -> Result<Self> {
        let ppo = Ppo::new(cfg.ppo.clone(), state_dim, world.spec.n_items() as i64, device)?;
        let cost_vs = VarStore::new(device);
        let sizes = [&[state_dim][..], &cfg.cost_hidden, &[1]].concat();
        let cost_critic = Mlp::new(&(cost_vs.root() / "cost"), &sizes, Activation::Relu);
        let cost_adam = Adam::new(&cost_vs, AdamConfig { lr: cfg.cost_critic_lr, ..Default::default() });
        let popular = world.popular();
        Ok(Self { multiplier: cfg.initial_multiplier, cfg, ppo, cost_vs, cost_critic, cost_adam, popular })
    }

    /// Detached states of `steps`, in one no-grad pass.
    fn states(&self, rollout: &Rollout, steps: &[usize], tracker: &TrainedTracker) -> Result<Tensor> {
        let (window, n) = (tracker.tracker.window(), self.popular.len());
        let batch = rollout.history_batch(steps, window, n, self.cost_vs.device());
        Ok(tch::no_grad(|| tracker.states(&batch))?.f_detach()?)
    }

    /// The Lagrangian update on one collection (reward advantages already computed by GAE).
    pub fn update(
        &mut self,
        rollout: &Rollout,
        tracker: &mut TrainedTracker,
        rng: &mut ChaCha8Rng,
        steps_before: u64,
    ) -> Result<UpdateStats> {
        let device = self.cost_vs.device();
        let (gamma, lambda) = (self.cfg.ppo.gamma, self.cfg.ppo.gae_lambda);
        // Costs and the cost critic's values, then A_C by GAE on the same episodes.
        let all: Vec<usize> = (0..rollout.len()).collect();
        let values: Vec<f32> = tch::no_grad(|| -> Result<Vec<f32>> {
            let v = self.cost_critic.forward(&self.states(rollout, &all, tracker)?).f_squeeze_dim(-1)?;
            Ok(Vec::<f32>::try_from(v.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?)?)
        })?;
        let limit = 1.0 - self.cfg.long_tail_target;
        let mut cost = rollout.clone();
        cost.rewards = step_costs(&rollout.actions, &self.popular, limit, self.cfg.cost);
        cost.values = values;
        cost.compute_gae(gamma, lambda);
        let shown_popular = rollout.actions.iter().filter(|&&a| self.popular[a as usize]).count();
        let popular_share = shown_popular as f64 / rollout.len().max(1) as f64;

        // PPO on the Lagrangian's advantage.
        let mu = self.multiplier;
        let mut lagrangian = rollout.clone();
        for (a, c) in lagrangian.advantages.iter_mut().zip(&cost.advantages) {
            *a = ((f64::from(*a) - mu * f64::from(*c)) / (1.0 + mu)) as f32;
        }
        let mut stats = self.ppo.update(&lagrangian, tracker, rng, steps_before)?;

        // The cost critic.
        let mut cost_vf = 0.0;
        let mut n = 0usize;
        let p = &self.cfg.ppo;
        let (pace, size, repeat) = (p.updates_per_1k_steps, p.batch_size, p.repeat_per_collect);
        for steps in schedule(pace, steps_before, rollout.len(), size, repeat, rng) {
            let states = self.states(rollout, &steps, tracker)?;
            let target: Vec<f32> = steps.iter().map(|&s| cost.returns[s]).collect();
            let target = Tensor::from_slice(&target).f_to_device(device)?;
            let v = self.cost_critic.forward(&states).f_squeeze_dim(-1)?;
            let loss = target.f_sub(&v)?.f_square()?.f_mean(Kind::Float)?;
            let value = loss.f_double_value(&[])?;
            if !value.is_finite() {
                return Err(AgentError::Diverged(format!("fcpo cost critic loss {value}")));
            }
            self.cost_adam.backward_step(&loss)?;
            cost_vf += value;
            n += 1;
        }

        // Dual ascent on μ.
        self.multiplier = (mu + self.cfg.multiplier_lr * (popular_share - limit)).max(0.0);
        for (key, value) in [
            ("multiplier", self.multiplier),
            ("popular_share", popular_share),
            ("constraint_gap", popular_share - limit),
            ("cost_vf_loss", cost_vf / n.max(1) as f64),
        ] {
            stats.extra.insert(key.into(), value);
        }
        Ok(stats)
    }
}

impl Learner for Fcpo {
    fn name(&self) -> &'static str {
        "fcpo"
    }

    fn iterate(&mut self, env: &TrainingEnv, tracker: &mut TrainedTracker, rng: &mut ChaCha8Rng) -> Result<Iteration> {
        let gamma_lambda = (self.cfg.ppo.gamma, self.cfg.ppo.gae_lambda, self.cfg.ppo.mask_shown);
        on_policy_iteration(
            self,
            |a| &a.ppo.net,
            env,
            gamma_lambda,
            tracker,
            rng,
            |a, rollout, tracker, rng, before| a.update(rollout, tracker, rng, before),
        )
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut tensors = actor_critic_tensors(&self.ppo.net, &self.ppo.adam);
        tensors.extend(checkpoint::named("fcpo_cost", &self.cost_vs));
        tensors.extend(self.cost_adam.state("fcpo_cost_adam"));
        tensors.push(("fcpo/multiplier".into(), Tensor::from(self.multiplier)));
        tensors
    }

    fn restore(&mut self, tensors: &[(String, Tensor)]) -> Result<()> {
        restore_actor_critic(&mut self.ppo.net, &mut self.ppo.adam, tensors)?;
        checkpoint::restore("fcpo_cost", &mut self.cost_vs, tensors)?;
        self.cost_adam.restore("fcpo_cost_adam", tensors)?;
        let mu = tensors.iter().find(|(n, _)| n == "fcpo/multiplier").ok_or_else(|| {
            AgentError::Nn(dsrm_nn::NnError::Corrupt {
                path: "<checkpoint>".into(),
                detail: "missing fcpo/multiplier".into(),
            })
        })?;
        self.multiplier = mu.1.f_double_value(&[])?;
        Ok(())
    }

    fn snapshot(&self, tracker: Box<dyn StateTracker>, reward_range: (f64, f64)) -> Result<Box<dyn EvalPolicy>> {
        let policy = actor_critic_policy("fcpo", tracker, self.ppo.net.try_clone()?, reward_range)?;
        Ok(Box::new(policy.masking_shown(self.cfg.ppo.mask_shown)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Items 0 and 1 popular, 2 and 3 long-tail; the allowed popular share d = 0.5.
    const POPULAR: [bool; 4] = [true, true, false, false];

    fn total(actions: &[u32], cost: FcpoCost) -> f64 {
        step_costs(actions, &POPULAR, 0.5, cost).iter().sum()
    }

    #[test]
    fn the_share_cost_does_not_reward_a_shorter_session_that_keeps_the_share() {
        let (short, long) = ([0, 2], [0, 2, 1, 3, 0, 2]);
        // Both sessions show half popular items, the limit: neither costs anything, whatever its length.
        assert_eq!(total(&short, FcpoCost::Share), 0.0);
        assert_eq!(total(&long, FcpoCost::Share), 0.0);
        // Counted, the shorter one costs a third as much: a large μ would push the policy to end sessions.
        assert_eq!(total(&short, FcpoCost::Count), 1.0);
        assert_eq!(total(&long, FcpoCost::Count), 3.0);
        // A session over the limit costs its length × (share − d); one under it earns a credit.
        assert_eq!(total(&[0, 1, 0], FcpoCost::Share), 1.5);
        assert_eq!(total(&[2, 3, 0, 2], FcpoCost::Share), -1.0);
    }

    #[test]
    fn the_cost_is_a_setting_with_the_share_as_default() {
        let parse = |s: &str| serde_json::from_str::<FcpoConfig>(s);
        assert_eq!(parse("{}").unwrap().cost, FcpoCost::Share);
        assert_eq!(parse(r#"{"cost": "count"}"#).unwrap().cost, FcpoCost::Count);
        let err = parse(r#"{"cost": "sum"}"#).unwrap_err().to_string();
        assert!(err.contains("share") && err.contains("count"), "{err}");
    }
}
