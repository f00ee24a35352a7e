//! Satiation / boredom with repeated categories (CIRS's satiation; RecLab Topics' `boredom`): a category a user
//! has just consumed a lot of is worth less to it for a while.
//!
//! ```text
//! after a round, for every user u and category c:
//!     S_u,c ← δ · S_u,c + (1 − δ) · share_u,c     share: c's share of the items u consumed in the round
//!                                                 (an item counts for each of its categories; 0 if none)
//! truth_u,i = truth⁰_u,i · (1 − σ · max_{c ∈ cats(i)} S_u,c)
//! ```
//!
//! S stays in [0, 1]; an item without categories is never sated. The truth is assumed ≥ 0 (watch ratios,
//! ratings), so satiation only lowers it.

/// Satiation per (user, category).
#[derive(Debug, Clone)]
pub struct Satiation {
    n_categories: usize,
    /// `n_users * n_categories`.
    level: Vec<f64>,
    /// Each item's categories as dense indices.
    item_categories: Vec<Vec<usize>>,
}

impl Satiation {
    /// Zero satiation for `n_users` users over the categories of `item_tags`.
    pub fn new(n_users: usize, item_tags: &[Vec<i32>]) -> Self {
        let mut ids: Vec<i32> = item_tags.iter().flatten().copied().collect();
        ids.sort_unstable();
        ids.dedup();
        let item_categories = item_tags
            .iter()
            .map(|tags| tags.iter().map(|t| ids.binary_search(t).expect("a listed tag")).collect())
            .collect();
        Self { n_categories: ids.len(), level: vec![0.0; n_users * ids.len()], item_categories }
    }

    /// One round: `consumed[u]` are the items u consumed; δ = `decay`.
    pub fn update(&mut self, consumed: &[Vec<u32>], decay: f64) {
        let k = self.n_categories;
        let mut share = vec![0.0; k];
        for (u, items) in consumed.iter().enumerate() {
            share.iter_mut().for_each(|s| *s = 0.0);
            for &i in items {
                for &c in &self.item_categories[i as usize] {
                    share[c] += 1.0 / items.len() as f64;
                }
            }
            let level = &mut self.level[u * k..(u + 1) * k];
            level.iter_mut().zip(&share).for_each(|(s, x)| *s = (decay * *s + (1.0 - decay) * x.min(1.0)).min(1.0));
        }
    }

    /// Scales user u's truth row by 1 − σ · (the item's most-sated category's level).
    pub fn scale_row(&self, user: usize, strength: f64, row: &mut [f64]) {
        let level = &self.level[user * self.n_categories..(user + 1) * self.n_categories];
        for (v, cats) in row.iter_mut().zip(&self.item_categories) {
            let s = cats.iter().map(|&c| level[c]).fold(0.0, f64::max);
            *v *= 1.0 - strength * s;
        }
    }

    /// S_u,c for category index c (the sorted order of the tag ids).
    pub fn level(&self, user: usize, category: usize) -> f64 {
        self.level[user * self.n_categories + category]
    }
}
