//! The Pareto analysis of one results table, one mode and one utility: each method's operating point
//! (seed means of utility and 1 − Gini), each family's non-dominated set and hypervolume, and how the
//! families' frontiers compare (coverage and dominance, [`dsrm_metrics::pareto`]).
//!
//! Frontiers are taken on seed means; every dominance found on the means is then checked against the
//! points' 95% intervals (the seed aggregates' [`MeanCi`] half-widths, Student's t, the same numbers the
//! tables print): a verdict is stated plainly only when the intervals separate
//! ([`dsrm_metrics::pareto::dominance_support`]), else "on the means; within the intervals". A family is the
//! method as written in the experiment file: a λ_f sweep is one family with many points, an unswept
//! baseline a family of one. A family's hypervolume pools its points, so it grows with their number; the
//! best single point's hypervolume is reported beside it and is the one comparable across families of
//! different sizes (`docs/protocol.md` §6.3).

use dsrm_eval::summary::Summary;
use dsrm_metrics::pareto::{
    best_point_hypervolume, compare_fronts, coverage, dominance_support, hypervolume, non_dominated, FrontRelation,
    IntervalSupport, Point, PointCi,
};
use dsrm_metrics::MeanCi;
use std::fmt;
use std::str::FromStr;

/// The hypervolume reference point. Hypervolumes compare only under the same reference, so the report
/// writes the one it used next to every number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reference {
    /// (0, 0): no reward, all exposure on one item (1 − Gini = 0). The default: fixed across runs.
    Origin,
    /// The worst utility and the worst 1 − Gini of all methods in the mode: measures only the spread
    /// between the methods shown, and changes when methods are added.
    Nadir,
    /// An explicit (utility, 1 − Gini).
    Point(f64, f64),
}

impl FromStr for Reference {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "origin" => Ok(Reference::Origin),
            "nadir" => Ok(Reference::Nadir),
            other => {
                let parts: Vec<&str> = other.split(',').map(str::trim).collect();
                match parts.as_slice() {
                    [u, f] => match (u.parse::<f64>(), f.parse::<f64>()) {
                        (Ok(u), Ok(f)) if u.is_finite() && f.is_finite() => Ok(Reference::Point(u, f)),
                        _ => Err(format!("reference {s:?}: expected `origin`, `nadir` or two numbers `U,F`")),
                    },
                    _ => Err(format!("reference {s:?}: expected `origin`, `nadir` or two numbers `U,F`")),
                }
            }
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Origin => f.write_str("origin (0, 0)"),
            Reference::Nadir => f.write_str("nadir (worst utility, worst 1 − Gini of all methods in the mode)"),
            Reference::Point(u, v) => write!(f, "point ({u}, {v})"),
        }
    }
}

/// One method's operating point.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodPoint {
    pub method: String,
    pub family: String,
    /// The swept values in short form (`lambda_f=0.1`), empty for an unswept method.
    pub label: String,
    pub utility: MeanCi,
    /// 1 − Gini: the mean flipped, the interval the same width as Gini's.
    pub fairness: MeanCi,
}

impl MethodPoint {
    fn point(&self) -> Point {
        (self.utility.mean, self.fairness.mean)
    }

    /// The point with its 95% CI half-widths; n is the smaller seed count of the two coordinates.
    pub fn point_ci(&self) -> PointCi {
        PointCi {
            mean: self.point(),
            half_width: (self.utility.half_width, self.fairness.half_width),
            n: self.utility.n.min(self.fairness.n),
        }
    }
}

/// One family's frontier.
#[derive(Debug, Clone, PartialEq)]
pub struct FamilyFront {
    pub family: String,
    /// Indices into [`ParetoAnalysis::points`] of the family's non-dominated points, utility ascending.
    pub front: Vec<usize>,
    /// The family's number of points (methods), dominated ones included.
    pub size: usize,
    /// Hypervolume of all the family's points pooled: grows with `size`, so compare it only between
    /// families of the same size.
    pub hypervolume: f64,
    /// Index into [`ParetoAnalysis::points`] of the family's point with the largest hypervolume alone.
    pub best_point: usize,
    /// That point's hypervolume (its box above the reference): comparable across families of any size.
    pub best_point_hypervolume: f64,
}

