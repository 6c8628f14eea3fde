//! `cnnzoo train MODEL` and `cnnzoo train --resume RUN_DIR`.

use std::path::PathBuf;

use anyhow::Context;
use cnnzoo::data;
use cnnzoo::inspect::parse_chw;
use cnnzoo::train::{self, Outcome, Overrides, TrainConfig, TrainOptions};

use super::console::{Console, interrupt_flag};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model name (see `cnnzoo list`); ignored with --resume.
    #[arg(required_unless_present = "resume")]
    model: Option<String>,
    /// Recipe overrides.
    #[command(flatten)]
    overrides: Overrides,
    /// Input as C,H,W (default: the model's d2l input, e.g. 1,96,96 for d2l_resnet18).
    #[arg(long, value_parser = parse_chw)]
    input: Option<[usize; 3]>,
    /// Directory with the data set's files (IDX for (Fashion-)MNIST, binary batches for CIFAR);
    /// default: $CNNZOO_DATA, ~/.cache/cnnzoo,
    /// /usr/share/datasets, then download.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Run directory (default: runs/MODEL).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Threads decoding and augmenting images (0: on the training thread).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// A corrupt or unreadable image stops the run (default: skipped, named and counted).
    #[arg(long)]
    strict: bool,
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

pub fn run(args: Args) -> anyhow::Result<()> {
    // A device that cannot be used is refused before any data is read.
    let device = super::device()?;
    let (config, opened, dir, resume) = if let Some(run) = &args.resume {
        let config = train::read_config(run).with_context(|| format!("resuming {}", run.display()))?;
        let opened = data::open(&config.dataset, args.data.as_deref(), &config.val, config.seed)?;
        (config, opened, run.clone(), true)
    } else {
        let model = args.model.as_deref().unwrap_or_default();
        let (config, opened) =
            TrainConfig::prepare(model, args.input, &args.overrides, args.data.as_deref())?;
        let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&config.model));
        (config, opened, out, false)
    };
    config.validate()?;
    eprintln!("loading {} from {}", config.dataset, opened.location.display());
    let load = train::LoadOptions { workers: args.workers, strict: args.strict, ..Default::default() };
    let run_data = train::RunData::from_opened(&config, opened, load)?;
    if !args.json {
        let (n_train, n_test) = (run_data.train.source().len(), run_data.test.source().len());
        eprintln!("{}", config.banner(n_train, n_test, &dir));
    }
    let mut console = Console::new(args.quiet, args.json);
    let opts = TrainOptions {
        device,
        interrupt: interrupt_flag(),
        checkpoint_every: args.checkpoint_every,
        reporter: &mut console,
    };
    let outcome = train::train(&config, &run_data, &dir, resume, opts)
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
        Outcome::Interrupted { epoch, batch } => Err(super::Interrupted(format!(
            "interrupted at epoch {}, batch {batch}; continue with `cnnzoo train --resume {}`",
            epoch + 1,
            dir.display()
        ))
        .into()),
    }
}
