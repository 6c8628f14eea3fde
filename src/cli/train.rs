//! `cnnzoo train MODEL`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use cnnzoo::data::{self, DatasetKind};
use cnnzoo::train::{
    self, EpochMetrics, OptimizerKind, Outcome, Reporter, Schedule, TrainConfig, TrainOptions,
};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model name (see `cnnzoo list`); ignored with --resume.
    #[arg(required_unless_present = "resume")]
    model: Option<String>,
    /// Epochs (default 10, as d2l).
    #[arg(long)]
    epochs: Option<usize>,
    /// Learning rate (default: d2l's for the model, e.g. 0.9 for LeNet).
    #[arg(long)]
    lr: Option<f64>,
    /// Batch size (default: d2l's for the model).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Optimizer (default: plain SGD for d2l models, as d2l).
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerKind>,
    /// Weight decay.
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Learning-rate schedule (default constant for d2l models).
    #[arg(long, value_enum)]
    schedule: Option<Schedule>,
    /// Linear warm-up in epochs.
    #[arg(long)]
    warmup: Option<f64>,
    /// Seed for initialization, shuffling and dropout.
    #[arg(long)]
    seed: Option<u64>,
    /// Input as C,H,W (default: the model's d2l input, e.g. 1,96,96 for d2l_resnet18).
    #[arg(long, value_parser = super::summary::parse_chw)]
    input: Option<[usize; 3]>,
    /// Data set.
    #[arg(long, value_enum, default_value = "fashion-mnist")]
    dataset: DatasetKind,
    /// Directory with the four IDX files (.gz or raw); default: $CNNZOO_DATA, ~/.cache/cnnzoo,
    /// /usr/share/datasets, then download.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Train on the first N training images only.
    #[arg(long)]
    subset: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long)]
    test_subset: Option<usize>,
    /// Run directory (default: runs/MODEL).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint.
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "out")]
    resume: Option<PathBuf>,
    /// Also checkpoint every N batches (0 = only at epoch ends).
    #[arg(long, default_value_t = 50)]
    checkpoint_every: usize,
    /// No progress bar; epoch lines only.
    #[arg(long, short)]
    quiet: bool,
    /// One JSON object per epoch on stdout, nothing else there.
    #[arg(long)]
    json: bool,
}

/// Progress bar per epoch on stderr, one line per epoch on stdout (or JSON lines).
pub(super) struct Console {
    bar: Option<ProgressBar>,
    json: bool,
}

impl Console {
    /// A console reporter; no bar when `quiet` or `json`.
    pub(super) fn new(quiet: bool, json: bool) -> Self {
        let bar = (!quiet && !json).then(|| {
            let bar = ProgressBar::new(1);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        Self { bar, json }
    }
}

impl Reporter for Console {
    fn batch(&mut self, epoch: usize, done: usize, total: usize, loss: f64, acc: f64, ips: f64) {
        let Some(bar) = &self.bar else { return };
        if done == 1 || bar.length() != Some(total as u64) {
            bar.reset();
            bar.set_length(total as u64);
            bar.set_prefix(format!("epoch {}", epoch + 1));
        }
        bar.set_position(done as u64);
        bar.set_message(format!("loss {loss:.3}  acc {acc:.3}  {ips:.0} img/s"));
    }

    fn epoch(&mut self, config: &TrainConfig, m: &EpochMetrics) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if self.json {
            println!("{}", serde_json::to_string(m).unwrap_or_default());
        } else {
            println!(
                "epoch {:>2}/{}  train loss {:.3}  train acc {:.3}  test acc {:.3}  {:.1} s  {:.0} img/s",
                m.epoch,
                config.epochs,
                m.train_loss,
                m.train_acc,
                m.test_acc,
                m.train_seconds,
                m.images_per_sec
            );
        }
    }

    fn note(&mut self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(message),
            None => eprintln!("{message}"),
        }
    }
}

fn config_from(args: &Args) -> anyhow::Result<(TrainConfig, PathBuf, bool)> {
    if let Some(run) = &args.resume {
        let config = train::read_config(run).with_context(|| format!("resuming {}", run.display()))?;
        return Ok((config, run.clone(), true));
    }
    let name = args.model.as_deref().unwrap_or_default();
    let mut c = TrainConfig::for_model(name, args.input)?;
    if let Some(v) = args.epochs {
        c.epochs = v;
    }
    if let Some(v) = args.lr {
        c.lr = v;
    }
    if let Some(v) = args.batch_size {
        c.batch_size = v;
    }
    if let Some(v) = args.optimizer {
        c.optimizer = v;
    }
    if let Some(v) = args.weight_decay {
        c.weight_decay = v;
    }
    if let Some(v) = args.schedule {
        c.schedule = v;
    }
    if let Some(v) = args.warmup {
        c.warmup = v;
    }
    if let Some(v) = args.seed {
        c.seed = v;
    }
    c.dataset = args.dataset;
    c.train_subset = args.subset;
    c.test_subset = args.test_subset;
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&c.model));
    Ok((c, out, false))
}

/// A flag set by Ctrl-C (a second Ctrl-C exits at once).
pub(super) fn interrupt_flag() -> Arc<AtomicBool> {
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this batch (Ctrl-C again to abort without saving)");
    });
    interrupt
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (config, dir, resume) = config_from(&args)?;
    config.validate()?;
    let data_dir = data::locate(config.dataset, args.data.as_deref())?;
    eprintln!("loading {} from {}", config.dataset.dir_name(), data_dir.display());
    let dataset = data::load(config.dataset, &data_dir)?;
    let interrupt = interrupt_flag();
    if !args.json {
        eprintln!(
            "training {} on {} ({} train / {} test images) at {}x{}x{}: {} epochs, lr {}, batch {}, {:?}, run dir {}",
            config.model,
            config.dataset.dir_name(),
            config.train_subset.unwrap_or(dataset.train.len()).min(dataset.train.len()),
            config.test_subset.unwrap_or(dataset.test.len()).min(dataset.test.len()),
            config.input[0],
            config.input[1],
            config.input[2],
            config.epochs,
            config.lr,
            config.batch_size,
            config.optimizer,
            dir.display()
        );
    }
    let mut console = Console::new(args.quiet, args.json);
    let opts = TrainOptions {
        device: super::device(),
        interrupt,
        checkpoint_every: args.checkpoint_every,
        reporter: &mut console,
    };
    let outcome = train::train(&config, &dataset, &dir, resume, opts)
        .with_context(|| format!("training {} in {}", config.model, dir.display()))?;
    match outcome {
        Outcome::Finished(history) => {
            if !args.json {
                let last = history.last().map_or(0.0, |m| m.test_acc);
                let secs: f64 = history.iter().map(|m| m.train_seconds).sum();
                eprintln!(
                    "done: test acc {last:.3}, {secs:.0} s of training; weights, metrics.csv and curves.png in {}",
                    dir.display()
                );
            }
            Ok(())
        }
        Outcome::Interrupted { epoch, batch } => Err(anyhow::anyhow!(
            "interrupted at epoch {}, batch {batch}; continue with `cnnzoo train --resume {}`",
            epoch + 1,
            dir.display()
        )),
    }
}
