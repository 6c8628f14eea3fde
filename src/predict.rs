//! Classifying image files with a run: the run's preprocessing, the forward pass, the top-k
//! classes with their probabilities.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::data::image::Image;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::Model;
use crate::train::TrainConfig;

/// One predicted class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// Class index.
    pub class: usize,
    /// Class name.
    pub name: String,
    /// Softmax probability.
    pub probability: f32,
}

/// The top classes of one image, best first.
#[derive(Debug, Clone, Serialize)]
pub struct ImagePredictions {
    /// The image file.
    pub image: PathBuf,
    /// Best first.
    pub predictions: Vec<Prediction>,
}

/// Reads and decodes an image file (PNG or JPEG, any colour type), refusing one larger than
/// [`crate::data::decode::MAX_SIDE`] on a side or [`crate::data::decode::MAX_PIXELS`] in all.
pub fn read_image(path: &Path) -> Result<image::DynamicImage> {
    crate::data::decode::decode_file_dynamic(path)
}

/// The `k` most probable classes of each image under `model`, prepared as `config` says.
pub fn predict(
    config: &TrainConfig,
    model: &Model,
    images: &[PathBuf],
    k: usize,
    device: &Device,
) -> Result<Vec<ImagePredictions>> {
    let classes = config.class_names();
    let eval = config.transforms()?.eval;
    let mut out = Vec::with_capacity(images.len());
    for path in images {
        let img = Image::from_dynamic(&read_image(path)?);
        let (values, shape) = eval.apply(img, &mut StdRng::seed_from_u64(0)).map_err(|e| match e {
            Error::Invalid { message, .. } => Error::bad_file(path, message),
            other => other,
        })?;
        let [c, h, w] = shape;
        let x = Tensor::<4>::from_data(TensorData::new(values, [1, c, h, w]), device);
        let logits = model.try_forward(&config.model, x)?;
        let probs = probabilities(logits)?.pop().unwrap_or_default();
        let predictions = top_k(&probs, &classes, k);
        out.push(ImagePredictions { image: path.clone(), predictions });
    }
    Ok(out)
}

/// The softmax probabilities of each row of `logits` (`[batch, classes]`).
pub fn probabilities(logits: Tensor<2>) -> Result<Vec<Vec<f32>>> {
    let [_, n] = logits.dims();
    let values: Vec<f32> = burn::tensor::activation::softmax(logits, 1)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| Error::invalid("model output", format!("{e:?}")))?;
    Ok(values.chunks(n.max(1)).map(<[f32]>::to_vec).collect())
}

/// The `k` most probable classes (at least one, at most all) of one image, best first.
pub fn top_k(probs: &[f32], classes: &[String], k: usize) -> Vec<Prediction> {
    let mut ranked: Vec<usize> = (0..probs.len()).collect();
    ranked.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    ranked
        .into_iter()
        .take(k.clamp(1, probs.len().max(1)))
        .map(|i| Prediction {
            class: i,
            name: classes.get(i).cloned().unwrap_or_else(|| format!("class {i}")),
            probability: probs[i],
        })
        .collect()
}
