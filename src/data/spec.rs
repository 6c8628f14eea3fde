//! Which data set a run trains on ([`DatasetSpec`], stored in `config.json` as its command-line
//! string), which images validate it ([`ValSpec`]), and [`open`], which turns both into a training
//! and a validation [`Source`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::cifar::{self, Cifar};
use super::folder::ImageFolder;
use super::image::Image;
use super::source::Source;
use super::{DatasetKind, load, locate};
use crate::error::{Error, Result};

const CHOICES: &str = "fashion-mnist, mnist, cifar10, cifar100 or folder:PATH";

/// A data set: a built-in one or a folder of images (`fashion-mnist`, `mnist`, `cifar10`,
/// `cifar100`, `folder:PATH`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DatasetSpec {
    /// Zalando's Fashion-MNIST (grey 28×28, 10 classes).
    FashionMnist,
    /// LeCun's handwritten digits (grey 28×28, 10 classes).
    Mnist,
    /// CIFAR-10 (RGB 32×32, 10 classes).
    Cifar10,
    /// CIFAR-100 with its 100 fine labels (RGB 32×32).
    Cifar100,
    /// An image folder, torchvision's `ImageFolder` layout (or `train/` + `val/` of such folders).
    Folder(PathBuf),
}

impl FromStr for DatasetSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fashion-mnist" => Ok(Self::FashionMnist),
            "mnist" => Ok(Self::Mnist),
            "cifar10" => Ok(Self::Cifar10),
            "cifar100" => Ok(Self::Cifar100),
            _ => match s.strip_prefix("folder:") {
                Some("") => Err(Error::invalid("dataset", "`folder:` needs a path, e.g. folder:./my-images")),
                Some(path) => Ok(Self::Folder(PathBuf::from(path))),
                None => {
                    Err(Error::invalid("dataset", format!("unknown data set `{s}`; choose one of {CHOICES}")))
                }
            },
        }
    }
}

impl fmt::Display for DatasetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FashionMnist => f.write_str("fashion-mnist"),
            Self::Mnist => f.write_str("mnist"),
            Self::Cifar10 => f.write_str("cifar10"),
            Self::Cifar100 => f.write_str("cifar100"),
            Self::Folder(path) => write!(f, "folder:{}", path.display()),
        }
    }
}

impl From<DatasetKind> for DatasetSpec {
    fn from(kind: DatasetKind) -> Self {
        match kind {
            DatasetKind::FashionMnist => Self::FashionMnist,
            DatasetKind::Mnist => Self::Mnist,
        }
    }
}

impl Serialize for DatasetSpec {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DatasetSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Which images validate a run.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ValSpec {
    /// The official test split of a built-in set; for a folder, its `val/` when it is laid out
    /// ImageNet-style (`train/` + `val/`).
    #[default]
    Default,
    /// An image folder (`--val folder:PATH`), labelled by the training set's class names.
    Folder(PathBuf),
    /// A fraction `0 < F < 1` of the training images held out (`--val-split F`), chosen by the seed.
    Split(f64),
}

impl ValSpec {
    /// From the flags `--val folder:PATH` and `--val-split F` (at most one of them).
    pub fn from_flags(val: Option<&str>, val_split: Option<f64>) -> Result<Self> {
        match (val, val_split) {
            (Some(_), Some(_)) => Err(Error::invalid("--val", "give either --val or --val-split, not both")),
            (Some(v), None) => match v.strip_prefix("folder:") {
                Some(path) if !path.is_empty() => Ok(Self::Folder(PathBuf::from(path))),
                _ => Err(Error::invalid("--val", format!("`{v}` is not folder:PATH"))),
            },
            (None, Some(f)) => Self::split(f),
            (None, None) => Ok(Self::Default),
        }
    }

    /// `Split(f)`, checking `0 < f < 1`.
    pub fn split(f: f64) -> Result<Self> {
        if f > 0.0 && f < 1.0 {
            Ok(Self::Split(f))
        } else {
            Err(Error::invalid("--val-split", format!("{f} is not a fraction strictly between 0 and 1")))
        }
    }
}

impl fmt::Display for ValSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::Folder(path) => write!(f, "folder:{}", path.display()),
            Self::Split(x) => write!(f, "split:{x}"),
        }
    }
}

impl FromStr for ValSpec {
    type Err = Error;

    /// `default`, `folder:PATH` or `split:F` (the [`fmt::Display`] form).
    fn from_str(s: &str) -> Result<Self> {
        if s == "default" {
            return Ok(Self::Default);
        }
        if let Some(f) = s.strip_prefix("split:") {
            let f = f
                .parse::<f64>()
                .map_err(|_| Error::invalid("--val-split", format!("`{f}` is not a number")))?;
            return Self::split(f);
        }
        Self::from_flags(Some(s), None)
    }
}

impl Serialize for ValSpec {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ValSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// An opened data set.
#[derive(Clone)]
pub struct Opened {
    /// The training images.
    pub train: Arc<dyn Source>,
    /// The validation images.
    pub val: Arc<dyn Source>,
    /// Class names in label order.
    pub classes: Vec<String>,
    /// Channels the images come with and a model takes: 1 for (Fashion-)MNIST, 3 for CIFAR and
    /// folders (whose images are converted to RGB).
    pub channels: usize,
    /// Where the data was found (the folder of the files, or the image folder).
    pub location: PathBuf,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("train", &self.train.len())
            .field("val", &self.val.len())
            .field("classes", &self.classes.len())
            .field("channels", &self.channels)
            .field("location", &self.location)
            .finish()
    }
}

