//! Metrics of interactive recommendation: the anchors' metrics, reproduced exactly, and the project's
//! exposure-fairness suite (`docs/protocol.md` §6).
//!
//! * Anchor metrics (§6.1): [`r_tra`], [`mean_length`], [`r_each`], [`cv`], [`cv_turn`] ([`anchor`]),
//!   [`mcd`] with DORL's dominant categories ([`dominance`], [`anchor_constants`]), EasyRL4Rec's
//!   [`diversity`](fn@diversity) and [`novelty`](fn@novelty).
//! * Fairness metrics (§6.2): [`gini`], [`gini_exposed_only`], [`exposure_entropy`] ([`exposure`]), the
//!   popular / long-tail split and group exposure ([`long_tail`]), optional per-tag exposure
//!   ([`tag_exposure`]).
//! * [`pareto`]: non-dominated sets, 2-D hypervolume and frontier comparison on (utility, 1 − Gini).
//! * [`compute`] scores one evaluation round (the episodes of one mode) in a single pass into a
//!   [`MetricSet`]; [`stats::mean_ci95`] aggregates per-seed scores.
//!
//! The crate stands alone: inputs are plain slices of dense catalogue ids and per-item facts, so any
//! simulator can be scored. Pipeline position: sim -> agents -> evaluation -> **metrics** -> report.
//!
//! Degenerate input never panics and never yields a silent NaN: no episode, no step or an empty catalogue
//! give 0 for the affected metric (documented on each function); only non-finite rewards propagate.

pub mod anchor;
pub mod anchor_constants;
pub mod context;
pub mod diversity;
pub mod dominance;
pub mod episode;
pub mod error;
pub mod exposure;
pub mod homogenisation;
pub mod long_tail;
pub mod novelty;
pub mod pareto;
pub mod similarity;
pub mod stats;
pub mod tag_exposure;

pub use anchor::{cv, cv_turn, mean_length, r_each, r_tra};
pub use context::ItemContext;
pub use diversity::{diversity, episode_diversity};
pub use dominance::{dominant_categories, dominant_items, dominant_prefix, mcd, DEFAULT_TOP_RATE};
pub use episode::Episode;
pub use error::MetricsError;
pub use exposure::{exposure_counts, exposure_entropy, gini, gini_exposed_only};
pub use long_tail::{
    episode_long_tail_share, group_exposure, long_tail_share, long_tail_share_episode_mean, popular_set,
    popular_set_size, GroupExposure, DEFAULT_POPULAR_FRACTION,
};
pub use novelty::{episode_novelty, novelty, popularity_floor};
pub use similarity::{DistanceSimilarity, EuclideanSimilarity, ItemSimilarity, TagJaccard};
pub use stats::{holm, mean_ci95, welch_p_greater, MeanCi};
pub use tag_exposure::{per_tag_exposure, TagExposure};

use serde::{Deserialize, Serialize};

