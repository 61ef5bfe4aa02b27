//! Stable entry points for the cargo-fuzz targets (`fuzz/`): each takes raw
//! text, runs it through the same code a user's input goes through, and
//! must never panic, whatever the text. Errors are expected and dropped;
//! only a panic, an abort or a hang is a finding.
//!
//! These signatures stay put while the configuration changes underneath.
//!
//! [`TARGETS`] names every fuzz target with what it does to the raw bytes
//! libFuzzer hands it; the files under `fuzz/fuzz_targets/` call [`run`]
//! and the test suite replays the committed corpora through the same
//! table (`tests/fuzz_corpora.rs`), so a target and its replay cannot
//! disagree about how bytes become arguments.

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

/// Where one argument ends and the next begins in a fuzz input that
/// carries several: a NUL byte, which none of the texts needs.
pub const SEPARATOR: u8 = 0;

/// Cuts `data` at the first `N - 1` NUL bytes into `N` parts; parts the
/// input does not reach are empty, and the last keeps any further NULs.
/// The one splitter of both the fuzz targets and the corpus replay.
pub fn split_input<const N: usize>(data: &[u8]) -> [&[u8]; N] {
    let mut parts = [&data[data.len()..]; N];
    for (slot, part) in parts.iter_mut().zip(data.splitn(N, |b| *b == SEPARATOR)) {
        *slot = part;
    }
    parts
}

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// What a target does with the bytes of one input.
pub type Feed = fn(&[u8]);

/// Every fuzz target: its name (the file `fuzz/fuzz_targets/NAME.rs` and
/// the corpus directory `fuzz/corpus/NAME/`) and how it feeds raw bytes to
/// its entry point. Bytes that are not UTF-8 are decoded lossily, so a
/// mutation that breaks one character still reaches the parser.
pub const TARGETS: &[(&str, Feed)] = &[
    ("config_file", |d| config_file(&text(d))),
    ("env_value", |d| {
        let [name, value] = split_input(d);
        env_value(&text(name), &text(value));
    }),
    ("durations_and_sizes", |d| durations_and_sizes(&text(d))),
    ("wait_target", |d| wait_target(&text(d))),
    ("listen_addr", |d| listen_addr(&text(d))),
    ("user_db", |d| {
        let [passwd, group, spec] = split_input(d);
        user_db(passwd, group, &text(spec));
    }),
    ("proc_self", |d| {
        let [cgroup, mountinfo] = split_input(d);
        proc_self(&text(cgroup), mountinfo);
    }),
    ("cgroup_files", |d| {
        let [first, second] = split_input(d);
        cgroup_files(&text(first), &text(second));
    }),
    ("procfile", |d| procfile(&text(d))),
    ("control_request", control_request),
];

/// Runs the target called `name` on `data`.
///
/// # Panics
///
/// When no target has that name (and, as a finding, when the entry point
/// panics).
pub fn run(name: &str, data: &[u8]) {
    let Some((_, f)) = TARGETS.iter().find(|(n, _)| *n == name) else {
        panic!("no fuzz target is called {name:?}");
    };
    f(data);
}

