//! x–y charts: markers with CI whiskers, straight or Pareto-step lines, CI bands, point labels and a
//! legend column on the right (long names do not cover the data).

use super::labels::{self, Wanted};
use super::{
    color, draw_header, draw_no_data, fit, header_width, measure, message, render, text_style, Axis, Chart, Frame,
    Rendered, AXIS, AXIS_DESC_PX, GRID, INK, MUTED, SMALL_PX, TICK_PX,
};
use crate::error::{ReportError, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One point with symmetric error half-widths (0 = no whisker).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Xy {
    pub x: f64,
    pub y: f64,
    pub x_err: f64,
    pub y_err: f64,
}

/// How a series joins its points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    None,
    Straight,
    /// A Pareto staircase for points sorted by x: down at each point's x, then across to the next.
    Step,
}

/// One legend entry's worth of points.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub color: usize,
    pub points: Vec<Xy>,
    /// Text next to each point (empty: none).
    pub labels: Vec<String>,
    pub markers: bool,
    pub line: Line,
    /// Shade y ± y_err between points (a confidence band) instead of whiskers.
    pub band: bool,
}

impl Series {
    /// Markers with whiskers, unjoined.
    pub fn scatter(name: &str, color: usize, points: Vec<Xy>) -> Self {
        Self { name: name.into(), color, points, labels: Vec::new(), markers: true, line: Line::None, band: false }
    }

    /// The points that can be drawn, with their index: finite x and y; a non-finite or negative error
    /// becomes 0 (no whisker).
    fn drawable(&self) -> Vec<(usize, Xy)> {
        let err = |e: f64| if e.is_finite() && e > 0.0 { e } else { 0.0 };
        self.points
            .iter()
            .enumerate()
            .filter(|(_, p)| p.x.is_finite() && p.y.is_finite())
            .map(|(i, p)| (i, Xy { x_err: err(p.x_err), y_err: err(p.y_err), ..*p }))
            .collect()
    }

    /// The vertices of its line: a staircase for [`Line::Step`].
    fn path(&self, points: &[(usize, Xy)]) -> Vec<(f64, f64)> {
        let mut path = Vec::new();
        for (i, (_, p)) in points.iter().enumerate() {
            if self.line == Line::Step && i > 0 {
                path.push((points[i - 1].1.x, p.y)); // down at the previous point's x, then across
            }
            path.push((p.x, p.y));
        }
        path
    }
}

/// Height of every x–y chart; the width grows with the legend and a long subtitle.
const HEIGHT: u32 = 560;
/// Width of the plot, axes included, before the legend column.
const PLOT_WIDTH: u32 = 680;
const LEGEND_MIN: i32 = 160;
const LEGEND_MAX: i32 = 320;
/// Legend swatch width and the gap to its text.
const SWATCH: i32 = 24;
const ROW: i32 = 22;
/// Whisker cap half-width.
const CAP: i32 = 3;
const MARKER: i32 = 4;

/// An x–y chart: markers with CI whiskers, straight or step lines, optional CI bands, point labels
/// placed without overlaps, and a legend of the named series (a series with an empty name draws but stays
/// out of the legend). Labels with no room are listed under the legend with their point's coordinates.
pub fn xy_chart(frame: &Frame, series: &[Series]) -> Result<Rendered> {
    super::font::register()?;
    let fail = |message| ReportError::Render { chart: frame.title.clone(), format: "layout", message };
    let mut widest = 0;
    for s in series.iter().filter(|s| !s.name.is_empty()) {
        widest = widest.max(measure(&s.name, SMALL_PX).map_err(fail)?.0);
    }
    let legend_px = (widest + SWATCH + 24).clamp(LEGEND_MIN, LEGEND_MAX);
    let width = header_width(frame, PLOT_WIDTH + legend_px as u32)?;
    let drawable: Vec<Vec<(usize, Xy)>> = series.iter().map(Series::drawable).collect();
    let all = || drawable.iter().flatten().map(|(_, p)| p);
    let span = |low: fn(&Xy) -> f64, high: fn(&Xy) -> f64| {
        Axis::nice(all().map(low).fold(f64::INFINITY, f64::min), all().map(high).fold(f64::NEG_INFINITY, f64::max))
    };
    let x = span(|p| p.x - p.x_err, |p| p.x + p.x_err);
    let y = span(|p| p.y - p.y_err, |p| p.y + p.y_err);
    render(frame, &XyChart { frame, series, drawable: &drawable, x, y, legend_px, width })
}

