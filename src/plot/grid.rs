//! Grids of small images with captions (conv filters, feature maps, sample inputs).

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Chart, SMALL_SIZE, err, font, text_width, titled};
use crate::error::{Error, Result};

/// Space between cells and around the grid, in pixels.
const GAP: u32 = 8;
/// Height of a caption line under each image.
const CAPTION: u32 = 18;

/// One image of an [`ImageGrid`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GridImage {
    /// Caption under the image (none if empty; shortened with `…` if wider than the cell).
    pub label: String,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// `channels × height × width` values, channel-major like Burn's `[C, H, W]` tensors
    /// (`data[(c * height + y) * width + x]`), any range: they are stretched to black..white.
    pub data: Vec<f32>,
}

impl GridImage {
    /// A grey image from `height × width` values.
    pub fn grey(label: impl Into<String>, width: usize, height: usize, data: Vec<f32>) -> Self {
        Self { label: label.into(), width, height, channels: 1, data }
    }

    /// A colour image from `3 × height × width` values (red plane, green plane, blue plane).
    pub fn rgb(label: impl Into<String>, width: usize, height: usize, data: Vec<f32>) -> Self {
        Self { label: label.into(), width, height, channels: 3, data }
    }

    fn check(&self) -> Result<()> {
        let ok = matches!(self.channels, 1 | 3)
            && self.width > 0
            && self.height > 0
            && self.data.len() == self.channels * self.width * self.height;
        if ok {
            return Ok(());
        }
        Err(Error::invalid(
            "grid image",
            format!(
                "`{}`: {} values for {} channel(s) of {}×{} (channels must be 1 or 3)",
                self.label,
                self.data.len(),
                self.channels,
                self.width,
                self.height
            ),
        ))
    }

    /// The smallest and largest finite value.
    fn span(&self) -> (f32, f32) {
        self.data
            .iter()
            .filter(|v| v.is_finite())
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)))
    }
}

/// A grid of small images, `cols` per row, each scaled (nearest neighbour, aspect kept) into a
/// square cell with its caption below.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageGrid {
    /// Title above the grid (none if empty).
    pub title: String,
    /// The images, row by row.
    pub images: Vec<GridImage>,
    /// Images per row; 0 picks a near-square grid.
    pub cols: usize,
    /// Side of a cell in pixels at the natural size ([`Self::size`]); other sizes scale it.
    pub cell: u32,
    /// Stretch all images by one common min..max (to compare magnitudes, e.g. the filters of a
    /// layer) instead of each by its own.
    pub shared_range: bool,
}

impl Default for ImageGrid {
    fn default() -> Self {
        Self { title: String::new(), images: Vec::new(), cols: 0, cell: 64, shared_range: false }
    }
}

super::chart_methods!(ImageGrid);

impl ImageGrid {
    /// A grid of `images`, `cols` per row (0: near-square), 64-pixel cells.
    pub fn new(title: impl Into<String>, images: Vec<GridImage>, cols: usize) -> Self {
        Self { title: title.into(), images, cols, ..Self::default() }
    }

    /// Columns and rows of the grid.
    fn layout(&self) -> (usize, usize) {
        let n = self.images.len().max(1);
        let cols = if self.cols == 0 { (n as f64).sqrt().ceil() as usize } else { self.cols.min(n) };
        (cols, n.div_ceil(cols))
    }

    fn caption_h(&self) -> u32 {
        if self.images.iter().all(|i| i.label.is_empty()) { 0 } else { CAPTION }
    }

    /// `label`, cut with `…` to fit in `width` pixels.
    fn fit<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, label: &str, width: u32) -> Result<String> {
        let style = font(SMALL_SIZE);
        if text_width(area, label, &style)? <= width {
            return Ok(label.to_string());
        }
        let chars: Vec<char> = label.chars().collect();
        for keep in (0..chars.len()).rev() {
            let s: String = chars[..keep].iter().collect::<String>() + "…";
            if text_width(area, &s, &style)? <= width {
                return Ok(s);
            }
        }
        Ok(String::new())
    }
}

