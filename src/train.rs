//! Training on Fashion-MNIST / MNIST with d2l's recipes, a run directory that can be resumed,
//! and evaluation.
//!
//! A run directory holds `config.json` (everything needed to rebuild the model and continue),
//! `metrics.csv` (one row per epoch), `checkpoint-E-B/` (model, optimizer and progress after
//! batch B of epoch E, the latest named by `checkpoint.json`), `model.bpk` (final weights) and
//! `curves.svg` / `curves.png`. Every file is written to a temporary name and renamed, so a run
//! killed at any moment loses at most the work since its last checkpoint.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer, SgdConfig, decay::WeightDecayConfig,
};
use burn::tensor::{Device, Int, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, DatasetKind, Split};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::model::{Model, ModelConfig};
use crate::registry::{self, Flavour};

/// Optimizer choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Plain SGD (d2l).
    Sgd,
    /// SGD with momentum 0.9 (torchvision's recipe).
    Momentum,
    /// Adam.
    Adam,
    /// AdamW (decoupled weight decay).
    Adamw,
}

/// Learning-rate schedule over the whole run, stepped every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The same rate throughout (d2l).
    Constant,
    /// ×0.1 at 1/3 and 2/3 of the epochs (torchvision's step-30-of-90, scaled).
    Step,
    /// Cosine decay to zero.
    Cosine,
}

/// Everything a run needs; saved as `config.json` in the run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Registry name.
    pub model: String,
    /// The model's full description.
    pub model_config: ModelConfig,
    /// Input `[c, h, w]` the images are resized to.
    pub input: [usize; 3],
    /// Data set.
    pub dataset: DatasetKind,
    /// Epochs.
    pub epochs: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Batch size.
    pub batch_size: usize,
    /// Optimizer.
    pub optimizer: OptimizerKind,
    /// L2 penalty (SGD/Adam) or decoupled decay (AdamW).
    pub weight_decay: f64,
    /// Schedule.
    pub schedule: Schedule,
    /// Linear warm-up length in epochs (may be fractional).
    pub warmup: f64,
    /// Seed for initialization, shuffling and dropout.
    pub seed: u64,
    /// Train on the first N training images only.
    pub train_subset: Option<usize>,
    /// Evaluate on the first N test images only.
    pub test_subset: Option<usize>,
    /// How `predict` prepares an image (runs trained here: grey; imported ImageNet models:
    /// torchvision's eval transform).
    #[serde(default)]
    pub preprocess: Preprocess,
    /// Checkpoint this run was imported from, if any.
    #[serde(default)]
    pub imported_from: Option<String>,
}

/// Image preprocessing for `predict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preprocess {
    /// d2l's: grey levels in [0, 1], bilinear resize to the input (Fashion-MNIST / MNIST).
    #[default]
    Grey,
    /// torchvision's `ImageClassification`: RGB, resize the shorter side to 256 (bilinear,
    /// antialiased), center-crop 224, normalize with ImageNet mean/std.
    Imagenet,
}

/// d2l's own recipe for a preset (reference.md §1.2, the v0.17 column): `(lr, batch size)`.
pub fn d2l_recipe(model: &str) -> (f64, usize) {
    match model {
        "d2l_lenet" => (0.9, 256),
        "d2l_lenet_bn" => (1.0, 256),
        "d2l_alexnet" => (0.01, 128),
        "d2l_vgg11" | "d2l_vgg11_r4" => (0.05, 128),
        "d2l_nin" => (0.1, 128),
        "d2l_googlenet" => (0.1, 128),
        "d2l_resnet18" => (0.05, 256),
        "d2l_densenet" => (0.1, 256),
        _ => (0.01, 128),
    }
}

