//! Point labels that do not overlap. Pareto points of one sweep often nearly coincide (two λ_f values with
//! the same operating point), and labels written at a fixed offset then print over each other.
//!
//! Greedy placement, in pixels: points closer than [`MERGE_PX`] share one label of stacked lines (so each
//! point stays named; lines are prefixed with their series when the points belong to several); every label then takes the first of several positions around its point, nearest
//! first, whose box stays inside the plot and clear of the labels already placed (and, when possible, of the
//! markers). A label with no such position is left out and reported, so the chart can name its point
//! elsewhere (the legend column lists it with its coordinates).

/// Points at most this many pixels apart (in x and in y) get one combined label.
pub const MERGE_PX: i32 = 8;
/// Gap between a point and its label.
const GAP: i32 = 6;
/// Vertical space between stacked lines of one label.
const LINE_SPACING: i32 = 2;
/// Half the side of the square kept clear around each marker.
const MARKER_PX: i32 = 5;

/// An axis-aligned box in pixels: left, top, width, height.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
}

impl Rect {
    /// True when the two boxes share any area (touching edges do not count).
    pub fn overlaps(&self, other: &Rect) -> bool {
        self.x < other.x + other.w
            && other.x < self.x + self.w
            && self.y < other.y + other.h
            && other.y < self.y + self.h
    }

    fn inside(&self, area: &Rect) -> bool {
        self.x >= area.x && self.y >= area.y && self.x + self.w <= area.x + area.w && self.y + self.h <= area.y + area.h
    }

    /// The point of the box nearest to `p` (for a leader line from a point to its label).
    pub fn nearest(&self, p: (i32, i32)) -> (i32, i32) {
        (p.0.clamp(self.x, self.x + self.w), p.1.clamp(self.y, self.y + self.h))
    }
}

/// One point that wants a label.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    /// The point, in pixels.
    pub anchor: (i32, i32),
    pub text: String,
    /// The point's series, named in a combined label of points of several series.
    pub owner: String,
}

/// A label as it will be drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    /// One line per point it names (several when points nearly coincide).
    pub lines: Vec<String>,
    /// Indices into the `wanted` slice of the points it names.
    pub members: Vec<usize>,
    pub anchor: (i32, i32),
    pub rect: Rect,
    /// Height of one line (the lines are stacked from `rect.y`).
    pub line_height: i32,
    /// Placed away from its point: draw a leader line.
    pub detached: bool,
}

/// Where the labels go.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Placement {
    pub placed: Vec<Placed>,
    /// Indices into `wanted` of the points whose label found no room.
    pub left_out: Vec<usize>,
}

/// Places the labels of `wanted` (empty texts are skipped) inside `area`. `measure` gives a line's width and
/// height in pixels; `markers` are the points, in pixels, that labels should rather not cover.
pub fn place(
    wanted: &[Wanted],
    mut measure: impl FnMut(&str) -> (i32, i32),
    area: Rect,
    markers: &[(i32, i32)],
) -> Placement {
    let marker_boxes: Vec<Rect> = markers
        .iter()
        .map(|&(x, y)| Rect { x: x - MARKER_PX, y: y - MARKER_PX, w: 2 * MARKER_PX, h: 2 * MARKER_PX })
        .collect();
    let mut out = Placement::default();
    for group in groups(wanted) {
        let anchor = wanted[group[0]].anchor;
        let mixed = group.iter().any(|&i| wanted[i].owner != wanted[group[0]].owner);
        let mut lines: Vec<String> = Vec::new();
        for &i in &group {
            let w = &wanted[i];
            let line = if mixed && !w.owner.is_empty() { format!("{}: {}", w.owner, w.text) } else { w.text.clone() };
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
        let sizes: Vec<(i32, i32)> = lines.iter().map(|l| measure(l)).collect();
        let line_height = sizes.iter().map(|s| s.1).max().unwrap_or(0) + LINE_SPACING;
        let size = (sizes.iter().map(|s| s.0).max().unwrap_or(0), line_height * lines.len() as i32);
        let free = |r: &Rect, avoid_markers: bool| {
            r.inside(&area)
                && !out.placed.iter().any(|p| p.rect.overlaps(r))
                && !(avoid_markers && marker_boxes.iter().any(|m| m.overlaps(r)))
        };
        let spot = [true, false]
            .into_iter()
            .find_map(|avoid_markers| candidates(anchor, size).into_iter().find(|(r, _)| free(r, avoid_markers)));
        match spot {
            Some((rect, detached)) => {
                out.placed.push(Placed { lines, members: group, anchor, rect, line_height, detached })
            }
            None => out.left_out.extend(group),
        }
    }
    out
}

/// Indices of the labelled points, grouped: a point joins the first group whose first point is within
/// [`MERGE_PX`] of it.
fn groups(wanted: &[Wanted]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, w) in wanted.iter().enumerate().filter(|(_, w)| !w.text.is_empty()) {
        let near = |g: &&mut Vec<usize>| {
            let a = wanted[g[0]].anchor;
            (a.0 - w.anchor.0).abs() <= MERGE_PX && (a.1 - w.anchor.1).abs() <= MERGE_PX
        };
        match groups.iter_mut().find(near) {
            Some(g) => g.push(i),
            None => groups.push(vec![i]),
        }
    }
    groups
}

