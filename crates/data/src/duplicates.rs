//! Finding repeated rows in an interaction log and applying a [`DuplicatePolicy`].
//!
//! Two kinds of repeat are counted in every log, whatever the policy:
//!
//! * **exact duplicates**: rows identical in every column to an earlier row;
//! * **key repeats**: rows whose (user, video, time) key equals an earlier row's (KuaiRec: `timestamp` and
//!   `time`; KuaiRand: `time_ms`). Every exact duplicate is also a key repeat.
//!
//! The search sorts one `u64` per row (a 32-bit hash of the key above the row index) instead of building a
//! hash map of row strings: 100 MB for the 12.5 M-row big matrix, and rows are only compared column by column
//! inside the rare groups of equal hashes.

use std::cmp::Ordering;

use crate::DuplicatePolicy;

/// A column-stored log whose rows can be compared for duplicate detection.
pub(crate) trait LogRows {
    /// Number of rows.
    fn row_count(&self) -> usize;
    /// Hash of row `i`'s (user, video, time) key.
    fn key_hash(&self, i: usize) -> u64;
    /// Order of the (user, video, time) keys of rows `i` and `j`.
    fn cmp_key(&self, i: usize, j: usize) -> Ordering;
    /// Order of all remaining columns of rows `i` and `j`.
    fn cmp_rest(&self, i: usize, j: usize) -> Ordering;
    /// Keeps the rows whose entry in `keep` is true, in order.
    fn retain_rows(&mut self, keep: &[bool]);
}

/// What the duplicate scan of one log found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DuplicateCounts {
    /// Rows identical in every column to an earlier row.
    pub(crate) exact: u64,
    /// Rows whose (user, video, time) key repeats an earlier row's.
    pub(crate) same_key: u64,
    /// Rows removed by the policy.
    pub(crate) dropped: u64,
}

/// Counts duplicates in `log` and removes rows as `policy` says. The first occurrence (in file order) is
/// always the one kept.
pub(crate) fn apply(log: &mut impl LogRows, policy: DuplicatePolicy) -> DuplicateCounts {
    let n = log.row_count();
    // Row indices must fit in the low 32 bits; a log this long cannot be held column-wise anyway.
    let Ok(n32) = u32::try_from(n) else {
        return DuplicateCounts::default();
    };
    let mut keys: Vec<u64> = (0..n32).map(|i| (log.key_hash(i as usize) << 32) | u64::from(i)).collect();
    keys.sort_unstable();

    let mut counts = DuplicateCounts::default();
    let mut drop = vec![false; if policy == DuplicatePolicy::KeepAll { 0 } else { n }];
    let mut group: Vec<usize> = Vec::new();
    for same_hash in keys.chunk_by(|a, b| a >> 32 == b >> 32) {
        if same_hash.len() < 2 {
            continue;
        }
        group.clear();
        group.extend(same_hash.iter().map(|k| (k & 0xFFFF_FFFF) as usize));
        group.sort_unstable_by(|&i, &j| log.cmp_key(i, j).then_with(|| log.cmp_rest(i, j)).then(i.cmp(&j)));
        for same_key in group.chunk_by(|&i, &j| log.cmp_key(i, j) == Ordering::Equal) {
            counts.same_key += same_key.len() as u64 - 1;
            for exact in same_key.chunk_by(|&i, &j| log.cmp_rest(i, j) == Ordering::Equal) {
                counts.exact += exact.len() as u64 - 1;
                if policy == DuplicatePolicy::DropExact {
                    // Sorted by index last, so the first of a run of equal rows is the earliest.
                    exact.iter().skip(1).for_each(|&r| mark(&mut drop, r));
                }
            }
            if policy == DuplicatePolicy::CollapseUserVideoTime {
                let first = same_key.iter().copied().min().unwrap_or(0);
                same_key.iter().filter(|&&r| r != first).for_each(|&r| mark(&mut drop, r));
            }
        }
    }
    if policy != DuplicatePolicy::KeepAll {
        counts.dropped = drop.iter().filter(|&&d| d).count() as u64;
        if counts.dropped > 0 {
            let keep: Vec<bool> = drop.iter().map(|&d| !d).collect();
            log.retain_rows(&keep);
        }
    }
    counts
}

