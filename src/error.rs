//! The library's error type: every failure a user can cause is one of these variants.

use std::path::PathBuf;

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in cnnzoo that is not a bug.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model name that is not in the registry.
    #[error("unknown model `{name}`{}; run `cnnzoo list` to see all models", did_you_mean(.suggestions))]
    UnknownModel {
        /// The name as given.
        name: String,
        /// The nearest registry names, best first.
        suggestions: Vec<String>,
    },
    /// An input whose shape the network cannot take.
    #[error("input {got} does not fit `{model}`: {reason}; {accepts}")]
    InputShape {
        /// Registry name (or family) of the model.
        model: String,
        /// The input as `C×H×W`.
        got: String,
        /// What the first layer that failed reported.
        reason: String,
        /// Which inputs the model accepts, e.g. "it needs at least 3×29×29".
        accepts: String,
    },
    /// A user-supplied value that is out of range (flag, config field).
    #[error("invalid {what}: {message}")]
    Invalid {
        /// The flag or field.
        what: String,
        /// What was expected and what was got.
        message: String,
    },
    /// A checkpoint whose tensors do not fit the model.
    #[error("`{}` does not fit `{model}`: {message}", path.display())]
    WeightMismatch {
        /// The checkpoint.
        path: PathBuf,
        /// Registry name of the model.
        model: String,
        /// Which keys or shapes do not fit.
        message: String,
    },
    /// Training produced a non-finite loss.
    #[error(
        "the loss became {loss} at epoch {epoch}, batch {batch} (learning rate {lr}): the run diverged; \
         try a lower learning rate, e.g. --lr {suggestion}"
    )]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch within the epoch.
        batch: usize,
        /// The loss value (NaN or ±inf).
        loss: f64,
        /// Learning rate at that step, formatted.
        lr: String,
        /// A tenth of the configured rate, formatted.
        suggestion: String,
    },
    /// A file that could not be read or written.
    #[error("cannot {action} `{}`: {source}", path.display())]
    Io {
        /// "read", "write", "create" …
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file whose content is not what it should be.
    #[error("`{}`: {message}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(what: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { what: what.into(), message: message.into() }
    }

    /// Shorthand for [`Error::BadFile`].
    pub fn bad_file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::BadFile { path: path.into(), message: message.into() }
    }

    /// Wraps an I/O error with the file and the action that failed.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { action, path: path.into(), source }
    }
}

fn did_you_mean(suggestions: &[String]) -> String {
    match suggestions {
        [] => String::new(),
        [one] => format!("; did you mean `{one}`?"),
        many => format!(
            "; did you mean one of {}?",
            many.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
        ),
    }
}
