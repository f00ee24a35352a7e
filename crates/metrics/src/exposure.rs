//! How evenly recommendations spread over the catalogue (`docs/protocol.md` §6.2): exposure counts, the
//! Gini coefficient of item exposure and exposure entropy. These are the project's fairness metrics; none
//! of the anchors ships them.

use crate::Episode;

/// e_i = how many times catalogue item i was recommended, over every step of every episode (repeats
/// count). Ids `>= n_items` are outside the catalogue and are not counted (the one place this crate drops
/// a step; [`crate::ItemContext::validate`] reports such ids).
pub fn exposure_counts(episodes: &[Episode], n_items: usize) -> Vec<u64> {
    let mut counts = vec![0u64; n_items];
    for e in episodes {
        add_exposure(&mut counts, &e.items);
    }
    counts
}

/// Adds one episode's steps to `counts`; returns how many were inside the catalogue.
pub(crate) fn add_exposure(counts: &mut [u64], items: &[u32]) -> usize {
    let mut in_range = 0;
    for &i in items {
        if let Some(c) = counts.get_mut(i as usize) {
            *c += 1;
            in_range += 1;
        }
    }
    in_range
}

/// Gini of item exposure over **all n catalogue items, zero-exposure items included**:
/// sort e ascending, Gini = Σ_{k=1..n} (2k − n − 1) e_(k) / (n Σ_i e_i), which equals
/// Σ_i Σ_j |e_i − e_j| / (2n Σ_i e_i). 0 is perfectly equal exposure, (n−1)/n all exposure on one item.
/// No smoothing constant (FCPO adds 1e-7; the project does not). 0 when nothing was exposed.
///
/// The numerator is accumulated exactly in integers; the sort is a counting pass when the largest count
/// is at most n (always, for evaluation rounds of 100 episodes), so the cost is O(n + max e).
pub fn gini(exposure: &[u64]) -> f64 {
    gini_of(exposure, false)
}

/// The same Gini over the exposed items only (e_i > 0), n replaced by their number. Printed only for
/// comparison with papers that use it, and always labelled as such: it ignores the items a policy never
/// shows, which is most of the unfairness. 0 when fewer than two items were exposed.
pub fn gini_exposed_only(exposure: &[u64]) -> f64 {
    gini_of(exposure, true)
}

/// Exposure entropy: p_i = e_i / Σe, H = −Σ_{i: e_i>0} p_i ln p_i in nats, and H / ln n with n the
/// catalogue size (1 = uniform over the whole catalogue). Returns `(H, H_norm)`; both 0 when nothing was
/// exposed, and H_norm is 0 for a catalogue of fewer than two items (ln n = 0).
pub fn exposure_entropy(exposure: &[u64]) -> (f64, f64) {
    let total: u64 = exposure.iter().sum();
    if total == 0 {
        return (0.0, 0.0);
    }
    let t = total as f64;
    let h: f64 = exposure
        .iter()
        .filter(|&&e| e > 0)
        .map(|&e| {
            let p = e as f64 / t;
            -p * p.ln()
        })
        .sum();
    let h = h.max(0.0); // a single exposed item gives -1 * ln 1 = -0.0
    let ln_n = (exposure.len() as f64).ln();
    let norm = if exposure.len() < 2 { 0.0 } else { h / ln_n };
    (h, norm)
}

fn gini_of(exposure: &[u64], exposed_only: bool) -> f64 {
    let (numerator, m, total) = sorted_numerator(exposure, exposed_only);
    if m == 0 || total == 0 {
        return 0.0;
    }
    numerator as f64 / (m as f64 * total as f64)
}

