//! Heatmaps: a matrix of values as coloured cells (viridis), with a colour scale beside it.

use plotters::coord::Shift;
use plotters::coord::ranged1d::Ranged;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::HPos;

use super::{
    AXIS, Chart, Fixed, LABEL_SIZE, SMALL_SIZE, compact, err, font, text_mid, text_width, tick_label, titled,
};
use crate::error::{Error, Result};

/// Width of the colour-scale column in pixels.
const SCALE_W: u32 = 96;

/// A heatmap: `values[row][col]` as a grid of cells coloured on the viridis scale (dark blue =
/// smallest, yellow = largest), row 0 on top, with the colour scale to the right. E.g. a
/// confusion matrix (rows: true class, columns: predicted) or per-layer gradient norms (rows:
/// layers, columns: steps).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Heatmap {
    /// Title above the chart (none if empty).
    pub title: String,
    /// Description under the columns.
    pub x_label: String,
    /// Description beside the rows.
    pub y_label: String,
    /// One label per row (empty: row numbers from 0); thinned out when rows are too close.
    pub row_labels: Vec<String>,
    /// One label per column (empty: column numbers from 0); thinned out likewise.
    pub col_labels: Vec<String>,
    /// The matrix, one inner vector per row, all as long. Non-finite cells are drawn grey.
    pub values: Vec<Vec<f64>>,
    /// Logarithmic colour scale (for values over orders of magnitude, e.g. gradient norms);
    /// cells ≤ 0 then are drawn grey.
    pub log_scale: bool,
    /// Fixed colour-scale range; `None` spans the values.
    pub range: Option<(f64, f64)>,
    /// Print each value in its cell (where the cell is large enough for the text).
    pub annotate: bool,
}

super::chart_methods!(Heatmap);

/// The viridis colour map at `t` in 0..=1 as RGB bytes (for overlays drawn outside a chart).
pub fn viridis_rgb(t: f64) -> [u8; 3] {
    let RGBColor(r, g, b) = viridis(t);
    [r, g, b]
}

/// The viridis colour map at `t` in 0..=1 (piecewise linear through nine samples).
fn viridis(t: f64) -> RGBColor {
    const STOPS: [[f64; 3]; 9] = [
        [68.0, 1.0, 84.0],
        [71.0, 44.0, 122.0],
        [59.0, 81.0, 139.0],
        [44.0, 113.0, 142.0],
        [33.0, 144.0, 141.0],
        [39.0, 173.0, 129.0],
        [92.0, 200.0, 99.0],
        [170.0, 220.0, 50.0],
        [253.0, 231.0, 37.0],
    ];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 } * 8.0;
    let i = (t.floor() as usize).min(7);
    let f = t - i as f64;
    let c = |k: usize| (STOPS[i][k] + f * (STOPS[i + 1][k] - STOPS[i][k])).round() as u8;
    RGBColor(c(0), c(1), c(2))
}

const MISSING: RGBColor = RGBColor(200, 200, 200);

impl Heatmap {
    fn shape(&self) -> (usize, usize) {
        (self.values.len(), self.values.first().map_or(0, Vec::len))
    }

    /// The colour scale's range.
    fn scale(&self) -> (f64, f64) {
        let ok = |v: &f64| v.is_finite() && (!self.log_scale || *v > 0.0);
        let (lo, hi) = match self.range {
            Some((a, b)) => (a.min(b), a.max(b)),
            None => self
                .values
                .iter()
                .flatten()
                .copied()
                .filter(ok)
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v))),
        };
        match (lo <= hi, self.log_scale) {
            (false, true) => (1.0, 10.0),
            (false, false) => (0.0, 1.0),
            (true, true) if lo <= 0.0 => ((hi / 1e3).max(f64::MIN_POSITIVE), hi.max(f64::MIN_POSITIVE)),
            (true, true) if lo == hi => (lo / 2.0, hi * 2.0),
            (true, false) if lo == hi => (lo - 0.5, hi + 0.5),
            _ => (lo, hi),
        }
    }

    /// Where `v` lies in the colour scale, 0..=1, or `None` for a grey cell.
    fn position(&self, v: f64, (lo, hi): (f64, f64)) -> Option<f64> {
        if !v.is_finite() || (self.log_scale && v <= 0.0) {
            return None;
        }
        Some(if self.log_scale { (v.ln() - lo.ln()) / (hi.ln() - lo.ln()) } else { (v - lo) / (hi - lo) })
    }

    fn label(labels: &[String], i: usize) -> String {
        labels.get(i).cloned().unwrap_or_else(|| i.to_string())
    }

    /// Centres of every `step`-th of `n` cells, `step` chosen so labels `min_gap` pixels apart
    /// fit in `pixels`.
    fn ticks(n: usize, pixels: u32, min_gap: u32) -> Vec<f64> {
        let step = (n as u32 * min_gap).div_ceil(pixels.max(1)).max(1) as usize;
        (0..n).step_by(step).map(|i| i as f64 + 0.5).collect()
    }

    /// The colour scale: a vertical bar from `range.0` (bottom) to `range.1` (top) with tick
    /// labels on its right, level with the plot (`bottom` pixels above the area's bottom).
    fn colour_scale<DB: DrawingBackend, Y>(
        &self,
        area: &DrawingArea<DB, Shift>,
        y: Y,
        bottom: u32,
    ) -> Result<()>
    where
        Y: Ranged<ValueType = f64>,
    {
        let (_, h) = area.dim_in_pixel();
        let (x0, x1) = (8, 26);
        let (top, low) = (12, h as i32 - 12 - bottom as i32);
        if low <= top {
            return Ok(());
        }
        let steps = (low - top).max(1);
        for k in 0..steps {
            let t = (k as f64 + 0.5) / steps as f64;
            let colour = viridis(t).filled();
            area.draw(&Rectangle::new([(x0, low - k - 1), (x1, low - k)], colour)).map_err(err)?;
        }
        area.draw(&Rectangle::new([(x0, top), (x1, low)], AXIS)).map_err(err)?;
        let range = y.range();
        let mut ticks = y.key_points(if self.log_scale { 10 } else { 6 });
        if ticks.len() < 2 {
            ticks = vec![range.start, range.end];
        }
        let style = font(SMALL_SIZE);
        for v in ticks {
            let py = y.map(&v, (low, top));
            area.draw(&PathElement::new(vec![(x1, py), (x1 + 4, py)], AXIS)).map_err(err)?;
            area.draw(&text_mid(&tick_label(v), (x1 + 7, py), &style, HPos::Left)).map_err(err)?;
        }
        Ok(())
    }
}