/// Two families' frontiers compared.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    /// Share of b's frontier weakly dominated by a's.
    pub coverage_ab: f64,
    pub coverage_ba: f64,
    /// The relation on the seed means.
    pub relation: FrontRelation,
    /// For a dominance on the means (either way): whether the 95% intervals support it; `None` otherwise.
    pub support: Option<IntervalSupport>,
}

impl Comparison {
    /// `a dominates b` (the intervals support it), `a dominates b on the means; within the intervals`,
    /// `a dominates b on the means (n = 1, no interval)`, the same with b first, `equivalent`,
    /// `incomparable (each better somewhere)`.
    pub fn verdict(&self) -> String {
        let (winner, loser) = match self.relation {
            FrontRelation::Dominates => (&self.a, &self.b),
            FrontRelation::DominatedBy => (&self.b, &self.a),
            FrontRelation::Equivalent => return "equivalent".into(),
            FrontRelation::Incomparable => return "incomparable (each better somewhere)".into(),
        };
        match self.support {
            Some(IntervalSupport::Separated) => format!("{winner} dominates {loser}"),
            Some(IntervalSupport::NoInterval) => {
                format!("{winner} dominates {loser} on the means (n = 1, no interval)")
            }
            Some(IntervalSupport::WithinIntervals) | None => {
                format!("{winner} dominates {loser} on the means; within the intervals")
            }
        }
    }

    /// The relation on the means, machine-readable: `a_dominates_b`, `b_dominates_a`, `equivalent`,
    /// `incomparable`.
    pub fn relation_key(&self) -> &'static str {
        match self.relation {
            FrontRelation::Dominates => "a_dominates_b",
            FrontRelation::DominatedBy => "b_dominates_a",
            FrontRelation::Equivalent => "equivalent",
            FrontRelation::Incomparable => "incomparable",
        }
    }

    /// The relation once the intervals are read: a dominance the intervals support keeps its key
    /// (`a_dominates_b`, `b_dominates_a`); one they do not becomes `within_intervals`, or `no_interval` when a
    /// point has one seed; `equivalent` and `incomparable` stay.
    pub fn relation_ci95_key(&self) -> &'static str {
        match self.support {
            Some(IntervalSupport::WithinIntervals) => "within_intervals",
            Some(IntervalSupport::NoInterval) => "no_interval",
            Some(IntervalSupport::Separated) | None => self.relation_key(),
        }
    }
}

/// The analysis of one (results table, mode, utility).
#[derive(Debug, Clone, PartialEq)]
pub struct ParetoAnalysis {
    pub mode: String,
    /// `R_tra` or `R_each`.
    pub utility: String,
    pub reference: Reference,
    /// The reference point actually used (the nadir resolved).
    pub reference_point: Point,
    pub points: Vec<MethodPoint>,
    /// Families in order of first appearance (method order).
    pub families: Vec<FamilyFront>,
    /// The non-dominated methods among all of them.
    pub overall_front: Vec<usize>,
    pub overall_hypervolume: f64,
    /// Every unordered pair of families.
    pub comparisons: Vec<Comparison>,
}