/// `/proc/self/cgroup` and `/proc/self/mountinfo` texts: both parsed as
/// the resource detection parses them, every cgroup path read as a
/// [`CgPath`](crate::resources::mounts::CgPath), and the cpu, memory and
/// cpuset controllers located under a root that does not exist (so no
/// file is ever read). Asserts what the parsers promise: a parsed
/// `/proc/self/cgroup` prints back to the same lines, a cgroup path
/// prints back to itself, and the visible mounts are cgroup mounts on
/// distinct mount points.
pub fn proc_self(cgroup: &str, mountinfo: &[u8]) {
    use crate::resources::locate::{self, Resolution};
    use crate::resources::mounts::{self, CgPath};

    let lines = mounts::parse_proc_cgroup(cgroup);
    // `lines()` drops a `\r` before a `\n`, so a path ending in one does
    // not survive printing; the kernel never writes such a path.
    if !lines.iter().any(|l| l.path.ends_with('\r')) {
        let printed: String = lines
            .iter()
            .map(|l| format!("{}:{}:{}\n", l.id, l.controllers.join(","), l.path))
            .collect();
        assert_eq!(mounts::parse_proc_cgroup(&printed), lines, "{printed:?}");
    }
    for l in &lines {
        let _ = (l.is_v2(), l.is_v1_controller(), l.has("cpu"));
        if let Some(p) = CgPath::parse(&l.path) {
            let again = CgPath::parse(&p.to_string());
            assert_eq!(again.as_ref(), Some(&p), "{:?} printed {p}", l.path);
            assert!(p.is_prefix_of(&p));
        }
    }

    for line in mountinfo.split(|b| *b == b'\n') {
        let _ = mounts::parse_mountinfo_line(&text(line));
    }
    let visible = mounts::visible_cgroup_mounts(mountinfo);
    for (i, m) in visible.iter().enumerate() {
        assert!(m.fstype == "cgroup" || m.fstype == "cgroup2", "{m:?}");
        assert!(
            visible[..i].iter().all(|p| p.mount_point != m.mount_point),
            "two visible mounts on {}",
            m.mount_point
        );
        let _ = CgPath::parse(&m.root);
    }

    let root = Path::new("/nonexistent/cinit-fuzz-root");
    for controller in ["cpu", "memory", "cpuset"] {
        if let Ok(l) = locate::locate(root, controller, &lines, &visible) {
            // Nothing exists under `root`, so no directory can be exact.
            assert_ne!(l.resolution, Resolution::Exact, "{l:?}");
            assert!(l.levels.len() <= 1, "{l:?}");
        }
    }
}

/// The values inside cgroup and proc files: `cpu.max`, the v1 CFS pair
/// (`first` the quota, `second` the period, and `first` alone with no
/// period file), memory limits with and without a MemTotal, CPU lists,
/// `memory.stat` keys and `/proc/meminfo`. A CPU figure that parses is a
/// positive, finite number; a memory value is classified consistently.
pub fn cgroup_files(first: &str, second: &str) {
    use crate::resources::limits::{self, MemValue};

    for t in [first, second] {
        if let Ok(Some(cpus)) = limits::parse_cpu_max(t) {
            assert!(cpus.is_finite() && cpus > 0.0, "{t:?} gave {cpus}");
        }
        for total in [None, Some(512 << 20), Some(0)] {
            match limits::parse_memory(t, total) {
                Ok(MemValue::AboveTotal(v)) => assert!(total.is_some_and(|m| v >= m)),
                Ok(MemValue::Limit(v)) => assert!(total.is_none_or(|m| v < m)),
                _ => {}
            }
        }
        let _ = limits::count_cpu_list(t);
        let _ = limits::stat_value(t, "hierarchical_memory_limit");
        let _ = limits::meminfo_total(t);
    }
    for period in [Some(second), None] {
        if let Ok(Some(cpus)) = limits::parse_cfs(first, period) {
            assert!(
                cpus.is_finite() && cpus > 0.0,
                "{first:?}/{period:?} gave {cpus}"
            );
        }
    }
    let _ = limits::stat_value(second, first);
}

/// A Procfile: parsed, and each command line also split on its own. A
/// parsed Procfile names each program once, with a valid name, a command
/// to run and its line number.
pub fn procfile(text: &str) {
    use crate::config::procfile;

    if let Ok(entries) = procfile::parse(text) {
        assert!(!entries.is_empty());
        for (i, e) in entries.iter().enumerate() {
            assert!(vocab::valid_program_name(&e.name), "{e:?}");
            assert!(entries[..i].iter().all(|p| p.name != e.name), "{e:?} twice");
            assert!(!e.argv.is_empty(), "{e:?}");
            assert!(i == 0 || entries[i - 1].line < e.line, "{entries:?}");
        }
    }
    for line in text.lines() {
        if let Some((_, command)) = line.split_once(':') {
            let _ = procfile::command_argv(command.trim());
        }
    }
}

