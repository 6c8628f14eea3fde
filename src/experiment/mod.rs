//! `cnnzoo experiment`: the "Modern CNNs" chapter's lessons as measurements. Each experiment is
//! a claim, a protocol, measurements, charts and a verdict with its numbers ([`Finding`]):
//! trained ones ([`lessons`]: ReLU against sigmoid, dropout, augmentation, residual connections,
//! batch norm, small kernels) and measured ones ([`statics`]: 1×1 convolutions, DenseNet's
//! transitions, the chapter's static claims). [`report`] writes them as one HTML page, markdown
//! and JSON.
//!
//! Resumable like `compare`: every trained arm is a run directory under `--out`, finished runs
//! are read back, interrupted ones continue from their checkpoint, and a finished experiment's
//! `finding.json` is reused when it was measured at the same budget.

pub mod gradients;
mod lessons;
pub mod report;
mod statics;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::data::{self, Dataset, DatasetKind};
use crate::error::{Error, Result};
use crate::model::ModelConfig;
use crate::train::{self, EpochMetrics, Outcome, Reporter, TrainConfig, TrainOptions};
use crate::{fsutil, plot};

/// How much each experiment measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Budget {
    /// Seconds for all of them: checks the pipeline; the verdicts mean little.
    Quick,
    /// About 30 minutes for all of them on a 2-core CPU (the protocols each report states).
    Default,
    /// The d2l-scale protocols (all 60,000 images, 10 epochs): hours.
    Full,
}

impl Budget {
    /// Picks the value for this budget.
    pub fn pick<T>(self, quick: T, default: T, full: T) -> T {
        match self {
            Budget::Quick => quick,
            Budget::Default => default,
            Budget::Full => full,
        }
    }
}

/// The experiments, in the order they run and appear in the report.
pub const NAMES: [&str; 9] = [
    "relu-vs-sigmoid",
    "dropout",
    "augmentation",
    "residual",
    "batch-norm",
    "one-by-one",
    "small-kernels",
    "transition",
    "static-claims",
];

/// What each experiment of [`NAMES`] cost relative to the others: its seconds at the default
/// budget from scratch on the 2-core AMD EPYC (`docs/results/experiments/`). Only the ratios
/// matter: the suite's ETA scales them by the speed this call measures ([`suite_eta`]).
const RELATIVE_COST: [f64; 9] = [124.0, 112.0, 114.0, 308.0, 268.0, 690.0, 206.0, 11.0, 1.0];

/// The relative cost of experiment `name` ([`RELATIVE_COST`]).
fn relative_cost(name: &str) -> f64 {
    NAMES.iter().position(|n| *n == name).map_or(0.0, |i| RELATIVE_COST[i])
}

/// Seconds the suite still needs: the experiments measured so far in this call took `done_seconds`
/// for `done_cost` of relative cost, and `remaining_cost` is left. `None` before any measurement.
pub fn suite_eta(done_seconds: f64, done_cost: f64, remaining_cost: f64) -> Option<f64> {
    (done_seconds > 0.0 && done_cost > 0.0).then(|| done_seconds / done_cost * remaining_cost)
}

/// `"40 s"`, `"12 min"`, `"2 h 05 min"`.
fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    let minutes = (s + 30) / 60;
    match (s, minutes) {
        (0..60, _) => format!("{s} s"),
        (_, 0..60) => format!("{minutes} min"),
        _ => format!("{} h {:02} min", minutes / 60, minutes % 60),
    }
}

/// Seeds every verdict rests on.
pub const SEEDS: [u64; 3] = [1, 2, 3];

/// What to run and where.
#[derive(Debug, Clone)]
pub struct ExperimentOptions {
    /// Experiments by name ([`NAMES`]); empty = all.
    pub names: Vec<String>,
    /// How much each measures.
    pub budget: Budget,
    /// Directory with the Fashion-MNIST IDX files (default: as for `train`).
    pub data: Option<PathBuf>,
    /// Output directory: the reports, one sub-directory per experiment.
    pub out: PathBuf,
}

