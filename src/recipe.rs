//! Training recipes: the optimizer, schedule and hyper-parameters a preset trains with by
//! default (d2l's v0.17 recipe for the d2l presets, torchvision's style for the others). The
//! registry holds one per preset; `train` starts from it and applies the user's flags.

use serde::{Deserialize, Serialize};

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

/// A preset's default training recipe.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Recipe {
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
}

impl Recipe {
    /// d2l's `train_ch6`: 10 epochs of plain SGD at a constant rate (reference.md §1.2, v0.17).
    pub const fn d2l(lr: f64, batch_size: usize) -> Self {
        Self {
            epochs: 10,
            lr,
            batch_size,
            optimizer: OptimizerKind::Sgd,
            weight_decay: 0.0,
            schedule: Schedule::Constant,
        }
    }

    /// torchvision's classification recipe, shortened to 10 epochs: SGD with momentum 0.9,
    /// weight decay 1e-4, cosine schedule.
    pub const fn torchvision(lr: f64, batch_size: usize) -> Self {
        Self {
            epochs: 10,
            lr,
            batch_size,
            optimizer: OptimizerKind::Momentum,
            weight_decay: 1e-4,
            schedule: Schedule::Cosine,
        }
    }
}
