//! The reward of the model-based anchors' training environment (`docs/protocol.md` §4.3; DORL-codes
//! `SimulatedEnv._compute_pred_reward`, version v1). The environment keeps the real quit and length logic;
//! only the reward is replaced, so this is a [`RewardModel`]:
//!
//! ```text
//! entropy_t   = Σ_{k=1..|A|} E[sorted(A[1..k])]  (+ n_s − |A| while the episode is shorter than n_s)
//!               A = the last min(t+1, n_s) actions including a_t, most recent first; E = 1 for an unseen key
//! penalised_t = ŷ[u, a_t] − λ_var · maxvar[u, a_t] + λ_ent · entropy_t − MIN_R
//! r̃_t         = max(0, penalised_t) / (1 + e_t)                  (e_t = 0: exposure intervention off)
//! MIN_R       = min ŷ − λ_var · max maxvar + λ_ent · E_min
//! MAX_R       = max ŷ − λ_var · min maxvar + λ_ent · E_max
//! ```
//!
//! n_s is the largest entropy window (2). The range reported to the `avg` tracker is (0, MAX_R − MIN_R), the
//! anchors' training-time normalisation.
//!
//! | preset | λ_var KuaiRec / KuaiRand | λ_ent KuaiRec / KuaiRand |
//! |---|---|---|
//! | MBPO | 0 | 0 |
//! | MOPO | 0.05 / 0.01 | 0 |
//! | DORL | 0.05 / 0.01 | 5 / 0.05 |

use crate::entropy::{EntropyMap, MAX_WINDOW};
use crate::predictions::Predictions;
use crate::{invalid, Result};
use dsrm_sim::{RewardModel, World};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Which penalties the training reward applies: the paper's three model-based methods, or explicit λs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorldPenalty {
    /// The raw world model: λ_var = λ_ent = 0.
    Mbpo,
    /// Uncertainty penalty only (MOPO).
    Mopo,
    /// Uncertainty penalty plus the entropy bonus (DORL).
    Dorl,
    /// No penalty, on an inverse-propensity-weighted user model (the IPS baseline, [`crate::ips`]).
    Ips,
    /// Explicit coefficients.
    Custom {
        /// λ_var.
        lambda_var: f64,
        /// λ_ent.
        lambda_ent: f64,
    },
}

/// Resolved penalty coefficients.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Lambdas {
    /// Weight of the ensemble's max variance (subtracted).
    pub var: f64,
    /// Weight of the entropy term (added).
    pub ent: f64,
}

impl WorldPenalty {
    /// The λs of the DORL paper logs for `dataset` (`World::dataset`). The presets exist for KuaiRec and
    /// KuaiRand-Pure only; other data sets need [`WorldPenalty::Custom`] (MBPO, all zeros, works anywhere).
    pub fn lambdas(self, dataset: &str) -> Result<Lambdas> {
        let kuairand = match dataset {
            "kuairec" => false,
            "kuairand-pure" => true,
            _ if matches!(self, WorldPenalty::Mbpo | WorldPenalty::Ips | WorldPenalty::Custom { .. }) => false,
            other => {
                return Err(invalid(format!(
                    "no published {} coefficients for data set {other:?}; use a custom penalty",
                    self.name()
                )))
            }
        };
        let lambda_var = if kuairand { 0.01 } else { 0.05 };
        let l = match self {
            WorldPenalty::Mbpo | WorldPenalty::Ips => Lambdas { var: 0.0, ent: 0.0 },
            WorldPenalty::Mopo => Lambdas { var: lambda_var, ent: 0.0 },
            WorldPenalty::Dorl => Lambdas { var: lambda_var, ent: if kuairand { 0.05 } else { 5.0 } },
            WorldPenalty::Custom { lambda_var, lambda_ent } => Lambdas { var: lambda_var, ent: lambda_ent },
        };
        if !(l.var.is_finite() && l.var >= 0.0 && l.ent.is_finite() && l.ent >= 0.0) {
            return Err(invalid(format!("penalty coefficients must be finite and >= 0, got {l:?}")));
        }
        Ok(l)
    }

    /// The method's name in results (`mbpo`, `mopo`, `dorl`, `custom`).
    pub fn name(self) -> &'static str {
        match self {
            WorldPenalty::Mbpo => "mbpo",
            WorldPenalty::Mopo => "mopo",
            WorldPenalty::Dorl => "dorl",
            WorldPenalty::Ips => "ips",
            WorldPenalty::Custom { .. } => "custom",
        }
    }
}