/// Whether a claim held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The measurements show it, across every seed.
    Supported,
    /// They do not (at this budget).
    NotShown,
}

/// A table of a finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Column names.
    pub headers: Vec<String>,
    /// Rows of cells.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names and no rows.
    pub fn new(headers: &[&str]) -> Self {
        Self { headers: headers.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
}

/// A chart of a finding, written as `<name>/<file>.svg` and `.png`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChartRef {
    /// File stem.
    pub file: String,
    /// What it shows.
    pub caption: String,
}

/// One experiment's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Experiment name ([`NAMES`]).
    pub name: String,
    /// The chapter's claim.
    pub claim: String,
    /// The published result it echoes, and how this setting differs.
    pub echoes: String,
    /// What was run: sizes, subsets, epochs, seeds.
    pub protocol: String,
    /// The measurements.
    pub tables: Vec<Table>,
    /// The charts.
    pub charts: Vec<ChartRef>,
    /// Whether the claim held.
    pub status: Status,
    /// The verdict with its numbers.
    pub verdict: String,
    /// Budget it was measured at.
    pub budget: Budget,
    /// Wall time of the experiment: this invocation's, plus the training time of the arms an
    /// earlier invocation finished.
    pub seconds: f64,
}

/// How a call ended.
#[derive(Debug)]
pub enum ExperimentOutcome {
    /// Every requested experiment finished; the reports are written.
    Done {
        /// The findings, in [`NAMES`] order.
        findings: Vec<Finding>,
        /// `experiments.md`.
        markdown: String,
    },
    /// Ctrl-C during `experiment`; the same call continues where it stopped.
    Interrupted {
        /// The experiment in progress.
        experiment: String,
    },
}

/// One trained arm's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmResult {
    /// Per-epoch metrics (up to the divergence, if any).
    pub history: Vec<EpochMetrics>,
    /// Why training stopped early: the loss became NaN or infinite.
    pub diverged: Option<String>,
    /// Wall time of the training (all its sessions, as far as this process saw them).
    #[serde(default)]
    pub seconds: f64,
}

impl ArmResult {
    /// Test accuracy after the last epoch (0 if none finished).
    pub fn final_test(&self) -> f64 {
        self.history.last().map_or(0.0, |m| m.test_acc)
    }

    /// Each epoch's metrics with the training seconds up to and including that epoch.
    pub fn elapsed(&self) -> impl Iterator<Item = (&EpochMetrics, f64)> {
        self.history.iter().scan(0.0, |seconds, m| {
            *seconds += m.train_seconds;
            Some((m, *seconds))
        })
    }

    /// Training loss of the last epoch (∞ if diverged or none finished).
    pub fn final_loss(&self) -> f64 {
        if self.diverged.is_some() {
            f64::INFINITY
        } else {
            self.history.last().map_or(f64::INFINITY, |m| m.train_loss)
        }
    }
}

/// What an experiment works with.
pub(crate) struct Ctx<'a> {
    budget: Budget,
    dir: PathBuf,
    data_dir: Option<PathBuf>,
    dataset: Option<Dataset>,
    device: Device,
    interrupt: Arc<AtomicBool>,
    reporter: &'a mut dyn Reporter,
    label: String,
    /// Training time of the arms read back instead of trained, for the experiment's total.
    reused_seconds: f64,
}

/// A training run's config for an experiment: `label` names the run, `model_config` builds the
/// network for 1×`side`×`side` inputs; it trains on the first `train_images` Fashion-MNIST
/// images for `epochs` epochs (plain SGD at `lr`, `batch`) and is evaluated on the first
/// `test_images` test images after each.
pub(crate) fn arm_config(
    label: &str,
    model_config: ModelConfig,
    side: usize,
    (train_images, test_images, epochs): (usize, usize, usize),
    (lr, batch): (f64, usize),
    seed: u64,
) -> Result<TrainConfig> {
    let mut config = TrainConfig::for_model("d2l_lenet", Some([1, side, side]))?;
    config.model = label.to_string();
    config.model_config = model_config;
    config.epochs = epochs;
    config.train_subset = Some(train_images);
    config.test_subset = Some(test_images);
    config.lr = lr;
    config.batch_size = batch;
    config.seed = seed;
    Ok(config)
}

