//! `cnnzoo visualize RUN_DIR IMAGE`.

use std::path::PathBuf;

use anyhow::Context;
use cnnzoo::visualize::{Options, visualize_run};

use super::Format;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run directory written by `cnnzoo train` or `cnnzoo import`.
    run: PathBuf,
    /// PNG or JPEG file to explain.
    image: PathBuf,
    /// Stage for Grad-CAM, as `cnnzoo summary` names it (default: the last convolutional stage).
    #[arg(long)]
    layer: Option<String>,
    /// Class to explain, by index or name (default: the predicted one).
    #[arg(long)]
    class: Option<String>,
    /// Output directory (default: RUN_DIR/visualize/IMAGE_STEM).
    #[arg(long)]
    out: Option<PathBuf>,
    /// SmoothGrad: noisy copies averaged.
    #[arg(long, default_value_t = 25)]
    samples: usize,
    /// SmoothGrad: noise as a fraction of the image's range.
    #[arg(long, default_value_t = 0.15)]
    sigma: f32,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let device = super::device()?;
    let run = super::load_run(&args.run, &device)?;
    let stem = args.image.file_stem().map_or("image".into(), |s| s.to_string_lossy().into_owned());
    let out = args.out.clone().unwrap_or_else(|| args.run.join("visualize").join(stem));
    let opts = Options { layer: args.layer, class: args.class, samples: args.samples, sigma: args.sigma };
    let report = visualize_run(&run, &args.image, &out, &opts, &device)
        .with_context(|| format!("visualizing {} with {}", args.image.display(), args.run.display()))?;
    match args.format {
        Format::Json => super::print_json(&report),
        Format::Table => super::print(&format!(
            "{}: {} ({:.3}), Grad-CAM at `{}`; {} files in {} — open {}\n",
            report.image.display(),
            report.class_name,
            report.probability,
            report.layer,
            report.files.len(),
            out.display(),
            out.join("index.html").display()
        )),
    }
}
