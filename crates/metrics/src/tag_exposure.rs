//! Optional per-category exposure (`docs/protocol.md` §6.2, last row): which raw tags the recommendations
//! carry, to see whether a policy's exposure concentrates on a few categories.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The exposure share of one raw tag.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TagExposure {
    /// Raw tag id.
    pub tag: i32,
    /// Σ_{i carries tag} e_i / Σ_i e_i · |tags(i)|: each exposed item counts once per (distinct) tag it
    /// carries, normalised by the total tag occurrences of the exposed items; the shares sum to 1.
    pub share: f64,
}

/// Per-tag exposure shares for every tag that appears in `item_tags` (unexposed tags get share 0), sorted
/// by tag id so that tables from different runs line up. Repeated tags within one item count once;
/// untagged items and items beyond `item_tags` contribute no occurrence. All shares are 0 when no exposed
/// item carries a tag.
pub fn per_tag_exposure(exposure: &[u64], item_tags: &[Vec<i32>]) -> Vec<TagExposure> {
    let mut occurrences: BTreeMap<i32, u64> = BTreeMap::new();
    let mut distinct: Vec<i32> = Vec::new();
    for (i, tags) in item_tags.iter().enumerate() {
        let e = exposure.get(i).copied().unwrap_or(0);
        distinct.clear();
        distinct.extend_from_slice(tags);
        distinct.sort_unstable();
        distinct.dedup();
        for &t in &distinct {
            *occurrences.entry(t).or_insert(0) += e;
        }
    }
    let total: u64 = occurrences.values().sum();
    occurrences
        .into_iter()
        .map(|(tag, c)| TagExposure { tag, share: if total == 0 { 0.0 } else { c as f64 / total as f64 } })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_by_hand() {
        // Items: 0 {1, 2}, 1 {2, 2} (= {2}), 2 {} (untagged), 3 {5}; e = [2, 1, 4, 0].
        // Occurrences: tag 1 -> 2, tag 2 -> 2 + 1 = 3, tag 5 -> 0; total 5.
        let tags = vec![vec![1, 2], vec![2, 2], vec![], vec![5]];
        let s = per_tag_exposure(&[2, 1, 4, 0], &tags);
        assert_eq!(
            s,
            vec![
                TagExposure { tag: 1, share: 0.4 },
                TagExposure { tag: 2, share: 0.6 },
                TagExposure { tag: 5, share: 0.0 },
            ]
        );
        let zero = per_tag_exposure(&[0, 0, 9, 0], &tags);
        assert!(zero.iter().all(|t| t.share == 0.0));
        assert!(per_tag_exposure(&[], &[]).is_empty());
    }
}
