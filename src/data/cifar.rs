//! CIFAR-10 and CIFAR-100 in their binary versions (<https://www.cs.toronto.edu/~kriz/cifar.html>),
//! held in memory (60,000 × 3 KB).
//!
//! `cifar-10-batches-bin/`: `data_batch_1.bin` … `data_batch_5.bin` and `test_batch.bin`, records of
//! one label byte and 3,072 pixel bytes (the 32×32 red plane, then green, then blue, rows top to
//! bottom), and `batches.meta.txt` with the class names. `cifar-100-binary/`: `train.bin` and
//! `test.bin`, records of a coarse and a fine label byte and the same 3,072 bytes, and
//! `fine_label_names.txt`; the fine labels (100 classes) are used, as torchvision's `CIFAR100` does.

use std::path::{Path, PathBuf};

use super::image::Image;
use super::source::Source;
use super::{cache_root, download};
use crate::error::{Error, Result};

/// Side of a CIFAR image.
pub const SIDE: usize = 32;
/// Pixel bytes of one record (3 planes of 32×32).
pub const PIXELS: usize = 3 * SIDE * SIDE;

/// Which CIFAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cifar {
    /// CIFAR-10: 10 classes, 50,000 training and 10,000 test images.
    Ten,
    /// CIFAR-100: 100 fine classes, same counts.
    Hundred,
}

impl Cifar {
    /// Directory name under the cache and `$CNNZOO_DATA` (`cifar10`, `cifar100`).
    pub fn dir_name(self) -> &'static str {
        match self {
            Cifar::Ten => "cifar10",
            Cifar::Hundred => "cifar100",
        }
    }

    /// The folder the official archive unpacks to (`cifar-10-batches-bin`, `cifar-100-binary`).
    pub fn archive_dir(self) -> &'static str {
        match self {
            Cifar::Ten => "cifar-10-batches-bin",
            Cifar::Hundred => "cifar-100-binary",
        }
    }

    /// Number of classes.
    pub fn num_classes(self) -> usize {
        match self {
            Cifar::Ten => 10,
            Cifar::Hundred => 100,
        }
    }

    /// Label bytes before the pixels of each record (CIFAR-100's coarse label comes first).
    pub fn label_bytes(self) -> usize {
        match self {
            Cifar::Ten => 1,
            Cifar::Hundred => 2,
        }
    }

    /// Bytes of one record.
    pub fn record_size(self) -> usize {
        self.label_bytes() + PIXELS
    }

    /// The training files, in order.
    pub fn train_files(self) -> &'static [&'static str] {
        match self {
            Cifar::Ten => &[
                "data_batch_1.bin",
                "data_batch_2.bin",
                "data_batch_3.bin",
                "data_batch_4.bin",
                "data_batch_5.bin",
            ],
            Cifar::Hundred => &["train.bin"],
        }
    }

    /// The test file.
    pub fn test_file(self) -> &'static str {
        match self {
            Cifar::Ten => "test_batch.bin",
            Cifar::Hundred => "test.bin",
        }
    }

    /// The class-name file, one name a line in label order.
    pub fn meta_file(self) -> &'static str {
        match self {
            Cifar::Ten => "batches.meta.txt",
            Cifar::Hundred => "fine_label_names.txt",
        }
    }

    /// Every file that must be present.
    pub fn files(self) -> Vec<&'static str> {
        let mut files = self.train_files().to_vec();
        files.extend([self.test_file(), self.meta_file()]);
        files
    }

    /// The official archive (as the CIFAR page links it).
    pub fn url(self) -> &'static str {
        match self {
            Cifar::Ten => "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
            Cifar::Hundred => "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
        }
    }

    /// MD5 of the official archive, as published on the CIFAR page.
    pub fn md5(self) -> &'static str {
        match self {
            Cifar::Ten => "c32a1d4ab5d03f1284b67883e8d87530",
            Cifar::Hundred => "03b5dce01913d631647c71ecec9e9cb8",
        }
    }
}

/// One split in memory: records' pixels as stored (planar RGB) and labels.
#[derive(Debug, Clone, Default)]
pub struct CifarSplit {
    /// `len · 3072` bytes, each image's R, G and B planes.
    pixels: Vec<u8>,
    /// One label per image.
    labels: Vec<u8>,
    /// Each file read and the index of its first image, for [`Source::name`].
    files: Vec<(String, usize)>,
}

impl CifarSplit {
    /// Reads the records of `files` (in `dir`), checking sizes and labels.
    pub fn read(cifar: Cifar, dir: &Path, files: &[&str]) -> Result<Self> {
        let mut split = CifarSplit::default();
        for name in files {
            split.append(cifar, &dir.join(name))?;
        }
        Ok(split)
    }

    fn append(&mut self, cifar: Cifar, path: &Path) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
        let record = cifar.record_size();
        if bytes.is_empty() || bytes.len() % record != 0 {
            return Err(Error::bad_file(
                path,
                format!(
                    "has {} bytes, not a positive multiple of the {record}-byte {} record ({} label \
                     byte(s) + {PIXELS} pixel bytes): the file is truncated or not a {} binary batch",
                    bytes.len(),
                    cifar.dir_name(),
                    cifar.label_bytes(),
                    cifar.dir_name()
                ),
            ));
        }
        let name =
            path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into());
        self.files.push((name, self.labels.len()));
        self.pixels.reserve(bytes.len() / record * PIXELS);
        for (k, rec) in bytes.chunks_exact(record).enumerate() {
            // The fine label is the last label byte (CIFAR-100: coarse, fine).
            let label = rec[cifar.label_bytes() - 1];
            if usize::from(label) >= cifar.num_classes() {
                return Err(Error::bad_file(
                    path,
                    format!("record {k} has label {label}, out of range 0..{}", cifar.num_classes()),
                ));
            }
            self.labels.push(label);
            self.pixels.extend_from_slice(&rec[cifar.label_bytes()..]);
        }
        Ok(())
    }
}

