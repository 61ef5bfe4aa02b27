//! `cinit-demo` as other tests rely on it: the `serve` worker on a listening
//! socket passed as fd 3, and the stdout/exit-status contracts of the test
//! helpers.
//!
//! No `unsafe` here either: the listener goes to the child as its stdin
//! (`TcpListener -> OwnedFd -> Stdio`) and `sh` moves it to fd 3 before it
//! execs the demo, so the pid the test sees is the demo's. Every wait has a
//! deadline and waits for something (a line, an exit), never a fixed time.

use crate::common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_cinit-demo");
const DEADLINE: Duration = Duration::from_secs(10);

/// A running demo with its stdout and stderr read line by line.
struct Demo {
    child: Child,
    out: Receiver<String>,
    err: Receiver<String>,
}

impl Demo {
    fn start(cmd: &mut Command) -> Demo {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let out = lines(child.stdout.take().unwrap());
        let err = lines(child.stderr.take().unwrap());
        Demo { child, out, err }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid() as i32), sig).expect("kill");
    }

    fn wait(&mut self) -> ExitStatus {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < end,
                "pid {} did not exit in time",
                self.pid()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for a line equal to `want` and returns the lines before it.
fn expect(rx: &Receiver<String>, want: &str) -> Vec<String> {
    let end = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line == want => return seen,
            Ok(line) => seen.push(line),
            Err(_) => panic!("no line {want:?}; saw {seen:?}"),
        }
    }
}

/// All the lines until the stream closes.
fn rest(rx: &Receiver<String>) -> Vec<String> {
    let end = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => return seen,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("stream still open; saw {seen:?}"),
        }
    }
}

/// `sh` puts `fd` (given as stdin) at fd 3, sets LISTEN_FDS/LISTEN_PID to
/// its own pid (which the demo keeps across exec) unless `listen_env` is
/// false, and execs the demo with `args`.
fn with_fd3(fd: OwnedFd, listen_env: bool, args: &[&str]) -> Command {
    let script = if listen_env {
        r#"export LISTEN_FDS=1 LISTEN_PID=$$; exec "$0" "$@" 3<&0 </dev/null"#
    } else {
        r#"exec "$0" "$@" 3<&0 </dev/null"#
    };
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .arg(BIN)
        .args(args)
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env_remove("CINIT_WORKER_ID")
        .env_remove("CINIT_WORKERS")
        .stdin(Stdio::from(fd));
    cmd
}

fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().unwrap();
    (l, addr)
}

/// Starts `serve` on a fresh listener and waits for its serving line.
fn serve(listen_env: bool, args: &[&str], env: &[(&str, &str)]) -> (Demo, SocketAddr) {
    let (l, addr) = listener();
    let mut cmd = with_fd3(l.into(), listen_env, args);
    cmd.envs(env.iter().copied());
    let demo = Demo::start(&mut cmd);
    let worker = env
        .iter()
        .find(|(k, _)| *k == "CINIT_WORKER_ID")
        .map_or("-", |(_, v)| v);
    let line = format!(
        "cinit-demo: worker {worker} (pid {}) serving on fd 3",
        demo.pid()
    );
    expect(&demo.err, &line);
    (demo, addr)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, DEADLINE).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s
}

/// Status code and body of a GET.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = connect(addr);
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read the answer");
    parse(&raw)
}

