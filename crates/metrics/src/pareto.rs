//! Pareto analysis of the utility–fairness trade-off: which operating points are non-dominated, how much
//! of the objective space a set of points covers (2-D hypervolume), and how two sets compare.
//!
//! Both coordinates are maximised: a point is `(utility, fairness)` with utility R_tra or R_each and
//! fairness 1 − Gini. (`dominance.rs` is unrelated: it holds DORL's dominant *categories* for MCD.)
//! Points with a non-finite coordinate are never on a frontier and cover nothing, so a failed run cannot
//! silently win.

/// One operating point, both coordinates to be maximised.
pub type Point = (f64, f64);

fn finite(p: Point) -> bool {
    p.0.is_finite() && p.1.is_finite()
}

/// `a` dominates `b`: at least as good in both coordinates and strictly better in one.
pub fn dominates(a: Point, b: Point) -> bool {
    finite(a) && finite(b) && a.0 >= b.0 && a.1 >= b.1 && (a.0 > b.0 || a.1 > b.1)
}

/// `a` weakly dominates `b`: at least as good in both coordinates (a point weakly dominates itself).
pub fn weakly_dominates(a: Point, b: Point) -> bool {
    finite(a) && finite(b) && a.0 >= b.0 && a.1 >= b.1
}

/// Indices of the non-dominated points, ordered by utility ascending (so fairness descends along the
/// result). Equal points are all kept: neither dominates the other.
pub fn non_dominated(points: &[Point]) -> Vec<usize> {
    let mut keep: Vec<usize> =
        (0..points.len()).filter(|&i| finite(points[i]) && !points.iter().any(|&q| dominates(q, points[i]))).collect();
    keep.sort_by(|&a, &b| points[a].0.total_cmp(&points[b].0).then(points[b].1.total_cmp(&points[a].1)));
    keep
}

/// Area of the region dominated by `points` and dominating `reference`: the union of the boxes
/// `[ref.0, p.0] × [ref.1, p.1]`. Points not strictly better than the reference in both coordinates add
/// nothing. Units are utility × fairness, so hypervolumes compare only under the same reference point.
///
/// Sweep: walk the frontier from the highest utility down; each point adds the slab between the previous
/// fairness level and its own, as wide as its utility gain over the reference.
pub fn hypervolume(points: &[Point], reference: Point) -> f64 {
    let inside: Vec<Point> =
        points.iter().copied().filter(|&p| finite(p) && p.0 > reference.0 && p.1 > reference.1).collect();
    let mut area = 0.0;
    let mut level = reference.1;
    for i in non_dominated(&inside).into_iter().rev() {
        let (u, f) = inside[i];
        area += (u - reference.0) * (f - level).max(0.0);
        level = level.max(f);
    }
    area
}

/// Set coverage C(a, b): the share of `b`'s points weakly dominated by some point of `a` (Zitzler's C
/// metric). 1 means `a` is at least as good everywhere `b` operates; an empty `b` gives 0.
pub fn coverage(a: &[Point], b: &[Point]) -> f64 {
    if b.is_empty() {
        return 0.0;
    }
    let covered = b.iter().filter(|&&q| a.iter().any(|&p| weakly_dominates(p, q))).count();
    covered as f64 / b.len() as f64
}

/// How two frontiers relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontRelation {
    /// Every point of the second is weakly dominated by the first, but not the other way round.
    Dominates,
    /// The mirror image.
    DominatedBy,
    /// Each covers the other (the same frontier).
    Equivalent,
    /// Each is better somewhere.
    Incomparable,
}

/// Compares two frontiers (or any point sets) by mutual coverage.
pub fn compare_fronts(a: &[Point], b: &[Point]) -> FrontRelation {
    match (coverage(a, b) == 1.0, coverage(b, a) == 1.0) {
        (true, false) => FrontRelation::Dominates,
        (false, true) => FrontRelation::DominatedBy,
        (true, true) => FrontRelation::Equivalent,
        (false, false) => FrontRelation::Incomparable,
    }
}

/// The hypervolume of each point alone (its box above `reference`), and the largest: `(index, area)`.
/// Comparable across sets of different sizes, unlike [`hypervolume`], which pools a set's points and so
/// grows with their number. `None` for no point; a point below the reference or non-finite has area 0.
pub fn best_point_hypervolume(points: &[Point], reference: Point) -> Option<(usize, f64)> {
    let areas = points.iter().map(|&p| hypervolume(&[p], reference));
    areas.enumerate().fold(None, |best, (i, a)| match best {
        Some((_, b)) if b >= a => best,
        _ => Some((i, a)),
    })
}

/// An operating point with the 95% CI half-width of each coordinate (Student's t over seeds, as
/// [`crate::MeanCi`] gives it) and the number of seeds behind it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointCi {
    pub mean: Point,
    pub half_width: Point,
    /// Seeds; below 2 there is no interval.
    pub n: usize,
}

