//! A bitmap backend whose text rendering places glyphs at their side bearings.
//!
//! plotters 0.3.7's `ab_glyph` text drawing puts each glyph's ink box at the pen position,
//! dropping the glyph's left side bearing, so narrow glyphs drift left ("1 0" for "10"). This
//! wrapper forwards everything to [`BitMapBackend`] and draws text itself with `ab_glyph`, using
//! the same layout box (size, anchor, rotation) as plotters so labels stay where plotters put them.

use ab_glyph::{point, Font, FontRef, GlyphId, ScaleFont};
use plotters::backend::{BitMapBackend, DrawingBackend, RGBPixel};
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind,
};

/// The error type of the wrapped backend.
type Error = <BitMapBackend<'static, RGBPixel> as DrawingBackend>::ErrorType;

/// [`BitMapBackend`] over an RGB buffer, with text drawn by [`Canvas::draw_text`].
pub(crate) struct Canvas<'a> {
    inner: BitMapBackend<'a, RGBPixel>,
    font: FontRef<'static>,
}

impl<'a> Canvas<'a> {
    /// Wraps `inner`; all text is drawn in `font`.
    pub(crate) fn new(inner: BitMapBackend<'a, RGBPixel>, font: FontRef<'static>) -> Self {
        Canvas { inner, font }
    }
}

impl DrawingBackend for Canvas<'_> {
    type ErrorType = Error;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Error>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Error>> {
        self.inner.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<Error>> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Error>> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Error>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Error>> {
        self.inner.blit_bitmap(pos, size, src)
    }

    /// plotters-backend's default `draw_text`, with the glyphs rasterised by [`glyph_pixels`].
    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Error>> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let ((min_x, min_y), (max_x, max_y)) = style
            .layout_box(text)
            .map_err(|e| DrawingErrorKind::FontError(Box::new(e)))?;
        let (width, height) = (max_x - min_x, max_y - min_y);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -width,
            HPos::Center => -width / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let trans = style.transform();
        let (w, h) = self.get_size();
        for (x, y, coverage) in glyph_pixels(&self.font, style.size() as f32, text) {
            let (x, y) = trans.transform(x + dx - min_x, y + dy - min_y);
            let (x, y) = (pos.0 + x, pos.1 + y);
            if x >= 0 && x < w as i32 && y >= 0 && y < h as i32 {
                let c = BackendColor {
                    alpha: color.alpha * f64::from(coverage),
                    rgb: color.rgb,
                };
                self.inner.draw_pixel((x, y), c)?;
            }
        }
        Ok(())
    }
}

/// The pixels `(x, y, coverage)` of `text` at `size` px, relative to the text's origin.
///
/// Horizontal layout as plotters' (advances plus kerning), each glyph's ink placed at its own
/// bounds (which include the side bearing); vertically the baseline is at `size / 2`, as in
/// plotters, so its layout boxes still fit.
fn glyph_pixels(font: &FontRef<'static>, size: f32, text: &str) -> Vec<(i32, i32, f32)> {
    let scaled = font.as_scaled(size);
    let mut out = Vec::new();
    let mut pen = 0f32;
    let mut prev: Option<GlyphId> = None;
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = prev {
            pen += scaled.kern(p, id);
        }
        let glyph = id.with_scale_and_position(size, point(pen, 0.0));
        if let Some(outlined) = scaled.outline_glyph(glyph) {
            let bounds = outlined.px_bounds();
            let x0 = bounds.min.x as i32;
            let y0 = (size / 2.0 + bounds.min.y) as i32;
            outlined.draw(|x, y, coverage| {
                if coverage > 0.0 {
                    out.push((x0 + x as i32, y0 + y as i32, coverage.min(1.0)));
                }
            });
        }
        pen += scaled.h_advance(id);
        prev = Some(id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn font() -> FontRef<'static> {
        FontRef::try_from_slice(include_bytes!("../assets/DejaVuSans.ttf")).expect("font")
    }

    /// Leftmost and rightmost inked columns.
    fn ink_columns(pixels: &[(i32, i32, f32)]) -> (i32, i32) {
        let xs = pixels.iter().filter(|p| p.2 > 0.5).map(|p| p.0);
        (xs.clone().min().unwrap(), xs.max().unwrap())
    }

    #[test]
    fn glyphs_keep_their_left_side_bearing() {
        // The ink of "1" starts at its left side bearing (~9 px at this size); plotters' own
        // drawing starts it at x = 0.
        let f = font();
        let bearing = f.as_scaled(100.0).h_side_bearing(f.glyph_id('1'));
        assert!(bearing > 5.0, "bearing {bearing}");
        let (left, _) = ink_columns(&glyph_pixels(&f, 100.0, "1"));
        assert!(
            (left - bearing.round() as i32).abs() <= 1,
            "left {left}, bearing {bearing}"
        );
    }

    #[test]
    fn second_glyph_starts_one_advance_later() {
        let f = font();
        let one = glyph_pixels(&f, 100.0, "1");
        let ten = glyph_pixels(&f, 100.0, "10");
        let zero_alone = ink_columns(&glyph_pixels(&f, 100.0, "0"));
        let (_, ten_right) = ink_columns(&ten);
        let advance = f.as_scaled(100.0).h_advance(f.glyph_id('1'));
        // The "0" of "10" is the lone "0" shifted by the advance of "1" (no kerning pair here).
        let expected = zero_alone.1 + advance.round() as i32;
        assert!(
            (ten_right - expected).abs() <= 1,
            "{ten_right} vs {expected}"
        );
        assert!(ten.len() > one.len());
    }

    #[test]
    fn baseline_is_at_half_the_size() {
        // Plotters' layout boxes assume the baseline at size / 2: "x" sits on it.
        let pixels = glyph_pixels(&font(), 100.0, "x");
        let bottom = pixels
            .iter()
            .filter(|p| p.2 > 0.5)
            .map(|p| p.1)
            .max()
            .unwrap();
        assert!((48..=51).contains(&bottom), "bottom {bottom}");
    }
}
