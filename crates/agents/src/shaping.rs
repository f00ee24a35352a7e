//! Fairness by reward shaping (issue 3 item 5, `docs/design.md` §5): the training reward plus an exposure
//! term weighted by λ, wrapped around whatever [`RewardModel`] the agent trains on (`[train.reward_shaping]`).
//! Any algorithm can train on it; with λ = 0 it is the plain reward.
//!
//! ```text
//! r'(u, i | shown) = r(u, i | shown) + λ · F(i | shown)
//!   long-tail:  F = 1[i ∉ P]                                   # the step's contribution to the LT share
//!   delta-gini: F = Gini(e_shown) − Gini(e_shown + 1_i)        # −ΔGini of the episode's exposure, all n items
//! ```
//!
//! `shown` is the items shown earlier in the episode, which is what a [`RewardModel`] sees; ΔGini is 0 on
//! the first step (an empty exposure vector has no Gini to change). P is the metrics' popular set.

use dsrm_metrics::gini;
use dsrm_sim::{RewardModel, World};
use serde::{Deserialize, Serialize};

/// `train.reward_shaping = { kind = "long-tail" | "delta-gini", lambda = ... }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RewardShaping {
    /// λ · 1[item in the long tail].
    LongTail {
        /// λ ≥ 0.
        lambda: f64,
    },
    /// λ · (−ΔGini) of the episode's item exposure.
    DeltaGini {
        /// λ ≥ 0.
        lambda: f64,
    },
}

impl RewardShaping {
    /// The weight λ.
    pub fn lambda(&self) -> f64 {
        match *self {
            RewardShaping::LongTail { lambda } | RewardShaping::DeltaGini { lambda } => lambda,
        }
    }

    /// Settings out of their domain.
    pub fn problems(&self) -> Vec<String> {
        let l = self.lambda();
        if l.is_finite() && l >= 0.0 {
            Vec::new()
        } else {
            vec!["reward_shaping lambda finite and >= 0".into()]
        }
    }
}

/// A training reward with the shaping term added.
pub struct ShapedReward<'a> {
    inner: &'a dyn RewardModel,
    shaping: RewardShaping,
    popular: Vec<bool>,
}

impl<'a> ShapedReward<'a> {
    /// Wraps `inner`, with the popular set of `world` (top ⌈0.2 n⌉ items by distinct training pairs).
    pub fn new(inner: &'a dyn RewardModel, shaping: RewardShaping, world: &World) -> Self {
        Self { inner, shaping, popular: world.popular() }
    }

    /// F(item | shown).
    pub fn fairness(&self, item: u32, shown: &[u32]) -> f64 {
        match self.shaping {
            RewardShaping::LongTail { .. } => {
                f64::from(u8::from(!self.popular.get(item as usize).copied().unwrap_or(false)))
            }
            RewardShaping::DeltaGini { .. } => {
                if shown.is_empty() {
                    return 0.0;
                }
                let mut counts = vec![0u64; self.popular.len()];
                for &i in shown {
                    if let Some(c) = counts.get_mut(i as usize) {
                        *c += 1;
                    }
                }
                let before = gini(&counts);
                if let Some(c) = counts.get_mut(item as usize) {
                    *c += 1;
                }
                before - gini(&counts)
            }
        }
    }
}

impl RewardModel for ShapedReward<'_> {
    fn reward(&self, user: u32, item: u32, history: &[u32]) -> f64 {
        self.inner.reward(user, item, history) + self.shaping.lambda() * self.fairness(item, history)
    }

    /// The inner range widened by the term's: F ∈ [0, 1] (long tail) or [−1, 1] (a Gini moves by less than 1).
    fn range(&self) -> (f64, f64) {
        let (lo, hi) = self.inner.range();
        let l = self.shaping.lambda();
        match self.shaping {
            RewardShaping::LongTail { .. } => (lo, hi + l),
            RewardShaping::DeltaGini { .. } => (lo - l, hi + l),
        }
    }

    fn describe(&self) -> String {
        let term = match self.shaping {
            RewardShaping::LongTail { .. } => "long-tail indicator",
            RewardShaping::DeltaGini { .. } => "-ΔGini of episode exposure",
        };
        format!("{} + {} x {term} (reward shaping)", self.inner.describe(), self.shaping.lambda())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsrm_sim::test_support::tiny_world;
    use dsrm_sim::GroundTruthReward;

    #[test]
    fn shaping_adds_lambda_times_the_exposure_term() {
        let world = tiny_world();
        let base = GroundTruthReward::new(&world.spec.rewards);
        let popular = world.popular();
        let pop = popular.iter().position(|&p| p).unwrap() as u32;
        let tail = popular.iter().position(|&p| !p).unwrap() as u32;
        let lt = ShapedReward::new(&base, RewardShaping::LongTail { lambda: 0.5 }, world);
        assert_eq!(lt.reward(3, tail, &[]), base.reward(3, tail, &[]) + 0.5);
        assert_eq!(lt.reward(3, pop, &[]), base.reward(3, pop, &[]));
        assert_eq!(lt.range().1, base.range().1 + 0.5);

        // n items; after showing item a once, a new item b lowers the Gini, repeating a raises it.
        let g = ShapedReward::new(&base, RewardShaping::DeltaGini { lambda: 2.0 }, world);
        let n = world.spec.n_items() as f64;
        assert_eq!(g.fairness(pop, &[]), 0.0);
        // One item twice: Gini (n−1)/n before and after → 0. Two distinct items once: Gini (n−2)/n → +1/n.
        assert!(g.fairness(pop, &[pop]).abs() < 1e-12);
        assert!((g.fairness(tail, &[pop]) - 1.0 / n).abs() < 1e-12);
        assert!((g.reward(1, tail, &[pop]) - base.reward(1, tail, &[pop]) - 2.0 / n).abs() < 1e-12);
        assert!(g.describe().contains("reward shaping"));
    }

    #[test]
    fn config_parses_and_refuses_unknown_keys() {
        #[derive(Deserialize)]
        struct T {
            s: RewardShaping,
        }
        let t: T = serde_json::from_str(r#"{"s": {"kind": "delta-gini", "lambda": 0.3}}"#).unwrap();
        assert_eq!(t.s, RewardShaping::DeltaGini { lambda: 0.3 });
        assert!(serde_json::from_str::<T>(r#"{"s": {"kind": "long-tail", "lamda": 0.3}}"#).is_err());
        assert!(!RewardShaping::LongTail { lambda: -1.0 }.problems().is_empty());
    }
}