impl PointCi {
    fn lo(&self) -> Point {
        (self.mean.0 - self.half_width.0, self.mean.1 - self.half_width.1)
    }
    fn hi(&self) -> Point {
        (self.mean.0 + self.half_width.0, self.mean.1 + self.half_width.1)
    }
}

/// The intervals of `a` and `b` support "a is better than b": on one axis a's interval lies entirely above
/// b's (a's lower end > b's upper end), and on the other b's interval does not lie entirely above a's.
/// False when either point has fewer than 2 seeds or a non-finite coordinate or half-width.
pub fn separates(a: &PointCi, b: &PointCi) -> bool {
    if a.n < 2 || b.n < 2 {
        return false;
    }
    let (a_lo, a_hi, b_lo, b_hi) = (a.lo(), a.hi(), b.lo(), b.hi());
    if ![a_lo, a_hi, b_lo, b_hi].into_iter().all(finite) {
        return false;
    }
    let above_0 = a_lo.0 > b_hi.0;
    let above_1 = a_lo.1 > b_hi.1;
    let reversed_0 = b_lo.0 > a_hi.0;
    let reversed_1 = b_lo.1 > a_hi.1;
    (above_0 && !reversed_1) || (above_1 && !reversed_0)
}

/// Whether the 95% intervals support a dominance found on the means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalSupport {
    /// Every point of the dominated set is weakly dominated on the means by a point whose intervals
    /// [`separates`] from it.
    Separated,
    /// Dominance on the means only: for some dominated point no dominating point's intervals separate.
    WithinIntervals,
    /// A point of either set has one seed: no interval to compare.
    NoInterval,
}

