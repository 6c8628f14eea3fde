//! The data of a run: its training and evaluation images as [`Loader`]s, prepared by the run's
//! transforms (d2l's preprocessing when the run has none).

use std::sync::Arc;

use burn::tensor::{Device, TensorData};
use rand::rngs::StdRng;

use super::config::TrainConfig;
use crate::data::image::Image;
use crate::data::loader::{Loader, SampleTransform};
use crate::data::source::Source;
use crate::data::{self, Dataset};
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

    /// The run's data set, found as `train` finds it (`data_dir`, then the usual places).
    pub fn open(config: &TrainConfig, data_dir: Option<&std::path::Path>, opts: LoadOptions) -> Result<Self> {
        if config.input[0] != 1 || config.model_config.num_classes() != 10 {
            return Err(crate::Error::invalid(
                "run",
                format!(
                    "`{}` is a {}-channel, {}-class model; Fashion-MNIST/MNIST models have 1 channel and 10 \
                     classes — use `cnnzoo predict` for ImageNet models",
                    config.model,
                    config.input[0],
                    config.model_config.num_classes()
                ),
            ));
        }
        let dir = data::locate(config.dataset, data_dir)?;
        let dataset = data::load(config.dataset, &dir)?;
        Ok(Self::from_dataset(config, &dataset, opts))
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
        let grey = if img.channels == 1 {
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
            TensorData::new(grey.to_tensor_data(), [1, 1, grey.height, grey.width]),
            &device,
        );
        let x = data::resize(x, [h, w]);
        let x = if c == 1 { x } else { x.repeat_dim(1, c) };
        let values = x.into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default();
        Ok((values, [c, h, w]))
    })
}
