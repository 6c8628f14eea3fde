//! Line charts: several series, linear or log axes, markers, a legend beside the plot.

use plotters::coord::Shift;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::HPos;

use super::{
    AXIS, Chart, DESC_SIZE, GRID, LABEL_SIZE, PALETTE, err, font, rgb, text_mid, text_width, tick_label,
    titled,
};
use crate::error::Result;

/// Series with at most this many points get a marker on every point (so that a single point,
/// e.g. a 1-epoch run, is visible).
const MARKER_MAX: usize = 30;

/// One curve of a [`LineChart`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Legend label; a series with an empty label has no legend entry.
    pub label: String,
    /// `(x, y)` points, drawn in order. Non-finite points (and non-positive ones on a log axis)
    /// are left out.
    pub points: Vec<(f64, f64)>,
    /// RGB colour; `None` takes [`PALETTE`]`[i % 10]` for the `i`-th series of the chart.
    pub color: Option<[u8; 3]>,
    /// Dashed line (d2l draws the training accuracy dashed).
    pub dashed: bool,
}

impl Series {
    /// A solid series in the palette's next colour.
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self { label: label.into(), points, color: None, dashed: false }
    }
}

/// A line chart: `series` against shared axes, with a legend to the right of the plot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LineChart {
    /// Title above the chart (none if empty).
    pub title: String,
    /// Description under the x axis.
    pub x_label: String,
    /// Description beside the y axis.
    pub y_label: String,
    /// The curves.
    pub series: Vec<Series>,
    /// Logarithmic x axis (e.g. a learning-rate sweep).
    pub log_x: bool,
    /// Logarithmic y axis (e.g. a loss over many orders of magnitude).
    pub log_y: bool,
    /// Fixed x range; `None` fits the data (to whole decades on a log axis).
    pub x_range: Option<(f64, f64)>,
    /// Fixed y range; `None` fits the data (to whole decades on a log axis).
    pub y_range: Option<(f64, f64)>,
}

super::chart_methods!(LineChart);

/// d2l's training curves of one run: train loss (solid), train accuracy (dashed) and test
/// accuracy (solid) against the epoch, y from 0. The slices are per epoch and as long as
/// `epochs` (extra values are ignored).
pub fn training_curves(
    title: &str,
    epochs: &[f64],
    train_loss: &[f64],
    train_acc: &[f64],
    test_acc: &[f64],
) -> LineChart {
    let pts = |ys: &[f64]| epochs.iter().copied().zip(ys.iter().copied()).collect::<Vec<_>>();
    let top = [train_loss, train_acc, test_acc]
        .iter()
        .flat_map(|s| s.iter().copied())
        .filter(|v| v.is_finite())
        .fold(1.0f64, f64::max);
    LineChart {
        title: title.to_string(),
        x_label: "epoch".into(),
        y_label: String::new(),
        series: vec![
            Series { color: Some(PALETTE[0]), ..Series::new("train loss", pts(train_loss)) },
            Series { color: Some(PALETTE[3]), dashed: true, ..Series::new("train acc", pts(train_acc)) },
            Series { color: Some(PALETTE[2]), ..Series::new("test acc", pts(test_acc)) },
        ],
        log_x: false,
        log_y: false,
        x_range: None,
        y_range: Some((0.0, (top * 20.0).ceil() / 20.0 + 0.02)),
    }
}

/// The range an axis shows: `fixed`, or the data's span (padded a little on a linear axis,
/// widened to whole decades on a log one).
fn axis_range(fixed: Option<(f64, f64)>, values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    if let Some((lo, hi)) = fixed {
        let (lo, hi) = (lo.min(hi), lo.max(hi));
        return match log {
            true if hi <= 0.0 => (1.0, 10.0),
            true if lo <= 0.0 => (hi / 1e3, hi),
            _ if hi == lo => (lo - 0.5, hi + 0.5),
            _ => (lo, hi),
        };
    }
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return if log { (1.0, 10.0) } else { (0.0, 1.0) };
    }
    if log {
        let (lo, hi) = (10f64.powf(lo.log10().floor()), 10f64.powf(hi.log10().ceil()));
        let hi = if hi > lo { hi } else { lo * 10.0 };
        // A hair beyond the decades, so that rounding cannot drop their ticks.
        return (lo * 0.9999, hi * 1.0001);
    }
    if hi == lo {
        let pad = if lo == lo.round() { 1.0 } else { (lo.abs() * 0.1).max(0.1) };
        return (lo - pad, hi + pad);
    }
    let pad = (hi - lo) * 0.03;
    (lo - pad, hi + pad)
}

fn usable(v: f64, log: bool) -> bool {
    v.is_finite() && (!log || v > 0.0)
}

