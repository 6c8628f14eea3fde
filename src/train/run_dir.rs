//! The files of a run directory: `config.json`, `metrics.csv`, checkpoints (and the
//! `checkpoint.json` pointer to the latest), `model.bpk`, the curves. Every write goes to a
//! temporary name and is renamed into place.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::model::{Model, ModelConfig};

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
    /// Held (an advisory lock) by the process training in the directory.
    pub const LOCK: &str = ".lock";
}

/// Takes the run directory's lock: an advisory lock on `.lock` that the OS releases when the
/// process ends, however it ends (a run killed with SIGKILL never leaves it held). A second
/// process that wants to train in `dir` is refused instead of interleaving checkpoints.
pub(crate) fn lock(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join(files::LOCK);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("create", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::invalid(
            "run directory",
            format!(
                "`{}` is in use by another `cnnzoo train` (it holds `{}`); wait for it to finish or stop it first",
                dir.display(),
                path.display()
            ),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io("lock", &path, e)),
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
    /// Unreadable images skipped so far in the run.
    #[serde(default)]
    pub skipped: usize,
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
    // The pointer names a `checkpoint-E-B` folder of this run: anything else (an absolute path,
    // `..`, a nested path) would load weights from outside the run directory.
    let mut parts = Path::new(&pointer.dir).components();
    let inside = matches!((parts.next(), parts.next()), (Some(std::path::Component::Normal(_)), None))
        && pointer.dir.starts_with("checkpoint-");
    if !inside {
        return Err(Error::bad_file(
            &pointer_path,
            format!(
                "points at `{}`, not a `checkpoint-E-B` folder of the run directory",
                pointer.dir.escape_debug()
            ),
        ));
    }
    // The progress is the one cnnzoo saved with that folder: `checkpoint-E-B` for epoch E and
    // batch B, after E completed epochs. (Resuming computes with these numbers; a corrupt
    // pointer claiming epoch 2^64 − 1 must not reach that arithmetic.)
    let state = &pointer.state;
    if pointer.dir != format!("checkpoint-{}-{}", state.epoch, state.batch)
        || state.history.len() != state.epoch
        || state.batch > u32::MAX as usize
    {
        return Err(Error::bad_file(
            &pointer_path,
            format!(
                "is inconsistent: it points at `{}` with progress epoch {}, batch {} and {} completed \
                 epochs (corrupt?)",
                pointer.dir.escape_debug(),
                state.epoch,
                state.batch,
                state.history.len()
            ),
        ));
    }
    let ckpt = dir.join(&pointer.dir);
    if !ckpt.join(files::CKPT_MODEL).is_file() {
        return Err(Error::bad_file(
            &pointer_path,
            format!(
                "points to `{}`, which is gone (deleted while the run was stopped?); the run cannot resume \
                 from it — start it again in a new directory",
                ckpt.display()
            ),
        ));
    }
    Ok(Some((ckpt, pointer.state)))
}

/// Most classes a run's config may give its model: 100,000 (ImageNet-21k has 21,841). A larger
/// count in a `config.json` is refused before the model, whose head grows with it, is built.
pub const MAX_CLASSES: usize = 100_000;
/// Most input channels a run's config may give its model (cnnzoo's data sets have 1 or 3).
pub const MAX_CHANNELS: usize = 64;

/// Reads a run directory's `config.json`. Its `model_config` must be a registry preset's
/// architecture with 1 to [`MAX_CLASSES`] classes and 1 to [`MAX_CHANNELS`] input channels (as
/// cnnzoo writes them), so a corrupt or hostile file cannot size the model it builds.
pub fn read_config(run: &Path) -> Result<TrainConfig> {
    let path = run.join(files::CONFIG);
    let config = parse_config(run)?;
    let (classes, channels) = (config.model_config.num_classes(), config.model_config.in_channels());
    if !(1..=MAX_CLASSES).contains(&classes) || !(1..=MAX_CHANNELS).contains(&channels) {
        return Err(Error::bad_file(
            &path,
            format!(
                "gives the model {classes} classes and {channels} input channels; a run has 1 to \
                 {MAX_CLASSES} classes and 1 to {MAX_CHANNELS} channels"
            ),
        ));
    }
    let preset =
        crate::registry::MODELS.iter().any(|e| e.config_with(classes, channels) == config.model_config);
    if !preset {
        return Err(Error::bad_file(
            &path,
            format!(
                "describes a `{}` model that is no preset's architecture (see `cnnzoo list`)",
                config.model.escape_debug()
            ),
        ));
    }
    Ok(config)
}

/// `config.json` as written, unchecked: for comparing with a config the caller already holds
/// (resuming through the library with a model of its own making), never for building a model.
pub(crate) fn parse_config(run: &Path) -> Result<TrainConfig> {
    let path = run.join(files::CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::bad_file(&path, format!("is not a cnnzoo run config: {e}")))
}

/// Writes the run's configuration (a new run).
pub(crate) fn write_config(run: &Path, config: &TrainConfig) -> Result<()> {
    fsutil::write_json(&run.join(files::CONFIG), config)
}

/// Saves `model`'s weights to `path`, atomically.
pub(crate) fn save_model(model: &Model, path: &Path) -> Result<()> {
    fsutil::with_atomic(path, |tmp| {
        model.clone().save_file(tmp).map_err(|e| Error::bad_file(path, format!("cannot save weights: {e}")))
    })
}

/// Creates a run directory holding `config` and the final weights of `model` (used by `import`).
pub fn save_run(dir: &Path, config: &TrainConfig, model: &Model) -> Result<()> {
    if dir.join(files::CONFIG).exists() {
        return Err(Error::invalid("--out", format!("`{}` already holds a run", dir.display())));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    save_model(model, &dir.join(files::MODEL))?;
    write_config(dir, config)
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

/// A run directory's configuration and model, as [`load_run`] found them.
#[derive(Debug)]
pub struct LoadedRun {
    /// The run's `config.json`.
    pub config: TrainConfig,
    /// The model with the loaded weights.
    pub model: Model,
    /// The weights file that was loaded.
    pub weights: PathBuf,
    /// Whether the run has no final weights yet and `weights` is its last checkpoint.
    pub from_checkpoint: bool,
}

/// Loads a run's config and its final weights (or, for an unfinished run, its last checkpoint).
pub fn load_run(run: &Path, device: &Device) -> Result<LoadedRun> {
    if !run.is_dir() {
        return Err(Error::bad_file(run, "is not a run directory"));
    }
    let config = read_config(run)?;
    let mut weights = run.join(files::MODEL);
    let mut from_checkpoint = false;
    if !weights.is_file() {
        let ckpt = latest_checkpoint(run)?.map(|(dir, _)| dir.join(files::CKPT_MODEL));
        match ckpt.filter(|p| p.is_file()) {
            Some(p) => {
                weights = p;
                from_checkpoint = true;
            }
            None => {
                return Err(Error::bad_file(&weights, "not found, and the run has no checkpoint either"));
            }
        }
    }
    let model = load_model(&config.model_config, &weights, device)?;
    Ok(LoadedRun { config, model, weights, from_checkpoint })
}

/// Writes a checkpoint directory, then points `checkpoint.json` at it, then removes older ones.
pub(crate) fn checkpoint(dir: &Path, model: &Model, optim: &ModuleOptimizer, state: &RunState) -> Result<()> {
    // A run directory deleted (or emptied) under a running process is not silently recreated
    // half-way: without its config.json nothing written here could be resumed.
    if !dir.join(files::CONFIG).is_file() {
        return Err(Error::bad_file(
            dir,
            "lost its config.json while training (was the run directory deleted or moved?); stopping \
             without a checkpoint",
        ));
    }
    let name = format!("checkpoint-{}-{}", state.epoch, state.batch);
    let ckpt = dir.join(&name);
    // (It exists when a run stopped right after resuming from it: then it is rewritten in place,
    // file by file, each atomically.)
    let created = match std::fs::create_dir(&ckpt) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(Error::io("create", &ckpt, e)),
    };
    let written = save_model(model, &ckpt.join(files::CKPT_MODEL)).and_then(|()| {
        let optim_path = ckpt.join(files::CKPT_OPTIM);
        fsutil::with_atomic(&optim_path, |tmp| {
            optim
                .save(tmp)
                .map_err(|e| Error::bad_file(&optim_path, format!("cannot save optimizer state: {e}")))
        })
    });
    if let Err(e) = written {
        // The pointer still names the last complete checkpoint; this one never was.
        if created {
            let _ = std::fs::remove_dir_all(&ckpt);
        }
        return Err(e);
    }
    fsutil::write_json(
        &dir.join(files::CHECKPOINT),
        &CheckpointPointer { dir: name.clone(), state: state.clone() },
    )?;
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

/// Loads the optimizer state saved in checkpoint directory `ckpt` into `optim`.
pub(crate) fn load_optimizer(ckpt: &Path, optim: ModuleOptimizer) -> Result<ModuleOptimizer> {
    let optim_path = ckpt.join(files::CKPT_OPTIM);
    optim
        .load(&optim_path)
        .map_err(|e| Error::bad_file(&optim_path, format!("cannot load optimizer state: {e}")))
}

const METRICS_HEADER: &str = "epoch,train_loss,train_acc,test_acc,lr,train_seconds,images_per_sec";

/// Rewrites `metrics.csv` from the history.
pub fn write_metrics(dir: &Path, history: &[EpochMetrics]) -> Result<()> {
    let mut csv = format!("{METRICS_HEADER}\n");
    for m in history {
        csv.push_str(&format!(
            "{},{:.6},{:.6},{:.6},{},{:.3},{:.1}\n",
            m.epoch, m.train_loss, m.train_acc, m.test_acc, m.lr, m.train_seconds, m.images_per_sec
        ));
    }
    fsutil::write_atomic(&dir.join(files::METRICS), csv.as_bytes())
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

/// Draws the run's curves (train loss, train and test accuracy by epoch) into `curves.svg` and
/// `curves.png`.
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
