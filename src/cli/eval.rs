//! `cnnzoo eval RUN_DIR`.

use std::path::PathBuf;

use anyhow::Context;
use cnnzoo::train::evaluate_run;

use super::Format;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run directory written by `cnnzoo train`.
    run: PathBuf,
    /// Directory with the data set's files (default: as for `train`).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Evaluate on the first N test images only.
    #[arg(long)]
    test_subset: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let device = super::device()?;
    let run =
        super::load_run(&args.run, &device).with_context(|| format!("loading {}", args.run.display()))?;
    let e = evaluate_run(&run, args.data.as_deref(), args.test_subset, &device)?;
    let classes = run.config.class_names();
    match args.format {
        Format::Json => super::print_json(&serde_json::json!({
            "model": run.config.model,
            "run": args.run,
            "classes": classes,
            "evaluation": e,
        })),
        Format::Table => super::print(&e.to_table(&run.config.model, &classes)),
    }
}
