//! The TOML configuration file: read, checked for unknown keys, and kept
//! with the position of every value so that a bad value is reported with
//! its file, line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::ConfigError;

/// Keys the file may hold: every setting's name, plus `command` and `steps`.
pub const KEYS: &[&str] = &[
    "workers",
    "cpus",
    "memory",
    "workers_per_cpu",
    "extra_workers",
    "worker_memory",
    "memory_reserve",
    "min_workers",
    "max_workers",
    "listen",
    "backlog",
    "wait_for",
    "wait_timeout",
    "prestart",
    "prestart_dir",
    "prestart_timeout",
    "steps",
    "restart",
    "min_uptime",
    "backoff_max",
    "crash_loop",
    "stop_signal",
    "graceful_timeout",
    "shutdown_delay",
    "signal_map",
    "log_format",
    "command",
];

/// A parsed file: each top-level key with its value and where it stands.
#[derive(Debug, Default)]
pub struct File {
    pub path: PathBuf,
    text: String,
    values: BTreeMap<String, Spanned<toml::Value>>,
}

/// A value from the file, with what is needed to point at it.
pub struct Located<'a> {
    pub file: &'a File,
    pub key: &'a str,
    pub value: &'a toml::Value,
    span: std::ops::Range<usize>,
}

impl File {
    pub fn load(path: &Path) -> Result<File, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
        File::parse(path, text)
    }

    pub fn parse(path: &Path, text: String) -> Result<File, ConfigError> {
        let mut file = File {
            path: path.to_path_buf(),
            text,
            values: BTreeMap::new(),
        };
        let table: BTreeMap<Spanned<String>, Spanned<toml::Value>> =
            match toml::from_str(&file.text) {
                Ok(t) => t,
                Err(e) => {
                    let (line, column) = e.span().map(|s| file.line_col(s.start)).unwrap_or((1, 1));
                    return Err(ConfigError::FileSyntax {
                        path: file.path.clone(),
                        line,
                        column,
                        message: e.message().trim().to_string(),
                    });
                }
            };
        for (key, value) in table {
            if !KEYS.contains(&key.get_ref().as_str()) {
                let (line, column) = file.line_col(key.span().start);
                return Err(ConfigError::FileValue {
                    path: file.path.clone(),
                    line,
                    column,
                    key: key.get_ref().clone(),
                    message: format!("unknown key (known keys: {})", KEYS.join(", ")),
                });
            }
            file.values.insert(key.into_inner(), value);
        }
        Ok(file)
    }

    pub fn get<'a>(&'a self, key: &'a str) -> Option<Located<'a>> {
        self.values.get_key_value(key).map(|(k, v)| Located {
            file: self,
            key: k,
            value: v.get_ref(),
            span: v.span(),
        })
    }

    /// 1-based line and column (in characters) of a byte offset.
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        (line, before[line_start..].chars().count() + 1)
    }
}

impl Located<'_> {
    /// The error for this value, pointing at it.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        self.error_at(self.span.start, message)
    }

    fn error_at(&self, offset: usize, message: impl Into<String>) -> ConfigError {
        let (line, column) = self.file.line_col(offset);
        ConfigError::FileValue {
            path: self.file.path.clone(),
            line,
            column,
            key: self.key.to_string(),
            message: message.into(),
        }
    }

    /// The value as text: strings as they are, numbers and booleans printed,
    /// so `graceful_timeout = 10` and `"10s"` both work.
    pub fn scalar(&self) -> Result<String, ConfigError> {
        match self.value {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            toml::Value::Float(f) => Ok(f.to_string()),
            toml::Value::Boolean(b) => Ok(b.to_string()),
            other => Err(self.error(format!(
                "expected a string or a number, found {}",
                other.type_str()
            ))),
        }
    }

    /// A list of strings; a single string counts as a list of one.
    pub fn strings(&self) -> Result<Vec<String>, ConfigError> {
        match self.value {
            toml::Value::String(s) => Ok(vec![s.clone()]),
            toml::Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s.clone()),
                    other => Err(self.error(format!(
                        "expected a list of strings, found a {} in it",
                        other.type_str()
                    ))),
                })
                .collect(),
            other => Err(self.error(format!(
                "expected a string or a list of strings, found {}",
                other.type_str()
            ))),
        }
    }
}
