//! Interest drift (T-RECS `Users(drift=…)`; RecSim's user-state update): what a user consumes pulls its taste
//! towards it, so early exposure shapes later preferences.
//!
//! ```text
//! latent preferences p_u, item factors q_i:  the truth's own factors (low-rank truth, KuaiRand-Pure), or the
//!                                            rank-`drift_rank` factorisation of the dense truth: its truncated
//!                                            SVD after removing user and item means, X ≈ U S Vᵀ,
//!                                            p_u = U_u √S, q_i = V_i √S (the best rank-k fit of a complete table)
//! after a round, for each user u that consumed items C_u:
//!     p_u ← (1 − η) · p_u + η · mean_{i ∈ C_u} q_i
//! truth_u,i = truth⁰_u,i + (p_u − p⁰_u) · q_i      dense truth: round 0's cell plus the change of the latent
//!                                                   score (clamped to round 0's range); low-rank: p_u replaced
//! ```
//!
//! Adding the change of the latent score keeps round 0's truth exactly the data's (the MF's residual stays in
//! every cell) while the part of taste the factors explain moves. On synthetic data the generator's own factors
//! enter the watch ratio through a non-linear map the data set does not export, so the factorisation is used
//! there too: the mechanism is the same on every data set. The SVD is computed by subspace iteration from a
//! seeded start (`iterations` rounds, each re-orthonormalised), so it is deterministic.

