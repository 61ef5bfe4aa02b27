//! The init's one error type and the one place that maps errors to exit
//! codes (SPEC section 8). Every message reads "failed to <verb> <object>"
//! or names the bad setting; nothing panics on bad input.

use thiserror::Error;

use crate::config::ConfigError;

#[derive(Debug, Error)]
pub enum Error {
    /// clap's own message (usage errors, and --help/--version output).
    #[error("{0}")]
    Usage(clap::Error),
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The command could not be found (exit 127).
    #[error("failed to run `{program}`: {reason}")]
    NotFound { program: String, reason: String },
    /// The command exists but cannot be executed (exit 126).
    #[error("failed to run `{program}`: {reason}")]
    NotExecutable { program: String, reason: String },
    /// A pre-start step failed; `code` is the step's own exit code when it
    /// had one.
    #[error("pre-start step {step} failed: {reason}")]
    Prestart {
        step: String,
        reason: String,
        code: Option<i32>,
    },
    /// Any other failure of the init itself (exit 1).
    #[error("{0}")]
    Failed(String),
    #[error("failed to {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn io(what: impl Into<String>, source: impl Into<std::io::Error>) -> Error {
        Error::Io {
            what: what.into(),
            source: source.into(),
        }
    }

    /// Prints the error the way users see it: clap's own rendering for
    /// usage, one `cinit: ...` line otherwise.
    pub fn report(&self) {
        match self {
            Error::Usage(e) => {
                let _ = e.print();
            }
            other => crate::log::error(&other.to_string()),
        }
    }
}

/// The exit code for an error (SPEC section 8).
pub fn exit_code(e: &Error) -> i32 {
    match e {
        Error::Usage(e) => e.exit_code(),
        Error::Config(_) => 2,
        Error::NotFound { .. } => 127,
        Error::NotExecutable { .. } => 126,
        Error::Prestart { code, .. } => match code {
            Some(c) if *c != 0 => *c,
            _ => 1,
        },
        Error::Failed(_) | Error::Io { .. } => 1,
    }
}
