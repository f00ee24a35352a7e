//! Horizontal bars with CI whiskers, one row per bar, so long method names fit on the left.

use super::{
    color, draw_header, draw_no_data, fit, header_width, measure, message, render, text_style, Axis, Chart, Frame,
    Rendered, AXIS, AXIS_DESC_PX, GRID, INK, TICK_PX,
};
use crate::error::{ReportError, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One bar: label, value, CI half-width, colour index.
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub err: f64,
    pub color: usize,
}

impl Bar {
    /// The CI half-width to draw: 0 when missing, negative or not finite.
    fn whisker(&self) -> f64 {
        if self.err.is_finite() && self.err > 0.0 {
            self.err
        } else {
            0.0
        }
    }
}

const ROW: i32 = 26;
/// Width of the value axis.
const PLOT_WIDTH: i32 = 560;
const LABELS_MIN: i32 = 60;
const LABELS_MAX: i32 = 360;
/// Bar thickness as a share of a row.
const BAR: f64 = 0.64;
/// Whisker cap half-height.
const CAP: i32 = 4;

/// Horizontal bars with CI whiskers and a zero line; a bar whose value is not finite keeps its row and
/// label but draws nothing.
pub fn hbar_chart(frame: &Frame, bars: &[Bar]) -> Result<Rendered> {
    super::font::register()?;
    let fail = |message| ReportError::Render { chart: frame.title.clone(), format: "layout", message };
    let mut widest = 0;
    for b in bars {
        widest = widest.max(measure(&b.label, TICK_PX).map_err(fail)?.0);
    }
    let labels_px = (widest + 20).clamp(LABELS_MIN, LABELS_MAX);
    let width = header_width(frame, (labels_px + PLOT_WIDTH + 48) as u32)?;
    let height = (super::HEADER_PX + 24 + ROW * bars.len().max(1) as i32 + 64) as u32;
    let finite = || bars.iter().filter(|b| b.value.is_finite());
    let lo = finite().map(|b| b.value - b.whisker()).fold(0.0, f64::min);
    let hi = finite().map(|b| b.value + b.whisker()).fold(0.0, f64::max);
    render(frame, &BarChart { frame, bars, x: Axis::nice(lo, hi), labels_px, size: (width, height) })
}

struct BarChart<'a> {
    frame: &'a Frame,
    bars: &'a [Bar],
    x: Axis,
    labels_px: i32,
    size: (u32, u32),
}

impl Chart for BarChart<'_> {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> std::result::Result<(), String> {
        let body = draw_header(root, self.frame)?;
        let (xlo, xhi) = (self.x.lo, self.x.hi);
        let rows = self.bars.len().max(1) as f64;
        let row_axis = Axis { ticks: Vec::new(), lo: 0.0, hi: rows };
        let mut chart = ChartBuilder::on(&body)
            .margin(12)
            .margin_right(28)
            .x_label_area_size(56)
            .y_label_area_size(self.labels_px)
            .build_cartesian_2d(self.x.clone(), row_axis)
            .map_err(message)?;
        let mut mesh = chart.configure_mesh();
        mesh.disable_y_mesh()
            .bold_line_style(GRID.stroke_width(1))
            .axis_style(AXIS.stroke_width(1))
            .label_style(text_style(TICK_PX, INK))
            .axis_desc_style(text_style(AXIS_DESC_PX, INK))
            .x_desc(self.frame.x_label.clone());
        if !self.frame.y_label.is_empty() {
            mesh.y_desc(self.frame.y_label.clone());
        }
        mesh.draw().map_err(message)?;
        let area = chart.plotting_area();
        area.draw(&Rectangle::new([(xlo, 0.0), (xhi, rows)], AXIS.stroke_width(1))).map_err(message)?;
        for (i, b) in self.bars.iter().enumerate() {
            let yc = rows - i as f64 - 0.5;
            let (px, py) = chart.backend_coord(&(xlo, yc));
            let style = text_style(TICK_PX, INK).pos(Pos::new(HPos::Right, VPos::Center));
            root.draw(&Text::new(fit(&b.label, TICK_PX, self.labels_px - 16)?, (px - 8, py), style))
                .map_err(message)?;
            if !b.value.is_finite() {
                continue;
            }
            let (v, e) = (b.value, b.whisker());
            let bar = [(v.min(0.0), yc - BAR / 2.0), (v.max(0.0), yc + BAR / 2.0)];
            area.draw(&Rectangle::new(bar, color(b.color).filled())).map_err(message)?;
            if e > 0.0 {
                let ends = [(v - e, yc), (v + e, yc)];
                area.draw(&PathElement::new(ends.to_vec(), INK.stroke_width(1))).map_err(message)?;
                for end in ends {
                    let cap = EmptyElement::at(end) + PathElement::new(vec![(0, -CAP), (0, CAP)], INK.stroke_width(1));
                    area.draw(&cap).map_err(message)?;
                }
            }
        }
        area.draw(&PathElement::new(vec![(0.0, 0.0), (0.0, rows)], AXIS.stroke_width(1))).map_err(message)?;
        if !self.bars.iter().any(|b| b.value.is_finite()) {
            draw_no_data(root, area.get_pixel_range())?;
        }
        Ok(())
    }
}