/// Boxes of `size` around `anchor`, nearest first: the eight directions at the gap, then farther out
/// (those are `detached`: drawn with a leader line).
fn candidates(anchor: (i32, i32), (w, h): (i32, i32)) -> Vec<(Rect, bool)> {
    let (ax, ay) = anchor;
    let mut out = Vec::new();
    for (ring, gap) in [GAP, 3 * GAP, 6 * GAP].into_iter().enumerate() {
        let (right, left) = (ax + gap, ax - gap - w);
        let (above, below) = (ay - gap - h, ay + gap);
        for (x, y) in [
            (right, above),
            (right, below),
            (left, above),
            (left, below),
            (right, ay - h / 2),
            (left, ay - h / 2),
            (ax - w / 2, above),
            (ax - w / 2, below),
        ] {
            out.push((Rect { x, y, w, h }, ring > 0));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 7 px per character, 12 px high: roughly the chart's label font.
    fn measure(s: &str) -> (i32, i32) {
        (7 * s.chars().count() as i32, 12)
    }

    const AREA: Rect = Rect { x: 0, y: 0, w: 600, h: 400 };

    fn wanted(points: &[((i32, i32), &str)]) -> Vec<Wanted> {
        points.iter().map(|&(anchor, text)| Wanted { anchor, text: text.into(), owner: "hrl".into() }).collect()
    }

    fn assert_disjoint(p: &Placement) {
        for (i, a) in p.placed.iter().enumerate() {
            for b in &p.placed[i + 1..] {
                assert!(!a.rect.overlaps(&b.rect), "{a:?} overlaps {b:?}");
            }
            assert!(a.rect.inside(&AREA), "{a:?}");
        }
    }

    #[test]
    fn nearly_coincident_points_share_one_label_that_names_both() {
        let w = wanted(&[((300, 200), "lambda_f=0.1"), ((302, 201), "lambda_f=0.2")]);
        let p = place(&w, measure, AREA, &[(300, 200), (302, 201)]);
        assert_eq!(p.placed.len(), 1);
        assert_eq!(p.placed[0].lines, ["lambda_f=0.1", "lambda_f=0.2"]);
        assert_eq!(p.placed[0].members, [0, 1]);
        assert_eq!(p.placed[0].rect.h, 2 * 14);
        assert!(p.left_out.is_empty());

        // The same label text on points of two series: both kept, each with its series.
        let mut w = wanted(&[((300, 200), "lambda_f=0.1"), ((301, 200), "lambda_f=0.1")]);
        w[1].owner = "ppo".into();
        let p = place(&w, measure, AREA, &[]);
        assert_eq!(p.placed[0].lines, ["hrl: lambda_f=0.1", "ppo: lambda_f=0.1"]);
    }

    #[test]
    fn close_but_distinct_points_get_disjoint_boxes() {
        // 12 px apart: not merged, but a label at the same offset from each would overlap.
        let w = wanted(&[((300, 200), "lambda_f=0.1"), ((312, 206), "lambda_f=0.2"), ((296, 212), "lambda_f=0.3")]);
        let naive = |a: (i32, i32)| Rect { x: a.0 + GAP, y: a.1 - GAP - 12, w: 84, h: 12 };
        assert!(naive(w[0].anchor).overlaps(&naive(w[1].anchor)));
        let p = place(&w, measure, AREA, &w.iter().map(|w| w.anchor).collect::<Vec<_>>());
        assert_eq!(p.placed.len(), 3);
        assert!(p.left_out.is_empty());
        assert_disjoint(&p);
    }

    #[test]
    fn labels_stay_inside_and_a_label_without_room_is_reported() {
        // A point in the top-right corner labels to its lower left.
        let p = place(&wanted(&[((598, 2), "corner")]), measure, AREA, &[]);
        assert_disjoint(&p);
        assert_eq!(p.placed.len(), 1);
        // An area too small for any label: left out, no panic.
        let tiny = Rect { x: 0, y: 0, w: 20, h: 10 };
        let p = place(&wanted(&[((10, 5), "too long"), ((10, 5), ""), ((11, 6), "x")]), measure, tiny, &[]);
        assert!(p.placed.is_empty());
        assert_eq!(p.left_out, [0, 2]);
    }

    #[test]
    fn a_crowd_of_points_never_gets_overlapping_labels() {
        let w: Vec<Wanted> = (0..40)
            .map(|i| Wanted {
                anchor: (200 + 9 * (i % 7), 150 + 11 * (i / 7)),
                text: format!("p{i}"),
                owner: String::new(),
            })
            .collect();
        let p = place(&w, measure, AREA, &[]);
        assert_disjoint(&p);
        let named: usize = p.placed.iter().map(|l| l.members.len()).sum::<usize>() + p.left_out.len();
        assert_eq!(named, 40, "every point is labelled or reported");
    }
}
