//! Charts as SVG text and PNG bytes: line charts (linear or log axes, legend), bar charts (linear
//! or log scale), heatmaps (with a colour scale) and grids of small images.
//!
//! Drawn with [`plotters`] (its SVG and bitmap backends). All text is laid out and, in PNGs,
//! rasterized with an embedded font (a subset of DejaVu Sans, `assets/fonts/`), so charts look
//! the same on every machine and need no system fonts; SVGs name the font family `sans-serif`
//! and leave the glyphs to the viewer.
//!
//! The module draws what it is given and knows nothing of runs or files: each chart is a plain
//! struct with public fields, and returns an SVG string or PNG bytes for the caller to write.
//! Every chart has the same four methods: `size()` (the size it is laid out for), `svg(w, h)`,
//! `png(w, h)` and `render()` (both at `size()`).

use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;
use plotters::style::FontStyle;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Error, Result};

mod bar;
mod grid;
mod heatmap;
mod line;
mod raster;
#[cfg(test)]
mod tests;

pub use bar::BarChart;
pub use grid::{GridImage, ImageGrid};
pub use heatmap::{Heatmap, viridis_rgb};
pub use line::{LineChart, Series, training_curves};

/// A palette for several series or bars (matplotlib's tab10).
pub const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// The embedded font (DejaVu Sans, subset; licence in `assets/fonts/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-subset.ttf");

/// The family name the font is registered under, and the one SVG text asks for.
const FAMILY: &str = "sans-serif";

/// The largest side of a chart in pixels (a guard against absurd sizes eating memory).
const MAX_SIDE: u32 = 16_384;

/// Text sizes in plotters' units (SVG `font-size` is this / 1.24).
const TITLE_SIZE: f64 = 20.0;
const DESC_SIZE: f64 = 16.0;
const LABEL_SIZE: f64 = 15.0;
const SMALL_SIZE: f64 = 13.0;

const TEXT: RGBColor = RGBColor(34, 34, 34);
const AXIS: RGBColor = RGBColor(90, 90, 90);
const GRID: RGBColor = RGBColor(225, 225, 225);

/// `s` with `&`, `<` and `>` escaped, for the HTML pages that embed the charts.
pub fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A value as a short label with about three significant digits: `61.7K`, `129M`, `1.23G`,
/// `512`, `0.912`, `1.5e-4`.
pub fn compact(v: f64) -> String {
    let trim = |s: String| {
        if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
    };
    let sig3 = |x: f64| {
        let d = if x.abs() >= 99.95 {
            0
        } else if x.abs() >= 9.995 {
            1
        } else {
            2
        };
        trim(format!("{x:.d$}"))
    };
    match v.abs() {
        a if !a.is_finite() => format!("{v}"),
        a if a >= 999.5e6 => format!("{}G", sig3(v / 1e9)),
        a if a >= 999.5e3 => format!("{}M", sig3(v / 1e6)),
        a if a >= 1e4 => format!("{}K", sig3(v / 1e3)),
        a if a >= 1.0 => sig3(v),
        a if a >= 1e-3 || a == 0.0 => trim(format!("{v:.3}")),
        _ => {
            let s = format!("{v:.1e}");
            let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
            format!("{}e{e}", trim(m.to_string()))
        }
    }
}

/// Whether positive values span so many orders of magnitude (largest / smallest > 100) that a
/// linear axis would hide the small ones; what [`BarChart::new`] uses to pick a log scale.
pub fn wants_log(values: &[f64]) -> bool {
    let pos = values.iter().copied().filter(|v| v.is_finite() && *v > 0.0);
    let (lo, hi) = pos.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    hi > 0.0 && hi / lo > 100.0
}

/// An axis tick label: like [`compact`], but `1e-5` rather than `0.000` for tiny values and
/// up to four significant digits in between (`0.25`, `2.5`, `1000`).
fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a >= 1e4 || (a < 1e-3 && a > 0.0) || !a.is_finite() {
        return compact(v);
    }
    if a < 1e-12 {
        return "0".into();
    }
    let digits = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// Registers the embedded font with plotters once.
fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok =
        *REGISTERED.get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok { Ok(()) } else { Err(Error::invalid("chart font", "the embedded font could not be parsed")) }
}

/// The embedded font at `size`, in the text colour.
fn font(size: f64) -> TextStyle<'static> {
    FontDesc::new(FontFamily::Name(FAMILY), size, FontStyle::Normal).color(&TEXT)
}

