//! What `compare` measures about each model: size, compute and the channel count along the
//! network (from one shape-only walk), throughput (cached in `compare.json`, keyed on how it was
//! measured), and the training history with the preset's recipe.

use std::path::Path;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::bench::{self, BenchResult, BenchSpec, Mode};
use crate::error::Result;
use crate::inspect::{SummaryOptions, summarize};
use crate::registry;
use crate::train::EpochMetrics;

/// Everything measured about one model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelRow {
    /// Registry name.
    pub model: String,
    /// Family.
    pub family: String,
    /// The d2l input.
    pub input: [usize; 3],
    /// Parameters.
    pub params: usize,
    /// Multiply-accumulates per image.
    pub macs: u64,
    /// Activation memory per image (every stage's output).
    pub activation_bytes_per_image: u64,
    /// Parameters of the classifier (NiN: its last block).
    pub classifier_params: usize,
    /// `classifier_params / params`.
    pub classifier_share: f64,
    /// Output channels of each depth-2 stage (DenseNet's transitions show here).
    pub channels: Vec<(String, usize)>,
    /// Training-step throughput.
    pub train: Option<BenchResult>,
    /// Inference throughput.
    pub infer: Option<BenchResult>,
    /// How the throughput was measured (a cached number is reused only under the same key).
    #[serde(default)]
    pub measured_with: Option<MeasureKey>,
    /// Per-epoch metrics of the training run, if any.
    pub history: Vec<EpochMetrics>,
    /// Wall time of the training run.
    pub wall_seconds: Option<f64>,
}

/// What a throughput measurement depends on besides the model: a cached speed measured under
/// another key (another build, step count, thread count or kernel choice) is measured again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasureKey {
    /// Timed steps.
    pub steps: usize,
    /// Compute threads.
    pub threads: usize,
    /// Burn's own ops instead of cnnzoo's kernels.
    pub reference_kernels: bool,
    /// The measuring program: version, and size and modification time of the executable.
    pub build: String,
}

impl MeasureKey {
    /// The key of a measurement with `steps` timed steps in this process.
    pub fn current(steps: usize) -> Self {
        let exe = std::env::current_exe().ok().and_then(|p| std::fs::metadata(p).ok());
        let stamp = exe.map_or(String::from("?"), |m| {
            let modified = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            format!("{} bytes, modified {}", m.len(), modified.map_or(0, |d| d.as_secs()))
        });
        Self {
            steps,
            threads: bench::threads(),
            reference_kernels: crate::kernels::reference_kernels(),
            build: format!("cnnzoo {} ({stamp})", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// The static half of a row: parameters, MACs, activation memory, classifier share, channels.
pub fn static_row(name: &str, device: &Device) -> Result<ModelRow> {
    let entry = registry::find(name)?;
    let model = entry.config().init(device);
    let [c, h, w] = entry.input;
    let opts = SummaryOptions { depth: 2, shape_only: true };
    let s = summarize(entry.name, &model, [1, c, h, w], opts, device)?;
    let top =
        summarize(entry.name, &model, [1, c, h, w], SummaryOptions { depth: 1, shape_only: true }, device)?;
    // The classifier: torchvision's `classifier`/`fc`; NiN has none, its last block plays the part.
    let mut classifier_params: usize =
        top.rows.iter().filter(|r| r.name == "classifier" || r.name == "fc").map(|r| r.params).sum();
    if classifier_params == 0 {
        classifier_params = s.rows.iter().rev().find(|r| r.params > 0).map_or(0, |r| r.params);
    }
    let channels =
        s.rows.iter().filter(|r| r.output.len() == 4).map(|r| (r.name.clone(), r.output[1])).collect();
    Ok(ModelRow {
        model: entry.name.to_string(),
        family: entry.family.to_string(),
        input: entry.input,
        params: s.params,
        macs: s.macs,
        activation_bytes_per_image: s.activation_bytes,
        classifier_params,
        classifier_share: classifier_params as f64 / s.params.max(1) as f64,
        channels,
        train: None,
        infer: None,
        measured_with: None,
        history: Vec::new(),
        wall_seconds: None,
    })
}

/// Rows cached in `compare.json` by an earlier run (none if absent or unreadable).
pub fn load_cached(path: &Path) -> Vec<ModelRow> {
    std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
}

/// Fills `row`'s throughput: from `cached` when measured under `key`, else by measuring a
/// training step and inference at the preset's d2l input and recipe batch.
pub fn throughput(
    row: &mut ModelRow,
    cached: &[ModelRow],
    key: &MeasureKey,
    device: &Device,
) -> Result<bool> {
    if let Some(old) = cached.iter().find(|r| r.model == row.model && r.measured_with.as_ref() == Some(key)) {
        row.train = old.train.clone();
        row.infer = old.infer.clone();
        row.measured_with = Some(key.clone());
        if row.train.is_some() && row.infer.is_some() {
            return Ok(false);
        }
    }
    let entry = registry::find(&row.model)?;
    let spec = BenchSpec {
        model: entry.name.to_string(),
        config: entry.config(),
        input: entry.input,
        batch: entry.recipe.batch_size,
        steps: key.steps,
        warmup: 1,
    };
    row.train = Some(bench::run(&spec, Mode::Train, device)?);
    row.infer = Some(bench::run(&spec, Mode::Infer, device)?);
    row.measured_with = Some(key.clone());
    Ok(true)
}

/// Median images/s of a measurement (0 when absent).
pub fn ips(b: &Option<BenchResult>) -> f64 {
    b.as_ref().map_or(0.0, |b| b.images_per_sec.median)
}
