//! The report's charts, drawn with [plotters] and rendered twice from the same drawing code: SVG (inlined
//! in `report.html` and written as `plots/<name>.svg`; scales for print) and PNG (`plots/<name>.png`, for
//! slides, Markdown and documents that take no SVG).
//!
//! Two kinds: x–y charts ([`xy_chart`]: markers with CI whiskers, straight or Pareto-step lines, CI bands,
//! point labels that do not overlap ([`labels`]), a legend) and horizontal bars with CI whiskers
//! ([`hbar_chart`]). Text is measured, and drawn in the PNG, with the bundled DejaVu Sans (`font.rs`), so a
//! chart has the same layout on every machine; the SVG names `sans-serif` and the browser draws its text.
//! Non-finite values are left out of a chart, never a panic; a chart with nothing to show says "no data".

mod axis;
mod bars;
mod font;
pub mod labels;
mod png_text;
mod xy;

pub use bars::{hbar_chart, Bar};
pub use xy::{xy_chart, Line, Series, Xy};

use crate::error::{ReportError, Result};
use axis::Axis;
use plotters::backend::RGBPixel;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::fmt;

/// Tableau 10: distinguishable, print-safe colours, cycled by series index.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0x9c, 0x75, 0x5f),
    RGBColor(0xba, 0xb0, 0xac),
];
/// Text.
const INK: RGBColor = RGBColor(0x22, 0x22, 0x22);
/// Subtitles and secondary text.
const MUTED: RGBColor = RGBColor(0x55, 0x55, 0x55);
/// Grid lines.
const GRID: RGBColor = RGBColor(0xe5, 0xe5, 0xe5);
/// The plot frame and the zero line.
const AXIS: RGBColor = RGBColor(0x33, 0x33, 0x33);

/// Height of the title and subtitle strip.
const HEADER_PX: i32 = 66;
/// Left and right margin of the title.
const HEADER_INSET: i32 = 16;
const TITLE_PX: f64 = 22.0;
const SUBTITLE_PX: f64 = 16.0;
const AXIS_DESC_PX: f64 = 16.0;
const TICK_PX: f64 = 14.0;
/// Legend entries and point labels.
const SMALL_PX: f64 = 14.0;
/// Charts never get wider than this, however long the subtitle.
const MAX_WIDTH: u32 = 1600;

/// The colour of series `i`.
pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
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

/// One chart in both formats.
#[derive(Clone, PartialEq)]
pub struct Rendered {
    /// A standalone SVG document.
    pub svg: String,
    /// A PNG file's bytes (8-bit RGB).
    pub png: Vec<u8>,
}

impl fmt::Debug for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rendered {{ svg: {} bytes, png: {} bytes }}", self.svg.len(), self.png.len())
    }
}

/// The drawing code of one chart, written once for both backends.
trait Chart {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws the whole chart on `root`; the error is plotters' message.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> std::result::Result<(), String>;
}

/// Draws `chart` as SVG and as PNG.
fn render(frame: &Frame, chart: &impl Chart) -> Result<Rendered> {
    let fail = |format: &'static str| {
        move |message: String| ReportError::Render { chart: frame.title.clone(), format, message }
    };
    let (w, h) = chart.size();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        chart.draw(&root).map_err(fail("SVG"))?;
        root.present().map_err(|e| fail("SVG")(e.to_string()))?;
    }
    let mut rgb = vec![255u8; w as usize * h as usize * 3];
    {
        let backend = BitMapBackend::<RGBPixel>::with_buffer_and_format(&mut rgb, (w, h))
            .map_err(|e| fail("PNG")(e.to_string()))?;
        let root = png_text::PngText(backend).into_drawing_area();
        chart.draw(&root).map_err(fail("PNG"))?;
        root.present().map_err(|e| fail("PNG")(e.to_string()))?;
    }
    let png = encode_png(&rgb, (w, h)).map_err(|e| fail("PNG")(e.to_string()))?;
    Ok(Rendered { svg, png })
}

fn encode_png(rgb: &[u8], (w, h): (u32, u32)) -> std::result::Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

/// Any plotters error as its message.
fn message(e: impl fmt::Display) -> String {
    e.to_string()
}

/// Text in the bundled font.
fn text_style(px: f64, color: RGBColor) -> TextStyle<'static> {
    TextStyle { font: (FontFamily::SansSerif, px).into(), color: color.to_backend_color(), pos: Pos::default() }
}

