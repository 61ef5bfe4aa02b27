//! Pre-start steps end to end (SPEC 6): the real `init` waits for a real
//! PostgreSQL that comes up after it, runs a psql migration, then the
//! worker that reads what the migration wrote; every way a step can fail or
//! be interrupted stops the start with the documented exit code and
//! without a worker.
//!
//! Each test that needs PostgreSQL starts its own throwaway server
//! (`initdb` into a temp dir, trust auth, 127.0.0.1 on a free port, the
//! unix socket in the temp dir), stopped and removed by a Drop guard even
//! when the test fails. PostgreSQL missing is a failure, not a skip: CI
//! installs it. A worker that must not run would create a marker file, and
//! the test asserts the file is absent. Nothing sleeps to let something
//! happen: the tests wait for a log line, an exit or a file, with a
//! deadline; ports and directories are unique, so the tests run in
//! parallel.

use crate::common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn fixture(name: &str) -> String {
    format!("{ROOT}/tests/fixtures/prestart/{name}")
}

fn assert_no_worker(marker: &str, stderr: &[String]) {
    assert!(
        !Path::new(marker).exists(),
        "the worker ran although a pre-start step did not succeed; stderr {stderr:?}"
    );
}

/// Writes a script and sets its mode.
fn script(path: &str, body: &str, mode: u32) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs `init ARGS` with extra environment variables, to completion.
fn run_env(args: &[&str], env: &[(&str, String)]) -> (i32, String, String) {
    let out = Command::new(INIT)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .stdin(Stdio::null())
        .output()
        .expect("run init");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// On a failing test, SIGKILLs what `Running`'s own drop cannot reach: the
/// init inside its PID namespace (`Running` kills `unshare`, whose child
/// lives on; the namespace dies with its PID 1) and pre-start commands in
/// their own process groups, known by the pid files they write. Only while
/// panicking: after a pass these pids are gone and may be someone else's.
struct KillOnPanic {
    pids: Vec<i32>,
    pid_files: Vec<String>,
}

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let from_files = self
            .pid_files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok()?.trim().parse().ok());
        for pid in self.pids.iter().copied().chain(from_files) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Starts the init as PID 1 of a new PID namespace when this machine
/// allows it (it does in CI, as root), else as a plain child, saying so.
fn start_init(args: &[&str]) -> (Running, KillOnPanic) {
    let r = if can_unshare() {
        Running::pid1(args)
    } else {
        // The test still runs, without the PID-1 part: counted as a skip.
        skip(
            Need::Pid1,
            "`unshare --pid` is not available: ran the init as a plain child, not as PID 1",
        );
        Running::plain(args)
    };
    let guard = KillOnPanic {
        pids: vec![r.init_pid],
        pid_files: Vec::new(),
    };
    (r, guard)
}

/// Runs the init to its end within `PROMPT` (a hang fails the test rather
/// than the whole run); returns the exit code and stderr.
fn run_to_end(r: &mut Running) -> (i32, String) {
    let code = r.code(PROMPT);
    (code, r.stderr_seen.join("\n"))
}

/// A pre-start command that records its pid, then becomes `sleep 600`.
fn long_sleep(pid_file: &str) -> String {
    format!("sh -c 'echo $$ > {pid_file} && exec sleep 600'")
}

fn pid_in(file: &str) -> i32 {
    let mut pid = 0;
    wait_until(&format!("a pid in {file}"), PROMPT, || {
        pid = std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        pid != 0
    });
    pid
}

fn is_sleeping(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
}

