//! Throughput benchmarks: a full training step (data → forward → loss → backward → optimizer
//! step) and inference, timed per phase, reported as images/s (median of timed steps after
//! warm-up, with min and max), achieved GFLOP/s from the MAC count, and peak memory.
//!
//! FLOP convention: a forward pass costs 2·MACs per image; a training step 3× a forward
//! (backward ≈ 2× forward), the usual estimate. `benchmarks/pytorch_peer.py` measures PyTorch
//! with the same models, shapes, batches, thread count and JSON schema.

use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::inspect::{SummaryOptions, summarize};
use crate::model::ModelConfig;

/// Which passes to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Training step.
    Train,
    /// Inference (eval mode, no autodiff).
    Infer,
    /// Both.
    Both,
}

impl Mode {
    /// The single modes this one stands for: `Both` is a training step, then inference.
    pub fn each(self) -> &'static [Mode] {
        match self {
            Mode::Both => &[Mode::Train, Mode::Infer],
            Mode::Train => &[Mode::Train],
            Mode::Infer => &[Mode::Infer],
        }
    }
}

/// The models `bench` and `compare` measure by default: the seven of d2l's chapter.
pub fn default_models() -> Vec<String> {
    crate::registry::D2L_SEVEN.iter().map(|s| s.to_string()).collect()
}

/// Median / min / max of a series of seconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Stat {
    /// Median.
    pub median: f64,
    /// Fastest.
    pub min: f64,
    /// Slowest.
    pub max: f64,
}

impl Stat {
    /// Summarizes `samples` (seconds).
    pub fn of(samples: &[f64]) -> Self {
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        if s.is_empty() {
            return Self::default();
        }
        let mid = s.len() / 2;
        let median = if s.len().is_multiple_of(2) { (s[mid - 1] + s[mid]) / 2.0 } else { s[mid] };
        Self { median, min: s[0], max: s[s.len() - 1] }
    }
}

/// One benchmark result (the JSON schema shared with the PyTorch peer).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchResult {
    /// "cnnzoo" or "pytorch".
    pub framework: String,
    /// Registry name.
    pub model: String,
    /// "train" or "infer".
    pub mode: String,
    /// Batch size.
    pub batch: usize,
    /// Input `[c, h, w]`.
    pub input: [usize; 3],
    /// Compute threads.
    pub threads: usize,
    /// Timed steps.
    pub steps: usize,
    /// Images per second at the median step (and at the fastest / slowest).
    pub images_per_sec: Stat,
    /// Seconds per step.
    pub step_seconds: Stat,
    /// Median seconds per phase: data, forward, backward, optimizer (train) or data, forward.
    pub phases: Vec<(String, f64)>,
    /// Achieved GFLOP/s at the median step.
    pub gflops: f64,
    /// Peak resident memory of the process during this benchmark, MiB (Linux `VmHWM`).
    pub peak_mib: Option<f64>,
}

/// What to benchmark.
#[derive(Debug, Clone)]
pub struct BenchSpec {
    /// Registry name.
    pub model: String,
    /// Model (10 classes, channels as `input`).
    pub config: ModelConfig,
    /// Input `[c, h, w]`.
    pub input: [usize; 3],
    /// Batch size.
    pub batch: usize,
    /// Timed steps.
    pub steps: usize,
    /// Untimed warm-up steps.
    pub warmup: usize,
}

impl BenchSpec {
    /// The benchmark of preset `name` as `train` would run it: its training input (or `input`),
    /// 10 classes, its recipe's batch size (or `batch`); checked to fit the model.
    pub fn for_model(
        name: &str,
        input: Option<[usize; 3]>,
        batch: Option<usize>,
        steps: usize,
        warmup: usize,
        device: &Device,
    ) -> Result<Self> {
        let entry = crate::registry::find(name)?;
        let input = input.unwrap_or(entry.train_input());
        let spec = BenchSpec {
            model: entry.name.to_string(),
            config: entry.config_with(10, input[0]),
            input,
            batch: batch.unwrap_or(entry.recipe.batch_size),
            steps,
            warmup,
        };
        spec.config.init(device).check_input(entry.name, input, device)?;
        Ok(spec)
    }
}

