//! Settings merged from four layers: command line > environment > file >
//! default, each parsed once into a typed value.
//!
//! Every setting is one entry of the table in `options`; `cli` builds the
//! command line from it, `layers` reads each setting's values from the
//! three places with their origins, `file` reads the TOML file, `steps`
//! resolves the pre-start steps. A value that does not parse is an error
//! that names where it came from: the option, the environment variable,
//! or the file with line, column and key. Nothing runs until every
//! setting has parsed and the whole has been checked (`validate`).

pub mod cli;
pub mod file;
pub mod layers;
pub mod options;
pub mod procfile;
pub mod programs;
pub mod steps;
mod words;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;
use toml::de::DeValue;

use crate::users;
use crate::vocab::{
    Amount, ControlSocket, Identity, ListenAddr, LogFormat, ReadyMode, Request, RestartPolicy,
    Signal, SignalRule, SocketPerms, UserSpec, WaitTarget, Workers,
};
pub use cli::{parse as parse_args, Args, Usage};
use layers::Layers;
pub use layers::{Env, ProcessEnv};
use options::{Kind, SETTINGS};
pub use steps::Step;
pub use words::split_command;

/// The default file, read when it exists and no other is named.
pub const DEFAULT_FILE: &str = "/etc/cinit.toml";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("failed to read {what} {}: {reason}", path.display())]
    ReadFile {
        /// "config file" or "Procfile".
        what: &'static str,
        path: PathBuf,
        reason: String,
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

impl ConfigError {
    /// The error with long quoted values cut (see `words::shorten`).
    fn shortened(self) -> ConfigError {
        match self {
            ConfigError::Value { origin, message } => ConfigError::Value {
                origin,
                message: words::shorten(message),
            },
            other => other,
        }
    }
}

/// Every setting, typed and merged. The fields with a default in the table
/// hold it when no layer sets them.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Several programs (a Procfile, `[programs.NAME]` tables); empty for
    /// the single command.
    pub programs: Vec<programs::ProgramConfig>,
    pub procfile: Option<PathBuf>,
    /// Prefix the children's lines; `None`: on with several programs.
    pub log_prefix: Option<bool>,
    pub file: Option<PathBuf>,
    pub dry_run: bool,
    pub json: bool,
    pub probe: Option<WaitTarget>,
    /// A request to the running init (`--status`, `--reload`, `--scale`,
    /// `--stop`, `--probe ready`): this run is its client.
    pub request: Option<Request>,
    /// `--program NAME`: the program a `--reload` or `--scale` is about.
    pub program: Option<String>,
    pub control: ControlSocket,
    /// `--metrics`: None when off.
    pub metrics: Option<ListenAddr>,
    /// None means plain mode.
    pub workers: Option<Workers>,
    pub cpus: Option<f64>,
    pub memory: Option<u64>,
    pub workers_per_cpu: f64,
    pub extra_workers: f64,
    pub worker_memory: u64,
    pub memory_reserve: u64,
    pub min_workers: u32,
    pub max_workers: u32,
    pub listen: Vec<ListenAddr>,
    pub backlog: u32,
    pub socket_mode: Option<u32>,
    pub socket_owner: Option<UserSpec>,
    pub wait_timeout: Duration,
    pub prestart_timeout: Duration,
    pub steps: Vec<Step>,
    pub user: Option<UserSpec>,
    pub prestart_user: Option<UserSpec>,
    pub no_new_privs: bool,
    /// `user`, `prestart_user` and `socket_owner` resolved against
    /// /etc/passwd and /etc/group once, before anything runs (`users`).
    pub identities: Identities,
    pub restart: Option<RestartPolicy>,
    pub min_uptime: Duration,
    pub backoff_max: Duration,
    pub crash_loop: u32,
    pub ready: ReadyMode,
    pub ready_timeout: Duration,
    /// None: no watchdog.
    pub watchdog: Option<Duration>,
    pub max_worker_memory: Option<u64>,
    pub max_worker_age: Option<Duration>,
    /// Percent.
    pub max_worker_age_jitter: f64,
    pub memory_high: Option<Amount>,
    pub memory_interval: Duration,
    pub stop_signal: Option<Signal>,
    pub graceful_timeout: Duration,
    pub shutdown_delay: Duration,
    pub signal_map: Vec<SignalRule>,
    pub log_format: LogFormat,
    pub root: PathBuf,
    pub command: Vec<OsString>,
    /// Where each setting that some layer set came from, in words
    /// (`--workers`, `environment variable WEB_CONCURRENCY`, ``key
    /// `workers` in /etc/cinit.toml``), by TOML key.
    pub origins: BTreeMap<&'static str, String>,
    /// What was accepted but deserves a word (unknown `CINIT_` variables).
    pub warnings: Vec<String>,
}

