//! [`Transform`] steps, the [`Pipeline`] that runs them (its command-line syntax is in `spec.rs`)
//! and the random parameters torchvision draws.

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::super::image::Image;
use super::functional as f;
use super::spec::hw;
use crate::error::{Error, Result};

/// A resize target: torchvision's `Resize(int)` (the shorter side, aspect kept) or
/// `Resize((h, w))`. Stored as a number or as `[h, w]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Size {
    /// The shorter side becomes this; the longer is scaled and truncated like torchvision.
    Shorter(usize),
    /// Exactly `[h, w]`.
    Exact([usize; 2]),
}

/// One step of a [`Pipeline`]; each is torchvision's transform of the same name on a PIL image
/// (8-bit, until [`Transform::ToTensor`]) or on the tensor after it. Stored in `config.json` as
/// `{"step": "center-crop", "size": [224, 224]}` and so on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Transform {
    /// `Grayscale(num_output_channels)`: PIL's `convert("L")`, repeated to 1 or 3 channels.
    Grayscale {
        /// 1 or 3.
        num_output_channels: usize,
    },
    /// PIL's `convert("RGB")`: a grey image's level in three channels.
    Rgb,
    /// `Resize(size)`: Pillow's antialiased bilinear resampling.
    Resize {
        /// Shorter side or exact size.
        size: Size,
    },
    /// `CenterCrop(size)`, zero-padded where the image is smaller.
    CenterCrop {
        /// `[h, w]`.
        size: [usize; 2],
    },
    /// `RandomCrop(size, padding, pad_if_needed)` with fill 0.
    RandomCrop {
        /// `[h, w]`.
        size: [usize; 2],
        /// Zero pixels added on every side first.
        #[serde(default)]
        padding: usize,
        /// Pad a side shorter than the crop up to it (on both ends).
        #[serde(default)]
        pad_if_needed: bool,
    },
    /// `RandomResizedCrop(size, scale, ratio)`, bilinear.
    RandomResizedCrop {
        /// `[h, w]` of the output.
        size: [usize; 2],
        /// Range of the crop's area as a fraction of the image's.
        #[serde(default = "default_scale")]
        scale: [f64; 2],
        /// Range of the crop's aspect ratio (width / height), sampled log-uniformly.
        #[serde(default = "default_ratio")]
        ratio: [f64; 2],
    },
    /// `RandomHorizontalFlip(p)`.
    #[serde(rename = "hflip")]
    HorizontalFlip {
        /// Probability of a flip.
        p: f64,
    },
    /// `ColorJitter(brightness, contrast, saturation, hue)`; 0 disables a component.
    ColorJitter {
        /// Factor drawn from [max(0, 1 − b), 1 + b].
        brightness: f64,
        /// Factor drawn from [max(0, 1 − c), 1 + c].
        contrast: f64,
        /// Factor drawn from [max(0, 1 − s), 1 + s].
        saturation: f64,
        /// Shift drawn from [−h, h], at most 0.5.
        hue: f64,
    },
    /// `ToTensor`: planar floats `v / 255`.
    ToTensor,
    /// `Normalize(mean, std)` per channel (one value applies to every channel).
    Normalize {
        /// Per-channel means.
        mean: Vec<f32>,
        /// Per-channel standard deviations.
        std: Vec<f32>,
    },
    /// d2l's resize of the float tensor: PyTorch bilinear, `align_corners=False`, not
    /// antialiased (what `crate::data::resize` does to a batch).
    TensorResize {
        /// `[h, w]`.
        size: [usize; 2],
    },
}

pub(super) fn default_scale() -> [f64; 2] {
    [0.08, 1.0]
}

pub(super) fn default_ratio() -> [f64; 2] {
    [3.0 / 4.0, 4.0 / 3.0]
}