/// Opens `spec` (built-in sets searched for from `data_dir`, i.e. `--data`, as [`locate`] and
/// [`cifar::locate`] do, downloading if needed) with validation images as `val` says; a
/// `--val-split` holds out the same images for the same `seed`.
pub fn open(spec: &DatasetSpec, data_dir: Option<&Path>, val: &ValSpec, seed: u64) -> Result<Opened> {
    if let ValSpec::Split(f) = *val {
        ValSpec::split(f)?;
    }
    let (train, official_val, classes, channels, location): (
        Arc<dyn Source>,
        Option<Arc<dyn Source>>,
        _,
        _,
        _,
    ) = match spec {
        DatasetSpec::FashionMnist | DatasetSpec::Mnist => {
            let kind =
                if *spec == DatasetSpec::Mnist { DatasetKind::Mnist } else { DatasetKind::FashionMnist };
            let dir = locate(kind, data_dir)?;
            let data = load(kind, &dir)?;
            let classes = kind.classes().iter().map(|c| c.to_string()).collect();
            (Arc::new(data.train), Some(Arc::new(data.test)), classes, 1, dir)
        }
        DatasetSpec::Cifar10 | DatasetSpec::Cifar100 => {
            let which = if *spec == DatasetSpec::Cifar10 { Cifar::Ten } else { Cifar::Hundred };
            let dir = cifar::locate(which, data_dir)?;
            let data = cifar::load(which, &dir)?;
            (Arc::new(data.train), Some(Arc::new(data.test)), data.classes, 3, dir)
        }
        DatasetSpec::Folder(root) => {
            let (train_dir, val_dir) = (root.join("train"), root.join("val"));
            let imagenet_style = train_dir.is_dir() && val_dir.is_dir();
            let train = ImageFolder::scan(if imagenet_style { &train_dir } else { root })?;
            let classes = train.classes().to_vec();
            let official: Option<Arc<dyn Source>> = match (val, imagenet_style) {
                (ValSpec::Default, true) => {
                    Some(Arc::new(ImageFolder::scan_with_classes(&val_dir, &classes)?))
                }
                (ValSpec::Default, false) => {
                    return Err(Error::invalid(
                        "validation set",
                        format!(
                            "`{}` is one image folder, not `train/` + `val/` folders: pass --val \
                                 folder:PATH for separate validation images, or --val-split F to hold out a \
                                 fraction F of these",
                            root.display()
                        ),
                    ));
                }
                _ => None,
            };
            (Arc::new(train), official, classes, 3, root.clone())
        }
    };
    let (train, val): (Arc<dyn Source>, Arc<dyn Source>) = match val {
        ValSpec::Default => match official_val {
            Some(v) => (train, v),
            None => return Err(Error::invalid("validation set", "no default validation split")),
        },
        ValSpec::Folder(dir) => {
            (train, Arc::new(ImageFolder::scan_with_classes(dir, &classes)?.with_channels(channels)))
        }
        ValSpec::Split(f) => {
            let (keep, held) = holdout(train.len(), *f, seed)?;
            (Arc::new(Subset::new(train.clone(), keep)), Arc::new(Subset::new(train, held)))
        }
    };
    Ok(Opened { train, val, classes, channels, location })
}

/// Splits `0..n` into (kept, held out), holding out `round(n · fraction)` indices (at least one,
/// leaving at least one) chosen by a seeded shuffle (splitmix64 + Fisher–Yates, stable across
/// versions and platforms); both lists sorted.
pub fn holdout(n: usize, fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(Error::invalid("--val-split", format!("{fraction} is not strictly between 0 and 1")));
    }
    if n < 2 {
        return Err(Error::invalid(
            "--val-split",
            format!("the training set has {n} image(s); cannot split it"),
        ));
    }
    let k = ((n as f64 * fraction).round() as usize).clamp(1, n - 1);
    let mut state = seed ^ 0x5eed_da7a_5e7d_a7a5;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let mut held = order[..k].to_vec();
    let mut kept = order[k..].to_vec();
    held.sort_unstable();
    kept.sort_unstable();
    Ok((kept, held))
}

/// The images `indices` of another source, renumbered from 0.
#[derive(Clone)]
pub struct Subset {
    inner: Arc<dyn Source>,
    indices: Vec<usize>,
}

impl Subset {
    /// `inner`'s images at `indices` (each `< inner.len()`).
    pub fn new(inner: Arc<dyn Source>, indices: Vec<usize>) -> Self {
        Self { inner, indices }
    }

    /// The index in the underlying source of image `i`.
    pub fn index(&self, i: usize) -> usize {
        self.indices[i]
    }
}

impl Source for Subset {
    fn len(&self) -> usize {
        self.indices.len()
    }

    fn label(&self, i: usize) -> usize {
        self.inner.label(self.indices[i])
    }

    fn get(&self, i: usize) -> Result<Image> {
        self.inner.get(self.indices[i])
    }

    fn name(&self, i: usize) -> String {
        self.inner.name(self.indices[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdout_is_seeded_disjoint_and_complete() {
        let (kept, held) = holdout(100, 0.2, 7).unwrap();
        assert_eq!((kept.len(), held.len()), (80, 20));
        let mut all: Vec<usize> = kept.iter().chain(&held).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(holdout(100, 0.2, 7).unwrap().1, held);
        assert_ne!(holdout(100, 0.2, 8).unwrap().1, held);
        assert_eq!(holdout(3, 0.01, 1).unwrap().1.len(), 1);
        assert_eq!(holdout(3, 0.99, 1).unwrap().0.len(), 1);
        assert!(holdout(1, 0.5, 1).is_err());
        assert!(holdout(10, 1.0, 1).is_err());
        assert!(holdout(10, f64::NAN, 1).is_err());
    }
}
