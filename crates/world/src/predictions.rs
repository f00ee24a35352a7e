//! The world model's view of the environment grid: DORL's `matPre` (mean prediction over the ensemble)
//! and `matVar` (element-wise max over models of the predicted variance), one value per environment user and
//! catalogue item (`docs/protocol.md` §4.1). The simulated reward reads only this, so a grid computed once can
//! serve every training environment, thread and seed (it is shared behind an `Arc`).

use crate::{invalid, Result};

/// Row-major `n_users × n_items` predictions (f32: KuaiRand-Pure's grid has 207 M cells).
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    n_users: usize,
    n_items: usize,
    pred: Vec<f32>,
    max_var: Vec<f32>,
    pred_range: (f64, f64),
    max_var_range: (f64, f64),
}

impl Predictions {
    /// Wraps the two grids. Errors when a grid has the wrong length, is empty, holds a non-finite value, or a
    /// variance is negative.
    pub fn new(n_users: usize, n_items: usize, pred: Vec<f32>, max_var: Vec<f32>) -> Result<Self> {
        let cells = n_users.checked_mul(n_items).ok_or_else(|| invalid("grid size overflows"))?;
        if cells == 0 || pred.len() != cells || max_var.len() != cells {
            return Err(invalid(format!(
                "a {n_users} x {n_items} grid needs {cells} cells; got {} predictions and {} variances",
                pred.len(),
                max_var.len()
            )));
        }
        let range = |v: &[f32], what: &str| -> Result<(f64, f64)> {
            let mut lo = f64::INFINITY;
            let mut hi = f64::NEG_INFINITY;
            for (cell, &x) in v.iter().enumerate() {
                if !x.is_finite() {
                    return Err(invalid(format!("{what} of cell {cell} is {x}")));
                }
                lo = lo.min(f64::from(x));
                hi = hi.max(f64::from(x));
            }
            Ok((lo, hi))
        };
        let pred_range = range(&pred, "prediction")?;
        let max_var_range = range(&max_var, "variance")?;
        if max_var_range.0 < 0.0 {
            return Err(invalid(format!("negative variance {}", max_var_range.0)));
        }
        Ok(Self { n_users, n_items, pred, max_var, pred_range, max_var_range })
    }

    /// Environment users (grid rows).
    pub fn n_users(&self) -> usize {
        self.n_users
    }

    /// Catalogue items (grid columns).
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// ŷ for every cell, row-major.
    pub fn pred(&self) -> &[f32] {
        &self.pred
    }

    /// max over models of exp(ℓ) for every cell, row-major.
    pub fn max_var(&self) -> &[f32] {
        &self.max_var
    }

    /// ŷ[user, item].
    ///
    /// # Panics
    /// If the cell is outside the grid.
    #[inline]
    pub fn pred_at(&self, user: u32, item: u32) -> f64 {
        f64::from(self.pred[self.cell(user, item)])
    }

    /// maxvar[user, item].
    ///
    /// # Panics
    /// If the cell is outside the grid.
    #[inline]
    pub fn max_var_at(&self, user: u32, item: u32) -> f64 {
        f64::from(self.max_var[self.cell(user, item)])
    }

    /// (min ŷ, max ŷ) over the grid: MIN_R and MAX_R start from it.
    pub fn pred_range(&self) -> (f64, f64) {
        self.pred_range
    }

    /// (min maxvar, max maxvar) over the grid.
    pub fn max_var_range(&self) -> (f64, f64) {
        self.max_var_range
    }

    #[inline]
    fn cell(&self, user: u32, item: u32) -> usize {
        assert!((item as usize) < self.n_items, "item {item} outside the {}-item grid", self.n_items);
        user as usize * self.n_items + item as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_validation() {
        let p = Predictions::new(2, 2, vec![0.5, -1.0, 2.0, 0.0], vec![0.1, 0.2, 0.3, 0.05]).unwrap();
        assert_eq!(p.pred_range(), (-1.0, 2.0));
        assert_eq!(p.pred_at(1, 0), 2.0);
        assert!((p.max_var_range().1 - 0.3).abs() < 1e-7);
        assert!(Predictions::new(2, 2, vec![0.0; 3], vec![0.0; 4]).is_err());
        assert!(Predictions::new(1, 1, vec![f32::NAN], vec![0.0]).is_err());
        assert!(Predictions::new(1, 1, vec![0.0], vec![-1.0]).is_err());
    }
}
