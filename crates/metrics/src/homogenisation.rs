//! Homogenisation of consumption (Chaney, Stewart, Engelhardt, RecSys 2018; T-RECS `InteractionSimilarity`):
//! how alike the sets of items different users consumed are.
//!
//! ```text
//! H = mean over user pairs {u, v} of |C_u ∩ C_v| / |C_u ∪ C_v|      users with an empty set are left out
//! ```
//!
//! Exact over all pairs (O(n² · set size)): a loop round's users, thousands at most.

/// Mean pairwise Jaccard overlap of `sets` (each user's consumed items, any order, repeats allowed); 0 with
/// fewer than two non-empty sets.
pub fn mean_pairwise_jaccard(sets: &[Vec<u32>]) -> f64 {
    let sets: Vec<Vec<u32>> = sets
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| {
            let mut s = s.clone();
            s.sort_unstable();
            s.dedup();
            s
        })
        .collect();
    let n = sets.len();
    if n < 2 {
        return 0.0;
    }
    let mut total = 0.0;
    for a in 0..n {
        for b in a + 1..n {
            let shared = intersection_size(&sets[a], &sets[b]);
            total += shared as f64 / (sets[a].len() + sets[b].len() - shared) as f64;
        }
    }
    total / (n * (n - 1) / 2) as f64
}

/// |a ∩ b| of two sorted, deduplicated slices.
fn intersection_size(a: &[u32], b: &[u32]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaccard_of_known_sets() {
        // {1,2,3} vs {2,3,4}: 2/4; {1,2,3} vs {9}: 0; {2,3,4} vs {9}: 0 -> mean 1/6.
        let h = mean_pairwise_jaccard(&[vec![3, 1, 2, 2], vec![4, 2, 3], vec![9], vec![]]);
        assert!((h - 0.5 / 3.0).abs() < 1e-12, "{h}");
        assert_eq!(mean_pairwise_jaccard(&[vec![1, 2], vec![2, 1]]), 1.0);
        assert_eq!(mean_pairwise_jaccard(&[vec![1]]), 0.0);
    }
}