/// One control-socket request line (what a client may write, any bytes):
/// a request that parses is printed the way the client prints it and
/// parses again to the same request.
pub fn control_request(line: &[u8]) {
    use crate::control::protocol;

    if let Ok(ask) = protocol::parse_request(line) {
        let printed = protocol::request_line(&ask);
        assert!(printed.len() <= protocol::MAX_REQUEST, "{printed}");
        let again = protocol::parse_request(printed.trim_end_matches('\n').as_bytes());
        assert_eq!(again.as_ref(), Ok(&ask), "{printed}");
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
            proc_self(text, text.as_bytes());
            cgroup_files(text, text);
            procfile(text);
            control_request(text.as_bytes());
        }
        proc_self(
            "0::/../a/b\n1:cpu,cpuacct:/docker/x\n",
            b"30 1 0:26 /.. /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n\
              31 1 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu,cpuacct\n",
        );
        cgroup_files("150000 100000", "100000");
        cgroup_files("-1", "");
        procfile("web: uvicorn app:app\nworker: python3 -m w && echo\n");
        control_request(br#"{"version":1,"command":"scale","by":-2,"program":"web"}"#);
        control_request(br#"{"command":"status","format":"text"}"#);
    }

    #[test]
    fn inputs_split_at_nul_bytes() {
        assert_eq!(split_input::<2>(b"a\0b\0c"), [&b"a"[..], b"b\0c"]);
        assert_eq!(split_input::<3>(b"a"), [&b"a"[..], b"", b""]);
        assert_eq!(split_input::<2>(b""), [&b""[..], b""]);
        assert_eq!(split_input::<1>(b"a\0b"), [&b"a\0b"[..]]);
    }

    #[test]
    fn every_target_runs_by_name() {
        for (name, _) in TARGETS {
            run(name, b"");
            run(name, b"x\0y\0z");
        }
        assert!(std::panic::catch_unwind(|| run("nothing", b"")).is_err());
    }

    /// The committed corpora (`fuzz/corpus/TARGET/`), replayed through
    /// the same entry points the fuzzers drove, without cargo-fuzz: each
    /// input libFuzzer kept for the coverage it reached runs again in
    /// every test run.
    mod corpora {
        use std::path::{Path, PathBuf};

        use super::super::{run, TARGETS};

        fn fuzz_dir() -> PathBuf {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
        }

        fn replay(target: &str) {
            let dir = fuzz_dir().join("corpus").join(target);
            let entries =
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            let mut n = 0;
            for entry in entries {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                if std::panic::catch_unwind(|| run(target, &data)).is_err() {
                    panic!(
                        "{} panics; reproduce with `cargo +nightly fuzz run {target} {}`",
                        path.display(),
                        path.display()
                    );
                }
                n += 1;
            }
            assert!(
                n >= 10,
                "{}: {n} inputs, the corpus is missing",
                dir.display()
            );
        }

        macro_rules! replay {
            ($($target:ident)*) => {
                $(
                    #[test]
                    fn $target() {
                        replay(stringify!($target));
                    }
                )*

                /// Every target has a replay above, a fuzz target file and a
                /// corpus, and every corpus belongs to a target.
                #[test]
                fn every_target_is_fuzzed_and_replayed() {
                    let replayed = [$(stringify!($target)),*];
                    let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
                    assert_eq!(replayed.as_slice(), names.as_slice());
                    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
                    for name in &names {
                        let file = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
                        let text = std::fs::read_to_string(&file).unwrap();
                        assert!(text.contains(&format!("run(\"{name}\", data)")), "{}", file.display());
                        assert!(manifest.contains(&format!("name = \"{name}\"")), "{name}");
                    }
                    for entry in std::fs::read_dir(fuzz_dir().join("corpus")).unwrap() {
                        let name = entry.unwrap().file_name();
                        assert!(names.iter().any(|n| *n == name), "{name:?} is no target");
                    }
                }
            };
        }

        replay! {
            config_file env_value durations_and_sizes wait_target listen_addr user_db
            proc_self cgroup_files procfile control_request
        }
    }
}
