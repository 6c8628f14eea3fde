//! Training curves like d2l's figure (train loss, train acc, test acc against epochs), as SVG
//! and PNG. Both are drawn from the same layout; the PNG uses a small built-in bitmap font so
//! it needs no system fonts.

use std::path::Path;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::train::{EpochMetrics, files};

const W: u32 = 640;
const H: u32 = 420;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;

/// One curve.
pub struct Series<'a> {
    /// Legend label.
    pub label: &'a str,
    /// RGB colour.
    pub color: [u8; 3],
    /// `(x, y)` points.
    pub points: Vec<(f64, f64)>,
    /// Dashed line (d2l draws train acc dashed).
    pub dashed: bool,
}

struct Frame {
    x_max: f64,
    y_max: f64,
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        LEFT + (x / self.x_max) * (W as f64 - LEFT - RIGHT)
    }
    fn py(&self, y: f64) -> f64 {
        H as f64 - BOTTOM - (y / self.y_max) * (H as f64 - TOP - BOTTOM)
    }
}

fn frame(series: &[Series]) -> Frame {
    let x_max = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).fold(1.0f64, f64::max);
    let y_data = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(1.0f64, f64::max);
    Frame { x_max: x_max.ceil(), y_max: (y_data * 10.0).ceil() / 10.0 }
}

fn ticks(max: f64, integer: bool) -> Vec<f64> {
    let step = if integer { (max / 10.0).ceil().max(1.0) } else { (max / 5.0 * 10.0).ceil() / 10.0 };
    (0..).map(|i| i as f64 * step).take_while(|v| *v <= max + 1e-9).collect()
}

fn label(v: f64, integer: bool) -> String {
    if integer { format!("{v:.0}") } else { format!("{v:.1}") }
}

/// The curves of a run as an SVG document.
pub fn svg(title: &str, series: &[Series]) -> String {
    let f = frame(series);
    let mut s = svg_header(title, H as f64);
    for x in ticks(f.x_max, true) {
        let px = f.px(x);
        s += &format!(
            "<line x1=\"{px:.1}\" y1=\"{TOP}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            H as f64 - BOTTOM,
            H as f64 - BOTTOM + 16.0,
            label(x, true)
        );
    }
    for y in ticks(f.y_max, false) {
        let py = f.py(y);
        s += &format!(
            "<line x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            W as f64 - RIGHT,
            LEFT - 6.0,
            py + 4.0,
            label(y, false)
        );
    }
    s += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">epoch</text>\n",
        (LEFT + W as f64 - RIGHT) / 2.0,
        H - 12
    );
    for (i, ser) in series.iter().enumerate() {
        let [r, g, b] = ser.color;
        let pts: Vec<String> =
            ser.points.iter().map(|&(x, y)| format!("{:.1},{:.1}", f.px(x), f.py(y))).collect();
        let dash = if ser.dashed { " stroke-dasharray=\"6 4\"" } else { "" };
        s += &format!(
            "<polyline fill=\"none\" stroke=\"rgb({r},{g},{b})\" stroke-width=\"2\"{dash} points=\"{}\"/>\n",
            pts.join(" ")
        );
        let ly = TOP + 14.0 + i as f64 * 18.0;
        let lx = W as f64 - RIGHT - 130.0;
        s += &format!(
            "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"rgb({r},{g},{b})\" stroke-width=\"2\"{dash}/>\
             <text x=\"{}\" y=\"{}\">{}</text>\n",
            lx + 24.0,
            lx + 30.0,
            ly + 4.0,
            escape(ser.label)
        );
    }
    s + "</svg>\n"
}

/// The opening of a chart: size, white background, centred title.
fn svg_header(title: &str, height: f64) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        W / 2,
        escape(title)
    )
}

