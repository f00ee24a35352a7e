//! DORL's entropy map (`docs/protocol.md` §4.2; DORL-codes `get_save_entropy_mat`): how unpredictable the
//! logged next item is after a given set of recent items. DORL adds it to the simulated reward so the policy
//! is pushed towards states where logged users behaved diversely, against the Matthew effect.
//!
//! 1. Walk each user's logged sequence in time order (the training log's rows are ordered by (user, time)).
//! 2. For every window size k (DORL: {1, 2}), once at least k items precede the current one, count the
//!    current item under the key *sorted tuple of the previous k items*.
//! 3. E(key) = −Σ p log₂ p / log₂ m over the next-item distribution, m = distinct next items; E(key) = 1
//!    (the maximum) when there is a single distinct next item.
//!
//! Keys hold dense item ids. The anchors key KuaiRec by original video ids; the dense ids are a bijection of
//! them, so the map has the same values under renamed keys (lookups in [`crate::simulated`] use dense ids
//! too). Duplicate log rows count as they are, like the anchors'. Pure Rust; no tensors.

use crate::{invalid, Result};
use dsrm_models::Interactions;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// DORL's `entropy_window`.
pub const DORL_WINDOWS: [usize; 2] = [1, 2];

/// Longest window supported: a key packs up to four 32-bit ids into a `u128`.
pub const MAX_WINDOW: usize = 4;

/// Normalised next-item entropies per window size.
#[derive(Debug, Clone, PartialEq)]
pub struct EntropyMap {
    /// Window sizes, ascending, distinct.
    windows: Vec<usize>,
    /// One map per window size, aligned with `windows`.
    maps: Vec<HashMap<u128, f64, BuildHasherDefault<KeyHasher>>>,
}

impl EntropyMap {
    /// Builds the map from a training log whose rows are grouped by user and in time order within a user
    /// (as `World::train` is). Errors on window sizes outside 1..=[`MAX_WINDOW`], ids out of range, or a
    /// user whose rows are not contiguous.
    pub fn build(train: &Interactions, windows: &[usize]) -> Result<Self> {
        let windows = normalise_windows(windows)?;
        crate::pairs::validate(train).or_else(|e| if train.is_empty() { Ok(()) } else { Err(e) })?;
        let mut entries: Vec<Vec<(u128, u32)>> = vec![Vec::new(); windows.len()];
        let mut finished = vec![false; train.n_users];
        let mut history = [0u32; MAX_WINDOW];
        let (mut current, mut seen) = (None, 0usize);
        for (&user, &item) in train.user.iter().zip(&train.item) {
            if current != Some(user) {
                if let Some(previous) = current {
                    finished[previous as usize] = true;
                }
                if finished[user as usize] {
                    return Err(invalid(format!(
                        "the rows of user {user} are not contiguous; sort the log by (user, time)"
                    )));
                }
                current = Some(user);
                seen = 0;
            }
            for (w, &k) in windows.iter().enumerate() {
                if seen >= k {
                    entries[w].push((key_of(&history[..k]), item));
                }
            }
            history.copy_within(0..MAX_WINDOW - 1, 1);
            history[0] = item;
            seen += 1;
        }
        let maps = entries.into_iter().map(entropies).collect();
        Ok(Self { windows, maps })
    }

    /// A map from explicit `(previous items, entropy)` entries, e.g. one saved elsewhere or set by hand.
    /// The length of each key picks its window; keys are sorted here.
    pub fn from_entries(windows: &[usize], entries: impl IntoIterator<Item = (Vec<u32>, f64)>) -> Result<Self> {
        let windows = normalise_windows(windows)?;
        let mut maps: Vec<HashMap<u128, f64, BuildHasherDefault<KeyHasher>>> = vec![HashMap::default(); windows.len()];
        for (items, e) in entries {
            let w = windows
                .iter()
                .position(|&k| k == items.len())
                .ok_or_else(|| invalid(format!("key {items:?} has no window of size {}", items.len())))?;
            if !e.is_finite() {
                return Err(invalid(format!("entropy of {items:?} is {e}")));
            }
            maps[w].insert(key_of(&items), e);
        }
        Ok(Self { windows, maps })
    }