/// Σ_{k=1..m} (2k − m − 1) e_(k) over the kept values sorted ascending, exactly; with m and Σ e.
/// A run of c equal values v at ranks a+1..a+c contributes v · c · (2a + c − m).
fn sorted_numerator(exposure: &[u64], exposed_only: bool) -> (i128, usize, u128) {
    let keep = |e: u64| !exposed_only || e > 0;
    let (mut m, mut total, mut max) = (0usize, 0u128, 0u64);
    for &e in exposure {
        if keep(e) {
            m += 1;
            total += e as u128;
            max = max.max(e);
        }
    }
    let m_i = m as i128;
    let mut numerator = 0i128;
    let mut below = 0i128; // a: kept values strictly smaller than the current run
    let mut run = |v: u64, c: i128| {
        numerator += v as i128 * c * (2 * below + c - m_i);
        below += c;
    };
    if max as usize <= exposure.len() {
        let mut histogram = vec![0u64; max as usize + 1];
        for &e in exposure {
            if keep(e) {
                histogram[e as usize] += 1;
            }
        }
        for (v, &c) in histogram.iter().enumerate() {
            if c > 0 {
                run(v as u64, c as i128);
            }
        }
    } else {
        let mut sorted: Vec<u64> = exposure.iter().copied().filter(|&e| keep(e)).collect();
        sorted.sort_unstable();
        for &v in &sorted {
            run(v, 1);
        }
    }
    (numerator, m, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Σ_i Σ_j |e_i − e_j| / (2 n Σe), the pairwise definition, O(n²).
    fn gini_pairwise(e: &[u64]) -> f64 {
        let total: u64 = e.iter().sum();
        if e.is_empty() || total == 0 {
            return 0.0;
        }
        let mut s = 0u128;
        for &a in e {
            for &b in e {
                s += a.abs_diff(b) as u128;
            }
        }
        s as f64 / (2.0 * e.len() as f64 * total as f64)
    }

    /// A fixed-seed 64-bit LCG (Knuth's MMIX constants): the property test needs no extra dependency.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    #[test]
    fn counts_by_hand_and_out_of_range_skipped() {
        let eps = vec![Episode::new(0, vec![0, 2, 2], vec![0.0; 3]), Episode::new(1, vec![2, 9], vec![0.0; 2])];
        assert_eq!(exposure_counts(&eps, 4), vec![1, 0, 3, 0]);
        assert_eq!(exposure_counts(&[], 2), vec![0, 0]);
    }

    #[test]
    fn gini_small_example_by_hand() {
        // e = [0, 1, 3], n = 3, Σe = 4, sorted: (2·1−4)·0 + (2·2−4)·1 + (2·3−4)·3 = 6 -> 6 / 12 = 0.5.
        // Pairwise: |0−1|+|0−3|+|1−3| = 6, twice = 12, / (2·3·4) = 0.5.
        assert_eq!(gini(&[3, 0, 1]), 0.5);
        assert_eq!(gini_pairwise(&[3, 0, 1]), 0.5);
        // Exposed only: e = [1, 3], m = 2: (−1)·1 + (1)·3 = 2 -> 2 / (2·4) = 0.25.
        assert_eq!(gini_exposed_only(&[3, 0, 1]), 0.25);
    }

    #[test]
    fn uniform_exposure_closed_forms() {
        let e = vec![4u64; 10];
        assert_eq!(gini(&e), 0.0);
        assert_eq!(gini_exposed_only(&e), 0.0);
        let (h, norm) = exposure_entropy(&e);
        assert!((h - 10f64.ln()).abs() < 1e-12);
        assert!((norm - 1.0).abs() < 1e-12);
    }

    #[test]
    fn one_hot_exposure_closed_forms() {
        let mut e = vec![0u64; 8];
        e[5] = 17;
        assert!((gini(&e) - 7.0 / 8.0).abs() < 1e-15); // (n−1)/n
        assert_eq!(gini_exposed_only(&e), 0.0);
        assert_eq!(exposure_entropy(&e), (0.0, 0.0));
    }

    #[test]
    fn entropy_by_hand() {
        // e = [1, 1, 2, 0]: p = 1/4, 1/4, 1/2 -> H = 2·(1/4)ln4 + (1/2)ln2 = 1.5 ln 2; norm / ln 4 = 0.75.
        let (h, norm) = exposure_entropy(&[1, 1, 2, 0]);
        assert!((h - 1.5 * std::f64::consts::LN_2).abs() < 1e-15);
        assert!((norm - 0.75).abs() < 1e-15);
    }

    #[test]
    fn degenerate_inputs_are_zero() {
        assert_eq!(gini(&[]), 0.0);
        assert_eq!(gini(&[0, 0, 0]), 0.0);
        assert_eq!(gini_exposed_only(&[0, 5]), 0.0);
        assert_eq!(exposure_entropy(&[]), (0.0, 0.0));
        assert_eq!(exposure_entropy(&[0, 0]), (0.0, 0.0));
        assert_eq!(exposure_entropy(&[3]), (0.0, 0.0));
    }

    #[test]
    fn sorted_formula_equals_pairwise_form_on_random_vectors() {
        let mut rng = Lcg(20_240_611);
        for case in 0..300 {
            let n = 1 + (rng.next() % 60) as usize;
            // Mix sparse vectors (histogram path) with large counts (sorting path, max > n).
            let scale = if case % 3 == 0 { 1_000_000 } else { 5 };
            let e: Vec<u64> =
                (0..n).map(|_| if rng.next().is_multiple_of(3) { 0 } else { rng.next() % scale }).collect();
            let (a, b) = (gini(&e), gini_pairwise(&e));
            assert!((a - b).abs() < 1e-12, "case {case}: {a} vs {b} for {e:?}");
            let exposed: Vec<u64> = e.iter().copied().filter(|&x| x > 0).collect();
            let (c, d) = (gini_exposed_only(&e), gini_pairwise(&exposed));
            assert!((c - d).abs() < 1e-12, "case {case} exposed only: {c} vs {d}");
            assert!((0.0..=1.0).contains(&a));
        }
    }
}
