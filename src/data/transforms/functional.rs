//! The transforms as functions of an 8-bit [`Image`], each reproducing what torchvision's
//! `transforms.functional` does to a PIL image in mode `L` or `RGB` (and so what Pillow does),
//! bit for bit where Pillow's arithmetic is known: the images stay 8-bit until [`to_tensor`].
//!
//! [`resize`] is Pillow's convolution resampling (`Image.resize(size, BILINEAR)`, which is what
//! torchvision's `Resize` runs on PIL images), written here rather than taken from the
//! `fast_image_resize` crate: that crate reproduces Pillow-SIMD, whose 16-bit coefficients with a
//! per-filter precision round differently from Pillow's 22-bit fixed point, so its output can
//! differ from torchvision's by one level, while exactness is the point here (this one matches
//! every fixture exactly; the crate itself was not measured). The algorithm:
//! a triangle filter whose support grows with the downscaling factor, weights normalized per
//! output pixel and turned into fixed point (2²² = 1), a horizontal pass into 8 bits (rounded,
//! clipped) over the rows the vertical pass needs, then the vertical pass — or, as Pillow 13
//! does, vertical first when the height shrinks much more than the width; a pass whose size
//! does not change is skipped. The inner loops are integer multiply-adds over precomputed
//! coefficient tables, with no allocation per pixel.

use super::super::image::Image;
use crate::error::{Error, Result};

/// Pillow's fixed-point precision for 8-bit resampling: 32 bits less 8 for the sample and 2
/// for headroom.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// One axis of a resize: per output index the first input index and the count of taps, with
/// `ksize` fixed-point weights per output index.
struct Taps {
    bounds: Vec<(usize, usize)>,
    ksize: usize,
    weights: Vec<i32>,
}

/// Pillow's `precompute_coeffs` for the bilinear (triangle) filter on `[0, in_size)`.
fn taps(in_size: usize, out_size: usize) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // the triangle's support is 1 at scale 1
    let ksize = support.ceil() as usize * 2 + 1;
    let mut weights = vec![0i32; out_size * ksize];
    let mut bounds = Vec::with_capacity(out_size);
    let mut w = vec![0f64; ksize];
    for (i, out) in weights.chunks_exact_mut(ksize).enumerate() {
        let center = (i as f64 + 0.5) * scale;
        // C's (int) truncates toward zero, then the bounds are clamped to the image.
        let min = ((center - support + 0.5) as i64).max(0) as usize;
        let max = ((center + support + 0.5) as i64).min(in_size as i64).max(min as i64) as usize;
        let n = (max - min).min(ksize);
        let mut total = 0.0;
        for (x, wx) in w.iter_mut().enumerate().take(n) {
            let d = ((x + min) as f64 - center + 0.5) * (1.0 / filterscale);
            *wx = (1.0 - d.abs()).max(0.0);
            total += *wx;
        }
        for (o, &wx) in out.iter_mut().zip(&w[..n]) {
            let k = if total != 0.0 { wx / total } else { wx };
            let scaled = k * f64::from(1u32 << PRECISION_BITS);
            *o = if k < 0.0 { (scaled - 0.5) as i32 } else { (scaled + 0.5) as i32 };
        }
        bounds.push((min, n));
    }
    Taps { bounds, ksize, weights }
}

/// A fixed-point sum back to 8 bits (Pillow's `clip8`).
#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Rounding offset every fixed-point sum starts from.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Horizontal pass over rows `rows` of an interleaved image with `C` channels.
fn horizontal<const C: usize>(
    src: &[u8],
    width: usize,
    rows: std::ops::Range<usize>,
    t: &Taps,
    out_w: usize,
) -> Vec<u8> {
    let mut out = vec![0u8; rows.len() * out_w * C];
    for (orow, y) in out.chunks_exact_mut(out_w * C).zip(rows) {
        let row = &src[y * width * C..(y + 1) * width * C];
        for (x, (opx, &(min, n))) in orow.chunks_exact_mut(C).zip(&t.bounds).enumerate() {
            let k = &t.weights[x * t.ksize..x * t.ksize + n];
            let mut acc = [HALF; C];
            for (px, &kv) in row[min * C..(min + n) * C].chunks_exact(C).zip(k) {
                for c in 0..C {
                    acc[c] += i32::from(px[c]) * kv;
                }
            }
            for c in 0..C {
                opx[c] = clip8(acc[c]);
            }
        }
    }
    out
}

