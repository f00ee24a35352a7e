//! Heuristic baselines: the non-RL reference points every learned recommender is compared with.
//!
//! Each policy lives in its own file and learns only from a [`TrainingContext`] (the training log and the
//! item categories, never the ground truth), plus, for the bandits, the rewards the evaluation feeds back
//! through [`Policy::observe`]. [`build`] turns a [`HeuristicKind`] and a [`HeuristicConfig`] into a boxed
//! [`Policy`]; [`ALL`] lists the kinds in table order.
//!
//! | Kind | Learns from | `Selection::Sampled` |
//! |---|---|---|
//! | [`random`] | nothing | uniform (same as `Argmax`) |
//! | [`most_popular`] | row counts per item | ∝ 1 + count |
//! | [`category_cycling`] | mean target per item, item tags | softmax over quit-safe items |
//! | [`epsilon_greedy`] | mean target per item (prior) + online rewards | ignored: own exploration |
//! | [`ucb`] | mean target per item (prior) + online rewards | ignored: own exploration |
//! | [`mf_greedy`] | matrix factorisation of the log | softmax over predicted targets |
//!
//! Per step, `random` costs O(1) and the others O(n_items) at most, with no heap allocation.

pub mod category_cycling;
pub mod epsilon_greedy;
pub mod mf_greedy;
pub mod most_popular;
pub mod random;
pub mod ucb;

pub use category_cycling::CategoryCycling;
pub use epsilon_greedy::EpsilonGreedy;
pub use mf_greedy::MfGreedy;
pub use most_popular::MostPopular;
pub use random::Random;
pub use ucb::Ucb;

use crate::Policy;
use dsrm_models::{Interactions, MfConfig, MfError};

/// Hyper-parameters of all heuristics, in one struct so a run config names one `[heuristics]` table.
/// Every field has a default; a field only matters to the policies that name it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeuristicConfig {
    /// `epsilon-greedy`: probability of a uniform allowed item instead of the greedy one. Default 0.1
    /// (the anchors' `run_epsilongreedy.py`). Must lie in [0, 1].
    pub epsilon: f64,
    /// `ucb`: weight `c` of the exploration bonus `c·sqrt(ln(total pulls + 1) / pulls_i)`, in reward units.
    /// Default 1.0 (rewards of order 1: clicks, watch ratios). Must be finite and >= 0.
    pub ucb_c: f64,
    /// `category-cycling`, `epsilon-greedy`, `ucb`: pseudo-count of the prior. An item's training mean is
    /// shrunk toward the global mean as if the global mean had been seen `prior_weight` times (so an item
    /// with one lucky row does not win), and the bandits treat that shrunk mean as `prior_weight`
    /// observed pulls. Default 10. Must be finite and > 0 (it keeps UCB's bonus finite for unseen items).
    pub prior_weight: f64,
    /// `category-cycling`, `mf-greedy`: softmax temperature of `Selection::Sampled`, in units of the
    /// standard deviation of the policy's scores over the catalogue (scores are standardised first), so
    /// one default works for clicks, watch ratios and ratings alike. Default 0.25, which puts most of the
    /// probability on the top few percent of items. Must be finite and > 0.
    pub temperature: f64,
    /// `mf-greedy`: the user model fitted on the training log. Default [`MfConfig::default`] (squared loss).
    pub mf: MfConfig,
}

impl Default for HeuristicConfig {
    fn default() -> Self {
        Self { epsilon: 0.1, ucb_c: 1.0, prior_weight: 10.0, temperature: 0.25, mf: MfConfig::default() }
    }
}

/// What heuristics may learn from: the training log only (never the ground truth).
#[derive(Debug, Clone, Copy)]
pub struct TrainingContext<'a> {
    /// The training log in dense ids; its items are the environment catalogue and the environment's users
    /// are `0..n_env_users` (training-only users may follow).
    pub train: &'a Interactions,
    /// Raw categories of each dense item (the quit rule's categories; −1 for KuaiRand's untagged videos).
    pub item_tags: &'a [Vec<i32>],
    /// N of the environment's category quit rule: the user quits when a new item shares a category with
    /// the last N items. 0 when the environment quits by another rule.
    pub quit_window: usize,
    /// The whole training log when it covers more items than the catalogue (KuaiRec's big matrix holds 10,728
    /// videos; the catalogue is the small matrix's 3,327, listed first with the same dense ids). User models
    /// fit on it learn the environment users from their other videos. `None`: `train` is the whole log.
    pub full_train: Option<&'a Interactions>,
}

