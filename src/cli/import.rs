//! `cnnzoo import WEIGHTS --model NAME --out RUN_DIR`.

use std::path::PathBuf;

use anyhow::Context;
use cnnzoo::interop;
use cnnzoo::registry::{self, Flavour};
use cnnzoo::train::{self, Preprocess, TrainConfig};

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
    let entry = registry::find(&args.model)?;
    let classes = args.num_classes.unwrap_or(entry.num_classes);
    let channels = args.in_channels.unwrap_or(entry.input[0]);
    let model_config = entry.config_with(classes, channels);
    if args.out.join(train::files::CONFIG).exists() {
        return Err(
            cnnzoo::Error::invalid("--out", format!("`{}` already holds a run", args.out.display())).into()
        );
    }
    let device = super::device();
    let (model, report) = interop::import(&args.weights, entry.name, &model_config, &device)
        .with_context(|| format!("importing {}", args.weights.display()))?;
    let mut config = TrainConfig::for_model(entry.name, Some([channels, entry.input[1], entry.input[2]]))?;
    config.model_config = model_config;
    config.preprocess = if entry.flavour == Flavour::Torchvision && channels == 3 {
        Preprocess::Imagenet
    } else {
        Preprocess::Grey
    };
    config.imported_from = Some(args.weights.display().to_string());
    train::save_run(&args.out, &config, &model)?;
    match args.format {
        super::Format::Json => {
            let json = serde_json::json!({"model": entry.name, "run": args.out, "report": report});
            super::print(&(serde_json::to_string_pretty(&json)? + "\n"))
        }
        super::Format::Table => {
            let mut out = format!(
                "imported {} into {}: {} tensors applied, 0 missing, 0 unexpected",
                entry.name,
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