    /// E[sorted(items)], or `None` when the key was never logged (or its size is not a window).
    #[inline]
    pub fn get(&self, items: &[u32]) -> Option<f64> {
        let w = self.windows.iter().position(|&k| k == items.len())?;
        self.maps[w].get(&key_of(items)).copied()
    }

    /// The window sizes, ascending.
    pub fn windows(&self) -> &[usize] {
        &self.windows
    }

    /// n_s = the largest window (0 without windows): how many recent actions the simulated reward looks at.
    pub fn n_s(&self) -> usize {
        self.windows.last().copied().unwrap_or(0)
    }

    /// (smallest, largest) value among the keys of size `k`; `None` when no key of that size exists.
    pub fn window_bounds(&self, k: usize) -> Option<(f64, f64)> {
        let w = self.windows.iter().position(|&x| x == k)?;
        let values = self.maps[w].values().copied();
        values.fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((f64::min(lo, v), f64::max(hi, v))),
        })
    }

    /// (E_min, E_max): the sums over window sizes of [`Self::window_bounds`]. A window size with no keys
    /// contributes (1, 1), the value every lookup of that size then returns.
    pub fn bounds(&self) -> (f64, f64) {
        self.windows.iter().fold((0.0, 0.0), |(lo, hi), &k| {
            let (a, b) = self.window_bounds(k).unwrap_or((1.0, 1.0));
            (lo + a, hi + b)
        })
    }

    /// Number of keys over all window sizes.
    pub fn len(&self) -> usize {
        self.maps.iter().map(HashMap::len).sum()
    }

    /// True when no key was logged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn normalise_windows(windows: &[usize]) -> Result<Vec<usize>> {
    let mut w = windows.to_vec();
    w.sort_unstable();
    w.dedup();
    if w.iter().any(|&k| k == 0 || k > MAX_WINDOW) {
        return Err(invalid(format!("entropy windows {windows:?}: each must be in 1..={MAX_WINDOW}")));
    }
    Ok(w)
}

/// The sorted ids packed into a `u128` (32 bits each). Maps are per window size, so keys of different sizes
/// never meet.
#[inline]
fn key_of(items: &[u32]) -> u128 {
    let mut sorted = [0u32; MAX_WINDOW];
    let k = items.len().min(MAX_WINDOW);
    sorted[..k].copy_from_slice(&items[..k]);
    sorted[..k].sort_unstable();
    sorted[..k].iter().fold(0u128, |key, &id| (key << 32) | u128::from(id))
}

/// E per key from (key, next item) observations.
fn entropies(mut obs: Vec<(u128, u32)>) -> HashMap<u128, f64, BuildHasherDefault<KeyHasher>> {
    obs.sort_unstable();
    let mut map = HashMap::default();
    let mut counts = Vec::new();
    for group in obs.chunk_by(|a, b| a.0 == b.0) {
        counts.clear();
        counts.extend(group.chunk_by(|a, b| a.1 == b.1).map(|run| run.len() as f64));
        map.insert(group[0].0, normalised_entropy(&counts));
    }
    map
}

/// −Σ p log₂ p / log₂ m for counts of m distinct outcomes; 1 when m ≤ 1 (DORL's `get_entropy`).
fn normalised_entropy(counts: &[f64]) -> f64 {
    if counts.len() <= 1 {
        return 1.0;
    }
    let total: f64 = counts.iter().sum();
    let h: f64 = counts.iter().map(|&c| c / total).map(|p| -p * p.log2()).sum();
    h / (counts.len() as f64).log2()
}