impl TrainingContext<'_> {
    /// Number of catalogue items.
    pub fn n_items(&self) -> usize {
        self.train.n_items
    }

    /// Check that the log describes a non-empty catalogue with consistent, in-range, finite rows.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let t = self.train;
        if t.n_items == 0 {
            return Err(PolicyError::EmptyCatalogue);
        }
        if t.user.len() != t.item.len() || t.user.len() != t.target.len() {
            return Err(PolicyError::InvalidContext(format!(
                "training log columns differ in length: {} users, {} items, {} targets",
                t.user.len(),
                t.item.len(),
                t.target.len()
            )));
        }
        let bad_row = (0..t.len())
            .find(|&r| t.user[r] as usize >= t.n_users || t.item[r] as usize >= t.n_items || !t.target[r].is_finite());
        if let Some(r) = bad_row {
            return Err(PolicyError::InvalidContext(format!(
                "training row {r} (user {}, item {}, target {}) is out of range or not finite ({} users, {} items)",
                t.user[r], t.item[r], t.target[r], t.n_users, t.n_items
            )));
        }
        Ok(())
    }
}

/// Per-item statistics of the training log, shared by the popularity, category and bandit baselines.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemStats {
    /// Number of training rows of each item.
    pub count: Vec<u64>,
    /// Mean training target of each item, shrunk toward `global_mean` with pseudo-count `prior_weight`:
    /// `(sum_i + w·global_mean) / (count_i + w)`. Items without rows get `global_mean`.
    pub shrunk_mean: Vec<f64>,
    /// Mean target over all rows (0 for an empty log).
    pub global_mean: f64,
}

impl ItemStats {
    /// Compute the statistics of a validated context (`prior_weight` > 0).
    pub fn from_context(ctx: &TrainingContext, prior_weight: f64) -> Self {
        let n = ctx.n_items();
        let mut count = vec![0u64; n];
        let mut sum = vec![0.0; n];
        for (&i, &y) in ctx.train.item.iter().zip(&ctx.train.target) {
            count[i as usize] += 1;
            sum[i as usize] += y;
        }
        let rows = ctx.train.len();
        let global_mean = if rows == 0 { 0.0 } else { sum.iter().sum::<f64>() / rows as f64 };
        let shrunk_mean = count
            .iter()
            .zip(&sum)
            .map(|(&c, &s)| (s + prior_weight * global_mean) / (c as f64 + prior_weight))
            .collect();
        Self { count, shrunk_mean, global_mean }
    }
}

/// Why a heuristic could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// The catalogue has no items, so there is nothing to recommend.
    #[error("the catalogue is empty")]
    EmptyCatalogue,
    /// The training context is inconsistent (bad rows, tags that do not cover the catalogue, …).
    #[error("invalid training context: {0}")]
    InvalidContext(String),
    /// A hyper-parameter is out of its domain.
    #[error("invalid heuristic config: {0}")]
    InvalidConfig(String),
    /// The user model could not be fitted.
    #[error("fitting the matrix factorisation failed: {0}")]
    Model(#[from] MfError),
}

/// The heuristic baselines, by their names in configs and tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeuristicKind {
    /// [`Random`]
    Random,
    /// [`MostPopular`]
    MostPopular,
    /// [`CategoryCycling`]
    CategoryCycling,
    /// [`EpsilonGreedy`]
    EpsilonGreedy,
    /// [`Ucb`]
    Ucb,
    /// [`MfGreedy`]
    MfGreedy,
}

/// Every heuristic, in table order.
pub const ALL: [HeuristicKind; 6] = [
    HeuristicKind::Random,
    HeuristicKind::MostPopular,
    HeuristicKind::CategoryCycling,
    HeuristicKind::EpsilonGreedy,
    HeuristicKind::Ucb,
    HeuristicKind::MfGreedy,
];

impl HeuristicKind {
    /// The kebab-case name used in configs, tables and file names (also [`Policy::name`]).
    pub fn name(self) -> &'static str {
        match self {
            Self::Random => "random",
            Self::MostPopular => "most-popular",
            Self::CategoryCycling => "category-cycling",
            Self::EpsilonGreedy => "epsilon-greedy",
            Self::Ucb => "ucb",
            Self::MfGreedy => "mf-greedy",
        }
    }
}

impl std::fmt::Display for HeuristicKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for HeuristicKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<_> = ALL.iter().map(|k| k.name()).collect();
            format!("unknown heuristic `{s}` (expected one of: {})", names.join(", "))
        })
    }
}

