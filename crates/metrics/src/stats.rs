//! Aggregation across seeds: a mean with a 95% Student-t confidence interval.
//!
//! The anchors' "±" is a standard deviation over the epochs of one run (`docs/protocol.md` §2); the project
//! instead reports n seeds with confidence intervals, one final score per seed going in.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};
use std::fmt;

/// A mean and the half-width of its 95% confidence interval, mean ± t_{0.975, n−1} · s / √n.
/// `Default` is the empty aggregate (all zeros, n = 0), the same as `mean_ci95(&[])`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct MeanCi {
    /// Sample mean (0 for no value).
    pub mean: f64,
    /// t_{0.975, n−1} · std / √n; 0 for n < 2, where no interval can be estimated.
    pub half_width: f64,
    /// Number of values.
    pub n: usize,
    /// Sample standard deviation with the n − 1 denominator; 0 for n < 2.
    pub std: f64,
}

/// Mean and 95% CI of per-seed scores, with Student's t quantile at 0.975 and n − 1 degrees of freedom
/// (n = 5 gives t = 2.776445). Edge cases, documented rather than NaN: no value gives all zeros; one value
/// gives its value with `std` and `half_width` 0 (read "n = 1" as "no interval"). Non-finite inputs
/// propagate.
pub fn mean_ci95(values: &[f64]) -> MeanCi {
    let n = values.len();
    if n == 0 {
        return MeanCi { mean: 0.0, half_width: 0.0, n: 0, std: 0.0 };
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return MeanCi { mean, half_width: 0.0, n, std: 0.0 };
    }
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64;
    let std = var.sqrt();
    let half_width = t_975(n - 1) * std / (n as f64).sqrt();
    MeanCi { mean, half_width, n, std }
}

/// One-sided Welch t-test from two seed aggregates: the p-value of "the mean of `a` is greater than the mean
/// of `b`" (H0: μ_a ≤ μ_b), with the Welch–Satterthwaite degrees of freedom. Needs n ≥ 2 on both sides (else
/// NaN: untestable). Both standard deviations 0: 0 when a's mean is greater, 1 otherwise.
pub fn welch_p_greater(a: &MeanCi, b: &MeanCi) -> f64 {
    if a.n < 2 || b.n < 2 {
        return f64::NAN;
    }
    let (va, vb) = (a.std * a.std / a.n as f64, b.std * b.std / b.n as f64);
    let se2 = va + vb;
    if se2 == 0.0 {
        return if a.mean > b.mean { 0.0 } else { 1.0 };
    }
    let t = (a.mean - b.mean) / se2.sqrt();
    let dof = se2 * se2 / (va * va / (a.n - 1) as f64 + vb * vb / (b.n - 1) as f64);
    match StudentsT::new(0.0, 1.0, dof) {
        Ok(dist) => 1.0 - dist.cdf(t),
        Err(_) => f64::NAN,
    }
}

/// Holm's step-down adjustment of a family of p-values (same order as given): the i-th smallest becomes
/// max over j ≤ i of min(1, (m − j + 1) · p_(j)). Controls the family-wise error rate under any dependence.
/// NaN (untestable) p-values stay NaN and do not count in m.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..p.len()).filter(|&i| !p[i].is_nan()).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let m = order.len();
    let mut out = vec![f64::NAN; p.len()];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        out[i] = running;
    }
    out
}

/// z_{0.975}, the standard normal quantile.
const Z_975: f64 = 1.959_963_984_540_054;

/// Student's t quantile at 0.975 for `dof >= 1` degrees of freedom.
///
/// statrs's inverse CDF is accurate to ~1e-9 up to about 1,000 dof but drifts beyond (1.2e-4 low at
/// 10⁶), so larger dof use the Cornish–Fisher expansion z + (z³ + z)/(4ν) + (5z⁵ + 16z³ + 3z)/(96ν²),
/// whose error there is below 1e-9. statrs accepts every positive dof, so the normal fallback is
/// unreachable; it exists so that no input can panic.
fn t_975(dof: usize) -> f64 {
    if dof > 1000 {
        let (z, nu) = (Z_975, dof as f64);
        return z + (z.powi(3) + z) / (4.0 * nu) + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * nu * nu);
    }
    match StudentsT::new(0.0, 1.0, dof as f64) {
        Ok(t) => t.inverse_cdf(0.975),
        Err(_) => Z_975,
    }
}

