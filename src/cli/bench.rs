//! `cnnzoo bench [MODEL...]`.

use cnnzoo::bench::{self, BenchSpec, Mode};
use cnnzoo::inspect::parse_chw;

use super::Format;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Models (default: the seven d2l models of the "Modern CNNs" chapter).
    models: Vec<String>,
    /// Training step, inference, or both.
    #[arg(long, value_enum, default_value = "both")]
    mode: Mode,
    /// Batch size (default: the model's recipe's).
    #[arg(long)]
    batch: Option<usize>,
    /// Input as C,H,W (default: the model's training input; 1,224,224 for torchvision models).
    #[arg(long, value_parser = parse_chw)]
    input: Option<[usize; 3]>,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Output format (json: one object per benchmark, one per line).
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let device = super::device();
    let names = if args.models.is_empty() { bench::default_models() } else { args.models.clone() };
    let specs = names
        .iter()
        .map(|name| BenchSpec::for_model(name, args.input, args.batch, args.steps, args.warmup, &device))
        .collect::<Result<Vec<_>, _>>()?;
    if args.format == Format::Table {
        println!(
            "{:<14} {:<5} {:>5} {:>11} {:>9} {:>9} {:>9} {:>8} {:>9}  phases (median s)",
            "model", "mode", "batch", "input", "img/s", "min", "max", "GFLOP/s", "peak MiB"
        );
    }
    for spec in &specs {
        for &mode in args.mode.each() {
            eprintln!("benchmarking {} ({mode:?}, batch {}) …", spec.model, spec.batch);
            let r = bench::run(spec, mode, &device)?;
            match args.format {
                Format::Json => println!("{}", serde_json::to_string(&r)?),
                Format::Table => println!("{}", r.table_row()),
            }
        }
    }
    Ok(())
}
