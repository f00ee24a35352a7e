//! The HRL agent's settings (`[train.algorithm] kind = "hrl"`): what the high level emits, its fairness term,
//! the updater, and the hyper-parameters of both levels.

use crate::item_factors::MfConfig;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What the high level emits (§4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GoalType {
    /// (a) Group exposure weights (g_pop, g_lt) ≥ 0 (HER4IF).
    #[default]
    Weights,
    /// (b) A target long-tail ratio ρ* ∈ [0, 1], mapped exactly onto group weights.
    TargetRatio,
    /// (c) The paper's z = [ω_acc, ω_fair] ≥ 0, which the low level's item score reads directly:
    /// Ψ(i) = ω_acc · Sim(q_t, e_i) − ω_fair · c̄_i, π_L ∝ exp(Ψ / τ) (`super` module header).
    Paper,
}

/// Where goal type (c)'s item embeddings e_i start (they train with the low level either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemInit {
    /// N(0, 1) rows. At the actor's learning rate (8e-5, Adam) a unit-variance row moves about 0.2 per
    /// coordinate over a 600,000-step run, so its direction stays close to where it started.
    #[default]
    Random,
    /// The training log's item factors (`crate::item_factors`, the MF of `mf`, normalised), as TD3 and DNaIR
    /// read them; items without a training row keep their random row.
    Mf,
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
    /// The paper's −Gini(L_t): minus the Gini coefficient of the catalogue's exposure over the window of the
    /// episode's last `gini_window` recommendations ending with the segment, at the resolution of the
    /// popular / long-tail split (each item receives its group's mean exposure; `super::networks::window_gini`).
    WindowGini,
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
    /// Goal type: `weights` (a), `target-ratio` (b) or `paper` (c).
    pub goal: GoalType,
    /// Decision interval c of the high level (HER4IF: 1; sweep {1, 3, 5}).
    pub interval: usize,
    /// λ_f, the weight of the fairness term in R_H (HER4IF: 0.1; the Pareto sweep varies it).
    pub lambda_f: f64,
    /// The fairness term of R_H.
    pub fairness: FairnessTerm,
    /// The window of [`FairnessTerm::WindowGini`]: this many of the episode's last recommendations, ending
    /// with the segment (fewer at the start of an episode).
    pub gini_window: usize,
    /// τ of goal type (c): π_L ∝ exp(Ψ / τ).
    pub temperature: f64,
    /// Size of goal type (c)'s query q_t and item embeddings e_i.
    pub query_dim: i64,
    /// The low level never recommends an item already shown in the episode, in training as in every evaluation
    /// mode (the paper's "after masking"). Off (the default), training collections mask nothing (FB) and only
    /// the no-repeat evaluation modes mask. An episode that has shown every item masks nothing.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mask_shown: bool,
    /// Where goal type (c)'s item embeddings start: `random` (the default) or `mf`.
    #[serde(skip_serializing_if = "ItemInit::is_random")]
    pub item_init: ItemInit,
    /// The MF behind `item_init = "mf"` (fitted on the training log, seeded; its `dim` must equal `query_dim`).
    #[serde(skip_serializing_if = "is_default_mf")]
    pub mf: MfConfig,
    /// Goal type (b) with ρ* fixed: the high level is not learned (a Pareto point by construction).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_ratio: Option<f64>,
    /// Initial standard deviation of the goal Gaussian (learnable). Default 0.1 for weights (HER4IF), 0.5 on
    /// the logit scale for a target ratio (0.1 there would barely explore), 0.2 for the paper's ω (means near
    /// softplus(0) ≈ 0.69 at the start).
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
    /// Paced updates instead of passes: this many gradient updates per 1,000 environment steps, half at each
    /// level, whatever the collection's size (`crate::pace`; the equal-compute schedule of `dsrm study paper`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updates_per_1k_steps: Option<f64>,
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

impl ItemInit {
    fn is_random(&self) -> bool {
        *self == ItemInit::Random
    }
}

fn is_default_mf(mf: &MfConfig) -> bool {
    *mf == MfConfig::default()
}

impl Default for HrlConfig {
    fn default() -> Self {
        Self {
            goal: GoalType::Weights,
            interval: 1,
            lambda_f: 0.1,
            fairness: FairnessTerm::LongTail,
            gini_window: 10,
            temperature: 0.1,
            query_dim: 32,
            mask_shown: false,
            item_init: ItemInit::Random,
            mf: MfConfig::default(),
            fixed_ratio: None,
            goal_std: None,
            updater: Updater::Ppo,
            gamma: 0.9,
            gae_lambda: 0.95,
            clip: 0.2,
            repeat_per_collect: 4,
            updates_per_1k_steps: None,
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

    pub(super) fn goal_dim(&self) -> i64 {
        match self.goal {
            GoalType::Weights | GoalType::Paper => 2,
            GoalType::TargetRatio => 1,
        }
    }

    pub(super) fn initial_std(&self) -> f64 {
        self.goal_std.unwrap_or(match self.goal {
            GoalType::Weights => 0.1,
            GoalType::TargetRatio => 0.5,
            GoalType::Paper => 0.2,
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
        need(self.gini_window >= 1, "gini_window >= 1");
        need(self.temperature > 0.0 && self.temperature.is_finite(), "temperature > 0");
        need(self.query_dim >= 1, "query_dim >= 1");
        need(
            self.item_init == ItemInit::Random
                || (self.goal == GoalType::Paper && self.mf.dim as i64 == self.query_dim),
            "item_init = \"mf\" needs goal = \"paper\" and mf.dim equal to query_dim",
        );
        need(self.hidden.iter().all(|&h| h > 0), "hidden sizes > 0");
        if let Some(r) = self.fixed_ratio {
            need((0.0..=1.0).contains(&r), "fixed_ratio in [0, 1]");
            need(self.goal == GoalType::TargetRatio, "fixed_ratio needs goal = \"target-ratio\"");
        }
        p
    }
}
