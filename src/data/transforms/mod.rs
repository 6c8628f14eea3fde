//! How an image becomes a model's input: torchvision's transforms on 8-bit images
//! ([`functional`]), the serde-storable [`Pipeline`] of [`Transform`] steps with its
//! command-line syntax, the named presets of [`Transforms`] (train and eval pipelines), and the
//! older [`Preprocess`] that `predict` stores in run configs.
//!
//! Every transform runs on an [`Image`] (what PIL holds in mode `L` or `RGB`) until `to-tensor`,
//! so results equal torchvision's on PIL images; see [`functional`] for the resize.

pub mod functional;
mod pipeline;
mod spec;

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

pub use pipeline::{Pipeline, Size, Transform, random_resized_crop_params};

use super::image::Image;
use crate::error::{Error, Result};

/// How an image is prepared for a model (`predict`; stored in a run's `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preprocess {
    /// d2l's: grey levels in [0, 1], bilinear resize to the input (Fashion-MNIST / MNIST).
    #[default]
    Grey,
    /// torchvision's ImageNet eval transform on a PIL image: RGB, resize the shorter side to
    /// `round(side · 256 / 224)` (Pillow's antialiased bilinear), center-crop `side`, normalize
    /// with ImageNet mean/std — the `imagenet` preset's eval pipeline.
    Imagenet,
}

