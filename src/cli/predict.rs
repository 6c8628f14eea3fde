//! `cnnzoo predict RUN_DIR IMAGE...`.

use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::{Tensor, TensorData};
use cnnzoo::data::{resize, transforms};
use cnnzoo::train::Preprocess;

use super::Format;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run directory written by `cnnzoo train`.
    run: PathBuf,
    /// PNG or JPEG files of any size, colour or grey.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 3)]
    top_k: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let device = super::device();
    let (config, model) = super::eval::load_run(&args.run, &device)
        .with_context(|| format!("loading {}", args.run.display()))?;
    let imagenet = config.preprocess == Preprocess::Imagenet;
    let num_classes = config.model_config.num_classes();
    let classes: Vec<String> = if num_classes == 1000 {
        transforms::imagenet_classes().into_iter().map(String::from).collect()
    } else if num_classes == 10 {
        config.dataset.classes().iter().map(|s| s.to_string()).collect()
    } else {
        (0..num_classes).map(|i| format!("class {i}")).collect()
    };
    let k = args.top_k.clamp(1, classes.len());
    let [_, h, w] = config.input;
    let mut results = Vec::new();
    for path in &args.images {
        let img = image::ImageReader::open(path)
            .map_err(|e| cnnzoo::Error::io("open", path, e))?
            .with_guessed_format()
            .map_err(|e| cnnzoo::Error::io("read", path, e))?
            .decode()
            .map_err(|e| cnnzoo::Error::bad_file(path, format!("cannot be decoded as an image: {e}")))?;
        let x = if imagenet {
            // torchvision's eval transform: resize 256 (antialiased), center-crop 224, normalize.
            let rgb = img.to_rgb8();
            let (iw, ih) = rgb.dimensions();
            let side = h.min(w);
            let data =
                transforms::imagenet_eval(rgb.as_raw(), iw as usize, ih as usize, side * 256 / 224, side);
            Tensor::<4>::from_data(TensorData::new(data, [1, 3, side, side]), &device)
        } else {
            // Same preprocessing as training: grey levels in [0, 1], bilinear resize to the input.
            let grey = img.to_luma8();
            let (iw, ih) = grey.dimensions();
            let pixels: Vec<f32> = grey.into_raw().into_iter().map(|p| f32::from(p) / 255.0).collect();
            let x =
                Tensor::<4>::from_data(TensorData::new(pixels, [1, 1, ih as usize, iw as usize]), &device);
            let x = resize(x, [h, w]);
            if config.input[0] == 1 { x } else { x.repeat_dim(1, config.input[0]) }
        };
        let logits = model.try_forward(&config.model, x)?;
        let probs: Vec<f32> = burn::tensor::activation::softmax(logits, 1)
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("reading probabilities: {e:?}"))?;
        let mut ranked: Vec<usize> = (0..probs.len()).collect();
        ranked.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        let top: Vec<(usize, f32)> = ranked.into_iter().take(k).map(|i| (i, probs[i])).collect();
        results.push((path.clone(), top));
    }
    match args.format {
        Format::Json => {
            let json: Vec<_> = results
                .iter()
                .map(|(path, top)| {
                    let preds: Vec<_> = top
                        .iter()
                        .map(|&(i, p)| serde_json::json!({"class": i, "name": classes[i], "probability": p}))
                        .collect();
                    serde_json::json!({"image": path, "predictions": preds})
                })
                .collect();
            super::print(&(serde_json::to_string_pretty(&json)? + "\n"))
        }
        Format::Table => {
            let mut out = String::new();
            for (path, top) in &results {
                let parts: Vec<String> =
                    top.iter().map(|&(i, p)| format!("{} {:.3}", classes[i], p)).collect();
                out.push_str(&format!("{}: {}\n", path.display(), parts.join(", ")));
            }
            super::print(&out)
        }
    }
}
