//! `cnnzoo import WEIGHTS --model NAME --out RUN_DIR`.

use std::path::PathBuf;

use anyhow::Context;
use cnnzoo::train;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A torchvision `state_dict`: .pth (zip or legacy pickle; no code is executed) or .safetensors.
    weights: PathBuf,
    /// Preset the weights are for (see `cnnzoo list`).
    #[arg(long)]
    model: String,
    /// Classes of the checkpoint's classifier (default: the preset's).
    #[arg(long)]
    num_classes: Option<usize>,
    /// Input channels of the checkpoint's first conv (default: the preset's).
    #[arg(long)]
    in_channels: Option<usize>,
    /// Run directory to create; `eval`, `predict` and `export` accept it.
    #[arg(long)]
    out: PathBuf,
    /// Output format of the report.
    #[arg(long, value_enum, default_value_t)]
    format: super::Format,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let device = super::device()?;
    let (config, report) =
        train::import_run(&args.weights, &args.model, args.num_classes, args.in_channels, &args.out, &device)
            .with_context(|| format!("importing {}", args.weights.display()))?;
    match args.format {
        super::Format::Json => {
            super::print_json(&serde_json::json!({"model": config.model, "run": args.out, "report": report}))
        }
        super::Format::Table => {
            let mut out = format!(
                "imported {} into {}: {} tensors applied, 0 missing, 0 unexpected",
                config.model,
                args.out.display(),
                report.applied
            );
            if !report.expected_unused.is_empty() {
                let sample: Vec<&str> = report.expected_unused.iter().take(3).map(String::as_str).collect();
                out.push_str(&format!(
                    ", {} expected extras not loaded ({}{})",
                    report.expected_unused.len(),
                    sample.join(", "),
                    if report.expected_unused.len() > 3 { ", …" } else { "" }
                ));
            }
            super::print(&(out + "\n"))
        }
    }
}