/// For sets where `a` covers `b` on the means (every point of `b` weakly dominated by one of `a`): whether
/// the intervals support it. The dominance pairs are (p, q) with p in `a` weakly dominating q in `b` on the
/// means; `a`'s dominance is [`IntervalSupport::Separated`] when every q has such a p that [`separates`]
/// from it. Any point of either set with n < 2 gives [`IntervalSupport::NoInterval`]; a q with no dominating
/// p (a does not cover b) gives [`IntervalSupport::WithinIntervals`].
pub fn dominance_support(a: &[PointCi], b: &[PointCi]) -> IntervalSupport {
    if a.iter().chain(b).any(|p| p.n < 2) {
        return IntervalSupport::NoInterval;
    }
    let supported = |q: &PointCi| a.iter().any(|p| weakly_dominates(p.mean, q.mean) && separates(p, q));
    if b.iter().all(supported) {
        IntervalSupport::Separated
    } else {
        IntervalSupport::WithinIntervals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_dominated_by_hand() {
        // (1,3), (2,2), (3,1) trade off; (1,1) and (2,1.5) are dominated by (2,2); (3,1) kept twice.
        let pts = [(2.0, 2.0), (1.0, 1.0), (3.0, 1.0), (1.0, 3.0), (2.0, 1.5), (3.0, 1.0), (f64::NAN, 9.0)];
        assert_eq!(non_dominated(&pts), vec![3, 0, 2, 5]);
        assert!(dominates((2.0, 2.0), (2.0, 1.5)) && !dominates((2.0, 2.0), (2.0, 2.0)));
        assert!(weakly_dominates((2.0, 2.0), (2.0, 2.0)) && !weakly_dominates((1.0, 3.0), (2.0, 2.0)));
        assert!(non_dominated(&[]).is_empty());
    }

    #[test]
    fn hypervolume_by_hand() {
        // Staircase (1,3), (2,2), (3,1) against (0,0): 3·1 + 2·1 + 1·1 = 6; dominated and repeated
        // points change nothing.
        let stairs = [(1.0, 3.0), (2.0, 2.0), (3.0, 1.0)];
        assert_eq!(hypervolume(&stairs, (0.0, 0.0)), 6.0);
        let noisy = [(1.0, 3.0), (2.0, 2.0), (3.0, 1.0), (1.0, 1.0), (2.0, 2.0), (f64::INFINITY, 5.0)];
        assert_eq!(hypervolume(&noisy, (0.0, 0.0)), 6.0);
        // Reference (1, 0.5): (1,3) has no width; sweeping down in utility, (3,1) adds 2·(1 − 0.5) = 1
        // and (2,2) adds 1·(2 − 1) = 1, total 2.
        assert_eq!(hypervolume(&stairs, (1.0, 0.5)), 2.0);
        // One point is its box; a point below the reference covers nothing.
        assert_eq!(hypervolume(&[(0.5, 0.25)], (0.0, 0.0)), 0.125);
        assert_eq!(hypervolume(&[(-1.0, 2.0)], (0.0, 0.0)), 0.0);
        assert_eq!(hypervolume(&[], (0.0, 0.0)), 0.0);
    }

    #[test]
    fn fronts_compare_by_coverage() {
        let a = [(1.0, 3.0), (3.0, 2.0)];
        let b = [(1.0, 2.0), (2.0, 2.0)];
        let c = [(4.0, 0.5)];
        assert_eq!(coverage(&a, &b), 1.0);
        assert_eq!(coverage(&b, &a), 0.0);
        assert_eq!(compare_fronts(&a, &b), FrontRelation::Dominates);
        assert_eq!(compare_fronts(&b, &a), FrontRelation::DominatedBy);
        assert_eq!(compare_fronts(&a, &c), FrontRelation::Incomparable);
        assert_eq!(compare_fronts(&a, &a), FrontRelation::Equivalent);
        assert_eq!(coverage(&a, &[]), 0.0);
        // Half of b2 is covered by a.
        assert_eq!(coverage(&a, &[(2.0, 2.0), (5.0, 0.0)]), 0.5);
    }

    fn ci(u: f64, du: f64, f: f64, df: f64, n: usize) -> PointCi {
        PointCi { mean: (u, f), half_width: (du, df), n }
    }

    #[test]
    fn best_single_point_hypervolume_does_not_grow_with_the_count() {
        // Three points pool to 10·.5 + 8·(.6 − .5) + 6·(.7 − .6) = 6.4; alone, the best is (10, .5): 5.
        let three = [(10.0, 0.5), (8.0, 0.6), (6.0, 0.7)];
        let one = [(11.0, 0.55)];
        assert!((hypervolume(&three, (0.0, 0.0)) - 6.4).abs() < 1e-12);
        assert!(hypervolume(&three, (0.0, 0.0)) > hypervolume(&one, (0.0, 0.0)));
        let (i, best) = best_point_hypervolume(&three, (0.0, 0.0)).unwrap();
        assert_eq!(i, 0);
        assert!((best - 5.0).abs() < 1e-12);
        assert!((best_point_hypervolume(&one, (0.0, 0.0)).unwrap().1 - 6.05).abs() < 1e-12);
        assert_eq!(best_point_hypervolume(&[], (0.0, 0.0)), None);
        assert_eq!(best_point_hypervolume(&[(f64::NAN, 1.0), (-1.0, 1.0)], (0.0, 0.0)), Some((0, 0.0)));
    }

    #[test]
    fn intervals_decide_whether_a_dominance_holds() {
        // The demo's case: R_tra 5.2 ± 0.7 against 5.2 ± 0.4, fairness close: dominance on the means only.
        let hrl = ci(5.25, 0.7, 0.42, 0.03, 3);
        let ppo = ci(5.2, 0.4, 0.40, 0.03, 3);
        assert!(dominates(hrl.mean, ppo.mean));
        assert!(!separates(&hrl, &ppo));
        assert_eq!(dominance_support(&[hrl], &[ppo]), IntervalSupport::WithinIntervals);
        // Separated on utility (4.0 > 3.0), overlapping on fairness: supported.
        let far = ci(5.0, 1.0, 0.42, 0.03, 3);
        let low = ci(2.0, 1.0, 0.40, 0.03, 3);
        assert!(separates(&far, &low));
        assert_eq!(dominance_support(&[far], &[low]), IntervalSupport::Separated);
        // Separated on fairness alone also counts.
        assert!(separates(&ci(2.1, 1.0, 0.6, 0.05, 3), &ci(2.0, 1.0, 0.4, 0.05, 3)));
        // Above on utility but reversed on fairness: never supported (nor a dominance on the means).
        let rev_a = ci(5.0, 1.0, 0.30, 0.02, 3);
        let rev_b = ci(2.0, 1.0, 0.50, 0.02, 3);
        assert!(!separates(&rev_a, &rev_b) && !separates(&rev_b, &rev_a));
        assert_eq!(dominance_support(&[rev_a], &[rev_b]), IntervalSupport::WithinIntervals);
        // Every dominated point needs its own separated dominator; one that only overlaps spoils it.
        let near = ci(4.5, 0.4, 0.40, 0.03, 3);
        assert!(weakly_dominates(far.mean, near.mean) && !separates(&far, &near));
        assert_eq!(dominance_support(&[far], &[low, near]), IntervalSupport::WithinIntervals);
        assert_eq!(dominance_support(&[far, hrl], &[low]), IntervalSupport::Separated);
        // One seed: no interval, whatever the means.
        assert_eq!(dominance_support(&[ci(9.0, 0.0, 0.9, 0.0, 1)], &[low]), IntervalSupport::NoInterval);
        assert!(!separates(&ci(9.0, 0.0, 0.9, 0.0, 1), &low));
        // A non-finite half-width separates nothing.
        assert!(!separates(&ci(5.0, f64::NAN, 0.42, 0.03, 3), &low));
    }
}