/// Who the children run as and who owns the unix sockets, resolved.
#[derive(Clone, Debug, Default)]
pub struct Identities {
    /// The workers (and the plain child); `None`: the init's own user.
    pub workers: Option<Identity>,
    /// The pre-start commands: `--prestart-user`, else `--user`.
    pub prestart: Option<Identity>,
    /// The unix `--listen` sockets' mode and owner.
    pub socket: SocketPerms,
}

impl Config {
    /// Every setting at its default.
    pub fn defaults() -> Config {
        let mut c = Config::default();
        for s in SETTINGS {
            if let (options::Default::Value(v), Kind::Scalar(apply) | Kind::Switch(apply)) =
                (s.default, s.kind)
            {
                // Every default parses (a test of the table checks it).
                let _ = apply(&mut c, v);
            }
        }
        c
    }

    /// Where a setting came from, when a layer set it.
    pub fn origin(&self, key: &str) -> Option<&str> {
        self.origins.get(key).map(String::as_str)
    }
}

/// Merges the layers into one `Config`: the command line `args`, the
/// environment `env`, the file they name (or the default file).
pub fn resolve(args: &Args, env: &dyn Env) -> Result<Config, ConfigError> {
    let path = config_path(args, env)?;
    let text = path
        .as_deref()
        .map(|p| file::read(p, "config file"))
        .transpose()?;
    let file = match (&path, &text) {
        (Some(p), Some(t)) => Some(file::File::parse(p, t)?),
        _ => None,
    };
    resolve_with(args, env, file.as_ref())
}

/// The file named by `--config` or `CINIT_CONFIG`, else the default file
/// when it exists.
fn config_path(args: &Args, env: &dyn Env) -> Result<Option<PathBuf>, ConfigError> {
    let layers = Layers {
        args,
        env,
        file: None,
    };
    let named = SETTINGS
        .iter()
        .find(|s| matches!(s.kind, Kind::ConfigFile))
        .map(|s| layers.items(s))
        .transpose()?
        .flatten()
        .and_then(|items| items.into_iter().next());
    match named {
        Some(item) if item.text.is_empty() => Err(layers.error(&item.origin, "the path is empty")),
        Some(item) => Ok(Some(PathBuf::from(item.text))),
        None => Ok(env.default_file()),
    }
}

/// `resolve` with the file already parsed (or none): for the fuzz targets
/// and the tests.
pub fn resolve_with(
    args: &Args,
    env: &dyn Env,
    file: Option<&file::File<'_>>,
) -> Result<Config, ConfigError> {
    let layers = Layers { args, env, file };
    let mut c = Config::defaults();
    c.file = file.map(|f| f.path.clone());
    for s in SETTINGS {
        let (Kind::Scalar(apply) | Kind::Switch(apply) | Kind::List { apply, .. }) = s.kind else {
            continue;
        };
        let Some(items) = layers.items(s)? else {
            continue;
        };
        for item in &items {
            apply(&mut c, &item.text).map_err(|m| layers.error(&item.origin, m))?;
        }
        if let Some(first) = items.first() {
            c.origins.insert(s.key, layers.describe(&first.origin));
        }
    }
    // After the scalars: the steps take the default timeouts from them.
    c.steps = steps::resolve(&layers, &c)?;
    c.command = command(args, file)?;
    c.warnings = layers.unknown_env();
    let procfile_text = c
        .procfile
        .as_deref()
        .map(|p| file::read(p, "Procfile"))
        .transpose()?;
    c.programs = programs::resolve(
        &c,
        file,
        c.procfile.as_deref().zip(procfile_text.as_deref()),
    )?;
    if !c.programs.is_empty() && !c.command.is_empty() {
        return Err(ConfigError::Invalid(
            "a command and several programs (a Procfile or [programs.NAME] tables) are both given: give the command as a program".into(),
        ));
    }
    validate(&c)?;
    resolve_users(&mut c, env)?;
    for p in &mut c.programs {
        resolve_users(&mut p.config, env)?;
        p.config.warnings.clear();
    }
    Ok(c)
}

