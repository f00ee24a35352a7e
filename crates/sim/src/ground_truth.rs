//! The ground-truth reward table M: r_t = M[u, a_t] (`docs/protocol.md` §1.1, §1.2, §1.6).

use crate::{Result, SimError};
use dsrm_data::KuaiRecLog;
use serde::{Deserialize, Serialize};

/// How the KuaiRec ground truth treats a (user, video) pair that appears more than once in the small matrix.
/// The release has one row per pair; the anchors' sparse construction would *sum* duplicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SmallDuplicates {
    /// Refuse the file: a duplicate in the ground truth is almost surely a corrupted input (default).
    #[default]
    Error,
    /// Add the capped values, as the anchors' coo-matrix construction does.
    Sum,
    /// Keep the first row.
    First,
}

/// A user x item reward table.
#[derive(Debug, Clone, PartialEq)]
pub enum RewardTable {
    /// Row-major `n_users * n_items` values (KuaiRec small matrix; DORL's KuaiRand file; Coat).
    Dense { n_users: usize, n_items: usize, values: Vec<f64> },
    /// A matrix-factorisation completion evaluated on demand: `link(global + b_u + b_i + p_u . q_i)`.
    /// KuaiRand-Pure's 27,285 x 7,583 table would take 1.65 GB dense; this takes ~10 MB.
    LowRank(LowRank),
}

/// The factors of a fitted MF, stored for fast reward lookups.
#[derive(Debug, Clone, PartialEq)]
pub struct LowRank {
    pub n_users: usize,
    pub n_items: usize,
    pub dim: usize,
    pub global: f64,
    pub user_bias: Vec<f64>,
    pub item_bias: Vec<f64>,
    /// `n_users * dim`.
    pub user_factors: Vec<f64>,
    /// `n_items * dim`.
    pub item_factors: Vec<f64>,
    /// Apply a sigmoid (a completion of 0/1 targets such as `is_click`).
    pub sigmoid: bool,
}

impl LowRank {
    /// Copies the factors out of a fitted model.
    pub fn from_mf(mf: &dsrm_models::MatrixFactorization, sigmoid: bool) -> Self {
        let (n_users, n_items, dim) = (mf.n_users(), mf.n_items(), mf.dim());
        Self {
            n_users,
            n_items,
            dim,
            global: mf.global_mean(),
            user_bias: mf.user_biases().to_vec(),
            item_bias: mf.item_biases().to_vec(),
            user_factors: (0..n_users).flat_map(|u| mf.user_factors(u).to_vec()).collect(),
            item_factors: (0..n_items).flat_map(|i| mf.item_factors(i).to_vec()).collect(),
            sigmoid,
        }
    }

    #[inline]
    fn value(&self, user: u32, item: u32) -> f64 {
        let (u, i, d) = (user as usize, item as usize, self.dim);
        let p = &self.user_factors[u * d..(u + 1) * d];
        let q = &self.item_factors[i * d..(i + 1) * d];
        let x = self.global + self.user_bias[u] + self.item_bias[i] + p.iter().zip(q).map(|(a, b)| a * b).sum::<f64>();
        if self.sigmoid {
            1.0 / (1.0 + (-x).exp())
        } else {
            x
        }
    }
}

impl RewardTable {
    /// Number of users (rows).
    pub fn n_users(&self) -> usize {
        match self {
            RewardTable::Dense { n_users, .. } => *n_users,
            RewardTable::LowRank(l) => l.n_users,
        }
    }

    /// Number of items (columns).
    pub fn n_items(&self) -> usize {
        match self {
            RewardTable::Dense { n_items, .. } => *n_items,
            RewardTable::LowRank(l) => l.n_items,
        }
    }

    /// M[user, item].
    #[inline]
    pub fn reward(&self, user: u32, item: u32) -> f64 {
        match self {
            RewardTable::Dense { n_items, values, .. } => values[user as usize * n_items + item as usize],
            RewardTable::LowRank(l) => l.value(user, item),
        }
    }

