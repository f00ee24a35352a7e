//! `mf-greedy`: recommend what a matrix factorisation of the training log predicts the user likes most.
//!
//! The oracle-free personalised baseline: the best a myopic recommender can do with a user model fitted
//! on the log, ignoring the quit rule. The gap between it and an RL policy is what planning buys.

use super::{check_param, standardized_logits, HeuristicConfig, PolicyError, TrainingContext};
use crate::{select, ItemMask, Observation, Policy, PolicyRng, Selection};
use dsrm_models::MatrixFactorization;

/// Fits a [`MatrixFactorization`] on the training log (`cfg.mf`; squared loss by default) at build time
/// and scores every item by its predicted target for the user.
///
/// * `Argmax`: the allowed item with the highest prediction (ties: the smallest id).
/// * `Sampled`: softmax over the user's standardised predictions divided by `temperature`.
///
/// A user outside the fitted model (no id in the log) is scored by the item part alone,
/// `μ + b_i` before the output link. The user's score vector is computed once (O(n_items · dim)) and kept
/// until another user acts, so within an episode a step is one O(n_items) pass with no allocation.
/// Learns nothing online.
#[derive(Debug, Clone)]
pub struct MfGreedy {
    mf: MatrixFactorization,
    temperature: f64,
    /// The user whose scores are cached in `scores` / `logits`.
    cached_user: Option<u32>,
    /// Predictions for every item of the fitted log (catalogue first).
    all_scores: Vec<f64>,
    /// Predicted target per catalogue item for `cached_user`.
    scores: Vec<f64>,
    /// Standardised `scores` / temperature: the `Sampled` logits.
    logits: Vec<f64>,
}

impl MfGreedy {
    /// Fit the user model on the whole training log (`full_train` when given: its first `n_items` items are
    /// the catalogue) and score the catalogue.
    pub fn new(ctx: &TrainingContext, cfg: &HeuristicConfig) -> Result<Self, PolicyError> {
        ctx.validate()?;
        check_param("temperature", cfg.temperature, |t| t > 0.0, "> 0")?;
        let log = ctx.full_train.unwrap_or(ctx.train);
        if log.n_items < ctx.n_items() {
            return Err(PolicyError::InvalidContext(format!(
                "full training log has {} items, fewer than the {}-item catalogue",
                log.n_items,
                ctx.n_items()
            )));
        }
        let mf = MatrixFactorization::fit(log, &cfg.mf)?;
        let n = ctx.n_items();
        Ok(Self {
            mf,
            temperature: cfg.temperature,
            cached_user: None,
            all_scores: vec![0.0; log.n_items],
            scores: vec![0.0; n],
            logits: vec![0.0; n],
        })
    }

    /// The fitted user model.
    pub fn model(&self) -> &MatrixFactorization {
        &self.mf
    }

    /// Make `scores` and `logits` those of `user`.
    fn cache_user(&mut self, user: u32) {
        if self.cached_user == Some(user) {
            return;
        }
        if (user as usize) < self.mf.n_users() {
            self.mf.score_items(user, &mut self.all_scores);
            let n = self.scores.len();
            self.scores.copy_from_slice(&self.all_scores[..n]);
        } else {
            let base = self.mf.global_mean();
            for (s, &b) in self.scores.iter_mut().zip(self.mf.item_biases()) {
                *s = base + b;
            }
        }
        standardized_logits(&self.scores, self.temperature, &mut self.logits);
        self.cached_user = Some(user);
    }
}

impl Policy for MfGreedy {
    fn name(&self) -> String {
        "mf-greedy".into()
    }

    fn act(&mut self, obs: &Observation, mask: &ItemMask, selection: Selection, rng: &mut PolicyRng) -> u32 {
        if mask.n_items() != self.scores.len() {
            // A mask from another catalogue: nothing we learned applies.
            return select::uniform_allowed(mask, rng);
        }
        self.cache_user(obs.user);
        match selection {
            Selection::Argmax => select::select(&self.scores, mask, Selection::Argmax, rng),
            Selection::Sampled => select::select(&self.logits, mask, Selection::Sampled, rng),
        }
    }

