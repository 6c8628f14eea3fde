//! `cnnzoo export RUN_DIR --format safetensors --out FILE`.

use std::path::PathBuf;

use anyhow::Context;
use cnnzoo::interop;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    /// A PyTorch `state_dict` that `torchvision.models.NAME().load_state_dict(..., strict=True)` accepts.
    Safetensors,
    /// An ONNX graph (opset 18) with the weights embedded, via burn-onnx's exporter.
    Onnx,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run directory (from `train` or `import`).
    run: PathBuf,
    /// File format.
    #[arg(long, value_enum, default_value = "safetensors")]
    format: ExportFormat,
    /// Output file (written atomically).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let device = super::device()?;
    let run =
        super::load_run(&args.run, &device).with_context(|| format!("loading {}", args.run.display()))?;
    let (config, model) = (run.config, run.model);
    match args.format {
        ExportFormat::Safetensors => {
            let n = interop::export_safetensors(&model, &args.out)
                .with_context(|| format!("writing {}", args.out.display()))?;
            eprintln!("wrote {} tensors of {} to {}", n, config.model, args.out.display());
        }
        ExportFormat::Onnx => {
            let info = interop::export_onnx(&model, config.input, &args.out)
                .with_context(|| format!("exporting {} to ONNX", config.model))?;
            let [c, h, w] = config.input;
            let batch = if info.dynamic_batch { "batch" } else { "1" };
            eprintln!(
                "wrote {} as ONNX to {} (input [{batch}, {c}, {h}, {w}])",
                config.model,
                args.out.display()
            );
        }
    }
    Ok(())
}