/// Build the heuristic `kind` from the training context. Errors on an empty catalogue, an inconsistent
/// context, a hyper-parameter out of range, or a failed MF fit.
pub fn build(
    kind: HeuristicKind,
    ctx: &TrainingContext,
    cfg: &HeuristicConfig,
) -> Result<Box<dyn Policy>, PolicyError> {
    Ok(match kind {
        HeuristicKind::Random => Box::new(Random::new(ctx)?),
        HeuristicKind::MostPopular => Box::new(MostPopular::new(ctx)?),
        HeuristicKind::CategoryCycling => Box::new(CategoryCycling::new(ctx, cfg)?),
        HeuristicKind::EpsilonGreedy => Box::new(EpsilonGreedy::new(ctx, cfg)?),
        HeuristicKind::Ucb => Box::new(Ucb::new(ctx, cfg)?),
        HeuristicKind::MfGreedy => Box::new(MfGreedy::new(ctx, cfg)?),
    })
}

/// Check that `value` is finite and satisfies `ok`, naming the config field in the error.
fn check_param(field: &str, value: f64, ok: impl Fn(f64) -> bool, domain: &str) -> Result<(), PolicyError> {
    if value.is_finite() && ok(value) {
        Ok(())
    } else {
        Err(PolicyError::InvalidConfig(format!("{field} = {value}, expected {domain}")))
    }
}

/// Write `(score - mean) / (std · temperature)` over the catalogue into `out`: softmax logits whose
/// sharpness does not depend on the reward scale. A constant score vector gives all-zero logits.
fn standardized_logits(scores: &[f64], temperature: f64, out: &mut [f64]) {
    let n = scores.len().max(1) as f64;
    let mean = scores.iter().sum::<f64>() / n;
    let var = scores.iter().map(|s| (s - mean) * (s - mean)).sum::<f64>() / n;
    let scale = var.sqrt() * temperature;
    for (o, &s) in out.iter_mut().zip(scores) {
        *o = if scale > 0.0 { (s - mean) / scale } else { 0.0 };
    }
}

/// Shared fixtures for the heuristics' tests: tiny catalogues and a toy category quit rule.
#[cfg(test)]
pub(crate) mod testkit {
    use super::*;
    use crate::{ItemMask, Observation, PolicyRng, Selection};

    /// An owned training log plus tags, lending a [`TrainingContext`].
    pub struct Fixture {
        pub train: Interactions,
        pub tags: Vec<Vec<i32>>,
        pub quit_window: usize,
    }