/// Vertical pass; `src` holds rows `first..` of the image, each `row_len` bytes.
fn vertical(src: &[u8], row_len: usize, first: usize, t: &Taps) -> Vec<u8> {
    let mut out = vec![0u8; t.bounds.len() * row_len];
    let mut acc = vec![0i32; row_len];
    for (y, orow) in out.chunks_exact_mut(row_len).enumerate() {
        let (min, n) = t.bounds[y];
        acc.fill(HALF);
        for (i, &kv) in t.weights[y * t.ksize..y * t.ksize + n].iter().enumerate() {
            let start = (min - first + i) * row_len;
            for (a, &p) in acc.iter_mut().zip(&src[start..start + row_len]) {
                *a += i32::from(p) * kv;
            }
        }
        for (o, &a) in orow.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

/// Pillow's `Image.resize((w, h), BILINEAR)` (antialiased when downscaling), i.e.
/// torchvision's `F.resize(img, [h, w])` on a PIL image. `h` and `w` must be at least 1.
pub fn resize(img: &Image, [h, w]: [usize; 2]) -> Image {
    let (ih, iw, c) = (img.height, img.width, img.channels);
    if (ih, iw) == (h, w) {
        return img.clone();
    }
    let horizontal_pass = |src: &[u8], rows: std::ops::Range<usize>| {
        let t = taps(iw, w);
        if c == 1 { horizontal::<1>(src, iw, rows, &t, w) } else { horizontal::<3>(src, iw, rows, &t, w) }
    };
    let data = if w == iw {
        vertical(&img.data, iw * c, 0, &taps(ih, h))
    } else if h == ih {
        horizontal_pass(&img.data, 0..ih)
    } else if vertical_first(ih, iw, h, w) {
        horizontal_pass(&vertical(&img.data, iw * c, 0, &taps(ih, h)), 0..h)
    } else {
        // Only the rows the vertical pass reads go through the horizontal one.
        let vt = taps(ih, h);
        let first = vt.bounds.first().map_or(0, |b| b.0);
        let last = vt.bounds.last().map_or(ih, |b| b.0 + b.1);
        vertical(&horizontal_pass(&img.data, first..last), w * c, first, &vt)
    };
    Image { width: w, height: h, channels: c, data }
}

/// Pillow 13's order of the passes: vertical first when the height shrinks by more than twice
/// as many pixels as the width does (Pillow 12 and older always go horizontal first; the two
/// orders can differ by one level, as each pass rounds to 8 bits).
fn vertical_first(ih: usize, iw: usize, h: usize, w: usize) -> bool {
    let dy = ih as i64 - h as i64;
    dy > 0 && dy > (iw as i64 - w as i64) * 2
}

/// torchvision's output size for `Resize(size)` with an int: the shorter side becomes `size`,
/// the longer keeps the aspect ratio, truncated (`int(size * long / short)`). Returns `[h, w]`.
pub fn shorter_side_size([h, w]: [usize; 2], size: usize) -> [usize; 2] {
    let (short, long) = (h.min(w), h.max(w));
    if short == 0 {
        return [h, w];
    }
    let new_long = (size as f64 * long as f64 / short as f64) as usize;
    if w <= h { [new_long, size] } else { [size, new_long] }
}

/// PIL's `img.crop((left, top, left + w, top + h))`: the `h × w` window at (`top`, `left`),
/// zero where it leaves the image (torchvision's `F.crop`).
pub fn crop(img: &Image, top: i64, left: i64, h: usize, w: usize) -> Image {
    let c = img.channels;
    let mut data = vec![0u8; h * w * c];
    if data.is_empty() {
        return Image { width: w, height: h, channels: c, data };
    }
    // The overlap of the window's columns with the image's.
    let x0 = left.max(0);
    let x1 = (left + w as i64).min(img.width as i64);
    if x1 > x0 {
        let (x0, x1) = (x0 as usize, x1 as usize);
        let dst_x = (x0 as i64 - left) as usize;
        for (y, row) in data.chunks_exact_mut(w * c).enumerate() {
            let sy = top + y as i64;
            if sy < 0 || sy >= img.height as i64 {
                continue;
            }
            let src = (sy as usize * img.width) * c;
            row[dst_x * c..(dst_x + x1 - x0) * c].copy_from_slice(&img.data[src + x0 * c..src + x1 * c]);
        }
    }
    Image { width: w, height: h, channels: c, data }
}

/// Zero padding: `[left, top, right, bottom]` pixels (torchvision's `F.pad` with fill 0).
pub fn pad(img: &Image, [l, t, r, b]: [usize; 4]) -> Image {
    crop(img, -(t as i64), -(l as i64), img.height + t + b, img.width + l + r)
}

/// torchvision's `F.center_crop(img, [h, w])`: zero padding (half, the odd pixel right/below)
/// where the crop is larger than the image, then the window at
/// `round((H - h) / 2), round((W - w) / 2)` with Python's round-half-to-even.
pub fn center_crop(img: &Image, [h, w]: [usize; 2]) -> Image {
    if w > img.width || h > img.height {
        let dw = w.saturating_sub(img.width);
        let dh = h.saturating_sub(img.height);
        let padded = pad(img, [dw / 2, dh / 2, dw.div_ceil(2), dh.div_ceil(2)]);
        if (padded.height, padded.width) == (h, w) {
            return padded;
        }
        return centered_window(&padded, [h, w]);
    }
    centered_window(img, [h, w])
}

/// The `h × w` window at the center of an image at least that large.
fn centered_window(img: &Image, [h, w]: [usize; 2]) -> Image {
    let top = ((img.height - h) as f64 / 2.0).round_ties_even() as i64;
    let left = ((img.width - w) as f64 / 2.0).round_ties_even() as i64;
    crop(img, top, left, h, w)
}

/// torchvision's `F.resized_crop`: [`crop`] then [`resize`] to `size` (`[h, w]`).
pub fn resized_crop(img: &Image, top: i64, left: i64, h: usize, w: usize, size: [usize; 2]) -> Image {
    resize(&crop(img, top, left, h, w), size)
}

/// Mirror left to right (torchvision's `F.hflip`).
pub fn hflip(img: &Image) -> Image {
    let c = img.channels;
    let mut data = Vec::with_capacity(img.data.len());
    for row in img.data.chunks_exact(img.width.max(1) * c) {
        for px in row.chunks_exact(c).rev() {
            data.extend_from_slice(px);
        }
    }
    like(img, data)
}

/// An image of `img`'s size and channels holding `data`.
fn like(img: &Image, data: Vec<u8>) -> Image {
    Image { width: img.width, height: img.height, channels: img.channels, data }
}

/// PIL's luma of an RGB pixel (ITU-R 601-2, `L = R·299/1000 + G·587/1000 + B·114/1000`) in its
/// 16-bit fixed point, rounded.
#[inline]
fn luma(px: &[u8]) -> u8 {
    ((u32::from(px[0]) * 19595 + u32::from(px[1]) * 38470 + u32::from(px[2]) * 7471 + 0x8000) >> 16) as u8
}

/// PIL's `convert("L")` (torchvision's `F.rgb_to_grayscale(img, 1)`); a grey image is copied.
pub fn grayscale(img: &Image) -> Image {
    if img.channels == 1 {
        return img.clone();
    }
    let data = img.data.chunks_exact(3).map(luma).collect();
    Image { width: img.width, height: img.height, channels: 1, data }
}

/// PIL's `convert("RGB")`: a grey image's level in all three channels; an RGB image is copied.
pub fn to_rgb(img: &Image) -> Image {
    if img.channels == 3 {
        return img.clone();
    }
    let data = img.data.iter().flat_map(|&v| [v, v, v]).collect();
    Image { width: img.width, height: img.height, channels: 3, data }
}

/// PIL's `Image.blend(degenerate, img, factor)` in its arithmetic: `a + factor·(b − a)` in
/// 32-bit float, truncated and clipped to 8 bits. `degenerate(i)` gives `a` for byte `i`.
fn blend(img: &Image, factor: f64, degenerate: impl Fn(usize) -> u8) -> Image {
    let alpha = factor as f32;
    let data = img
        .data
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            let a = degenerate(i);
            (f32::from(a) + alpha * (i32::from(b) - i32::from(a)) as f32) as u8
        })
        .collect();
    like(img, data)
}

