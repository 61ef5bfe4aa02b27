//! Readiness end to end, as PID 1: a worker takes traffic when it serves,
//! not when a timer says so. The real FastAPI app (with a slow lifespan
//! startup), gunicorn's workers as grandchildren, the demo worker, a
//! Python worker speaking sd_notify with the standard library, a worker
//! that never becomes ready, a roll whose new worker fails, a hung worker
//! under the watchdog, and what the init tells its own NOTIFY_SOCKET.

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;

const SLOW: Duration = Duration::from_secs(90);

fn app_dir() -> String {
    format!("{}/examples/fastapi", env!("CARGO_MANIFEST_DIR"))
}

fn python_packages() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import fastapi, uvicorn, gunicorn"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "fastapi, uvicorn and gunicorn are needed: bash .ci/test installs them"
    );
    ok
}

/// The init as PID 1 in examples/fastapi with `env` set.
fn start(args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut cmd = clean_command("unshare");
    cmd.args(["--pid", "--fork", "--kill-child", "--mount-proc", INIT])
        .args(args)
        .current_dir(app_dir())
        .envs(env.iter().copied());
    Running::start(cmd, true)
}

fn uvicorn(extra: &[&'static str]) -> Vec<&'static str> {
    let mut v = vec![
        "python3",
        "-m",
        "uvicorn",
        "app.main:app",
        "--fd",
        "3",
        "--log-level",
        "warning",
    ];
    v.extend_from_slice(extra);
    v
}

/// A client asking `/pid` in a loop, keeping the failures.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU32>,
    failed: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU32::new(0));
        let failed = Arc::new(Mutex::new(Vec::new()));
        let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match http_get(port, "/pid") {
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

    /// Waits until the client has had more than `n` answers in all.
    fn wait_past(&self, n: u32) -> u32 {
        wait_until("the client's next answer", PROMPT, || {
            self.ok.load(Ordering::Relaxed) > n
        });
        self.ok.load(Ordering::Relaxed)
    }

    fn finish(mut self) -> (u32, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let failed = self.failed.lock().unwrap().clone();
        (self.ok.load(Ordering::Relaxed), failed)
    }
}

/// The number after "after " in a `ready (pid N) after 3.1s` line.
fn ready_after(line: &str) -> f64 {
    line.split(" after ")
        .nth(1)
        .and_then(|r| r.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no duration in {line:?}"))
}

#[test]
fn a_slow_fastapi_worker_is_ready_when_it_serves_and_a_roll_drops_nothing() {
    if !require_pid1() || !python_packages() {
        return;
    }
    let mut args = vec!["--workers", "1", "--listen", "127.0.0.1:0", "--"];
    args.extend(uvicorn(&[]));
    let mut r = start(&args, &[("APP_STARTUP_DELAY", "3")]);
    let port = listening_port(&mut r);
    let line = r.stderr_line(SLOW, "worker 0 ready");
    assert!(line.contains("(listening)"), "{line}");
    assert!(
        ready_after(&line) >= 2.9,
        "ready before the 3 s lifespan startup ended: {line}"
    );
    // Ready means serving: the first request succeeds.
    let (status, _) = http_get(port, "/pid").expect("a ready worker serves");
    assert_eq!(status, 200);
    let load = Load::start(port);
    r.signal(libc::SIGHUP);
    let line = r.stderr_line(SLOW, "replacement started");
    let new: i64 = line
        .split("(pid ")
        .nth(1)
        .and_then(|p| p.trim_end_matches(')').parse().ok())
        .unwrap();
    let ready = r.stderr_line(SLOW, "ready (pid");
    assert!(ready.contains(&format!("(pid {new})")), "{ready}");
    assert!(ready_after(&ready) >= 2.9, "{ready}");
    r.stderr_line(SLOW, "worker 0 replaced");
    // Requests keep coming to the new worker.
    wait_until("the new worker to answer", SLOW, || {
        http_get(port, "/pid")
            .ok()
            .and_then(|(_, b)| json_field(&b, "pid"))
            == Some(new)
    });
    let (ok, failed) = load.finish();
    assert!(
        failed.is_empty(),
        "failed requests during the roll: {failed:?}"
    );
    assert!(ok > 0);
    r.signal(libc::SIGTERM);
    assert_eq!(r.code(PROMPT), 0);
}

#[test]
fn gunicorn_is_ready_when_its_workers_accept() {
    if !require_pid1() || !python_packages() {
        return;
    }
    let mut r = start(
        &[
            "--workers",
            "1",
            "--listen",
            "127.0.0.1:0",
            "--",
            "python3",
            "-m",
            "gunicorn",
            "-k",
            "uvicorn.workers.UvicornWorker",
            "-w",
            "2",
            "--log-level",
            "warning",
            "app.main:app",
        ],
        &[("APP_STARTUP_DELAY", "2")],
    );
    let port = listening_port(&mut r);
    let line = r.stderr_line(SLOW, "worker 0 ready");
    assert!(line.contains("(listening)"), "{line}");
    assert!(ready_after(&line) >= 1.9, "{line}");
    assert_eq!(http_get(port, "/").unwrap().0, 200);
    r.signal(libc::SIGTERM);
    assert_eq!(r.code(PROMPT), 0);
}

#[test]
fn the_demo_worker_is_ready_when_its_thread_accepts() {
    if !require_pid1() {
        return;
    }
    let mut r = Running::pid1(&[
        "--workers",
        "2",
        "--listen",
        "127.0.0.1:0",
        "--",
        DEMO,
        "serve",
    ]);
    for slot in 0..2 {
        let line = r.stderr_line(PROMPT, &format!("worker {slot} ready"));
        assert!(line.contains("(listening)"), "{line}");
    }
    r.stderr_line(PROMPT, "ready: 2 worker(s) serving");
    assert_stays_asleep(r.init_pid);
    r.signal(libc::SIGTERM);
    assert_eq!(r.code(PROMPT), 0);
}

/// A worker in Python's standard library that says READY=1 after a while.
const NOTIFY_WORKER: &str = r#"
import os, socket, time, sys
time.sleep(float(sys.argv[1]))
addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"READY=1\nSTATUS=warm", addr)
print("told", flush=True)
while True:
    time.sleep(3600)
"#;

#[test]
fn notify_readiness_from_a_standard_library_worker() {
    if !require_pid1() {
        return;
    }
    let mut r = Running::pid1(&[
        "--workers",
        "1",
        "--ready",
        "notify",
        "--",
        "python3",
        "-c",
        NOTIFY_WORKER,
        "1",
    ]);
    let line = r.stderr_line(PROMPT, "worker 0 ready");
    assert!(line.contains("(READY=1)"), "{line}");
    r.signal(libc::SIGTERM);
    assert_eq!(r.code(PROMPT), 0);
}

#[test]
fn a_worker_that_never_becomes_ready_is_a_failed_start() {
    if !require_pid1() {
        return;
    }
    let mut r = Running::pid1(&[
        "--workers",
        "1",
        "--ready",
        "notify",
        "--ready-timeout",
        "500ms",
        "--crash-loop",
        "2",
        "--graceful-timeout",
        "1s",
        "--",
        DEMO,
        "sleep",
    ]);
    r.stderr_line(PROMPT, "was not ready within 500ms");
    r.stderr_line(PROMPT, "crash loop: worker 0 failed 2 times");
    assert_eq!(r.code(PROMPT), 1);
}

#[test]
fn a_roll_whose_new_worker_fails_keeps_the_old_one_serving() {
    if !require_pid1() {
        return;
    }
    let dir = TempDir::new("roll-fail");
    let marker = dir.path("broken");
    // The worker serves, unless the marker exists (a bad deploy).
    let script = format!("[ -e {marker} ] && exit 3; exec {DEMO} serve");
    let mut r = Running::pid1(&[
        "--workers",
        "1",
        "--listen",
        "127.0.0.1:0",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let port = listening_port(&mut r);
    r.stderr_line(PROMPT, "worker 0 ready");
    let before = json_field(&http_get(port, "/").unwrap().1, "pid");
    std::fs::write(&marker, "").unwrap();
    let load = Load::start(port);
    load.wait_past(0);
    r.signal(libc::SIGHUP);
    r.stderr_line(
        PROMPT,
        "reload stopped: the new worker 0 exited with code 3",
    );
    // Answers go on after the failed roll.
    let served = load.ok.load(Ordering::Relaxed);
    load.wait_past(served);
    let (_, failed) = load.finish();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(json_field(&http_get(port, "/").unwrap().1, "pid"), before);
    r.signal(libc::SIGTERM);
    assert_eq!(r.code(PROMPT), 0, "a failed roll leaves the init up");
}

#[test]
fn a_hung_worker_is_replaced_under_the_watchdog() {
    if !require_pid1() || !python_packages() {
        return;
    }
    let mut args = vec![
        "--workers",
        "1",
        "--listen",
        "127.0.0.1:0",
        "--ready",
        "notify",
        "--watchdog",
        "2s",
        "--graceful-timeout",
        "2s",
        "--",
    ];
    args.extend(uvicorn(&[]));
    let mut r = start(&args, &[("APP_NOTIFY", "1")]);
    let port = listening_port(&mut r);
    r.stderr_line(SLOW, "worker 0 ready");
    let old = json_field(&http_get(port, "/pid").unwrap().1, "pid").unwrap();
    // Block its event loop: no request is answered, no WATCHDOG=1 sent.
    std::thread::spawn(move || {
        let _ = http_get(port, "/block");
    });
    let line = r.stderr_line(SLOW, "is hung");
    assert!(line.contains("no WATCHDOG=1"), "{line}");
    r.stderr_line(SLOW, "replacement started");
    // Within the watchdog plus the graceful timeout the hung one is gone
    // (it cannot act on TERM with its loop blocked: SIGKILL) and a new one
    // serves.
    wait_until("a new worker to serve", SLOW, || {
        http_get(port, "/pid")
            .ok()
            .and_then(|(_, b)| json_field(&b, "pid"))
            .is_some_and(|p| p != old)
    });
    r.signal(libc::SIGTERM);
    assert_eq!(r.code(PROMPT), 0);
}

#[test]
fn the_init_tells_its_own_notify_socket() {
    if !require_pid1() {
        return;
    }
    let dir = TempDir::new("upstream");
    let path = dir.path("notify.sock");
    let listener = UnixDatagram::bind(&path).unwrap();
    listener
        .set_read_timeout(Some(PROMPT))
        .expect("a read timeout");
    let mut cmd = clean_command("unshare");
    cmd.args(["--pid", "--fork", "--kill-child", "--mount-proc", INIT])
        .args([
            "--workers",
            "2",
            "--listen",
            "127.0.0.1:0",
            "--",
            DEMO,
            "serve",
        ])
        .env("NOTIFY_SOCKET", &path);
    let mut r = Running::start(cmd, true);
    let next = || {
        let mut buf = [0u8; 512];
        let n = listener.recv(&mut buf).expect("a message upstream");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let m = next();
    assert!(m.starts_with("READY=1"), "{m}");
    assert!(m.contains("STATUS=2 worker(s) ready"), "{m}");
    r.signal(libc::SIGHUP);
    let m = next();
    assert!(m.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{m}");
    let m = next();
    assert!(m.starts_with("READY=1"), "{m}");
    r.signal(libc::SIGTERM);
    let m = next();
    assert!(m.starts_with("STOPPING=1"), "{m}");
    assert_eq!(r.code(PROMPT), 0);
    // The workers got the init's own socket, not the init's parent's.
    drop(listener);
}
