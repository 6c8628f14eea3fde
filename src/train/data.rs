//! The data of a run: its training and evaluation images as [`Loader`]s, prepared by the run's
//! transforms (d2l's preprocessing when the run has none).

use std::sync::Arc;

use burn::tensor::{Device, TensorData};
use rand::rngs::StdRng;

use super::config::TrainConfig;
use crate::data::image::Image;
use crate::data::loader::{Loader, SampleTransform};
use crate::data::source::Source;
use crate::data::{self, Dataset, Opened};
use crate::error::Result;

/// How images are read (`--workers`, `--strict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Threads decoding and augmenting images (0: on the training thread).
    pub workers: usize,
    /// Batches prepared ahead of the model.
    pub prefetch: usize,
    /// A corrupt or unreadable image is an error instead of being skipped and counted.
    pub strict: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { workers: 2, prefetch: 4, strict: false }
    }
}

/// A run's training and evaluation images.
#[derive(Clone)]
pub struct RunData {
    /// Training images, with the training transforms.
    pub train: Loader,
    /// Evaluation images (the test split, or the validation images), with the eval transforms.
    pub test: Loader,
}

impl RunData {
    /// Loaders over `train` and `test` with `config`'s transforms.
    pub fn new(
        config: &TrainConfig,
        train: Arc<dyn Source>,
        test: Arc<dyn Source>,
        opts: LoadOptions,
    ) -> Self {
        let [_, h, w] = config.input;
        let loader = |source: Arc<dyn Source>, transform: Arc<SampleTransform>| {
            Loader::new(source, transform, opts.workers, opts.prefetch)
                .strict(opts.strict)
                .d2l_batched([h, w])
        };
        Self {
            train: loader(train, d2l_transform(config.input)),
            test: loader(test, d2l_transform(config.input)),
        }
    }

    /// The run's data set, found as `train` finds it (`data_dir`, then the usual places), with
    /// its class count checked against the model's.
    pub fn open(config: &TrainConfig, data_dir: Option<&std::path::Path>, opts: LoadOptions) -> Result<Self> {
        let opened = data::open(&config.dataset, data_dir, &config.val, config.seed)?;
        Self::from_opened(config, opened, opts)
    }

    /// Loaders over an opened data set, with its class count checked against the model's.
    pub fn from_opened(config: &TrainConfig, opened: Opened, opts: LoadOptions) -> Result<Self> {
        let n = config.model_config.num_classes();
        if opened.classes.len() != n {
            return Err(crate::Error::invalid(
                "data",
                format!(
                    "{} has {} classes but `{}` predicts {n}",
                    config.dataset,
                    opened.classes.len(),
                    config.model
                ),
            ));
        }
        Ok(Self::new(config, opened.train, opened.val, opts))
    }

    /// The (Fashion-)MNIST data set already in memory.
    pub fn from_dataset(config: &TrainConfig, data: &Dataset, opts: LoadOptions) -> Self {
        Self::new(config, Arc::new(data.train.clone()), Arc::new(data.test.clone()), opts)
    }
}

/// d2l's preprocessing of one image: grey levels in [0, 1], resized to the input with PyTorch's
/// bilinear interpolation (`align_corners=False`), repeated to the input's channels.
fn d2l_transform([c, h, w]: [usize; 3]) -> Arc<SampleTransform> {
    Arc::new(move |img: Image, _: &mut StdRng| {
        let grey = if img.channels == 1 || c == 3 {
            img
        } else {
            let data = img
                .data
                .chunks_exact(3)
                .map(|p| {
                    ((299 * u32::from(p[0]) + 587 * u32::from(p[1]) + 114 * u32::from(p[2]) + 500) / 1000)
                        as u8
                })
                .collect();
            Image::new(img.width, img.height, 1, data)?
        };
        let device = Device::flex();
        let x = burn::tensor::Tensor::<4>::from_data(
            TensorData::new(grey.to_tensor_data(), [1, grey.channels, grey.height, grey.width]),
            &device,
        );
        let x = data::resize(x, [h, w]);
        let x = if grey.channels == c { x } else { x.repeat_dim(1, c) };
        let values = x.into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default();
        Ok((values, [c, h, w]))
    })
}