/// A fast hasher for the packed `u128` keys (SplitMix64 finaliser over both halves); the std SipHash would
/// dominate the simulated reward's per-step cost.
#[derive(Default, Clone, Copy)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|&b| self.write_u64(u64::from(b)));
    }
    fn write_u64(&mut self, v: u64) {
        let mut z = (self.0 ^ v).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        self.0 = z ^ (z >> 31);
    }
    fn write_u128(&mut self, v: u128) {
        self.write_u64(v as u64);
        self.write_u64((v >> 64) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three users, rows in (user, time) order:
    ///   u0: 1 2 3 2      u1: 1 2 4      u2: 2 1 3
    ///
    /// Window 1 (previous item → next):
    ///   (1): u0 → 2, u1 → 2, u2 → 3   counts {2: 2, 3: 1}: H = −(⅔ log₂ ⅔ + ⅓ log₂ ⅓) = 0.918296, /log₂ 2
    ///   (2): u0 → 3, u1 → 4, u2 → 1   counts {3, 4, 1} once each: H = log₂ 3, /log₂ 3 = 1
    ///   (3): u0 → 2                   one distinct next item: 1
    /// Window 2 (sorted previous two → next):
    ///   (1,2): u0 → 3, u1 → 4, u2 (2,1 sorted) → 3   counts {3: 2, 4: 1}: 0.918296
    ///   (2,3): u0 → 2                                 1
    /// Bounds: window 1 (0.918296, 1), window 2 (0.918296, 1), so E_min = 1.836592, E_max = 2.
    fn toy() -> Interactions {
        Interactions {
            n_users: 3,
            n_items: 5,
            user: vec![0, 0, 0, 0, 1, 1, 1, 2, 2, 2],
            item: vec![1, 2, 3, 2, 1, 2, 4, 2, 1, 3],
            target: vec![1.0; 10],
        }
    }

    #[test]
    fn hand_computed_toy_log() {
        let m = EntropyMap::build(&toy(), &DORL_WINDOWS).unwrap();
        let h = -(2.0f64 / 3.0 * (2.0f64 / 3.0).log2() + 1.0 / 3.0 * (1.0f64 / 3.0).log2());
        assert!((h - 0.918296).abs() < 1e-6);
        let close = |key: &[u32], want: f64| {
            let got = m.get(key).unwrap_or_else(|| panic!("missing key {key:?}"));
            assert!((got - want).abs() < 1e-12, "{key:?}: {got} vs {want}");
        };
        close(&[1], h);
        close(&[2], 1.0);
        close(&[3], 1.0);
        close(&[1, 2], h);
        close(&[2, 1], h);
        close(&[3, 2], 1.0);
        assert_eq!(m.len(), 5);
        assert_eq!(m.get(&[4]), None, "4 never precedes anything");
        assert_eq!(m.get(&[1, 3]), None);
        assert_eq!(m.n_s(), 2);
        let (lo, hi) = m.bounds();
        assert!((lo - 2.0 * h).abs() < 1e-12 && hi == 2.0, "{lo} {hi}");
    }

    #[test]
    fn uneven_distribution_and_window_errors() {
        // Counts {5, 1, 1, 1} over m = 4: H/log₂ 4.
        let counts = [5.0, 1.0, 1.0, 1.0];
        let h: f64 = counts.iter().map(|c| c / 8.0).map(|p: f64| -p * p.log2()).sum();
        assert!((normalised_entropy(&counts) - h / 2.0).abs() < 1e-15);
        assert!(EntropyMap::build(&toy(), &[0]).is_err());
        assert!(EntropyMap::build(&toy(), &[5]).is_err());
        let mut scattered = toy();
        scattered.user = vec![0, 0, 1, 0, 1, 1, 1, 2, 2, 2];
        assert!(EntropyMap::build(&scattered, &[1]).unwrap_err().to_string().contains("not contiguous"));
    }

    #[test]
    fn from_entries_sorts_keys() {
        let m = EntropyMap::from_entries(&[1, 2], [(vec![7], 0.25), (vec![9, 3], 0.5)]).unwrap();
        assert_eq!(m.get(&[3, 9]), Some(0.5));
        assert_eq!(m.bounds(), (0.75, 0.75));
        assert!(EntropyMap::from_entries(&[1], [(vec![1, 2], 0.5)]).is_err());
    }
}
