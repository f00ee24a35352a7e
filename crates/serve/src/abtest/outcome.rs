//! The business outcomes of an A/B test per arm, with 95% intervals, and the difference B − A.
//!
//! Two kinds of outcome, two kinds of interval:
//!
//! * per-session outcomes (session length, cumulative reward): the mean ± Student t interval of the sessions
//!   (`dsrm_metrics::mean_ci95`), and for B − A Welch's interval (unequal variances, Welch–Satterthwaite
//!   degrees of freedom);
//! * creator-side exposure over an arm's whole traffic (Gini of exposure, long-tail share, AD in both of the
//!   project's readings, coverage), computed by the metrics crate from the arm's exposure counts (one count
//!   per consumed item, over the whole catalogue): such statistics are not means of sessions, so their
//!   intervals come from a bootstrap over sessions (each arm resampled with replacement, `resamples` times,
//!   seeded), and B − A's from the same resamples' differences. Resampling with replacement repeats sessions,
//!   which by itself lowers coverage and raises the Gini of the resamples, so the resamples' 2.5% and 97.5%
//!   quantiles are re-centred on the point estimate: the interval is θ̂ + (q − mean of the resamples), the
//!   bootstrap's spread around the estimate from all sessions, clipped to the statistic's range (an AD is never
//!   negative).
//!
//! Exposure statistics depend on how much traffic an arm got (coverage grows and the Gini of a sparse count
//! vector falls with more sessions): with unequal `--traffic` compare them with that in mind.

use dsrm_metrics::{cv, gini, group_exposure, mean_ci95};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// An estimate with its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
}

/// One arm's value of an outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmValue {
    pub arm: String,
    /// Sessions it rests on.
    pub n: usize,
    #[serde(flatten)]
    pub value: Interval,
}

/// One outcome: each arm's value and the difference (second arm − first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Key: `session_length`, `cumulative_reward`, `gini`, `long_tail_share`, `ad_share`, `ad_item`, `coverage`.
    pub metric: String,
    /// For people.
    pub label: String,
    /// `higher` or `lower` is better for the business or the creators.
    pub better: String,
    /// `t` (mean ± Student t; Welch for the difference) or `bootstrap` (percentile, over sessions).
    pub interval: String,
    pub arms: Vec<ArmValue>,
    pub difference: Interval,
}

/// A Student t quantile at 0.975 (normal beyond what statrs takes).
fn t975(dof: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, dof.max(1.0)) {
        Ok(t) if dof.is_finite() => t.inverse_cdf(0.975),
        _ => 1.959_963_984_540_054,
    }
}

/// Welch's 95% interval for mean(b) − mean(a); a zero-width interval where neither side varies or has two values.
pub fn welch_difference(a: &[f64], b: &[f64]) -> Interval {
    let (ca, cb) = (mean_ci95(a), mean_ci95(b));
    let diff = cb.mean - ca.mean;
    if ca.n < 2 || cb.n < 2 {
        return Interval { mean: diff, lo: diff, hi: diff };
    }
    let (va, vb) = (ca.std * ca.std / ca.n as f64, cb.std * cb.std / cb.n as f64);
    let se2 = va + vb;
    if se2 == 0.0 {
        return Interval { mean: diff, lo: diff, hi: diff };
    }
    let dof = se2 * se2 / (va * va / (ca.n - 1) as f64 + vb * vb / (cb.n - 1) as f64);
    let h = t975(dof) * se2.sqrt();
    Interval { mean: diff, lo: diff - h, hi: diff + h }
}

/// The per-session outcome `metric` of two arms.
pub fn per_session(metric: &str, label: &str, better: &str, arms: [(&str, &[f64]); 2]) -> Outcome {
    let values = arms
        .iter()
        .map(|(name, xs)| {
            let c = mean_ci95(xs);
            ArmValue {
                arm: name.to_string(),
                n: c.n,
                value: Interval { mean: c.mean, lo: c.mean - c.half_width, hi: c.mean + c.half_width },
            }
        })
        .collect();
    Outcome {
        metric: metric.into(),
        label: label.into(),
        better: better.into(),
        interval: "t".into(),
        arms: values,
        difference: welch_difference(arms[0].1, arms[1].1),
    }
}

/// The exposure statistics of a set of sessions (each a list of dense items consumed).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Exposure {
    pub gini: f64,
    pub long_tail_share: f64,
    pub ad_share: f64,
    pub ad_item: f64,
    pub coverage: f64,
}

impl Exposure {
    /// The names, labels and directions, in [`Exposure::values`] order.
    pub const OUTCOMES: [(&'static str, &'static str, &'static str); 5] = [
        ("gini", "Gini of exposure", "lower"),
        ("long_tail_share", "long-tail share of exposure", "higher"),
        ("ad_share", "AD (share reading)", "lower"),
        ("ad_item", "AD (per-item reading)", "lower"),
        ("coverage", "coverage (share of the catalogue exposed)", "higher"),
    ];

    /// Each statistic's range (the AD per-item reading is unbounded above): an arm's re-centred interval is
    /// clipped to it.
    pub const RANGES: [(f64, f64); 5] = [(0.0, 1.0), (0.0, 1.0), (0.0, 1.0), (0.0, f64::INFINITY), (0.0, 1.0)];

    /// The metrics crate's Gini, long-tail share, AD and coverage (CV) of the sessions' exposure counts.
    pub fn of<'s>(sessions: impl IntoIterator<Item = &'s [u32]>, n_items: usize, popular: &[bool]) -> Self {
        let mut counts = vec![0u64; n_items];
        for items in sessions {
            for &i in items {
                if let Some(c) = counts.get_mut(i as usize) {
                    *c += 1;
                }
            }
        }
        let groups = group_exposure(&counts, popular);
        Self {
            gini: gini(&counts),
            long_tail_share: groups.long_tail_share,
            ad_share: groups.ad_share(),
            ad_item: groups.ad_item(),
            coverage: cv(&counts),
        }
    }

