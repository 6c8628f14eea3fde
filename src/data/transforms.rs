//! How an image file becomes a model's input ([`Preprocess`]): d2l's grey levels with a bilinear
//! resize, or torchvision's ImageNet eval transform (`ImageClassification`: resize the shorter
//! side to 256 with antialiased bilinear filtering, center-crop 224, normalize with ImageNet
//! mean/std).
//!
//! The resize is PIL's / torchvision's antialiased bilinear: a separable triangle filter whose
//! support widens with the downscaling factor, weights normalized per output pixel.

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// How an image is prepared for a model (`predict`; stored in a run's `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preprocess {
    /// d2l's: grey levels in [0, 1], bilinear resize to the input (Fashion-MNIST / MNIST).
    #[default]
    Grey,
    /// torchvision's `ImageClassification`: RGB, resize the shorter side to 256 (bilinear,
    /// antialiased), center-crop 224, normalize with ImageNet mean/std.
    Imagenet,
}

impl Preprocess {
    /// `img` as a `[1, c, h, w]` batch for a model whose input is `[c, h, w]`.
    pub fn apply(self, img: &image::DynamicImage, [c, h, w]: [usize; 3], device: &Device) -> Tensor<4> {
        match self {
            Preprocess::Imagenet => {
                // Resize to 256/224 of the crop (256 for 224), center-crop, normalize.
                let rgb = img.to_rgb8();
                let (iw, ih) = rgb.dimensions();
                let side = h.min(w);
                let data = imagenet_eval(rgb.as_raw(), iw as usize, ih as usize, side * 256 / 224, side);
                Tensor::<4>::from_data(TensorData::new(data, [1, 3, side, side]), device)
            }
            Preprocess::Grey => {
                // As training: grey levels in [0, 1], bilinear resize to the input.
                let grey = img.to_luma8();
                let (iw, ih) = grey.dimensions();
                let pixels: Vec<f32> = grey.into_raw().into_iter().map(|p| f32::from(p) / 255.0).collect();
                let x =
                    Tensor::<4>::from_data(TensorData::new(pixels, [1, 1, ih as usize, iw as usize]), device);
                let x = super::resize(x, [h, w]);
                if c == 1 { x } else { x.repeat_dim(1, c) }
            }
        }
    }
}

/// ImageNet channel means.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The 1000 ImageNet class names in torchvision's order.
pub fn imagenet_classes() -> Vec<&'static str> {
    include_str!("imagenet_classes.txt").lines().collect()
}

/// Per output index: first input index and normalized weights.
fn coefficients(in_len: usize, out_len: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = in_len as f64 / out_len as f64;
    let support_scale = scale.max(1.0);
    let support = support_scale; // bilinear filter support 1.0
    (0..out_len)
        .map(|i| {
            let center = scale * (i as f64 + 0.5);
            let lo = ((center - support + 0.5).floor().max(0.0)) as usize;
            let hi = ((center + support + 0.5).floor() as usize).min(in_len);
            let mut w: Vec<f64> = (lo..hi)
                .map(|j| (1.0 - ((j as f64 - center + 0.5) / support_scale).abs()).max(0.0))
                .collect();
            let total: f64 = w.iter().sum();
            if total > 0.0 {
                w.iter_mut().for_each(|v| *v /= total);
            }
            (lo, w.into_iter().map(|v| v as f32).collect())
        })
        .collect()
}

/// Antialiased bilinear resize of a planar `[c, h, w]` image to `[c, oh, ow]`.
pub fn resize_aa(img: &[f32], c: usize, h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    let cx = coefficients(w, ow);
    let cy = coefficients(h, oh);
    // Horizontal pass: [c, h, ow].
    let mut tmp = vec![0f32; c * h * ow];
    for plane in 0..c * h {
        let row = &img[plane * w..(plane + 1) * w];
        for (o, (lo, wts)) in cx.iter().enumerate() {
            tmp[plane * ow + o] = wts.iter().enumerate().map(|(k, wt)| wt * row[lo + k]).sum();
        }
    }
    // Vertical pass: [c, oh, ow].
    let mut out = vec![0f32; c * oh * ow];
    for ch in 0..c {
        for (o, (lo, wts)) in cy.iter().enumerate() {
            for x in 0..ow {
                out[(ch * oh + o) * ow + x] =
                    wts.iter().enumerate().map(|(k, wt)| wt * tmp[(ch * h + lo + k) * ow + x]).sum();
            }
        }
    }
    out
}

/// torchvision's eval transform on an RGB8 image (`width × height`, interleaved): returns the
/// planar `[3, crop, crop]` normalized tensor data.
pub fn imagenet_eval(rgb: &[u8], width: usize, height: usize, resize: usize, crop: usize) -> Vec<f32> {
    // Resize so the shorter side is `resize`; the longer keeps the ratio, truncated like torchvision.
    let (oh, ow) = if height <= width {
        (resize, (resize as f64 * width as f64 / height as f64) as usize)
    } else {
        ((resize as f64 * height as f64 / width as f64) as usize, resize)
    };
    let mut planar = vec![0f32; 3 * height * width];
    for (i, px) in rgb.chunks_exact(3).enumerate() {
        for ch in 0..3 {
            planar[ch * height * width + i] = f32::from(px[ch]) / 255.0;
        }
    }
    let resized = resize_aa(&planar, 3, height, width, oh, ow);
    let (ch_crop, cw_crop) = (crop.min(oh), crop.min(ow));
    let top = ((oh - ch_crop) as f64 / 2.0).round() as usize;
    let left = ((ow - cw_crop) as f64 / 2.0).round() as usize;
    let mut out = Vec::with_capacity(3 * ch_crop * cw_crop);
    for ch in 0..3 {
        for y in 0..ch_crop {
            for x in 0..cw_crop {
                let v = resized[(ch * oh + top + y) * ow + left + x];
                out.push((v - IMAGENET_MEAN[ch]) / IMAGENET_STD[ch]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_box_downscale() {
        let img: Vec<f32> = (0..16).map(|v| v as f32).collect();
        assert_eq!(resize_aa(&img, 1, 4, 4, 4, 4), img);
        // Halving with the antialiased triangle filter (support 2, clipped at the borders).
        let row = [0.0, 0.0, 8.0, 8.0];
        let out = resize_aa(&row, 1, 1, 4, 1, 2);
        // (torchvision: F.resize(tensor([[[0, 0, 8, 8]]]), [1, 2], antialias=True) = [1.1429, 6.8571])
        assert!((out[0] - 8.0 / 7.0).abs() < 1e-5, "{out:?}");
        assert!((out[1] - 48.0 / 7.0).abs() < 1e-5, "{out:?}");
    }

    #[test]
    fn imagenet_eval_shape_and_classes() {
        let rgb = vec![128u8; 300 * 200 * 3];
        let out = imagenet_eval(&rgb, 300, 200, 256, 224);
        assert_eq!(out.len(), 3 * 224 * 224);
        let expected = (128.0 / 255.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0];
        assert!((out[0] - expected).abs() < 1e-5);
        assert_eq!(imagenet_classes().len(), 1000);
    }
}
