//! Horizontal bar charts, one bar per label, on a linear or log value axis.

use plotters::coord::Shift;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::HPos;

use super::{
    AXIS, Chart, Fixed, GRID, LABEL_SIZE, PALETTE, SMALL_SIZE, compact, err, font, rgb, text_mid, text_width,
    tick_label, titled, wants_log,
};
use crate::error::{Error, Result};

/// Height of one bar's row in pixels at the natural size.
const ROW: u32 = 28;

/// A horizontal bar chart: one bar per label, top to bottom in the given order, each bar in the
/// next [`PALETTE`] colour, its value printed at its end.
#[derive(Clone, Debug)]
pub struct BarChart {
    /// Title above the chart (none if empty).
    pub title: String,
    /// One label per bar, shown left of it.
    pub labels: Vec<String>,
    /// One value per bar (as many as `labels`).
    pub values: Vec<f64>,
    /// Description under the value axis (none if empty).
    pub value_axis: String,
    /// Logarithmic value axis, spanning whole decades: bars start at its left end, so values
    /// from 1e4 to 1e8 all get visible bars. Values ≤ 0 get no bar (their value is printed).
    pub log_scale: bool,
    /// How a value is printed at its bar's end (default [`compact`]: `61.7K`, `0.912`).
    pub value_label: fn(f64) -> String,
}

impl Default for BarChart {
    fn default() -> Self {
        Self {
            title: String::new(),
            labels: Vec::new(),
            values: Vec::new(),
            value_axis: String::new(),
            log_scale: false,
            value_label: compact,
        }
    }
}

impl BarChart {
    /// A bar chart whose scale is picked from the values: log when the largest positive value
    /// is more than 100 times the smallest ([`wants_log`]), linear otherwise; a log axis is
    /// labelled "log scale".
    pub fn new(title: impl Into<String>, labels: Vec<String>, values: Vec<f64>) -> Self {
        let log_scale = wants_log(&values);
        // Say so under the axis: bars on a log axis read differently.
        let value_axis = if log_scale { "log scale".to_string() } else { String::new() };
        Self { title: title.into(), labels, values, log_scale, value_axis, ..Self::default() }
    }

    /// The value axis' range: from 0 (or the smallest negative value) on a linear axis; from the
    /// decade below the smallest positive value on a log axis.
    fn value_range(&self) -> (f64, f64) {
        let finite = self.values.iter().copied().filter(|v| v.is_finite());
        if self.log_scale {
            let pos: Vec<f64> = finite.filter(|v| *v > 0.0).collect();
            let lo = pos.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = pos.iter().copied().fold(0.0f64, f64::max);
            if pos.is_empty() {
                return (1.0, 10.0);
            }
            // From the decade below the smallest value, so that it gets a bar of its own.
            // (A hair below the decade, so that rounding cannot drop its tick.)
            let lo = 10f64.powf(lo.log10().floor());
            (lo * 0.9999, (hi * 1.3).max(lo * 10.0))
        } else {
            let (lo, hi) = finite.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
            if hi > lo { (lo, hi * 1.02) } else { (0.0, 1.0) }
        }
    }

    fn plot<DB: DrawingBackend, X>(
        &self,
        root: &DrawingArea<DB, Shift>,
        area: &DrawingArea<DB, Shift>,
        x: X,
        label_w: u32,
        value_w: u32,
    ) -> Result<()>
    where
        X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let n = self.labels.len();
        let base = x.range().start.max(0.0);
        let base = if self.log_scale { x.range().start } else { base };
        let rows = Fixed { range: 0.0..n as f64, ticks: (0..n).map(|i| i as f64 + 0.5).collect() };
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .margin_right(value_w + 12)
            .x_label_area_size(if self.value_axis.is_empty() { 28 } else { 48 })
            .y_label_area_size(label_w)
            .build_cartesian_2d(x, rows)
            .map_err(err)?;
        // Row `i` (from the top) sits at y = n - 1 - i.
        let label_of = |y: &f64| {
            let row = n as f64 - 1.0 - y.floor();
            self.labels.get(row as usize).cloned().unwrap_or_default()
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_labels(if self.log_scale { 12 } else { 8 })
            .y_labels(n)
            .x_label_formatter(&|v| {
                // On a log axis spanning less than a few decades, plotters puts a tick at every
                // integer multiple (1M, 2M, … 9M): label only 1, 2 and 5 of each decade.
                let mantissa = *v / 10f64.powf(v.log10().floor());
                let readable = [1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-6);
                if !self.log_scale || readable { tick_label(*v) } else { String::new() }
            })
            .y_label_formatter(&label_of)
            .x_desc(self.value_axis.as_str())
            .label_style(font(LABEL_SIZE))
            .axis_desc_style(font(LABEL_SIZE))
            .axis_style(AXIS)
            .bold_line_style(GRID)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        let value_style = font(SMALL_SIZE);
        for (i, &v) in self.values.iter().enumerate() {
            let y = (n - 1 - i) as f64;
            let has_bar = v.is_finite() && (!self.log_scale || v > 0.0);
            if has_bar {
                let color = rgb(PALETTE[i % PALETTE.len()]).filled();
                chart.draw_series([Rectangle::new([(base, y + 0.18), (v, y + 0.82)], color)]).map_err(err)?;
            }
            let end = if has_bar { v.max(base) } else { base };
            let (px, py) = chart.backend_coord(&(end, y + 0.5));
            let text = text_mid(&(self.value_label)(v), (px + 5, py), &value_style, HPos::Left);
            root.draw(&text).map_err(err)?;
        }
        Ok(())
    }
}

super::chart_methods!(BarChart);

impl Chart for BarChart {
    fn natural_size(&self) -> (u32, u32) {
        let axis = if self.value_axis.is_empty() { 28 } else { 48 };
        (720, 34 + 24 + ROW * self.labels.len().max(1) as u32 + axis)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        if self.labels.len() != self.values.len() {
            return Err(Error::invalid(
                "bar chart",
                format!("{} labels but {} values", self.labels.len(), self.values.len()),
            ));
        }
        let area = titled(root, &self.title)?;
        let (label_style, value_style) = (font(LABEL_SIZE), font(SMALL_SIZE));
        let mut label_w = 20;
        for l in &self.labels {
            label_w = label_w.max(text_width(&area, l, &label_style)? + 12);
        }
        let mut value_w = 0;
        for v in &self.values {
            value_w = value_w.max(text_width(&area, &(self.value_label)(*v), &value_style)? + 8);
        }
        let (w, _) = area.dim_in_pixel();
        let label_w = label_w.min(w / 3);
        let (lo, hi) = self.value_range();
        if self.log_scale {
            let x: LogCoord<f64> = (lo..hi).log_scale().into();
            self.plot(root, &area, x, label_w, value_w)
        } else {
            let x: RangedCoordf64 = (lo..hi).into();
            self.plot(root, &area, x, label_w, value_w)
        }
    }
}
