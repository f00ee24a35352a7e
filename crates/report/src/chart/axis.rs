//! Linear axes with round ticks (1, 2 or 5 × 10^k) and tick labels with as many decimals as the step
//! needs, the same on every chart. plotters' own f64 axis picks its ticks from a size hint and has no
//! per-axis decimals, so the charts use this one.

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use std::ops::Range;

/// An axis from `lo` to `hi` with ticks at `ticks` (and no minor grid).
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub ticks: Vec<f64>,
    pub lo: f64,
    pub hi: f64,
}

impl Axis {
    /// Round ticks covering `[lo, hi]`, the range widened to the outer ticks. A non-finite or reversed
    /// range becomes [0, 1], a single value a small range around it.
    pub fn nice(lo: f64, hi: f64) -> Self {
        let (lo, hi) = if !(lo.is_finite() && hi.is_finite()) || lo > hi {
            (0.0, 1.0)
        } else if hi - lo < 1e-12 {
            let pad = if lo.abs() > 1e-12 { lo.abs() * 0.1 } else { 1.0 };
            (lo - pad, hi + pad)
        } else {
            (lo, hi)
        };
        let raw = (hi - lo) / 5.0;
        let mag = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
        let first = (lo / step).floor();
        let last = (hi / step).ceil();
        let ticks = (0..=(last - first) as i64).map(|i| (first + i as f64) * step).collect();
        Self { ticks, lo: first * step, hi: last * step }
    }

    /// The distance between two ticks (1 where there is only one).
    fn step(&self) -> f64 {
        if self.ticks.len() > 1 {
            self.ticks[1] - self.ticks[0]
        } else {
            1.0
        }
    }
}

/// A tick value with as many decimals as the tick step needs.
fn tick_text(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 { 0 } else { (-step.log10().floor()) as usize };
    let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
    format!("{v:.decimals$}")
}

impl Ranged for Axis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, (from, to): (i32, i32)) -> i32 {
        // Values are inside the axis by construction; a stray one (far outside, or NaN from an overflowing
        // range) is kept a few axis lengths away, so pixel arithmetic downstream cannot overflow.
        let share = (value - self.lo) / (self.hi - self.lo);
        let share = if share.is_finite() { share.clamp(-4.0, 5.0) } else { 0.0 };
        from + (f64::from(to - from) * share).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for Axis {
    fn format_ext(&self, value: &f64) -> String {
        tick_text(*value, self.step())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let a = Axis::nice(0.13, 0.87);
        assert_eq!((a.lo, a.hi), (0.0, 1.0));
        assert_eq!(a.ticks.len(), 6);
        assert_eq!(a.format_ext(&0.2), "0.2");
        let a = Axis::nice(3.0, 3.0);
        assert!(a.lo < 3.0 && a.hi > 3.0 && a.ticks.len() >= 2);
        assert_eq!(Axis::nice(f64::NAN, 1.0).lo, 0.0);
        assert_eq!(Axis::nice(f64::INFINITY, f64::NEG_INFINITY).hi, 1.0);
        assert_eq!(Axis::nice(0.0, 40.0).format_ext(&20.0), "20");
        assert_eq!(tick_text(0.2, 0.2), "0.2");
    }

    #[test]
    fn values_map_linearly_and_nan_does_not_panic() {
        let a = Axis::nice(0.0, 1.0);
        assert_eq!(a.map(&0.5, (100, 300)), 200);
        assert_eq!(a.map(&1.0, (300, 100)), 100);
        assert_eq!(a.map(&f64::NAN, (0, 100)), 0);
        assert_eq!(a.map(&1e308, (0, 100)), 500);
        assert_eq!(Axis::nice(-1e308, 1e308).map(&1e308, (0, 100)), 0);
    }
}
