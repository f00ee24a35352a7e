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
}
