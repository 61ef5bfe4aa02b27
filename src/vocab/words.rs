//! The small enumerations the settings are made of: the worker count
//! (`auto` or a number), the restart policy, the log format.

use std::fmt;

use serde::Serialize;

/// `--workers`: a fixed count or `auto` (sized from the container's limits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workers {
    Auto,
    Fixed(u32),
}

pub const MAX_WORKERS_LIMIT: u32 = 1024;

pub fn parse_workers(text: &str) -> Result<Workers, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("auto") {
        return Ok(Workers::Auto);
    }
    match t.parse::<u32>() {
        Ok(n) if (1..=MAX_WORKERS_LIMIT).contains(&n) => Ok(Workers::Fixed(n)),
        _ => Err(format!(
            "`{text}` is not a worker count (use auto or a number from 1 to {MAX_WORKERS_LIMIT})"
        )),
    }
}

/// When a worker that exited is started again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Never => "never",
        })
    }
}

pub fn parse_restart(text: &str) -> Result<RestartPolicy, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "always" => Ok(RestartPolicy::Always),
        "on-failure" | "on_failure" => Ok(RestartPolicy::OnFailure),
        "never" | "no" => Ok(RestartPolicy::Never),
        _ => Err(format!(
            "`{text}` is not a restart policy (use always, on-failure or never)"
        )),
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

pub fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("`{text}` is not a log format (use text or json)")),
    }
}

/// How a worker tells it is ready to serve (docs/workers.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadyMode {
    /// `listen` with `--listen` sockets, else `delay`.
    #[default]
    Auto,
    /// It waits for connections on an inherited socket (seen in /proc).
    Listen,
    /// It sends `READY=1` to NOTIFY_SOCKET.
    Notify,
    /// It has stayed up `--min-uptime`.
    Delay,
}

impl fmt::Display for ReadyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadyMode::Auto => "auto",
            ReadyMode::Listen => "listen",
            ReadyMode::Notify => "notify",
            ReadyMode::Delay => "delay",
        })
    }
}

pub fn parse_ready(text: &str) -> Result<ReadyMode, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(ReadyMode::Auto),
        "listen" => Ok(ReadyMode::Listen),
        "notify" => Ok(ReadyMode::Notify),
        "delay" => Ok(ReadyMode::Delay),
        _ => Err(format!(
            "`{text}` is not a readiness mode (use auto, listen, notify or delay)"
        )),
    }
}

/// Words joined for display, quoted where a shell would need it.
pub fn shell_join(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A program name: what a Procfile, a `[programs.NAME]` table, the log
/// prefix and `--program` accept.
pub fn valid_program_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_and_policies() {
        assert_eq!(parse_workers("auto"), Ok(Workers::Auto));
        assert_eq!(parse_workers("4"), Ok(Workers::Fixed(4)));
        assert!(parse_workers("0").is_err());
        assert!(parse_workers("many").is_err());
        assert_eq!(parse_restart("on_failure"), Ok(RestartPolicy::OnFailure));
        assert_eq!(RestartPolicy::OnFailure.to_string(), "on-failure");
        assert!(parse_log_format("xml").is_err());
    }
}