/// The penalised world-model reward r̃ (module documentation). Cheap to clone and share: the grid and the
/// entropy map sit behind `Arc`s.
#[derive(Debug, Clone)]
pub struct SimulatedReward {
    predictions: Arc<Predictions>,
    entropy: Arc<EntropyMap>,
    lambdas: Lambdas,
    min_r: f64,
    max_r: f64,
    name: String,
}

impl SimulatedReward {
    /// The reward for `world` under a preset: the λs are picked by `world.dataset`, and the grid must be the
    /// world's environment grid.
    pub fn for_world(
        world: &World,
        predictions: Arc<Predictions>,
        entropy: Arc<EntropyMap>,
        penalty: WorldPenalty,
    ) -> Result<Self> {
        let grid = (predictions.n_users(), predictions.n_items());
        if grid != (world.spec.n_users(), world.spec.n_items()) {
            return Err(invalid(format!(
                "predictions cover {} x {}, the environment is {} x {}",
                grid.0,
                grid.1,
                world.spec.n_users(),
                world.spec.n_items()
            )));
        }
        Self::new(predictions, entropy, penalty.lambdas(&world.dataset)?, penalty.name())
    }

    /// The reward from explicit parts; `name` labels it in results. Computes MIN_R and MAX_R once.
    pub fn new(
        predictions: Arc<Predictions>,
        entropy: Arc<EntropyMap>,
        lambdas: Lambdas,
        name: impl Into<String>,
    ) -> Result<Self> {
        if !(lambdas.var.is_finite() && lambdas.ent.is_finite()) {
            return Err(invalid(format!("penalty coefficients must be finite, got {lambdas:?}")));
        }
        let (pred_min, pred_max) = predictions.pred_range();
        let (var_min, var_max) = predictions.max_var_range();
        let (e_min, e_max) = entropy.bounds();
        let min_r = pred_min - lambdas.var * var_max + lambdas.ent * e_min;
        let max_r = pred_max - lambdas.var * var_min + lambdas.ent * e_max;
        Ok(Self { predictions, entropy, lambdas, min_r, max_r, name: name.into() })
    }

    /// entropy_t for showing `item` after `history` (module documentation).
    pub fn entropy_term(&self, item: u32, history: &[u32]) -> f64 {
        let n_s = self.entropy.n_s();
        if n_s == 0 {
            return 0.0;
        }
        let len = (history.len() + 1).min(n_s);
        let mut recent = [0u32; MAX_WINDOW];
        recent[0] = item;
        for (j, slot) in recent.iter_mut().enumerate().take(len).skip(1) {
            *slot = history[history.len() - j];
        }
        let found: f64 = (1..=len).map(|k| self.entropy.get(&recent[..k]).unwrap_or(1.0)).sum();
        found + (n_s - len) as f64
    }

    /// penalised_t, before the clip at 0 (module documentation).
    ///
    /// # Panics
    /// If `user` or `item` lies outside the grid.
    pub fn penalised(&self, user: u32, item: u32, history: &[u32]) -> f64 {
        let mut r = self.predictions.pred_at(user, item) - self.min_r;
        if self.lambdas.var != 0.0 {
            r -= self.lambdas.var * self.predictions.max_var_at(user, item);
        }
        if self.lambdas.ent != 0.0 {
            r += self.lambdas.ent * self.entropy_term(item, history);
        }
        r
    }

    /// The exposure effect e_t of CIRS's exposure intervention: 0 (intervention off, as in every DORL paper
    /// run). The hook that an exposure model would fill.
    fn exposure(&self, _user: u32, _item: u32, _history: &[u32]) -> f64 {
        0.0
    }

    /// MIN_R.
    pub fn min_r(&self) -> f64 {
        self.min_r
    }

    /// MAX_R.
    pub fn max_r(&self) -> f64 {
        self.max_r
    }

    /// The coefficients in use.
    pub fn lambdas(&self) -> Lambdas {
        self.lambdas
    }
}

impl RewardModel for SimulatedReward {
    fn reward(&self, user: u32, item: u32, history: &[u32]) -> f64 {
        self.penalised(user, item, history).max(0.0) / (1.0 + self.exposure(user, item, history))
    }

    fn range(&self) -> (f64, f64) {
        (0.0, self.max_r - self.min_r)
    }

