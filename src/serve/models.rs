//! The served models: loaded, warmed up, each with its preprocessing, queue and workers.

use std::path::PathBuf;
use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;

use super::batcher::Queue;
use super::metrics::Metrics;
use super::{ModelSpec, Options};
use crate::data::image::Image;
use crate::data::transforms::Pipeline;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::train::TrainConfig;

/// What `GET /v1/models` says about a model.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelInfo {
    /// The name in URLs.
    pub name: String,
    /// The registry model (e.g. `resnet18`).
    pub model: String,
    /// The run directory.
    pub run: PathBuf,
    /// The input `[c, h, w]` an upload is prepared to.
    pub input: [usize; 3],
    /// How an upload is prepared (the run's eval transforms).
    pub preprocess: String,
    /// Class names in label order.
    pub classes: Vec<String>,
    /// Trainable parameters.
    pub parameters: usize,
    /// The stage `explain` takes Grad-CAM at unless `?layer=` says otherwise.
    pub gradcam_layer: String,
}

/// One served model.
pub struct Served {
    pub name: String,
    pub run: PathBuf,
    pub config: TrainConfig,
    pub classes: Vec<String>,
    pub eval: Pipeline,
    pub parameters: usize,
    pub layer: String,
    pub queue: Arc<Queue>,
    workers: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
}

/// An upload ready for the model: its tensor values and the decoded image (for overlays).
pub struct Prepared {
    pub values: Vec<f32>,
    pub image: Image,
}

impl Served {
    pub fn info(&self) -> ModelInfo {
        ModelInfo {
            name: self.name.clone(),
            model: self.config.model.clone(),
            run: self.run.clone(),
            input: self.config.input,
            preprocess: self.eval.to_string(),
            classes: self.classes.clone(),
            parameters: self.parameters,
            gradcam_layer: self.layer.clone(),
        }
    }

    /// Decodes `bytes` (PNG or JPEG, bounded like every image cnnzoo reads) and prepares it as
    /// the run's eval transforms say.
    pub fn prepare(&self, bytes: &[u8]) -> Result<Prepared> {
        let image = crate::data::decode::decode_bytes(bytes, "the upload")?;
        let (values, shape) = self.eval.apply(image.clone(), &mut StdRng::seed_from_u64(0))?;
        if shape != self.config.input {
            return Err(Error::invalid(
                "the upload",
                format!("was prepared to {shape:?}, but `{}` takes {:?}", self.name, self.config.input),
            ));
        }
        Ok(Prepared { values, image })
    }

    /// The class index named by `s` (an index or a class name).
    pub fn class(&self, s: &str) -> Result<usize> {
        let n = self.classes.len();
        match s.parse::<usize>() {
            Ok(i) if i < n => Ok(i),
            Ok(i) => {
                Err(Error::invalid("class", format!("{i} is out of range: `{}` has {n} classes", self.name)))
            }
            Err(_) => self.classes.iter().position(|c| c == s).ok_or_else(|| {
                Error::invalid(
                    "class",
                    format!("`{s}` is neither a class index nor a class of `{}`", self.name),
                )
            }),
        }
    }

    /// Stops the workers once the queue is empty, and waits for them.
    pub fn close(&self) {
        self.queue.close();
        if let Ok(mut workers) = self.workers.lock() {
            for w in workers.drain(..) {
                let _ = w.join();
            }
        }
    }
}

/// Loads every run, warms each model up (a batch of one and a full batch), starts its workers.
pub fn load_all(specs: &[ModelSpec], opts: &Options, metrics: &Metrics) -> Result<Vec<Arc<Served>>> {
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        match load(spec, opts, metrics) {
            Ok(served) => out.push(served),
            Err(e) => {
                // The workers of the models loaded so far stop with the server.
                out.iter().for_each(|m: &Arc<Served>| m.close());
                return Err(e);
            }
        }
    }
    Ok(out)
}

fn load(spec: &ModelSpec, opts: &Options, metrics: &Metrics) -> Result<Arc<Served>> {
    let device = opts.device.clone();
    let run = crate::train::load_run(&spec.run, &device)?;
    let config = run.config;
    let model = run.model;
    let eval = config.transforms()?.eval;
    let input = config.input;
    let layer = crate::visualize::default_layer(&model, &config.model, input, &device)?;
    let queue = Arc::new(Queue::default());
    let served = Arc::new(Served {
        name: spec.name.clone(),
        run: spec.run.clone(),
        classes: config.class_names(),
        parameters: crate::instrument::num_params(&model),
        eval,
        layer,
        config,
        queue: queue.clone(),
        workers: std::sync::Mutex::new(Vec::new()),
    });
    warm_up(&served, &model, opts.max_batch, &device)?;
    for i in 0..opts.workers {
        let worker = super::batcher::Worker {
            queue: queue.clone(),
            model: model.clone(),
            name: served.config.model.clone(),
            label: served.name.clone(),
            input,
            max_batch: opts.max_batch,
            max_delay: opts.max_delay,
            metrics: metrics.clone(),
            device: device.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("cnnzoo-infer-{}-{i}", served.name))
            .spawn(move || worker.run());
        match spawned {
            Ok(handle) => served.workers.lock().map_or((), |mut w| w.push(handle)),
            Err(e) => {
                // The workers started so far stop with their queue.
                served.close();
                return Err(Error::invalid("--workers", format!("cannot start a worker thread: {e}")));
            }
        }
    }
    Ok(served)
}

/// One forward pass at batch 1 and one at `max_batch`, so the first requests do not pay for
/// first-time allocations.
fn warm_up(served: &Served, model: &Model, max_batch: usize, device: &burn::tensor::Device) -> Result<()> {
    let [c, h, w] = served.config.input;
    for batch in [1, max_batch] {
        let x = burn::tensor::Tensor::<4>::zeros([batch, c, h, w], device);
        model.try_forward(&served.config.model, x)?;
        if max_batch == 1 {
            break;
        }
    }
    Ok(())
}
