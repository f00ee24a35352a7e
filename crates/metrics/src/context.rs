//! The per-item facts every metric call needs, built once per environment and borrowed by [`crate::compute`].

use crate::{Episode, ItemSimilarity, MetricsError};
use std::fmt;

/// Per-item facts for one catalogue of `n_items` dense ids. Every slice is indexed by dense item id.
///
/// Built once per environment (the evaluation crate owns the vectors; this borrows them), so scoring a
/// round allocates nothing of catalogue size besides the exposure counts.
#[derive(Clone, Copy)]
pub struct ItemContext<'a> {
    /// Catalogue size n (3,327 KuaiRec, 7,583 KuaiRand-Pure): the denominator of CV and the Gini domain.
    pub n_items: usize,
    /// Item carries at least one dominant category (MCD); see [`crate::dominant_items`] and
    /// [`crate::anchor_constants`].
    pub dominant: &'a [bool],
    /// Long-tail split: true = popular group P ([`crate::popular_set`]).
    pub popular: &'a [bool],
    /// Novelty's pop(i), **before** the minimum-positive replacement (0 for unseen items).
    pub popularity: &'a [f64],
    /// Pairwise similarity for Diversity ([`crate::TagJaccard`] on KuaiRec, 1/(1+d) on KuaiRand).
    pub similarity: &'a dyn ItemSimilarity,
    /// Raw tags per item, for the optional per-tag exposure ([`crate::compute_tag_exposure`]).
    pub item_tags: Option<&'a [Vec<i32>]>,
}

impl ItemContext<'_> {
    /// Checks that the context and the episodes fit together: every per-item slice has `n_items` entries,
    /// popularities are finite and non-negative, every recommended id is inside the catalogue and every
    /// episode has one reward per item. The metrics never panic without this check, but they silently
    /// skip or default what does not fit (documented per metric), so callers should run it once.
    pub fn validate(&self, episodes: &[Episode]) -> Result<(), MetricsError> {
        let n = self.n_items;
        let mut lengths = vec![("dominant", self.dominant.len()), ("popular", self.popular.len())];
        lengths.push(("popularity", self.popularity.len()));
        if let Some(tags) = self.item_tags {
            lengths.push(("item_tags", tags.len()));
        }
        for (field, found) in lengths {
            if found != n {
                return Err(MetricsError::ContextLength { field, expected: n, found });
            }
        }
        if let Some((item, &value)) = self.popularity.iter().enumerate().find(|(_, p)| !(p.is_finite() && **p >= 0.0)) {
            return Err(MetricsError::Popularity { item, value });
        }
        for (episode, e) in episodes.iter().enumerate() {
            if e.items.len() != e.rewards.len() {
                return Err(MetricsError::RewardCount { episode, items: e.items.len(), rewards: e.rewards.len() });
            }
            if let Some((step, &item)) = e.items.iter().enumerate().find(|(_, &i)| i as usize >= n) {
                return Err(MetricsError::ItemOutOfRange { episode, step, item, n_items: n });
            }
        }
        Ok(())
    }
}

impl fmt::Debug for ItemContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ItemContext")
            .field("n_items", &self.n_items)
            .field("dominant", &self.dominant.len())
            .field("popular", &self.popular.len())
            .field("popularity", &self.popularity.len())
            .field("item_tags", &self.item_tags.map(<[Vec<i32>]>::len))
            .finish_non_exhaustive()
    }
}