    /// One user's row, written into `out` (length `n_items`).
    pub fn row_into(&self, user: u32, out: &mut [f64]) {
        match self {
            RewardTable::Dense { n_items, values, .. } => {
                out.copy_from_slice(&values[user as usize * n_items..(user as usize + 1) * n_items])
            }
            RewardTable::LowRank(l) => out.iter_mut().enumerate().for_each(|(i, o)| *o = l.value(user, i as u32)),
        }
    }

    /// (min, max) over all cells: the test-time reward normalisation range of the `avg` tracker (§3).
    pub fn range(&self) -> (f64, f64) {
        let mut row = vec![0.0; self.n_items()];
        (0..self.n_users() as u32).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), u| {
            self.row_into(u, &mut row);
            row.iter().fold((lo, hi), |(lo, hi), &v| (lo.min(v), hi.max(v)))
        })
    }

    /// Euclidean distances between item columns, as `n_items * n_items` (Coat's distance quit rule).
    /// O(n_items^2 * n_users): meant for small catalogues.
    pub fn column_distances(&self) -> Vec<f32> {
        let (nu, ni) = (self.n_users(), self.n_items());
        let mut cols = vec![0.0; nu * ni]; // column-major copy
        let mut row = vec![0.0; ni];
        for u in 0..nu {
            self.row_into(u as u32, &mut row);
            for (i, v) in row.iter().enumerate() {
                cols[i * nu + u] = *v;
            }
        }
        let mut d = vec![0f32; ni * ni];
        for a in 0..ni {
            for b in a + 1..ni {
                let ca = &cols[a * nu..(a + 1) * nu];
                let cb = &cols[b * nu..(b + 1) * nu];
                let dist = ca.iter().zip(cb).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt() as f32;
                d[a * ni + b] = dist;
                d[b * ni + a] = dist;
            }
        }
        d
    }
}

/// The KuaiRec ground truth and its id maps.
#[derive(Debug, Clone)]
pub struct KuaiRecTruth {
    pub table: RewardTable,
    /// Dense user -> `user_id` (sorted distinct small-matrix users).
    pub user_ids: Vec<u32>,
    /// Dense item -> `video_id` (sorted distinct small-matrix videos).
    pub item_ids: Vec<u32>,
    /// μ, the mean of the capped `watch_ratio` over non-NaN rows, used for NaN cells.
    pub fill_mean: f64,
    pub nan_cells: usize,
    pub capped_rows: usize,
    pub missing_cells: usize,
}

/// The cap on KuaiRec watch ratios (applied before the mean fill; +inf becomes the cap too).
pub const KUAIREC_REWARD_CAP: f64 = 5.0;

