//! PNG text, drawn glyph by glyph. plotters 0.3.7 draws ab_glyph text without each glyph's left side
//! bearing and with the pen rounded per glyph, so PNG letters come out unevenly spaced ("SYN THETIC");
//! this wrapper around the bitmap backend draws text itself (pen kept in fractions of a pixel, bearings
//! and kerning applied) and passes everything else through.
//!
//! Sizes and anchors follow the SVG that plotters writes for the same chart: the em is the style size /
//! 1.24 (the SVG's `font-size`), the layout box is one em high, and the baseline sits 0.76 em below its top.

use super::font;
use ab_glyph::{point, Font, PxScale, ScaleFont};
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind};

/// plotters' font size per em (its SVG writes `font-size` = size / 1.24).
const SIZE_PER_EM: f64 = 1.24;
/// Baseline below the top of the layout box, in em (the SVG's `dy="0.76em"`).
const BASELINE_EM: f32 = 0.76;

/// A backend whose text is drawn by [`PngText::draw_text`] instead of plotters' ab_glyph code.
pub struct PngText<B>(pub B);

impl<B: DrawingBackend> DrawingBackend for PngText<B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.fill_polygon(vert, style)
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let Some(font) = font::glyphs() else {
            return Err(DrawingErrorKind::FontError(Box::new(std::io::Error::other("the chart font did not load"))));
        };
        let em = (style.size() / SIZE_PER_EM) as f32;
        let scale = PxScale::from(em * font.height_unscaled() / font.units_per_em().unwrap_or(2048.0));
        let scaled = font.as_scaled(scale);
        let mut glyphs = Vec::new();
        let mut pen = 0f32;
        let mut prev = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = prev {
                pen += scaled.kern(p, id);
            }
            glyphs.push(id.with_scale_and_position(scale, point(pen, BASELINE_EM * em)));
            pen += scaled.h_advance(id);
            prev = Some(id);
        }
        let (width, height) = (pen.round() as i32, em.round() as i32);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Center => -width / 2,
            HPos::Right => -width,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let turn = style.transform();
        let mut pixels = Vec::new();
        for glyph in glyphs {
            if let Some(outline) = font.outline_glyph(glyph) {
                let bounds = outline.px_bounds();
                let (left, top) = (bounds.min.x.round() as i32, bounds.min.y.round() as i32);
                outline.draw(|x, y, coverage| pixels.push((left + x as i32, top + y as i32, coverage)));
            }
        }
        for (x, y, coverage) in pixels.into_iter().filter(|p| p.2 > 0.0) {
            let (x, y) = turn.transform(x + dx, y + dy);
            let alpha = color.alpha * f64::from(coverage.min(1.0));
            self.0.draw_pixel((pos.0 + x, pos.1 + y), BackendColor { alpha, rgb: color.rgb })?;
        }
        Ok(())
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        self.0.estimate_text_size(text, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        (iw, ih): (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.blit_bitmap(pos, (iw, ih), src)
    }
}
