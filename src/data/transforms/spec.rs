//! The command-line syntax of a [`Pipeline`] (documented there): [`Pipeline::parse`] and the
//! `Display` that prints it back.

use std::fmt;

use super::pipeline::{Pipeline, Size, Transform, default_ratio, default_scale};
use super::{CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD};
use crate::error::{Error, Result};

/// The step names, as the error messages list them.
const STEP_NAMES: &str = "grayscale, rgb, resize, center-crop, random-crop, random-resized-crop, hflip, \
                          color-jitter, to-tensor, normalize, tensor-resize";

/// `HxW`.
pub(super) fn hw([h, w]: [usize; 2]) -> String {
    format!("{h}x{w}")
}

/// A square `S` or `HxW`.
fn size_text(s: [usize; 2]) -> String {
    if s[0] == s[1] { s[0].to_string() } else { hw(s) }
}

fn floats_text(v: &[f32]) -> String {
    v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(":")
}

impl fmt::Display for Transform {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name();
        match self {
            Transform::Grayscale { num_output_channels: 1 } | Transform::Rgb | Transform::ToTensor => {
                write!(out, "{name}")
            }
            Transform::Grayscale { num_output_channels } => write!(out, "{name}={num_output_channels}"),
            Transform::Resize { size: Size::Shorter(s) } => write!(out, "{name}={s}"),
            Transform::Resize { size: Size::Exact(s) } | Transform::TensorResize { size: s } => {
                write!(out, "{name}={}", hw(*s))
            }
            Transform::CenterCrop { size } => write!(out, "{name}={}", size_text(*size)),
            Transform::RandomCrop { size, padding, pad_if_needed } => {
                write!(out, "{name}={}", size_text(*size))?;
                if *padding > 0 || *pad_if_needed {
                    write!(out, ":{padding}")?;
                }
                if *pad_if_needed {
                    write!(out, ":pad-if-needed")?;
                }
                Ok(())
            }
            Transform::RandomResizedCrop { size, scale, ratio } => {
                write!(out, "{name}={}", size_text(*size))?;
                if *scale != default_scale() || *ratio != default_ratio() {
                    write!(out, ":{}:{}:{}:{}", scale[0], scale[1], ratio[0], ratio[1])?;
                }
                Ok(())
            }
            Transform::HorizontalFlip { p } => write!(out, "{name}={p}"),
            Transform::ColorJitter { brightness, contrast, saturation, hue } => {
                write!(out, "{name}={brightness}:{contrast}:{saturation}:{hue}")
            }
            Transform::Normalize { mean, std } => {
                if mean[..] == IMAGENET_MEAN && std[..] == IMAGENET_STD {
                    write!(out, "{name}=imagenet")
                } else if mean[..] == CIFAR_MEAN && std[..] == CIFAR_STD {
                    write!(out, "{name}=cifar")
                } else {
                    write!(out, "{name}={}/{}", floats_text(mean), floats_text(std))
                }
            }
        }
    }
}

impl fmt::Display for Pipeline {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.steps.iter().enumerate() {
            if i > 0 {
                write!(out, ",")?;
            }
            write!(out, "{step}")?;
        }
        Ok(())
    }
}

/// Parses `S` or `HxW`.
fn parse_size(text: &str) -> Option<[usize; 2]> {
    match text.split_once('x') {
        Some((h, w)) => Some([h.trim().parse().ok()?, w.trim().parse().ok()?]),
        None => {
            let s = text.trim().parse().ok()?;
            Some([s, s])
        }
    }
}

fn parse_floats<T: std::str::FromStr>(text: &str) -> Option<Vec<T>> {
    text.split(':').map(|v| v.trim().parse().ok()).collect()
}

