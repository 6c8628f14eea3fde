//! How `cnnzoo` ends: its exit codes, and the error of an interrupted run.

/// The exit codes, as `--help` shows them (and `main` returns them).
pub const EXIT_CODES: &str = "Exit codes: 0 success; 1 bad input (unknown model, bad flag or value, \
unreadable or corrupt file, diverged run); 2 internal error (a bug: please report it; or the output could not be written); 130 interrupted \
by Ctrl-C (the run saved a checkpoint: continue it with `cnnzoo train --resume RUN_DIR`).";

/// A run stopped by Ctrl-C after saving its checkpoint (exit code 130).
#[derive(Debug)]
pub struct Interrupted(pub String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Interrupted {}