/// torchvision's `F.adjust_brightness` (PIL's `ImageEnhance.Brightness`): blend with black.
pub fn adjust_brightness(img: &Image, factor: f64) -> Image {
    blend(img, factor, |_| 0)
}

/// torchvision's `F.adjust_contrast` (PIL's `ImageEnhance.Contrast`): blend with the grey level
/// of the image's mean luma, rounded.
pub fn adjust_contrast(img: &Image, factor: f64) -> Image {
    let sum: u64 = if img.channels == 1 {
        img.data.iter().map(|&v| u64::from(v)).sum()
    } else {
        img.data.chunks_exact(3).map(|px| u64::from(luma(px))).sum()
    };
    let count = (img.width * img.height).max(1);
    let mean = (sum as f64 / count as f64 + 0.5) as u8;
    blend(img, factor, |_| mean)
}

/// torchvision's `F.adjust_saturation` (PIL's `ImageEnhance.Color`): blend with the image's
/// luma; a grey image is unchanged.
pub fn adjust_saturation(img: &Image, factor: f64) -> Image {
    if img.channels == 1 {
        return img.clone();
    }
    let grey: Vec<u8> = img.data.chunks_exact(3).map(luma).collect();
    blend(img, factor, |i| grey[i / 3])
}

/// PIL's RGB → HSV (`convert("HSV")`), every channel 8-bit, in PIL's mix of float and double.
fn rgb_to_hsv(r: u8, g: u8, b: u8) -> [u8; 3] {
    let (max, min) = (r.max(g).max(b), r.min(g).min(b));
    if max == min {
        return [0, 0, max];
    }
    let cr = f32::from(max - min);
    let s = cr / f32::from(max);
    let rc = f32::from(max - r) / cr;
    let gc = f32::from(max - g) / cr;
    let bc = f32::from(max - b) / cr;
    let h: f32 = if r == max {
        bc - gc
    } else if g == max {
        (2.0 + f64::from(rc) - f64::from(bc)) as f32
    } else {
        (4.0 + f64::from(gc) - f64::from(rc)) as f32
    };
    let h = ((f64::from(h) / 6.0 + 1.0) % 1.0) as f32;
    let to8 = |v: f32| ((f64::from(v) * 255.0) as i32).clamp(0, 255) as u8;
    [to8(h), to8(s), max]
}

