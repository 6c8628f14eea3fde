//! `compare`: the seven d2l models side by side — size, compute, memory, speed and, with
//! epochs, accuracy after training with each model's recipe — next to the claims the "Modern
//! CNNs" chapter makes about them ([`measure`], [`claims`], [`report`]). Resumable: speeds are
//! cached in `compare.json`, finished models are not retrained, interrupted ones continue from
//! their checkpoint.

pub mod claims;
pub mod measure;
pub mod report;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use burn::tensor::Device;

use crate::data::{self, DatasetKind};
use crate::error::{Error, Result};
use crate::train::{self, Outcome, Reporter, TrainConfig, TrainOptions};
use crate::{fsutil, registry};
pub use measure::{MeasureKey, ModelRow};

/// What to compare and where.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Registry names (resolved by [`registry::find`]); empty = the seven of d2l's chapter.
    pub models: Vec<String>,
    /// Train each model this many epochs with its recipe (0 = size and speed only).
    pub epochs: usize,
    /// Train on the first N training images (the test set stays whole).
    pub subset: Option<usize>,
    /// Directory with the IDX files (default: as for `train`).
    pub data: Option<PathBuf>,
    /// Output directory (reports, charts, one training run per model).
    pub out: PathBuf,
    /// Timed steps per throughput measurement.
    pub bench_steps: usize,
}

/// How a comparison ended.
#[derive(Debug)]
pub enum CompareOutcome {
    /// Every model measured (and trained); the reports are written.
    Done {
        /// One row per model.
        rows: Vec<ModelRow>,
        /// `compare.md`: the table and the claims.
        markdown: String,
    },
    /// Ctrl-C while training `model`; the reports show what was done, the same call continues.
    Interrupted {
        /// The model whose training was interrupted.
        model: String,
    },
}

/// Runs the comparison; progress goes to `reporter` (notes, and the training runs' batches).
pub fn run(
    opts: &CompareOptions,
    device: &Device,
    interrupt: Arc<AtomicBool>,
    reporter: &mut dyn Reporter,
) -> Result<CompareOutcome> {
    let names: Vec<String> = if opts.models.is_empty() {
        crate::bench::default_models()
    } else {
        opts.models.iter().map(|m| registry::find(m).map(|e| e.name.to_string())).collect::<Result<_>>()?
    };
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io("create", &opts.out, e))?;
    let cache_path = opts.out.join("compare.json");
    let cached = measure::load_cached(&cache_path);
    let key = MeasureKey::current(opts.bench_steps);

    // 1. Size, compute and speed (cheap; speeds are cached in compare.json under their key).
    let mut rows = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut row = measure::static_row(name, device)?;
        reporter.note(&format!("[{}/{}] throughput of {name} …", i + 1, names.len()));
        if !measure::throughput(&mut row, &cached, &key, device)? {
            reporter.note(&format!(
                "[{}/{}] {name}: throughput reused from {}",
                i + 1,
                names.len(),
                cache_path.display()
            ));
        }
        rows.push(row);
        fsutil::write_json(&cache_path, &rows)?;
    }

    // 2. Training with each model's recipe.
    if opts.epochs > 0 {
        let data_dir = data::locate(DatasetKind::FashionMnist, opts.data.as_deref())?;
        let dataset = data::load(DatasetKind::FashionMnist, &data_dir)?;
        let images = opts.subset.unwrap_or(dataset.train.len()).min(dataset.train.len());
        let estimate = |r: &ModelRow| {
            let per_epoch = images as f64 / measure::ips(&r.train).max(1e-9)
                + dataset.test.len() as f64 / measure::ips(&r.infer).max(1e-9);
            per_epoch * opts.epochs as f64
        };
        for i in 0..rows.len() {
            let name = rows[i].model.clone();
            let dir = opts.out.join(&name);
            let mut config = TrainConfig::for_model(&name, None)?;
            config.epochs = opts.epochs;
            config.train_subset = opts.subset;
            let same_run = || train::read_config(&dir).is_ok_and(|c| c == config);
            if dir.join(train::files::MODEL).is_file()
                && same_run()
                && train::read_metrics(&dir).is_ok_and(|m| m.len() == opts.epochs)
            {
                rows[i].history = train::read_metrics(&dir)?;
                rows[i].wall_seconds = cached.iter().find(|r| r.model == name).and_then(|r| r.wall_seconds);
                reporter.note(&format!(
                    "[{}/{}] {name}: already trained in {}",
                    i + 1,
                    rows.len(),
                    dir.display()
                ));
                continue;
            }
            let resume = dir.join(train::files::CONFIG).is_file();
            if resume && !same_run() {
                return Err(Error::invalid(
                    "--out",
                    format!("{} holds a run with other settings; use another --out", dir.display()),
                ));
            }
            let remaining: f64 = rows[i..].iter().map(estimate).sum();
            reporter.note(&format!(
                "[{}/{}] training {name}: {} epochs on {images} images (estimated {:.0} min for this model, {:.0} min for the rest of the comparison)",
                i + 1,
                rows.len(),
                opts.epochs,
                estimate(&rows[i]) / 60.0,
                remaining / 60.0
            ));
            let t0 = Instant::now();
            let train_opts = TrainOptions {
                device: device.clone(),
                interrupt: interrupt.clone(),
                checkpoint_every: 50,
                reporter: &mut *reporter,
            };
            let run_data = train::RunData::from_dataset(&config, &dataset, train::LoadOptions::default())?;
            let outcome = train::train(&config, &run_data, &dir, resume, train_opts)?;
            match outcome {
                Outcome::Finished(history) => {
                    rows[i].history = history;
                    rows[i].wall_seconds = Some(t0.elapsed().as_secs_f64());
                }
                Outcome::Interrupted { .. } => {
                    report::write_reports(&opts.out, &rows)?;
                    return Ok(CompareOutcome::Interrupted { model: name });
                }
            }
            fsutil::write_json(&cache_path, &rows)?;
        }
    }
    fsutil::write_json(&cache_path, &rows)?;
    let markdown = report::write_reports(&opts.out, &rows)?;
    Ok(CompareOutcome::Done { rows, markdown })
}