    impl Fixture {
        pub fn ctx(&self) -> TrainingContext<'_> {
            TrainingContext {
                train: &self.train,
                item_tags: &self.tags,
                quit_window: self.quit_window,
                full_train: None,
            }
        }
    }

    /// `n_items` items with `n_tags` tags (item i has tag i mod n_tags), `n_users` users; item i has
    /// `count(i)` rows with target `target(i)`, spread over the users.
    pub fn fixture(
        n_users: usize,
        n_items: usize,
        n_tags: usize,
        count: impl Fn(usize) -> usize,
        target: impl Fn(usize) -> f64,
    ) -> Fixture {
        let mut train = Interactions { n_users, n_items, ..Default::default() };
        for i in 0..n_items {
            for r in 0..count(i) {
                train.user.push(((i + r) % n_users) as u32);
                train.item.push(i as u32);
                train.target.push(target(i));
            }
        }
        let tags = (0..n_items).map(|i| vec![(i % n_tags) as i32]).collect();
        Fixture { train, tags, quit_window: 4 }
    }

    /// The category quit rule with θ = 0 and a fixed window: quit iff `item` shares a tag with one of the
    /// last `window` items of `history`.
    pub fn quits(tags: &[Vec<i32>], history: &[u32], window: usize, item: u32) -> bool {
        let recent = &history[history.len().saturating_sub(window)..];
        recent.iter().any(|&b| tags[b as usize].iter().any(|t| tags[item as usize].contains(t)))
    }

    /// Run one episode of at most `max_turn` steps for `user` under the toy quit rule (no-repeat mode when
    /// `no_repeat`), returning its length. Rewards are 1.0 and fed back through `observe`.
    #[allow(clippy::too_many_arguments)]
    pub fn episode_length(
        policy: &mut dyn Policy,
        tags: &[Vec<i32>],
        window: usize,
        max_turn: usize,
        user: u32,
        no_repeat: bool,
        selection: Selection,
        rng: &mut PolicyRng,
    ) -> usize {
        let mut mask = ItemMask::all(tags.len());
        let (mut items, mut rewards) = (Vec::new(), Vec::new());
        loop {
            let obs = Observation { user, items: &items, rewards: &rewards, initial_item: None };
            let a = policy.act(&obs, &mask, selection, rng);
            assert!(mask.allows(a), "{} returned blocked item {a}", policy.name());
            let done = !items.is_empty() && quits(tags, &items, window, a);
            items.push(a);
            rewards.push(1.0);
            policy.observe(user, a, 1.0);
            if no_repeat {
                mask.block(a);
            }
            if done || items.len() >= max_turn {
                return items.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::*;
    use super::*;
    use crate::{ItemMask, Observation, PolicyRng, Selection};
    use rand::SeedableRng;

    fn small_cfg() -> HeuristicConfig {
        HeuristicConfig { mf: MfConfig { dim: 4, epochs: 5, ..MfConfig::default() }, ..HeuristicConfig::default() }
    }

    #[test]
    fn build_every_kind_and_name_matches() {
        let f = fixture(5, 12, 4, |i| i % 3 + 1, |i| i as f64 / 12.0);
        for kind in ALL {
            let p = build(kind, &f.ctx(), &small_cfg()).unwrap();
            assert_eq!(p.name(), kind.name());
            assert_eq!(kind.name().parse::<HeuristicKind>().unwrap(), kind);
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
        }
        assert!("greedy".parse::<HeuristicKind>().is_err());
    }

    #[test]
    fn no_policy_returns_a_blocked_item_even_when_almost_all_are_blocked() {
        let f = fixture(3, 40, 5, |i| (i * 7) % 5, |i| (i % 4) as f64);
        let mut rng = PolicyRng::seed_from_u64(11);
        for kind in ALL {
            let mut p = build(kind, &f.ctx(), &small_cfg()).unwrap();
            for selection in [Selection::Sampled, Selection::Argmax] {
                for open in [vec![39u32], vec![0], vec![17, 3], (0..40).filter(|i| i % 2 == 1).collect()] {
                    let mut mask = ItemMask::all(40);
                    (0..40).filter(|i| !open.contains(i)).for_each(|i| mask.block(i));
                    let shown = [0u32, 5, 10, 15];
                    for user in 0..3 {
                        let obs = Observation { user, items: &shown, rewards: &[1.0; 4], initial_item: None };
                        for _ in 0..20 {
                            let a = p.act(&obs, &mask, selection, &mut rng);
                            assert!(open.contains(&a), "{kind} picked blocked {a}");
                            p.observe(user, a, 0.5);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn same_seed_same_actions() {
        let f = fixture(4, 30, 6, |i| i % 4, |i| ((i * 13) % 7) as f64);
        for kind in ALL {
            let run = || {
                let mut p = build(kind, &f.ctx(), &small_cfg()).unwrap();
                let mut rng = PolicyRng::seed_from_u64(5);
                (0..20)
                    .map(|e| {
                        episode_length(p.as_mut(), &f.tags, 4, 30, e % 4, e % 2 == 0, Selection::Sampled, &mut rng)
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(run(), run(), "{kind}");
        }
    }

    #[test]
    fn build_rejects_bad_inputs() {
        let cfg = small_cfg();
        let empty = fixture(2, 0, 1, |_| 0, |_| 0.0);
        for kind in ALL {
            assert_eq!(build(kind, &empty.ctx(), &cfg).err(), Some(PolicyError::EmptyCatalogue), "{kind}");
        }
        let mut bad = fixture(2, 3, 1, |_| 1, |_| 1.0);
        bad.train.item[0] = 7;
        for kind in ALL {
            assert!(matches!(build(kind, &bad.ctx(), &cfg), Err(PolicyError::InvalidContext(_))), "{kind}");
        }
        let mut nan = fixture(2, 3, 1, |_| 1, |_| 1.0);
        nan.train.target[1] = f64::NAN;
        assert!(matches!(build(HeuristicKind::MostPopular, &nan.ctx(), &cfg), Err(PolicyError::InvalidContext(_))));
        let f = fixture(2, 3, 1, |_| 1, |_| 1.0);
        let bad_cfgs = [
            (HeuristicKind::EpsilonGreedy, HeuristicConfig { epsilon: 1.5, ..cfg.clone() }),
            (HeuristicKind::Ucb, HeuristicConfig { ucb_c: -1.0, ..cfg.clone() }),
            (HeuristicKind::Ucb, HeuristicConfig { prior_weight: 0.0, ..cfg.clone() }),
            (HeuristicKind::CategoryCycling, HeuristicConfig { temperature: f64::NAN, ..cfg.clone() }),
            (HeuristicKind::MfGreedy, HeuristicConfig { temperature: 0.0, ..cfg.clone() }),
        ];
        for (kind, c) in bad_cfgs {
            assert!(matches!(build(kind, &f.ctx(), &c), Err(PolicyError::InvalidConfig(_))), "{kind}");
        }
        let no_rows = fixture(2, 3, 1, |_| 0, |_| 0.0);
        assert!(matches!(build(HeuristicKind::MfGreedy, &no_rows.ctx(), &cfg), Err(PolicyError::Model(_))));
        assert!(build(HeuristicKind::MostPopular, &no_rows.ctx(), &cfg).is_ok());
    }

    #[test]
    fn config_serde_defaults_and_unknown_fields() {
        let c: HeuristicConfig = serde_json::from_str(r#"{"epsilon": 0.2, "mf": {"dim": 8}}"#).unwrap();
        assert_eq!(c.epsilon, 0.2);
        assert_eq!(c.mf.dim, 8);
        assert_eq!(c.ucb_c, HeuristicConfig::default().ucb_c);
        assert!(serde_json::from_str::<HeuristicConfig>(r#"{"epsilon-greedy": 0.2}"#).is_err());
        assert!(serde_json::from_str::<HeuristicConfig>(r#"{"mf": {"rank": 8}}"#).is_err());
    }

    #[test]
    fn item_stats_shrink_toward_the_global_mean() {
        // Item 0: one row of 10; item 1: 100 rows of 1; item 2: no rows.
        let f = fixture(2, 3, 1, |i| [1, 100, 0][i], |i| [10.0, 1.0, 0.0][i]);
        let s = ItemStats::from_context(&f.ctx(), 10.0);
        let g = (10.0 + 100.0) / 101.0;
        assert_eq!(s.count, vec![1, 100, 0]);
        assert!((s.global_mean - g).abs() < 1e-12);
        assert!((s.shrunk_mean[0] - (10.0 + 10.0 * g) / 11.0).abs() < 1e-12);
        assert!((s.shrunk_mean[2] - g).abs() < 1e-12);
    }

    #[test]
    fn a_score_vector_selects_what_act_does_and_the_others_have_none() {
        use crate::select::select;
        use crate::{ItemMask, Observation, PolicyRng, Selection};
        use rand::SeedableRng;
        let f = testkit::fixture(4, 12, 3, |i| (i * 5) % 7, |i| (i % 4) as f64 * 0.3);
        let ctx = f.ctx();
        let cfg = HeuristicConfig::default();
        let mut mask = ItemMask::all(12);
        [2u32, 9].iter().for_each(|&i| mask.block(i));
        let (items, rewards) = ([2u32, 9], [0.5, 1.0]);
        let obs = Observation { user: 1, items: &items, rewards: &rewards, initial_item: None };
        for kind in [HeuristicKind::MostPopular, HeuristicKind::MfGreedy] {
            let mut policy = build(kind, &ctx, &cfg).unwrap();
            for selection in [Selection::Argmax, Selection::Sampled] {
                for seed in 0..100 {
                    let (mut a, mut b) = (PolicyRng::seed_from_u64(seed), PolicyRng::seed_from_u64(seed));
                    let mut scores = Vec::new();
                    assert!(policy.scores(&obs, selection, &mut a, &mut scores), "{kind}");
                    assert_eq!(scores.len(), 12);
                    let from_scores = select(&scores, &mask, selection, &mut a);
                    assert_eq!(from_scores, policy.act(&obs, &mask, selection, &mut b), "{kind} {selection:?} {seed}");
                }
            }
        }
        // Random: independent keys, so the argmax of the allowed ones is uniform over them.
        let mut random = build(HeuristicKind::Random, &ctx, &cfg).unwrap();
        let mut rng = PolicyRng::seed_from_u64(1);
        let mut hits = [0u32; 12];
        let mut scores = Vec::new();
        for _ in 0..10_000 {
            assert!(random.scores(&obs, Selection::Argmax, &mut rng, &mut scores));
            hits[select(&scores, &mask, Selection::Argmax, &mut rng) as usize] += 1;
        }
        assert!(hits[2] == 0 && hits[9] == 0);
        assert!(
            hits.iter().enumerate().filter(|(i, _)| ![2, 9].contains(i)).all(|(_, &h)| (850..1150).contains(&h)),
            "{hits:?}"
        );
        for kind in [HeuristicKind::CategoryCycling, HeuristicKind::EpsilonGreedy, HeuristicKind::Ucb] {
            let mut policy = build(kind, &ctx, &cfg).unwrap();
            assert!(!policy.scores(&obs, Selection::Argmax, &mut rng, &mut scores), "{kind}");
        }
    }
}