impl TrainConfig {
    /// The default run for a registry model: d2l's recipe for d2l models (10 epochs, plain SGD,
    /// constant rate); for torchvision models, 1 input channel and 10 classes at the given input,
    /// SGD with momentum and a cosine schedule.
    pub fn for_model(name: &str, input: Option<[usize; 3]>) -> Result<Self> {
        let entry = registry::find(name)?;
        let d2l = entry.flavour == Flavour::D2l;
        let input = input.unwrap_or(match entry.flavour {
            Flavour::D2l => entry.input,
            Flavour::Torchvision => [1, 224, 224],
        });
        let (lr, batch_size) = d2l_recipe(entry.name);
        Ok(Self {
            model: entry.name.to_string(),
            model_config: entry.config_with(10, input[0]),
            input,
            dataset: DatasetKind::FashionMnist,
            epochs: 10,
            lr,
            batch_size,
            optimizer: if d2l { OptimizerKind::Sgd } else { OptimizerKind::Momentum },
            weight_decay: if d2l { 0.0 } else { 1e-4 },
            schedule: if d2l { Schedule::Constant } else { Schedule::Cosine },
            warmup: 0.0,
            seed: 42,
            train_subset: None,
            test_subset: None,
            preprocess: Preprocess::Grey,
            imported_from: None,
        })
    }

    /// Checks ranges that the types do not.
    pub fn validate(&self) -> Result<()> {
        let positive = |v: f64, what: &str| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::invalid(what, format!("must be > 0, got {v}")))
            }
        };
        positive(self.lr, "--lr")?;
        if self.epochs == 0 {
            return Err(Error::invalid("--epochs", "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid("--batch-size", "must be at least 1"));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::invalid("--weight-decay", format!("must be ≥ 0, got {}", self.weight_decay)));
        }
        if !(self.warmup.is_finite() && self.warmup >= 0.0 && self.warmup < self.epochs as f64) {
            return Err(Error::invalid("--warmup", format!("must be in [0, epochs), got {}", self.warmup)));
        }
        if self.input[0] != 1 {
            return Err(Error::invalid("--input", "Fashion-MNIST and MNIST images have 1 channel"));
        }
        if self.model_config.in_channels() != 1 || self.model_config.num_classes() != 10 {
            return Err(Error::invalid("config", "the model must take 1 channel and predict 10 classes"));
        }
        Ok(())
    }

    /// Learning rate at global step `step` of `total` (warm-up, then the schedule).
    pub fn lr_at(&self, step: usize, steps_per_epoch: usize) -> f64 {
        let total = (self.epochs * steps_per_epoch).max(1) as f64;
        let warm = self.warmup * steps_per_epoch as f64;
        let s = step as f64;
        if s < warm {
            return self.lr * (s + 1.0) / warm;
        }
        let progress = ((s - warm) / (total - warm).max(1.0)).min(1.0);
        match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::Step => self.lr * 0.1f64.powi((progress * 3.0).floor().min(2.0) as i32),
            Schedule::Cosine => self.lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        }
    }

    fn optimizer(&self) -> ModuleOptimizer {
        let decay = (self.weight_decay > 0.0).then(|| WeightDecayConfig::new(self.weight_decay as f32));
        match self.optimizer {
            OptimizerKind::Sgd => SgdConfig::new().with_weight_decay(decay).init(),
            OptimizerKind::Momentum => SgdConfig::new()
                .with_weight_decay(decay)
                .with_momentum(Some(MomentumConfig::new().with_momentum(0.9).with_dampening(0.0)))
                .init(),
            OptimizerKind::Adam => AdamConfig::new().with_weight_decay(decay).with_epsilon(1e-8).init(),
            OptimizerKind::Adamw => {
                AdamWConfig::new().with_weight_decay(self.weight_decay as f32).with_epsilon(1e-8).init()
            }
        }
    }
}

/// One epoch's results (a row of `metrics.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Training accuracy over the epoch.
    pub train_acc: f64,
    /// Test accuracy after the epoch (eval mode).
    pub test_acc: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Seconds spent in training steps (d2l's timer: data to device, forward, backward, step).
    pub train_seconds: f64,
    /// Training images per second.
    pub images_per_sec: f64,
}

/// Progress inside the epoch in flight, saved with each checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// 0-based epoch in progress (`== epochs` when finished).
    pub epoch: usize,
    /// Batches of that epoch already done.
    pub batch: usize,
    /// Sum of per-batch mean losses × batch size over those batches.
    pub loss_sum: f64,
    /// Correct predictions over those batches.
    pub correct: usize,
    /// Images seen in those batches.
    pub seen: usize,
    /// Training seconds of those batches.
    pub seconds: f64,
    /// Completed epochs.
    pub history: Vec<EpochMetrics>,
}

