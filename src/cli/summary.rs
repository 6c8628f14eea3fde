//! `cnnzoo summary MODEL`.

use anyhow::Context;
use burn::tensor::Device;
use cnnzoo::inspect::{SummaryOptions, parse_chw, summarize};
use cnnzoo::registry;

use super::Format;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model name (see `cnnzoo list`).
    model: String,
    /// Input as C,H,W (default: the model's own, e.g. 1,224,224 for d2l_alexnet).
    #[arg(long, value_parser = parse_chw)]
    input: Option<[usize; 3]>,
    /// Batch size of the walk (shapes and activation memory scale with it).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Nesting depth of the rows: 1 = top-level stages, 2 = their children, …
    #[arg(long, default_value_t = 2)]
    depth: usize,
    /// Number of classes (default: the model's own).
    #[arg(long)]
    num_classes: Option<usize>,
    /// Only infer shapes (no arithmetic): same table, much faster for big models.
    #[arg(long)]
    shape_only: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let entry = registry::find(&args.model)?;
    if args.batch == 0 {
        return Err(cnnzoo::Error::invalid("--batch", "must be at least 1").into());
    }
    let [c, h, w] = args.input.unwrap_or(entry.input);
    let config = entry.config_with(args.num_classes.unwrap_or(entry.num_classes), c);
    let device = Device::flex();
    let model = config.init(&device);
    let opts = SummaryOptions { depth: args.depth, shape_only: args.shape_only };
    let summary = summarize(entry.name, &model, [args.batch, c, h, w], opts, &device)
        .with_context(|| format!("summarizing {}", entry.name))?;
    match args.format {
        Format::Json => super::print_json(&summary),
        Format::Table => super::print(&summary.to_table()),
    }
}