struct XyChart<'a> {
    frame: &'a Frame,
    series: &'a [Series],
    /// Per series, [`Series::drawable`].
    drawable: &'a [Vec<(usize, Xy)>],
    x: Axis,
    y: Axis,
    legend_px: i32,
    width: u32,
}

impl Chart for XyChart<'_> {
    fn size(&self) -> (u32, u32) {
        (self.width, HEIGHT)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> std::result::Result<(), String> {
        let body = draw_header(root, self.frame)?;
        let (plot, legend) = body.split_horizontally(self.width as i32 - self.legend_px);
        let (xlo, xhi, ylo, yhi) = (self.x.lo, self.x.hi, self.y.lo, self.y.hi);
        let mut chart = ChartBuilder::on(&plot)
            .margin(12)
            .x_label_area_size(56)
            .y_label_area_size(80)
            .build_cartesian_2d(self.x.clone(), self.y.clone())
            .map_err(message)?;
        chart
            .configure_mesh()
            .bold_line_style(GRID.stroke_width(1))
            .axis_style(AXIS.stroke_width(1))
            .label_style(text_style(TICK_PX, INK))
            .axis_desc_style(text_style(AXIS_DESC_PX, INK))
            .x_desc(self.frame.x_label.clone())
            .y_desc(self.frame.y_label.clone())
            .draw()
            .map_err(message)?;
        let area = chart.plotting_area();
        area.draw(&Rectangle::new([(xlo, ylo), (xhi, yhi)], AXIS.stroke_width(1))).map_err(message)?;

        let pairs = || self.series.iter().zip(self.drawable);
        for (s, pts) in pairs().filter(|(s, pts)| s.band && pts.len() > 1) {
            let upper = pts.iter().map(|(_, p)| (p.x, p.y + p.y_err));
            let ring: Vec<(f64, f64)> = upper.chain(pts.iter().rev().map(|(_, p)| (p.x, p.y - p.y_err))).collect();
            area.draw(&Polygon::new(ring, color(s.color).mix(0.18).filled())).map_err(message)?;
        }
        for (s, pts) in pairs().filter(|(s, _)| s.line != Line::None) {
            let path = s.path(pts);
            if path.len() > 1 {
                area.draw(&PathElement::new(path, color(s.color).stroke_width(2))).map_err(message)?;
            }
        }
        for (s, pts) in pairs().filter(|(s, _)| !s.band) {
            let style = color(s.color).stroke_width(1);
            for (_, p) in pts {
                if p.y_err > 0.0 {
                    let (lo, hi) = ((p.x, p.y - p.y_err), (p.x, p.y + p.y_err));
                    area.draw(&PathElement::new(vec![lo, hi], style)).map_err(message)?;
                    for end in [lo, hi] {
                        let cap = EmptyElement::at(end) + PathElement::new(vec![(-CAP, 0), (CAP, 0)], style);
                        area.draw(&cap).map_err(message)?;
                    }
                }
                if p.x_err > 0.0 {
                    let (lo, hi) = ((p.x - p.x_err, p.y), (p.x + p.x_err, p.y));
                    area.draw(&PathElement::new(vec![lo, hi], style)).map_err(message)?;
                    for end in [lo, hi] {
                        let cap = EmptyElement::at(end) + PathElement::new(vec![(0, -CAP), (0, CAP)], style);
                        area.draw(&cap).map_err(message)?;
                    }
                }
            }
        }
        let mut markers = Vec::new();
        for (s, pts) in pairs().filter(|(s, _)| s.markers) {
            for (_, p) in pts {
                draw_marker(area, (p.x, p.y), s.color, true)?;
                markers.push(chart.backend_coord(&(p.x, p.y)));
            }
        }

        // Labels, on the root area (backend pixels), inside the plotting area.
        let (xs, ys) = area.get_pixel_range();
        if self.drawable.iter().all(Vec::is_empty) {
            draw_no_data(root, (xs.clone(), ys.clone()))?;
        }
        let mut wanted = Vec::new();
        let mut owner = Vec::new(); // (series, point) of each wanted label
        for (si, (s, pts)) in pairs().enumerate() {
            for (i, p) in pts {
                if let Some(text) = s.labels.get(*i).filter(|l| !l.is_empty()) {
                    let anchor = chart.backend_coord(&(p.x, p.y));
                    wanted.push(Wanted { anchor, text: text.clone(), owner: s.name.clone() });
                    owner.push((si, *p));
                }
            }
        }
        let inside =
            labels::Rect { x: xs.start + 2, y: ys.start + 2, w: xs.end - xs.start - 4, h: ys.end - ys.start - 4 };
        let mut failed = None;
        let placement = labels::place(
            &wanted,
            |t| {
                measure(t, SMALL_PX).unwrap_or_else(|e| {
                    failed = Some(e);
                    (0, 0)
                })
            },
            inside,
            &markers,
        );
        if let Some(e) = failed {
            return Err(e);
        }
        for l in &placement.placed {
            if l.detached {
                let path = vec![l.anchor, l.rect.nearest(l.anchor)];
                root.draw(&PathElement::new(path, MUTED.stroke_width(1))).map_err(message)?;
            }
            // In its series' colour (darkened to read as text) when the label names one series' points.
            let series = owner[l.members[0]].0;
            let one = l.members.iter().all(|&m| owner[m].0 == series);
            let ink = if one { text_color(color(self.series[series].color)) } else { INK };
            for (k, line) in l.lines.iter().enumerate() {
                let at = (l.rect.x, l.rect.y + k as i32 * l.line_height);
                root.draw(&Text::new(line.as_str(), at, text_style(SMALL_PX, ink))).map_err(message)?;
            }
        }

        // Legend column: named series, then labels that found no room, with their coordinates.
        let text_px = self.legend_px - SWATCH - 20;
        let mut y = 12 + ROW / 2;
        for s in self.series.iter().filter(|s| !s.name.is_empty()) {
            let c = color(s.color);
            if s.band {
                legend
                    .draw(&Rectangle::new([(4, y - 6), (4 + SWATCH, y + 6)], c.mix(0.18).filled()))
                    .map_err(message)?;
            }
            if s.band || s.line != Line::None {
                legend.draw(&PathElement::new(vec![(4, y), (4 + SWATCH, y)], c.stroke_width(2))).map_err(message)?;
            }
            if s.markers {
                draw_marker(&legend, (4 + SWATCH / 2, y), s.color, false)?;
            }
            let name = fit(&s.name, SMALL_PX, text_px)?;
            let style = text_style(SMALL_PX, INK).pos(Pos::new(HPos::Left, VPos::Center));
            legend.draw(&Text::new(name, (SWATCH + 12, y), style)).map_err(message)?;
            y += ROW;
        }
        if !placement.left_out.is_empty() {
            y += ROW / 2;
            let style = text_style(SMALL_PX, MUTED).pos(Pos::new(HPos::Left, VPos::Center));
            legend.draw(&Text::new("Not labelled (crowded):", (4, y), style)).map_err(message)?;
            let (_, legend_h) = legend.dim_in_pixel();
            let room = ((legend_h as i32 - y) / ROW - 1).max(0) as usize;
            let shown = if placement.left_out.len() > room { room.saturating_sub(1) } else { room };
            for &i in placement.left_out.iter().take(shown) {
                y += ROW;
                let (si, p) = owner[i];
                let entry = format!("{} ({:.3}, {:.3})", wanted[i].text, p.x, p.y);
                draw_marker(&legend, (8, y), self.series[si].color, false)?;
                let style = text_style(SMALL_PX, INK).pos(Pos::new(HPos::Left, VPos::Center));
                legend
                    .draw(&Text::new(fit(&entry, SMALL_PX, self.legend_px - 24)?, (18, y), style))
                    .map_err(message)?;
            }
            if placement.left_out.len() > shown {
                let more = format!("… and {} more", placement.left_out.len() - shown);
                let style = text_style(SMALL_PX, MUTED).pos(Pos::new(HPos::Left, VPos::Center));
                legend.draw(&Text::new(more, (18, y + ROW), style)).map_err(message)?;
            }
        }
        Ok(())
    }
}