impl Preprocess {
    /// `img` as a `[1, c, h, w]` batch for a model whose input is `[c, h, w]`.
    pub fn apply(self, img: &image::DynamicImage, [c, h, w]: [usize; 3], device: &Device) -> Tensor<4> {
        match self {
            Preprocess::Imagenet => {
                let img = functional::to_rgb(&Image::from_dynamic(img));
                let crop = [h, w];
                let side = h.max(w);
                let resized = functional::resize(
                    &img,
                    functional::shorter_side_size([img.height, img.width], resize_side(side)),
                );
                let mut x = functional::to_tensor(&functional::center_crop(&resized, crop));
                functional::normalize(&mut x, 3, &IMAGENET_MEAN, &IMAGENET_STD);
                Tensor::<4>::from_data(TensorData::new(x, [1, 3, h, w]), device)
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

/// The resize before a center crop of `side`: `round(side · 256 / 224)` (256 for 224).
pub fn resize_side(side: usize) -> usize {
    (side as f64 * 256.0 / 224.0).round() as usize
}

/// A train and an eval [`Pipeline`] (stored in a run's `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transforms {
    /// Applied to training images (may be random).
    pub train: Pipeline,
    /// Applied to evaluation and prediction images (deterministic).
    pub eval: Pipeline,
}

/// The preset names, as error messages list them.
pub const PRESETS: [&str; 4] = ["d2l", "alexnet", "imagenet", "cifar"];

impl Transforms {
    /// A named preset for a model whose input is `input` (`[c, h, w]`, `c` 1 or 3). Each starts
    /// with the conversion to `c` channels (`grayscale` or `rgb`), so a grey data set feeds an
    /// RGB model and back; 3-channel inputs are normalized, 1-channel ones are not. `S` below is
    /// the larger of `h` and `w`, `R` is `round(S · 256 / 224)`.
    ///
    /// - `d2l`: `to-tensor`, `tensor-resize=HxW` (today's training path; train = eval).
    /// - `alexnet`: train `resize=R`, `random-crop=HxW`, `hflip`, `color-jitter=0.4:0.4:0.4`;
    ///   eval `resize=R`, `center-crop=HxW`.
    /// - `imagenet`: train `random-resized-crop=HxW`, `hflip`; eval `resize=R`, `center-crop=HxW`.
    /// - `cifar`: train `resize=HxW` (a no-op at that size), `random-crop=HxW:4`, `hflip`;
    ///   eval `resize=HxW`; normalized with the CIFAR-10 mean/std.
    pub fn preset(name: &str, input: [usize; 3]) -> Result<Transforms> {
        let [c, h, w] = input;
        let what = "--transforms";
        if c != 1 && c != 3 {
            return Err(Error::invalid(what, format!("the presets need a 1- or 3-channel input, not {c}")));
        }
        if h == 0 || w == 0 {
            return Err(Error::invalid(what, format!("the input {c}x{h}x{w} has no pixels")));
        }
        let size = [h, w];
        let r = resize_side(h.max(w));
        let channels = if c == 1 { Transform::Grayscale { num_output_channels: 1 } } else { Transform::Rgb };
        let normalize = |mean: [f32; 3], std: [f32; 3]| {
            (c == 3).then(|| Transform::Normalize { mean: mean.to_vec(), std: std.to_vec() })
        };
        let hflip = Transform::HorizontalFlip { p: 0.5 };
        let (train, eval, norm) = match name {
            "d2l" => {
                let steps = vec![Transform::ToTensor, Transform::TensorResize { size }];
                (steps.clone(), steps, None)
            }
            "alexnet" => (
                vec![
                    Transform::Resize { size: Size::Shorter(r) },
                    Transform::RandomCrop { size, padding: 0, pad_if_needed: false },
                    hflip,
                    Transform::ColorJitter { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.0 },
                ],
                vec![Transform::Resize { size: Size::Shorter(r) }, Transform::CenterCrop { size }],
                normalize(IMAGENET_MEAN, IMAGENET_STD),
            ),
            "imagenet" => (
                vec![
                    Transform::RandomResizedCrop { size, scale: [0.08, 1.0], ratio: [3.0 / 4.0, 4.0 / 3.0] },
                    hflip,
                ],
                vec![Transform::Resize { size: Size::Shorter(r) }, Transform::CenterCrop { size }],
                normalize(IMAGENET_MEAN, IMAGENET_STD),
            ),
            "cifar" => (
                vec![
                    Transform::Resize { size: Size::Exact(size) },
                    Transform::RandomCrop { size, padding: 4, pad_if_needed: false },
                    hflip,
                ],
                vec![Transform::Resize { size: Size::Exact(size) }],
                normalize(CIFAR_MEAN, CIFAR_STD),
            ),
            _ => {
                return Err(Error::invalid(
                    what,
                    format!("unknown preset `{name}`; expected one of {}", PRESETS.join(", ")),
                ));
            }
        };
        let finish = |mut steps: Vec<Transform>| {
            steps.insert(0, channels.clone());
            if name != "d2l" {
                steps.push(Transform::ToTensor);
                steps.extend(norm.clone());
            }
            Pipeline::new(steps)
        };
        Ok(Transforms { train: finish(train)?, eval: finish(eval)? })
    }

    /// Checks that both pipelines turn every image into `input` (`[c, h, w]`).
    pub fn check(&self, input: [usize; 3]) -> Result<()> {
        fn rename(what: &'static str) -> impl Fn(Error) -> Error {
            move |e| match e {
                Error::Invalid { message, .. } => Error::invalid(what, message),
                other => other,
            }
        }
        self.train.check(input).map_err(rename("train transforms"))?;
        self.eval.check(input).map_err(rename("eval transforms"))
    }
}

/// ImageNet channel means.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// CIFAR-10 channel means (torchvision's references).
pub const CIFAR_MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
/// CIFAR-10 channel standard deviations.
pub const CIFAR_STD: [f32; 3] = [0.2470, 0.2435, 0.2616];

/// The 1000 ImageNet class names in torchvision's order.
pub fn imagenet_classes() -> Vec<&'static str> {
    include_str!("../imagenet_classes.txt").lines().collect()
}

// The float path below is torchvision's transform on a float *tensor* (`v2.Resize(antialias=True)`
// on a `[0, 1]` tensor), kept for callers and fixtures that use it; it differs from the PIL path
// above by up to about 1e-2 because Pillow rounds to 8 bits after each pass.

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

/// torchvision's eval transform on a float tensor made from an RGB8 image (`width × height`, interleaved): returns the
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