/// Every metric of one evaluation round (the episodes of one mode), as logged and tabulated.
///
/// Serde names are the log keys: the anchors' own names where they exist (`R_tra`, `R_each`, `CV`, ...),
/// the project's names for the fairness suite. All zeros with `Episodes` = 0 for no episode.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MetricSet {
    /// Mean cumulative reward per episode ([`r_tra`]).
    #[serde(rename = "R_tra")]
    pub r_tra: f64,
    /// Pooled per-step reward Σr / ΣL ([`r_each`]).
    #[serde(rename = "R_each")]
    pub r_each: f64,
    /// Mean episode length ([`mean_length`]).
    #[serde(rename = "Length")]
    pub length: f64,
    /// Coverage |{e_i > 0}| / n ([`cv`]).
    #[serde(rename = "CV")]
    pub cv: f64,
    /// Distinct items per step |{e_i > 0}| / ΣL ([`cv_turn`]).
    #[serde(rename = "CV_turn")]
    pub cv_turn: f64,
    /// Share of steps on items with a dominant category ([`mcd`]).
    #[serde(rename = "MCD")]
    pub mcd: f64,
    /// EasyRL4Rec intra-episode diversity ([`diversity`](fn@diversity)).
    #[serde(rename = "Diversity")]
    pub diversity: f64,
    /// EasyRL4Rec novelty, mean −ln pop ([`novelty`](fn@novelty)).
    #[serde(rename = "Novelty")]
    pub novelty: f64,
    /// Gini of exposure over the whole catalogue ([`gini`]).
    #[serde(rename = "Gini")]
    pub gini: f64,
    /// Gini over exposed items only, for comparison with papers ([`gini_exposed_only`]).
    #[serde(rename = "GiniExposedOnly")]
    pub gini_exposed_only: f64,
    /// Exposure entropy in nats ([`exposure_entropy`]).
    #[serde(rename = "ExposureEntropy")]
    pub exposure_entropy: f64,
    /// Exposure entropy / ln n ([`exposure_entropy`]).
    #[serde(rename = "ExposureEntropyNorm")]
    pub exposure_entropy_norm: f64,
    /// Pooled share of exposure on the long tail ([`long_tail_share`]).
    #[serde(rename = "LongTailShare")]
    pub long_tail_share: f64,
    /// Mean over episodes of each episode's long-tail share ([`long_tail_share_episode_mean`]).
    #[serde(rename = "LongTailShareEpisodeMean")]
    pub long_tail_share_episode_mean: f64,
    /// Pooled share of exposure on the popular group ([`GroupExposure::popular_share`]).
    #[serde(rename = "PopularShare")]
    pub popular_share: f64,
    /// Popular share / (|P|/n) ([`GroupExposure::popular_relative`]).
    #[serde(rename = "PopularRelativeExposure")]
    pub popular_relative_exposure: f64,
    /// Long-tail share / (|T|/n) ([`GroupExposure::long_tail_relative`]).
    #[serde(rename = "LongTailRelativeExposure")]
    pub long_tail_relative_exposure: f64,
    /// The paper's AD, share reading: |popular share − long-tail share| ([`GroupExposure::ad_share`]).
    #[serde(rename = "AD_share", default)]
    pub ad_share: f64,
    /// The paper's AD, per-item reading: |mean exposure per popular item − per long-tail item| / mean exposure
    /// per item ([`GroupExposure::ad_item`]).
    #[serde(rename = "AD_item", default)]
    pub ad_item: f64,
    /// Number of episodes scored (N_ep).
    #[serde(rename = "Episodes")]
    pub episodes: usize,
}

impl MetricSet {
    /// The serde names, in field order; [`MetricSet::values`] follows the same order.
    pub const NAMES: [&'static str; 20] = [
        "R_tra",
        "R_each",
        "Length",
        "CV",
        "CV_turn",
        "MCD",
        "Diversity",
        "Novelty",
        "Gini",
        "GiniExposedOnly",
        "ExposureEntropy",
        "ExposureEntropyNorm",
        "LongTailShare",
        "LongTailShareEpisodeMean",
        "PopularShare",
        "PopularRelativeExposure",
        "LongTailRelativeExposure",
        "AD_share",
        "AD_item",
        "Episodes",
    ];

    /// Every value as f64 in [`MetricSet::NAMES`] order (`Episodes` converted), so that aggregation over
    /// seeds and report tables can loop over metrics instead of naming each field.
    pub fn values(&self) -> [f64; 20] {
        [
            self.r_tra,
            self.r_each,
            self.length,
            self.cv,
            self.cv_turn,
            self.mcd,
            self.diversity,
            self.novelty,
            self.gini,
            self.gini_exposed_only,
            self.exposure_entropy,
            self.exposure_entropy_norm,
            self.long_tail_share,
            self.long_tail_share_episode_mean,
            self.popular_share,
            self.popular_relative_exposure,
            self.long_tail_relative_exposure,
            self.ad_share,
            self.ad_item,
            self.episodes as f64,
        ]
    }