/// The marker of series colour `index` at `at`: the palette's colour, in the next shape after every full turn of
/// the palette (circle, square, triangle, diamond), so up to 40 series stay apart; `outline` rings it in white.
fn draw_marker<DB: DrawingBackend, CT: CoordTranslate>(
    area: &DrawingArea<DB, CT>,
    at: CT::From,
    index: usize,
    outline: bool,
) -> std::result::Result<(), String>
where
    CT::From: Clone,
{
    let (fill, ring) = (color(index).filled(), WHITE.stroke_width(1));
    let m = MARKER + 1;
    let corners: Vec<(i32, i32)> = match marker_shape(index) {
        0 => {
            area.draw(&(EmptyElement::at(at.clone()) + Circle::new((0, 0), MARKER, fill))).map_err(message)?;
            if outline {
                area.draw(&(EmptyElement::at(at) + Circle::new((0, 0), MARKER, ring))).map_err(message)?;
            }
            return Ok(());
        }
        1 => vec![(-MARKER, -MARKER), (MARKER, -MARKER), (MARKER, MARKER), (-MARKER, MARKER)],
        2 => vec![(0, -m), (m, MARKER), (-m, MARKER)],
        _ => vec![(0, -m), (m, 0), (0, m), (-m, 0)],
    };
    area.draw(&(EmptyElement::at(at.clone()) + Polygon::new(corners.clone(), fill))).map_err(message)?;
    if outline {
        let closed: Vec<(i32, i32)> = corners.iter().chain(corners.first()).copied().collect();
        area.draw(&(EmptyElement::at(at) + PathElement::new(closed, ring))).map_err(message)?;
    }
    Ok(())
}