fn parse(raw: &str) -> (u16, String) {
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete answer");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|n| n.parse().ok())
        .expect("Content-Length");
    assert_eq!(len, body.len(), "{raw}");
    (status, body.to_string())
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn serve_answers_json_naming_the_worker() {
    let env = [("CINIT_WORKER_ID", "1"), ("CINIT_WORKERS", "2")];
    let (mut demo, addr) = serve(true, &["serve"], &env);
    let (status, body) = get(addr, "/items/5?q=somequery");
    assert_eq!(status, 200);
    let v = json(&body);
    assert_eq!(v["pid"], demo.pid());
    assert_eq!(v["worker"], 1);
    assert_eq!(v["workers"], 2);
    assert_eq!(v["path"], "/items/5?q=somequery");
    assert_eq!(get(addr, "/healthz"), (200, "ok\n".to_string()));

    // Concurrent clients are served side by side: 16 requests held 300 ms
    // each take about 300 ms together, not 4.8 s.
    let started = Instant::now();
    let clients: Vec<_> = (0..16)
        .map(|i| thread::spawn(move || get(addr, &format!("/c/{i}?delay=300"))))
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        let (status, body) = c.join().unwrap();
        assert_eq!(status, 200);
        assert_eq!(json(&body)["path"], format!("/c/{i}?delay=300"));
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    demo.signal(Signal::SIGTERM);
    assert_eq!(demo.wait().code(), Some(0));
}

#[test]
fn serve_with_fd_flag_needs_no_listen_env() {
    let (mut demo, addr) = serve(false, &["serve", "--fd", "3"], &[]);
    let v = json(&get(addr, "/").1);
    assert_eq!(v["pid"], demo.pid());
    assert!(v["worker"].is_null() && v["workers"].is_null());
    demo.signal(Signal::SIGINT);
    assert_eq!(demo.wait().code(), Some(0));
}

#[test]
fn sigterm_finishes_the_request_in_flight_then_exits_0() {
    let (mut demo, addr) = serve(true, &["serve"], &[]);
    let mut s = connect(addr);
    s.write_all(b"GET /slow?delay=700 HTTP/1.1\r\n\r\n")
        .unwrap();
    // The head comes at once and the body after the delay: once the head
    // is here, the request is in flight.
    let mut raw = Vec::new();
    let mut byte = [0u8];
    while !raw.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).expect("read the head"), 1);
        raw.push(byte[0]);
    }
    demo.signal(Signal::SIGTERM);
    expect(
        &demo.err,
        "cinit-demo: SIGTERM: finishing open requests, then exiting",
    );
    s.read_to_end(&mut raw).expect("read the body");
    let (status, body) = parse(&String::from_utf8(raw).unwrap());
    assert_eq!(status, 200);
    assert_eq!(json(&body)["pid"], demo.pid());
    assert_eq!(demo.wait().code(), Some(0));
}

#[test]
fn idle_worker_stops_promptly_while_a_sibling_keeps_serving() {
    // Two workers share one listener, as under `init --workers 2`; the test
    // keeps its own copy open, as the init does.
    let (l, addr) = listener();
    let start = |l: &TcpListener, id: &str| {
        let mut cmd = with_fd3(l.try_clone().unwrap().into(), true, &["serve"]);
        cmd.env("CINIT_WORKER_ID", id);
        let demo = Demo::start(&mut cmd);
        let line = format!(
            "cinit-demo: worker {id} (pid {}) serving on fd 3",
            demo.pid()
        );
        expect(&demo.err, &line);
        demo
    };
    let mut a = start(&l, "0");
    let b = start(&l, "1");
    a.signal(Signal::SIGTERM);
    assert_eq!(a.wait().code(), Some(0));
    for _ in 0..5 {
        let v = json(&get(addr, "/").1);
        assert_eq!(v["pid"], b.pid());
    }
    drop(l);
}