/// Width and height of `text` in pixels, as plotters will lay it out.
fn measure(text: &str, px: f64) -> std::result::Result<(i32, i32), String> {
    let (w, h) = (FontFamily::SansSerif, px).into_font().box_size(text).map_err(message)?;
    Ok((w as i32, h as i32))
}

/// `text`, shortened with an ellipsis to at most `max_px` wide.
fn fit(text: &str, px: f64, max_px: i32) -> std::result::Result<String, String> {
    if measure(text, px)?.0 <= max_px {
        return Ok(text.to_string());
    }
    let chars: Vec<char> = text.chars().collect();
    for keep in (0..chars.len()).rev() {
        let short: String = chars[..keep].iter().chain(['…'].iter()).collect();
        if measure(&short, px)?.0 <= max_px {
            return Ok(short);
        }
    }
    Ok("…".into())
}

/// The width a chart needs for its title and subtitle, at least `base`.
fn header_width(frame: &Frame, base: u32) -> Result<u32> {
    font::register()?;
    let wide = |t: &str, px| measure(t, px).map(|(w, _)| w.max(0) as u32 + 2 * HEADER_INSET as u32);
    let need = wide(&frame.title, TITLE_PX)
        .and_then(|t| Ok(t.max(wide(&frame.subtitle, SUBTITLE_PX)?)))
        .map_err(|message| ReportError::Render { chart: frame.title.clone(), format: "layout", message })?;
    Ok(need.clamp(base, MAX_WIDTH.max(base)))
}

/// White background, title and subtitle; returns the area below them.
fn draw_header<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    frame: &Frame,
) -> std::result::Result<DrawingArea<DB, Shift>, String> {
    root.fill(&WHITE).map_err(message)?;
    root.draw(&Text::new(frame.title.clone(), (HEADER_INSET, 12), text_style(TITLE_PX, INK))).map_err(message)?;
    root.draw(&Text::new(frame.subtitle.clone(), (HEADER_INSET, 40), text_style(SUBTITLE_PX, MUTED)))
        .map_err(message)?;
    Ok(root.clone().margin(HEADER_PX, 0, 0, 0))
}

/// "no data" in the middle of a chart's plotting area.
fn draw_no_data<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    (xs, ys): (std::ops::Range<i32>, std::ops::Range<i32>),
) -> std::result::Result<(), String> {
    let style = text_style(SUBTITLE_PX, MUTED).pos(Pos::new(HPos::Center, VPos::Center));
    root.draw(&Text::new("no data", ((xs.start + xs.end) / 2, (ys.start + ys.end) / 2), style)).map_err(message)
}

/// Width, height and RGB pixels of a PNG written by [`render`] (tests read the charts back with it).
#[cfg(test)]
pub fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
    let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut rgb).unwrap();
    assert_eq!(frame.color_type, png::ColorType::Rgb);
    (frame.width, frame.height, rgb)
}