/// Which marker shape a series colour index gets: 0 (circle) for the first ten, then 1, 2, 3 and round again.
fn marker_shape(index: usize) -> usize {
    (index / super::PALETTE.len()) % 4
}

/// A series colour dark enough for text on white (the palette's light yellow and pink included).
fn text_color(c: RGBColor) -> RGBColor {
    let dark = |v: u8| (f64::from(v) * 0.6) as u8;
    RGBColor(dark(c.0), dark(c.1), dark(c.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_past_the_palette_get_other_marker_shapes() {
        assert_eq!((0..40).step_by(10).map(marker_shape).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert_eq!(marker_shape(9), 0);
        let frame = super::super::Frame {
            title: "t".into(),
            subtitle: String::new(),
            x_label: "x".into(),
            y_label: "y".into(),
        };
        let series = |n: usize| -> Vec<Series> {
            let at = |i: usize| Xy { x: i as f64, y: (i * i) as f64, ..Xy::default() };
            (0..n).map(|i| Series::scatter(&format!("s{i}"), i, vec![at(i)])).collect()
        };
        let polygons = |n: usize| super::super::xy_chart(&frame, &series(n)).unwrap().svg.matches("<polygon").count();
        assert_eq!(polygons(10), 0, "ten series: ten colours, all circles");
        // Series 10 (a square) and 11 (a triangle) share colours 0 and 1 with the circles: a shape on the chart and
        // one in the legend each.
        assert_eq!(polygons(12), 4);
    }

    #[test]
    fn a_step_line_goes_down_then_across() {
        let pts = vec![Xy { x: 1.0, y: 3.0, ..Xy::default() }, Xy { x: 2.0, y: 1.0, ..Xy::default() }];
        let mut s = Series::scatter("f", 0, pts);
        s.line = Line::Step;
        assert_eq!(s.path(&s.drawable()), [(1.0, 3.0), (1.0, 1.0), (2.0, 1.0)]);
        s.line = Line::Straight;
        assert_eq!(s.path(&s.drawable()).len(), 2);
    }

    #[test]
    fn non_finite_points_are_dropped_and_bad_errors_become_zero() {
        let pts = vec![
            Xy { x: f64::NAN, y: 1.0, ..Xy::default() },
            Xy { x: 1.0, y: f64::INFINITY, ..Xy::default() },
            Xy { x: 2.0, y: 3.0, x_err: f64::NAN, y_err: -1.0 },
        ];
        let d = Series::scatter("s", 0, pts).drawable();
        assert_eq!(d, [(2, Xy { x: 2.0, y: 3.0, x_err: 0.0, y_err: 0.0 })]);
    }
}