/// The analysis, or `None` when no method has both the utility and Gini in this mode.
pub fn analyse(summary: &Summary, mode: &str, utility: &str, reference: Reference) -> Option<ParetoAnalysis> {
    let mut points = Vec::new();
    for (method, modes) in &summary.rows {
        let Some(metrics) = modes.get(mode) else { continue };
        let (Some(u), Some(g)) = (metrics.get(utility), metrics.get("Gini")) else { continue };
        let info = summary.method_info(method);
        let label =
            method.strip_prefix(&info.family).map(|r| r.trim_start_matches('[').trim_end_matches(']')).unwrap_or("");
        points.push(MethodPoint {
            method: method.clone(),
            family: info.family.clone(),
            label: label.to_string(),
            utility: *u,
            fairness: MeanCi { mean: 1.0 - g.mean, ..*g },
        });
    }
    if points.is_empty() {
        return None;
    }
    let all: Vec<Point> = points.iter().map(MethodPoint::point).collect();
    let reference_point = match reference {
        Reference::Origin => (0.0, 0.0),
        Reference::Point(u, f) => (u, f),
        Reference::Nadir => (
            all.iter().map(|p| p.0).fold(f64::INFINITY, f64::min),
            all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min),
        ),
    };
    let mut names: Vec<String> = Vec::new();
    for p in &points {
        if !names.contains(&p.family) {
            names.push(p.family.clone());
        }
    }
    let families: Vec<FamilyFront> = names
        .iter()
        .map(|family| {
            let members: Vec<usize> = (0..points.len()).filter(|&i| &points[i].family == family).collect();
            let pts: Vec<Point> = members.iter().map(|&i| all[i]).collect();
            let front: Vec<usize> = non_dominated(&pts).into_iter().map(|j| members[j]).collect();
            let (best, best_area) = best_point_hypervolume(&pts, reference_point).unwrap_or((0, 0.0));
            FamilyFront {
                family: family.clone(),
                front,
                size: members.len(),
                hypervolume: hypervolume(&pts, reference_point),
                best_point: members[best],
                best_point_hypervolume: best_area,
            }
        })
        .collect();
    let front_points = |f: &FamilyFront| -> Vec<Point> { f.front.iter().map(|&i| all[i]).collect() };
    let front_cis = |f: &FamilyFront| -> Vec<PointCi> { f.front.iter().map(|&i| points[i].point_ci()).collect() };
    let mut comparisons = Vec::new();
    for (i, a) in families.iter().enumerate() {
        for b in &families[i + 1..] {
            let (pa, pb) = (front_points(a), front_points(b));
            let relation = compare_fronts(&pa, &pb);
            let support = match relation {
                FrontRelation::Dominates => Some(dominance_support(&front_cis(a), &front_cis(b))),
                FrontRelation::DominatedBy => Some(dominance_support(&front_cis(b), &front_cis(a))),
                FrontRelation::Equivalent | FrontRelation::Incomparable => None,
            };
            comparisons.push(Comparison {
                a: a.family.clone(),
                b: b.family.clone(),
                coverage_ab: coverage(&pa, &pb),
                coverage_ba: coverage(&pb, &pa),
                relation,
                support,
            });
        }
    }
    Some(ParetoAnalysis {
        mode: mode.into(),
        utility: utility.into(),
        reference,
        reference_point,
        overall_front: non_dominated(&all),
        overall_hypervolume: hypervolume(&all, reference_point),
        points,
        families,
        comparisons,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsrm_eval::summary::MethodInfo;
    use std::collections::BTreeMap;

    fn ci(mean: f64) -> MeanCi {
        MeanCi { mean, half_width: 0.1, n: 3, std: 0.1 }
    }

    /// A table with family `hrl` at (R_tra, Gini) = (10, 0.2) and (20, 0.6), and `mp` at (15, 0.7).
    pub(crate) fn summary() -> Summary {
        let mut s = Summary::default();
        for (method, r, g) in [("hrl[lambda_f=1]", 10.0, 0.2), ("hrl[lambda_f=0]", 20.0, 0.6), ("mp", 15.0, 0.7)] {
            let metrics: BTreeMap<String, MeanCi> =
                [("R_tra".to_string(), ci(r)), ("Gini".to_string(), ci(g)), ("R_each".to_string(), ci(r / 10.0))]
                    .into();
            s.rows.entry(method.into()).or_default().insert("NX_0".into(), metrics);
        }
        for (m, l) in [("hrl[lambda_f=1]", 1.0), ("hrl[lambda_f=0]", 0.0)] {
            let params = [("train.algorithm.lambda_f".to_string(), serde_json::json!(l))].into();
            s.methods.insert(m.into(), MethodInfo { family: "hrl".into(), params });
        }
        s
    }

    #[test]
    fn fronts_hypervolumes_and_dominance_by_hand() {
        let a = analyse(&summary(), "NX_0", "R_tra", Reference::Origin).unwrap();
        // Points (utility, 1 − Gini): hrl (20, 0.4), (10, 0.8); mp (15, 0.3).
        let hrl = a.families.iter().find(|f| f.family == "hrl").unwrap();
        assert_eq!(
            hrl.front.iter().map(|&i| a.points[i].label.as_str()).collect::<Vec<_>>(),
            ["lambda_f=1", "lambda_f=0"]
        );
        // Staircase against (0,0): 20·0.4 + 10·(0.8 − 0.4) = 8 + 4 = 12.
        assert!((hrl.hypervolume - 12.0).abs() < 1e-12);
        let mp = a.families.iter().find(|f| f.family == "mp").unwrap();
        assert!((mp.hypervolume - 4.5).abs() < 1e-12);
        // (15, 0.3) is dominated by (20, 0.4): hrl dominates mp.
        assert_eq!(a.comparisons.len(), 1);
        assert_eq!(a.comparisons[0].verdict(), "hrl dominates mp");
        assert_eq!((a.comparisons[0].coverage_ab, a.comparisons[0].coverage_ba), (1.0, 0.0));
        assert!((a.overall_hypervolume - 12.0).abs() < 1e-12);
        assert_eq!(a.overall_front.len(), 2);
        assert!((a.points[0].fairness.half_width - 0.1).abs() < 1e-12);

        // Nadir (10, 0.3): hrl 10·(0.4 − 0.3) + 0 = 1 (the (10, 0.8) point has no width); mp has no area.
        let n = analyse(&summary(), "NX_0", "R_tra", Reference::Nadir).unwrap();
        assert_eq!(n.reference_point, (10.0, 0.30000000000000004));
        assert!((n.families[0].hypervolume - 1.0).abs() < 1e-9);
        assert_eq!(n.families[1].hypervolume, 0.0);
        assert!(analyse(&summary(), "FB", "R_tra", Reference::Origin).is_none());
    }

    /// A table of unswept methods: (method, R_tra, its half-width, Gini, its half-width, seeds).
    fn table(rows: &[(&str, f64, f64, f64, f64, usize)]) -> Summary {
        let mut s = Summary::default();
        for &(method, r, dr, g, dg, n) in rows {
            let m = |mean, half_width| MeanCi { mean, half_width, n, std: half_width };
            let metrics: BTreeMap<String, MeanCi> =
                [("R_tra".to_string(), m(r, dr)), ("Gini".to_string(), m(g, dg))].into();
            s.rows.entry(method.into()).or_default().insert("NX_0".into(), metrics);
        }
        s
    }

    fn verdict(rows: &[(&str, f64, f64, f64, f64, usize)]) -> (String, &'static str, &'static str) {
        let a = analyse(&table(rows), "NX_0", "R_tra", Reference::Origin).unwrap();
        let c = &a.comparisons[0];
        (c.verdict(), c.relation_key(), c.relation_ci95_key())
    }

    #[test]
    fn verdicts_follow_the_intervals() {
        // The demo's case: R_tra 5.2 ± 0.7 against 5.2 ± 0.4 (means 5.24 and 5.18), 1 − Gini 0.42 ± 0.03
        // against 0.40 ± 0.02: a dominance on the means whose intervals overlap on both axes.
        let demo = [("dsrm-hrl", 5.24, 0.7, 0.58, 0.03, 3), ("flat-ppo", 5.18, 0.4, 0.60, 0.02, 3)];
        assert_eq!(
            verdict(&demo),
            (
                "dsrm-hrl dominates flat-ppo on the means; within the intervals".into(),
                "a_dominates_b",
                "within_intervals"
            )
        );
        // Separated on R_tra (7.0 − 0.4 > 5.2 + 0.4), overlapping on 1 − Gini: the plain verdict. The loser comes
        // first in method order, so the mirror relation is named.
        let separated = [("flat-ppo", 5.2, 0.4, 0.60, 0.02, 3), ("tuned-hrl", 7.0, 0.4, 0.58, 0.03, 3)];
        assert_eq!(verdict(&separated), ("tuned-hrl dominates flat-ppo".into(), "b_dominates_a", "b_dominates_a"));
        // Above on R_tra but reversed on 1 − Gini (0.40 ± 0.02 below 0.60 ± 0.02): no dominance is stated.
        let reversed = [("dsrm-hrl", 7.0, 0.4, 0.60, 0.02, 3), ("flat-ppo", 5.2, 0.4, 0.40, 0.02, 3)];
        let (text, means, ci) = verdict(&reversed);
        assert!(!text.contains("dominates"), "{text}");
        assert_eq!((means, ci), ("incomparable", "incomparable"));
        // One seed: the means only, said so.
        let single = [("dsrm-hrl", 7.0, 0.0, 0.58, 0.0, 1), ("flat-ppo", 5.2, 0.0, 0.60, 0.0, 1)];
        assert_eq!(
            verdict(&single),
            ("dsrm-hrl dominates flat-ppo on the means (n = 1, no interval)".into(), "a_dominates_b", "no_interval")
        );
    }

    #[test]
    fn best_single_point_hypervolume_compares_families_of_different_sizes() {
        // hrl has 2 points: pooled 12 against mp's 4.5; alone its best point is either of its two boxes,
        // 20·0.4 = 8 and 10·0.8 = 8 (ties: the first in method order).
        let a = analyse(&summary(), "NX_0", "R_tra", Reference::Origin).unwrap();
        let (hrl, mp) = (&a.families[0], &a.families[1]);
        assert_eq!((hrl.size, mp.size), (2, 1));
        assert!((hrl.best_point_hypervolume - 8.0).abs() < 1e-12);
        assert_eq!(a.points[hrl.best_point].family, "hrl");
        assert!((mp.best_point_hypervolume - mp.hypervolume).abs() < 1e-12);
        // A 3-point sweep pools more area than a better single method, whose own box is larger than any
        // one point of the sweep: the pooled figure ranks them the other way round.
        let mut s = table(&[("one", 11.0, 0.1, 0.45, 0.01, 3)]);
        for (m, r, g) in [("sweep[x=1]", 10.0, 0.5), ("sweep[x=2]", 8.0, 0.4), ("sweep[x=3]", 6.0, 0.3)] {
            s.rows.extend(table(&[(m, r, 0.1, g, 0.01, 3)]).rows);
            let params = [("x".to_string(), serde_json::json!(r))].into();
            s.methods.insert(m.into(), MethodInfo { family: "sweep".into(), params });
        }
        let a = analyse(&s, "NX_0", "R_tra", Reference::Origin).unwrap();
        let fam = |name: &str| a.families.iter().find(|f| f.family == name).unwrap();
        assert!(fam("sweep").hypervolume > fam("one").hypervolume);
        assert!(fam("sweep").best_point_hypervolume < fam("one").best_point_hypervolume);
        assert_eq!(a.points[fam("sweep").best_point].method, "sweep[x=1]");
    }

    #[test]
    fn references_parse() {
        assert_eq!("origin".parse::<Reference>(), Ok(Reference::Origin));
        assert_eq!("nadir".parse::<Reference>(), Ok(Reference::Nadir));
        assert_eq!("1.5, 0.2".parse::<Reference>(), Ok(Reference::Point(1.5, 0.2)));
        assert!("1.5".parse::<Reference>().unwrap_err().contains("expected"));
        assert!("a,b".parse::<Reference>().is_err());
    }
}
