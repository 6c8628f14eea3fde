//! The data sets: Fashion-MNIST and MNIST (IDX readers that check what they read, the search for
//! the files — flag, environment, user cache, Debian's package, download — and batching with d2l's
//! preprocessing), CIFAR-10/100 ([`cifar`]) and image folders ([`folder`]), all opened as
//! [`source::Source`]s by [`spec::open`] from a [`spec::DatasetSpec`].

pub mod cifar;
pub mod decode;
pub mod download;
pub mod folder;
pub mod idx;
pub mod image;
pub mod loader;
pub mod source;
pub mod spec;
pub mod transforms;

pub use spec::{DatasetSpec, Opened, ValSpec, open};

use std::path::{Path, PathBuf};

use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// Zalando's Fashion-MNIST (d2l's data set).
    FashionMnist,
    /// LeCun's handwritten digits.
    Mnist,
}

/// Fashion-MNIST's class names, in label order.
pub const FASHION_CLASSES: [&str; 10] =
    ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"];
/// MNIST's class names.
pub const DIGIT_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// The four files of a split pair, without the `.gz` suffix.
pub const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

impl DatasetKind {
    /// Directory name under the cache and in Debian.
    pub fn dir_name(self) -> &'static str {
        match self {
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Mnist => "mnist",
        }
    }

    /// Class names in label order.
    pub fn classes(self) -> &'static [&'static str; 10] {
        match self {
            DatasetKind::FashionMnist => &FASHION_CLASSES,
            DatasetKind::Mnist => &DIGIT_CLASSES,
        }
    }
}

/// Images (`n × rows × cols`, u8) and labels of one split.
#[derive(Debug, Clone)]
pub struct Split {
    /// Row-major pixels, `n · rows · cols` bytes.
    pub images: Vec<u8>,
    /// One label per image.
    pub labels: Vec<u8>,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
}

impl Split {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The first `n` images (or all).
    pub fn truncate(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.images.truncate(n * self.rows * self.cols);
        self.labels.truncate(n);
        self
    }

    /// Reads an images/labels file pair and checks that they belong together. Given the
    /// official SHA-256 digests, files with the official image count must match them.
    pub fn load(images: &Path, labels: &Path, official: Option<(usize, [&str; 2])>) -> Result<Self> {
        let img = idx::read(images, 3)?;
        let lab = idx::read(labels, 1)?;
        if let Some((count, [img_sha, lab_sha])) = official {
            for (file, path, want) in [(&img, images, img_sha), (&lab, labels, lab_sha)] {
                if file.dims[0] == count && file.sha256 != want {
                    return Err(Error::bad_file(
                        path,
                        format!(
                            "has the official size but SHA-256 {} instead of the official {want}: the file is \
                             corrupt; delete it and run again to re-fetch it",
                            file.sha256
                        ),
                    ));
                }
            }
        }
        let (n, rows, cols) = (img.dims[0], img.dims[1], img.dims[2]);
        if lab.dims[0] != n {
            return Err(Error::bad_file(
                labels,
                format!("has {} labels but `{}` has {n} images", lab.dims[0], images.display()),
            ));
        }
        if let Some(bad) = lab.data.iter().find(|&&l| l > 9) {
            return Err(Error::bad_file(labels, format!("label {bad} is out of range 0..=9")));
        }
        Ok(Split { images: img.data, labels: lab.data, rows, cols })
    }

    /// Images `idx` as a `[b, 1, size, size]` batch in [0, 1], resized like d2l's
    /// `transforms.Resize(size)` (bilinear, half-pixel centres, as PyTorch's `align_corners=False`).
    pub fn batch(&self, idx: &[usize], size: [usize; 2], device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
        let px = self.rows * self.cols;
        let mut pixels = Vec::with_capacity(idx.len() * px);
        for &i in idx {
            pixels.extend(self.images[i * px..(i + 1) * px].iter().map(|&p| f32::from(p) / 255.0));
        }
        let labels: Vec<i64> = idx.iter().map(|&i| i64::from(self.labels[i])).collect();
        let x = Tensor::<4>::from_data(TensorData::new(pixels, [idx.len(), 1, self.rows, self.cols]), device);
        let x = resize(x, size);
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [idx.len()]), device);
        (x, y)
    }
}

/// Bilinear resize of a batch with PyTorch's `align_corners=False` semantics (no-op at equal size).
pub fn resize(x: Tensor<4>, [h, w]: [usize; 2]) -> Tensor<4> {
    let [_, _, xh, xw] = x.dims();
    if (xh, xw) == (h, w) {
        return x;
    }
    let options =
        InterpolateOptions::new(InterpolateMode::Bilinear).with_output_size([h, w]).with_align_corners(false);
    interpolate(x, options)
}