fn encode_png(img: &image::RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new(&mut out);
    image::ImageEncoder::write_image(
        encoder,
        img.as_raw(),
        img.width(),
        img.height(),
        image::ExtendedColorType::Rgb8,
    )
    .expect("encoding a PNG into memory cannot fail");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The same chart as an RGB PNG.
pub fn png(title: &str, series: &[Series]) -> Vec<u8> {
    let f = frame(series);
    let mut img = image::RgbImage::from_pixel(W, H, image::Rgb([255, 255, 255]));
    let grey = [221, 221, 221];
    let black = [0, 0, 0];
    for x in ticks(f.x_max, true) {
        let px = f.px(x);
        line(&mut img, (px, TOP), (px, H as f64 - BOTTOM), grey, 1.0, false);
        text(&mut img, &label(x, true), px, H as f64 - BOTTOM + 8.0, Align::Center, black);
    }
    for y in ticks(f.y_max, false) {
        let py = f.py(y);
        line(&mut img, (LEFT, py), (W as f64 - RIGHT, py), grey, 1.0, false);
        text(&mut img, &label(y, false), LEFT - 6.0, py - 3.0, Align::Right, black);
    }
    text(&mut img, "epoch", (LEFT + W as f64 - RIGHT) / 2.0, H as f64 - 20.0, Align::Center, black);
    text(&mut img, title, W as f64 / 2.0, 12.0, Align::Center, black);
    for (i, ser) in series.iter().enumerate() {
        for pair in ser.points.windows(2) {
            let a = (f.px(pair[0].0), f.py(pair[0].1));
            let b = (f.px(pair[1].0), f.py(pair[1].1));
            line(&mut img, a, b, ser.color, 2.0, ser.dashed);
        }
        if let [only] = ser.points[..] {
            line(
                &mut img,
                (f.px(only.0) - 2.0, f.py(only.1)),
                (f.px(only.0) + 2.0, f.py(only.1)),
                ser.color,
                3.0,
                false,
            );
        }
        let ly = TOP + 14.0 + i as f64 * 18.0;
        let lx = W as f64 - RIGHT - 130.0;
        line(&mut img, (lx, ly), (lx + 24.0, ly), ser.color, 2.0, ser.dashed);
        text(&mut img, ser.label, lx + 30.0, ly - 3.0, Align::Left, black);
    }
    encode_png(&img)
}

fn line(img: &mut image::RgbImage, a: (f64, f64), b: (f64, f64), color: [u8; 3], width: f64, dashed: bool) {
    let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt().max(1.0);
    let steps = (len * 2.0) as usize + 1;
    let r = (width / 2.0).max(0.5);
    for i in 0..=steps {
        let t = i as f64 / steps as f64;
        if dashed && ((t * len) as usize / 5) % 2 == 1 {
            continue;
        }
        let (x, y) = (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
        let (x0, x1) = ((x - r).round() as i64, (x + r).round() as i64);
        let (y0, y1) = ((y - r).round() as i64, (y + r).round() as i64);
        for py in y0..y1.max(y0 + 1) {
            for px in x0..x1.max(x0 + 1) {
                if px >= 0 && py >= 0 && (px as u32) < img.width() && (py as u32) < img.height() {
                    img.put_pixel(px as u32, py as u32, image::Rgb(color));
                }
            }
        }
    }
}

enum Align {
    Left,
    Center,
    Right,
}

/// 5×7 glyphs, one `u8` per row (low 5 bits, MSB left); unknown characters draw as blanks.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_lowercase() {
        '0' => [14, 17, 19, 21, 25, 17, 14],
        '1' => [4, 12, 4, 4, 4, 4, 14],
        '2' => [14, 17, 1, 2, 4, 8, 31],
        '3' => [31, 2, 4, 2, 1, 17, 14],
        '4' => [2, 6, 10, 18, 31, 2, 2],
        '5' => [31, 16, 30, 1, 1, 17, 14],
        '6' => [6, 8, 16, 30, 17, 17, 14],
        '7' => [31, 1, 2, 4, 8, 8, 8],
        '8' => [14, 17, 17, 14, 17, 17, 14],
        '9' => [14, 17, 17, 15, 1, 2, 12],
        '.' => [0, 0, 0, 0, 0, 12, 12],
        '-' | '_' => [0, 0, 0, 31, 0, 0, 0],
        'a' => [0, 0, 14, 1, 15, 17, 15],
        'b' => [16, 16, 22, 25, 17, 17, 30],
        'c' => [0, 0, 14, 16, 16, 17, 14],
        'd' => [1, 1, 13, 19, 17, 17, 15],
        'e' => [0, 0, 14, 17, 31, 16, 14],
        'f' => [6, 9, 8, 28, 8, 8, 8],
        'g' => [0, 15, 17, 17, 15, 1, 14],
        'h' => [16, 16, 22, 25, 17, 17, 17],
        'i' => [4, 0, 12, 4, 4, 4, 14],
        'j' => [2, 0, 6, 2, 2, 18, 12],
        'k' => [16, 16, 18, 20, 24, 20, 18],
        'l' => [12, 4, 4, 4, 4, 4, 14],
        'm' => [0, 0, 26, 21, 21, 17, 17],
        'n' => [0, 0, 22, 25, 17, 17, 17],
        'o' => [0, 0, 14, 17, 17, 17, 14],
        'p' => [0, 0, 30, 17, 30, 16, 16],
        'q' => [0, 0, 13, 19, 15, 1, 1],
        'r' => [0, 0, 22, 25, 16, 16, 16],
        's' => [0, 0, 14, 16, 14, 1, 30],
        't' => [8, 8, 28, 8, 8, 9, 6],
        'u' => [0, 0, 17, 17, 17, 19, 13],
        'v' => [0, 0, 17, 17, 17, 10, 4],
        'w' => [0, 0, 17, 17, 21, 21, 10],
        'x' => [0, 0, 17, 10, 4, 10, 17],
        'y' => [0, 0, 17, 17, 15, 1, 14],
        'z' => [0, 0, 31, 2, 4, 8, 31],
        _ => [0; 7],
    }
}

