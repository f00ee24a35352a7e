//! The unit every metric reads: one finished episode, in dense catalogue ids.

use serde::{Deserialize, Serialize};

/// One finished episode: the user, the recommended items in order, and the reward paid at each step.
///
/// The metrics never look at how the episode was produced (mode, policy, seed); the evaluation crate
/// groups episodes per mode and calls [`crate::compute`] on each group (`docs/protocol.md` §2, §6).
/// The episode's length is `items.len()`; `rewards` should have the same length (checked by
/// [`crate::ItemContext::validate`]), and its sum is the episode's cumulative reward whatever its length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// Dense user id (kept for per-user breakdowns; no metric here uses it).
    pub user: u32,
    /// Dense catalogue ids of the recommended items, step 1 first.
    pub items: Vec<u32>,
    /// Ground-truth reward of each step.
    pub rewards: Vec<f64>,
}

impl Episode {
    /// Builds an episode from its parts.
    pub fn new(user: u32, items: Vec<u32>, rewards: Vec<f64>) -> Self {
        Self { user, items, rewards }
    }

    /// Number of steps L_j (the number of recommended items).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True for an episode with no step (never produced by the anchors; handled, not expected).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Cumulative reward Σ_t r_{j,t}, summed left to right.
    pub fn total_reward(&self) -> f64 {
        self.rewards.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_and_total_reward() {
        let e = Episode::new(3, vec![1, 2, 2], vec![0.5, 1.0, 1.5]);
        assert_eq!(e.len(), 3);
        assert!(!e.is_empty());
        assert_eq!(e.total_reward(), 3.0);
        let empty = Episode::new(0, vec![], vec![]);
        assert!(empty.is_empty());
        assert_eq!(empty.total_reward(), 0.0);
    }

    #[test]
    fn serde_round_trip() {
        let e = Episode::new(7, vec![4, 5], vec![1.0, 0.0]);
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(json, r#"{"user":7,"items":[4,5],"rewards":[1.0,0.0]}"#);
        let back: Episode = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
    }
}