/// How training reports progress.
pub trait Reporter {
    /// A batch finished: `done` of `total` batches, with the epoch's running loss and accuracy.
    fn batch(&mut self, epoch: usize, done: usize, total: usize, loss: f64, acc: f64, images_per_sec: f64);
    /// An epoch finished.
    fn epoch(&mut self, config: &TrainConfig, m: &EpochMetrics);
    /// A message (checkpoint written, resuming …).
    fn note(&mut self, message: &str);
}

/// A reporter that says nothing.
pub struct Silent;

impl Reporter for Silent {
    fn batch(&mut self, _: usize, _: usize, _: usize, _: f64, _: f64, _: f64) {}
    fn epoch(&mut self, _: &TrainConfig, _: &EpochMetrics) {}
    fn note(&mut self, _: &str) {}
}

/// Names inside a run directory.
pub mod files {
    /// The run's configuration.
    pub const CONFIG: &str = "config.json";
    /// Per-epoch metrics.
    pub const METRICS: &str = "metrics.csv";
    /// Final weights.
    pub const MODEL: &str = "model.bpk";
    /// Pointer to the latest checkpoint directory.
    pub const CHECKPOINT: &str = "checkpoint.json";
    /// Weights inside a checkpoint.
    pub const CKPT_MODEL: &str = "model.bpk";
    /// Optimizer state inside a checkpoint.
    pub const CKPT_OPTIM: &str = "optim.bpk";
    /// Curves.
    pub const CURVES_SVG: &str = "curves.svg";
    /// Curves, raster.
    pub const CURVES_PNG: &str = "curves.png";
}

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointPointer {
    dir: String,
    state: RunState,
}

/// The run's latest checkpoint directory and the progress saved with it, or `None` before the
/// first checkpoint.
pub fn latest_checkpoint(dir: &Path) -> Result<Option<(PathBuf, RunState)>> {
    let pointer_path = dir.join(files::CHECKPOINT);
    if !pointer_path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&pointer_path).map_err(|e| Error::io("read", &pointer_path, e))?;
    let pointer: CheckpointPointer = serde_json::from_str(&text)
        .map_err(|e| Error::bad_file(&pointer_path, format!("is not a cnnzoo checkpoint pointer: {e}")))?;
    Ok(Some((dir.join(pointer.dir), pointer.state)))
}

/// Why [`train`] returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// All epochs done; final weights in `model.bpk`.
    Finished(Vec<EpochMetrics>),
    /// Stopped by the interrupt flag after saving a checkpoint.
    Interrupted {
        /// 0-based epoch in progress.
        epoch: usize,
        /// Batches done in it.
        batch: usize,
    },
}

/// Options that do not belong in the saved config.
pub struct TrainOptions<'a> {
    /// Device to train on (the autodiff wrapper is added here).
    pub device: Device,
    /// Set from a Ctrl-C handler: stop after the current batch, checkpoint, return.
    pub interrupt: Arc<AtomicBool>,
    /// Write a checkpoint every this many batches as well as at each epoch end (0 = epoch ends only).
    pub checkpoint_every: usize,
    /// Progress sink.
    pub reporter: &'a mut dyn Reporter,
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::invalid("json", e.to_string()))?;
    fsutil::write_atomic(path, text.as_bytes())
}

/// Reads a run directory's `config.json`.
pub fn read_config(run: &Path) -> Result<TrainConfig> {
    let path = run.join(files::CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::bad_file(&path, format!("is not a cnnzoo run config: {e}")))
}

fn save_model(model: &Model, path: &Path) -> Result<()> {
    fsutil::with_atomic(path, |tmp| {
        model.clone().save_file(tmp).map_err(|e| Error::bad_file(path, format!("cannot save weights: {e}")))
    })
}