    /// The user's predicted targets (`Argmax`) or their standardised logits (`Sampled`).
    fn scores(&mut self, obs: &Observation, selection: Selection, _rng: &mut PolicyRng, out: &mut Vec<f64>) -> bool {
        self.cache_user(obs.user);
        out.clear();
        out.extend_from_slice(match selection {
            Selection::Argmax => &self.scores,
            Selection::Sampled => &self.logits,
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsrm_models::{Interactions, MfConfig};
    use rand::SeedableRng;

    /// 12 users in 3 taste groups; group g likes items with i % 3 == g (target 1) over the rest (0), and
    /// likes item `9 + g` most of all (target 2). Every cell but the favourites of half the users is logged.
    fn planted() -> (Interactions, Vec<Vec<i32>>) {
        let (n_users, n_items) = (12, 12);
        let mut t = Interactions { n_users, n_items, ..Default::default() };
        for u in 0..n_users {
            let g = u % 3;
            for i in 0..n_items {
                let y = if i == 9 + g {
                    2.0
                } else if i % 3 == g {
                    1.0
                } else {
                    0.0
                };
                if i == 9 + g && u >= 6 {
                    continue;
                }
                t.user.push(u as u32);
                t.item.push(i as u32);
                t.target.push(y);
            }
        }
        (t, (0..n_items).map(|i| vec![i as i32]).collect())
    }

    fn cfg() -> HeuristicConfig {
        let mf = MfConfig { dim: 4, epochs: 300, learning_rate: 0.05, regularization: 0.01, ..MfConfig::default() };
        HeuristicConfig { mf, ..HeuristicConfig::default() }
    }

    #[test]
    fn picks_the_item_with_the_highest_planted_preference() {
        let (train, tags) = planted();
        let ctx = TrainingContext { train: &train, item_tags: &tags, quit_window: 0, full_train: None };
        let mut p = MfGreedy::new(&ctx, &cfg()).unwrap();
        let mut rng = PolicyRng::seed_from_u64(0);
        let mut mask = ItemMask::all(12);
        for user in 0..12u32 {
            let g = user % 3;
            let obs = Observation { user, items: &[], rewards: &[], initial_item: None };
            // Users 6.. never rated their favourite: the model infers it from their group.
            assert_eq!(p.act(&obs, &mask, Selection::Argmax, &mut rng), 9 + g, "user {user}");
            mask.block(9 + g);
            let a = p.act(&obs, &mask, Selection::Argmax, &mut rng);
            assert_eq!(a % 3, g, "user {user}: second choice {a}");
            mask.clear();
        }
    }

    #[test]
    fn sampled_prefers_liked_items_and_cache_follows_the_user() {
        let (train, tags) = planted();
        let ctx = TrainingContext { train: &train, item_tags: &tags, quit_window: 0, full_train: None };
        let mut p = MfGreedy::new(&ctx, &cfg()).unwrap();
        let mut rng = PolicyRng::seed_from_u64(1);
        let mask = ItemMask::all(12);
        for user in [0u32, 1, 2, 0] {
            let obs = Observation { user, items: &[], rewards: &[], initial_item: None };
            let liked = (0..300).filter(|_| p.act(&obs, &mask, Selection::Sampled, &mut rng) % 3 == user % 3).count();
            assert!(liked > 240, "user {user}: {liked} / 300 liked");
        }
    }

    #[test]
    fn unknown_users_are_ranked_by_item_biases() {
        let (train, tags) = planted();
        let ctx = TrainingContext { train: &train, item_tags: &tags, quit_window: 0, full_train: None };
        let mut p = MfGreedy::new(&ctx, &cfg()).unwrap();
        let obs = Observation { user: 1_000, items: &[], rewards: &[], initial_item: None };
        let a = p.act(&obs, &ItemMask::all(12), Selection::Argmax, &mut PolicyRng::seed_from_u64(0));
        let biases = p.model().item_biases();
        let best = (0..12).max_by(|&x, &y| biases[x].total_cmp(&biases[y]).then(y.cmp(&x))).unwrap();
        assert_eq!(a as usize, best);
    }
}
