//! The crate's one error type. Metrics themselves never fail (degenerate input has documented values);
//! errors come only from [`crate::ItemContext::validate`], which callers run to catch wiring mistakes.

use std::fmt;

/// A mismatch between the episodes and the per-item facts they are scored against.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricsError {
    /// A per-item slice of the context does not have `n_items` entries.
    ContextLength { field: &'static str, expected: usize, found: usize },
    /// An episode recommends an id outside the catalogue.
    ItemOutOfRange { episode: usize, step: usize, item: u32, n_items: usize },
    /// An episode has a different number of rewards than items.
    RewardCount { episode: usize, items: usize, rewards: usize },
    /// A popularity is negative or not finite (0 is allowed: unseen items).
    Popularity { item: usize, value: f64 },
}

impl fmt::Display for MetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ContextLength { field, expected, found } => {
                write!(f, "item context field `{field}` has {found} entries, expected n_items = {expected}")
            }
            Self::ItemOutOfRange { episode, step, item, n_items } => {
                write!(f, "episode {episode}, step {step}: item id {item} is outside the catalogue of {n_items} items")
            }
            Self::RewardCount { episode, items, rewards } => {
                write!(f, "episode {episode} has {items} items but {rewards} rewards")
            }
            Self::Popularity { item, value } => {
                write!(f, "popularity of item {item} is {value}; expected a finite value >= 0")
            }
        }
    }
}

impl std::error::Error for MetricsError {}