/// `12.34 ± 0.56`: two decimals unless the formatter asks for another precision (`{:.4}`).
impl fmt::Display for MeanCi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = f.precision().unwrap_or(2);
        if self.n < 2 {
            // One seed has no interval; "± 0" would read as a certain value.
            return write!(f, "{:.*} (n = {})", p, self.mean, self.n);
        }
        write!(f, "{:.*} ± {:.*}", p, self.mean, p, self.half_width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_prints_without_an_interval() {
        assert_eq!(format!("{:.3}", mean_ci95(&[2.0])), "2.000 (n = 1)");
        assert_eq!(format!("{:.1}", mean_ci95(&[1.0, 3.0])), "2.0 ± 12.7");
    }

    #[test]
    fn t_quantiles_match_tables() {
        assert!((t_975(4) - 2.776445).abs() < 1e-6);
        assert!((t_975(1) - 12.706205).abs() < 1e-5);
        assert!((t_975(9) - 2.262157).abs() < 1e-6);
        assert!((t_975(1000) - 1.962339).abs() < 1e-6);
        assert!((t_975(1001) - 1.962337).abs() < 1e-6);
        assert!((t_975(1_000_000) - 1.959966).abs() < 1e-6);
    }

    #[test]
    fn five_seeds_by_hand() {
        // Values 1..=5: mean 3, s² = (4+1+0+1+4)/4 = 2.5, s = 1.5811388, half = 2.776445 · s / √5.
        let ci = mean_ci95(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(ci.n, 5);
        assert_eq!(ci.mean, 3.0);
        assert!((ci.std - 2.5f64.sqrt()).abs() < 1e-15);
        let expected = 2.776445 * 2.5f64.sqrt() / 5f64.sqrt();
        assert!((ci.half_width - expected).abs() < 1e-6);
        assert_eq!(format!("{ci}"), "3.00 ± 1.96");
        assert_eq!(format!("{ci:.3}"), "3.000 ± 1.963");
    }

    #[test]
    fn welch_matches_a_hand_computation_and_holm_steps_down() {
        // a = 1..=5 (mean 3, s² 2.5), b = 0,0,1,1,3 (mean 1, s² 1.5): t = 2 / √(0.5 + 0.3) = 2.2361,
        // dof = 0.64 / (0.0625 + 0.0225) = 7.5294; the t density integrated from 2.2361 (Simpson, 200,000
        // intervals) gives p = 0.028900.
        let a = mean_ci95(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        let b = mean_ci95(&[0.0, 0.0, 1.0, 1.0, 3.0]);
        assert!((welch_p_greater(&a, &b) - 0.028900).abs() < 1e-5, "{}", welch_p_greater(&a, &b));
        assert!((welch_p_greater(&b, &a) - (1.0 - 0.028900)).abs() < 1e-5);
        assert!(welch_p_greater(&a, &mean_ci95(&[1.0])).is_nan());
        let flat = |v: f64| mean_ci95(&[v, v, v]);
        assert_eq!((welch_p_greater(&flat(2.0), &flat(1.0)), welch_p_greater(&flat(1.0), &flat(1.0))), (0.0, 1.0));
        // Holm: p = [0.01, 0.04, 0.03, NaN] -> m = 3: 0.03, max(0.06, 0.06) = 0.06, min(1, 0.04) -> 0.06.
        let adjusted = holm(&[0.01, 0.04, 0.03, f64::NAN]);
        assert!((adjusted[0] - 0.03).abs() < 1e-12 && (adjusted[2] - 0.06).abs() < 1e-12);
        assert!((adjusted[1] - 0.06).abs() < 1e-12 && adjusted[3].is_nan());
        assert_eq!(holm(&[0.9, 0.8]), vec![1.0, 1.0]);
    }

    #[test]
    fn small_samples() {
        assert_eq!(mean_ci95(&[]), MeanCi { mean: 0.0, half_width: 0.0, n: 0, std: 0.0 });
        assert_eq!(mean_ci95(&[]), MeanCi::default());
        assert_eq!(mean_ci95(&[7.5]), MeanCi { mean: 7.5, half_width: 0.0, n: 1, std: 0.0 });
        assert_eq!(format!("{}", mean_ci95(&[12.344, 12.336])), "12.34 ± 0.05");
    }
}
