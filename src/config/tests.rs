//! The layers, each setting's origin in errors, and the checks across
//! settings. Hermetic: the environment is a `FakeEnv`, never the
//! developer's shell, and no default file is read.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::*;

struct FakeEnv(Vec<(&'static str, &'static str)>);

impl Env for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
    fn names(&self) -> Vec<String> {
        self.0.iter().map(|(k, _)| k.to_string()).collect()
    }
}

fn resolve_args(
    args: &[&str],
    env: &[(&'static str, &'static str)],
) -> Result<Config, ConfigError> {
    let a = parse_args(args.iter().copied()).expect("arguments");
    resolve(&a, &FakeEnv(env.to_vec()))
}

fn err(args: &[&str], env: &[(&'static str, &'static str)]) -> String {
    match resolve_args(args, env) {
        Ok(c) => panic!("{args:?} {env:?} resolved: {c:?}"),
        Err(e) => e.to_string(),
    }
}

/// A temporary file, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(text: &str) -> TempFile {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "cinit-test-{}-{}.toml",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        TempFile(path)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The error for a file holding `text`, with the file's path cut off.
fn file_err(text: &str) -> String {
    let f = TempFile::new(text);
    err(&["init", "--config", f.path(), "x"], &[])
        .strip_prefix(f.path())
        .map(String::from)
        .unwrap_or_else(|| panic!("the error does not start with the path"))
}

