//! Argument structs and dispatch; one file per subcommand.

mod list;
mod summary;

use clap::{Parser, Subcommand, ValueEnum};

/// The classic CNNs — LeNet to DenseNet — in Rust: build, inspect, train, evaluate, compare.
#[derive(Debug, Parser)]
#[command(name = "cnnzoo", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List every model: family, flavour, default input, classes, parameters, MACs.
    List(list::Args),
    /// Layer-by-layer table of a model: output shape, parameters, MACs, activation memory.
    Summary(summary::Args),
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
    match cli.command {
        Command::List(args) => list::run(args),
        Command::Summary(args) => summary::run(args),
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