impl BenchResult {
    /// One row of `cnnzoo bench`'s table.
    pub fn table_row(&self) -> String {
        let [c, h, w] = self.input;
        let phases: Vec<String> = self.phases.iter().map(|(n, s)| format!("{n} {s:.3}")).collect();
        format!(
            "{:<14} {:<5} {:>5} {:>11} {:>9.1} {:>9.1} {:>9.1} {:>8.1} {:>9}  {}",
            self.model,
            self.mode,
            self.batch,
            format!("{c}x{h}x{w}"),
            self.images_per_sec.median,
            self.images_per_sec.min,
            self.images_per_sec.max,
            self.gflops,
            self.peak_mib.map_or("-".into(), |m| format!("{m:.0}")),
            phases.join(", ")
        )
    }
}

/// Resets the kernel's peak-RSS counter for this process (Linux ≥ 4.0); false elsewhere.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A batch as the training loader makes it: u8 pixels at 28×28 → [0, 1] → bilinear resize.
fn batch(spec: &BenchSpec, step: usize, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let [c, h, w] = spec.input;
    let px = c * 28 * 28;
    let pixels: Vec<f32> =
        (0..spec.batch * px).map(|i| ((i * 7919 + step * 31) % 256) as f32 / 255.0).collect();
    let x = Tensor::<4>::from_data(TensorData::new(pixels, [spec.batch, c, 28, 28]), device);
    let x = crate::data::resize(x, [h, w]);
    let labels: Vec<i64> = (0..spec.batch).map(|i| ((i + step) % 10) as i64).collect();
    (x, Tensor::from_data(TensorData::new(labels, [spec.batch]), device))
}

