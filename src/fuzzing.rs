//! Stable entry points for the cargo-fuzz targets (`fuzz/`): each takes raw
//! text, runs it through the same code a user's input goes through, and
//! must never panic, whatever the text. Errors are expected and dropped;
//! only a panic, an abort or a hang is a finding.
//!
//! These signatures stay put while the configuration changes underneath.

use std::path::Path;

use crate::config::{self, Env};
use crate::vocab;

/// An environment with at most one variable, so a fuzz run never depends
/// on the shell it was started from.
struct OneVar<'a>(Option<(&'a str, &'a str)>);

impl Env for OneVar<'_> {
    fn var(&self, name: &str) -> Option<String> {
        self.0
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    }
    fn names(&self) -> Vec<String> {
        self.0.iter().map(|(n, _)| n.to_string()).collect()
    }
}

/// Parses `text` as the TOML configuration file and resolves it with an
/// empty environment and no option but a command, then builds the plan
/// without reading any limit.
pub fn config_file(text: &str) {
    let Ok(file) = config::file::File::parse(Path::new("fuzz.toml"), text) else {
        return;
    };
    let Ok(args) = config::parse_args(["init", "--", "app"]) else {
        return;
    };
    if let Ok(config) = config::resolve_with(&args, &OneVar(None), Some(&file)) {
        let _ = crate::plan::Plan::build_with(&config, None);
    }
}

/// Resolves the settings with one variable `name=value` set (any name: a
/// `CINIT_` prefix is the interesting case) and a command on the command
/// line.
pub fn env_value(name: &str, value: &str) {
    let env = OneVar(Some((name, value)));
    let Ok(args) = config::parse_args(["init", "--", "app"]) else {
        return;
    };
    if let Ok(config) = config::resolve_with(&args, &env, None) {
        let _ = crate::plan::Plan::build_with(&config, None);
    }
}

/// Every parser of the shared vocabulary on the same text: durations,
/// sizes, CPU counts, numbers, booleans, signals and signal rules, the
/// worker count, the restart policy, the log format.
pub fn durations_and_sizes(text: &str) {
    if let Ok(d) = vocab::parse_duration(text) {
        let _ = vocab::format_duration(d);
        let _ = vocab::format_uptime(d);
    }
    if let Ok(b) = vocab::parse_bytes(text) {
        let _ = vocab::format_bytes(b);
    }
    if let Ok(c) = vocab::parse_cpus(text) {
        let _ = vocab::format_number(c);
    }
    let _ = vocab::parse_count(text);
    if let Ok(f) = vocab::parse_f64(text) {
        let _ = vocab::format_number(f);
    }
    let _ = vocab::parse_bool(text);
    if let Ok(s) = vocab::parse_signal(text) {
        let _ = s.to_string();
    }
    let _ = vocab::parse_signal_rule(text);
    let _ = vocab::parse_workers(text);
    let _ = vocab::parse_restart(text);
    let _ = vocab::parse_log_format(text);
    let _ = config::split_command(text);
}

/// A `--wait-for` URL: parsed, and when it parses, printed.
pub fn wait_target(text: &str) {
    if let Ok(t) = vocab::WaitTarget::parse(text) {
        let _ = t.to_string();
    }
}

/// A `--listen` address: parsed, and when it parses, printed and named.
pub fn listen_addr(text: &str) {
    if let Ok(a) = vocab::ListenAddr::parse(text) {
        let _ = a.to_string();
        let _ = a.fd_name();
    }
}

/// `--user` and `--socket-owner` SPEC resolved against `/etc/passwd` and
/// `/etc/group` texts (any bytes), for a root init and for a non-root one;
/// a resolved identity must keep what `users` promises. Panics only when
/// a promise is broken.
pub fn user_db(passwd: &[u8], group: &[u8], spec: &str) {
    use crate::users::{self, Accounts, Credentials, MAX_GROUPS};
    let db = Accounts::from_text(Some(passwd), Some(group));
    let none = Accounts::from_text(None, None);
    let inits = [
        Credentials::ROOT,
        Credentials {
            uid: 1000,
            gid: 1000,
        },
    ];
    if let Ok(spec) = vocab::parse_user(spec) {
        for (db, init) in [(&db, inits[0]), (&db, inits[1]), (&none, inits[0])] {
            let Ok(r) = users::resolve(&spec, db, init) else {
                continue;
            };
            let id = r.identity;
            assert!(id.uid <= vocab::MAX_ID && id.gid <= vocab::MAX_ID, "{id:?}");
            assert!(id.groups.len() <= MAX_GROUPS);
            let mut sorted = id.groups.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), id.groups.len(), "a group twice: {id:?}");
            if spec.group.is_some() {
                assert!(id.groups.is_empty(), "a group given leaves none: {id:?}");
            }
            assert!(!id.home.is_empty());
            assert_eq!(id.switch, init.uid == 0, "{id:?} for {init:?}");
            let _ = id.describe();
        }
    }
    if let Ok(owner) = vocab::parse_owner(spec) {
        for init in inits {
            let _ = users::resolve_owner(&owner, &db, init);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entry points take anything; a few hostile inputs as a smoke test
    /// (the fuzz targets do the real work).
    #[test]
    fn entry_points_take_anything() {
        for text in [
            "",
            "workers = 3\nlisten = [\":8000\"]\n",
            "steps = [{ run = \"true\", timeout = 9223372036854775807 }]",
            "graceful_timeout = 1e300",
            "graceful_timeout = 18446744073709551615",
            "x = [[[[",
            "\u{0}\u{ff}",
            "RTMIN+99",
            "tcp://[::1",
            "unix:",
        ] {
            config_file(text);
            env_value("CINIT_GRACEFUL_TIMEOUT", text);
            env_value("CINIT_LISTEN", text);
            durations_and_sizes(text);
            wait_target(text);
            listen_addr(text);
            user_db(text.as_bytes(), text.as_bytes(), text);
            user_db(b"app:x:1:1::/:\nroot:x:0:0::/root:", text.as_bytes(), "app");
        }
    }
}