    /// `(name, value)` pairs in field order.
    pub fn named_values(&self) -> impl Iterator<Item = (&'static str, f64)> {
        Self::NAMES.into_iter().zip(self.values())
    }
}

/// Scores one evaluation round: every metric of [`MetricSet`] over `episodes`, against `ctx`.
///
/// One pass over the steps (exposure counts, rewards, MCD, novelty, per-episode long-tail share), the
/// O(L²) pairs of each episode for Diversity, and O(n) passes over the exposure counts; the only
/// allocation is the n exposure counts (plus at most n for the Gini counting sort). Each value equals the
/// standalone function of the same name. No episode gives `MetricSet::default()` (all zeros,
/// `Episodes` = 0); see the standalone functions for the other degenerate cases.
pub fn compute(episodes: &[Episode], ctx: &ItemContext) -> MetricSet {
    if episodes.is_empty() {
        return MetricSet::default();
    }
    let mut exposure = vec![0u64; ctx.n_items];
    let floor = popularity_floor(ctx.popularity);
    let (mut reward, mut steps, mut dominant_steps) = (0.0, 0usize, 0usize);
    let (mut div_sum, mut nov_sum, mut non_empty) = (0.0, 0.0, 0usize);
    let (mut lt_sum, mut lt_episodes) = (0.0, 0usize);
    for e in episodes {
        reward += e.total_reward();
        steps += e.len();
        exposure::add_exposure(&mut exposure, &e.items);
        dominant_steps += dominance::dominant_hits(&e.items, ctx.dominant);
        if let (Some(d), Some(v)) = (
            episode_diversity(&e.items, ctx.similarity),
            novelty::episode_novelty_with_floor(&e.items, ctx.popularity, floor),
        ) {
            div_sum += d;
            nov_sum += v;
            non_empty += 1;
        }
        let (tail, in_range) = long_tail::episode_tail_steps(&e.items, ctx.popular, ctx.n_items);
        if in_range > 0 {
            lt_sum += tail as f64 / in_range as f64;
            lt_episodes += 1;
        }
    }
    let n_ep = episodes.len() as f64;
    let ratio = |num: f64, den: usize| if den == 0 { 0.0 } else { num / den as f64 };
    let (entropy, entropy_norm) = exposure_entropy(&exposure);
    let groups = group_exposure(&exposure, ctx.popular);
    MetricSet {
        r_tra: reward / n_ep,
        r_each: ratio(reward, steps),
        length: steps as f64 / n_ep,
        cv: cv(&exposure),
        cv_turn: cv_turn(&exposure),
        mcd: ratio(dominant_steps as f64, steps),
        diversity: ratio(div_sum, non_empty),
        novelty: ratio(nov_sum, non_empty),
        gini: gini(&exposure),
        gini_exposed_only: gini_exposed_only(&exposure),
        exposure_entropy: entropy,
        exposure_entropy_norm: entropy_norm,
        long_tail_share: groups.long_tail_share,
        long_tail_share_episode_mean: ratio(lt_sum, lt_episodes),
        popular_share: groups.popular_share,
        popular_relative_exposure: groups.popular_relative,
        long_tail_relative_exposure: groups.long_tail_relative,
        ad_share: groups.ad_share(),
        ad_item: groups.ad_item(),
        episodes: episodes.len(),
    }
}

/// The optional per-tag exposure of one round (§6.2, last row), when `ctx.item_tags` is set; `None`
/// otherwise. Kept out of [`MetricSet`] because its width depends on the data set.
pub fn compute_tag_exposure(episodes: &[Episode], ctx: &ItemContext) -> Option<Vec<TagExposure>> {
    let tags = ctx.item_tags?;
    Some(per_tag_exposure(&exposure_counts(episodes, ctx.n_items), tags))
}

#[cfg(test)]
mod tests;
