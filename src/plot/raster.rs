//! The PNG backend: plotters' bitmap backend with our own text rasterizer.
//!
//! plotters 0.3.7 draws ab_glyph text without the glyphs' side bearings (so letters sit
//! unevenly: "con v1") and with the glyphs a little above where its anchors say. This backend
//! delegates everything to [`BitMapBackend`] but draws text itself with the embedded font: each
//! glyph at its caret position plus bearing and kerning, the capital letters centred in the
//! text box that plotters lays out (the box is the same, so layouts do not change).

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, GlyphId, PxScale, ScaleFont, point};
use plotters::prelude::*;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind, FontTransform,
};

use super::FONT;

type Error = <BitMapBackend<'static> as DrawingBackend>::ErrorType;
type Failed = DrawingErrorKind<Error>;

fn font() -> Option<&'static FontRef<'static>> {
    static PARSED: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    PARSED.get_or_init(|| FontRef::try_from_slice(FONT).ok()).as_ref()
}

/// An RGB bitmap with correctly placed text.
pub(super) struct Raster<'a>(pub(super) BitMapBackend<'a>);

impl DrawingBackend for Raster<'_> {
    type ErrorType = Error;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), Failed> {
        self.0.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), Failed> {
        self.0.present()
    }

    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Result<(), Failed> {
        self.0.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), Failed> {
        self.0.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), Failed> {
        self.0.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), Failed> {
        self.0.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), Failed> {
        self.0.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), Failed> {
        self.0.fill_polygon(vert, style)
    }

    fn blit_bitmap(&mut self, pos: BackendCoord, size: (u32, u32), src: &[u8]) -> Result<(), Failed> {
        self.0.blit_bitmap(pos, size, src)
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), Failed> {
        let color = style.color();
        let Some(font) = font() else {
            // Unreachable once the font registered with plotters (same bytes); plotters' own
            // rasterizer is the fallback.
            return self.0.draw_text(text, style, pos);
        };
        if color.alpha == 0.0 || text.is_empty() {
            return Ok(());
        }
        let size = style.size() as f32;
        let scaled = font.as_scaled(PxScale::from(size));
        // Width as plotters lays it out (advances and kerning), height its box of size / 1.24.
        let mut width = 0.0;
        let mut prev: Option<GlyphId> = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            width += prev.map_or(0.0, |p| scaled.kern(p, id)) + scaled.h_advance(id);
            prev = Some(id);
        }
        let height = size / 1.24;
        let left = match style.anchor().h_pos {
            HPos::Left => 0.0,
            HPos::Center => -width / 2.0,
            HPos::Right => -width,
        };
        let top = match style.anchor().v_pos {
            VPos::Top => 0.0,
            VPos::Center => -height / 2.0,
            VPos::Bottom => -height,
        };
        // Capital letters centred in the box.
        let cap =
            font.outline_glyph(scaled.scaled_glyph('H')).map_or(height * 0.75, |g| g.px_bounds().height());
        let baseline = top + (height + cap) / 2.0;
        let transform = style.transform();
        let (w, h) = self.get_size();
        let mut caret = left;
        let mut prev: Option<GlyphId> = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            caret += prev.map_or(0.0, |p| scaled.kern(p, id));
            let glyph = id.with_scale_and_position(PxScale::from(size), point(caret, baseline));
            if let Some(outline) = font.outline_glyph(glyph) {
                let bounds = outline.px_bounds();
                let mut pixels = Vec::new();
                outline.draw(|x, y, coverage| pixels.push((x, y, coverage)));
                for (x, y, coverage) in pixels {
                    let (dx, dy) = (bounds.min.x as i32 + x as i32, bounds.min.y as i32 + y as i32);
                    let (dx, dy) = match transform {
                        FontTransform::None => (dx, dy),
                        _ => transform.transform(dx, dy),
                    };
                    let (px, py) = (pos.0 + dx, pos.1 + dy);
                    if coverage > 0.0 && px >= 0 && py >= 0 && (px as u32) < w && (py as u32) < h {
                        let alpha = color.alpha * f64::from(coverage.min(1.0));
                        self.0.draw_pixel((px, py), BackendColor { alpha, rgb: color.rgb })?;
                    }
                }
            }
            caret += scaled.h_advance(id);
            prev = Some(id);
        }
        Ok(())
    }
}