/// COMMAND from the command line, else the file's `command` (a list of
/// words, or a string split like a shell would).
fn command(args: &Args, file: Option<&file::File<'_>>) -> Result<Vec<OsString>, ConfigError> {
    let words = args.command();
    if !words.is_empty() {
        return Ok(words);
    }
    let Some((file, value)) = file.and_then(|f| f.get("command").map(|v| (f, v))) else {
        return Ok(Vec::new());
    };
    let words = match value.get_ref() {
        DeValue::String(s) => {
            split_command(s).map_err(|m| file.error(value.span(), "command", m))?
        }
        DeValue::Array(items) => items
            .iter()
            .map(|w| match w.get_ref() {
                DeValue::String(s) => Ok(s.to_string()),
                other => Err(file.error(
                    w.span(),
                    "command",
                    format!(
                        "expected a list of strings, found {} in it",
                        other.type_str()
                    ),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
        other => {
            return Err(file.error(
                value.span(),
                "command",
                format!(
                    "expected a string or a list of strings, found {}",
                    other.type_str()
                ),
            ))
        }
    };
    if words.is_empty() {
        return Err(file.error(value.span(), "command", "the command is empty"));
    }
    Ok(words.into_iter().map(OsString::from).collect())
}

/// Checks that need more than one setting.
fn validate(c: &Config) -> Result<(), ConfigError> {
    if c.min_workers > c.max_workers {
        return Err(ConfigError::Invalid(format!(
            "min_workers ({}) is larger than max_workers ({})",
            c.min_workers, c.max_workers
        )));
    }
    check_signal_rules(c)?;
    if let (Some(r), Some(_)) = (c.request, &c.probe) {
        return Err(ConfigError::Invalid(format!(
            "{} cannot be combined with --probe URL",
            r.option()
        )));
    }
    if c.program.is_some() && !matches!(c.request, Some(Request::Reload | Request::Scale(_))) {
        return Err(ConfigError::Invalid(
            "--program names the program a --reload or --scale is about: give one of them".into(),
        ));
    }
    if c.request.is_some() && c.control == ControlSocket::Off {
        return Err(ConfigError::Invalid(
            "--control none: there is no control socket to ask".into(),
        ));
    }
    if c.probe.is_none() && c.request.is_none() && c.command.is_empty() && c.programs.is_empty() {
        return Err(ConfigError::Invalid(
            "no command to run: give one after the options (init [OPTIONS] -- COMMAND [ARG]...) or as `command` in the config file".into(),
        ));
    }
    Ok(())
}

/// Resolves `--user`, `--prestart-user` and `--socket-owner` against
/// /etc/passwd and /etc/group, read here and only when one is given.
///
/// This is configuration time, not plan time or spawn time, on purpose:
/// an unknown user is a bad value like any other, reported with where it
/// came from (exit 2, the dry run included) before anything runs; and the
/// identity is fixed once for the init's life, so a worker restarted a
/// week later runs as the same uid, gid and groups even if /etc/passwd
/// was edited or became unreadable since (the child between fork and exec
/// could not read a file anyway).
fn resolve_users(c: &mut Config, env: &dyn Env) -> Result<(), ConfigError> {
    let has_unix = c
        .listen
        .iter()
        .any(|a| matches!(a, ListenAddr::Unix { .. }));
    if (c.socket_mode.is_some() || c.socket_owner.is_some()) && !has_unix {
        c.warnings.push(
            "--socket-mode and --socket-owner apply to unix --listen sockets, and none is given"
                .into(),
        );
    }
    c.identities.socket.mode = c.socket_mode;
    if c.user.is_none() && c.prestart_user.is_none() && c.socket_owner.is_none() {
        return Ok(());
    }
    let origin = |c: &Config, key: &str| c.origin(key).unwrap_or(key).to_string();
    let value_error = |origin: String, message: String| ConfigError::Value { origin, message };
    let accounts = env.accounts().map_err(|m| {
        let key = ["user", "prestart_user", "socket_owner"]
            .into_iter()
            .find(|k| c.origin(k).is_some())
            .unwrap_or("user");
        value_error(origin(c, key), m)
    })?;
    let init = env.credentials();
    let resolve = |c: &mut Config, key: &str, spec: &UserSpec| {
        users::resolve(spec, &accounts, init)
            .map(|r| {
                c.warnings.extend(r.warnings);
                r.identity
            })
            .map_err(|m| value_error(origin(c, key), m))
    };
    if let Some(spec) = c.user.clone() {
        c.identities.workers = Some(resolve(c, "user", &spec)?);
    }
    c.identities.prestart = match c.prestart_user.clone() {
        Some(spec) => Some(resolve(c, "prestart_user", &spec)?),
        None => c.identities.workers.clone(),
    };
    if let Some(spec) = &c.socket_owner {
        let (uid, gid) = users::resolve_owner(spec, &accounts, init)
            .map_err(|m| value_error(origin(c, "socket_owner"), m))?;
        c.identities.socket.uid = uid;
        c.identities.socket.gid = gid;
    }
    Ok(())
}

/// A `--signal-map` rule must be able to apply:
/// * FROM must reach the init and be forwardable: not KILL or STOP (never
///   received), not CHLD (the init's own), not a fault signal (never
///   forwarded), not a signal the C library reserves;
/// * a shutdown signal (TERM, INT, QUIT) mapped to 0 is ignored by the
///   init; mapped to another signal, it is rewritten on its way to the
///   child, which only plain mode without `--stop-signal` does (elsewhere
///   the init itself sends the stop signal).
fn check_signal_rules(c: &Config) -> Result<(), ConfigError> {
    let origin = || c.origin("signal_map").unwrap_or("--signal-map").to_string();
    let rule = |r: &SignalRule| {
        format!(
            "{}:{}",
            r.from.name(),
            r.to.map_or_else(|| "0".to_string(), |t| t.name())
        )
    };
    for r in &c.signal_map {
        let from = r.from;
        let why = if from == Signal::KILL || from == Signal::STOP {
            Some(format!(
                "{from} cannot be caught: the init never receives it"
            ))
        } else if from == Signal::CHLD {
            Some(format!(
                "{from} tells the init that a child changed state; it is never forwarded"
            ))
        } else if from.is_fault() {
            Some(format!(
                "{from} is a fault signal, meant for the faulting process; it is never forwarded"
            ))
        } else if !Signal::catchable().any(|s| s == from) {
            Some(format!("{from} is reserved by the C library"))
        } else {
            None
        };
        if let Some(why) = why {
            return Err(ConfigError::Value {
                origin: origin(),
                message: format!("{}: {why}", rule(r)),
            });
        }
        let shutdown = [Signal::TERM, Signal::INT, Signal::QUIT].contains(&from);
        if let (true, Some(to)) = (shutdown, r.to) {
            let why = match (c.workers, c.stop_signal) {
                (Some(_), _) => "in worker mode the init stops the workers itself",
                (None, Some(_)) => "with --stop-signal the init sends that signal itself",
                (None, None) => continue,
            };
            return Err(ConfigError::Value {
                origin: origin(),
                message: format!(
                    "{}: {from} starts the shutdown, and {why}; to stop with {to}, use --stop-signal {} (or {}:0 to ignore {from})",
                    rule(r),
                    to.name(),
                    from.name()
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
