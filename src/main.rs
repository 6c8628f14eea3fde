//! The `cnnzoo` command line: parse → resolve → run. Results go to stdout, progress and errors
//! to stderr. Exit codes: 0 ok, 1 bad input (unknown model, bad flag, bad file), 2 internal error.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    cnnzoo::kernels::tune_allocator();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {err:#}");
            let user_error = err.chain().any(|e| e.downcast_ref::<cnnzoo::Error>().is_some());
            ExitCode::from(if user_error { 1 } else { 2 })
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