#[test]
fn serve_without_a_socket_is_a_usage_error() {
    let run = |cmd: &mut Command| {
        let out = cmd.stdin(Stdio::null()).output().expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(Command::new(BIN).arg("serve").env_remove("LISTEN_FDS"));
    assert_eq!(code, Some(2));
    assert!(err.contains("LISTEN_FDS is not set"), "{err}");

    let (code, err) = run(Command::new(BIN)
        .arg("serve")
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", "1"));
    assert_eq!(code, Some(2));
    assert!(err.contains("LISTEN_PID=1 is not this process"), "{err}");

    let (code, err) = run(Command::new(BIN).args(["serve", "--fd", "0"]));
    assert_eq!(code, Some(2));
    assert!(err.contains("fd 0 is not a usable socket"), "{err}");
}

#[test]
fn exit_codes_help_and_bad_arguments() {
    let out = Command::new(BIN).args(["exit", "3"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let pid_line = String::from_utf8(out.stdout).unwrap();
    assert!(
        pid_line.starts_with("ready ") && pid_line.ends_with('\n'),
        "{pid_line}"
    );

    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for cmd in [
        "serve",
        "sleep",
        "exit CODE",
        "ignore-term",
        "signals",
        "orphans",
        "zombie-check",
        "status",
    ] {
        assert!(
            help.contains(&format!("\n  {cmd}")),
            "{cmd} missing in {help}"
        );
    }

    for bad in [
        &[][..],
        &["frobnicate"],
        &["exit"],
        &["exit", "x"],
        &["exit", "300"],
        &["sleep", "soon"],
        &["serve", "--fd"],
        &["serve", "--port", "80"],
        &["orphans", "-1"],
        &["signals", "--exit-on", "SIGNOPE"],
    ] {
        let out = Command::new(BIN).args(bad).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {err}");
        assert!(err.starts_with("cinit-demo: "), "{bad:?}: {err}");
        assert!(!err.contains("panicked"), "{bad:?}: {err}");
    }
}

#[test]
fn status_shows_mask_dispositions_fds_and_listen_env() {
    let (l, _) = listener();
    let mut demo = Demo::start(&mut with_fd3(l.into(), true, &["status"]));
    expect(&demo.out, &format!("ready {}", demo.pid()));
    let lines = rest(&demo.out);
    assert_eq!(demo.wait().code(), Some(0));
    let has = |want: &str| lines.iter().any(|l| l == want);
    let ppid = format!("ppid {}", std::process::id());
    assert!(has(&ppid), "{lines:?}");
    // Command gives children an empty mask. Ignored signals survive exec:
    // glibc's posix_spawn (under Command) ignores its internal signals 32
    // and 33 in the child, and the demo's Rust runtime ignores SIGPIPE.
    assert!(has("SigBlk: 0000000000000000"), "{lines:?}");
    let out = Command::new("sh")
        .args(["-c", "exec grep SigIgn: /proc/self/status"])
        .output()
        .unwrap();
    let baseline = String::from_utf8(out.stdout).unwrap();
    let baseline = u64::from_str_radix(baseline["SigIgn:".len()..].trim(), 16).unwrap();
    let sigpipe = 1 << (libc::SIGPIPE - 1);
    assert!(
        has(&format!("SigIgn: {:016x}", baseline | sigpipe)),
        "{lines:?}"
    );
    assert!(has("fd 0 /dev/null"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("fd 3 socket:[")),
        "{lines:?}"
    );
    assert!(has("env LISTEN_FDS=1"), "{lines:?}");
    assert!(has(&format!("env LISTEN_PID={}", demo.pid())), "{lines:?}");
    for prefix in ["pgid ", "sid ", "tpgid ", "fd 1 pipe:", "fd 2 pipe:"] {
        assert!(
            lines.iter().any(|l| l.starts_with(prefix)),
            "{prefix}: {lines:?}"
        );
    }
    // Stdio, the socket, and whatever this test inherited without
    // close-on-exec; not the fd of the demo's own /proc/self/fd listing.
    let inherited = inherited_fds();
    for line in lines.iter().filter_map(|l| l.strip_prefix("fd ")) {
        let fd: u32 = line.split(' ').next().unwrap().parse().unwrap();
        assert!(fd <= 3 || inherited.contains(&fd), "fd {fd}: {lines:?}");
    }
}

/// This process's fds that a child would inherit (no close-on-exec).
fn inherited_fds() -> Vec<u32> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fdinfo").unwrap().flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(info) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
            .unwrap_or(0);
        if flags & libc::O_CLOEXEC as u32 == 0 {
            fds.push(fd);
        }
    }
    fds
}

#[test]
fn signals_prints_every_signal_and_exits_on_term() {
    let mut demo = Demo::start(Command::new(BIN).arg("signals"));
    expect(&demo.out, &format!("ready {}", demo.pid()));
    // One at a time: standard signals sent twice before being read coalesce.
    for sig in [
        Signal::SIGUSR1,
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGWINCH,
    ] {
        demo.signal(sig);
        expect(&demo.out, &(sig as i32).to_string());
    }
    let rtmin3 = libc::SIGRTMIN() + 3;
    // nix's `kill` takes only named signals: a realtime one goes by the
    // shell's builtin.
    let status = Command::new("sh")
        .args(["-c", &format!("kill -{rtmin3} {}", demo.pid())])
        .status()
        .expect("sh -c kill");
    assert!(status.success());
    expect(&demo.out, &rtmin3.to_string());
    demo.signal(Signal::SIGTERM);
    expect(&demo.out, "15");
    assert_eq!(demo.wait().code(), Some(0));
}

#[test]
fn ignore_term_outlives_sigterm() {
    let mut demo = Demo::start(Command::new(BIN).arg("ignore-term"));
    expect(&demo.out, &format!("ready {}", demo.pid()));
    demo.signal(Signal::SIGTERM);
    expect(&demo.out, "ignored 15");
    assert!(demo.child.try_wait().unwrap().is_none());
    demo.signal(Signal::SIGKILL);
    assert_eq!(demo.wait().signal(), Some(libc::SIGKILL));
}

#[test]
fn sleep_ends_or_dies_of_sigterm() {
    let out = Command::new(BIN).args(["sleep", "0.05"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let mut demo = Demo::start(Command::new(BIN).arg("sleep"));
    expect(&demo.out, &format!("ready {}", demo.pid()));
    demo.signal(Signal::SIGTERM);
    assert_eq!(demo.wait().signal(), Some(libc::SIGTERM));
}

#[test]
fn orphans_are_reparented_to_the_subreaper() {
    // This test process becomes the subreaper the init would be.
    nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
    let mut demo = Demo::start(Command::new(BIN).args(["orphans", "2"]));
    expect(&demo.out, &format!("ready {}", demo.pid()));
    let lines = rest(&demo.out);
    assert_eq!(demo.wait().code(), Some(0));
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in lines {
        let pid: i32 = line
            .strip_prefix("orphan ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        // Only a parent can reap: success proves the re-parenting.
        let status = nix::sys::wait::waitpid(Pid::from_raw(pid), None).expect("waitpid");
        assert_eq!(
            status,
            nix::sys::wait::WaitStatus::Exited(Pid::from_raw(pid), 0)
        );
    }
}

#[test]
fn zombie_check_prints_a_count() {
    let out = Command::new(BIN).arg("zombie-check").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("ready "));
    let n = lines.next().and_then(|l| l.strip_prefix("zombies "));
    assert!(n.and_then(|n| n.parse::<u32>().ok()).is_some(), "{text}");
    assert_eq!(lines.next(), None);
}

#[test]
fn serve_survives_a_stderr_that_fails() {
    let (l, addr) = listener();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let mut child = with_fd3(l.into(), true, &["serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::from(full))
        .spawn()
        .expect("spawn");
    // Every line it writes to stderr fails with ENOSPC; it must still
    // serve, and stop cleanly on TERM (whose handling logs a line).
    let mut answered = None;
    wait_until("the demo to answer", DEADLINE, || {
        answered = crate::common::http_get(addr.port(), "/").ok();
        answered.is_some()
    });
    assert_eq!(answered.unwrap().0, 200);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("kill");
    let end = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "the demo did not exit");
        thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
}