    fn describe(&self) -> String {
        format!("world model ({} penalties λ_var {}, λ_ent {})", self.name, self.lambdas.var, self.lambdas.ent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two users x three items; entropy map over windows {1, 2} with a few keys.
    fn reward(lambdas: Lambdas) -> SimulatedReward {
        let p =
            Predictions::new(2, 3, vec![1.0, 2.0, 0.5, 0.0, 3.0, 1.5], vec![0.2, 0.1, 0.4, 0.3, 0.05, 0.6]).unwrap();
        let e =
            EntropyMap::from_entries(&[1, 2], [(vec![0], 0.5), (vec![1], 0.8), (vec![0, 1], 0.3), (vec![1, 2], 0.9)])
                .unwrap();
        SimulatedReward::new(Arc::new(p), Arc::new(e), lambdas, "test").unwrap()
    }

    #[test]
    fn matches_the_formula_on_hand_set_numbers() {
        let r = reward(Lambdas { var: 0.05, ent: 5.0 });
        // E_min = 0.5 + 0.3, E_max = 0.8 + 0.9; ŷ in [0, 3]; maxvar in [0.05, 0.6].
        let min_r = 0.0 - 0.05 * 0.6 + 5.0 * 0.8;
        let max_r = 3.0 - 0.05 * 0.05 + 5.0 * 1.7;
        // The grid is f32, so compare at f32 precision.
        assert!((r.min_r() - min_r).abs() < 1e-6 && (r.max_r() - max_r).abs() < 1e-6);
        assert_eq!(r.range().0, 0.0);
        assert!((r.range().1 - (max_r - min_r)).abs() < 1e-6);

        // t = 0, item 1, user 0: A = [1]; E[(1)] = 0.8, plus padding n_s − |A| = 1.
        assert!((r.entropy_term(1, &[]) - 1.8).abs() < 1e-12);
        let want = 2.0 - 0.05 * 0.1 + 5.0 * 1.8 - min_r;
        assert!((r.reward(0, 1, &[]) - want).abs() < 1e-6, "{} vs {want}", r.reward(0, 1, &[]));

        // t = 2, history [2, 0], item 1: A = [1, 0]; E[(1)] + E[(0,1)] = 0.8 + 0.3, no padding.
        assert!((r.entropy_term(1, &[2, 0]) - 1.1).abs() < 1e-12);
        // Unknown keys count 1: item 2 after 2: E[(2)] missing → 1, E[(2,2)] missing → 1.
        assert!((r.entropy_term(2, &[2]) - 2.0).abs() < 1e-12);
        // Item 2 after 1: E[(2)] → 1, E[(1,2)] = 0.9.
        assert!((r.entropy_term(2, &[0, 1]) - 1.9).abs() < 1e-12);
        let want = 1.5 - 0.05 * 0.6 + 5.0 * 1.9 - min_r;
        assert!((r.penalised(1, 2, &[0, 1]) - want).abs() < 1e-6);
    }

    #[test]
    fn clip_at_zero_and_presets() {
        // MIN_R and MAX_R bound every cell by construction.
        let r = reward(Lambdas { var: 1.0, ent: 0.0 });
        for u in 0..2 {
            for i in 0..3 {
                assert!(r.penalised(u, i, &[]) >= -1e-12, "MIN_R bounds every cell");
                assert!(r.reward(u, i, &[]) <= r.range().1 + 1e-12, "MAX_R − MIN_R bounds every cell");
            }
        }
        let mbpo = reward(Lambdas { var: 0.0, ent: 0.0 });
        assert!((mbpo.reward(1, 0, &[]) - 0.0).abs() < 1e-12, "min ŷ maps to 0");
        assert!((mbpo.reward(1, 1, &[5]) - 3.0).abs() < 1e-12, "no entropy term without λ_ent");

        let l = |p: WorldPenalty, d: &str| p.lambdas(d).unwrap();
        assert_eq!(l(WorldPenalty::Dorl, "kuairec"), Lambdas { var: 0.05, ent: 5.0 });
        assert_eq!(l(WorldPenalty::Dorl, "kuairand-pure"), Lambdas { var: 0.01, ent: 0.05 });
        assert_eq!(l(WorldPenalty::Mopo, "kuairec"), Lambdas { var: 0.05, ent: 0.0 });
        assert_eq!(l(WorldPenalty::Mopo, "kuairand-pure"), Lambdas { var: 0.01, ent: 0.0 });
        assert_eq!(l(WorldPenalty::Mbpo, "coat"), Lambdas { var: 0.0, ent: 0.0 });
        assert!(WorldPenalty::Dorl.lambdas("coat").is_err());
        assert!(WorldPenalty::Custom { lambda_var: -1.0, lambda_ent: 0.0 }.lambdas("kuairec").is_err());
        let custom: WorldPenalty = serde_json::from_str(r#"{"custom": {"lambda_var": 0.1, "lambda_ent": 2}}"#).unwrap();
        assert_eq!(custom, WorldPenalty::Custom { lambda_var: 0.1, lambda_ent: 2.0 });
        assert_eq!(serde_json::from_str::<WorldPenalty>(r#""dorl""#).unwrap(), WorldPenalty::Dorl);
    }
}