impl LineChart {
    /// The points of each series that the axes can show.
    fn visible(&self) -> Vec<Vec<(f64, f64)>> {
        self.series
            .iter()
            .map(|s| {
                s.points
                    .iter()
                    .copied()
                    .filter(|&(x, y)| usable(x, self.log_x) && usable(y, self.log_y))
                    .collect()
            })
            .collect()
    }

    fn color(&self, i: usize) -> RGBColor {
        rgb(self.series[i].color.unwrap_or(PALETTE[i % PALETTE.len()]))
    }

    fn plot<DB: DrawingBackend, X, Y>(
        &self,
        area: &DrawingArea<DB, Shift>,
        x: X,
        y: Y,
        points: &[Vec<(f64, f64)>],
    ) -> Result<()>
    where
        X: Ranged<ValueType = f64> + ValueFormatter<f64>,
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let xr = x.range();
        // Whole-number x data (epochs) gets whole-number ticks: ask for no more ticks than
        // there are integers in the range.
        let integral = points.iter().flatten().all(|p| p.0 == p.0.round()) && !self.log_x;
        let x_ticks = if integral { ((xr.end - xr.start).floor() as usize + 1).clamp(2, 10) } else { 8 };
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .x_label_area_size(if self.x_label.is_empty() { 28 } else { 48 })
            .y_label_area_size(if self.y_label.is_empty() { 52 } else { 72 })
            .build_cartesian_2d(x, y)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(x_ticks)
            .y_labels(if self.log_y { 12 } else { 8 })
            .x_label_formatter(&|v| tick_label(*v))
            .y_label_formatter(&|v| tick_label(*v))
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .label_style(font(LABEL_SIZE))
            .axis_desc_style(font(DESC_SIZE))
            .axis_style(AXIS)
            .bold_line_style(GRID)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        for (i, (series, pts)) in self.series.iter().zip(points).enumerate() {
            let style = self.color(i).stroke_width(2);
            if series.dashed {
                chart.draw_series(DashedLineSeries::new(pts.iter().copied(), 7, 4, style)).map_err(err)?;
            } else {
                chart.draw_series(LineSeries::new(pts.iter().copied(), style)).map_err(err)?;
            }
            if pts.len() <= MARKER_MAX {
                let fill = self.color(i).filled();
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, fill))).map_err(err)?;
            }
        }
        Ok(())
    }

    /// The legend: one row per labelled series, in a column of its own.
    fn legend<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        points: &[Vec<(f64, f64)>],
    ) -> Result<()> {
        let style = font(LABEL_SIZE);
        let rows = self.series.iter().enumerate().filter(|(_, s)| !s.label.is_empty());
        for (row, (i, s)) in rows.enumerate() {
            let y = 24 + row as i32 * 22;
            let line = self.color(i).stroke_width(2);
            let segments: &[(i32, i32)] = if s.dashed { &[(4, 10), (14, 20), (24, 28)] } else { &[(4, 28)] };
            for &(a, b) in segments {
                area.draw(&PathElement::new(vec![(a, y), (b, y)], line)).map_err(err)?;
            }
            if points[i].len() <= MARKER_MAX {
                area.draw(&Circle::new((16, y), 3, self.color(i).filled())).map_err(err)?;
            }
            area.draw(&text_mid(&s.label, (36, y), &style, HPos::Left)).map_err(err)?;
        }
        Ok(())
    }
}

impl Chart for LineChart {
    fn natural_size(&self) -> (u32, u32) {
        (720, 420)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let area = titled(root, &self.title)?;
        let points = self.visible();
        let style = font(LABEL_SIZE);
        let mut legend_w = 0;
        for s in self.series.iter().filter(|s| !s.label.is_empty()) {
            legend_w = legend_w.max(text_width(&area, &s.label, &style)? + 48);
        }
        let (w, _) = area.dim_in_pixel();
        let legend_w = legend_w.min(w / 3);
        let (plot, legend) = area.split_horizontally(w - legend_w);
        let (x0, x1) = axis_range(self.x_range, points.iter().flatten().map(|p| p.0), self.log_x);
        let (y0, y1) = axis_range(self.y_range, points.iter().flatten().map(|p| p.1), self.log_y);
        let lin = |a: f64, b: f64| -> RangedCoordf64 { (a..b).into() };
        let log = |a: f64, b: f64| -> LogCoord<f64> { (a..b).log_scale().into() };
        match (self.log_x, self.log_y) {
            (false, false) => self.plot(&plot, lin(x0, x1), lin(y0, y1), &points)?,
            (true, false) => self.plot(&plot, log(x0, x1), lin(y0, y1), &points)?,
            (false, true) => self.plot(&plot, lin(x0, x1), log(y0, y1), &points)?,
            (true, true) => self.plot(&plot, log(x0, x1), log(y0, y1), &points)?,
        }
        if legend_w > 0 {
            self.legend(&legend, &points)?;
        }
        Ok(())
    }
}
