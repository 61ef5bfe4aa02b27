//! The three places a value can come from (command line, environment,
//! file), read for one setting of the table at a time, each value kept
//! with its origin so that an error names it: the option, the variable,
//! or the file with line, column and key.
//!
//! An empty (or blank) environment variable counts as unset: an image's
//! `ENV CINIT_WORKERS=auto` cannot be removed with `docker run -e`, only
//! emptied.

use std::path::PathBuf;

use toml::de::DeValue;

use super::cli::Args;
use super::file::{scalar_text, File, Span};
use super::options::{self, Kind, Setting, CHILD_ENV};
use super::words::nearest;
use super::ConfigError;
use crate::users::{Accounts, Credentials};

/// The process environment, injectable so tests and fuzz targets never
/// depend on the shell they run in.
pub trait Env {
    /// The variable's value (lossy UTF-8), or `None` when unset.
    fn var(&self, name: &str) -> Option<String>;
    /// The names of every variable set (for the unknown-variable warning).
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
    /// `/etc/cinit.toml` when it exists: the file read when none is named.
    fn default_file(&self) -> Option<PathBuf> {
        None
    }
    /// /etc/passwd and /etc/group, read when a user is named: none by
    /// default (as FROM scratch).
    fn accounts(&self) -> Result<Accounts, String> {
        Ok(Accounts::from_text(None, None))
    }
    /// The init's own effective uid and gid: root by default.
    fn credentials(&self) -> Credentials {
        Credentials::ROOT
    }
}

/// The real environment of the process, read once: only the variables a
/// setting can come from (`CINIT_*`, `WEB_CONCURRENCY`) are kept.
pub struct ProcessEnv {
    vars: Vec<(String, String)>,
}

impl ProcessEnv {
    pub fn read() -> ProcessEnv {
        let vars = crate::process::sys::environ()
            .into_iter()
            .filter_map(|e| {
                let e = e.to_bytes();
                if !(e.starts_with(b"CINIT_") || e.starts_with(b"WEB_CONCURRENCY=")) {
                    return None;
                }
                let text = String::from_utf8_lossy(e);
                let (k, v) = text.split_once('=')?;
                Some((k.to_string(), v.to_string()))
            })
            .collect();
        ProcessEnv { vars }
    }
}

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    fn names(&self) -> Vec<String> {
        self.vars.iter().map(|(k, _)| k.clone()).collect()
    }

    fn default_file(&self) -> Option<PathBuf> {
        let p = std::path::Path::new(super::DEFAULT_FILE);
        p.exists().then(|| p.to_path_buf())
    }

    fn accounts(&self) -> Result<Accounts, String> {
        Accounts::read(std::path::Path::new("/"))
    }

    fn credentials(&self) -> Credentials {
        Credentials::current()
    }
}

/// The layers from the lowest to the highest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Layer {
    File,
    Env,
    Cli,
}

