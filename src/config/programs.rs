//! Several programs in one container: `[programs.NAME]` tables of the
//! TOML file and the lines of a Procfile (`--procfile`), each a name, a
//! command and its own settings.
//!
//! A program starts from the global settings (the command line, the
//! environment and the file's top level) and takes what its own table
//! says on top: the keys marked "per program" in the table of settings
//! (`workers`, `listen`, `ready`, `restart`, `stop_signal`,
//! `graceful_timeout`, `user`, the memory guard, ...), parsed by the same
//! parsers, plus `command`, `after` (start once those are ready),
//! `critical` (default true: its crash loop stops the container) and
//! `memory` (what one of its workers needs, for sizing an `auto` one).
//!
//! Two settings belong to one program, not to all: the global `--listen`
//! sockets and worker count (`--workers`, `WEB_CONCURRENCY`) go to the
//! program named `web`, or the first one (Heroku's convention); every
//! other program runs one worker unless its table says otherwise.
//!
//! Refused, naming where: a program named twice, a command both in the
//! Procfile and in the table (or in neither), an `after` that names no
//! program or makes a cycle, two programs on one address, more than one
//! `auto` program, and a command on the command line together with
//! programs.

use std::ffi::OsString;
use std::path::Path;

use toml::de::DeValue;
use toml::Spanned;

use super::file::{scalar_text, File};
use super::options::{Kind, SETTINGS};
use super::procfile;
use super::{Config, ConfigError};
use crate::vocab::{parse_bool, parse_bytes, Workers};

/// One program, its settings resolved.
#[derive(Clone, Debug)]
pub struct ProgramConfig {
    pub name: String,
    pub command: Vec<OsString>,
    /// The global settings with the program's own on top.
    pub config: Config,
    /// Programs that must be ready before this one starts.
    pub after: Vec<String>,
    /// Its crash loop stops the container (exit 1); otherwise the program
    /// is left stopped and the others go on.
    pub critical: bool,
    /// What one worker of it needs, declared: subtracted from the limit
    /// when the `auto` program is sized.
    pub memory: Option<u64>,
}

/// Keys of a program table that are not settings of the table.
const OWN_KEYS: [&str; 4] = ["command", "after", "critical", "memory"];

/// The programs of the Procfile (`procfile`: its path and text) and of the
/// file's `programs` table, in that order; empty when there are none.
pub fn resolve(
    global: &Config,
    file: Option<&File<'_>>,
    procfile: Option<(&Path, &str)>,
) -> Result<Vec<ProgramConfig>, ConfigError> {
    let mut programs: Vec<ProgramConfig> = Vec::new();
    let from_procfile = |name: &str, command: Vec<OsString>| ProgramConfig {
        name: name.to_string(),
        command,
        config: program_base(global),
        after: Vec::new(),
        critical: true,
        memory: None,
    };
    if let Some((path, text)) = procfile {
        let entries = procfile::parse(text).map_err(|(line, message)| {
            ConfigError::Invalid(format!("{}:{line}: {message}", path.display()))
        })?;
        for e in entries {
            programs.push(from_procfile(
                &e.name,
                e.argv.into_iter().map(OsString::from).collect(),
            ));
        }
    }
    let from_procfile_names: Vec<String> = programs.iter().map(|p| p.name.clone()).collect();
    if let Some((file, value)) = file.and_then(|f| f.get("programs").map(|v| (f, v))) {
        let DeValue::Table(table) = value.get_ref() else {
            return Err(file.error(value.span(), "programs", "expected tables: [programs.NAME]"));
        };
        let mut entries: Vec<_> = table.iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        for (key, body) in entries {
            let name: &str = key.get_ref();
            let at = |k: &str| format!("programs.{name}.{k}");
            if !crate::vocab::valid_program_name(name) {
                return Err(file.error(
                    key.span(),
                    &at(""),
                    format!("`{name}` is not a program name (letters, digits, - and _)"),
                ));
            }
            let DeValue::Table(t) = body.get_ref() else {
                return Err(file.error(body.span(), &at(""), "expected a table of settings"));
            };
            let index = match programs.iter().position(|p| p.name == name) {
                Some(i) => i,
                None => {
                    programs.push(from_procfile(name, Vec::new()));
                    programs.len() - 1
                }
            };
            let p = &mut programs[index];
            for (k, v) in t.iter() {
                let k: &str = k.get_ref();
                apply_key(file, p, k, v, &at(k), &from_procfile_names)?;
            }
            if p.command.is_empty() {
                return Err(file.error(
                    key.span(),
                    &at("command"),
                    "the program has no command (give `command`, or a Procfile line)",
                ));
            }
        }
    }
    if programs.is_empty() {
        return Ok(programs);
    }
    assign_the_web(global, &mut programs)?;
    check(&programs)?;
    Ok(programs)
}

