//! Pre-start steps: the wait-for probes (TCP, HTTP, unix socket, file) and
//! their retry loop. Commands are run by the supervisor, which owns the
//! children. (Stub: the probes are being written.)

use std::fmt;
use std::time::Duration;

/// What a `--wait-for` URL names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Tcp {
        host: String,
        port: u16,
    },
    Http {
        host: String,
        port: u16,
        path: String,
    },
    Unix(std::path::PathBuf),
    File(std::path::PathBuf),
}

impl Target {
    pub fn parse(text: &str) -> Result<Target, String> {
        if let Some(rest) = text.strip_prefix("file://") {
            return Ok(Target::File(rest.into()));
        }
        Err(format!("`{text}` is not a supported URL"))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Target::Http { host, port, path } => write!(f, "http://{host}:{port}{path}"),
            Target::Unix(p) => write!(f, "unix://{}", p.display()),
            Target::File(p) => write!(f, "file://{}", p.display()),
        }
    }
}

/// One attempt: Ok when the target answers as required.
pub async fn probe(target: &Target, _attempt_timeout: Duration) -> Result<(), String> {
    match target {
        Target::File(p) if p.exists() => Ok(()),
        _ => Err("not implemented".into()),
    }
}

/// A progress report from `wait_for`, for the log.
#[derive(Clone, Debug)]
pub struct Progress {
    pub attempt: u32,
    pub elapsed: Duration,
    pub last_error: String,
}

/// Retries `probe` with capped backoff until it succeeds or `timeout`
/// passes; calls `progress` now and then so a user watching the logs sees
/// what is awaited. Cancel-safe: dropping the future stops the wait.
pub async fn wait_for(
    target: &Target,
    timeout: Duration,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Duration, String> {
    let _ = (target, timeout, progress);
    Err("not implemented".into())
}
