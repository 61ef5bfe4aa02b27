//! The init's one error type, gathering each edge module's own errors, and
//! the one place that maps errors to exit codes (the README's table).
//! Every message reads "failed to <verb> <object>" or names the bad
//! setting; nothing panics on bad input.
//!
//! Failures that happen while children run (a crash loop, a failed
//! pre-start step) are the supervisor's decisions: they are reported as
//! events and end the run with an exit code, not as an `Error`.

use thiserror::Error;

use crate::config::ConfigError;
use crate::listeners::BindError;
use crate::process::SpawnError;

#[derive(Debug, Error)]
pub enum Error {
    /// A usage error, or the text of --help/--version (exit 0).
    #[error("{0}")]
    Usage(crate::config::Usage),
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Spawn(#[from] SpawnError),
    #[error("{0}")]
    Bind(#[from] BindError),
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

    /// Prints the error the way users see it: the usage text as it is,
    /// one `cinit: ...` line otherwise.
    pub fn report(&self) {
        match self {
            Error::Usage(e) => {
                e.print();
            }
            other => crate::log::error(&other.to_string()),
        }
    }
}

/// The exit code for an error.
pub fn exit_code(e: &Error) -> i32 {
    match e {
        Error::Usage(e) => e.code,
        Error::Config(_) => 2,
        Error::Spawn(e) => e.exit_code(),
        Error::Bind(_) | Error::Failed(_) | Error::Io { .. } => 1,
    }
}