/// A program's settings before its own table: the global ones, without
/// the sockets and the worker count (see `assign_the_web`), one worker,
/// restarted always.
fn program_base(global: &Config) -> Config {
    let mut c = global.clone();
    c.listen.clear();
    c.workers = Some(Workers::Fixed(1));
    c.origins.remove("workers");
    c.origins.remove("listen");
    c.steps.clear();
    c.command.clear();
    c.warnings.clear();
    c
}

/// One key of a `[programs.NAME]` table.
fn apply_key(
    file: &File<'_>,
    p: &mut ProgramConfig,
    key: &str,
    value: &Spanned<DeValue<'_>>,
    at: &str,
    in_procfile: &[String],
) -> Result<(), ConfigError> {
    let bad = |m: String| file.error(value.span(), at, m);
    match key {
        "command" => {
            if in_procfile.contains(&p.name) {
                return Err(bad(
                    "the Procfile gives this program's command already".into()
                ));
            }
            p.command = match value.get_ref() {
                DeValue::String(s) => procfile::command_argv(s).map_err(bad)?,
                DeValue::Array(words) => words
                    .iter()
                    .map(|w| match w.get_ref() {
                        DeValue::String(s) => Ok(s.to_string()),
                        _ => Err(bad("expected a list of strings".into())),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                _ => return Err(bad("expected a string or a list of strings".into())),
            }
            .into_iter()
            .map(OsString::from)
            .collect();
            if p.command.is_empty() {
                return Err(bad("the command is empty".into()));
            }
        }
        "after" => {
            p.after =
                strings(value).ok_or_else(|| bad("expected a list of program names".into()))?;
        }
        "critical" => {
            let text =
                scalar_text(value.get_ref()).ok_or_else(|| bad("expected true or false".into()))?;
            p.critical = parse_bool(&text).map_err(bad)?;
        }
        "memory" => {
            let text = scalar_text(value.get_ref()).ok_or_else(|| bad("expected a size".into()))?;
            p.memory = Some(parse_bytes(&text).map_err(bad)?);
        }
        _ => {
            let Some(s) = SETTINGS
                .iter()
                .find(|s| s.key == key && s.per_program && s.toml)
            else {
                let known: Vec<&str> = SETTINGS
                    .iter()
                    .filter(|s| s.per_program && s.toml && !OWN_KEYS.contains(&s.key))
                    .map(|s| s.key)
                    .chain(OWN_KEYS)
                    .collect();
                return Err(file.error(
                    value.span(),
                    at,
                    format!(
                        "not a setting of a program (those are: {})",
                        known.join(", ")
                    ),
                ));
            };
            let (Kind::Scalar(apply) | Kind::Switch(apply) | Kind::List { apply, .. }) = s.kind
            else {
                return Err(bad("not a setting of a program".into()));
            };
            let texts: Vec<String> = match (value.get_ref(), s.kind) {
                (DeValue::Array(items), Kind::List { .. }) => items
                    .iter()
                    .map(|i| {
                        scalar_text(i.get_ref())
                            .ok_or_else(|| bad("expected a list of strings".into()))
                    })
                    .collect::<Result<_, _>>()?,
                (v, _) => vec![scalar_text(v).ok_or_else(|| {
                    bad(format!(
                        "expected a string or a number, found {}",
                        v.type_str()
                    ))
                })?],
            };
            if key == "listen" {
                p.config.listen.clear();
            }
            for t in &texts {
                apply(&mut p.config, t).map_err(bad)?;
            }
            p.config.origins.insert(s.key, format!("key `{at}`"));
        }
    }
    Ok(())
}

fn strings(value: &Spanned<DeValue<'_>>) -> Option<Vec<String>> {
    match value.get_ref() {
        DeValue::String(s) => Some(vec![s.to_string()]),
        DeValue::Array(items) => items
            .iter()
            .map(|i| match i.get_ref() {
                DeValue::String(s) => Some(s.to_string()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// The global sockets and worker count go to `web`, or the first program.
fn assign_the_web(global: &Config, programs: &mut [ProgramConfig]) -> Result<(), ConfigError> {
    let web = programs.iter().position(|p| p.name == "web").unwrap_or(0);
    let p = &mut programs[web];
    if !global.listen.is_empty() {
        if !p.config.listen.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "--listen is given both for every program and in [programs.{}]: give it once",
                p.name
            )));
        }
        p.config.listen = global.listen.clone();
    }
    if global.origins.contains_key("workers") && !p.config.origins.contains_key("workers") {
        p.config.workers = global.workers;
        if let Some(o) = global.origins.get("workers") {
            p.config.origins.insert("workers", o.clone());
        }
    }
    Ok(())
}

/// What must hold across programs.
fn check(programs: &[ProgramConfig]) -> Result<(), ConfigError> {
    let invalid = |m: String| Err(ConfigError::Invalid(m));
    for p in programs {
        for a in &p.after {
            if !programs.iter().any(|q| &q.name == a) {
                return invalid(format!(
                    "program `{}`: after = [\"{a}\"] names no program",
                    p.name
                ));
            }
        }
    }
    if let Some(cycle) = cycle(programs) {
        return invalid(format!(
            "the programs' `after` make a cycle: {}",
            cycle.join(" -> ")
        ));
    }
    for (i, p) in programs.iter().enumerate() {
        for q in &programs[i + 1..] {
            for a in &p.config.listen {
                let any_port = matches!(a, crate::vocab::ListenAddr::Tcp { port: 0, .. });
                if !any_port && q.config.listen.contains(a) {
                    return invalid(format!(
                        "programs `{}` and `{}` both listen on {a}",
                        p.name, q.name
                    ));
                }
            }
        }
    }
    let auto: Vec<&str> = programs
        .iter()
        .filter(|p| p.config.workers == Some(Workers::Auto))
        .map(|p| p.name.as_str())
        .collect();
    if auto.len() > 1 {
        return invalid(format!(
            "only one program can size itself (workers = \"auto\"): {}",
            auto.join(", ")
        ));
    }
    Ok(())
}

/// A cycle in the `after` graph, as the names along it.
fn cycle(programs: &[ProgramConfig]) -> Option<Vec<String>> {
    fn visit(
        i: usize,
        programs: &[ProgramConfig],
        path: &mut Vec<usize>,
        done: &mut Vec<bool>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|&p| p == i) {
            let mut names: Vec<String> = path[at..]
                .iter()
                .map(|&p| programs[p].name.clone())
                .collect();
            names.push(programs[i].name.clone());
            return Some(names);
        }
        if done[i] {
            return None;
        }
        path.push(i);
        for a in &programs[i].after {
            if let Some(j) = programs.iter().position(|q| &q.name == a) {
                if let Some(c) = visit(j, programs, path, done) {
                    return Some(c);
                }
            }
        }
        path.pop();
        done[i] = true;
        None
    }
    let mut done = vec![false; programs.len()];
    (0..programs.len()).find_map(|i| visit(i, programs, &mut Vec::new(), &mut done))
}
