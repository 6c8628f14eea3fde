//! The data of a run: its training and evaluation images as [`Loader`]s, prepared by the run's
//! transforms (d2l's preprocessing when the run has none).

use std::sync::Arc;

use rand::rngs::StdRng;

use super::config::TrainConfig;
use crate::data::image::Image;
use crate::data::loader::{Loader, SampleTransform};
use crate::data::source::Source;
use crate::data::transforms::{Pipeline, Transforms};
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
    ) -> Result<Self> {
        let [_, h, w] = config.input;
        let transforms = config.transforms()?;
        transforms.check(config.input)?;
        // d2l's preprocessing on (Fashion-)MNIST in memory: whole batches resized at once.
        let d2l = transforms == Transforms::preset("d2l", config.input)?;
        let loader = |source: Arc<dyn Source>, pipeline: Pipeline| {
            let l = Loader::new(source, sample_transform(pipeline), opts.workers, opts.prefetch)
                .strict(opts.strict);
            if d2l { l.d2l_batched([h, w]) } else { l }
        };
        Ok(Self { train: loader(train, transforms.train), test: loader(test, transforms.eval) })
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
        Self::new(config, opened.train, opened.val, opts)
    }

    /// The (Fashion-)MNIST data set already in memory.
    pub fn from_dataset(config: &TrainConfig, data: &Dataset, opts: LoadOptions) -> Result<Self> {
        Self::new(config, Arc::new(data.train.clone()), Arc::new(data.test.clone()), opts)
    }
}

/// A pipeline as a loader's per-image transform.
fn sample_transform(pipeline: Pipeline) -> Arc<SampleTransform> {
    Arc::new(move |img: Image, rng: &mut StdRng| pipeline.apply(img, rng))
}
