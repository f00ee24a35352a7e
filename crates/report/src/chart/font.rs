//! The one font of every chart: DejaVu Sans, compiled in (`assets/fonts/`, Bitstream Vera licence), so text
//! is measured and drawn the same on every machine and no system font is needed.

use crate::error::{ReportError, Result};
use ab_glyph::FontRef;
use plotters::style::{register_font, FontStyle};
use std::sync::OnceLock;

/// DejaVu Sans 2.37; see `assets/fonts/README.md` and `LICENSE-DejaVu.txt`.
const DEJAVU_SANS: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/fonts/DejaVuSans.ttf"));

/// The parsed font, registered with plotters as `sans-serif` (every style falls back to it); once per process.
fn loaded() -> Option<&'static FontRef<'static>> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| {
        let font = FontRef::try_from_slice(DEJAVU_SANS).ok()?;
        register_font("sans-serif", FontStyle::Normal, DEJAVU_SANS).ok()?;
        Some(font)
    })
    .as_ref()
}

/// Makes the font available to plotters (for measuring text and for the SVG's layout).
pub fn register() -> Result<()> {
    loaded().map(|_| ()).ok_or(ReportError::Font("the bundled DejaVu Sans is not a font plotters can read"))
}

/// The font's glyphs, for drawing PNG text ([`super::png_text`]).
pub fn glyphs() -> Option<&'static FontRef<'static>> {
    loaded()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bundled_font_registers() {
        super::register().unwrap();
        super::register().unwrap();
        assert!(super::glyphs().is_some());
    }
}