impl Ctx<'_> {
    /// The Fashion-MNIST data, loaded on first use.
    fn dataset(&mut self) -> Result<&Dataset> {
        if self.dataset.is_none() {
            let dir = data::locate(DatasetKind::FashionMnist, self.data_dir.as_deref())?;
            self.dataset = Some(data::load(DatasetKind::FashionMnist, &dir)?);
        }
        Ok(self.dataset.as_ref().expect("just loaded"))
    }

    /// A progress line.
    fn note(&mut self, message: &str) {
        self.reporter.note(&format!("{}: {message}", self.label));
    }

    /// Trains (or reads back, or resumes) the arm `arm` in `<experiment>/<arm>/`; `None` when
    /// interrupted. A run whose loss stops being finite ends the arm and is recorded as
    /// diverged.
    fn train_arm(&mut self, arm: &str, config: &TrainConfig) -> Result<Option<ArmResult>> {
        let dir = self.dir.join(arm);
        let result_path = dir.join("arm.json");
        let same_run = || train::run_dir::parse_config(&dir).is_ok_and(|c| c == *config);
        if same_run()
            && let Some(done) = std::fs::read_to_string(&result_path)
                .ok()
                .and_then(|t| serde_json::from_str::<ArmResult>(&t).ok())
        {
            self.reused_seconds += done.seconds;
            return Ok(Some(done));
        }
        let resume = dir.join(train::files::CONFIG).is_file();
        if resume && !same_run() {
            return Err(Error::invalid(
                "--out",
                format!("{} holds a run with other settings; use another --out", dir.display()),
            ));
        }
        self.note(&format!(
            "training {arm}: {} epochs on {} images",
            config.epochs,
            config.train_subset.unwrap_or(0)
        ));
        let t0 = Instant::now();
        let data = train::RunData::from_dataset(config, self.dataset()?, train::LoadOptions::default())?;
        let opts = TrainOptions {
            device: self.device.clone(),
            interrupt: self.interrupt.clone(),
            checkpoint_every: 50,
            reporter: &mut *self.reporter,
        };
        let result = match train::train(config, &data, &dir, resume, opts) {
            Ok(Outcome::Finished(history)) => ArmResult { history, diverged: None, seconds: 0.0 },
            Ok(Outcome::Interrupted { .. }) => return Ok(None),
            Err(e @ Error::Diverged { .. }) => {
                let history = train::read_metrics(&dir).unwrap_or_default();
                ArmResult { history, diverged: Some(e.to_string()), seconds: 0.0 }
            }
            Err(e) => return Err(e),
        };
        let result = ArmResult { seconds: t0.elapsed().as_secs_f64(), ..result };
        fsutil::write_json(&result_path, &result)?;
        Ok(Some(result))
    }

    /// Accuracy of the arm's final model on its own training images, in evaluation mode (no
    /// dropout) and without augmentation (the eval transform); 0 for an arm without a final model
    /// (diverged).
    fn train_accuracy(&mut self, arm: &str, config: &TrainConfig, n: usize) -> Result<f64> {
        let path = self.dir.join(arm).join(train::files::MODEL);
        if !path.is_file() {
            return Ok(0.0);
        }
        let model = train::load_model(&config.model_config, &path, &self.device)?;
        let mut plain = config.clone();
        if let Some(t) = &mut plain.transforms {
            t.train = t.eval.clone();
        }
        let device = self.device.clone();
        let data = train::RunData::from_dataset(&plain, self.dataset()?, train::LoadOptions::default())?;
        Ok(train::evaluate(&model, &data.train, n, 256, &device)?.top1)
    }

    /// Writes `chart` as `<experiment>/<file>.svg` and `.png`.
    fn chart(&self, file: &str, caption: &str, svg_png: (String, Vec<u8>)) -> Result<ChartRef> {
        fsutil::write_chart(&self.dir, file, &svg_png)?;
        Ok(ChartRef { file: file.to_string(), caption: caption.to_string() })
    }

    /// A line chart of one curve per arm and seed: `metric` of each epoch.
    fn curves(
        &self,
        file: &str,
        title: &str,
        y_label: &str,
        arms: &[(String, Vec<ArmResult>)],
        metric: fn(&EpochMetrics) -> f64,
    ) -> Result<ChartRef> {
        self.curves_over(file, title, ("epoch", |m, _| m.epoch as f64), y_label, arms, metric)
    }

    /// [`Ctx::curves`] against another x: `x.1` of an epoch's metrics and the training seconds
    /// up to and including that epoch, named `x.0`.
    fn curves_over(
        &self,
        file: &str,
        title: &str,
        x: (&str, fn(&EpochMetrics, f64) -> f64),
        y_label: &str,
        arms: &[(String, Vec<ArmResult>)],
        metric: fn(&EpochMetrics) -> f64,
    ) -> Result<ChartRef> {
        let mut series = Vec::new();
        for (i, (label, seeds)) in arms.iter().enumerate() {
            for (s, result) in seeds.iter().enumerate() {
                let points = result.elapsed().map(|(m, seconds)| (x.1(m, seconds), metric(m))).collect();
                let mut line = plot::Series::new(if s == 0 { label.clone() } else { String::new() }, points);
                line.color = Some(plot::PALETTE[i % plot::PALETTE.len()]);
                line.dashed = s > 0;
                series.push(line);
            }
        }
        let chart = plot::LineChart {
            title: title.to_string(),
            x_label: x.0.to_string(),
            y_label: y_label.to_string(),
            series,
            ..Default::default()
        };
        self.chart(file, &format!("{title} (one line per seed; the first solid)"), chart.render()?)
    }
}