/// Rayon's thread count (what flex computes with).
pub fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Runs one benchmark of a single mode (`Mode::Both` is refused: run each of
/// [`Mode::each`]).
pub fn run(spec: &BenchSpec, mode: Mode, device: &Device) -> Result<BenchResult> {
    if spec.batch == 0 || spec.steps == 0 {
        return Err(Error::invalid("--batch/--steps", "must be at least 1"));
    }
    if mode == Mode::Both {
        return Err(Error::invalid("mode", "run `train` and `infer` separately (see Mode::each)"));
    }
    let [c, h, w] = spec.input;
    let probe_model = spec.config.init(device);
    let opts = SummaryOptions { depth: 1, shape_only: true };
    let macs = summarize(&spec.model, &probe_model, [1, c, h, w], opts, device)?.macs as f64;
    drop(probe_model);
    reset_peak();
    let mut step_times = Vec::new();
    let mut phase_samples: Vec<Vec<f64>> = Vec::new();
    let train = mode == Mode::Train;
    if train {
        let ad = device.clone().autodiff();
        let mut model = spec.config.init(&ad);
        let mut optim = SgdConfig::new().init();
        let loss_fn = CrossEntropyLossConfig::new().init(&ad);
        for step in 0..spec.warmup + spec.steps {
            let t0 = Instant::now();
            let (x, y) = batch(spec, step, &ad);
            let t1 = Instant::now();
            let loss = loss_fn.forward(model.forward(x), y);
            let _ = loss.clone().into_scalar::<f32>();
            let t2 = Instant::now();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let t3 = Instant::now();
            model = optim.step(0.01, model, grads);
            let t4 = Instant::now();
            if step >= spec.warmup {
                step_times.push((t4 - t0).as_secs_f64());
                phase_samples.push(vec![
                    (t1 - t0).as_secs_f64(),
                    (t2 - t1).as_secs_f64(),
                    (t3 - t2).as_secs_f64(),
                    (t4 - t3).as_secs_f64(),
                ]);
            }
        }
    } else {
        let model = spec.config.init(device);
        for step in 0..spec.warmup + spec.steps {
            let t0 = Instant::now();
            let (x, _) = batch(spec, step, device);
            let t1 = Instant::now();
            let y = model.forward(x);
            let _ = y.into_data();
            let t2 = Instant::now();
            if step >= spec.warmup {
                step_times.push((t2 - t0).as_secs_f64());
                phase_samples.push(vec![(t1 - t0).as_secs_f64(), (t2 - t1).as_secs_f64()]);
            }
        }
    }
    let names: &[&str] =
        if train { &["data", "forward", "backward", "optimizer"] } else { &["data", "forward"] };
    let phases = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            (n.to_string(), Stat::of(&phase_samples.iter().map(|p| p[i]).collect::<Vec<_>>()).median)
        })
        .collect();
    let steps = Stat::of(&step_times);
    let per_sec = |s: f64| spec.batch as f64 / s.max(1e-12);
    let flops_per_step = 2.0 * macs * spec.batch as f64 * if train { 3.0 } else { 1.0 };
    Ok(BenchResult {
        framework: "cnnzoo".into(),
        model: spec.model.clone(),
        mode: if train { "train" } else { "infer" }.into(),
        batch: spec.batch,
        input: spec.input,
        threads: threads(),
        steps: spec.steps,
        images_per_sec: Stat {
            median: per_sec(steps.median),
            min: per_sec(steps.max),
            max: per_sec(steps.min),
        },
        step_seconds: steps,
        phases,
        gflops: flops_per_step / steps.median.max(1e-12) / 1e9,
        peak_mib: peak_mib(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_is_a_training_step_and_inference() {
        assert_eq!(Mode::Both.each(), [Mode::Train, Mode::Infer]);
        let device = Device::flex();
        let spec = BenchSpec::for_model("d2l_lenet", None, Some(2), 1, 0, &device).unwrap();
        // A single run of `Both` used to time inference only; now it is refused.
        assert!(run(&spec, Mode::Both, &device).is_err());
        let modes: Vec<String> =
            Mode::Both.each().iter().map(|&m| run(&spec, m, &device).unwrap().mode).collect();
        assert_eq!(modes, ["train", "infer"]);
    }
}

/// How fast a run's loader turns images into training batches (decode, transforms, batching)
/// on its worker threads, with no model attached.
#[derive(Debug, Clone, Serialize)]
pub struct LoaderResult {
    /// The data set.
    pub dataset: String,
    /// The training pipeline, in the spec syntax.
    pub transforms: String,
    /// The model input the pipeline produces.
    pub input: [usize; 3],
    /// Loader threads.
    pub workers: usize,
    /// Images prepared (skipped ones not counted).
    pub images: usize,
    /// Images per second.
    pub images_per_sec: f64,
}

impl LoaderResult {
    /// One line for the table.
    pub fn table_row(&self) -> String {
        let [c, h, w] = self.input;
        format!(
            "loader: {} at {c}x{h}x{w}, {} workers: {:.0} img/s over {} images  ({})",
            self.dataset, self.workers, self.images_per_sec, self.images, self.transforms
        )
    }
}

/// Times `data`'s training loader over its first `images` images (at least one batch) in
/// batches of the run's size.
pub fn loader(
    config: &crate::train::TrainConfig,
    data: &crate::train::RunData,
    images: usize,
    workers: usize,
    device: &Device,
) -> Result<LoaderResult> {
    let n = images.clamp(1, data.train.source().len().max(1));
    let order: Vec<usize> = (0..n).collect();
    let batches: Vec<Vec<usize>> = order.chunks(config.batch_size.max(1)).map(<[usize]>::to_vec).collect();
    let t0 = Instant::now();
    let mut done = 0;
    for batch in data.train.epoch(batches, config.seed, device) {
        done += batch?.len;
    }
    let seconds = t0.elapsed().as_secs_f64();
    Ok(LoaderResult {
        dataset: config.dataset.to_string(),
        transforms: config.transforms()?.train.to_string(),
        input: config.input,
        workers,
        images: done,
        images_per_sec: done as f64 / seconds.max(1e-9),
    })
}