use crate::{RewardTable, SimError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Latent preferences at round 0 and now, and the item factors they are scored against.
#[derive(Debug, Clone)]
pub struct Latent {
    dim: usize,
    initial: Vec<f64>,
    current: Vec<f64>,
    items: Vec<f64>,
}

impl Latent {
    /// The factors of `truth`: its own (low-rank) or the rank-`rank` SVD factors of the dense table.
    pub fn of(truth: &RewardTable, rank: usize, seed: u64) -> Result<Self, SimError> {
        match truth {
            RewardTable::LowRank(l) => Ok(Self {
                dim: l.dim,
                initial: l.user_factors.clone(),
                current: l.user_factors.clone(),
                items: l.item_factors.clone(),
            }),
            RewardTable::Dense { n_users, n_items, values } => {
                let (users, items, dim) = svd_factors(values, *n_users, *n_items, rank, seed);
                Ok(Self { dim, initial: users.clone(), current: users, items })
            }
        }
    }

    /// One round of drift at rate η: `consumed[u]` are the items user u consumed (empty: unchanged).
    pub fn drift(&mut self, consumed: &[Vec<u32>], rate: f64) {
        let d = self.dim;
        let mut mean = vec![0.0; d];
        for (u, items) in consumed.iter().enumerate().filter(|(_, items)| !items.is_empty()) {
            mean.iter_mut().for_each(|m| *m = 0.0);
            for &i in items {
                let q = &self.items[i as usize * d..(i as usize + 1) * d];
                mean.iter_mut().zip(q).for_each(|(m, x)| *m += x / items.len() as f64);
            }
            let p = &mut self.current[u * d..(u + 1) * d];
            p.iter_mut().zip(&mean).for_each(|(p, m)| *p = (1.0 - rate) * *p + rate * m);
        }
    }

    /// Adds (p_u − p⁰_u) · q_i to every item i of `row` (user u's truth row).
    pub fn add_shift(&self, user: usize, row: &mut [f64]) {
        let d = self.dim;
        let delta: Vec<f64> = self.current[user * d..(user + 1) * d]
            .iter()
            .zip(&self.initial[user * d..(user + 1) * d])
            .map(|(c, i)| c - i)
            .collect();
        if delta.iter().all(|&x| x == 0.0) {
            return;
        }
        for (i, v) in row.iter_mut().enumerate() {
            let q = &self.items[i * d..(i + 1) * d];
            *v += delta.iter().zip(q).map(|(a, b)| a * b).sum::<f64>();
        }
    }

    /// The current preferences, `n_users * dim`.
    pub fn current_user_factors(&self) -> &[f64] {
        &self.current
    }
}

/// Subspace iterations of [`svd_factors`].
const ITERATIONS: usize = 30;

/// (user factors `nu * k`, item factors `ni * k`, k) of the doubly centred `nu x ni` table: the top-k singular
/// triplets by subspace iteration, each side scaled by √S. k = min(rank, nu, ni).
fn svd_factors(values: &[f64], nu: usize, ni: usize, rank: usize, seed: u64) -> (Vec<f64>, Vec<f64>, usize) {
    let k = rank.min(nu).min(ni);
    let row_mean: Vec<f64> = (0..nu).map(|u| values[u * ni..(u + 1) * ni].iter().sum::<f64>() / ni as f64).collect();
    let col_mean: Vec<f64> = (0..ni).map(|i| (0..nu).map(|u| values[u * ni + i]).sum::<f64>() / nu as f64).collect();
    let grand = row_mean.iter().sum::<f64>() / nu as f64;
    let x: Vec<f64> = (0..nu * ni).map(|c| values[c] - row_mean[c / ni] - col_mean[c % ni] + grand).collect();
    // V (ni x k, column-major by factor) from a seeded start; alternate U = X V, V = Xᵀ U, orthonormalising.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut v: Vec<Vec<f64>> = (0..k).map(|_| (0..ni).map(|_| rng.gen_range(-1.0..1.0)).collect()).collect();
    orthonormalise(&mut v);
    let mut u: Vec<Vec<f64>> = vec![vec![0.0; nu]; k];
    for _ in 0..ITERATIONS {
        for (uc, vc) in u.iter_mut().zip(&v) {
            for (r, out) in uc.iter_mut().enumerate() {
                *out = x[r * ni..(r + 1) * ni].iter().zip(vc).map(|(a, b)| a * b).sum();
            }
        }
        orthonormalise(&mut u);
        for (vc, uc) in v.iter_mut().zip(&u) {
            vc.iter_mut().for_each(|o| *o = 0.0);
            for (r, &w) in uc.iter().enumerate() {
                vc.iter_mut().zip(&x[r * ni..(r + 1) * ni]).for_each(|(o, a)| *o += w * a);
            }
        }
        orthonormalise(&mut v);
    }
    // Singular values: s_j = u_jᵀ X v_j.
    let sigma: Vec<f64> = u
        .iter()
        .zip(&v)
        .map(|(uc, vc)| {
            (0..nu)
                .map(|r| uc[r] * x[r * ni..(r + 1) * ni].iter().zip(vc).map(|(a, b)| a * b).sum::<f64>())
                .sum::<f64>()
        })
        .collect();
    let scale: Vec<f64> = sigma.iter().map(|s| s.abs().sqrt()).collect();
    let users = (0..nu).flat_map(|r| (0..k).map(|j| u[j][r] * scale[j]).collect::<Vec<_>>()).collect();
    let items =
        (0..ni).flat_map(|i| (0..k).map(|j| v[j][i] * scale[j] * sigma[j].signum()).collect::<Vec<_>>()).collect();
    (users, items, k)
}

/// Gram–Schmidt on the columns in place (a column that vanishes stays 0).
fn orthonormalise(cols: &mut [Vec<f64>]) {
    for j in 0..cols.len() {
        let (done, rest) = cols.split_at_mut(j);
        let c = &mut rest[0];
        for d in done.iter() {
            let dot: f64 = c.iter().zip(d).map(|(a, b)| a * b).sum();
            c.iter_mut().zip(d).for_each(|(a, b)| *a -= dot * b);
        }
        let norm = c.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 1e-12 {
            c.iter_mut().for_each(|a| *a /= norm);
        } else {
            c.iter_mut().for_each(|a| *a = 0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_svd_factors_reproduce_a_rank_two_table() {
        // X = a bᵀ + c dᵀ plus user and item means: the rank-2 factors give back the centred table.
        let (nu, ni) = (5, 7);
        let a = [1.0, -2.0, 0.5, 0.0, 3.0];
        let b = [0.3, 1.0, -1.0, 2.0, 0.0, 0.5, -0.7];
        let values: Vec<f64> = (0..nu * ni)
            .map(|c| 2.0 + a[c / ni] * b[c % ni] + 0.1 * (c / ni) as f64 + 0.4 * ((c % ni) % 2) as f64)
            .collect();
        let (u, v, k) = super::svd_factors(&values, nu, ni, 2, 3);
        assert_eq!(k, 2);
        let row: Vec<f64> = (0..nu).map(|r| values[r * ni..(r + 1) * ni].iter().sum::<f64>() / ni as f64).collect();
        let col: Vec<f64> = (0..ni).map(|i| (0..nu).map(|r| values[r * ni + i]).sum::<f64>() / nu as f64).collect();
        let grand = row.iter().sum::<f64>() / nu as f64;
        for r in 0..nu {
            for i in 0..ni {
                let fit: f64 = (0..k).map(|j| u[r * k + j] * v[i * k + j]).sum();
                let want = values[r * ni + i] - row[r] - col[i] + grand;
                assert!((fit - want).abs() < 1e-6, "cell ({r}, {i}): {fit} vs {want}");
            }
        }
    }
}