impl Transform {
    /// The name in the spec syntax and in `config.json`.
    pub fn name(&self) -> &'static str {
        match self {
            Transform::Grayscale { .. } => "grayscale",
            Transform::Rgb => "rgb",
            Transform::Resize { .. } => "resize",
            Transform::CenterCrop { .. } => "center-crop",
            Transform::RandomCrop { .. } => "random-crop",
            Transform::RandomResizedCrop { .. } => "random-resized-crop",
            Transform::HorizontalFlip { .. } => "hflip",
            Transform::ColorJitter { .. } => "color-jitter",
            Transform::ToTensor => "to-tensor",
            Transform::Normalize { .. } => "normalize",
            Transform::TensorResize { .. } => "tensor-resize",
        }
    }

    /// Whether the step works on the float tensor (after `to-tensor`) rather than the image.
    fn on_tensor(&self) -> bool {
        matches!(self, Transform::Normalize { .. } | Transform::TensorResize { .. })
    }

    /// Whether the step draws from the random generator.
    pub fn is_random(&self) -> bool {
        matches!(
            self,
            Transform::RandomCrop { .. }
                | Transform::RandomResizedCrop { .. }
                | Transform::HorizontalFlip { .. }
                | Transform::ColorJitter { .. }
        )
    }

    /// Checks the step's values; the message says what was expected.
    pub(super) fn validate(&self) -> std::result::Result<(), String> {
        let positive = |s: [usize; 2]| {
            if s[0] == 0 || s[1] == 0 {
                Err(format!("sizes must be at least 1, got {}", hw(s)))
            } else {
                Ok(())
            }
        };
        let range = |r: [f64; 2], what: &str| {
            if r[0].is_finite() && r[1].is_finite() && r[0] > 0.0 && r[0] <= r[1] {
                Ok(())
            } else {
                Err(format!("{what} must be a range 0 < min <= max, got {}..{}", r[0], r[1]))
            }
        };
        match self {
            Transform::Grayscale { num_output_channels: n } if *n != 1 && *n != 3 => {
                Err(format!("num_output_channels must be 1 or 3, got {n}"))
            }
            Transform::Resize { size: Size::Shorter(0) } => Err("the size must be at least 1".into()),
            Transform::Resize { size: Size::Exact(s) }
            | Transform::CenterCrop { size: s }
            | Transform::RandomCrop { size: s, .. }
            | Transform::TensorResize { size: s } => positive(*s),
            Transform::RandomResizedCrop { size, scale, ratio } => {
                positive(*size)?;
                range(*scale, "scale")?;
                range(*ratio, "ratio")
            }
            Transform::HorizontalFlip { p } if !(0.0..=1.0).contains(p) => {
                Err(format!("the probability must lie in [0, 1], got {p}"))
            }
            Transform::ColorJitter { brightness, contrast, saturation, hue } => {
                for (what, v) in
                    [("brightness", brightness), ("contrast", contrast), ("saturation", saturation)]
                {
                    if !(v.is_finite() && *v >= 0.0) {
                        return Err(format!("{what} must be a finite number >= 0, got {v}"));
                    }
                }
                if !(0.0..=0.5).contains(hue) {
                    return Err(format!("hue must lie in [0, 0.5], got {hue}"));
                }
                Ok(())
            }
            Transform::Normalize { mean, std } => {
                if mean.len() != std.len() || !(mean.len() == 1 || mean.len() == 3) {
                    return Err(format!(
                        "needs 1 or 3 means and as many standard deviations, got {} and {}",
                        mean.len(),
                        std.len()
                    ));
                }
                if std.iter().any(|s| !(s.is_finite() && *s != 0.0)) || mean.iter().any(|m| !m.is_finite()) {
                    return Err("means must be finite and standard deviations finite and non-zero".into());
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// A sequence of [`Transform`]s: what turns one [`Image`] into a model's input. Stored in
/// `config.json` as the list of its steps.
///
/// # Command-line syntax
///
/// Steps separated by commas, each `name` or `name=arguments` (arguments separated by `:`;
/// `S` is a square size, `HxW` height × width):
///
/// | step | meaning (torchvision) |
/// |---|---|
/// | `grayscale`, `grayscale=3` | `Grayscale(1)`, `Grayscale(3)` |
/// | `rgb` | PIL `convert("RGB")` |
/// | `resize=S`, `resize=HxW` | `Resize(S)` (shorter side), `Resize((H, W))` |
/// | `center-crop=S`, `center-crop=HxW` | `CenterCrop` |
/// | `random-crop=S[:PAD][:pad-if-needed]` | `RandomCrop(S, padding=PAD, pad_if_needed=…)` |
/// | `random-resized-crop=S[:SMIN:SMAX:RMIN:RMAX]` | `RandomResizedCrop(S, scale, ratio)` |
/// | `hflip`, `hflip=P` | `RandomHorizontalFlip(0.5)`, `RandomHorizontalFlip(P)` |
/// | `color-jitter=B:C:S[:H]` | `ColorJitter(B, C, S, H)` |
/// | `to-tensor` | `ToTensor()` |
/// | `normalize=imagenet`, `=cifar`, `=M1:M2:M3/S1:S2:S3` | `Normalize(mean, std)` |
/// | `tensor-resize=HxW` | d2l's non-antialiased bilinear resize of the float tensor |
///
/// e.g. `resize=256,center-crop=224,to-tensor,normalize=imagenet`. Image steps come before
/// `to-tensor`, `normalize` and `tensor-resize` after it; a pipeline without `to-tensor` ends
/// with one.
///
/// # Randomness
///
/// The random steps draw only from the generator given to [`Pipeline::apply`], in torchvision's
/// order (e.g. `ColorJitter` draws its permutation, then its factors), so that a loader seeding
/// one generator per (seed, epoch, image) gets the same images whatever its thread count.
/// Steps without randomness draw nothing.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pipeline {
    /// The steps in order.
    pub steps: Vec<Transform>,
}

/// The shape an image would have at some point: channels and `[h, w]`, `None` where it depends
/// on the input image.
type Shape = (Option<usize>, Option<[usize; 2]>);

impl Pipeline {
    /// A pipeline of these steps (checked as [`Pipeline::apply`] would).
    pub fn new(steps: Vec<Transform>) -> Result<Self> {
        let p = Self { steps };
        p.validate()?;
        Ok(p)
    }

    /// Checks every step's values and their order (image steps before `to-tensor`, tensor
    /// steps after it, `to-tensor` at most once).
    pub fn validate(&self) -> Result<()> {
        let mut tensor = false;
        for (i, step) in self.steps.iter().enumerate() {
            let at = |m: String| Error::invalid("transforms", format!("step {} `{step}`: {m}", i + 1));
            step.validate().map_err(at)?;
            match (step, tensor) {
                (Transform::ToTensor, true) => return Err(at("`to-tensor` appears twice".into())),
                (Transform::ToTensor, false) => tensor = true,
                (s, false) if s.on_tensor() => {
                    return Err(at(format!("`{}` works on the tensor: put it after `to-tensor`", s.name())));
                }
                (s, true) if !s.on_tensor() => {
                    return Err(at(format!(
                        "`{}` works on the 8-bit image: put it before `to-tensor`",
                        s.name()
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether any step draws random numbers (the train pipelines).
    pub fn is_random(&self) -> bool {
        self.steps.iter().any(Transform::is_random)
    }

    /// Follows the shape through the steps; unknown sizes stay `None`.
    fn walk(&self, (mut c, mut size): Shape) -> Result<Shape> {
        self.validate()?;
        for (i, step) in self.steps.iter().enumerate() {
            match step {
                Transform::Grayscale { num_output_channels: n } => c = Some(*n),
                Transform::Rgb => c = Some(3),
                Transform::Resize { size: Size::Shorter(s) } => {
                    size = size.map(|hw| f::shorter_side_size(hw, *s))
                }
                Transform::Resize { size: Size::Exact(s) }
                | Transform::CenterCrop { size: s }
                | Transform::RandomResizedCrop { size: s, .. }
                | Transform::TensorResize { size: s } => size = Some(*s),
                Transform::RandomCrop { size: s, .. } => size = Some(*s),
                Transform::Normalize { mean, .. } => {
                    if let Some(n) = c
                        && mean.len() != 1
                        && mean.len() != n
                    {
                        return Err(Error::invalid(
                            "transforms",
                            format!("step {} `{step}` has {} means for {n} channels", i + 1, mean.len()),
                        ));
                    }
                }
                Transform::HorizontalFlip { .. } | Transform::ColorJitter { .. } | Transform::ToTensor => {}
            }
        }
        Ok((c, size))
    }

    /// The `[c, h, w]` this pipeline makes of an image of shape `[c, h, w]`.
    pub fn output_shape(&self, [c, h, w]: [usize; 3]) -> Result<[usize; 3]> {
        match self.walk((Some(c), Some([h, w])))? {
            (Some(c), Some([h, w])) => Ok([c, h, w]),
            _ => Err(Error::invalid("transforms", "the output shape is unknown")),
        }
    }

    /// Checks that every image comes out as `input` (`[c, h, w]`), whatever its size and
    /// channels.
    pub fn check(&self, input: [usize; 3]) -> Result<()> {
        let (c, size) = self.walk((None, None))?;
        let got = |v: Option<usize>| v.map_or("that of the image".to_string(), |v| v.to_string());
        if c != Some(input[0]) {
            return Err(Error::invalid(
                "transforms",
                format!(
                    "`{self}` gives {} channels, the model takes {}; start with `grayscale` or `rgb`",
                    got(c),
                    input[0]
                ),
            ));
        }
        if size != Some([input[1], input[2]]) {
            let size = size.map_or("a size that depends on the image".to_string(), hw);
            return Err(Error::invalid(
                "transforms",
                format!(
                    "`{self}` gives images of {size}, the model takes {}; end with a crop or \
                     `resize=HxW`",
                    hw([input[1], input[2]])
                ),
            ));
        }
        Ok(())
    }

    /// Runs the steps on `img`: the planar `[c, h, w]` floats and that shape. Random steps draw
    /// from `rng` only.
    pub fn apply(&self, img: Image, rng: &mut StdRng) -> Result<(Vec<f32>, [usize; 3])> {
        self.validate()?;
        let img = Image::new(img.width, img.height, img.channels, img.data)?;
        if img.width == 0 || img.height == 0 {
            return Err(Error::invalid("image", format!("{}x{} has no pixels", img.width, img.height)));
        }
        let mut img = img;
        let mut tensor: Option<(Vec<f32>, [usize; 3])> = None;
        for step in &self.steps {
            if let Some((x, shape)) = tensor.as_mut() {
                match step {
                    Transform::Normalize { mean, std } => {
                        if mean.len() != 1 && mean.len() != shape[0] {
                            return Err(Error::invalid(
                                "transforms",
                                format!("`{step}` has {} means for {} channels", mean.len(), shape[0]),
                            ));
                        }
                        f::normalize(x, shape[0], mean, std);
                    }
                    Transform::TensorResize { size } => {
                        *x = f::tensor_resize(x, *shape, *size);
                        *shape = [shape[0], size[0], size[1]];
                    }
                    _ => {}
                }
                continue;
            }
            img = match step {
                Transform::Grayscale { num_output_channels } => {
                    let g = f::grayscale(&img);
                    if *num_output_channels == 3 { f::to_rgb(&g) } else { g }
                }
                Transform::Rgb => f::to_rgb(&img),
                Transform::Resize { size: Size::Shorter(s) } => {
                    f::resize(&img, f::shorter_side_size([img.height, img.width], *s))
                }
                Transform::Resize { size: Size::Exact(s) } => f::resize(&img, *s),
                Transform::CenterCrop { size } => f::center_crop(&img, *size),
                Transform::RandomCrop { size, padding, pad_if_needed } => {
                    random_crop(&img, *size, *padding, *pad_if_needed, rng)?
                }
                Transform::RandomResizedCrop { size, scale, ratio } => {
                    let (top, left, h, w) =
                        random_resized_crop_params(img.height, img.width, *scale, *ratio, rng);
                    f::resized_crop(&img, top as i64, left as i64, h, w, *size)
                }
                Transform::HorizontalFlip { p } => {
                    if rng.random::<f64>() < *p {
                        f::hflip(&img)
                    } else {
                        img
                    }
                }
                Transform::ColorJitter { brightness, contrast, saturation, hue } => {
                    color_jitter(img, [*brightness, *contrast, *saturation, *hue], rng)?
                }
                Transform::ToTensor => {
                    tensor = Some((f::to_tensor(&img), [img.channels, img.height, img.width]));
                    continue;
                }
                Transform::Normalize { .. } | Transform::TensorResize { .. } => img,
            };
        }
        Ok(tensor.unwrap_or_else(|| (f::to_tensor(&img), [img.channels, img.height, img.width])))
    }
}

/// A uniform draw from `[lo, hi)` (torch's `uniform_`), also when `lo == hi`.
fn uniform(rng: &mut StdRng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// torchvision's `RandomResizedCrop.get_params`: `(top, left, h, w)` of a crop whose area is a
/// fraction in `scale` of the image's and whose aspect ratio (w / h) is log-uniform in `ratio`;
/// ten tries, then the whole image, or its center cropped to the nearest allowed ratio.
pub fn random_resized_crop_params(
    height: usize,
    width: usize,
    scale: [f64; 2],
    ratio: [f64; 2],
    rng: &mut StdRng,
) -> (usize, usize, usize, usize) {
    let area = (height * width) as f64;
    let (log_lo, log_hi) = (ratio[0].ln(), ratio[1].ln());
    for _ in 0..10 {
        let target = area * uniform(rng, scale[0], scale[1]);
        let aspect = uniform(rng, log_lo, log_hi).exp();
        let w = (target * aspect).sqrt().round_ties_even() as usize;
        let h = (target / aspect).sqrt().round_ties_even() as usize;
        if 0 < w && w <= width && 0 < h && h <= height {
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            return (top, left, h, w);
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (h, w) = if in_ratio < ratio[0] {
        ((width as f64 / ratio[0]).round_ties_even() as usize, width)
    } else if in_ratio > ratio[1] {
        (height, (height as f64 * ratio[1]).round_ties_even() as usize)
    } else {
        (height, width)
    };
    // (At least one pixel, also for extreme ratios on tiny images.)
    let (h, w) = (h.clamp(1, height.max(1)), w.clamp(1, width.max(1)));
    ((height - h) / 2, (width - w) / 2, h, w)
}

/// torchvision's `RandomCrop`: pad, pad up to the crop if asked, then a uniformly placed window.
fn random_crop(
    img: &Image,
    size: [usize; 2],
    padding: usize,
    pad_if_needed: bool,
    rng: &mut StdRng,
) -> Result<Image> {
    let mut padded = if padding > 0 { Some(f::pad(img, [padding; 4])) } else { None };
    let cur = |p: &Option<Image>| p.as_ref().map_or((img.height, img.width), |i| (i.height, i.width));
    if pad_if_needed && cur(&padded).1 < size[1] {
        let d = size[1] - cur(&padded).1;
        padded = Some(f::pad(padded.as_ref().unwrap_or(img), [d, 0, d, 0]));
    }
    if pad_if_needed && cur(&padded).0 < size[0] {
        let d = size[0] - cur(&padded).0;
        padded = Some(f::pad(padded.as_ref().unwrap_or(img), [0, d, 0, d]));
    }
    let src = padded.as_ref().unwrap_or(img);
    let [th, tw] = size;
    if src.height < th || src.width < tw {
        return Err(Error::invalid(
            "random-crop",
            format!(
                "the crop {th}x{tw} is larger than the (padded) image {}x{}; add :pad-if-needed or resize first",
                src.height, src.width
            ),
        ));
    }
    if (src.height, src.width) == (th, tw) {
        return Ok(src.clone());
    }
    let top = rng.random_range(0..=src.height - th);
    let left = rng.random_range(0..=src.width - tw);
    Ok(f::crop(src, top as i64, left as i64, th, tw))
}

/// torchvision's `ColorJitter`: a random order of the four adjustments, then each enabled
/// one's factor, then the adjustments in that order.
fn color_jitter(img: Image, [b, c, s, h]: [f64; 4], rng: &mut StdRng) -> Result<Image> {
    let mut order = [0usize, 1, 2, 3];
    order.shuffle(rng);
    let factor = |rng: &mut StdRng, v: f64| (v > 0.0).then(|| uniform(rng, (1.0 - v).max(0.0), 1.0 + v));
    let fb = factor(rng, b);
    let fc = factor(rng, c);
    let fs = factor(rng, s);
    let fh = (h > 0.0).then(|| uniform(rng, -h, h));
    let mut img = img;
    for i in order {
        img = match (i, fb, fc, fs, fh) {
            (0, Some(v), ..) => f::adjust_brightness(&img, v),
            (1, _, Some(v), ..) => f::adjust_contrast(&img, v),
            (2, _, _, Some(v), _) => f::adjust_saturation(&img, v),
            (3, .., Some(v)) => f::adjust_hue(&img, v)?,
            _ => img,
        };
    }
    Ok(img)
}