impl Source for CifarSplit {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn label(&self, i: usize) -> usize {
        usize::from(self.labels[i])
    }

    fn get(&self, i: usize) -> Result<Image> {
        let planes = &self.pixels[i * PIXELS..(i + 1) * PIXELS];
        let px = SIDE * SIDE;
        let mut data = Vec::with_capacity(PIXELS);
        for p in 0..px {
            data.extend([planes[p], planes[px + p], planes[2 * px + p]]);
        }
        Image::new(SIDE, SIDE, 3, data)
    }

    fn name(&self, i: usize) -> String {
        let k = self.files.partition_point(|&(_, start)| start <= i).saturating_sub(1);
        match self.files.get(k) {
            Some((file, start)) => format!("{file} #{}", i - start),
            None => format!("image #{i}"),
        }
    }
}

/// Both splits and the class names.
#[derive(Debug, Clone)]
pub struct CifarData {
    /// Where the files were found.
    pub dir: PathBuf,
    /// 50,000 images in the official files.
    pub train: CifarSplit,
    /// 10,000 images in the official files.
    pub test: CifarSplit,
    /// Class names in label order.
    pub classes: Vec<String>,
}

/// Loads `cifar` from `dir` (the folder holding the `.bin` files), checking every file.
pub fn load(cifar: Cifar, dir: &Path) -> Result<CifarData> {
    if let Some(name) = missing_file(cifar, dir) {
        return Err(Error::bad_file(
            dir.join(name),
            format!("not found: a {} file is missing", cifar.dir_name()),
        ));
    }
    let meta = dir.join(cifar.meta_file());
    let text = std::fs::read_to_string(&meta).map_err(|e| Error::io("read", &meta, e))?;
    let classes: Vec<String> =
        text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    if classes.len() != cifar.num_classes() {
        return Err(Error::bad_file(
            &meta,
            format!("names {} classes, expected {} (one a line)", classes.len(), cifar.num_classes()),
        ));
    }
    let train = CifarSplit::read(cifar, dir, cifar.train_files())?;
    let test = CifarSplit::read(cifar, dir, &[cifar.test_file()])?;
    Ok(CifarData { dir: dir.to_path_buf(), train, test, classes })
}

fn missing_file(cifar: Cifar, dir: &Path) -> Option<&'static str> {
    cifar.files().into_iter().find(|f| !dir.join(f).is_file())
}

/// `dir` and `dir/<archive folder>`: the places under one directory where the files may lie.
fn under(cifar: Cifar, dir: &Path) -> [PathBuf; 2] {
    [dir.to_path_buf(), dir.join(cifar.archive_dir())]
}

/// Finds the folder holding `cifar`'s files: `explicit` (`--data`, or its `cifar-10-batches-bin` /
/// `cifar-100-binary` sub-folder) if given, else `$CNNZOO_DATA` (its `cifar10`/`cifar100`
/// sub-folder or itself), the user cache `~/.cache/cnnzoo/cifar10`, `/usr/share/datasets/cifar10`
/// (each also with the archive's sub-folder), and finally the official archive, downloaded,
/// checked against its MD5 and unpacked into the user cache.
pub fn locate(cifar: Cifar, explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        let [plain, sub] = under(cifar, dir);
        let at = if missing_file(cifar, &plain).is_some() && sub.is_dir() { sub } else { plain };
        return match missing_file(cifar, &at) {
            None => Ok(at),
            Some(name) => Err(Error::bad_file(
                at.join(name),
                format!(
                    "not found in the --data directory (nor in its `{}` sub-folder)",
                    cifar.archive_dir()
                ),
            )),
        };
    }
    let mut candidates = Vec::new();
    if let Some(env) = std::env::var_os("CNNZOO_DATA") {
        let env = PathBuf::from(env);
        candidates.extend(under(cifar, &env.join(cifar.dir_name())));
        candidates.extend(under(cifar, &env));
    }
    let cache = cache_root().join(cifar.dir_name());
    candidates.extend(under(cifar, &cache));
    candidates.extend(under(cifar, &Path::new("/usr/share/datasets").join(cifar.dir_name())));
    if let Some(dir) = candidates.iter().find(|d| missing_file(cifar, d).is_none()) {
        return Ok(dir.clone());
    }
    let fetched =
        download::fetch_archive(cifar.url(), cifar.md5(), cifar.archive_dir(), &cifar.files(), &cache);
    fetched.map_err(|err| {
        let looked: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
        Error::invalid(
            "data",
            format!(
                "{} not found in {} and the download failed ({err}); remedies: download {} yourself \
                 and unpack it into {}, or pass `--data DIR` with the files ({}), or set CNNZOO_DATA=DIR",
                cifar.dir_name(),
                looked.join(", "),
                cifar.url(),
                cache.display(),
                cifar.files().join(", ")
            ),
        )
    })
}