/// One step of the spec, or what was expected of it.
fn parse_step(step: &str) -> std::result::Result<Transform, String> {
    let (name, args) = match step.split_once('=') {
        Some((n, a)) => (n.trim(), Some(a.trim())),
        None => (step.trim(), None),
    };
    let expected = |syntax: &str| format!("expected {syntax}");
    let t = match (name, args) {
        ("grayscale", None) => Transform::Grayscale { num_output_channels: 1 },
        ("grayscale", Some(a)) => Transform::Grayscale {
            num_output_channels: a.parse().map_err(|_| expected("grayscale=1 or grayscale=3"))?,
        },
        ("rgb", None) => Transform::Rgb,
        ("to-tensor", None) => Transform::ToTensor,
        ("resize", Some(a)) => {
            let bad = || expected("resize=S (shorter side) or resize=HxW, with positive integers");
            let size = if a.contains('x') {
                Size::Exact(parse_size(a).ok_or_else(bad)?)
            } else {
                Size::Shorter(a.parse().map_err(|_| bad())?)
            };
            Transform::Resize { size }
        }
        ("center-crop", Some(a)) => Transform::CenterCrop {
            size: parse_size(a).ok_or_else(|| expected("center-crop=S or center-crop=HxW"))?,
        },
        ("tensor-resize", Some(a)) => Transform::TensorResize {
            size: parse_size(a).ok_or_else(|| expected("tensor-resize=HxW or tensor-resize=S"))?,
        },
        ("random-crop", Some(a)) => {
            let bad = || expected("random-crop=S or HxW, then optionally :PADDING and :pad-if-needed");
            let mut parts = a.split(':');
            let size = parts.next().and_then(parse_size).ok_or_else(bad)?;
            let (mut padding, mut pad_if_needed) = (0, false);
            for (i, part) in parts.enumerate() {
                match (i, part.trim()) {
                    (_, "pad-if-needed") if !pad_if_needed => pad_if_needed = true,
                    (0, p) => padding = p.parse().map_err(|_| bad())?,
                    _ => return Err(bad()),
                }
            }
            Transform::RandomCrop { size, padding, pad_if_needed }
        }
        ("random-resized-crop", Some(a)) => {
            let bad =
                || expected("random-resized-crop=S or HxW, optionally followed by :SMIN:SMAX:RMIN:RMAX");
            let (size, rest) = match a.split_once(':') {
                Some((s, r)) => (s, Some(r)),
                None => (a, None),
            };
            let size = parse_size(size).ok_or_else(bad)?;
            let (scale, ratio) = match rest {
                None => (default_scale(), default_ratio()),
                Some(r) => match parse_floats::<f64>(r).as_deref() {
                    Some(&[s0, s1, r0, r1]) => ([s0, s1], [r0, r1]),
                    _ => return Err(bad()),
                },
            };
            Transform::RandomResizedCrop { size, scale, ratio }
        }
        ("hflip", None) => Transform::HorizontalFlip { p: 0.5 },
        ("hflip", Some(a)) => Transform::HorizontalFlip {
            p: a.parse().map_err(|_| expected("hflip or hflip=P with a probability P"))?,
        },
        ("color-jitter", Some(a)) => match parse_floats::<f64>(a).as_deref() {
            Some(&[brightness, contrast, saturation]) => {
                Transform::ColorJitter { brightness, contrast, saturation, hue: 0.0 }
            }
            Some(&[brightness, contrast, saturation, hue]) => {
                Transform::ColorJitter { brightness, contrast, saturation, hue }
            }
            _ => return Err(expected("color-jitter=BRIGHTNESS:CONTRAST:SATURATION[:HUE]")),
        },
        ("normalize", Some("imagenet")) => {
            Transform::Normalize { mean: IMAGENET_MEAN.to_vec(), std: IMAGENET_STD.to_vec() }
        }
        ("normalize", Some("cifar")) => {
            Transform::Normalize { mean: CIFAR_MEAN.to_vec(), std: CIFAR_STD.to_vec() }
        }
        ("normalize", Some(a)) => {
            let bad = || expected("normalize=imagenet, normalize=cifar or normalize=M1:M2:M3/S1:S2:S3");
            let (m, s) = a.split_once('/').ok_or_else(bad)?;
            Transform::Normalize {
                mean: parse_floats(m).ok_or_else(bad)?,
                std: parse_floats(s).ok_or_else(bad)?,
            }
        }
        (
            "rgb"
            | "to-tensor"
            | "resize"
            | "center-crop"
            | "tensor-resize"
            | "random-crop"
            | "random-resized-crop"
            | "color-jitter"
            | "normalize",
            _,
        ) => {
            return Err(if args.is_some() {
                format!("`{name}` takes no arguments")
            } else {
                format!("`{name}` needs arguments (`{name}=…`); see the syntax in `--help`")
            });
        }
        _ => return Err(format!("unknown step `{name}`; expected one of {STEP_NAMES}")),
    };
    t.validate()?;
    Ok(t)
}

impl Pipeline {
    /// Parses the command-line syntax described on [`Pipeline`].
    pub fn parse(spec: &str) -> Result<Self> {
        let mut steps = Vec::new();
        for (i, step) in spec.split(',').enumerate() {
            if step.trim().is_empty() {
                return Err(Error::invalid("transforms", format!("step {} of `{spec}` is empty", i + 1)));
            }
            let t = parse_step(step).map_err(|m| {
                Error::invalid("transforms", format!("step {} `{}`: {m}", i + 1, step.trim()))
            })?;
            steps.push(t);
        }
        Self::new(steps)
    }
}
