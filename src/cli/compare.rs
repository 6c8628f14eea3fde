//! `cnnzoo compare`: the seven d2l models side by side (see `cnnzoo::compare`).

use std::path::PathBuf;
use std::time::Instant;

use cnnzoo::compare::{self, CompareOptions, CompareOutcome};

use super::console::{Console, interrupt_flag};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Train each model this many epochs with its d2l recipe (0 = size and speed only).
    #[arg(long, default_value_t = 0)]
    epochs: usize,
    /// Train on the first N training images (the test set stays whole).
    #[arg(long)]
    subset: Option<usize>,
    /// Models (default: the seven of d2l's chapter), comma-separated.
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Directory with the IDX files (default: as for `train`).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output directory (reports, charts, one training run per model).
    #[arg(long, default_value = "runs/compare")]
    out: PathBuf,
    /// Timed steps per throughput measurement.
    #[arg(long, default_value_t = 2)]
    bench_steps: usize,
    /// No per-epoch progress bars.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let opts = CompareOptions {
        models: args.models,
        epochs: args.epochs,
        subset: args.subset,
        data: args.data,
        out: args.out.clone(),
        bench_steps: args.bench_steps,
    };
    let mut console = Console::new(args.quiet, false);
    match compare::run(&opts, &super::device()?, interrupt_flag(), &mut console)? {
        CompareOutcome::Done { rows, markdown } => {
            eprintln!(
                "compare: {} models in {:.0} s; report in {}",
                rows.len(),
                started.elapsed().as_secs_f64(),
                args.out.join("report.html").display()
            );
            super::print(&markdown)
        }
        CompareOutcome::Interrupted { model } => Err(super::Interrupted(format!(
            "interrupted while training {model}; run the same command again to continue from its checkpoint"
        ))
        .into()),
    }
}
