//! `cnnzoo predict RUN_DIR IMAGE...`.

use std::path::PathBuf;

use cnnzoo::predict::predict;

use super::Format;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run directory written by `cnnzoo train` or `cnnzoo import`.
    run: PathBuf,
    /// PNG or JPEG files of any size, colour or grey.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 3)]
    top_k: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let device = super::device()?;
    let run = super::load_run(&args.run, &device)?;
    let results = predict(&run.config, &run.model, &args.images, args.top_k, &device)?;
    match args.format {
        Format::Json => super::print_json(&results),
        Format::Table => {
            let mut out = String::new();
            for r in &results {
                let parts: Vec<String> =
                    r.predictions.iter().map(|p| format!("{} {:.3}", p.name, p.probability)).collect();
                out.push_str(&format!("{}: {}\n", r.image.display(), parts.join(", ")));
            }
            super::print(&out)
        }
    }
}