/// The `width` and `height` attributes of an SVG's root element.
#[cfg(test)]
pub fn svg_size(svg: &str) -> (u32, u32) {
    let attr = |name: &str| {
        let rest = svg.split(&format!(" {name}=\"")).nth(1).unwrap();
        rest.split('"').next().unwrap().parse().unwrap()
    };
    (attr("width"), attr("height"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pareto_like() -> (Frame, Vec<Series>) {
        let frame = Frame {
            title: "Pareto: R_tra vs 1 − Gini".into(),
            subtitle: "kuairec — SYNTHETIC data · mode NX_0 · seeds 1–3 (n = 3)".into(),
            x_label: "R_tra (higher is better)".into(),
            y_label: "1 − Gini (higher is fairer)".into(),
        };
        let at = |x, y| Xy { x, y, x_err: 0.5, y_err: 0.02 };
        let mut hrl = Series::scatter("hrl", 0, vec![at(10.0, 0.8), at(10.01, 0.8001), at(18.0, 0.5)]);
        hrl.labels = vec!["lambda_f=0.1".into(), "lambda_f=0.2".into(), "lambda_f=1".into()];
        let front = Series { name: String::new(), markers: false, line: Line::Step, labels: vec![], ..hrl.clone() };
        (frame, vec![hrl, front, Series::scatter("most-popular", 1, vec![at(15.0, 0.3)])])
    }

    #[test]
    fn a_chart_renders_as_svg_and_as_a_png_of_the_same_size() {
        let (frame, series) = pareto_like();
        let r = xy_chart(&frame, &series).unwrap();
        assert!(r.svg.starts_with("<svg") && r.svg.trim_end().ends_with("</svg>"));
        for text in [&frame.title, &frame.subtitle, &frame.x_label, &frame.y_label, "hrl", "most-popular"] {
            assert!(r.svg.contains(text), "{text} not in the SVG");
        }
        // The two nearly coincident points: one label of two lines, each name once.
        assert_eq!(r.svg.matches(">\nlambda_f=0.1\n<").count(), 1);
        assert_eq!(r.svg.matches(">\nlambda_f=0.2\n<").count(), 1);
        assert!(r.png.starts_with(b"\x89PNG\r\n\x1a\n"));
        let (w, h, rgb) = decode_png(&r.png);
        assert_eq!((w, h), svg_size(&r.svg));
        // Something was drawn in the series' colour (Tableau blue).
        assert!(rgb.chunks(3).any(|p| p == [0x4e, 0x79, 0xa7]));
    }

    #[test]
    fn empty_and_non_finite_data_give_a_no_data_chart() {
        let frame = Frame { title: "t".into(), ..Frame::default() };
        let nan = Xy { x: f64::NAN, y: 1.0, x_err: f64::NAN, y_err: f64::INFINITY };
        let all_nan = Series { band: true, line: Line::Straight, ..Series::scatter("s", 0, vec![nan, nan]) };
        for series in [vec![], vec![all_nan], vec![Series::scatter("empty", 1, vec![])]] {
            let r = xy_chart(&frame, &series).unwrap();
            assert!(r.svg.contains("no data"));
            decode_png(&r.png);
        }
        // Extreme but finite values: drawn, no panic.
        let far = [1e308, -1e308, 1e-300, 0.0].map(|v| Xy { x: v, y: -v, x_err: 1e308, y_err: 0.0 });
        xy_chart(&frame, &[Series::scatter("far", 0, far.to_vec())]).unwrap();
        // NaN whiskers and a single point: drawn, no panic.
        let one = Xy { x: 2.0, y: 3.0, x_err: f64::NAN, y_err: -1.0 };
        assert!(!xy_chart(&frame, &[Series::scatter("one", 0, vec![one, nan])]).unwrap().svg.contains("no data"));
        for bars in [vec![], vec![Bar { label: "nan".into(), value: f64::NAN, err: f64::NAN, color: 0 }]] {
            let r = hbar_chart(&frame, &bars).unwrap();
            assert!(r.svg.contains("no data"));
            assert_eq!(decode_png(&r.png).0, svg_size(&r.svg).0);
        }
        let bars = [
            Bar { label: "ok".into(), value: -2.0, err: 0.5, color: 0 },
            Bar { label: "inf".into(), value: f64::INFINITY, err: 1.0, color: 1 },
        ];
        let r = hbar_chart(&frame, &bars).unwrap();
        assert!(r.svg.contains(">\nok\n<") && r.svg.contains(">\ninf\n<") && !r.svg.contains("no data"));
    }

    #[test]
    fn labels_without_room_are_listed_in_the_legend_column() {
        let frame = Frame { title: "crowd".into(), ..Frame::default() };
        // 40 labelled points about 10 px apart (an unlabelled far point squeezes them together).
        let pts = (0..40).map(|i| Xy { x: (i % 5) as f64 * 1.8, y: (i / 5) as f64 * 2.4, ..Xy::default() }).collect();
        let mut crowd = Series::scatter("crowd", 2, pts);
        crowd.labels = (0..40).map(|i| format!("p{i}")).collect();
        let far = Series::scatter("far", 3, vec![Xy { x: 100.0, y: 100.0, ..Xy::default() }]);
        let r = xy_chart(&frame, &[crowd, far]).unwrap();
        assert!(r.svg.contains("Not labelled (crowded):"));
        let drawn = (0..40).filter(|i| r.svg.contains(&format!(">\np{i}\n<"))).count();
        let listed = (0..40).filter(|i| r.svg.contains(&format!(">\np{i} ("))).count();
        let more: usize = r.svg.split("… and ").nth(1).map_or(0, |t| t.split(' ').next().unwrap().parse().unwrap());
        assert!(listed > 0);
        assert_eq!(drawn + listed + more, 40, "drawn {drawn}, listed {listed}, more {more}");
    }

    #[test]
    fn long_text_is_shortened_to_fit() {
        font::register().unwrap();
        let long = "a very long legend entry that cannot fit";
        let short = fit(long, SMALL_PX, 80).unwrap();
        assert!(short.ends_with('…') && short.len() < long.len());
        assert!(measure(&short, SMALL_PX).unwrap().0 <= 80);
        assert_eq!(fit("ok", SMALL_PX, 80).unwrap(), "ok");
    }
}
