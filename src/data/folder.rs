//! Image folders, as torchvision's `ImageFolder`: one sub-folder per class (class names sorted,
//! label = rank), PNG and JPEG files of any size and colour type in each (recursively), sorted
//! by path. The folders are scanned when opened, so a layout mistake fails at once; images are
//! decoded on demand with the bounded decoder ([`super::decode`]) and converted to RGB like
//! torchvision's `default_loader` (or to grey for a one-channel data set).
//!
//! Hidden entries (names starting with `.`) are ignored; any other file that is not an image by
//! its extension (`png`, `jpg`, `jpeg`, any case) is an error, as is an empty class folder.

use std::path::{Path, PathBuf};

use image::DynamicImage;

use super::decode::decode_file_dynamic;
use super::image::Image;
use super::source::Source;
use crate::error::{Error, Result};

/// Extensions accepted as images (compared case-insensitively).
pub const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Deepest folder nesting followed inside a class folder (guards against symlink loops).
const MAX_DEPTH: usize = 16;

/// A scanned image folder.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    items: Vec<(PathBuf, usize)>,
    channels: usize,
}

impl ImageFolder {
    /// Scans `root`: its sub-folders are the classes, sorted by name.
    pub fn scan(root: &Path) -> Result<Self> {
        let dirs = class_dirs(root)?;
        let classes: Vec<String> = dirs.iter().map(|(name, _)| name.clone()).collect();
        Self::collect(root, classes, &dirs)
    }

    /// Scans `root` labelling by `classes` (a training set's): each sub-folder must be one of
    /// them (a validation folder may hold fewer classes).
    pub fn scan_with_classes(root: &Path, classes: &[String]) -> Result<Self> {
        let dirs = class_dirs(root)?;
        for (name, dir) in &dirs {
            if !classes.contains(name) {
                return Err(Error::bad_file(
                    dir,
                    format!(
                        "is not a class of the training set ({} classes: {}{})",
                        classes.len(),
                        classes.iter().take(10).cloned().collect::<Vec<_>>().join(", "),
                        if classes.len() > 10 { ", …" } else { "" }
                    ),
                ));
            }
        }
        Self::collect(root, classes.to_vec(), &dirs)
    }

    fn collect(root: &Path, classes: Vec<String>, dirs: &[(String, PathBuf)]) -> Result<Self> {
        let mut items = Vec::new();
        for (name, dir) in dirs {
            let label = classes.iter().position(|c| c == name).unwrap_or_default();
            let mut files = Vec::new();
            images_in(dir, 0, &mut files)?;
            if files.is_empty() {
                return Err(Error::bad_file(
                    dir,
                    format!("class folder `{name}` holds no images ({})", EXTENSIONS.join(", ")),
                ));
            }
            files.sort();
            items.extend(files.into_iter().map(|f| (f, label)));
        }
        Ok(Self { root: root.to_path_buf(), classes, items, channels: 3 })
    }

    /// Images come out grey (`1`, PIL's `convert("L")`) or RGB (`3`, the default).
    pub fn with_channels(mut self, channels: usize) -> Self {
        self.channels = if channels == 1 { 1 } else { 3 };
        self
    }

    /// Class names in label order.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The folder scanned.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of image `i`.
    pub fn path(&self, i: usize) -> &Path {
        &self.items[i].0
    }
}

impl Source for ImageFolder {
    fn len(&self) -> usize {
        self.items.len()
    }

    fn label(&self, i: usize) -> usize {
        self.items[i].1
    }

    fn get(&self, i: usize) -> Result<Image> {
        let img = decode_file_dynamic(&self.items[i].0)?;
        Ok(convert(&img, self.channels))
    }

    fn name(&self, i: usize) -> String {
        self.items[i].0.display().to_string()
    }
}

/// `img` as PIL's `convert("RGB")` (`channels` = 3) or `convert("L")` (1, ITU-R 601-2 luma
/// with PIL's fixed-point rounding).
pub fn convert(img: &DynamicImage, channels: usize) -> Image {
    let decoded = Image::from_dynamic(img);
    match (channels, decoded.channels) {
        (3, 1) => {
            let data = decoded.data.iter().flat_map(|&g| [g, g, g]).collect();
            Image { channels: 3, data, ..decoded }
        }
        (1, 3) => {
            let data = decoded
                .data
                .chunks_exact(3)
                .map(|p| {
                    let l = u32::from(p[0]) * 19595 + u32::from(p[1]) * 38470 + u32::from(p[2]) * 7471;
                    ((l + 0x8000) >> 16) as u8
                })
                .collect();
            Image { channels: 1, data, ..decoded }
        }
        _ => decoded,
    }
}

fn is_hidden(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

fn is_image_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// The non-hidden entries of `dir`, sorted.
fn entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let read = std::fs::read_dir(dir).map_err(|e| Error::io("read the folder", dir, e))?;
    let mut out = Vec::new();
    for entry in read {
        let path = entry.map_err(|e| Error::io("read the folder", dir, e))?.path();
        if !is_hidden(&path) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// The class sub-folders of `root`, sorted by name; a stray file there is an error.
fn class_dirs(root: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut dirs = Vec::new();
    for path in entries(root)? {
        if !path.is_dir() {
            return Err(Error::bad_file(
                &path,
                format!(
                    "is a file among the class folders of `{}`: an image folder holds one sub-folder \
                     per class and nothing else (hidden files aside)",
                    root.display()
                ),
            ));
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::bad_file(&path, "class folder name is not valid UTF-8"))?
            .to_string();
        dirs.push((name, path));
    }
    if dirs.is_empty() {
        return Err(Error::bad_file(
            root,
            "has no class folders: an image folder holds one sub-folder per class (root/cat/1.png, \
             root/dog/2.jpg, …)",
        ));
    }
    dirs.sort();
    Ok(dirs)
}

/// Collects the images under `dir` (recursively); a stray non-image file is an error.
fn images_in(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::bad_file(
            dir,
            format!("is nested more than {MAX_DEPTH} folders deep (a link loop?)"),
        ));
    }
    for path in entries(dir)? {
        if path.is_dir() {
            images_in(&path, depth + 1, out)?;
        } else if is_image_name(&path) {
            out.push(path);
        } else {
            return Err(Error::bad_file(
                &path,
                format!(
                    "is not an image by its extension (accepted: {}, any case); remove it or move it \
                     out of the class folders",
                    EXTENSIONS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}
