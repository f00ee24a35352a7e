//! Hand-written SVG charts: the two kinds the report needs (x–y charts with error bars, step lines and
//! bands; horizontal bars with error bars), as plain strings.
//!
//! No plotting crate is available offline to this workspace (plotters is not in the registry cache), and
//! SVG text needs no fonts at build time: the browser draws the labels. So the charts are written here,
//! with a linear scale, "nice" ticks and a legend, and nothing else.

use std::fmt::Write;

/// Tableau 10: distinguishable, print-safe colours, cycled by series index.
const PALETTE: [&str; 10] =
    ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

/// The colour of series `i`.
pub fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// Escapes text for XML (SVG and HTML alike).
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Titles and axis labels of a chart.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    pub title: String,
    /// Second line: data set, mode, seeds.
    pub subtitle: String,
    pub x_label: String,
    pub y_label: String,
}

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
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 200.0; // legend column
const TOP: f64 = 58.0;
const BOTTOM: f64 = 52.0;

/// A linear map from data to pixels.
#[derive(Debug, Clone, Copy)]
struct Scale {
    lo: f64,
    hi: f64,
    px_lo: f64,
    px_hi: f64,
}

impl Scale {
    fn at(&self, v: f64) -> f64 {
        self.px_lo + (v - self.lo) / (self.hi - self.lo) * (self.px_hi - self.px_lo)
    }
}

/// Ticks at 1, 2 or 5 × 10^k covering `[lo, hi]`, and the range widened to the outer ticks.
pub fn nice_ticks(lo: f64, hi: f64) -> (Vec<f64>, f64, f64) {
    let (lo, hi) = if !(lo.is_finite() && hi.is_finite()) {
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
    let ticks: Vec<f64> = (0..=(last - first) as i64).map(|i| (first + i as f64) * step).collect();
    (ticks, first * step, last * step)
}

/// A tick value with as many decimals as the tick step needs.
fn tick_text(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 { 0 } else { (-step.log10().floor()) as usize };
    let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
    format!("{v:.decimals$}")
}

fn header(out: &mut String, width: f64, height: f64, frame: &Frame) {
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="#ffffff"/><text x="{}" y="20" font-size="15" font-weight="bold">{}</text><text x="{}" y="38" fill="#444444">{}</text>"##,
        LEFT,
        escape(&frame.title),
        LEFT,
        escape(&frame.subtitle)
    );
}

/// Axes with grid lines, ticks and labels.
fn axes(out: &mut String, xs: Scale, ys: Scale, xt: &[f64], yt: &[f64], frame: &Frame) {
    let (x0, x1, y0, y1) = (xs.px_lo, xs.px_hi, ys.px_lo, ys.px_hi);
    let xstep = if xt.len() > 1 { xt[1] - xt[0] } else { 1.0 };
    let ystep = if yt.len() > 1 { yt[1] - yt[0] } else { 1.0 };
    for &t in xt {
        let px = xs.at(t);
        let _ = write!(
            out,
            r##"<line x1="{px:.1}" y1="{y1:.1}" x2="{px:.1}" y2="{y0:.1}" stroke="#e5e5e5"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            y0 + 16.0,
            tick_text(t, xstep)
        );
    }
    for &t in yt {
        let py = ys.at(t);
        let _ = write!(
            out,
            r##"<line x1="{x0:.1}" y1="{py:.1}" x2="{x1:.1}" y2="{py:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            x0 - 6.0,
            py + 4.0,
            tick_text(t, ystep)
        );
    }
    let _ = write!(
        out,
        r##"<rect x="{x0:.1}" y="{y1:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#333333"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"##,
        x1 - x0,
        y0 - y1,
        (x0 + x1) / 2.0,
        y0 + 38.0,
        escape(&frame.x_label),
        (y0 + y1) / 2.0,
        escape(&frame.y_label)
    );
}