/// Builds M from `small_matrix.csv` exactly as `docs/protocol.md` §1.1:
/// sorted-rank ids; cap at 5 (inf -> 5); place values; missing pairs -> 0; NaN cells -> μ (mean of the capped
/// column over non-NaN rows).
pub fn kuairec_truth(small: &KuaiRecLog, duplicates: SmallDuplicates) -> Result<KuaiRecTruth> {
    if small.is_empty() {
        return Err(SimError::Invalid("small_matrix.csv has no rows".into()));
    }
    let sorted_distinct = |ids: &[u32]| {
        let mut v = ids.to_vec();
        v.sort_unstable();
        v.dedup();
        v
    };
    let user_ids = sorted_distinct(&small.user_id);
    let item_ids = sorted_distinct(&small.video_id);
    let (nu, ni) = (user_ids.len(), item_ids.len());
    let dense = |ids: &[u32], max: usize| {
        let mut map = vec![u32::MAX; max + 1];
        ids.iter().enumerate().for_each(|(d, &id)| map[id as usize] = d as u32);
        map
    };
    let user_map = dense(&user_ids, *user_ids.last().expect("non-empty") as usize);
    let item_map = dense(&item_ids, *item_ids.last().expect("non-empty") as usize);

    let capped: Vec<f64> =
        small.watch_ratio.iter().map(|&w| if w > KUAIREC_REWARD_CAP { KUAIREC_REWARD_CAP } else { w }).collect();
    let capped_rows = small.watch_ratio.iter().filter(|&&w| w > KUAIREC_REWARD_CAP).count();
    let (sum, count) = capped.iter().filter(|w| !w.is_nan()).fold((0.0, 0usize), |(s, c), w| (s + w, c + 1));
    let fill_mean = if count > 0 { sum / count as f64 } else { 0.0 };

    let mut values = vec![0.0f64; nu * ni];
    let mut seen = vec![false; nu * ni];
    for (row, &w) in capped.iter().enumerate() {
        let cell =
            user_map[small.user_id[row] as usize] as usize * ni + item_map[small.video_id[row] as usize] as usize;
        if seen[cell] {
            match duplicates {
                SmallDuplicates::Error => {
                    return Err(SimError::Invalid(format!(
                        "small_matrix.csv row {} (line {}): (user_id {}, video_id {}) appears twice; the ground truth needs one \
                         value per pair (set small_duplicates = \"sum\" for the anchors' summing, or \"first\")",
                        row + 1,
                        row + 2,
                        small.user_id[row],
                        small.video_id[row]
                    )))
                }
                SmallDuplicates::Sum => values[cell] += w,
                SmallDuplicates::First => {}
            }
        } else {
            values[cell] = w;
            seen[cell] = true;
        }
    }
    // Remaining non-finite cells (NaN rows, a NaN sum, or a -inf) take μ.
    let mut nan_cells = 0;
    for v in values.iter_mut().filter(|v| !v.is_finite()) {
        *v = fill_mean;
        nan_cells += 1;
    }
    let missing_cells = seen.iter().filter(|s| !**s).count();
    Ok(KuaiRecTruth {
        table: RewardTable::Dense { n_users: nu, n_items: ni, values },
        user_ids,
        item_ids,
        fill_mean,
        nan_cells,
        capped_rows,
        missing_cells,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(rows: &[(u32, u32, f64)]) -> KuaiRecLog {
        KuaiRecLog {
            user_id: rows.iter().map(|r| r.0).collect(),
            video_id: rows.iter().map(|r| r.1).collect(),
            watch_ratio: rows.iter().map(|r| r.2).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn cap_before_fill_inf_to_cap_nan_to_capped_mean_missing_to_zero() {
        // users {7, 3} -> dense {3:0, 7:1}; videos {10, 2, 5} -> {2:0, 5:1, 10:2}
        let small = log(&[(7, 10, 9.0), (7, 2, f64::INFINITY), (3, 2, f64::NAN), (3, 5, 1.0), (7, 5, 0.5)]);
        let t = kuairec_truth(&small, SmallDuplicates::Error).unwrap();
        assert_eq!(t.user_ids, [3, 7]);
        assert_eq!(t.item_ids, [2, 5, 10]);
        // capped non-NaN values: 5, 5, 1, 0.5 -> μ = 11.5 / 4
        let mu = 11.5 / 4.0;
        assert_eq!(t.fill_mean, mu);
        let m = |u, a| t.table.reward(u, a);
        assert_eq!(m(1, 2), 5.0);
        assert_eq!(m(1, 0), 5.0);
        assert_eq!(m(0, 0), mu);
        assert_eq!(m(0, 1), 1.0);
        assert_eq!(m(1, 1), 0.5);
        assert_eq!(m(0, 2), 0.0, "blocked pair");
        assert_eq!((t.nan_cells, t.missing_cells, t.capped_rows), (1, 1, 2));
    }

    #[test]
    fn duplicates_follow_the_policy() {
        let small = log(&[(0, 0, 1.0), (0, 0, 2.0), (0, 1, 1.0)]);
        let err = kuairec_truth(&small, SmallDuplicates::Error).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("video_id 0"), "{err}");
        assert_eq!(kuairec_truth(&small, SmallDuplicates::Sum).unwrap().table.reward(0, 0), 3.0);
        assert_eq!(kuairec_truth(&small, SmallDuplicates::First).unwrap().table.reward(0, 0), 1.0);
    }

    #[test]
    fn column_distances_are_euclidean() {
        let t = RewardTable::Dense { n_users: 2, n_items: 3, values: vec![0.0, 3.0, 0.0, 0.0, 4.0, 1.0] };
        let d = t.column_distances();
        assert_eq!(d[1], 5.0);
        assert_eq!(d[2], 1.0);
        assert_eq!(d[3], 5.0);
        assert_eq!(t.range(), (0.0, 4.0));
    }
}