fn mark(drop: &mut [bool], row: usize) {
    if let Some(slot) = drop.get_mut(row) {
        *slot = true;
    }
}

/// Keeps the entries of `column` whose flag in `keep` is true.
pub(crate) fn retain_column<T>(column: &mut Vec<T>, keep: &[bool]) {
    let mut flags = keep.iter();
    column.retain(|_| flags.next().copied().unwrap_or(true));
}

/// Order of `column[i]` and `column[j]`, for [`LogRows`] comparisons.
pub(crate) fn cmp_at<T: Ord>(column: &[T], i: usize, j: usize) -> Ordering {
    column.get(i).cmp(&column.get(j))
}

/// Total order of two float cells (NaN equal to NaN, so missing timestamps compare equal).
pub(crate) fn cmp_f64_at(column: &[f64], i: usize, j: usize) -> Ordering {
    match (column.get(i), column.get(j)) {
        (Some(a), Some(b)) => a.total_cmp(b),
        (a, b) => a.is_some().cmp(&b.is_some()),
    }
}

/// A fast, deterministic 64-bit mix of a few integers (SplitMix64 finaliser), for the sort key.
pub(crate) fn hash_words(words: &[u64]) -> u64 {
    let mut h: u64 = 0x9E37_79B9_7F4A_7C15;
    for &w in words {
        h ^= w;
        h = h.wrapping_add(0x9E37_79B9_7F4A_7C15);
        h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h ^= h >> 31;
    }
    h >> 32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (user, video, time, value) rows.
    struct Rows(Vec<(u32, u32, i64, i64)>);

    impl LogRows for Rows {
        fn row_count(&self) -> usize {
            self.0.len()
        }
        fn key_hash(&self, i: usize) -> u64 {
            // A deliberately poor hash: everything collides, exercising the in-group comparisons.
            u64::from(self.0[i].0 % 2)
        }
        fn cmp_key(&self, i: usize, j: usize) -> Ordering {
            let (a, b) = (self.0[i], self.0[j]);
            (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2))
        }
        fn cmp_rest(&self, i: usize, j: usize) -> Ordering {
            self.0[i].3.cmp(&self.0[j].3)
        }
        fn retain_rows(&mut self, keep: &[bool]) {
            retain_column(&mut self.0, keep);
        }
    }

    fn rows() -> Rows {
        Rows(vec![
            (1, 1, 10, 5),
            (2, 1, 10, 5),
            (1, 1, 10, 6), // key repeat of row 0
            (1, 1, 10, 5), // exact duplicate of row 0
            (1, 1, 11, 5),
            (1, 1, 10, 6), // exact duplicate of row 2
        ])
    }

    #[test]
    fn keep_all_counts_only() {
        let mut r = rows();
        let c = apply(&mut r, DuplicatePolicy::KeepAll);
        assert_eq!(c, DuplicateCounts { exact: 2, same_key: 3, dropped: 0 });
        assert_eq!(r.0.len(), 6);
    }

    #[test]
    fn drop_exact_keeps_first_occurrences() {
        let mut r = rows();
        let c = apply(&mut r, DuplicatePolicy::DropExact);
        assert_eq!(c.dropped, 2);
        assert_eq!(r.0, [(1, 1, 10, 5), (2, 1, 10, 5), (1, 1, 10, 6), (1, 1, 11, 5)]);
    }

    #[test]
    fn collapse_keeps_first_row_per_key() {
        let mut r = rows();
        let c = apply(&mut r, DuplicatePolicy::CollapseUserVideoTime);
        assert_eq!(c.dropped, 3);
        assert_eq!(r.0, [(1, 1, 10, 5), (2, 1, 10, 5), (1, 1, 11, 5)]);
    }

    #[test]
    fn hash_differs_for_different_keys() {
        assert_ne!(hash_words(&[1, 2, 3]), hash_words(&[1, 2, 4]));
        assert!(hash_words(&[u64::MAX]) <= u64::from(u32::MAX));
    }
}