fn rgb([r, g, b]: [u8; 3]) -> RGBColor {
    RGBColor(r, g, b)
}

/// A plotters error as ours.
fn err(e: impl std::fmt::Display) -> Error {
    Error::invalid("chart", e.to_string())
}

/// Width of `text` in pixels when drawn in `style` on `area`.
fn text_width<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    style: &TextStyle,
) -> Result<u32> {
    Ok(area.estimate_text_size(text, style).map_err(err)?.0)
}

/// Clears `root` to white, draws `title` centred on top and returns the area below it.
fn titled<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, title: &str) -> Result<DrawingArea<DB, Shift>> {
    root.fill(&WHITE).map_err(err)?;
    if title.is_empty() {
        return Ok(root.margin(6, 0, 0, 0));
    }
    let (w, _) = root.dim_in_pixel();
    root.draw(&Text::new(
        title.to_string(),
        (w as i32 / 2, 10),
        font(TITLE_SIZE).pos(Pos::new(HPos::Center, VPos::Top)),
    ))
    .map_err(err)?;
    Ok(root.margin(34, 0, 0, 0))
}

/// Text centred vertically on `pos`, aligned horizontally by `h`.
fn text_mid<'a>(text: &str, pos: (i32, i32), style: &TextStyle<'a>, h: HPos) -> Text<'a, (i32, i32), String> {
    Text::new(text.to_string(), pos, style.pos(Pos::new(h, VPos::Center)))
}

/// A linear axis whose ticks sit exactly at `ticks` (the centres of categories: bars, heatmap
/// cells), labelled by the chart's formatter.
#[derive(Clone)]
struct Fixed {
    range: std::ops::Range<f64>,
    ticks: Vec<f64>,
}

impl Ranged for Fixed {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, (a, b): (i32, i32)) -> i32 {
        let t = (v - self.range.start) / (self.range.end - self.range.start);
        a + ((b - a) as f64 * t).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() { Vec::new() } else { self.ticks.clone() }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.range.clone()
    }
}

/// What every chart implements; the public methods come from [`chart_methods!`].
trait Chart {
    /// The size the chart is laid out for, in pixels.
    fn natural_size(&self) -> (u32, u32);
    /// Draws the chart on `root` (the whole picture).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>;
}

fn check_size(width: u32, height: u32) -> Result<()> {
    if !(16..=MAX_SIDE).contains(&width) || !(16..=MAX_SIDE).contains(&height) {
        return Err(Error::invalid(
            "chart size",
            format!("{width}×{height} pixels; each side must be 16 to {MAX_SIDE}"),
        ));
    }
    Ok(())
}

fn svg_of(chart: &impl Chart, width: u32, height: u32) -> Result<String> {
    check_size(width, height)?;
    ensure_font()?;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        chart.draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

fn png_of(chart: &impl Chart, width: u32, height: u32) -> Result<Vec<u8>> {
    check_size(width, height)?;
    ensure_font()?;
    let mut pixels = vec![255u8; width as usize * height as usize * 3];
    {
        let root =
            raster::Raster(BitMapBackend::with_buffer(&mut pixels, (width, height))).into_drawing_area();
        chart.draw(&root)?;
        root.present().map_err(err)?;
    }
    let mut out = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut out),
        &pixels,
        width,
        height,
        image::ExtendedColorType::Rgb8,
    )
    .map_err(err)?;
    Ok(out)
}

/// The public rendering methods, the same for every chart.
macro_rules! chart_methods {
    ($t:ty) => {
        impl $t {
            /// The size in pixels (width, height) the chart is laid out for; what [`Self::render`]
            /// uses.
            pub fn size(&self) -> (u32, u32) {
                crate::plot::Chart::natural_size(self)
            }

            /// The chart as an SVG document of `width`×`height` pixels.
            pub fn svg(&self, width: u32, height: u32) -> crate::error::Result<String> {
                crate::plot::svg_of(self, width, height)
            }

            /// The chart as an RGB PNG of `width`×`height` pixels, text drawn with the embedded font.
            pub fn png(&self, width: u32, height: u32) -> crate::error::Result<Vec<u8>> {
                crate::plot::png_of(self, width, height)
            }

            /// The chart as SVG and PNG, both at [`Self::size`].
            pub fn render(&self) -> crate::error::Result<(String, Vec<u8>)> {
                let (w, h) = self.size();
                Ok((self.svg(w, h)?, self.png(w, h)?))
            }
        }
    };
}
use chart_methods;
