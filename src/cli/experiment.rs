//! `cnnzoo experiment`: the chapter's lessons as measured experiments (see `cnnzoo::experiment`).

use std::path::PathBuf;
use std::time::Instant;

use cnnzoo::experiment::{self, Budget, ExperimentOptions, ExperimentOutcome};

use super::console::{Console, interrupt_flag};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Experiments to run (default: all): relu-vs-sigmoid, dropout, augmentation, residual,
    /// batch-norm, one-by-one, small-kernels, transition, static-claims.
    #[arg(value_name = "NAME")]
    names: Vec<String>,
    /// The d2l-scale protocols (all 60,000 images, 10 epochs …): hours.
    #[arg(long, conflicts_with = "quick")]
    full: bool,
    /// Seconds for all: checks the pipeline, the verdicts mean little.
    #[arg(long)]
    quick: bool,
    /// Directory with the Fashion-MNIST IDX files (default: as for `train`).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output directory (reports, charts, one run directory per arm and seed).
    #[arg(long, default_value = "runs/experiments")]
    out: PathBuf,
    /// No per-epoch progress bars.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let budget = if args.full {
        Budget::Full
    } else if args.quick {
        Budget::Quick
    } else {
        Budget::Default
    };
    let opts = ExperimentOptions { names: args.names, budget, data: args.data, out: args.out.clone() };
    let mut console = Console::new(args.quiet, false).epochs_on_stderr();
    match experiment::run(&opts, &super::device()?, interrupt_flag(), &mut console)? {
        ExperimentOutcome::Done { findings, markdown } => {
            eprintln!(
                "experiment: {} experiments in {:.0} s; report in {}",
                findings.len(),
                started.elapsed().as_secs_f64(),
                args.out.join("report.html").display()
            );
            super::print(&markdown)
        }
        ExperimentOutcome::Interrupted { experiment } => Err(super::Interrupted(format!(
            "interrupted during {experiment}; run the same command again to continue where it stopped"
        ))
        .into()),
    }
}