/// The experiments `names` resolves to, in [`NAMES`] order; an unknown name is an error
/// listing the known ones.
pub fn resolve(names: &[String]) -> Result<Vec<&'static str>> {
    for n in names {
        if !NAMES.contains(&n.as_str()) {
            return Err(Error::invalid(
                "experiment",
                format!(
                    "unknown experiment `{}`; the experiments are: {}",
                    n.escape_debug(),
                    NAMES.join(", ")
                ),
            ));
        }
    }
    Ok(NAMES.iter().copied().filter(|n| names.is_empty() || names.iter().any(|m| m == n)).collect())
}

/// Runs the experiments; progress goes to `reporter`.
pub fn run(
    opts: &ExperimentOptions,
    device: &Device,
    interrupt: Arc<AtomicBool>,
    reporter: &mut dyn Reporter,
) -> Result<ExperimentOutcome> {
    let names = resolve(&opts.names)?;
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io("create", &opts.out, e))?;
    let mut ctx = Ctx {
        budget: opts.budget,
        dir: opts.out.clone(),
        data_dir: opts.data.clone(),
        dataset: None,
        device: device.clone(),
        interrupt,
        reporter,
        label: String::new(),
        reused_seconds: 0.0,
    };
    let finished = |name: &str| -> Option<Finding> {
        let text = std::fs::read_to_string(opts.out.join(name).join("finding.json")).ok()?;
        serde_json::from_str::<Finding>(&text).ok().filter(|f| f.budget == opts.budget)
    };
    let mut findings = Vec::new();
    // This call's measured experiments: their from-scratch seconds and relative cost.
    let (mut done_seconds, mut done_cost) = (0.0, 0.0);
    for (i, name) in names.iter().enumerate() {
        ctx.dir = opts.out.join(name);
        ctx.label = format!("[{}/{}] {name}", i + 1, names.len());
        std::fs::create_dir_all(&ctx.dir).map_err(|e| Error::io("create", &ctx.dir, e))?;
        let path = ctx.dir.join("finding.json");
        if let Some(f) = finished(name) {
            ctx.note(&format!("already measured ({})", path.display()));
            findings.push(f);
            continue;
        }
        let remaining: f64 = names[i..]
            .iter()
            .filter(|n| **n == *name || finished(n).is_none())
            .map(|n| relative_cost(n))
            .sum();
        match suite_eta(done_seconds, done_cost, remaining) {
            Some(eta) => ctx.note(&format!("starting (the suite: about {} left)", duration(eta))),
            None => ctx.note("starting"),
        }
        ctx.reused_seconds = 0.0;
        let t0 = Instant::now();
        let finding = match *name {
            "relu-vs-sigmoid" => lessons::relu_vs_sigmoid(&mut ctx)?,
            "dropout" => lessons::dropout(&mut ctx)?,
            "augmentation" => lessons::augmentation(&mut ctx)?,
            "residual" => lessons::residual(&mut ctx)?,
            "batch-norm" => lessons::batch_norm(&mut ctx)?,
            "small-kernels" => lessons::small_kernels(&mut ctx)?,
            "one-by-one" => statics::one_by_one(&mut ctx)?,
            "transition" => statics::transition(&mut ctx)?,
            _ => statics::static_claims(&mut ctx)?,
        };
        let Some(mut finding) = finding else {
            report::write(&opts.out, &findings)?;
            return Ok(ExperimentOutcome::Interrupted { experiment: name.to_string() });
        };
        finding.name = name.to_string();
        finding.budget = opts.budget;
        // What the experiment costs from scratch: this call's time, and the training time of the
        // arms an earlier call finished.
        finding.seconds = t0.elapsed().as_secs_f64() + ctx.reused_seconds;
        fsutil::write_json(&path, &finding)?;
        ctx.note(&format!("{} in {:.0} s", status_word(finding.status), finding.seconds));
        done_seconds += finding.seconds;
        done_cost += relative_cost(name);
        findings.push(finding);
        report::write(&opts.out, &findings)?;
    }
    let markdown = report::write(&opts.out, &findings)?;
    Ok(ExperimentOutcome::Done { findings, markdown })
}