impl Chart for Heatmap {
    fn natural_size(&self) -> (u32, u32) {
        let (rows, cols) = self.shape();
        let cell = (480 / cols.max(rows).max(1) as u32).clamp(6, 48);
        let w = 120 + cell * cols.max(1) as u32 + SCALE_W + 40;
        let h = 34 + 80 + cell * rows.max(1) as u32;
        (w.max(360), h.max(200))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let (rows, cols) = self.shape();
        if rows == 0 || cols == 0 || self.values.iter().any(|r| r.len() != cols) {
            return Err(Error::invalid(
                "heatmap",
                "the values must be a non-empty matrix (rows of equal length)",
            ));
        }
        let area = titled(root, &self.title)?;
        let (w, h) = area.dim_in_pixel();
        let (main, scale_area) = area.split_horizontally(w.saturating_sub(SCALE_W));
        let style = font(LABEL_SIZE);
        let mut row_w = 0;
        for i in 0..rows {
            row_w = row_w.max(text_width(&area, &Self::label(&self.row_labels, i), &style)?);
        }
        let mut col_w = 0;
        for j in 0..cols {
            col_w = col_w.max(text_width(&area, &Self::label(&self.col_labels, j), &style)?);
        }
        let y_area = (row_w + 14 + if self.y_label.is_empty() { 0 } else { 24 }).min(w / 3);
        let x_area = if self.x_label.is_empty() { 28 } else { 50 };
        let (plot_w, plot_h) = (w.saturating_sub(SCALE_W + y_area + 24), h.saturating_sub(x_area + 24));
        let xs = Fixed { range: 0.0..cols as f64, ticks: Self::ticks(cols, plot_w, col_w + 8) };
        let ys = Fixed { range: 0.0..rows as f64, ticks: Self::ticks(rows, plot_h, 18) };
        let mut chart = ChartBuilder::on(&main)
            .margin(12)
            .x_label_area_size(x_area)
            .y_label_area_size(y_area)
            .build_cartesian_2d(xs, ys)
            .map_err(err)?;
        let col_label = |x: &f64| Self::label(&self.col_labels, x.floor() as usize);
        let row_label =
            |y: &f64| Self::label(&self.row_labels, (rows - 1).saturating_sub(y.floor() as usize));
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(cols)
            .y_labels(rows)
            .x_label_formatter(&col_label)
            .y_label_formatter(&row_label)
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .label_style(font(LABEL_SIZE))
            .axis_desc_style(font(LABEL_SIZE))
            .axis_style(AXIS)
            .draw()
            .map_err(err)?;
        let range = self.scale();
        let cell = |r: usize, c: usize| {
            let y = (rows - 1 - r) as f64;
            [(c as f64, y), (c as f64 + 1.0, y + 1.0)]
        };
        chart
            .draw_series(self.values.iter().enumerate().flat_map(|(r, row)| {
                row.iter().enumerate().map(move |(c, &v)| {
                    let colour = self.position(v, range).map_or(MISSING, viridis);
                    Rectangle::new(cell(r, c), colour.filled())
                })
            }))
            .map_err(err)?;
        if self.annotate {
            let small = font(SMALL_SIZE);
            let (a, b) = (chart.backend_coord(&(0.0, 1.0)), chart.backend_coord(&(1.0, 0.0)));
            let (cell_w, cell_h) = ((b.0 - a.0).unsigned_abs(), (b.1 - a.1).unsigned_abs());
            for (r, row) in self.values.iter().enumerate() {
                for (c, &v) in row.iter().enumerate() {
                    let text = compact(v);
                    if text_width(&area, &text, &small)? + 4 > cell_w || cell_h < 14 {
                        continue;
                    }
                    let light = self.position(v, range).is_some_and(|t| t > 0.6);
                    let centre = chart.backend_coord(&((c as f64) + 0.5, (rows - 1 - r) as f64 + 0.5));
                    let style = if light { small.color(&BLACK) } else { small.color(&WHITE) };
                    root.draw(&text_mid(&text, centre, &style, HPos::Center)).map_err(err)?;
                }
            }
        }
        if self.log_scale {
            let y: LogCoord<f64> = (range.0..range.1).log_scale().into();
            self.colour_scale(&scale_area, y, x_area)
        } else {
            let y: RangedCoordf64 = (range.0..range.1).into();
            self.colour_scale(&scale_area, y, x_area)
        }
    }
}
