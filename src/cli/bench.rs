//! `cnnzoo bench [MODEL...]`.

use cnnzoo::bench::{self, BenchSpec, Mode};
use cnnzoo::registry::{self, Flavour};
use cnnzoo::train::d2l_recipe;

use super::Format;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Models (default: the seven d2l models of the "Modern CNNs" chapter).
    models: Vec<String>,
    /// Training step, inference, or both.
    #[arg(long, value_enum, default_value = "both")]
    mode: Mode,
    /// Batch size (default: d2l's for the model).
    #[arg(long)]
    batch: Option<usize>,
    /// Input as C,H,W (default: the model's d2l input; 1,224,224 for torchvision models).
    #[arg(long, value_parser = super::summary::parse_chw)]
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
    let names: Vec<String> = if args.models.is_empty() {
        registry::D2L_SEVEN.iter().map(|s| s.to_string()).collect()
    } else {
        args.models.clone()
    };
    let modes: &[Mode] = match args.mode {
        Mode::Both => &[Mode::Train, Mode::Infer],
        Mode::Train => &[Mode::Train],
        Mode::Infer => &[Mode::Infer],
    };
    let device = super::device();
    let mut specs = Vec::new();
    for name in &names {
        let entry = registry::find(name)?;
        let input = args.input.unwrap_or(match entry.flavour {
            Flavour::D2l => entry.input,
            Flavour::Torchvision => [1, 224, 224],
        });
        let batch = args.batch.unwrap_or(d2l_recipe(entry.name).1);
        let spec = BenchSpec {
            model: entry.name.to_string(),
            config: entry.config_with(10, input[0]),
            input,
            batch,
            steps: args.steps,
            warmup: args.warmup,
        };
        spec.config.init(&device).check_input(entry.name, input, &device)?;
        specs.push(spec);
    }
    if args.format == Format::Table {
        println!(
            "{:<14} {:<5} {:>5} {:>11} {:>9} {:>9} {:>9} {:>8} {:>9}  phases (median s)",
            "model", "mode", "batch", "input", "img/s", "min", "max", "GFLOP/s", "peak MiB"
        );
    }
    for spec in &specs {
        for &mode in modes {
            eprintln!("benchmarking {} ({:?}, batch {}) …", spec.model, mode, spec.batch);
            let r = bench::run(spec, mode, &device)?;
            match args.format {
                Format::Json => println!("{}", serde_json::to_string(&r)?),
                Format::Table => {
                    let [c, h, w] = r.input;
                    let phases: Vec<String> = r.phases.iter().map(|(n, s)| format!("{n} {s:.3}")).collect();
                    println!(
                        "{:<14} {:<5} {:>5} {:>11} {:>9.1} {:>9.1} {:>9.1} {:>8.1} {:>9}  {}",
                        r.model,
                        r.mode,
                        r.batch,
                        format!("{c}x{h}x{w}"),
                        r.images_per_sec.median,
                        r.images_per_sec.min,
                        r.images_per_sec.max,
                        r.gflops,
                        r.peak_mib.map_or("-".into(), |m| format!("{m:.0}")),
                        phases.join(", ")
                    );
                }
            }
        }
    }
    Ok(())
}