/// Where one value came from.
#[derive(Clone, Debug)]
pub enum Origin {
    /// The long option, without its dashes.
    Option(&'static str),
    Env(&'static str),
    File {
        key: &'static str,
        span: Span,
    },
}

/// One value as the user wrote it.
#[derive(Clone, Debug)]
pub struct Item {
    pub text: String,
    pub origin: Origin,
    /// On the command line, the position among the arguments.
    pub at: usize,
}

pub struct Layers<'a, 't> {
    pub args: &'a Args,
    pub env: &'a dyn Env,
    pub file: Option<&'a File<'t>>,
}

impl Layers<'_, '_> {
    /// The values of `s` from the highest layer that has any.
    pub fn items(&self, s: &'static Setting) -> Result<Option<Vec<Item>>, ConfigError> {
        for layer in [Layer::Cli, Layer::Env, Layer::File] {
            if let Some(items) = self.layer(s, layer)? {
                return Ok(Some(items));
            }
        }
        Ok(None)
    }

    /// The values of `s` in one layer; `None` when that layer has none.
    pub fn layer(
        &self,
        s: &'static Setting,
        layer: Layer,
    ) -> Result<Option<Vec<Item>>, ConfigError> {
        let sep = s.separator();
        let list = matches!(s.kind, Kind::List { .. } | Kind::Step { .. });
        Ok(match layer {
            Layer::Cli => self.args.values(s.key).map(|values| {
                values
                    .into_iter()
                    .map(|(text, at)| Item {
                        text,
                        origin: Origin::Option(s.option.unwrap_or(s.key)),
                        at,
                    })
                    .collect()
            }),
            Layer::Env => [s.env, s.env_fallback]
                .into_iter()
                .flatten()
                .find_map(|name| {
                    let value = self.env.var(name).filter(|v| !v.trim().is_empty())?;
                    let item = |text: &str| Item {
                        text: text.to_string(),
                        origin: Origin::Env(name),
                        at: 0,
                    };
                    Some(match sep {
                        Some(sep) => value
                            .split(sep)
                            .map(str::trim)
                            .filter(|t| !t.is_empty())
                            .map(item)
                            .collect(),
                        None => vec![item(&value)],
                    })
                }),
            Layer::File => match self.file {
                Some(file) if s.toml => file
                    .get(s.key)
                    .map(|v| file_items(file, s.key, v, list))
                    .transpose()?,
                _ => None,
            },
        })
    }

    /// The error for a bad value from `origin`.
    pub fn error(&self, origin: &Origin, message: impl Into<String>) -> ConfigError {
        let message = message.into();
        match origin {
            Origin::Option(o) => ConfigError::Value {
                origin: format!("--{o}"),
                message,
            },
            Origin::Env(name) => ConfigError::Value {
                origin: format!("environment variable {name}"),
                message,
            },
            Origin::File { key, span } => match self.file {
                Some(file) => file.error(span.clone(), key, message),
                None => ConfigError::Invalid(message),
            },
        }
        .shortened()
    }

    /// The origin in words, for the plan: `--workers`, `environment
    /// variable CINIT_WORKERS`, ``key `workers` in /etc/cinit.toml``.
    pub fn describe(&self, origin: &Origin) -> String {
        match origin {
            Origin::Option(o) => format!("--{o}"),
            Origin::Env(name) => format!("environment variable {name}"),
            Origin::File { key, .. } => match self.file {
                Some(f) => format!("key `{key}` in {}", f.path.display()),
                None => format!("key `{key}`"),
            },
        }
    }

    /// A warning for each `CINIT_` variable that is no setting: a typo
    /// there would otherwise be silently ignored.
    pub fn unknown_env(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .env
            .names()
            .into_iter()
            .filter(|n| n.starts_with("CINIT_"))
            .filter(|n| !options::env_names().any(|k| k == n) && !CHILD_ENV.contains(&n.as_str()))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|n| match nearest(&n, options::env_names()) {
                Some(near) => {
                    format!("unknown environment variable {n} ignored (did you mean {near}?)")
                }
                None => format!("unknown environment variable {n} ignored"),
            })
            .collect()
    }
}

/// The values of a key in the file: a scalar is one value; for a list
/// setting an array gives one value per element, each with its position.
fn file_items(
    file: &File<'_>,
    key: &'static str,
    value: &toml::Spanned<DeValue<'_>>,
    list: bool,
) -> Result<Vec<Item>, ConfigError> {
    let item = |v: &toml::Spanned<DeValue<'_>>, text: String| Item {
        text,
        origin: Origin::File {
            key,
            span: v.span(),
        },
        at: 0,
    };
    if let Some(text) = scalar_text(value.get_ref()) {
        return Ok(vec![item(value, text)]);
    }
    match value.get_ref() {
        DeValue::Array(elements) if list => elements
            .iter()
            .map(|e| match scalar_text(e.get_ref()) {
                Some(text) => Ok(item(e, text)),
                None => Err(file.error(
                    e.span(),
                    key,
                    format!(
                        "expected a list of strings, found {} in it",
                        e.get_ref().type_str()
                    ),
                )),
            })
            .collect(),
        other => Err(file.error(
            value.span(),
            key,
            match list {
                true => format!("expected a string or a list, found {}", other.type_str()),
                false => format!("expected a string or a number, found {}", other.type_str()),
            },
        )),
    }
}