/// "supported" / "not shown".
pub fn status_word(s: Status) -> &'static str {
    match s {
        Status::Supported => "supported at this budget",
        Status::NotShown => "not shown at this budget",
    }
}

/// A finding with everything but the name, budget and time, which [`run`] fills in.
pub(crate) fn finding(claim: &str, echoes: &str, protocol: String) -> Finding {
    Finding {
        name: String::new(),
        claim: claim.to_string(),
        echoes: echoes.to_string(),
        protocol,
        tables: Vec::new(),
        charts: Vec::new(),
        status: Status::NotShown,
        verdict: String::new(),
        budget: Budget::Default,
        seconds: 0.0,
    }
}

/// `"a, b and c"`.
pub(crate) fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_suite_eta_scales_the_relative_costs_by_the_measured_speed() {
        assert_eq!(super::suite_eta(0.0, 0.0, 100.0), None, "nothing measured yet");
        // The first experiment (cost 124) took 62 s: the machine runs at twice the reference
        // speed, so the rest of the default suite (1710 of cost) needs about 855 s.
        let rest: f64 = super::RELATIVE_COST[1..].iter().sum();
        let eta = super::suite_eta(62.0, super::relative_cost("relu-vs-sigmoid"), rest).unwrap();
        assert!((eta - rest / 2.0).abs() < 1e-9, "{eta}");
        assert_eq!(super::relative_cost("no-such-experiment"), 0.0);
        assert_eq!(super::duration(42.4), "42 s");
        assert_eq!(super::duration(12.0 * 60.0 + 10.0), "12 min");
        assert_eq!(super::duration(2.0 * 3600.0 + 5.0 * 60.0), "2 h 05 min");
        assert_eq!(super::duration(2.0 * 3600.0 - 20.0), "2 h 00 min");
    }
}
