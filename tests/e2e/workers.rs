//! Worker mode end to end, with the real binary as PID 1 and the demo
//! worker (`cinit-demo serve`) on the shared socket, answered through a
//! real HTTP client.

use crate::common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

/// (pid, worker slot) of whoever answers one request.
fn who(port: u16) -> Result<(i64, i64), String> {
    let (status, body) = http_get(port, "/")?;
    if status != 200 {
        return Err(format!("status {status}: {body}"));
    }
    Ok((
        json_field(&body, "pid").ok_or("no pid")?,
        json_field(&body, "worker").ok_or("no worker")?,
    ))
}

/// Requests until every slot in 0..n has answered; returns slot -> pid.
fn slots(port: u16, n: usize) -> BTreeMap<i64, i64> {
    let mut seen = BTreeMap::new();
    wait_until(&format!("{n} workers to answer"), PROMPT, || {
        if let Ok((pid, slot)) = who(port) {
            seen.insert(slot, pid);
        }
        seen.len() >= n
    });
    seen
}

/// A client hammering the port in the background, counting failures.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU32>,
    failed: Arc<std::sync::Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU32::new(0));
        let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match http_get(port, "/") {
                    Ok((200, _)) => {
                        o.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((st, b)) => f.lock().unwrap().push(format!("{st} {b}")),
                    Err(e) => f.lock().unwrap().push(e),
                }
            }
        });
        Load {
            stop,
            ok,
            failed,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (u32, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.lock().unwrap().clone(),
        )
    }
}

fn start(n: &str, extra: &[&str]) -> (Running, u16) {
    let mut args = vec!["--workers", n, "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", DEMO, "serve"]);
    let mut r = Running::pid1(&args);
    let port = listening_port(&mut r);
    (r, port)
}

/// Signals a process by its host pid (never a namespaced one: on the host
/// that number is somebody else).
fn kill(pid: i64, sig: i32) {
    let ok = std::process::Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// Whether the host pid is a live process.
fn pid_alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

#[test]
fn workers_start_share_the_port_and_stop_cleanly() {
    if !require_pid1() {
        return;
    }
    let (mut r, port) = start("3", &[]);
    let seen = slots(port, 3);
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
    let (_, body) = http_get(port, "/x").unwrap();
    assert_eq!(json_field(&body, "workers"), Some(3), "{body}");
    r.signal(libc::SIGTERM);
    assert_eq!(r.code(PROMPT), 0);
    r.drain_stderr();
    assert!(
        r.stderr_seen
            .iter()
            .any(|l| l.contains("SIGTERM: stopping")),
        "{:?}",
        r.stderr_seen
    );
}

#[test]
fn a_killed_worker_is_replaced_in_its_slot_without_a_refused_connection() {
    if !require_pid1() {
        return;
    }
    let (mut r, port) = start("2", &[]);
    let before = slots(port, 2);
    let victim = host_pid(r.init_pid, before[&1]);
    let survivor = host_pid(r.init_pid, before[&0]);
    let load = Load::start(port);
    kill(victim, libc::SIGKILL);
    let mut replaced = 0;
    wait_until("slot 1 to answer from a new pid", PROMPT, || {
        if let Ok((pid, 1)) = who(port) {
            replaced = pid;
        }
        replaced != 0 && replaced != before[&1]
    });
    let (ok, failed) = load.finish();
    // The one request the killed worker had accepted may die with it: the
    // kernel resets the connection, or closes it with nothing sent when
    // the request had been read (an empty answer). What must never happen
    // is a refused connection: the socket stays open in the init and the
    // survivor keeps accepting.
    let refused: Vec<&String> = failed
        .iter()
        .filter(|f| !f.contains("reset by peer") && !f.contains("not HTTP: \"\""))
        .collect();
    assert!(
        refused.is_empty(),
        "refused or failed connections: {failed:?}"
    );
    assert!(
        failed.len() <= 1,
        "more than the one in-flight request failed: {failed:?}"
    );
    assert!(ok > 0);
    assert!(pid_alive(survivor), "slot 0 was left alone");
    r.stderr_line(PROMPT, "worker 1 started");
    r.signal(libc::SIGTERM);
    assert_eq!(r.code(PROMPT), 0);
}

#[test]
fn hup_replaces_every_worker_without_a_failed_request() {
    if !require_pid1() {
        return;
    }
    let (mut r, port) = start("2", &["--min-uptime", "500ms"]);
    let before = slots(port, 2);
    let old: Vec<i64> = before.values().map(|&p| host_pid(r.init_pid, p)).collect();
    let load = Load::start(port);
    r.signal(libc::SIGHUP);
    wait_until("every old worker to be gone", PROMPT, || {
        old.iter().all(|&p| !pid_alive(p))
    });
    let after = slots(port, 2);
    let (ok, failed) = load.finish();
    assert!(
        failed.is_empty(),
        "failed requests during the reload: {failed:?}"
    );
    assert!(ok > 0);
    for (slot, pid) in &after {
        assert_ne!(before[slot], *pid, "slot {slot} was not replaced");
    }
    r.stderr_line(PROMPT, "worker 1 replaced");
    r.signal(libc::SIGTERM);
    assert_eq!(r.code(PROMPT), 0);
}

#[test]
fn ttin_adds_and_ttou_removes_a_worker() {
    if !require_pid1() {
        return;
    }
    let (mut r, port) = start("1", &[]);
    slots(port, 1);
    r.signal(libc::SIGTTIN);
    r.stderr_line(PROMPT, "scaling from 1 to 2");
    let two = slots(port, 2);
    let second = host_pid(r.init_pid, two[&1]);
    r.signal(libc::SIGTTOU);
    r.stderr_line(PROMPT, "scaling from 2 to 1");
    wait_until("slot 1's worker to stop", PROMPT, || !pid_alive(second));
    // Only slot 0 answers now.
    for _ in 0..20 {
        assert_eq!(who(port).unwrap().1, 0);
    }
    r.signal(libc::SIGTERM);
    assert_eq!(r.code(PROMPT), 0);
}

#[test]
fn a_crash_loop_stops_everything_and_exits_1() {
    if !require_pid1() {
        return;
    }
    let mut r = Running::pid1(&[
        "--workers",
        "2",
        "--crash-loop",
        "3",
        "--",
        DEMO,
        "exit",
        "3",
    ]);
    assert_eq!(r.code(PROMPT), 1);
    r.drain_stderr();
    assert!(
        r.stderr_seen
            .iter()
            .any(|l| l.contains("crash loop: worker") && l.contains("failed 3 times")),
        "{:?}",
        r.stderr_seen
    );
}

#[test]
fn a_worker_that_ignores_term_is_killed_after_the_graceful_timeout() {
    if !require_pid1() {
        return;
    }
    let mut r = Running::pid1(&[
        "--workers",
        "2",
        "--graceful-timeout",
        "1s",
        "--",
        DEMO,
        "ignore-term",
    ]);
    r.stderr_line(PROMPT, "worker 1 started");
    // Both print a ready line once their TERM is ignored.
    r.line_matching(PROMPT, |l| l.starts_with("ready"));
    r.line_matching(PROMPT, |l| l.starts_with("ready"));
    r.signal(libc::SIGTERM);
    assert_eq!(r.code(PROMPT), 0);
    assert!(
        r.stderr_seen
            .iter()
            .any(|l| l.contains("SIGKILL to 2 worker(s)")),
        "{:?}",
        r.stderr_seen
    );
}

#[test]
fn command_not_found_in_worker_mode_exits_127() {
    let (code, _, err) = run(&["--workers", "2", "--", "no-such-worker-binary"], false);
    assert_eq!(code, 127, "{err}");
}

#[test]
fn json_log_lines() {
    if !require_pid1() {
        return;
    }
    let (mut r, port) = start("1", &["--log-format", "json"]);
    slots(port, 1);
    r.signal(libc::SIGTERM);
    assert_eq!(r.code(PROMPT), 0);
    let events: BTreeSet<String> = r
        .stderr_seen
        .iter()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| {
            l.split("\"event\":\"")
                .nth(1)
                .and_then(|e| e.split('"').next())
                .map(String::from)
        })
        .collect();
    for e in ["listening", "started", "shutdown", "exit"] {
        assert!(events.contains(e), "no {e} event in {:?}", r.stderr_seen);
    }
}

