//! The `cnnzoo` command line: parse → resolve → run. Results go to stdout, progress and errors
//! to stderr. Exit codes ([`cli::EXIT_CODES`]): 0 ok, 1 bad input (unknown model, bad flag, bad
//! file), 2 internal error, 130 interrupted by Ctrl-C after saving a checkpoint.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    cnnzoo::kernels::tune_allocator();
    // Usage errors are bad input (exit code 1, like every other); `--help` and `--version` succeed.
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(usage) => {
            let _ = usage.print();
            return ExitCode::from(if usage.use_stderr() { 1 } else { 0 });
        }
    };
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {}", message(&err));
            if err.chain().any(|e| e.downcast_ref::<cli::Interrupted>().is_some()) {
                return ExitCode::from(130);
            }
            let user_error = err.chain().any(|e| e.downcast_ref::<cnnzoo::Error>().is_some());
            ExitCode::from(if user_error { 1 } else { 2 })
        }
    }
}

/// The error and its causes joined by `: `, leaving out a cause whose text the message already
/// ends with (our errors print their OS error, which is also their `source`).
fn message(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.is_empty() {
            out = text;
        } else if !out.ends_with(&text) {
            out = format!("{out}: {text}");
        }
    }
    out
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