/// PIL's HSV → RGB.
fn hsv_to_rgb(h: u8, s: u8, v: u8) -> [u8; 3] {
    if s == 0 {
        return [v, v, v];
    }
    let h6 = f64::from(h) * 6.0 / 255.0;
    let i = h6.floor() as i32;
    let f = (h6 - f64::from(i as f32)) as f32;
    let fs = (f64::from(s) / 255.0) as f32;
    let vf = f64::from(v);
    let to8 = |x: f64| (x.round() as i32).clamp(0, 255) as u8;
    let p = to8(vf * (1.0 - f64::from(fs)));
    let q = to8(vf * (1.0 - f64::from(fs * f)));
    let t = to8(vf * (1.0 - f64::from(fs) * (1.0 - f64::from(f))));
    match i % 6 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

/// torchvision's `F.adjust_hue` on a PIL image: to PIL's 8-bit HSV, the hue shifted by
/// `int(factor · 255)` modulo 256, back to RGB. A grey image is unchanged. `factor` must lie
/// in [−0.5, 0.5].
pub fn adjust_hue(img: &Image, factor: f64) -> Result<Image> {
    if !(-0.5..=0.5).contains(&factor) {
        return Err(Error::invalid("hue factor", format!("must lie in [-0.5, 0.5], got {factor}")));
    }
    if img.channels == 1 {
        return Ok(img.clone());
    }
    let shift = (factor * 255.0) as i32 as u8;
    let mut data = Vec::with_capacity(img.data.len());
    for px in img.data.chunks_exact(3) {
        let [h, s, v] = rgb_to_hsv(px[0], px[1], px[2]);
        data.extend_from_slice(&hsv_to_rgb(h.wrapping_add(shift), s, v));
    }
    Ok(like(img, data))
}

/// torchvision's `F.to_tensor`: planar `[c, h, w]` values `v / 255` in f32.
pub fn to_tensor(img: &Image) -> Vec<f32> {
    img.to_tensor_data()
}

/// torchvision's `F.normalize`, in place on planar data: `(x − mean[c]) / std[c]` in f32; a
/// single mean/std applies to every channel.
pub fn normalize(x: &mut [f32], channels: usize, mean: &[f32], std: &[f32]) {
    let plane = x.len() / channels.max(1);
    for (c, values) in x.chunks_mut(plane.max(1)).enumerate() {
        let (m, s) = (mean[c.min(mean.len() - 1)], std[c.min(std.len() - 1)]);
        for v in values {
            *v = (*v - m) / s;
        }
    }
}

/// PyTorch's bilinear interpolation with `align_corners=False`, no antialiasing, on planar
/// `[c, h, w]` floats (the `d2l` path: `crate::data::resize` on a batch), computed as Burn's CPU
/// backend does so that the two agree. Equal sizes return the input.
pub fn tensor_resize(x: &[f32], [c, ih, iw]: [usize; 3], [h, w]: [usize; 2]) -> Vec<f32> {
    if (ih, iw) == (h, w) {
        return x.to_vec();
    }
    if ih == 0 || iw == 0 {
        return vec![0.0; c * h * w];
    }
    let axis = |n_in: usize, n_out: usize| -> Vec<(usize, usize, f32)> {
        let ratio = n_in as f64 / n_out as f64;
        (0..n_out)
            .map(|o| {
                let pos = (o as f64 + 0.5) * ratio - 0.5;
                let lo = pos.floor().max(0.0) as usize;
                let hi = (lo + 1).min(n_in - 1);
                (lo, hi, (pos - lo as f64).max(0.0) as f32)
            })
            .collect()
    };
    let (ys, xs) = (axis(ih, h), axis(iw, w));
    let mut out = Vec::with_capacity(c * h * w);
    for plane in x.chunks_exact(ih * iw).take(c) {
        for &(y0, y1, wy) in &ys {
            for &(x0, x1, wx) in &xs {
                let (a, b) = (plane[y0 * iw + x0], plane[y0 * iw + x1]);
                let (cc, d) = (plane[y1 * iw + x0], plane[y1 * iw + x1]);
                out.push(
                    a * (1.0 - wx) * (1.0 - wy) + b * wx * (1.0 - wy) + cc * (1.0 - wx) * wy + d * wx * wy,
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taps_sum_to_one_in_fixed_point() {
        for (n_in, n_out) in [(17, 5), (5, 17), (300, 37), (224, 224), (3, 1)] {
            let t = taps(n_in, n_out);
            for (i, &(min, n)) in t.bounds.iter().enumerate() {
                assert!(min + n <= n_in && n >= 1, "{n_in}->{n_out}: {min} {n}");
                let sum: i32 = t.weights[i * t.ksize..i * t.ksize + n].iter().sum();
                assert!((sum - (1 << PRECISION_BITS)).abs() <= n as i32, "{n_in}->{n_out}: {sum}");
            }
        }
        // A flat image stays flat through both passes.
        let img = Image { width: 13, height: 7, channels: 3, data: vec![200; 13 * 7 * 3] };
        assert!(resize(&img, [3, 29]).data.iter().all(|&v| v == 200));
    }

    #[test]
    fn crop_fills_outside_with_zero_and_center_crop_rounds_half_to_even() {
        let img = Image { width: 3, height: 2, channels: 1, data: vec![1, 2, 3, 4, 5, 6] };
        assert_eq!(crop(&img, -1, 1, 3, 3).data, vec![0, 0, 0, 2, 3, 0, 5, 6, 0]);
        assert_eq!(pad(&img, [1, 0, 0, 1]).data, vec![0, 1, 2, 3, 0, 4, 5, 6, 0, 0, 0, 0]);
        // (3 - 2) / 2 = 0.5 rounds to 0 as in Python.
        assert_eq!(center_crop(&img, [2, 2]).data, vec![1, 2, 4, 5]);
        // Larger than the image: zero padding, the odd pixel right and below.
        assert_eq!(center_crop(&img, [3, 4]).data, vec![1, 2, 3, 0, 4, 5, 6, 0, 0, 0, 0, 0]);
        assert_eq!(center_crop(&img, [4, 5]).data[..5], [0, 0, 0, 0, 0]);
        assert_eq!(center_crop(&img, [4, 5]).data[5..10], [0, 1, 2, 3, 0]);
        assert_eq!(hflip(&img).data, vec![3, 2, 1, 6, 5, 4]);
        assert_eq!(shorter_side_size([375, 500], 256), [256, 341]);
        assert_eq!(shorter_side_size([500, 375], 256), [341, 256]);
    }
}