/// An idle init with idle workers does not wake up: its context-switch
/// count stays put while nothing happens (the rate is in bench/).
#[test]
fn idle_init_with_idle_workers_does_not_wake_up() {
    if !require_pid1() {
        return;
    }
    let (mut r, port) = start("2", &[]);
    slots(port, 2);
    assert_stays_asleep(r.init_pid);
    r.signal(libc::SIGTERM);
    assert_eq!(r.code(PROMPT), 0);
}

/// What a worker receives: its slot, the count, the socket at fd 3 with
/// TCP_NODELAY set, and LISTEN_PID equal to its own pid (set after the fork).
#[test]
fn workers_see_listen_fds_their_own_listen_pid_and_tcp_nodelay() {
    let script = r#"
import os, socket
s = socket.socket(fileno=3)
fields = [os.environ["CINIT_WORKER_ID"], os.environ["CINIT_WORKERS"],
      os.environ["LISTEN_FDS"], os.environ["LISTEN_FDNAMES"],
      os.environ["LISTEN_PID"] == str(os.getpid()),
      s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0,
      s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) != 0]
# One write(2): two workers print at once, and print() may split a line.
os.write(1, (" ".join(map(str, fields)) + "\n").encode())
s.detach()
"#;
    let (code, out, err) = run(
        &[
            "--workers",
            "2",
            "--restart",
            "never",
            "--listen",
            "127.0.0.1:0",
            "--listen",
            "unix:/tmp/cinit-test-worker-env.sock",
            "--",
            "python3",
            "-c",
            script,
        ],
        false,
    );
    assert_eq!(code, 0, "{err}");
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    let port_name = |l: &str| l.split_whitespace().nth(3).unwrap_or("").to_string();
    assert_eq!(lines.len(), 2, "{out}");
    for (slot, line) in lines.iter().enumerate() {
        let name = port_name(line);
        assert!(
            name.starts_with("tcp-") && name.ends_with(":cinit-test-worker-env.sock"),
            "{line:?} in {out:?}"
        );
        assert_eq!(*line, format!("{slot} 2 2 {name} True True True"));
    }
}
