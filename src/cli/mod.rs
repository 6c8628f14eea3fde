//! Argument structs and dispatch; one file per subcommand.

mod bench;
mod compare;
mod console;
mod eval;
mod exit;
mod experiment;
mod export;
mod import;
mod list;
mod predict;
mod serve;
mod summary;
mod train;
mod visualize;

use clap::{Parser, Subcommand, ValueEnum};
pub use exit::{EXIT_CODES, Interrupted};

/// The classic CNNs — LeNet to DenseNet — in Rust: build, inspect, train, evaluate, compare.
#[derive(Debug, Parser)]
#[command(name = "cnnzoo", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Run Burn's own CPU ops instead of cnnzoo's kernels (comparison and debugging; the same
    /// as CNNZOO_REFERENCE_KERNELS=1).
    #[arg(long, global = true)]
    reference_kernels: bool,
    /// Where to compute: `cpu`, or `cuda` / `cuda:N` in a build with `--features cuda`.
    #[arg(long, global = true, default_value = "cpu", env = "CNNZOO_DEVICE", value_parser = parse_device)]
    device: cnnzoo::device::DeviceSpec,
}

fn parse_device(s: &str) -> Result<cnnzoo::device::DeviceSpec, String> {
    s.parse().map_err(|e: cnnzoo::Error| e.to_string())
}

/// The device `--device` chose (set once by [`run`]).
static DEVICE: std::sync::OnceLock<cnnzoo::device::DeviceSpec> = std::sync::OnceLock::new();

#[derive(Debug, Subcommand)]
enum Command {
    /// List every model: family, flavour, default input, classes, parameters, MACs.
    List(list::Args),
    /// Layer-by-layer table of a model: output shape, parameters, MACs, activation memory,
    /// receptive field.
    Summary(summary::Args),
    /// Train a model (on Fashion-MNIST with d2l's recipe by default, or MNIST, CIFAR, an image
    /// folder; from scratch or fine-tuning other weights); writes a run directory.
    Train(Box<train::Args>),
    /// Evaluate a run on the test set: top-1, top-5, per-class accuracy, confusion matrix.
    Eval(eval::Args),
    /// Classify image files with a trained run.
    Predict(predict::Args),
    /// What the network sees in an image: Grad-CAM, Grad-CAM++, saliency, SmoothGrad, filters,
    /// feature maps (PNGs and one HTML page).
    Visualize(visualize::Args),
    /// Import a torchvision state_dict (.pth or .safetensors) into a run directory.
    Import(import::Args),
    /// Export a run as a PyTorch state_dict (safetensors) or an ONNX graph.
    Export(export::Args),
    /// Images/s, GFLOP/s and peak memory of training steps and inference.
    Bench(bench::Args),
    /// Serve run directories over HTTP: predict, Grad-CAM, metrics, and a web page.
    Serve(serve::Args),
    /// The seven d2l models side by side: size, compute, speed, accuracy, and the chapter's claims.
    Compare(compare::Args),
    /// The chapter's lessons as experiments: ReLU vs sigmoid, dropout, augmentation, residual
    /// connections, batch norm, 1×1 convs, small kernels, transitions — claim, plot, verdict.
    Experiment(experiment::Args),
}

/// Output format of a report command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Aligned text for people.
    #[default]
    Table,
    /// JSON for scripts.
    Json,
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    if cli.reference_kernels {
        cnnzoo::kernels::set_reference_kernels(true);
    }
    let _ = DEVICE.set(cli.device);
    match cli.command {
        Command::List(args) => list::run(args),
        Command::Summary(args) => summary::run(args),
        Command::Train(args) => train::run(*args),
        Command::Eval(args) => eval::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Visualize(args) => visualize::run(args),
        Command::Import(args) => import::run(args),
        Command::Export(args) => export::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Experiment(args) => experiment::run(args),
        Command::Serve(args) => serve::run(args),
    }
}

/// Writes `text` to stdout (a closed pipe ends quietly, see `main`).
pub fn print(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Pretty JSON of `value` on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    print(&(serde_json::to_string_pretty(value)? + "\n"))
}

/// Loads a run directory, saying on stderr when it has no final weights yet.
pub fn load_run(
    run: &std::path::Path,
    device: &burn::tensor::Device,
) -> anyhow::Result<cnnzoo::train::LoadedRun> {
    let loaded = cnnzoo::train::load_run(run, device)?;
    if loaded.from_checkpoint {
        eprintln!(
            "{} has no final weights yet; using its last checkpoint {}",
            run.display(),
            loaded.weights.display()
        );
    }
    Ok(loaded)
}

/// The compute device `--device` chose, checked (CUDA needs a `cuda` build and a usable GPU).
pub fn device() -> anyhow::Result<burn::tensor::Device> {
    Ok(DEVICE.get().copied().unwrap_or_default().open()?)
}
