//! Pre-start steps: one type (`Step`) shared by the configuration, the
//! plan and the supervisor, and where the list comes from.
//!
//! The steps come from one layer only, the highest that names any:
//! * the command line, in the order the options were typed;
//! * the environment: `CINIT_WAIT_FOR`, then `CINIT_PRESTART`, then
//!   `CINIT_PRESTART_DIR`;
//! * the file: its `steps` list (any order, each step with its own
//!   timeout), or else its `wait_for`, `prestart` and `prestart_dir` keys
//!   in that order; both at once is an error.
//!
//! Each value is parsed once, here, by the parser of its setting in the
//! table; a bad entry of `steps` is reported at its own line and column.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use toml::de::DeValue;
use toml::Spanned;

use super::file::{scalar_text, File};
use super::layers::{Layer, Layers};
use super::options::{self, Kind, SETTINGS};
use super::{Config, ConfigError};
use crate::vocab::{parse_duration, serialize_secs, WaitTarget};

/// One pre-start step, in the order it will run. The JSON form is part of
/// the plan (docs/plan.md): `{"kind": "wait_for", "url", "timeout_s"}`,
/// `{"kind": "run", "argv", "timeout_s"}`, `{"kind": "dir", "path",
/// "timeout_s"}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    /// Wait until the target answers, or fail after the timeout.
    WaitFor {
        #[serde(rename = "url", serialize_with = "display")]
        target: WaitTarget,
        #[serde(serialize_with = "serialize_secs", rename = "timeout_s")]
        timeout: Duration,
    },
    /// Run a command once; it must exit 0 within the timeout.
    Run {
        argv: Vec<String>,
        #[serde(serialize_with = "serialize_secs", rename = "timeout_s")]
        timeout: Duration,
    },
    /// Run the executables of a directory in name order, each within the
    /// timeout.
    Dir {
        path: PathBuf,
        #[serde(serialize_with = "serialize_secs", rename = "timeout_s")]
        timeout: Duration,
    },
}

impl Step {
    fn set_timeout(&mut self, t: Duration) {
        match self {
            Step::WaitFor { timeout, .. }
            | Step::Run { timeout, .. }
            | Step::Dir { timeout, .. } => *timeout = t,
        }
    }
}

fn display<S: serde::Serializer>(v: &WaitTarget, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// The steps, from the highest layer that names any. `config` already
/// holds the default timeouts.
pub fn resolve(layers: &Layers<'_, '_>, config: &Config) -> Result<Vec<Step>, ConfigError> {
    for layer in [Layer::Cli, Layer::Env, Layer::File] {
        // (order, value, origin, parser): on the command line the order is
        // the position of the argument, elsewhere the table's order.
        let mut found = Vec::new();
        for (n, s) in SETTINGS.iter().enumerate() {
            let Kind::Step { parse, .. } = s.kind else {
                continue;
            };
            for (i, item) in layers.layer(s, layer)?.into_iter().flatten().enumerate() {
                let order = if layer == Layer::Cli {
                    (item.at, 0)
                } else {
                    (n, i)
                };
                found.push((order, item, parse));
            }
        }
        let list = match (layer, layers.file) {
            (Layer::File, Some(file)) => file.get("steps").map(|v| (file, v)),
            _ => None,
        };
        if let Some((file, value)) = list {
            if let Some((_, item, _)) = found.first() {
                return Err(layers.error(
                    &item.origin,
                    "give the steps either as `steps` or as wait_for, prestart and prestart_dir, not both",
                ));
            }
            return file_steps(file, value, config);
        }
        if !found.is_empty() {
            found.sort_by_key(|(order, ..)| *order);
            return found
                .into_iter()
                .map(|(_, item, parse)| {
                    parse(config, &item.text).map_err(|m| layers.error(&item.origin, m))
                })
                .collect();
        }
    }
    Ok(Vec::new())
}

/// `steps = [ { wait_for = "tcp://db:5432", timeout = "30s" },
///            { run = "alembic upgrade head" }, { dir = "/docker-entrypoint.d" } ]`
fn file_steps(
    file: &File<'_>,
    value: &Spanned<DeValue<'_>>,
    config: &Config,
) -> Result<Vec<Step>, ConfigError> {
    let err = |span: std::ops::Range<usize>, message: String| file.error(span, "steps", message);
    let DeValue::Array(items) = value.get_ref() else {
        return Err(err(
            value.span(),
            "expected a list of steps, like [{ wait_for = \"tcp://db:5432\" }, { run = \"alembic upgrade head\" }]".into(),
        ));
    };
    let mut steps = Vec::new();
    for (n, item) in items.iter().enumerate() {
        let n = n + 1;
        let DeValue::Table(t) = item.get_ref() else {
            return Err(err(
                item.span(),
                format!("step {n}: expected a table, like {{ run = \"alembic upgrade head\" }}"),
            ));
        };
        let mut kind = None;
        let mut timeout = None;
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "wait_for" | "run" | "dir" if kind.is_some() => {
                    return Err(err(
                        k.span(),
                        format!("step {n}: give only one of wait_for, run or dir"),
                    ))
                }
                "wait_for" | "run" | "dir" => kind = Some((k.get_ref().as_ref(), v)),
                "timeout" => timeout = Some(v),
                other => {
                    return Err(err(
                        k.span(),
                        format!(
                        "step {n}: unknown key `{other}` (use wait_for, run or dir, and timeout)"
                    ),
                    ))
                }
            }
        }
        let Some((kind, v)) = kind else {
            return Err(err(
                item.span(),
                format!("step {n}: give one of wait_for, run or dir"),
            ));
        };
        let text = |v: &Spanned<DeValue<'_>>| match v.get_ref() {
            DeValue::String(s) => Ok(s.to_string()),
            other => Err(err(
                v.span(),
                format!(
                    "step {n}: {kind} must be a string, not {}",
                    other.type_str()
                ),
            )),
        };
        let parsed = match (kind, v.get_ref()) {
            ("run", DeValue::Array(words)) => {
                let argv = words.iter().map(text).collect::<Result<Vec<_>, _>>()?;
                if argv.is_empty() {
                    return Err(err(v.span(), format!("step {n}: the command is empty")));
                }
                Ok(Step::Run {
                    argv,
                    timeout: config.prestart_timeout,
                })
            }
            ("wait_for", _) => options::wait_for_step(config, &text(v)?),
            ("run", _) => options::run_step(config, &text(v)?),
            _ => options::dir_step(config, &text(v)?),
        };
        let mut step = parsed.map_err(|m| err(v.span(), format!("step {n}: {m}")))?;
        if let Some(t) = timeout {
            let d = scalar_text(t.get_ref())
                .ok_or_else(|| "a duration is a string or a number".to_string())
                .and_then(|s| parse_duration(&s))
                .map_err(|m| err(t.span(), format!("step {n}: timeout: {m}")))?;
            step.set_timeout(d);
        }
        steps.push(step);
    }
    Ok(steps)
}