fn text(img: &mut image::RgbImage, s: &str, x: f64, y: f64, align: Align, color: [u8; 3]) {
    let scale = 1i64;
    let advance = 6 * scale;
    let width = s.chars().count() as i64 * advance;
    let x0 = match align {
        Align::Left => x as i64,
        Align::Center => x as i64 - width / 2,
        Align::Right => x as i64 - width,
    };
    for (i, c) in s.chars().enumerate() {
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..5 {
                if bits & (16 >> col) != 0 {
                    let px = x0 + i as i64 * advance + col * scale;
                    let py = y as i64 + row as i64 * scale;
                    if px >= 0 && py >= 0 && (px as u32) < img.width() && (py as u32) < img.height() {
                        img.put_pixel(px as u32, py as u32, image::Rgb(color));
                    }
                }
            }
        }
    }
}

/// d2l's three curves of a run.
pub fn run_series(history: &[EpochMetrics]) -> Vec<Series<'static>> {
    let pts = |f: fn(&EpochMetrics) -> f64| history.iter().map(|m| (m.epoch as f64, f(m))).collect();
    vec![
        Series { label: "train loss", color: [31, 119, 180], points: pts(|m| m.train_loss), dashed: false },
        Series { label: "train acc", color: [214, 39, 40], points: pts(|m| m.train_acc), dashed: true },
        Series { label: "test acc", color: [44, 160, 44], points: pts(|m| m.test_acc), dashed: false },
    ]
}

/// Writes `curves.svg` and `curves.png` for a run.
pub fn write_curves(dir: &Path, model: &str, history: &[EpochMetrics]) -> Result<()> {
    if history.is_empty() {
        return Err(Error::invalid("plot", "no epochs to plot"));
    }
    let series = run_series(history);
    fsutil::write_atomic(&dir.join(files::CURVES_SVG), svg(model, &series).as_bytes())?;
    fsutil::write_atomic(&dir.join(files::CURVES_PNG), &png(model, &series))
}

/// A palette for several series (matplotlib's tab10).
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

/// Several curves on one chart (e.g. every model's test accuracy), as SVG and PNG bytes.
pub fn curves(title: &str, series: &[Series]) -> (String, Vec<u8>) {
    (svg(title, series), png(title, series))
}

fn compact(v: f64) -> String {
    match v.abs() {
        a if a >= 1e9 => format!("{:.2}G", v / 1e9),
        a if a >= 1e6 => format!("{:.1}M", v / 1e6),
        a if a >= 1e4 => format!("{:.1}K", v / 1e3),
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 1.0 => format!("{v:.2}"),
        _ => format!("{v:.3}"),
    }
}

/// A horizontal bar chart (one bar per label) as SVG.
pub fn bars_svg(title: &str, labels: &[String], values: &[f64]) -> String {
    let max = values.iter().cloned().fold(f64::MIN_POSITIVE, f64::max);
    let row = 26.0;
    let h = TOP + row * labels.len() as f64 + 20.0;
    let (x0, x1) = (130.0, W as f64 - 90.0);
    let mut s = svg_header(title, h);
    for (i, (label, v)) in labels.iter().zip(values).enumerate() {
        let y = TOP + i as f64 * row;
        let [r, g, b] = PALETTE[i % PALETTE.len()];
        let len = (v / max).max(0.0) * (x1 - x0);
        s += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{x0}\" y=\"{y:.1}\" width=\"{len:.1}\" height=\"{:.1}\" fill=\"rgb({r},{g},{b})\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            x0 - 6.0,
            y + 15.0,
            escape(label),
            row - 6.0,
            x0 + len + 6.0,
            y + 15.0,
            compact(*v)
        );
    }
    s + "</svg>\n"
}

/// The same bar chart as PNG bytes.
pub fn bars_png(title: &str, labels: &[String], values: &[f64]) -> Vec<u8> {
    let max = values.iter().cloned().fold(f64::MIN_POSITIVE, f64::max);
    let row = 26.0;
    let h = (TOP + row * labels.len() as f64 + 20.0) as u32;
    let (x0, x1) = (130.0, W as f64 - 90.0);
    let mut img = image::RgbImage::from_pixel(W, h, image::Rgb([255, 255, 255]));
    text(&mut img, title, W as f64 / 2.0, 12.0, Align::Center, [0, 0, 0]);
    for (i, (label, v)) in labels.iter().zip(values).enumerate() {
        let y = TOP + i as f64 * row;
        let len = (v / max).max(0.0) * (x1 - x0);
        for py in y as u32..(y + row - 6.0) as u32 {
            for px in x0 as u32..(x0 + len) as u32 {
                if px < W && py < h {
                    img.put_pixel(px, py, image::Rgb(PALETTE[i % PALETTE.len()]));
                }
            }
        }
        text(&mut img, label, x0 - 6.0, y + 6.0, Align::Right, [0, 0, 0]);
        text(&mut img, &compact(*v), x0 + len + 6.0, y + 6.0, Align::Left, [0, 0, 0]);
    }
    encode_png(&img)
}