/// Creates a run directory holding `config` and the final weights of `model` (used by `import`).
pub fn save_run(dir: &Path, config: &TrainConfig, model: &Model) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    save_model(model, &dir.join(files::MODEL))?;
    write_json(&dir.join(files::CONFIG), config)
}

/// Loads weights saved by cnnzoo into a freshly built `config`.
pub fn load_model(config: &ModelConfig, path: &Path, device: &Device) -> Result<Model> {
    if !path.is_file() {
        return Err(Error::bad_file(path, "not found"));
    }
    config
        .init(device)
        .try_load_file(path)
        .map_err(|e| Error::bad_file(path, format!("does not hold weights for this model: {e}")))
}

/// Starts a new run in `dir` (which must not hold one already) or, with `resume`, continues the
/// run in `dir` from its last checkpoint.
pub fn train(
    config: &TrainConfig,
    data: &Dataset,
    dir: &Path,
    resume: bool,
    opts: TrainOptions,
) -> Result<Outcome> {
    config.validate()?;
    let device = opts.device.clone();
    let ad = device.clone().autodiff();
    let entry_name = config.model.as_str();
    let [c, h, w] = config.input;
    let mut model = config.model_config.init(&ad);
    model.check_input(entry_name, [c, h, w], &device)?;
    let mut optim = config.optimizer();
    let mut state =
        RunState { epoch: 0, batch: 0, loss_sum: 0.0, correct: 0, seen: 0, seconds: 0.0, history: vec![] };

    if resume {
        let saved = read_config(dir)?;
        if saved != *config {
            return Err(Error::bad_file(
                dir.join(files::CONFIG),
                format!("describes another run (model `{}`); resume with the same settings", saved.model),
            ));
        }
        if let Some((ckpt, saved_state)) = latest_checkpoint(dir)? {
            model = load_model(&config.model_config, &ckpt.join(files::CKPT_MODEL), &ad)?;
            let optim_path = ckpt.join(files::CKPT_OPTIM);
            optim = optim
                .load(&optim_path)
                .map_err(|e| Error::bad_file(&optim_path, format!("cannot load optimizer state: {e}")))?;
            state = saved_state;
            opts.reporter.note(&format!(
                "resuming {} from {} (epoch {}, batch {})",
                config.model,
                ckpt.display(),
                state.epoch + 1,
                state.batch
            ));
        } else {
            opts.reporter.note("no checkpoint yet: starting from the beginning");
        }
    } else {
        if dir.join(files::CONFIG).exists() {
            return Err(Error::invalid(
                "--out",
                format!("`{}` already holds a run; use --resume {0} or another --out", dir.display()),
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        write_json(&dir.join(files::CONFIG), config)?;
    }

    let train_split = subset(&data.train, config.train_subset);
    let test_split = subset(&data.test, config.test_subset);
    let n = train_split.len();
    if n == 0 {
        return Err(Error::invalid("data", "the training split is empty"));
    }
    let steps_per_epoch = n.div_ceil(config.batch_size);
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let size = [h, w];
    let mut step = state.epoch * steps_per_epoch + state.batch;

    while state.epoch < config.epochs {
        let epoch = state.epoch;
        // Shuffle and dropout depend only on (seed, epoch): a resumed epoch sees the same order.
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(
            config.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9),
        ));
        ad.seed(config.seed.wrapping_add(epoch as u64 * 1000 + state.batch as u64));
        for (b, idx) in order.chunks(config.batch_size).enumerate().skip(state.batch) {
            if opts.interrupt.load(Ordering::SeqCst) {
                checkpoint(dir, &model, &optim, &state)?;
                opts.reporter
                    .note(&format!("interrupted: checkpoint saved at epoch {}, batch {b}", epoch + 1));
                return Ok(Outcome::Interrupted { epoch, batch: b });
            }
            let t0 = Instant::now();
            let lr = config.lr_at(step, steps_per_epoch);
            let (x, y) = train_split.batch(idx, size, &ad);
            let logits = model.forward(x);
            let loss = loss_fn.forward(logits.clone(), y.clone());
            let loss_value = f64::from(loss.clone().into_scalar::<f32>());
            if !loss_value.is_finite() {
                return Err(Error::Diverged {
                    epoch: epoch + 1,
                    batch: b + 1,
                    loss: loss_value,
                    lr: short(lr),
                    suggestion: short(config.lr / 10.0),
                });
            }
            let correct = count_correct(logits.detach(), y);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            state.seconds += t0.elapsed().as_secs_f64();
            state.loss_sum += loss_value * idx.len() as f64;
            state.correct += correct;
            state.seen += idx.len();
            state.batch = b + 1;
            step += 1;
            let ips = state.seen as f64 / state.seconds.max(1e-9);
            opts.reporter.batch(
                epoch,
                b + 1,
                steps_per_epoch,
                state.loss_sum / state.seen as f64,
                state.correct as f64 / state.seen as f64,
                ips,
            );
            if opts.checkpoint_every > 0 && (b + 1) % opts.checkpoint_every == 0 && b + 1 < steps_per_epoch {
                checkpoint(dir, &model, &optim, &state)?;
            }
        }
        let test = evaluate(&model.valid(), &test_split, size, 256, &device);
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            train_loss: state.loss_sum / state.seen.max(1) as f64,
            train_acc: state.correct as f64 / state.seen.max(1) as f64,
            test_acc: test.top1,
            lr: config.lr_at(step.saturating_sub(1), steps_per_epoch),
            train_seconds: state.seconds,
            images_per_sec: state.seen as f64 / state.seconds.max(1e-9),
        };
        opts.reporter.epoch(config, &metrics);
        state.history.push(metrics);
        state = RunState {
            epoch: epoch + 1,
            batch: 0,
            loss_sum: 0.0,
            correct: 0,
            seen: 0,
            seconds: 0.0,
            history: state.history,
        };
        write_metrics(dir, &state.history)?;
        write_curves(dir, &config.model, &state.history)?;
        checkpoint(dir, &model, &optim, &state)?;
    }
    save_model(&model.valid(), &dir.join(files::MODEL))?;
    Ok(Outcome::Finished(state.history))
}

