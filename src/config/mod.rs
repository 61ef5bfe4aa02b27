//! Settings merged from four layers: command line > environment > file >
//! default, each parsed into a typed value.
//!
//! A value that does not parse is an error that names where it came from:
//! the option, the environment variable, or the file with line, column and
//! key. Nothing runs until every setting has parsed.

pub mod file;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::ArgMatches;
use thiserror::Error;

use crate::cli::Cli;
use crate::vocab::{self as values, LogFormat, RestartPolicy, Signal, SignalRule, Workers};

/// The default file, read when it exists and no other is named.
pub const DEFAULT_FILE: &str = "/etc/cinit.toml";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("failed to read config file {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    FileSyntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}:{line}:{column}: key `{key}`: {message}", path.display())]
    FileValue {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
    #[error("invalid value for {origin}: {message}")]
    Value { origin: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// One pre-start step as configured, in the order it will run.
#[derive(Clone, Debug, PartialEq)]
pub enum StepConfig {
    /// Wait until the URL answers, or fail after the timeout.
    WaitFor { url: String, timeout: Duration },
    /// Run a command once; it must exit 0 within the timeout.
    Run {
        argv: Vec<String>,
        timeout: Duration,
    },
    /// Run the executables of a directory in name order.
    Dir { path: PathBuf, timeout: Duration },
}

/// Every setting, typed and merged.
#[derive(Clone, Debug)]
pub struct Config {
    pub file: Option<PathBuf>,
    pub dry_run: bool,
    pub json: bool,
    pub probe: Option<String>,
    /// None means plain mode.
    pub workers: Option<Workers>,
    /// Where the worker count came from (`--workers`, `CINIT_WORKERS`,
    /// `WEB_CONCURRENCY`, the file), for the plan.
    pub workers_origin: Option<String>,
    pub cpus: Option<f64>,
    pub memory: Option<u64>,
    pub workers_per_cpu: f64,
    pub extra_workers: f64,
    pub worker_memory: u64,
    pub memory_reserve: u64,
    pub min_workers: u32,
    pub max_workers: u32,
    pub listen: Vec<String>,
    pub backlog: u32,
    pub steps: Vec<StepConfig>,
    pub restart: Option<RestartPolicy>,
    pub min_uptime: Duration,
    pub backoff_max: Duration,
    pub crash_loop: u32,
    pub stop_signal: Option<Signal>,
    pub graceful_timeout: Duration,
    pub shutdown_delay: Duration,
    pub signal_map: Vec<SignalRule>,
    pub log_format: LogFormat,
    pub root: PathBuf,
    pub command: Vec<OsString>,
}

/// Defaults, with the reason for each in docs/configuration.md.
pub mod defaults {
    use std::time::Duration;
    pub const WORKERS_PER_CPU: f64 = 2.0;
    pub const EXTRA_WORKERS: f64 = 1.0;
    pub const WORKER_MEMORY: u64 = 256 << 20;
    pub const MEMORY_RESERVE: u64 = 0;
    pub const MIN_WORKERS: u32 = 1;
    pub const MAX_WORKERS: u32 = 64;
    pub const BACKLOG: u32 = 2048;
    pub const WAIT_TIMEOUT: Duration = Duration::from_secs(60);
    pub const PRESTART_TIMEOUT: Duration = Duration::from_secs(300);
    pub const MIN_UPTIME: Duration = Duration::from_secs(2);
    pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
    pub const CRASH_LOOP: u32 = 5;
    pub const GRACEFUL_TIMEOUT: Duration = Duration::from_secs(8);
    pub const SHUTDOWN_DELAY: Duration = Duration::ZERO;
}

/// The process environment, injectable for tests.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Where one raw value came from.
enum Origin<'a> {
    Cli(&'a str),
    Env(String),
    File(file::Located<'a>),
}

struct Layers<'a> {
    matches: &'a ArgMatches,
    file: Option<&'a file::File>,
}

impl<'a> Layers<'a> {
    /// The id clap gives the option `name` (`graceful_timeout`).
    /// Where clap found `id`. An empty environment variable counts as
    /// unset: an image's `ENV CINIT_WORKERS=auto` cannot be removed with
    /// `docker run -e`, only emptied.
    fn source(&self, id: &str) -> Option<ValueSource> {
        let source = self
            .matches
            .try_contains_id(id)
            .ok()
            .and_then(|present| present.then(|| self.matches.value_source(id)))
            .flatten()?;
        if source == ValueSource::EnvVariable {
            let empty = self
                .matches
                .get_raw(id)
                .map(|mut vals| vals.all(|v| v.to_string_lossy().trim().is_empty()))
                .unwrap_or(true);
            if empty {
                return None;
            }
        }
        Some(source)
    }

    fn origin(&self, id: &'a str) -> Option<Origin<'a>> {
        match self.source(id) {
            Some(ValueSource::CommandLine) => Some(Origin::Cli(id)),
            Some(ValueSource::EnvVariable) => Some(Origin::Env(env_name(id))),
            _ => self.file.and_then(|f| f.get(id)).map(Origin::File),
        }
    }

    /// One scalar setting parsed by `parse`, or `None` when no layer has it.
    fn scalar<T>(
        &self,
        id: &'a str,
        cli_value: &Option<String>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(origin) = self.origin(id) else {
            return Ok(None);
        };
        match origin {
            Origin::Cli(_) | Origin::Env(_) => {
                let text = cli_value.as_deref().unwrap_or_default();
                parse(text).map(Some).map_err(|message| ConfigError::Value {
                    origin: describe(&origin),
                    message,
                })
            }
            Origin::File(loc) => {
                let text = loc.scalar()?;
                parse(&text).map(Some).map_err(|m| loc.error(m))
            }
        }
    }

    /// A repeatable setting: the command line's values, else the
    /// environment's split on `sep`, else the file's list.
    fn list<T>(
        &self,
        id: &'a str,
        cli_values: &[String],
        sep: char,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Vec<T>, ConfigError> {
        let Some(origin) = self.origin(id) else {
            return Ok(Vec::new());
        };
        let items: Vec<String> = match &origin {
            Origin::Cli(_) => cli_values.to_vec(),
            Origin::Env(_) => cli_values
                .iter()
                .flat_map(|v| v.split(sep))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            Origin::File(loc) => {
                return loc
                    .strings()?
                    .iter()
                    .map(|s| parse(s).map_err(|m| loc.error(m)))
                    .collect()
            }
        };
        items
            .iter()
            .map(|s| {
                parse(s).map_err(|message| ConfigError::Value {
                    origin: describe(&origin),
                    message,
                })
            })
            .collect()
    }
}

fn env_name(id: &str) -> String {
    format!("CINIT_{}", id.to_ascii_uppercase())
}

fn describe(origin: &Origin<'_>) -> String {
    match origin {
        Origin::Cli(id) => format!("--{}", id.replace('_', "-")),
        Origin::Env(name) => format!("environment variable {name}"),
        Origin::File(loc) => format!("key `{}` in {}", loc.key, loc.file.path.display()),
    }
}

/// Splits "CMD ARGS" into words the way a shell would for plain words,
/// single and double quotes and backslashes; no expansion of any kind.
pub fn split_command(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unclosed ' in `{text}`")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unclosed \" in `{text}`")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unclosed \" in `{text}`")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(format!("trailing \\ in `{text}`")),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err("the command is empty".into());
    }
    Ok(words)
}

/// Merges the layers into one `Config`.
pub fn resolve(cli: &Cli, matches: &ArgMatches, env: &dyn Env) -> Result<Config, ConfigError> {
    let file_path = match &cli.config {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ if Path::new(DEFAULT_FILE).exists() => Some(PathBuf::from(DEFAULT_FILE)),
        _ => None,
    };
    let file = file_path.as_deref().map(file::File::load).transpose()?;
    resolve_layers(cli, matches, env, file)
}

/// Resolves `args` (the words after the program name included) with the
/// given environment and an already parsed file: for the fuzz targets.
pub fn resolve_with_file(
    args: &[&str],
    env: &dyn Env,
    file: Option<file::File>,
) -> Result<Config, ConfigError> {
    let (cli, matches) = Cli::parse_from_args(args.iter().copied())
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    resolve_layers(&cli, &matches, env, file)
}

fn resolve_layers(
    cli: &Cli,
    matches: &ArgMatches,
    env: &dyn Env,
    file: Option<file::File>,
) -> Result<Config, ConfigError> {
    let file_path = file.as_ref().map(|f| f.path.clone());
    let layers = Layers {
        matches,
        file: file.as_ref(),
    };

    // WEB_CONCURRENCY counts only when neither --workers nor CINIT_WORKERS
    // is set: it is the convention the Heroku/gunicorn/uvicorn world shares.
    let mut workers = layers.scalar("workers", &cli.workers, values::parse_workers)?;
    let mut workers_origin = layers.origin("workers").map(|o| describe(&o));
    if matches!(
        layers.source("workers"),
        None | Some(ValueSource::DefaultValue)
    ) {
        if let Some(wc) = env.var("WEB_CONCURRENCY").filter(|v| !v.trim().is_empty()) {
            workers = Some(
                values::parse_workers(&wc).map_err(|message| ConfigError::Value {
                    origin: "environment variable WEB_CONCURRENCY".into(),
                    message,
                })?,
            );
            workers_origin = Some("environment variable WEB_CONCURRENCY".into());
        }
    }

    let wait_timeout = layers
        .scalar("wait_timeout", &cli.wait_timeout, values::parse_duration)?
        .unwrap_or(defaults::WAIT_TIMEOUT);
    let prestart_timeout = layers
        .scalar(
            "prestart_timeout",
            &cli.prestart_timeout,
            values::parse_duration,
        )?
        .unwrap_or(defaults::PRESTART_TIMEOUT);
    let steps = resolve_steps(cli, matches, &layers, wait_timeout, prestart_timeout)?;

    let command = if !cli.command.is_empty() {
        cli.command.clone()
    } else if let Some(loc) = file.as_ref().and_then(|f| f.get("command")) {
        let words = match loc.value {
            toml::Value::String(s) => split_command(s).map_err(|m| loc.error(m))?,
            _ => loc.strings()?,
        };
        if words.is_empty() {
            return Err(loc.error("the command is empty"));
        }
        words.into_iter().map(OsString::from).collect()
    } else {
        Vec::new()
    };

    let config = Config {
        file: file_path,
        dry_run: layers
            .scalar("dry_run", &cli.dry_run, values::parse_bool)?
            .unwrap_or(false),
        json: cli.json,
        probe: cli.probe.clone(),
        workers,
        workers_origin,
        cpus: layers.scalar("cpus", &cli.cpus, values::parse_cpus)?,
        memory: layers.scalar("memory", &cli.memory, values::parse_bytes)?,
        workers_per_cpu: layers
            .scalar("workers_per_cpu", &cli.workers_per_cpu, values::parse_f64)?
            .unwrap_or(defaults::WORKERS_PER_CPU),
        extra_workers: layers
            .scalar("extra_workers", &cli.extra_workers, values::parse_f64)?
            .unwrap_or(defaults::EXTRA_WORKERS),
        worker_memory: layers
            .scalar("worker_memory", &cli.worker_memory, values::parse_bytes)?
            .unwrap_or(defaults::WORKER_MEMORY),
        memory_reserve: layers
            .scalar("memory_reserve", &cli.memory_reserve, values::parse_bytes)?
            .unwrap_or(defaults::MEMORY_RESERVE),
        min_workers: layers
            .scalar("min_workers", &cli.min_workers, values::parse_count)?
            .unwrap_or(defaults::MIN_WORKERS),
        max_workers: layers
            .scalar("max_workers", &cli.max_workers, values::parse_count)?
            .unwrap_or(defaults::MAX_WORKERS),
        listen: layers.list("listen", &cli.listen, ',', |s| Ok(s.to_string()))?,
        backlog: layers
            .scalar("backlog", &cli.backlog, values::parse_count)?
            .unwrap_or(defaults::BACKLOG),
        steps,
        restart: layers.scalar("restart", &cli.restart, values::parse_restart)?,
        min_uptime: layers
            .scalar("min_uptime", &cli.min_uptime, values::parse_duration)?
            .unwrap_or(defaults::MIN_UPTIME),
        backoff_max: layers
            .scalar("backoff_max", &cli.backoff_max, values::parse_duration)?
            .unwrap_or(defaults::BACKOFF_MAX),
        crash_loop: layers
            .scalar("crash_loop", &cli.crash_loop, values::parse_count)?
            .unwrap_or(defaults::CRASH_LOOP),
        stop_signal: layers.scalar("stop_signal", &cli.stop_signal, values::parse_signal)?,
        graceful_timeout: layers
            .scalar(
                "graceful_timeout",
                &cli.graceful_timeout,
                values::parse_duration,
            )?
            .unwrap_or(defaults::GRACEFUL_TIMEOUT),
        shutdown_delay: layers
            .scalar(
                "shutdown_delay",
                &cli.shutdown_delay,
                values::parse_duration,
            )?
            .unwrap_or(defaults::SHUTDOWN_DELAY),
        signal_map: layers.list(
            "signal_map",
            &cli.signal_map,
            ',',
            values::parse_signal_rule,
        )?,
        log_format: layers
            .scalar("log_format", &cli.log_format, values::parse_log_format)?
            .unwrap_or(LogFormat::Text),
        root: cli
            .root
            .as_deref()
            .filter(|r| !r.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/")),
        command,
    };
    validate(&config)?;
    Ok(config)
}

fn validate(c: &Config) -> Result<(), ConfigError> {
    if c.min_workers == 0 {
        return Err(ConfigError::Invalid(
            "min_workers must be at least 1".into(),
        ));
    }
    if c.min_workers > c.max_workers {
        return Err(ConfigError::Invalid(format!(
            "min_workers ({}) is larger than max_workers ({})",
            c.min_workers, c.max_workers
        )));
    }
    if c.max_workers > values::MAX_WORKERS_LIMIT {
        return Err(ConfigError::Invalid(format!(
            "max_workers ({}) is above the limit of {}",
            c.max_workers,
            values::MAX_WORKERS_LIMIT
        )));
    }
    if c.worker_memory == 0 {
        return Err(ConfigError::Invalid("worker_memory must not be 0".into()));
    }
    if c.crash_loop == 0 {
        return Err(ConfigError::Invalid("crash_loop must be at least 1".into()));
    }
    if c.backlog == 0 || c.backlog > i32::MAX as u32 {
        return Err(ConfigError::Invalid(
            "backlog must be between 1 and 2147483647".into(),
        ));
    }
    if c.listen.len() > crate::vocab::MAX_LISTENERS {
        return Err(ConfigError::Invalid(format!(
            "at most {} --listen sockets are supported",
            crate::vocab::MAX_LISTENERS
        )));
    }
    if c.probe.is_none() && !c.dry_run && c.command.is_empty() {
        return Err(ConfigError::Invalid(
            "no command to run: give one after the options (init [OPTIONS] -- COMMAND [ARG]...) or as `command` in the config file".into(),
        ));
    }
    Ok(())
}

/// Pre-start steps in the order they will run: on the command line, the
/// order the options were given in; otherwise `steps` from the file, or the
/// waits, then the commands, then the directory.
fn resolve_steps(
    cli: &Cli,
    matches: &ArgMatches,
    layers: &Layers<'_>,
    wait_timeout: Duration,
    prestart_timeout: Duration,
) -> Result<Vec<StepConfig>, ConfigError> {
    let from_cli = |id: &str| matches!(layers.source(id), Some(ValueSource::CommandLine));
    let any_cli = from_cli("wait_for") || from_cli("prestart") || from_cli("prestart_dir");
    let run = |s: &str| {
        split_command(s).map(|argv| StepConfig::Run {
            argv,
            timeout: prestart_timeout,
        })
    };
    let wait = |s: &str| -> Result<StepConfig, String> {
        crate::vocab::WaitTarget::parse(s)?;
        Ok(StepConfig::WaitFor {
            url: s.to_string(),
            timeout: wait_timeout,
        })
    };
    if any_cli {
        let mut indexed: Vec<(usize, StepConfig)> = Vec::new();
        for (id, build) in [
            (
                "wait_for",
                &wait as &dyn Fn(&str) -> Result<StepConfig, String>,
            ),
            ("prestart", &run),
        ] {
            if from_cli(id) {
                let vals = matches.get_many::<String>(id).into_iter().flatten();
                let idx = matches.indices_of(id).into_iter().flatten();
                for (v, i) in vals.zip(idx) {
                    let step = build(v).map_err(|message| ConfigError::Value {
                        origin: format!("--{}", id.replace('_', "-")),
                        message,
                    })?;
                    indexed.push((i, step));
                }
            }
        }
        if from_cli("prestart_dir") {
            let i = matches.index_of("prestart_dir").unwrap_or(usize::MAX);
            indexed.push((
                i,
                StepConfig::Dir {
                    path: PathBuf::from(cli.prestart_dir.clone().unwrap_or_default()),
                    timeout: prestart_timeout,
                },
            ));
        }
        indexed.sort_by_key(|(i, _)| *i);
        return Ok(indexed.into_iter().map(|(_, s)| s).collect());
    }
    // The environment beats the file: any step variable replaces the
    // file's `steps` list.
    let from_env = |id: &str| matches!(layers.source(id), Some(ValueSource::EnvVariable));
    let any_env = from_env("wait_for") || from_env("prestart") || from_env("prestart_dir");
    if !any_env {
        if let Some(loc) = layers.file.and_then(|f| f.get("steps")) {
            return file_steps(&loc, wait_timeout, prestart_timeout);
        }
    }
    let mut steps = layers.list("wait_for", &cli.wait_for, ',', wait)?;
    steps.extend(layers.list("prestart", &cli.prestart, ';', run)?);
    if let Some(dir) = layers.scalar("prestart_dir", &cli.prestart_dir, |s| Ok(s.to_string()))? {
        steps.push(StepConfig::Dir {
            path: PathBuf::from(dir),
            timeout: prestart_timeout,
        });
    }
    Ok(steps)
}

/// `steps = [ { wait_for = "tcp://db:5432", timeout = "30s" },
///            { run = "alembic upgrade head" }, { dir = "/docker-entrypoint.d" } ]`
fn file_steps(
    loc: &file::Located<'_>,
    wait_timeout: Duration,
    prestart_timeout: Duration,
) -> Result<Vec<StepConfig>, ConfigError> {
    let toml::Value::Array(items) = loc.value else {
        return Err(loc.error("expected a list of steps, like [{ wait_for = \"tcp://db:5432\" }, { run = \"alembic upgrade head\" }]"));
    };
    let mut steps = Vec::new();
    for (n, item) in items.iter().enumerate() {
        let n = n + 1;
        let toml::Value::Table(t) = item else {
            return Err(loc.error(format!("step {n}: expected a table")));
        };
        for k in t.keys() {
            if !["wait_for", "run", "dir", "timeout"].contains(&k.as_str()) {
                return Err(loc.error(format!(
                    "step {n}: unknown key `{k}` (use wait_for, run or dir, and timeout)"
                )));
            }
        }
        let timeout = match t.get("timeout") {
            None => None,
            Some(toml::Value::String(s)) => {
                Some(values::parse_duration(s).map_err(|m| loc.error(format!("step {n}: {m}")))?)
            }
            Some(toml::Value::Integer(i)) if *i >= 0 => Some(Duration::from_secs(*i as u64)),
            Some(_) => return Err(loc.error(format!("step {n}: timeout must be a duration"))),
        };
        let kinds: Vec<&str> = ["wait_for", "run", "dir"]
            .into_iter()
            .filter(|k| t.contains_key(*k))
            .collect();
        if kinds.len() != 1 {
            return Err(loc.error(format!(
                "step {n}: give exactly one of wait_for, run or dir"
            )));
        }
        let step = match (kinds[0], &t[kinds[0]]) {
            ("wait_for", toml::Value::String(url)) => {
                crate::vocab::WaitTarget::parse(url)
                    .map_err(|m| loc.error(format!("step {n}: {m}")))?;
                StepConfig::WaitFor {
                    url: url.clone(),
                    timeout: timeout.unwrap_or(wait_timeout),
                }
            }
            ("run", toml::Value::String(cmd)) => StepConfig::Run {
                argv: split_command(cmd).map_err(|m| loc.error(format!("step {n}: {m}")))?,
                timeout: timeout.unwrap_or(prestart_timeout),
            },
            ("run", toml::Value::Array(words)) => {
                let argv: Option<Vec<String>> =
                    words.iter().map(|w| w.as_str().map(String::from)).collect();
                match argv {
                    Some(a) if !a.is_empty() => StepConfig::Run {
                        argv: a,
                        timeout: timeout.unwrap_or(prestart_timeout),
                    },
                    _ => {
                        return Err(loc.error(format!(
                            "step {n}: run must be a string or a non-empty list of strings"
                        )))
                    }
                }
            }
            ("dir", toml::Value::String(d)) => StepConfig::Dir {
                path: PathBuf::from(d),
                timeout: timeout.unwrap_or(prestart_timeout),
            },
            (k, _) => return Err(loc.error(format!("step {n}: {k} must be a string"))),
        };
        steps.push(step);
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::Write;

    struct FakeEnv(HashMap<&'static str, &'static str>);
    impl Env for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|s| s.to_string())
        }
    }

    /// Parses args with the process environment cleared of CINIT_* (clap
    /// reads the real environment; tests must not depend on it).
    fn resolve_args(
        args: &[&str],
        env: &[(&'static str, &'static str)],
    ) -> Result<Config, ConfigError> {
        let (cli, m) = Cli::parse_from_args(args.iter().copied()).expect("clap");
        resolve(&cli, &m, &FakeEnv(env.iter().copied().collect()))
    }

    fn write_file(text: &str) -> tempfile_lite::TempFile {
        let f = tempfile_lite::TempFile::new("toml");
        std::fs::File::create(&f.path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        f
    }

    mod tempfile_lite {
        pub struct TempFile {
            pub path: std::path::PathBuf,
        }
        impl TempFile {
            pub fn new(ext: &str) -> TempFile {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let path = std::env::temp_dir().join(format!(
                    "cinit-test-{}-{}.{ext}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                TempFile { path }
            }
        }
        impl Drop for TempFile {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }

    #[test]
    fn defaults_apply() {
        let c = resolve_args(&["init", "--", "true"], &[]).unwrap();
        assert_eq!(c.workers, None);
        assert_eq!(c.graceful_timeout, defaults::GRACEFUL_TIMEOUT);
        assert_eq!(c.backlog, 2048);
        assert_eq!(c.command, vec![OsString::from("true")]);
    }

    #[test]
    fn command_words_after_the_first_belong_to_it() {
        let c = resolve_args(&["init", "uvicorn", "app:app", "--port", "80"], &[]).unwrap();
        assert_eq!(
            c.command,
            ["uvicorn", "app:app", "--port", "80"].map(OsString::from)
        );
        assert!(c.listen.is_empty());
    }

    #[test]
    fn cli_beats_file_and_file_beats_default() {
        let f = write_file("graceful_timeout = \"20s\"\nbacklog = 100\nworkers = 3\n");
        let p = f.path.to_str().unwrap();
        let c = resolve_args(
            &["init", "--config", p, "--graceful-timeout", "5s", "x"],
            &[],
        )
        .unwrap();
        assert_eq!(c.graceful_timeout, Duration::from_secs(5));
        assert_eq!(c.backlog, 100);
        assert_eq!(c.workers, Some(Workers::Fixed(3)));
        assert_eq!(c.shutdown_delay, defaults::SHUTDOWN_DELAY);
    }

    #[test]
    fn web_concurrency_is_a_fallback() {
        let c = resolve_args(&["init", "x"], &[("WEB_CONCURRENCY", "3")]).unwrap();
        assert_eq!(c.workers, Some(Workers::Fixed(3)));
        assert_eq!(
            c.workers_origin.as_deref(),
            Some("environment variable WEB_CONCURRENCY")
        );
        let c = resolve_args(
            &["init", "--workers", "2", "x"],
            &[("WEB_CONCURRENCY", "3")],
        )
        .unwrap();
        assert_eq!(c.workers, Some(Workers::Fixed(2)));
        let err = resolve_args(&["init", "x"], &[("WEB_CONCURRENCY", "lots")]).unwrap_err();
        assert!(err.to_string().contains("WEB_CONCURRENCY"), "{err}");
    }

    #[test]
    fn file_errors_name_line_column_and_key() {
        let f = write_file("workers = 2\n\ngraceful_timeout = \"ten seconds\"\n");
        let p = f.path.to_str().unwrap();
        let err = resolve_args(&["init", "--config", p, "x"], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains(":3:20: key `graceful_timeout`"), "{err}");
        assert!(err.contains("not a duration"), "{err}");

        let f = write_file("workers = 2\n  colour = \"red\"\n");
        let p = f.path.to_str().unwrap();
        let err = resolve_args(&["init", "--config", p, "x"], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains(":2:3: key `colour`: unknown key"), "{err}");

        let f = write_file("workers = [1, 2\n");
        let p = f.path.to_str().unwrap();
        let err = resolve_args(&["init", "--config", p, "x"], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("{p}:1:")), "{err}");

        let f = write_file("listen = 8000\n");
        let p = f.path.to_str().unwrap();
        let err = resolve_args(&["init", "--config", p, "x"], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(":1:10: key `listen`: expected a string or a list"),
            "{err}"
        );
    }

    #[test]
    fn cli_errors_name_the_option() {
        let err = resolve_args(&["init", "--stop-signal", "TERMINATE", "x"], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--stop-signal"), "{err}");
        assert!(err.contains("TERMINATE"), "{err}");
    }

    #[test]
    fn steps_keep_command_line_order() {
        let c = resolve_args(
            &[
                "init",
                "--prestart",
                "echo 'first step'",
                "--wait-for",
                "tcp://127.0.0.1:5432",
                "--prestart",
                "second",
                "x",
            ],
            &[],
        )
        .unwrap();
        assert!(
            matches!(&c.steps[0], StepConfig::Run { argv, .. } if argv == &["echo", "first step"])
        );
        assert!(
            matches!(&c.steps[1], StepConfig::WaitFor { url, .. } if url == "tcp://127.0.0.1:5432")
        );
        assert!(matches!(&c.steps[2], StepConfig::Run { argv, .. } if argv == &["second"]));
    }

    #[test]
    fn steps_from_file_in_order() {
        let f = write_file(
            "command = [\"app\"]\nsteps = [\n { wait_for = \"tcp://db:5432\", timeout = \"5s\" },\n { run = \"psql -f m.sql\" },\n { dir = \"/d\" },\n]\n",
        );
        let p = f.path.to_str().unwrap();
        let c = resolve_args(&["init", "--config", p], &[]).unwrap();
        assert_eq!(c.command, vec![OsString::from("app")]);
        assert_eq!(
            c.steps[0],
            StepConfig::WaitFor {
                url: "tcp://db:5432".into(),
                timeout: Duration::from_secs(5)
            }
        );
        assert!(
            matches!(&c.steps[1], StepConfig::Run { argv, .. } if argv == &["psql", "-f", "m.sql"])
        );
        assert!(matches!(&c.steps[2], StepConfig::Dir { .. }));
    }

    #[test]
    fn split_command_quotes() {
        assert_eq!(
            split_command("a 'b c' \"d \\\"e\"").unwrap(),
            ["a", "b c", "d \"e"]
        );
        assert_eq!(split_command("a\\ b").unwrap(), ["a b"]);
        assert!(split_command("'open").is_err());
        assert!(split_command("   ").is_err());
    }

    #[test]
    fn no_command_is_an_error_but_dry_run_is_fine() {
        assert!(resolve_args(&["init"], &[]).is_err());
        assert!(resolve_args(&["init", "--dry-run"], &[]).is_ok());
    }
}
