//! Item embeddings learned from the training log: the item factors of a biased matrix factorisation
//! (`dsrm_models::MatrixFactorization`) fitted on the world's `train` log, each row L2-normalised.
//!
//! ```text
//! (b, p_u, q_i) = argmin Σ_(u,i,y) ∈ train (y − μ − b_u − b_i − ⟨p_u, q_i⟩)² + reg   # SGD, seeded
//! ê_i = q_i / max(‖q_i‖, 1e-12)          # an item without training row keeps q_i = 0, so ê_i = 0
//! ```
//!
//! Two agents read them, never the ground truth: TD3 scores items by ⟨proto-action, ê_i⟩ (EasyRL4Rec scores
//! by the user model's item embeddings; here the user model is this MF), and DNaIR restricts its candidates to
//! the items with the highest cosine ⟨ê_last, ê_i⟩ to the last recommended one. The fit is seeded, so a resumed
//! run rebuilds the same table instead of storing it.

use crate::{AgentError, Result};
use dsrm_models::MatrixFactorization;
pub use dsrm_models::MfConfig;
use dsrm_sim::World;

/// `[n_items × dim]` row-major unit-norm item factors of the catalogue (zero rows for unseen items).
#[derive(Debug, Clone, PartialEq)]
pub struct ItemFactors {
    /// Catalogue size.
    pub n_items: usize,
    /// Embedding width.
    pub dim: usize,
    /// Row-major ê_i.
    pub rows: Vec<f32>,
}

impl ItemFactors {
    /// Fits the MF on `world.train` (catalogue items only) and normalises its item factors.
    pub fn fit(world: &World, cfg: &MfConfig) -> Result<Self> {
        let n_items = world.spec.n_items();
        if cfg.dim == 0 {
            return Err(AgentError::Config("item factors: mf.dim must be >= 1 (the embedding width)".into()));
        }
        let mut log = world.train.clone();
        log.n_items = log.n_items.max(n_items);
        let mf = MatrixFactorization::fit(&log, cfg)
            .map_err(|e| AgentError::Config(format!("item factors (MF on the training log): {e}")))?;
        let dim = mf.dim();
        let mut rows = Vec::with_capacity(n_items * dim);
        for i in 0..n_items {
            let q = mf.item_factors(i);
            let norm = q.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
            rows.extend(q.iter().map(|&x| (x / norm) as f32));
        }
        Ok(Self { n_items, dim, rows })
    }

    /// ê_i.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.rows[i * self.dim..(i + 1) * self.dim]
    }

    /// The `k` items of highest cosine to item `i` (itself excluded; ties by lower index), best first.
    pub fn nearest(&self, i: usize, k: usize) -> Vec<u32> {
        let e = self.row(i);
        let mut scored: Vec<(f32, u32)> = (0..self.n_items)
            .filter(|&j| j != i)
            .map(|j| (self.row(j).iter().zip(e).map(|(a, b)| a * b).sum::<f32>(), j as u32))
            .collect();
        let k = k.min(scored.len());
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored.truncate(k);
        scored.into_iter().map(|(_, j)| j).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_unit_or_zero_and_neighbours_are_sorted_by_cosine() {
        let f = ItemFactors { n_items: 4, dim: 2, rows: vec![1.0, 0.0, 0.8, 0.6, 0.0, 1.0, -1.0, 0.0] };
        assert_eq!(f.nearest(0, 2), vec![1, 2]);
        assert_eq!(f.nearest(3, 10), vec![2, 1, 0]);
        let world = dsrm_sim::test_support::tiny_world();
        let fit = ItemFactors::fit(world, &MfConfig { dim: 8, epochs: 2, ..Default::default() }).unwrap();
        assert_eq!((fit.n_items, fit.dim, fit.rows.len()), (world.spec.n_items(), 8, world.spec.n_items() * 8));
        for i in 0..fit.n_items {
            let n: f32 = fit.row(i).iter().map(|x| x * x).sum();
            assert!((n - 1.0).abs() < 1e-4 || n == 0.0, "item {i}: squared norm {n}");
        }
        let err = ItemFactors::fit(world, &MfConfig { dim: 0, ..Default::default() }).unwrap_err().to_string();
        assert!(err.contains("mf.dim"), "{err}");
    }
}