fn from_file(text: &str) -> Config {
    let f = TempFile::new(text);
    resolve_args(&["init", "--config", f.path(), "x"], &[]).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn defaults_apply() {
    let c = resolve_args(&["init", "--", "true"], &[]).unwrap();
    assert_eq!(c.workers, None);
    assert_eq!(c.graceful_timeout, Duration::from_secs(8));
    assert_eq!(c.backlog, 2048);
    assert_eq!(c.worker_memory, 256 << 20);
    assert_eq!(c.root, Path::new("/"));
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.command, vec![OsString::from("true")]);
    assert!(c.origins.is_empty() && c.warnings.is_empty());
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
fn cli_beats_env_beats_file_beats_default() {
    let f =
        TempFile::new("graceful_timeout = \"20s\"\nbacklog = 100\nworkers = 3\nmin_uptime = 7\n");
    let args = [
        "init",
        "--config",
        f.path(),
        "--graceful-timeout",
        "5s",
        "x",
    ];
    let c = resolve_args(
        &args,
        &[("CINIT_BACKLOG", "200"), ("CINIT_GRACEFUL_TIMEOUT", "9s")],
    )
    .unwrap();
    assert_eq!(c.graceful_timeout, Duration::from_secs(5));
    assert_eq!(c.backlog, 200);
    assert_eq!(c.workers, Some(Workers::Fixed(3)));
    assert_eq!(c.min_uptime, Duration::from_secs(7));
    assert_eq!(c.shutdown_delay, Duration::ZERO);
    assert_eq!(c.origin("graceful_timeout"), Some("--graceful-timeout"));
    assert_eq!(
        c.origin("backlog"),
        Some("environment variable CINIT_BACKLOG")
    );
    assert_eq!(
        c.origin("workers"),
        Some(format!("key `workers` in {}", f.path()).as_str())
    );
}

#[test]
fn empty_variables_count_as_unset() {
    let c = resolve_args(
        &["init", "x"],
        &[("CINIT_WORKERS", " "), ("CINIT_LISTEN", "")],
    )
    .unwrap();
    assert_eq!(c.workers, None);
    assert!(c.listen.is_empty());
}

#[test]
fn web_concurrency_is_a_fallback() {
    let c = resolve_args(&["init", "x"], &[("WEB_CONCURRENCY", "3")]).unwrap();
    assert_eq!(c.workers, Some(Workers::Fixed(3)));
    assert_eq!(
        c.origin("workers"),
        Some("environment variable WEB_CONCURRENCY")
    );
    let env = [("WEB_CONCURRENCY", "3"), ("CINIT_WORKERS", "4")];
    assert_eq!(
        resolve_args(&["init", "x"], &env).unwrap().workers,
        Some(Workers::Fixed(4))
    );
    let c = resolve_args(
        &["init", "--workers", "2", "x"],
        &[("WEB_CONCURRENCY", "3")],
    )
    .unwrap();
    assert_eq!(c.workers, Some(Workers::Fixed(2)));
    let e = err(&["init", "x"], &[("WEB_CONCURRENCY", "lots")]);
    assert!(e.contains("environment variable WEB_CONCURRENCY"), "{e}");
}

#[test]
fn file_errors_name_line_column_and_key() {
    let e = file_err("workers = 2\n\ngraceful_timeout = \"ten seconds\"\n");
    assert!(
        e.starts_with(":3:20: key `graceful_timeout`: `ten seconds` is not a duration"),
        "{e}"
    );
    let e = file_err("workers = 2\n  colour = \"red\"\n");
    assert!(e.starts_with(":2:3: key `colour`: unknown key"), "{e}");
    assert!(file_err("workers = [1, 2\n").starts_with(":1:"));
    let e = file_err("listen = { a = 1 }\n");
    assert!(
        e.starts_with(":1:10: key `listen`: expected a string or a list"),
        "{e}"
    );
    let e = file_err("workers = [2]\n");
    assert!(
        e.starts_with(":1:11: key `workers`: expected a string or a number, found array"),
        "{e}"
    );
}

#[test]
fn cli_errors_name_the_option() {
    let e = err(&["init", "--stop-signal", "TERMINATE", "x"], &[]);
    assert!(
        e.starts_with("invalid value for --stop-signal: `TERMINATE`"),
        "{e}"
    );
}

/// Issue 9: every duration and size goes through the one capped parser,
/// whatever its source and its TOML type.
#[test]
fn toml_numbers_go_through_the_capped_parsers() {
    let e = file_err("steps = [\n  { run = \"true\", timeout = 9223372036854775807 },\n]\n");
    assert!(
        e.starts_with(
            ":2:29: key `steps`: step 1: timeout: `9223372036854775807` is not a duration"
        ),
        "{e}"
    );
    let e = file_err("graceful_timeout = 18446744073709551615\n");
    assert!(
        e.starts_with(":1:20: key `graceful_timeout`: `18446744073709551615` is not a duration"),
        "{e}"
    );
    let e = file_err("memory = 1e400\n");
    assert!(e.starts_with(":1:10: key `memory`:"), "{e}");
    let e = file_err("backlog = -1\n");
    assert!(
        e.contains("key `backlog`: `-1` is not a whole number"),
        "{e}"
    );
    assert_eq!(
        from_file("shutdown_delay = 1.5\n").shutdown_delay,
        Duration::from_millis(1500)
    );
    assert_eq!(
        from_file("backoff_max = 0x10\n").backoff_max,
        Duration::from_secs(16)
    );
    let c = from_file("steps = [{ run = \"true\", timeout = 30 }]\n");
    assert!(matches!(c.steps[0], Step::Run { timeout, .. } if timeout == Duration::from_secs(30)));
}

#[test]
fn messages_do_not_echo_huge_values() {
    let e = file_err("graceful_timeout = 1e300\n");
    assert!(e.contains("`1e300` is not a duration"), "{e}");
    let long: &'static str = Box::leak(format!("{}s", "9".repeat(5000)).into_boxed_str());
    let e = err(&["init", "x"], &[("CINIT_MIN_UPTIME", long)]);
    assert!(e.len() < 300, "{e}");
}

/// Issue 9: `--listen` is parsed in config, with the right origin.
#[test]
fn listen_errors_name_their_origin() {
    let e = err(&["init", "x"], &[("CINIT_LISTEN", ":80,bogus")]);
    assert!(
        e.starts_with("invalid value for environment variable CINIT_LISTEN: `bogus`"),
        "{e}"
    );
    let e = file_err("listen = [\n  \"8000\",\n  \"nope\",\n]\n");
    assert!(
        e.starts_with(":3:3: key `listen`: `nope` is not a listen address"),
        "{e}"
    );
    let e = err(&["init", "--listen", "host", "x"], &[]);
    assert!(e.starts_with("invalid value for --listen: `host`"), "{e}");
    let c = from_file("listen = 8000\n");
    assert_eq!(c.listen, [ListenAddr::parse(":8000").unwrap()]);
}

#[test]
fn the_same_address_twice_is_an_error() {
    let e = err(
        &["init", "--listen", ":8000", "--listen", "0.0.0.0:8000", "x"],
        &[],
    );
    assert!(
        e.starts_with("invalid value for --listen: 0.0.0.0:8000 is given twice"),
        "{e}"
    );
    let e = err(
        &["init", "x"],
        &[("CINIT_LISTEN", "unix:/run/a.sock,unix:///run/a.sock")],
    );
    assert!(e.contains("unix:/run/a.sock is given twice"), "{e}");
    let c = resolve_args(
        &["init", "--listen", ":8000", "--listen", "[::]:8000", "x"],
        &[],
    )
    .unwrap();
    assert_eq!(c.listen.len(), 2);
    let args = [
        "init",
        "--listen",
        "127.0.0.1:0",
        "--listen",
        "127.0.0.1:0",
        "x",
    ];
    let c = resolve_args(&args, &[]).unwrap();
    assert_eq!(c.listen.len(), 2, "port 0: any free port, each its own");
}

#[test]
fn steps_keep_command_line_order() {
    let args = [
        "init",
        "--prestart",
        "echo 'first step'",
        "--wait-for",
        "tcp://127.0.0.1:5432",
        "--prestart",
        "second",
        "x",
    ];
    let c = resolve_args(&args, &[("CINIT_PRESTART_DIR", "/d")]).unwrap();
    assert_eq!(c.steps.len(), 3, "{:?}", c.steps);
    assert!(matches!(&c.steps[0], Step::Run { argv, .. } if argv == &["echo", "first step"]));
    assert_eq!(
        c.steps[1],
        Step::WaitFor {
            target: WaitTarget::parse("tcp://127.0.0.1:5432").unwrap(),
            timeout: Duration::from_secs(60)
        }
    );
    assert!(matches!(&c.steps[2], Step::Run { argv, .. } if argv == &["second"]));
}

#[test]
fn environment_steps_replace_the_files() {
    let f = TempFile::new("steps = [{ run = \"from-file\" }]\n");
    let env = [
        ("CINIT_PRESTART", "a;b 'c d'"),
        ("CINIT_WAIT_FOR", "tcp://db:1"),
        ("CINIT_WAIT_TIMEOUT", "5s"),
    ];
    let c = resolve_args(&["init", "--config", f.path(), "x"], &env).unwrap();
    assert!(
        matches!(&c.steps[0], Step::WaitFor { timeout, .. } if *timeout == Duration::from_secs(5))
    );
    assert!(matches!(&c.steps[2], Step::Run { argv, .. } if argv == &["b", "c d"]));
    assert_eq!(c.steps.len(), 3);
}

#[test]
fn steps_from_file_in_order() {
    let f = TempFile::new(
        "command = [\"app\"]\nprestart_timeout = \"1m\"\nsteps = [\n { wait_for = \"tcp://db:5432\", timeout = \"5s\" },\n { run = \"psql -f m.sql\" },\n { run = [\"a b\", \"c\"] },\n { dir = \"/d\" },\n]\n",
    );
    let c = resolve_args(&["init", "--config", f.path()], &[]).unwrap();
    assert_eq!(c.command, vec![OsString::from("app")]);
    assert_eq!(
        c.steps[0],
        Step::WaitFor {
            target: WaitTarget::parse("tcp://db:5432").unwrap(),
            timeout: Duration::from_secs(5)
        }
    );
    assert!(
        matches!(&c.steps[1], Step::Run { argv, timeout } if argv == &["psql", "-f", "m.sql"] && *timeout == Duration::from_secs(60))
    );
    assert!(matches!(&c.steps[2], Step::Run { argv, .. } if argv == &["a b", "c"]));
    assert!(matches!(&c.steps[3], Step::Dir { .. }));
}

/// Issue 9: a bad step is reported at its own entry, not at `steps = [`.
#[test]
fn step_errors_point_at_the_entry() {
    let e = file_err("steps = [\n  { run = \"true\" },\n  { wait_for = \"https://db\" },\n]\n");
    assert!(
        e.starts_with(":3:16: key `steps`: step 2: `https://db`: https is not supported"),
        "{e}"
    );
    let e = file_err("steps = [\n  { run = \"true\" },\n  { dir = \"\" },\n]\n");
    assert!(
        e.starts_with(":3:11: key `steps`: step 2: the directory is empty"),
        "{e}"
    );
    let e = file_err("steps = [\n  { run = \"a\", wait_for = \"tcp://x:1\" },\n]\n");
    assert!(e.starts_with(":2:"), "{e}");
    assert!(
        e.contains("step 1: give only one of wait_for, run or dir"),
        "{e}"
    );
    let e = file_err("steps = [\n  { },\n]\n");
    assert!(
        e.starts_with(":2:3: key `steps`: step 1: give one of"),
        "{e}"
    );
    let e = file_err("steps = [\n  { run = [\"a\", 1] },\n]\n");
    assert!(
        e.starts_with(":2:17: key `steps`: step 1: run must be a string, not integer"),
        "{e}"
    );
    let e = file_err("steps = [\n  { run = \"a\", tmeout = 1 },\n]\n");
    assert!(
        e.starts_with(":2:16: key `steps`: step 1: unknown key `tmeout`"),
        "{e}"
    );
    let e = file_err("wait_for = \"tcp://x:1\"\nsteps = [{ run = \"a\" }]\n");
    assert!(
        e.starts_with(":1:12: key `wait_for`: give the steps either as `steps`"),
        "{e}"
    );
}

#[test]
fn an_empty_directory_step_is_refused_everywhere() {
    let e = err(&["init", "--prestart-dir", "", "x"], &[]);
    assert!(
        e.starts_with("invalid value for --prestart-dir: the directory is empty"),
        "{e}"
    );
}

/// `--dry-run` is a switch: it never takes the command's first word.
#[test]
fn dry_run_is_a_switch_and_needs_a_command() {
    let c = resolve_args(&["init", "--dry-run", "uvicorn", "app:app"], &[]).unwrap();
    assert!(c.dry_run && !c.json);
    assert_eq!(c.command, ["uvicorn", "app:app"].map(OsString::from));
    let e = err(&["init", "--dry-run"], &[]);
    assert!(e.starts_with("no command to run"), "{e}");
    let c = resolve_args(
        &["init", "x"],
        &[("CINIT_DRY_RUN", "1"), ("CINIT_JSON", "yes")],
    )
    .unwrap();
    assert!(c.dry_run && c.json);
    let e = err(&["init", "x"], &[("CINIT_DRY_RUN", "maybe")]);
    assert!(
        e.starts_with("invalid value for environment variable CINIT_DRY_RUN"),
        "{e}"
    );
    // No file key: a file must not turn every start into a dry run.
    assert!(file_err("dry_run = true\n").contains("key `dry_run`: unknown key"));
    // --probe needs no command.
    assert!(resolve_args(&["init", "--probe", "tcp://db:5432"], &[]).is_ok());
    let e = err(&["init", "--probe", "db:5432"], &[]);
    assert!(e.starts_with("invalid value for --probe"), "{e}");
}

/// Issue 9: a signal rule that cannot apply is refused.
#[test]
fn signal_rules_that_cannot_apply_are_refused() {
    for (rule, why) in [
        ("KILL:TERM", "SIGKILL cannot be caught"),
        ("STOP:0", "SIGSTOP cannot be caught"),
        ("CHLD:HUP", "SIGCHLD tells the init"),
        ("SEGV:TERM", "SIGSEGV is a fault signal"),
        ("ABRT:0", "SIGABRT is a fault signal"),
        ("SYS:0", "SIGSYS is a fault signal"),
    ] {
        let e = err(&["init", "--signal-map", rule, "x"], &[]);
        assert!(e.starts_with("invalid value for --signal-map:"), "{e}");
        assert!(e.contains(why), "{rule}: {e}");
    }
    let e = err(
        &["init", "--workers", "2", "--signal-map", "TERM:QUIT", "x"],
        &[],
    );
    assert!(e.contains("use --stop-signal QUIT"), "{e}");
    let e = err(
        &[
            "init",
            "--stop-signal",
            "INT",
            "--signal-map",
            "TERM:QUIT",
            "x",
        ],
        &[],
    );
    assert!(e.contains("with --stop-signal"), "{e}");
    let e = err(
        &["init", "x"],
        &[("CINIT_WORKERS", "2"), ("CINIT_SIGNAL_MAP", "INT:TERM")],
    );
    assert!(
        e.starts_with("invalid value for environment variable CINIT_SIGNAL_MAP: INT:TERM"),
        "{e}"
    );
    let e = err(&["init", "x"], &[("CINIT_SIGNAL_MAP", "HUP:0,HUP:TERM")]);
    assert!(e.contains("SIGHUP has two rules"), "{e}");
    // What can apply.
    for args in [
        &["init", "--signal-map", "TERM:QUIT", "x"][..],
        &[
            "init",
            "--workers",
            "2",
            "--signal-map",
            "TERM:0",
            "--signal-map",
            "HUP:USR1",
            "x",
        ],
        &[
            "init",
            "--stop-signal",
            "QUIT",
            "--signal-map",
            "INT:0",
            "x",
        ],
    ] {
        assert!(resolve_args(args, &[]).is_ok(), "{args:?}");
    }
}

#[test]
fn stop_and_cont_cannot_stop() {
    for s in ["STOP", "CONT", "SIGCONT", "19"] {
        let e = err(&["init", "--stop-signal", s, "x"], &[]);
        assert!(e.contains("cannot stop a process"), "{s}: {e}");
    }
}

/// Issue 9: only a small regular file is read; a FIFO does not block.
#[test]
fn the_config_file_must_be_a_small_regular_file() {
    let e = err(&["init", "--config", "/dev/zero", "x"], &[]);
    assert_eq!(
        e,
        "failed to read config file /dev/zero: not a regular file"
    );
    let dir = std::env::temp_dir().join(format!("cinit-fifo-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    nix::unistd::mkfifo(&dir, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let e = err(&["init", "--config", dir.to_str().unwrap(), "x"], &[]);
    let _ = std::fs::remove_file(&dir);
    assert!(e.ends_with("not a regular file"), "{e}");
    let big = TempFile::new(&format!("# {}\n", "x".repeat(1 << 20)));
    let e = err(&["init", "--config", big.path(), "x"], &[]);
    assert!(
        e.contains("more than the 1048576 a configuration file may have"),
        "{e}"
    );
    let e = err(&["init", "--config", "", "x"], &[]);
    assert!(
        e.starts_with("invalid value for --config: the path is empty"),
        "{e}"
    );
}

/// Issue 9: a `CINIT_` variable that is no setting draws a warning.
#[test]
fn unknown_cinit_variables_are_named() {
    let env = [
        ("CINIT_WORKER", "4"),
        ("CINIT_LISTN", ":80"),
        ("CINIT_COLOUR", "red"),
        ("CINIT_WORKER_ID", "0"),
        ("CINIT_WORKERS", "2"),
        ("PATH", "/bin"),
    ];
    let c = resolve_args(&["init", "x"], &env).unwrap();
    assert_eq!(
        c.warnings,
        [
            "unknown environment variable CINIT_COLOUR ignored",
            "unknown environment variable CINIT_LISTN ignored (did you mean CINIT_LISTEN?)",
            "unknown environment variable CINIT_WORKER ignored (did you mean CINIT_WORKERS?)",
        ]
    );
}

#[test]
fn the_file_command_is_a_list_or_a_string() {
    let f = TempFile::new("command = \"sleep 'a b' 5\"\n");
    let c = resolve_args(&["init", "--config", f.path()], &[]).unwrap();
    assert_eq!(c.command, ["sleep", "a b", "5"].map(OsString::from));
    let f = TempFile::new("command = [\"a\", 2]\n");
    let e = err(&["init", "--config", f.path()], &[]);
    assert!(
        e.ends_with(":1:17: key `command`: expected a list of strings, found integer in it"),
        "{e}"
    );
    let f = TempFile::new("command = []\n");
    let e = err(&["init", "--config", f.path()], &[]);
    assert!(e.ends_with("key `command`: the command is empty"), "{e}");
}

#[test]
fn range_checks_name_the_origin() {
    let e = err(&["init", "--backlog", "0", "x"], &[]);
    assert_eq!(
        e,
        "invalid value for --backlog: must be between 1 and 2147483647"
    );
    let e = err(&["init", "x"], &[("CINIT_CRASH_LOOP", "0")]);
    assert_eq!(
        e,
        "invalid value for environment variable CINIT_CRASH_LOOP: must be at least 1"
    );
    let e = err(&["init", "--max-workers", "5000", "x"], &[]);
    assert!(e.contains("above the limit of 1024"), "{e}");
    let e = err(
        &["init", "--min-workers", "5", "--max-workers", "2", "x"],
        &[],
    );
    assert_eq!(e, "min_workers (5) is larger than max_workers (2)");
}

/// An environment with a user database and credentials of its own.
struct UsersEnv {
    vars: Vec<(&'static str, &'static str)>,
    init: crate::users::Credentials,
}

impl Env for UsersEnv {
    fn var(&self, name: &str) -> Option<String> {
        FakeEnv(self.vars.clone()).var(name)
    }
    fn accounts(&self) -> Result<crate::users::Accounts, String> {
        Ok(crate::users::Accounts::from_text(
            Some(b"root:x:0:0::/root:\napp:x:10001:10001::/home/app:\n"),
            Some(b"web:x:33:app\n"),
        ))
    }
    fn credentials(&self) -> crate::users::Credentials {
        self.init
    }
}

fn users(
    args: &[&str],
    vars: &[(&'static str, &'static str)],
    init: crate::users::Credentials,
) -> Result<Config, ConfigError> {
    let a = parse_args(args.iter().copied()).expect("arguments");
    resolve(
        &a,
        &UsersEnv {
            vars: vars.to_vec(),
            init,
        },
    )
}

#[test]
fn users_resolve_from_every_layer_and_errors_name_it() {
    use crate::users::Credentials;
    let root = Credentials::ROOT;
    let c = users(&["init", "--", "x"], &[("CINIT_USER", "app")], root).unwrap();
    let w = c.identities.workers.as_ref().unwrap();
    assert_eq!(
        (w.uid, w.gid, w.groups.as_slice()),
        (10001, 10001, &[33][..])
    );
    assert_eq!(
        c.identities.prestart, c.identities.workers,
        "steps follow --user"
    );
    let c = users(
        &["init", "--user", "app", "--prestart-user", "0", "x"],
        &[],
        root,
    )
    .unwrap();
    assert_eq!(c.identities.prestart.as_ref().map(|p| p.uid), Some(0));
    assert_eq!(c.identities.workers.as_ref().map(|p| p.uid), Some(10001));

    let e = users(&["init", "x"], &[("CINIT_USER", "ghost")], root).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid value for environment variable CINIT_USER: no user `ghost` in /etc/passwd"
    );
    let f = TempFile::new("user = \"app:nogroup\"\n");
    let e = users(&["init", "--config", f.path(), "x"], &[], root).unwrap_err();
    assert!(
        e.to_string().contains("key `user`") && e.to_string().contains("no group `nogroup`"),
        "{e}"
    );
    // A non-root init: its own uid only.
    let me = Credentials {
        uid: 10001,
        gid: 10001,
    };
    let c = users(&["init", "--user", "app", "x"], &[], me).unwrap();
    assert!(!c.identities.workers.unwrap().switch);
    let e = users(&["init", "--user", "0", "x"], &[], me).unwrap_err();
    assert!(e.to_string().contains("not as root"), "{e}");
    // Socket settings without a unix socket are only a warning.
    let c = users(&["init", "--socket-mode", "600", "x"], &[], root).unwrap();
    assert!(
        c.warnings[0].contains("apply to unix --listen sockets"),
        "{:?}",
        c.warnings
    );
    // Nothing named: the database is not needed.
    let c = resolve_args(&["init", "--no-new-privs", "x"], &[]).unwrap();
    assert!(c.no_new_privs && c.identities.workers.is_none());
}

#[test]
fn a_memory_threshold_below_a_mib_is_refused() {
    let e = resolve_args(&["init", "--max-worker-memory", "85", "--", "x"], &[]).unwrap_err();
    assert!(e.to_string().contains("less than 1 MiB"), "{e}");
    let e = resolve_args(&["init", "--memory-high", "85", "--", "x"], &[]).unwrap_err();
    assert!(e.to_string().contains("85%"), "{e}");
    assert!(resolve_args(&["init", "--memory-high", "85%", "--", "x"], &[]).is_ok());
    assert!(resolve_args(&["init", "--max-worker-memory", "300MiB", "--", "x"], &[]).is_ok());
}

// ---- several programs ----------------------------------------------------

fn programs_from(toml: &str, procfile: Option<&str>, extra: &[&str]) -> Result<Config, String> {
    let f = TempFile::new(toml);
    let p = procfile.map(TempFile::new);
    let mut args = vec!["init", "--config", f.path()];
    if let Some(p) = &p {
        args.extend(["--procfile", p.path()]);
    }
    args.extend_from_slice(extra);
    resolve_args(&args, &[]).map_err(|e| e.to_string())
}

#[test]
fn programs_come_from_tables_with_their_own_settings() {
    let c = programs_from(
        "graceful_timeout = \"5s\"\n\
         [programs.web]\ncommand = \"uvicorn app:app --fd 3\"\nworkers = \"auto\"\nlisten = [\":8000\"]\n\
         [programs.worker]\ncommand = [\"python3\", \"-m\", \"worker\"]\nafter = [\"web\"]\ncritical = false\nmemory = \"300MiB\"\nstop_signal = \"INT\"\n",
        None,
        &[],
    )
    .unwrap();
    assert_eq!(c.programs.len(), 2);
    let (web, worker) = (&c.programs[0], &c.programs[1]);
    assert_eq!(web.name, "web");
    assert_eq!(web.config.workers, Some(Workers::Auto));
    assert_eq!(web.config.listen.len(), 1);
    assert_eq!(
        worker.command,
        ["python3", "-m", "worker"].map(OsString::from)
    );
    assert_eq!(worker.after, ["web"]);
    assert!(!worker.critical && web.critical);
    assert_eq!(worker.memory, Some(300 << 20));
    assert_eq!(worker.config.workers, Some(Workers::Fixed(1)));
    assert_eq!(worker.config.stop_signal, Some(Signal::INT));
    assert!(worker.config.listen.is_empty());
    // The global settings are every program's defaults.
    assert_eq!(worker.config.graceful_timeout, Duration::from_secs(5));
}

#[test]
fn a_procfile_gives_commands_and_tables_the_rest() {
    let c = programs_from(
        "[programs.worker]\nworkers = 2\n",
        Some("# app\nweb: uvicorn app:app --fd 3\nworker: python3 -m worker\nclock: python3 clock.py\n"),
        &["--listen", ":8000", "--workers", "3"],
    )
    .unwrap();
    let names: Vec<&str> = c.programs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["web", "worker", "clock"]);
    // `web` takes the global sockets and count; the others one worker.
    assert_eq!(c.programs[0].config.listen.len(), 1);
    assert_eq!(c.programs[0].config.workers, Some(Workers::Fixed(3)));
    assert_eq!(c.programs[1].config.workers, Some(Workers::Fixed(2)));
    assert_eq!(c.programs[2].config.workers, Some(Workers::Fixed(1)));
    assert!(c.programs[2].config.listen.is_empty());
}

#[test]
fn program_mistakes_are_configuration_errors() {
    let cases: &[(&str, Option<&str>, &str)] = &[
        (
            "[programs.a]\ncommand = \"x\"\nafter = [\"b\"]\n[programs.b]\ncommand = \"y\"\nafter = [\"a\"]\n",
            None,
            "cycle: a -> b -> a",
        ),
        ("[programs.a]\ncommand = \"x\"\nafter = [\"nope\"]\n", None, "names no program"),
        (
            "[programs.a]\ncommand = \"x\"\nlisten = \":8000\"\n[programs.b]\ncommand = \"y\"\nlisten = \":8000\"\n",
            None,
            "both listen on 0.0.0.0:8000",
        ),
        (
            "[programs.a]\ncommand = \"x\"\nworkers = \"auto\"\n[programs.b]\ncommand = \"y\"\nworkers = \"auto\"\n",
            None,
            "only one program can size itself",
        ),
        ("[programs.a]\nworkers = 2\n", None, "has no command"),
        ("[programs.a]\ncommand = \"x\"\nshutdown_delay = \"1s\"\n", None, "not a setting of a program"),
        ("[programs.a]\ncommand = \"x\"\n", Some("a: y\n"), "gives this program's command already"),
        ("", Some("web uvicorn\n"), ":1: `web uvicorn` has no name"),
        ("[programs.\"a b\"]\ncommand = \"x\"\n", None, "not a program name"),
    ];
    for (toml, procfile, want) in cases {
        let e = programs_from(toml, *procfile, &[]).unwrap_err();
        assert!(e.contains(want), "{toml:?} {procfile:?}: {e}");
    }
    let e = programs_from("[programs.a]\ncommand = \"x\"\n", None, &["--", "y"]).unwrap_err();
    assert!(e.contains("a command and several programs"), "{e}");
}
