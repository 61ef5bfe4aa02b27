//! The init's own log lines on stderr: one line per event, as text
//! (`cinit: worker 1 (pid 42) exited with code 3`) or as JSON lines with
//! the event's fields. Each line is written with one `write` so lines from
//! the init and its children do not interleave mid-line.

use std::io::Write;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::vocab::LogFormat;

static FORMAT: OnceLock<LogFormat> = OnceLock::new();
static QUIET: OnceLock<bool> = OnceLock::new();

pub fn init(format: LogFormat) {
    let _ = FORMAT.set(format);
}

/// Plain mode is tini's territory: a child that starts and exits is not
/// news, so only warnings and errors are printed there.
pub fn set_quiet(quiet: bool) {
    let _ = QUIET.set(quiet);
}

fn format() -> LogFormat {
    *FORMAT.get().unwrap_or(&LogFormat::Text)
}

/// Logs `event` with a human message and machine fields.
pub fn event(level: &str, event: &str, message: &str, fields: &[(&str, Value)]) {
    if level == "info" && *QUIET.get().unwrap_or(&false) {
        return;
    }
    let line = match format() {
        LogFormat::Text => format!("cinit: {message}\n"),
        LogFormat::Json => {
            let mut m = Map::new();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            m.insert("ts".into(), Value::from((now * 1000.0).round() / 1000.0));
            m.insert("level".into(), level.into());
            m.insert("event".into(), event.into());
            for (k, v) in fields {
                m.insert((*k).into(), v.clone());
            }
            m.insert("msg".into(), message.into());
            format!("{}\n", Value::Object(m))
        }
    };
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

pub fn info(message: &str) {
    event("info", "info", message, &[]);
}

pub fn warn(message: &str) {
    event("warn", "warning", message, &[]);
}

pub fn error(message: &str) {
    event("error", "error", message, &[]);
}