impl Chart for ImageGrid {
    fn natural_size(&self) -> (u32, u32) {
        let (cols, rows) = self.layout();
        let cell = self.cell.max(8);
        let w = GAP + cols as u32 * (cell + GAP);
        let h = 34 + GAP + rows as u32 * (cell + self.caption_h() + GAP);
        (w.max(200), h)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        for image in &self.images {
            image.check()?;
        }
        let area = titled(root, &self.title)?;
        let (cols, rows) = self.layout();
        let (w, h) = area.dim_in_pixel();
        let caption = self.caption_h();
        let cell_w = w.saturating_sub(GAP) / cols as u32;
        let cell_h = h.saturating_sub(GAP) / rows as u32;
        let cell = cell_w.min(cell_h.saturating_sub(caption)).saturating_sub(GAP);
        if cell < 2 {
            return Err(Error::invalid(
                "image grid",
                format!("{w}×{h} pixels are too small for {rows}×{cols} images"),
            ));
        }
        // Centre the grid horizontally.
        let left = (w - cols as u32 * (cell + GAP) - GAP) / 2 + GAP;
        let shared = self
            .images
            .iter()
            .map(GridImage::span)
            .fold((f32::INFINITY, f32::NEG_INFINITY), |a, b| (a.0.min(b.0), a.1.max(b.1)));
        for (k, image) in self.images.iter().enumerate() {
            let (r, c) = (k / cols, k % cols);
            let x0 = (left + c as u32 * (cell + GAP)) as i32;
            let y0 = (GAP + r as u32 * (cell + caption + GAP)) as i32;
            // Scale the longer side to the cell, keep the aspect, centre in the cell.
            let longer = image.width.max(image.height) as f64;
            let (tw, th) = (
                ((cell as f64 * image.width as f64 / longer).round() as i32).max(1),
                ((cell as f64 * image.height as f64 / longer).round() as i32).max(1),
            );
            let (ox, oy) = (x0 + (cell as i32 - tw) / 2, y0 + (cell as i32 - th) / 2);
            let (lo, hi) = if self.shared_range { shared } else { image.span() };
            let scale = if hi > lo { 1.0 / (hi - lo) } else { 0.0 };
            let level = |v: f32| {
                if v.is_finite() { ((v - lo) * scale * 255.0).round().clamp(0.0, 255.0) as u8 } else { 0 }
            };
            let plane = image.width * image.height;
            let (iw, ih) = (image.width as i32, image.height as i32);
            // One rectangle per target block; when the image is larger than the cell, source
            // pixels falling in an already drawn block are skipped (nearest neighbour).
            let mut last_y = -1;
            for y in 0..ih {
                let (py0, py1) = (oy + y * th / ih, oy + (y + 1) * th / ih);
                if py1 == py0 || py0 == last_y {
                    continue;
                }
                last_y = py0;
                let mut last_x = -1;
                for x in 0..iw {
                    let (px0, px1) = (ox + x * tw / iw, ox + (x + 1) * tw / iw);
                    if px1 == px0 || px0 == last_x {
                        continue;
                    }
                    last_x = px0;
                    let i = y as usize * image.width + x as usize;
                    let colour = if image.channels == 1 {
                        let g = level(image.data[i]);
                        RGBColor(g, g, g)
                    } else {
                        RGBColor(
                            level(image.data[i]),
                            level(image.data[plane + i]),
                            level(image.data[2 * plane + i]),
                        )
                    };
                    area.draw(&Rectangle::new([(px0, py0), (px1, py1)], colour.filled())).map_err(err)?;
                }
            }
            area.draw(&Rectangle::new([(ox - 1, oy - 1), (ox + tw, oy + th)], RGBColor(160, 160, 160)))
                .map_err(err)?;
            if caption > 0 && !image.label.is_empty() {
                let text = Self::fit(&area, &image.label, cell + GAP - 2)?;
                let pos = (x0 + cell as i32 / 2, y0 + cell as i32 + 3);
                let style = font(SMALL_SIZE).pos(Pos::new(HPos::Center, VPos::Top));
                area.draw(&Text::new(text, pos, style)).map_err(err)?;
            }
        }
        Ok(())
    }
}