    /// In [`Exposure::OUTCOMES`] order.
    pub fn values(&self) -> [f64; 5] {
        [self.gini, self.long_tail_share, self.ad_share, self.ad_item, self.coverage]
    }
}

/// The empirical `q`-quantile of sorted values (linear interpolation between order statistics).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos - pos.floor());
    let next = sorted[(i + 1).min(sorted.len() - 1)];
    sorted[i] + frac * (next - sorted[i])
}

/// The exposure outcomes of two arms with percentile-bootstrap intervals (`resamples` ≥ 1, seeded by `seed`).
pub fn exposure(
    arms: [(&str, &[&[u32]]); 2],
    n_items: usize,
    popular: &[bool],
    resamples: usize,
    seed: u64,
) -> Vec<Outcome> {
    let points = arms.map(|(_, s)| Exposure::of(s.iter().copied(), n_items, popular));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // draws[arm][metric] and diffs[metric] over the resamples.
    let slots = || (0..5).map(|_| Vec::with_capacity(resamples)).collect::<Vec<Vec<f64>>>();
    let mut draws = [slots(), slots()];
    let mut diffs = slots();
    for _ in 0..resamples {
        let mut both = [[0.0; 5]; 2];
        for (side, (_, sessions)) in arms.iter().enumerate() {
            let n = sessions.len();
            let pick = (0..n).map(|_| sessions[rng.gen_range(0..n)]);
            both[side] = if n == 0 { [0.0; 5] } else { Exposure::of(pick, n_items, popular).values() };
            for m in 0..5 {
                draws[side][m].push(both[side][m]);
            }
        }
        for m in 0..5 {
            diffs[m].push(both[1][m] - both[0][m]);
        }
    }
    let interval = |mean: f64, xs: &mut Vec<f64>| {
        if xs.is_empty() {
            return Interval { mean, lo: mean, hi: mean };
        }
        xs.sort_by(f64::total_cmp);
        let centre = xs.iter().sum::<f64>() / xs.len() as f64;
        // min / max: where every resample agrees, rounding must not put the estimate outside its interval.
        let (lo, hi) = (mean + quantile(xs, 0.025) - centre, mean + quantile(xs, 0.975) - centre);
        Interval { mean, lo: lo.min(mean), hi: hi.max(mean) }
    };
    Exposure::OUTCOMES
        .iter()
        .enumerate()
        .map(|(m, (metric, label, better))| {
            let (floor, ceiling) = Exposure::RANGES[m];
            let values = (0..2)
                .map(|side| {
                    let v = interval(points[side].values()[m], &mut draws[side][m]);
                    ArmValue {
                        arm: arms[side].0.to_string(),
                        n: arms[side].1.len(),
                        value: Interval { lo: v.lo.max(floor), hi: v.hi.min(ceiling), ..v },
                    }
                })
                .collect();
            Outcome {
                metric: metric.to_string(),
                label: label.to_string(),
                better: better.to_string(),
                interval: "bootstrap".into(),
                arms: values,
                difference: interval(points[1].values()[m] - points[0].values()[m], &mut diffs[m]),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welch_by_hand() {
        // a: mean 2, var 1 (n 3); b: mean 5, var 4 (n 3): se² = 1/3 + 4/3 = 5/3, dof = (5/3)² / ((1/9 + 16/9)/2).
        let iv = welch_difference(&[1.0, 2.0, 3.0], &[3.0, 5.0, 7.0]);
        let dof = (25.0 / 9.0) / ((1.0 / 9.0 + 16.0 / 9.0) / 2.0);
        let h = StudentsT::new(0.0, 1.0, dof).unwrap().inverse_cdf(0.975) * (5.0f64 / 3.0).sqrt();
        assert!((iv.mean - 3.0).abs() < 1e-12 && (iv.hi - iv.lo - 2.0 * h).abs() < 1e-9);
        let flat = welch_difference(&[1.0, 1.0], &[2.0, 2.0]);
        assert_eq!((flat.lo, flat.hi), (1.0, 1.0));
    }

    #[test]
    fn exposure_uses_the_metrics_definitions_and_brackets_the_point_estimate() {
        // 4 items, item 0 popular. Sessions [0, 1] and [0]: counts [2, 1, 0, 0].
        let popular = [true, false, false, false];
        let e = Exposure::of([&[0u32, 1][..], &[0u32][..]], 4, &popular);
        assert_eq!(e.gini, gini(&[2, 1, 0, 0]));
        assert!((e.long_tail_share - 1.0 / 3.0).abs() < 1e-12);
        assert!((e.coverage - 0.5).abs() < 1e-12);
        let a: Vec<&[u32]> = vec![&[0, 1], &[0], &[2, 3], &[0, 0]];
        let b: Vec<&[u32]> = vec![&[1, 2], &[3], &[1]];
        let out = exposure([("A", &a), ("B", &b)], 4, &popular, 200, 7);
        assert_eq!(out.len(), 5);
        for o in &out {
            for v in &o.arms {
                assert!(v.value.lo <= v.value.mean && v.value.mean <= v.value.hi, "{o:?}");
            }
            assert!(o.difference.lo <= o.difference.mean && o.difference.mean <= o.difference.hi, "{o:?}");
        }
        assert_eq!(out, exposure([("A", &a), ("B", &b)], 4, &popular, 200, 7), "seeded");
    }
}