/// A train/test pair.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Which data set.
    pub kind: DatasetKind,
    /// Where the files were found.
    pub dir: PathBuf,
    /// 60,000 images in the official files.
    pub train: Split,
    /// 10,000 images in the official files.
    pub test: Split,
}

/// Finds the directory holding the four files of `kind`: `explicit` (`--data`) if given, else
/// `$CNNZOO_DATA`, the user cache, Debian's package, and finally a checksum-verified download
/// into the user cache.
pub fn locate(kind: DatasetKind, explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        return match missing_files(dir) {
            None => Ok(dir.to_path_buf()),
            Some(f) => Err(Error::bad_file(
                dir.join(f),
                "not found (looked for it and its .gz) in the --data directory",
            )),
        };
    }
    let candidates = search_path(kind);
    if let Some(dir) = candidates.iter().find(|d| missing_files(d).is_none()) {
        return Ok(dir.clone());
    }
    let cache = cache_dir(kind);
    match download::fetch_all(kind, &cache) {
        Ok(()) => Ok(cache),
        Err(download_err) => {
            let looked: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
            let apt = match kind {
                DatasetKind::FashionMnist => "`apt-get install dataset-fashion-mnist`, ",
                DatasetKind::Mnist => "",
            };
            Err(Error::invalid(
                "data",
                format!(
                    "{} not found in {} and the download failed ({download_err}); remedies: {apt}pass \
                     `--data DIR` with the four IDX files ({}, .gz or raw), set CNNZOO_DATA=DIR, or \
                     put them in {}",
                    kind.dir_name(),
                    looked.join(", "),
                    FILES.join(", "),
                    cache.display()
                ),
            ))
        }
    }
}

fn search_path(kind: DatasetKind) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(env) = std::env::var_os("CNNZOO_DATA") {
        let env = PathBuf::from(env);
        dirs.push(env.join(kind.dir_name()));
        dirs.push(env);
    }
    dirs.push(cache_dir(kind));
    dirs.push(PathBuf::from("/usr/share/datasets").join(kind.dir_name()));
    dirs
}

/// `~/.cache/cnnzoo/<kind>` (or `$XDG_CACHE_HOME/cnnzoo/<kind>`).
pub fn cache_dir(kind: DatasetKind) -> PathBuf {
    cache_root().join(kind.dir_name())
}

/// `~/.cache/cnnzoo` (or `$XDG_CACHE_HOME/cnnzoo`): every data set's cache folder is in it.
pub fn cache_root() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("cnnzoo")
}

/// `dir/name.gz` if present, else `dir/name`.
pub fn file_in(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(format!("{name}.gz")), dir.join(name)].into_iter().find(|p| p.is_file())
}

fn missing_files(dir: &Path) -> Option<&'static str> {
    FILES.into_iter().find(|f| file_in(dir, f).is_none())
}

/// Loads both splits of `kind` from `dir`, checking every file.
pub fn load(kind: DatasetKind, dir: &Path) -> Result<Dataset> {
    let path =
        |i: usize| file_in(dir, FILES[i]).ok_or_else(|| Error::bad_file(dir.join(FILES[i]), "not found"));
    let digests = download::FASHION_MNIST_SHA256;
    let official = |count, i: usize| {
        (kind == DatasetKind::FashionMnist).then_some((count, [digests[i], digests[i + 1]]))
    };
    let train = Split::load(&path(0)?, &path(1)?, official(60_000, 0))?;
    let test = Split::load(&path(2)?, &path(3)?, official(10_000, 2))?;
    if kind == DatasetKind::Mnist {
        // MNIST's published digests are MD5s of the .gz files (torchvision checks the same):
        // a .gz file with the official image count must be the official file. (Decompressed
        // files have no published digest; they are checked for structure only.)
        for (i, n) in [(0, train.len()), (1, train.len()), (2, test.len()), (3, test.len())] {
            let file = path(i)?;
            let official_count = if i < 2 { 60_000 } else { 10_000 };
            if n == official_count && file.extension().is_some_and(|e| e == "gz") {
                let gz = std::fs::read(&file).map_err(|e| Error::io("read", &file, e))?;
                download::verify(kind, i, &gz, &file)?;
            }
        }
    }
    if (train.rows, train.cols) != (test.rows, test.cols) {
        return Err(Error::bad_file(path(2)?, "test images are not the size of the training images"));
    }
    Ok(Dataset { kind, dir: dir.to_path_buf(), train, test })
}
