//! `cnnzoo bench [MODEL...]`.

use cnnzoo::bench::{self, BenchSpec, Mode};
use cnnzoo::inspect::parse_chw;
use cnnzoo::train::{LoadOptions, Overrides, RunData, TrainConfig};

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
    /// Also time the training loader on this data set (fashion-mnist, cifar10, folder:PATH …)
    /// with the model's input and --transforms; the model is then benchmarked at that input.
    #[arg(long, value_name = "DATASET")]
    dataset: Option<cnnzoo::data::DatasetSpec>,
    /// Directory of the data set's files (as for `train`).
    #[arg(long)]
    data: Option<std::path::PathBuf>,
    /// Transform preset for the loader (as for `train`).
    #[arg(long, value_name = "PRESET")]
    transforms: Option<String>,
    /// Loader threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Images the loader prepares.
    #[arg(long, default_value_t = 512)]
    loader_images: usize,
    /// Output format (json: one object per benchmark, one per line).
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let device = super::device()?;
    let names = if args.models.is_empty() { bench::default_models() } else { args.models.clone() };
    let mut loaders = Vec::new();
    let mut specs = Vec::new();
    for name in &names {
        let mut input = args.input;
        if let Some(dataset) = &args.dataset {
            let o = Overrides {
                dataset: Some(dataset.clone()),
                batch_size: args.batch,
                transforms: args.transforms.clone(),
                ..Overrides::default()
            };
            let (config, opened) = TrainConfig::prepare(name, args.input, &o, args.data.as_deref())?;
            let load = LoadOptions { workers: args.workers, ..LoadOptions::default() };
            let data = RunData::from_opened(&config, opened, load)?;
            eprintln!("timing the loader of {dataset} for {name} …");
            loaders.push(bench::loader(&config, &data, args.loader_images, args.workers, &device)?);
            input = Some(config.input);
        }
        specs.push(BenchSpec::for_model(name, input, args.batch, args.steps, args.warmup, &device)?);
    }
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
    for l in &loaders {
        match args.format {
            Format::Json => println!("{}", serde_json::to_string(l)?),
            Format::Table => println!("{}", l.table_row()),
        }
    }
    Ok(())
}
