//! [`Source`]: a data set split as the training loop sees it — a count, a label per index and
//! an [`Image`] per index, read on demand (possibly from disk, possibly failing for one bad file
//! without failing the split).

use super::Split;
use super::image::Image;
use crate::error::Result;

/// One split of a data set: images with labels, addressed by index.
pub trait Source: Send + Sync {
    /// Number of images.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Label of image `i` (`< classes`).
    fn label(&self, i: usize) -> usize;
    /// Image `i`, decoded. An error names the file (a corrupt or unreadable image); the loader
    /// skips and counts it, or stops with `--strict`.
    fn get(&self, i: usize) -> Result<Image>;
    /// Where image `i` comes from, for messages (a path, or `train-images-idx3-ubyte #12`).
    fn name(&self, i: usize) -> String;
    /// The in-memory (Fashion-)MNIST split behind this source, if it is one (whole batches of
    /// it are resized at once).
    fn as_split(&self) -> Option<&Split> {
        None
    }
}

impl Source for Split {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn label(&self, i: usize) -> usize {
        usize::from(self.labels[i])
    }

    fn get(&self, i: usize) -> Result<Image> {
        let px = self.rows * self.cols;
        Image::new(self.cols, self.rows, 1, self.images[i * px..(i + 1) * px].to_vec())
    }

    fn name(&self, i: usize) -> String {
        format!("image #{i}")
    }

    fn as_split(&self) -> Option<&Split> {
        Some(self)
    }
}