/// A learning rate as a person writes it: `0.05`, `1e-5`, `1e30`.
fn short(v: f64) -> String {
    let trim = |s: String| s.trim_end_matches('0').trim_end_matches('.').to_string();
    if v != 0.0 && !(1e-4..1e5).contains(&v.abs()) {
        let s = format!("{v:.4e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        format!("{}e{exp}", trim(mantissa.to_string()))
    } else {
        trim(format!("{v:.6}"))
    }
}

fn subset(split: &Split, n: Option<usize>) -> Split {
    match n {
        Some(n) => split.clone().truncate(n),
        None => split.clone(),
    }
}

fn count_correct(logits: Tensor<2>, y: Tensor<1, Int>) -> usize {
    let pred = logits.argmax(1).flatten::<1>(0, 1);
    pred.equal(y).int().sum().into_scalar::<i64>() as usize
}

/// Writes a checkpoint directory, then points `checkpoint.json` at it, then removes older ones.
fn checkpoint(dir: &Path, model: &Model, optim: &ModuleOptimizer, state: &RunState) -> Result<()> {
    let name = format!("checkpoint-{}-{}", state.epoch, state.batch);
    let ckpt = dir.join(&name);
    std::fs::create_dir_all(&ckpt).map_err(|e| Error::io("create", &ckpt, e))?;
    save_model(model, &ckpt.join(files::CKPT_MODEL))?;
    let optim_path = ckpt.join(files::CKPT_OPTIM);
    fsutil::with_atomic(&optim_path, |tmp| {
        optim.save(tmp).map_err(|e| Error::bad_file(&optim_path, format!("cannot save optimizer state: {e}")))
    })?;
    write_json(&dir.join(files::CHECKPOINT), &CheckpointPointer { dir: name.clone(), state: state.clone() })?;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let n = entry.file_name().to_string_lossy().into_owned();
            if n.starts_with("checkpoint-") && n != name && entry.path().is_dir() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(())
}

/// Writes `curves.svg` and `curves.png` for a run: train loss, train acc and test acc by epoch.
pub fn write_curves(dir: &Path, model: &str, history: &[EpochMetrics]) -> Result<()> {
    if history.is_empty() {
        return Err(Error::invalid("plot", "no epochs to plot"));
    }
    let col = |f: fn(&EpochMetrics) -> f64| history.iter().map(f).collect::<Vec<_>>();
    let chart = crate::plot::training_curves(
        model,
        &col(|m| m.epoch as f64),
        &col(|m| m.train_loss),
        &col(|m| m.train_acc),
        &col(|m| m.test_acc),
    );
    let (svg, png) = chart.render()?;
    fsutil::write_atomic(&dir.join(files::CURVES_SVG), svg.as_bytes())?;
    fsutil::write_atomic(&dir.join(files::CURVES_PNG), &png)
}

/// Rewrites `metrics.csv` from the history.
pub fn write_metrics(dir: &Path, history: &[EpochMetrics]) -> Result<()> {
    let mut csv = String::from("epoch,train_loss,train_acc,test_acc,lr,train_seconds,images_per_sec\n");
    for m in history {
        csv.push_str(&format!(
            "{},{:.6},{:.6},{:.6},{},{:.3},{:.1}\n",
            m.epoch, m.train_loss, m.train_acc, m.test_acc, m.lr, m.train_seconds, m.images_per_sec
        ));
    }
    fsutil::write_atomic(&dir.join(files::METRICS), csv.as_bytes())
}

/// Results of [`evaluate`].
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Images evaluated.
    pub images: usize,
    /// Top-1 accuracy.
    pub top1: f64,
    /// Top-5 accuracy.
    pub top5: f64,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Accuracy per true class.
    pub per_class: Vec<f64>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

/// Evaluates an eval-mode model (`model.valid()`) on `split`.
pub fn evaluate(model: &Model, split: &Split, size: [usize; 2], batch: usize, device: &Device) -> Evaluation {
    let classes = 10;
    let mut confusion = vec![vec![0usize; classes]; classes];
    let (mut top5, mut loss_sum) = (0usize, 0.0f64);
    let order: Vec<usize> = (0..split.len()).collect();
    for idx in order.chunks(batch.max(1)) {
        let (x, y) = split.batch(idx, size, device);
        let logits = model.forward(x);
        let log_probs = burn::tensor::activation::log_softmax(logits, 1);
        let values: Vec<f32> =
            log_probs.into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default();
        let labels: Vec<i64> = y.into_data().convert::<i64>().try_into_vec::<i64>().unwrap_or_default();
        for (row, &label) in values.chunks(classes).zip(&labels) {
            let label = label as usize;
            let mut ranked: Vec<usize> = (0..classes).collect();
            ranked.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            confusion[label][ranked[0]] += 1;
            top5 += usize::from(ranked[..5].contains(&label));
            loss_sum -= f64::from(row[label]);
        }
    }
    let n = split.len().max(1) as f64;
    let correct: usize = (0..classes).map(|i| confusion[i][i]).sum();
    let per_class = confusion
        .iter()
        .enumerate()
        .map(|(i, row)| row[i] as f64 / row.iter().sum::<usize>().max(1) as f64)
        .collect();
    Evaluation {
        images: split.len(),
        top1: correct as f64 / n,
        top5: top5 as f64 / n,
        loss: loss_sum / n,
        per_class,
        confusion,
    }
}

/// Reads `metrics.csv` back (for `compare` and reports).
pub fn read_metrics(dir: &Path) -> Result<Vec<EpochMetrics>> {
    let path: PathBuf = dir.join(files::METRICS);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
            match (num(0), num(1), num(2), num(3), num(4), num(5), num(6)) {
                (Some(e), Some(l), Some(a), Some(t), Some(lr), Some(s), Some(ips)) => Ok(EpochMetrics {
                    epoch: e as usize,
                    train_loss: l,
                    train_acc: a,
                    test_acc: t,
                    lr,
                    train_seconds: s,
                    images_per_sec: ips,
                }),
                _ => Err(Error::bad_file(&path, format!("has a malformed row `{line}`"))),
            }
        })
        .collect()
}