fn legend(out: &mut String, x: f64, entries: &[(String, usize)]) {
    for (i, (name, c)) in entries.iter().enumerate() {
        let y = TOP + 10.0 + 18.0 * i as f64;
        let _ = write!(
            out,
            r##"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"##,
            y - 10.0,
            color(*c),
            x + 18.0,
            y,
            escape(name)
        );
    }
}

/// An x–y chart: markers with CI whiskers, straight or step lines, optional CI bands, a legend of the
/// named series (series with an empty name draw but stay out of the legend).
pub fn xy_chart(frame: &Frame, series: &[Series]) -> String {
    let all = || series.iter().flat_map(|s| s.points.iter()).filter(|p| p.x.is_finite() && p.y.is_finite());
    let fold = |f: fn(&Xy) -> f64, min: bool| {
        all().map(f).fold(if min { f64::INFINITY } else { f64::NEG_INFINITY }, if min { f64::min } else { f64::max })
    };
    let (xt, xlo, xhi) = nice_ticks(fold(|p| p.x - p.x_err, true), fold(|p| p.x + p.x_err, false));
    let (yt, ylo, yhi) = nice_ticks(fold(|p| p.y - p.y_err, true), fold(|p| p.y + p.y_err, false));
    let xs = Scale { lo: xlo, hi: xhi, px_lo: LEFT, px_hi: WIDTH - RIGHT };
    let ys = Scale { lo: ylo, hi: yhi, px_lo: HEIGHT - BOTTOM, px_hi: TOP };
    let mut out = String::new();
    header(&mut out, WIDTH, HEIGHT, frame);
    axes(&mut out, xs, ys, &xt, &yt, frame);
    for s in series {
        let c = color(s.color);
        let pts: Vec<&Xy> = s.points.iter().filter(|p| p.x.is_finite() && p.y.is_finite()).collect();
        if s.band && pts.len() > 1 {
            let upper = pts.iter().map(|p| format!("{:.1},{:.1}", xs.at(p.x), ys.at(p.y + p.y_err)));
            let lower = pts.iter().rev().map(|p| format!("{:.1},{:.1}", xs.at(p.x), ys.at(p.y - p.y_err)));
            let ring: Vec<String> = upper.chain(lower).collect();
            let _ =
                write!(out, r##"<polygon points="{}" fill="{c}" fill-opacity="0.18" stroke="none"/>"##, ring.join(" "));
        }
        let mut path: Vec<(f64, f64)> = Vec::new();
        for (i, p) in pts.iter().enumerate() {
            if s.line == Line::Step && i > 0 {
                path.push((pts[i - 1].x, p.y)); // down at the previous point's x, then across
            }
            path.push((p.x, p.y));
        }
        if s.line != Line::None && path.len() > 1 {
            let d: Vec<String> = path.iter().map(|&(x, y)| format!("{:.1},{:.1}", xs.at(x), ys.at(y))).collect();
            let _ = write!(out, r##"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2"/>"##, d.join(" "));
        }
        for (i, p) in pts.iter().enumerate() {
            let (px, py) = (xs.at(p.x), ys.at(p.y));
            if !s.band && p.y_err > 0.0 {
                let _ = write!(
                    out,
                    r##"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="{c}"/>"##,
                    ys.at(p.y - p.y_err),
                    ys.at(p.y + p.y_err)
                );
            }
            if !s.band && p.x_err > 0.0 {
                let _ = write!(
                    out,
                    r##"<line x1="{:.1}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="{c}"/>"##,
                    xs.at(p.x - p.x_err),
                    xs.at(p.x + p.x_err)
                );
            }
            if s.markers {
                let _ = write!(out, r##"<circle cx="{px:.1}" cy="{py:.1}" r="4" fill="{c}" stroke="#ffffff"/>"##);
            }
            if let Some(label) = s.labels.get(i).filter(|l| !l.is_empty()) {
                let _ = write!(
                    out,
                    r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#333333">{}</text>"##,
                    px + 6.0,
                    py - 6.0,
                    escape(label)
                );
            }
        }
    }
    let entries: Vec<(String, usize)> =
        series.iter().filter(|s| !s.name.is_empty()).map(|s| (s.name.clone(), s.color)).collect();
    legend(&mut out, WIDTH - RIGHT + 14.0, &entries);
    out.push_str("</svg>\n");
    out
}

/// One bar: label, value, CI half-width, colour index.
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub err: f64,
    pub color: usize,
}

/// Horizontal bars with CI whiskers, one row per bar (long method names fit on the left).
pub fn hbar_chart(frame: &Frame, bars: &[Bar]) -> String {
    let label_px = bars.iter().map(|b| b.label.chars().count()).max().unwrap_or(4) as f64 * 6.6 + 12.0;
    let left = label_px.clamp(LEFT, 320.0);
    let row = 22.0;
    let height = TOP + BOTTOM + row * bars.len().max(1) as f64;
    let width = WIDTH - RIGHT + 60.0 + (left - LEFT);
    let lo = bars.iter().map(|b| (b.value - b.err).min(0.0)).fold(0.0, f64::min);
    let hi = bars.iter().map(|b| (b.value + b.err).max(0.0)).fold(0.0, f64::max);
    let (xt, xlo, xhi) = nice_ticks(lo, hi);
    let xs = Scale { lo: xlo, hi: xhi, px_lo: left, px_hi: width - 40.0 };
    let ys = Scale { lo: 0.0, hi: 1.0, px_lo: height - BOTTOM, px_hi: TOP };
    let mut out = String::new();
    header(&mut out, width, height, frame);
    axes(&mut out, xs, ys, &xt, &[], frame);
    let zero = xs.at(0.0);
    for (i, b) in bars.iter().enumerate() {
        let y = TOP + row * i as f64;
        let c = color(b.color);
        let (a, z) = (xs.at(b.value.min(0.0)), xs.at(b.value.max(0.0)));
        let _ = write!(
            out,
            r##"<rect x="{a:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{c}"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            y + 4.0,
            (z - a).max(0.5),
            row - 8.0,
            left - 6.0,
            y + row / 2.0 + 4.0,
            escape(&b.label)
        );
        if b.err > 0.0 {
            let (e0, e1, cy) = (xs.at(b.value - b.err), xs.at(b.value + b.err), y + row / 2.0);
            let _ = write!(
                out,
                r##"<path d="M{e0:.1},{cy:.1}H{e1:.1}M{e0:.1},{:.1}V{:.1}M{e1:.1},{:.1}V{:.1}" stroke="#222222" fill="none"/>"##,
                cy - 4.0,
                cy + 4.0,
                cy - 4.0,
                cy + 4.0
            );
        }
    }
    let _ = write!(
        out,
        r##"<line x1="{zero:.1}" y1="{TOP:.1}" x2="{zero:.1}" y2="{:.1}" stroke="#333333"/>"##,
        height - BOTTOM
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let (t, lo, hi) = nice_ticks(0.13, 0.87);
        assert_eq!((lo, hi), (0.0, 1.0));
        assert_eq!(t.len(), 6);
        let (t, lo, hi) = nice_ticks(3.0, 3.0);
        assert!(lo < 3.0 && hi > 3.0 && t.len() >= 2);
        assert_eq!(tick_text(0.2, 0.2), "0.2");
        assert_eq!(tick_text(20.0, 5.0), "20");
    }

    #[test]
    fn a_step_line_goes_down_then_across() {
        let pts = vec![Xy { x: 1.0, y: 3.0, ..Xy::default() }, Xy { x: 2.0, y: 1.0, ..Xy::default() }];
        let mut s = Series::scatter("f", 0, pts);
        s.line = Line::Step;
        let svg = xy_chart(&Frame::default(), &[s]);
        // Three vertices: (1,3), (1,1), (2,1).
        let poly = svg.split("<polyline points=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(poly.split(' ').count(), 3);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }
}
