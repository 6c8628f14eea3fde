//! `cnnzoo eval RUN_DIR`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use cnnzoo::data;
use cnnzoo::model::Model;
use cnnzoo::train::{self, TrainConfig, files};

use super::Format;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run directory written by `cnnzoo train`.
    run: PathBuf,
    /// Directory with the IDX files (default: as for `train`).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Evaluate on the first N test images only.
    #[arg(long)]
    test_subset: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Loads a run's config and its final weights (or, for an unfinished run, its last checkpoint).
pub fn load_run(run: &Path, device: &burn::tensor::Device) -> anyhow::Result<(TrainConfig, Model)> {
    if !run.is_dir() {
        return Err(cnnzoo::Error::bad_file(run, "is not a run directory").into());
    }
    let config = train::read_config(run)?;
    let mut weights = run.join(files::MODEL);
    if !weights.is_file() {
        let ckpt = train::latest_checkpoint(run)?.map(|(dir, _)| dir.join(files::CKPT_MODEL));
        match ckpt.filter(|p| p.is_file()) {
            Some(p) => {
                eprintln!(
                    "{} has no final weights yet; using its last checkpoint {}",
                    run.display(),
                    p.display()
                );
                weights = p;
            }
            None => {
                return Err(cnnzoo::Error::bad_file(
                    &weights,
                    "not found, and the run has no checkpoint either",
                )
                .into());
            }
        }
    }
    let model = train::load_model(&config.model_config, &weights, device)?;
    Ok((config, model))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let device = super::device();
    let (config, model) =
        load_run(&args.run, &device).with_context(|| format!("loading {}", args.run.display()))?;
    if config.input[0] != 1 || config.model_config.num_classes() != 10 {
        return Err(cnnzoo::Error::invalid(
            "run",
            format!(
                "`{}` is a {}-channel, {}-class model; eval measures Fashion-MNIST/MNIST models \
                 (1 channel, 10 classes) — use `cnnzoo predict` for ImageNet models",
                config.model,
                config.input[0],
                config.model_config.num_classes()
            ),
        )
        .into());
    }
    let dir = data::locate(config.dataset, args.data.as_deref())?;
    let dataset = data::load(config.dataset, &dir)?;
    let test = match args.test_subset {
        Some(n) => dataset.test.truncate(n),
        None => dataset.test,
    };
    let [_, h, w] = config.input;
    let e = train::evaluate(&model, &test, [h, w], 256, &device);
    let classes = config.dataset.classes();
    match args.format {
        Format::Json => {
            let json = serde_json::json!({
                "model": config.model,
                "run": args.run,
                "classes": classes,
                "evaluation": e,
            });
            super::print(&(serde_json::to_string_pretty(&json)? + "\n"))
        }
        Format::Table => {
            let mut out = format!(
                "{} on {} test images: top-1 {:.4}  top-5 {:.4}  loss {:.4}\n\nper class:\n",
                config.model, e.images, e.top1, e.top5, e.loss
            );
            for (name, acc) in classes.iter().zip(&e.per_class) {
                out.push_str(&format!("  {name:<12} {acc:.3}\n"));
            }
            out.push_str("\nconfusion (rows: true class, columns: predicted):\n");
            out.push_str(&format!("  {:<12}", ""));
            for i in 0..classes.len() {
                out.push_str(&format!("{i:>6}"));
            }
            out.push('\n');
            for (i, row) in e.confusion.iter().enumerate() {
                out.push_str(&format!("  {:<12}", format!("{i} {}", classes[i])));
                for v in row {
                    out.push_str(&format!("{v:>6}"));
                }
                out.push('\n');
            }
            super::print(&out)
        }
    }
}