/// The bin directory of the newest PostgreSQL installed the Debian way
/// (`/usr/lib/postgresql/<major>/bin`).
fn pg_bin() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("psql").exists()).then_some((major, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL is not installed: no /usr/lib/postgresql/*/bin/initdb. These tests \
             need a real server; install it (Debian: apt-get install postgresql) — CI does"
        ),
    }
}

/// A throwaway PostgreSQL server: initialised by `new`, started by
/// `start`, stopped (immediate mode) and deleted on drop.
struct Postgres {
    bin: PathBuf,
    port: u16,
    started: bool,
    /// Declared last: dropped after `Drop::drop` has stopped the server.
    dir: TempDir,
}

impl Postgres {
    fn new(tag: &str) -> Postgres {
        let bin = pg_bin();
        let dir = TempDir::new(tag);
        if is_root() {
            // The server refuses to run as root: its files belong to postgres.
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir.0)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "failed to give {} to postgres", dir.0.display());
        }
        let pg = Postgres {
            bin,
            port: free_port(),
            started: false,
            dir,
        };
        let data = pg.data();
        pg.as_owner(
            "initdb",
            &[
                "-D",
                &data,
                "--auth=trust",
                "--username=postgres",
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C",
            ],
        )
        .and_then(|o| ok_or_output("initdb", o))
        .unwrap_or_else(|e| panic!("{e}"));
        pg
    }

    fn data(&self) -> String {
        self.dir.path("data")
    }

    fn psql(&self) -> String {
        self.bin.join("psql").to_string_lossy().into_owned()
    }

    /// `psql` connecting to this server over TCP, ignoring any ~/.psqlrc.
    fn psql_cmd(&self) -> String {
        format!(
            "{} -X -h 127.0.0.1 -p {} -U postgres",
            self.psql(),
            self.port
        )
    }

    /// Runs a PostgreSQL program as the owner of the data directory.
    fn as_owner(&self, program: &str, args: &[&str]) -> Result<Output, String> {
        let exe = self.bin.join(program);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("failed to run {}: {e}", exe.display()))
    }

    fn start(&mut self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c max_connections=20 -c shared_buffers=16MB",
            self.port,
            self.dir.0.display()
        );
        // Set first: a server that half started is stopped too.
        self.started = true;
        let log = self.dir.path("server.log");
        let result = self
            .as_owner(
                "pg_ctl",
                &[
                    "-D",
                    &self.data(),
                    "-l",
                    &log,
                    "-o",
                    &opts,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            )
            .and_then(|o| ok_or_output("pg_ctl start", o));
        if let Err(e) = result {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("{e}\nserver log:\n{log}");
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.started {
            let data = self.data();
            let _ = self.as_owner("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
        }
    }
}

fn ok_or_output(what: &str, o: Output) -> Result<Output, String> {
    if o.status.success() {
        Ok(o)
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ))
    }
}

/// 1. The init starts before the database, says what it waits for, sees
///    the server come up, runs the migration, then the worker, whose exit
///    code it returns. As PID 1 of a new PID namespace (same network).
#[test]
fn waits_for_postgres_started_later_then_migrates_then_runs_the_worker() {
    let mut pg = Postgres::new("pg-later");
    let port = pg.port.to_string();
    let url = format!("tcp://127.0.0.1:{port}");
    let migrate = format!(
        "{} -q -v ON_ERROR_STOP=1 -f {}",
        pg.psql_cmd(),
        fixture("migrate.sql")
    );
    let worker = format!(
        "{} -At -c 'select note from cinit_e2e where id = 1' && exit 7",
        pg.psql_cmd()
    );
    let args = [
        "--wait-for",
        &url,
        "--prestart",
        &migrate,
        "--",
        "sh",
        "-c",
        &worker,
    ];
    let (mut r, _guard) = start_init(&args);

    r.stderr_line(
        PROMPT,
        &format!("cinit: pre-start 1/2: waiting for {url} (timeout 1m)"),
    );
    let still = r.stderr_line(PROMPT, &format!("pre-start 1/2: still waiting for {url}"));
    assert!(
        still.contains("last error: failed to connect to 127.0.0.1") && still.contains("refused"),
        "{still}"
    );

    pg.start();
    r.stderr_line(PROMPT, &format!("pre-start 1/2: {url} answered after "));
    r.stderr_line(PROMPT, "pre-start 2/2: running ");
    r.stderr_line(PROMPT, "pre-start 2/2: done in ");
    assert_eq!(r.line(PROMPT), "migrated by cinit", "the worker's output");
    assert_eq!(
        r.code(PROMPT),
        7,
        "the worker's exit code; stderr {:?}",
        r.stderr_seen
    );
}

/// 2. The server never answers: after --wait-timeout the start fails with
///    1, naming the step and the last error, and no worker runs.
#[test]
fn a_server_that_never_answers_fails_the_start_without_a_worker() {
    let dir = TempDir::new("pre-never");
    let marker = dir.path("worker-ran");
    let url = format!("tcp://127.0.0.1:{}", free_port());
    let touch = format!("touch {marker}");
    let started = Instant::now();
    let (mut r, _guard) = start_init(&[
        "--wait-for",
        &url,
        "--wait-timeout",
        "2s",
        "--",
        "sh",
        "-c",
        &touch,
    ]);
    let (code, err) = run_to_end(&mut r);
    let took = started.elapsed();
    assert_eq!(code, 1, "{err}");
    assert!(
        took >= Duration::from_secs(2) && took < PROMPT,
        "took {took:?}"
    );
    assert!(
        err.contains(&format!(
            "cinit: pre-start step 1/1 (wait for {url}) failed: {url} did not answer within 2s ("
        )),
        "{err}"
    );
    assert!(
        err.contains("attempts); last error: failed to connect to 127.0.0.1:")
            && err.contains("refused"),
        "{err}"
    );
    assert_no_worker(&marker, &r.stderr_seen);
}

/// 3. The migration fails on an SQL error: psql's own exit code (3 with
///    ON_ERROR_STOP) is the init's, its error reaches the container's
///    output, and no worker runs.
#[test]
fn a_failed_migration_exits_with_psqls_code_and_starts_no_worker() {
    let mut pg = Postgres::new("pg-broken");
    pg.start();
    let marker = pg.dir.path("worker-ran");
    let url = format!("tcp://127.0.0.1:{}", pg.port);
    let migrate = format!(
        "{} -q -v ON_ERROR_STOP=1 -f {}",
        pg.psql_cmd(),
        fixture("broken.sql")
    );
    let touch = format!("touch {marker}");
    let (mut r, _guard) = start_init(&[
        "--wait-for",
        &url,
        "--prestart",
        &migrate,
        "--",
        "sh",
        "-c",
        &touch,
    ]);
    let (code, err) = run_to_end(&mut r);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("cinit: pre-start step 2/2 (`")
            && err.contains("broken.sql`) failed: exited with code 3 after "),
        "{err}"
    );
    assert!(
        err.contains("cinit_no_such_table"),
        "psql's own error: {err}"
    );
    assert_no_worker(&marker, &r.stderr_seen);
    // ON_ERROR_STOP stopped psql at the error: what came before it stays
    // (psql -f runs without a transaction), what came after never ran.
    let tables = Command::new(pg.psql())
        .args(["-X", "-At", "-h", "127.0.0.1", "-p", &pg.port.to_string()])
        .args(["-U", "postgres", "-c"])
        .arg("select string_agg(tablename, ',' order by tablename) from pg_tables where tablename like 'cinit%'")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&tables.stdout).trim(),
        "cinit_e2e_before"
    );
}

/// 4. A shutdown signal during a wait with a long timeout ends the init
///    promptly with 128+N, and no worker runs.
#[test]
fn a_shutdown_signal_during_the_wait_exits_promptly_without_a_worker() {
    for (sig, code) in [
        (libc::SIGTERM, 143),
        (libc::SIGINT, 130),
        (libc::SIGQUIT, 131),
    ] {
        let dir = TempDir::new("pre-sigwait");
        let marker = dir.path("worker-ran");
        let url = format!("tcp://127.0.0.1:{}", free_port());
        let touch = format!("touch {marker}");
        let args = [
            "--wait-for",
            &url,
            "--wait-timeout",
            "10m",
            "--",
            "sh",
            "-c",
            &touch,
        ];
        let (mut r, _guard) = start_init(&args);
        r.stderr_line(
            PROMPT,
            &format!("pre-start 1/1: waiting for {url} (timeout 10m)"),
        );
        let sent = Instant::now();
        r.signal(sig);
        assert_eq!(
            r.code(PROMPT),
            code,
            "signal {sig}; stderr {:?}",
            r.stderr_seen
        );
        assert!(sent.elapsed() < PROMPT, "took {:?}", sent.elapsed());
        let name = match sig {
            libc::SIGTERM => "SIGTERM",
            libc::SIGINT => "SIGINT",
            _ => "SIGQUIT",
        };
        let seen = r.stderr_seen.join("\n");
        assert!(
            seen.contains(&format!(
                "cinit: {name} during pre-start step 1/1: no worker started"
            )),
            "{seen}"
        );
        assert_no_worker(&marker, &r.stderr_seen);
    }
}

/// 5. SIGTERM during a long pre-start command stops the command (it is
///    gone when the init has exited) and the init exits 143 promptly. Not
///    in a PID namespace, so the command's pid is ours to check.
#[test]
fn sigterm_during_a_prestart_command_stops_it_and_exits_143() {
    let dir = TempDir::new("pre-sigcmd");
    let marker = dir.path("worker-ran");
    let pid_file = dir.path("step.pid");
    let touch = format!("touch {marker}");
    let step = long_sleep(&pid_file);
    let mut r = Running::plain(&["--prestart", &step, "--", "sh", "-c", &touch]);
    let _guard = KillOnPanic {
        pids: vec![r.init_pid],
        pid_files: vec![pid_file.clone()],
    };
    let pid = pid_in(&pid_file);
    wait_until("the step to become sleep 600", PROMPT, || is_sleeping(pid));
    let sent = Instant::now();
    r.signal(libc::SIGTERM);
    let (code, err) = run_to_end(&mut r);
    assert_eq!(code, 143, "{err}");
    assert!(sent.elapsed() < PROMPT);
    assert!(!is_sleeping(pid), "the pre-start command outlived the init");
    assert!(
        err.contains("cinit: SIGTERM during pre-start step 1/1: no worker started"),
        "{err}"
    );
    assert_no_worker(&marker, &r.stderr_seen);
}

/// 6. A command that outlives --prestart-timeout is stopped; the start
///    fails with 1 and "timed out".
#[test]
fn a_prestart_command_past_its_timeout_fails_the_start() {
    let dir = TempDir::new("pre-timeout");
    let marker = dir.path("worker-ran");
    let pid_file = dir.path("step.pid");
    let touch = format!("touch {marker}");
    let step = long_sleep(&pid_file);
    let started = Instant::now();
    let mut r = Running::plain(&[
        "--prestart-timeout",
        "1s",
        "--prestart",
        &step,
        "--",
        "sh",
        "-c",
        &touch,
    ]);
    let _guard = KillOnPanic {
        pids: vec![r.init_pid],
        pid_files: vec![pid_file.clone()],
    };
    let (code, err) = run_to_end(&mut r);
    let took = started.elapsed();
    assert_eq!(code, 1, "{err}");
    assert!(
        took >= Duration::from_secs(1) && took < PROMPT,
        "took {took:?}"
    );
    assert!(
        err.contains("cinit: pre-start 1/1: still running after 1s; stopping it"),
        "{err}"
    );
    assert!(
        err.contains("exec sleep 600'`) failed: timed out after 1s"),
        "{err}"
    );
    assert!(
        !is_sleeping(pid_in(&pid_file)),
        "the command outlived the init"
    );
    assert_no_worker(&marker, &r.stderr_seen);
}

/// 7. --prestart-dir runs the executable files in name order and skips
///    the rest (a non-executable file, a directory).
#[test]
fn prestart_dir_runs_executables_in_name_order_and_skips_the_rest() {
    let dir = TempDir::new("pre-dir");
    let out = dir.path("order");
    let d = dir.path("prestart.d");
    std::fs::create_dir(&d).unwrap();
    script(&format!("{d}/20-b"), &format!("echo b >> {out}"), 0o755);
    script(
        &format!("{d}/15-skip"),
        &format!("echo skip >> {out}"),
        0o644,
    );
    script(&format!("{d}/10-a"), &format!("echo a >> {out}"), 0o755);
    std::fs::create_dir(format!("{d}/12-subdir")).unwrap();
    let worker = format!("echo worker >> {out}");
    let (code, _, err) = run(&["--prestart-dir", &d, "--", "sh", "-c", &worker], false);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "a\nb\nworker\n");
    assert!(
        err.contains(&format!(
            "cinit: pre-start: skipping {d}/15-skip (not an executable file)"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{d}/12-subdir (not an executable file)")),
        "{err}"
    );
    let a = err.find(&format!("pre-start 1/1 ({d}/10-a): done in"));
    let b = err.find(&format!("pre-start 1/1 ({d}/20-b): done in"));
    assert!(a.is_some() && b.is_some() && a < b, "{err}");
}

/// An HTTP server on a thread: 503 for the first `failures` requests, then
/// 200. Records each request line.
fn flaky_http_server(failures: usize) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let first_line = read_request_line(&mut conn);
            let n = {
                let mut log = log.lock().unwrap();
                log.push(first_line);
                log.len()
            };
            let answer: &[u8] = if n <= failures {
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
            };
            let _ = conn.write_all(answer);
        }
    });
    (port, seen)
}

/// Reads a request head (up to the blank line) and returns its first line.
fn read_request_line(conn: &mut TcpStream) -> String {
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&head);
    head.lines().next().unwrap_or_default().to_string()
}

/// 8. An HTTP wait retries while the server answers 503 and runs the
///    worker once it answers 2xx.
#[test]
fn http_wait_retries_until_the_server_answers_2xx() {
    let (port, seen) = flaky_http_server(3);
    let url = format!("http://127.0.0.1:{port}/ready");
    let args = [
        "--wait-for",
        &url,
        "--wait-timeout",
        "1m",
        "--",
        "sh",
        "-c",
        "echo worker ran",
    ];
    let (mut r, _guard) = start_init(&args);
    let still = r.stderr_line(PROMPT, &format!("pre-start 1/1: still waiting for {url}"));
    assert!(
        still.contains(&format!(
            "last error: {url} answered HTTP 503 Service Unavailable"
        )),
        "{still}"
    );
    r.stderr_line(PROMPT, &format!("pre-start 1/1: {url} answered after "));
    assert_eq!(r.line(PROMPT), "worker ran");
    assert_eq!(r.code(PROMPT), 0, "stderr {:?}", r.stderr_seen);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(seen.iter().all(|l| l == "GET /ready HTTP/1.1"), "{seen:?}");
}

/// 8b. The unix:// and file:// forms: each wait ends when its socket or
///     file appears, one after the other.
#[test]
fn unix_and_file_waits_end_when_the_socket_and_the_file_appear() {
    let dir = TempDir::new("pre-unixfile");
    let sock = dir.path("db.sock");
    let ready = dir.path("ready");
    let unix = format!("unix://{sock}");
    let file = format!("file://{ready}");
    let (mut r, _guard) = start_init(&[
        "--wait-for",
        &unix,
        "--wait-for",
        &file,
        "--",
        "echo",
        "worker ran",
    ]);
    let still = r.stderr_line(PROMPT, &format!("pre-start 1/2: still waiting for {unix}"));
    assert!(
        still.contains(&format!("failed to connect to {sock}")),
        "{still}"
    );
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    r.stderr_line(PROMPT, &format!("pre-start 1/2: {unix} answered after "));
    let still = r.stderr_line(PROMPT, &format!("pre-start 2/2: still waiting for {file}"));
    assert!(
        still.contains(&format!("{ready} does not exist")),
        "{still}"
    );
    std::fs::write(&ready, "").unwrap();
    r.stderr_line(PROMPT, &format!("pre-start 2/2: {file} answered after "));
    assert_eq!(r.line(PROMPT), "worker ran");
    assert_eq!(r.code(PROMPT), 0, "stderr {:?}", r.stderr_seen);
}

/// Drives the init on a pseudo-terminal, as the session leader that
/// `docker run -it` makes PID 1 (not under `unshare`: there the init's
/// process group belongs to the parent namespace, which no container has).
/// Each step waits for some output, then types keys. Prints the exit code
/// ("hung" after 20 s) and the output.
const PTY_DRIVER: &str = r#"
import os, pty, sys, time, select
init, steps = sys.argv[1], sys.argv[2:]
cmd = steps[:steps.index("--keys")]
keys = steps[steps.index("--keys") + 1:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(init, [init] + cmd)
buf = b""
deadline = time.time() + 20
def read_some():
    global buf
    r, _, _ = select.select([fd], [], [], 0.1)
    if not r:
        return True
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        chunk = b""
    buf += chunk
    return bool(chunk)
for i in range(0, len(keys), 2):
    wait_for, typed = keys[i].encode(), keys[i + 1].encode().decode("unicode_escape").encode()
    while wait_for not in buf and time.time() < deadline:
        if not read_some():
            break
    os.write(fd, typed)
code = "hung"
while time.time() < deadline:
    if not read_some():
        time.sleep(0.05)
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        code = os.waitstatus_to_exitcode(status)
        break
else:
    # Everything in the init's session: the init, its steps and workers.
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{p}/stat").read()
        except OSError:
            continue
        if int(stat[stat.rfind(")") + 2:].split()[3]) == pid:
            os.kill(int(p), 9)
print("code", code)
print(buf.decode(errors="replace"))
"#;

fn on_a_terminal(cmd: &[&str], keys: &[&str]) -> String {
    let out = Command::new("python3")
        .args(["-c", PTY_DRIVER, INIT])
        .args(cmd)
        .arg("--keys")
        .args(keys)
        .output()
        .expect("python3");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// 8c. On a terminal (`docker run -it`) a step is the foreground group: it
///     can read what is typed (in the background it would be stopped by
///     SIGTTIN, resumed, stopped: a busy loop until its timeout). After it,
///     a plain-mode worker takes the terminal, and in worker mode Ctrl-C
///     reaches the init again.
#[test]
fn a_step_on_a_terminal_can_read_it_and_gives_it_back() {
    let out = on_a_terminal(
        &[
            "--prestart",
            "sh -c 'read x; echo step read $x'",
            "--",
            "python3",
            "-c",
            "import os; print('worker fg', os.tcgetpgrp(0) == os.getpgrp())",
        ],
        &["running sh", "yes\\r"],
    );
    assert!(out.starts_with("code 0\n"), "{out}");
    assert!(out.contains("step read yes"), "{out}");
    assert!(out.contains("worker fg True"), "{out}");

    let out = on_a_terminal(
        &[
            "--workers",
            "1",
            "--prestart",
            "sh -c 'read x'",
            "--",
            "sh",
            "-c",
            "echo worker up; exec sleep 60",
        ],
        &["running sh", "go\\r", "worker up", "\\x03"],
    );
    assert!(out.starts_with("code 0\n"), "Ctrl-C after the step: {out}");
    assert!(out.contains("cinit: SIGINT: stopping"), "{out}");
}

/// 9a. The same steps from the TOML file: wait, migrate, a directory whose
///     script sees the migrated row, then the worker.
#[test]
fn steps_from_the_toml_file_run_in_order() {
    let mut pg = Postgres::new("pg-toml");
    pg.start();
    let out = pg.dir.path("order");
    let d = pg.dir.path("prestart.d");
    std::fs::create_dir(&d).unwrap();
    script(
        &format!("{d}/10-read"),
        &format!(
            "{} -At -c 'select note from cinit_e2e' | sed 's/^/dir saw: /' >> {out}",
            pg.psql_cmd()
        ),
        0o755,
    );
    let config = pg.dir.path("cinit.toml");
    std::fs::write(
        &config,
        format!(
            "steps = [\n  {{ wait_for = \"tcp://127.0.0.1:{port}\", timeout = \"30s\" }},\n  \
             {{ run = \"{psql} -q -v ON_ERROR_STOP=1 -f {sql}\", timeout = \"1m\" }},\n  \
             {{ dir = \"{d}\" }},\n]\n",
            port = pg.port,
            psql = pg.psql_cmd(),
            sql = fixture("migrate.sql"),
        ),
    )
    .unwrap();
    let worker = format!("echo worker >> {out}");
    let (code, _, err) = run(&["--config", &config, "--", "sh", "-c", &worker], false);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "dir saw: migrated by cinit\nworker\n"
    );
    for line in [
        format!(
            "pre-start 1/3: waiting for tcp://127.0.0.1:{} (timeout 30s)",
            pg.port
        ),
        "pre-start 2/3: running ".into(),
        "pre-start 2/3: done in ".into(),
        format!("pre-start 3/3 ({d}/10-read): done in "),
    ] {
        assert!(err.contains(&line), "{line:?} in {err}");
    }
}

/// 9b. `--dry-run` and `--dry-run --json` list the steps in order (the
///     file's order; the command line's order of the options) and run
///     none of them.
#[test]
fn dry_run_lists_the_steps_in_order_and_runs_none() {
    let dir = TempDir::new("pre-dry");
    let d = dir.path("prestart.d");
    std::fs::create_dir(&d).unwrap();
    let markers = [
        dir.path("step-ran"),
        dir.path("dir-ran"),
        dir.path("worker-ran"),
    ];
    script(
        &format!("{d}/10-touch"),
        &format!("touch {}", markers[1]),
        0o755,
    );
    let config = dir.path("cinit.toml");
    std::fs::write(
        &config,
        format!(
            "steps = [\n  {{ wait_for = \"tcp://127.0.0.1:1\", timeout = \"30s\" }},\n  \
             {{ run = \"touch {}\" }},\n  {{ dir = \"{d}\", timeout = \"10s\" }},\n]\n",
            markers[0]
        ),
    )
    .unwrap();
    let worker = ["sh", "-c", &format!("touch {}", markers[2])].map(String::from);
    let with = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        v.push("--".into());
        v.extend(worker.iter().cloned());
        v
    };

    let args = with(&["--config", &config, "--dry-run"]);
    let (code, out, err) = run(&args.iter().map(String::as_str).collect::<Vec<_>>(), false);
    assert_eq!(code, 0, "{err}");
    let want = [
        "pre-start   in this order, each must succeed:".to_string(),
        "  1. wait for tcp://127.0.0.1:1  (timeout 30s)".into(),
        format!("  2. run touch {}  (timeout 5m)", markers[0]),
        format!("  3. run the executables in {d} in name order  (timeout 10s each)"),
    ];
    let start = out.find(&want[0]).unwrap_or_else(|| panic!("{out}"));
    let got: Vec<&str> = out[start..].lines().take(4).collect();
    assert_eq!(got, want, "{out}");

    let args = with(&["--config", &config, "--dry-run", "--json"]);
    let (code, out, err) = run(&args.iter().map(String::as_str).collect::<Vec<_>>(), false);
    assert_eq!(code, 0, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        plan["steps"],
        serde_json::json!([
            { "kind": "wait_for", "url": "tcp://127.0.0.1:1", "timeout_s": 30.0 },
            { "kind": "run", "argv": ["touch", markers[0]], "timeout_s": 300.0 },
            { "kind": "dir", "path": d, "timeout_s": 10.0 },
        ])
    );

    // On the command line, the options' own order.
    let touch = format!("touch {}", markers[0]);
    let args = with(&[
        "--prestart",
        &touch,
        "--wait-for",
        "tcp://127.0.0.1:1",
        "--prestart-dir",
        &d,
        "--wait-timeout",
        "5s",
        "--dry-run",
        "--json",
    ]);
    let (code, out, err) = run(&args.iter().map(String::as_str).collect::<Vec<_>>(), false);
    assert_eq!(code, 0, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let kinds: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["run", "wait_for", "dir"], "{out}");
    assert_eq!(plan["steps"][1]["timeout_s"], 5.0);

    for m in &markers {
        assert!(
            !Path::new(m).exists(),
            "{m} exists: the dry run ran something"
        );
    }
}

/// The TOML example in docs/prestart.md is a valid configuration and makes
/// the steps the page says, in its order.
#[test]
fn the_toml_example_of_the_docs_is_valid() {
    let doc = std::fs::read_to_string(format!("{ROOT}/docs/prestart.md")).unwrap();
    // The block's info string may go on (```toml test file=cinit.toml).
    let toml = doc
        .split("```toml")
        .nth(1)
        .and_then(|rest| rest.split_once('\n'))
        .and_then(|(_, rest)| rest.split("```").next())
        .expect("a ```toml block in docs/prestart.md");
    let dir = TempDir::new("pre-doc");
    let config = dir.path("cinit.toml");
    std::fs::write(&config, toml).unwrap();
    let (code, out, err) = run(&["--config", &config, "--dry-run", "--json"], false);
    assert_eq!(code, 0, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let steps: Vec<(String, f64)> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap().to_string(),
                s["timeout_s"].as_f64().unwrap(),
            )
        })
        .collect();
    let want = [
        ("wait_for", 30.0),
        ("wait_for", 60.0),
        ("run", 120.0),
        ("run", 300.0),
        ("dir", 300.0),
    ]
    .map(|(k, t)| (k.to_string(), t));
    assert_eq!(steps, want);
}

/// The `environment` entries of the compose file's `app` service, as
/// `KEY: value` lines (the example keeps to that form, without quotes
/// except around numbers).
fn compose_env() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(format!("{ROOT}/examples/compose/docker-compose.yml"))
        .expect("examples/compose/docker-compose.yml");
    let mut in_app = false;
    let mut in_env = false;
    let mut env = Vec::new();
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        match indent {
            0 => in_app = false,
            2 => {
                in_app = t == "app:";
                in_env = false;
            }
            4 => in_env = in_app && t == "environment:",
            6 if in_env => {
                let (k, v) = t.split_once(':').expect("KEY: value");
                let v = v.split(" #").next().unwrap().trim().trim_matches('"');
                env.push((k.to_string(), v.to_string()));
            }
            _ => {}
        }
    }
    env
}

/// 10. The compose example: `docker-compose config` accepts it; its
///     CINIT_* environment makes the intended plan (wait for the database,
///     then the migration); and that migration, run by the init with the
///     example's own settings against a real server, works twice in a row
///     (a container restart runs it again).
#[test]
fn the_compose_example_is_valid_and_its_migration_runs_twice() {
    let env = compose_env();
    let get = |k: &str| {
        env.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{k} missing from the app's environment: {env:?}"))
    };
    assert_eq!(get("CINIT_WAIT_FOR"), "tcp://db:5432");
    let prestart = get("CINIT_PRESTART");
    let cinit_env: Vec<(&str, String)> = env
        .iter()
        .filter(|(k, _)| k.starts_with("CINIT_"))
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let (code, out, err) = run_env(&["--dry-run", "--json", "--", "true"], &cinit_env);
    assert_eq!(code, 0, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let steps = plan["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{out}");
    assert_eq!(steps[0]["url"], "tcp://db:5432");
    assert_eq!(steps[1]["kind"], "run");
    assert_eq!(steps[1]["argv"][0], "psql");

    // The same settings against a local server: the database host, the
    // mounted file and the credentials are this machine's.
    let mut pg = Postgres::new("pg-compose");
    pg.start();
    let sql = format!("{ROOT}/examples/compose/migrate.sql");
    let path = format!(
        "{}:{}",
        pg.bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut local: Vec<(&str, String)> = cinit_env
        .iter()
        .map(|(k, v)| (*k, v.replace("/migrations/migrate.sql", &sql)))
        .filter(|(k, _)| !k.starts_with("CINIT_WORKERS") && *k != "CINIT_LISTEN")
        .collect();
    local.retain(|(k, _)| *k != "CINIT_WAIT_FOR");
    local.extend([
        ("CINIT_WAIT_FOR", format!("tcp://127.0.0.1:{}", pg.port)),
        ("PGHOST", "127.0.0.1".to_string()),
        ("PGPORT", pg.port.to_string()),
        ("PGUSER", "postgres".to_string()),
        ("PGDATABASE", "postgres".to_string()),
        ("PSQLRC", "/dev/null".to_string()),
        ("PATH", path),
    ]);
    assert!(prestart.contains("/migrations/migrate.sql"), "{prestart}");
    for round in 1..=2 {
        let (code, out, err) = run_env(
            &["--", "psql", "-At", "-c", "select count(*) from items"],
            &local,
        );
        assert_eq!(code, 0, "round {round}: {err}");
        assert!(
            err.contains("pre-start 2/2: done in"),
            "round {round}: {err}"
        );
        // psql's notices go to the container's output, then the worker's.
        let want = if round == 1 {
            "INSERT 0 1"
        } else {
            "INSERT 0 0"
        };
        assert!(out.contains(want), "round {round}: {out}");
        assert_eq!(
            out.lines().last(),
            Some("1"),
            "round {round}: the seed row, once: {out}"
        );
    }

    match Command::new("docker-compose").arg("version").output() {
        Err(_) => skip(
            Need::Compose,
            "docker-compose is not installed: `config -q` of examples/compose not checked",
        ),
        Ok(_) => {
            let o = Command::new("docker-compose")
                .args(["-f", "examples/compose/docker-compose.yml", "config", "-q"])
                .current_dir(ROOT)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "docker-compose config: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}
