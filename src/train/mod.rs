//! Training on Fashion-MNIST, MNIST, CIFAR or an image folder with a preset's recipe (from
//! scratch or fine-tuning other weights), a run directory that can be resumed, and evaluation —
//! one module per job:
//!
//! - [`config`]: what a run is ([`TrainConfig`], saved as `config.json`) and how flags change it;
//! - [`run_dir`]: the files of a run directory — config, metrics, checkpoints, weights, curves;
//! - [`fit`]: the training loop ([`train`]), its progress reports and interruption;
//! - [`data`]: a run's images as loaders, with its transforms;
//! - [`finetune`]: `--init`, the head found by shape, backbone freezing;
//! - [`evaluate`](mod@evaluate): top-1/top-5, per-class accuracy and the confusion matrix;
//! - [`import`]: a PyTorch checkpoint made into a run directory.
//!
//! A run directory holds `config.json` (everything needed to rebuild the model and continue),
//! `metrics.csv` (one row per epoch), `checkpoint-E-B/` (model, optimizer and progress after
//! batch B of epoch E, the latest named by `checkpoint.json`), `model.bpk` (final weights) and
//! `curves.svg` / `curves.png`. Every file is written to a temporary name and renamed, so a run
//! killed at any moment loses at most the work since its last checkpoint.

pub mod config;
pub mod data;
pub mod evaluate;
pub mod finetune;
pub mod fit;
pub mod import;
pub mod run_dir;

pub use config::{Freeze, Overrides, TrainConfig};
pub use data::{LoadOptions, RunData};
pub use evaluate::{Evaluation, evaluate, evaluate_run};
pub use fit::{Outcome, Reporter, Silent, TrainOptions, train};
pub use import::import_run;
pub use run_dir::{
    EpochMetrics, LoadedRun, RunState, files, latest_checkpoint, load_model, load_run, read_config,
    read_metrics, save_run,
};
