//! The control socket and the metrics page, end to end: the init runs as
//! PID 1 (`unshare`) with its control socket in a directory of the test's
//! own (`--control`), and the same binary is its client. Every wait is a
//! condition with a deadline; the one time-based check is the idle
//! wake-up count, a measurement.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// An init serving a control socket in a directory of its own.
struct Init {
    run: Running,
    sock: String,
    dir: TempDir,
}

/// `init --control DIR/c.sock ARGS` as PID 1; None when PID 1 cannot be
/// had here (skipped).
fn start(args: &[&str]) -> Option<Init> {
    if !require_pid1() {
        return None;
    }
    let dir = TempDir::new("status");
    let sock = dir.path("c.sock");
    let mut all = vec!["--control", sock.as_str()];
    all.extend_from_slice(args);
    let run = Running::pid1(&all);
    let init = Init { run, sock, dir };
    wait_until("the control socket", PROMPT, || {
        std::path::Path::new(&init.sock).exists()
    });
    Some(init)
}

/// `init --control SOCK ARGS` as a client: (code, stdout, stderr).
fn client_as(sock: &str, args: &[&str], uid: Option<u32>) -> (i32, String, String) {
    let mut c = clean_command(INIT);
    c.args(["--control", sock]).args(args).stdin(Stdio::null());
    if let Some(u) = uid {
        c.uid(u).gid(u);
    }
    let out = c.output().expect("run the client");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Init {
    fn client(&self, args: &[&str]) -> (i32, String, String) {
        client_as(&self.sock, args, None)
    }

    fn status(&self) -> Value {
        let (code, out, err) = self.client(&["--status", "--json"]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    fn wait_ready(&self) {
        wait_until("init --probe ready to pass", PROMPT, || {
            self.client(&["--probe", "ready"]).0 == 0
        });
    }

    /// A raw exchange on the socket: what it writes, then what comes back
    /// (up to EOF, or the read timeout).
    fn raw(&self, request: &[u8]) -> String {
        let mut s = UnixStream::connect(&self.sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(request);
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }
}

fn pids(status: &Value) -> Vec<i64> {
    status["programs"][0]["slots"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["worker"]["pid"].as_i64())
        .collect()
}

#[test]
fn status_shows_the_workers_in_text_and_json_on_a_socket_only_root_may_use() {
    let Some(mut init) = start(&[
        "--workers",
        "3",
        "--listen",
        "127.0.0.1:0",
        "--",
        DEMO,
        "serve",
    ]) else {
        return;
    };
    let port = listening_port(&mut init.run);
    init.wait_ready();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&init.sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the control socket's mode");

    let s = init.status();
    assert_eq!(s["schema"], 1);
    assert_eq!(s["pid"], 1, "the init is PID 1 of its namespace");
    assert_eq!(
        (s["phase"].as_str(), s["ready"].as_bool()),
        (Some("running"), Some(true))
    );
    let p = &s["programs"][0];
    assert_eq!(
        (p["workers"].as_u64(), p["ready"].as_u64()),
        (Some(3), Some(3))
    );
    let mut seen = pids(&s);
    assert_eq!(seen.len(), 3);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3, "three distinct workers");
    assert_eq!(children_of(init.run.init_pid).len(), 3);
    for slot in p["slots"].as_array().unwrap() {
        let w = &slot["worker"];
        assert_eq!(slot["state"], "ready");
        assert!(w["memory_bytes"].as_u64().unwrap() > 0, "{w}");
        assert!(w["rss_bytes"].as_u64().unwrap() >= w["pss_bytes"].as_u64().unwrap());
        assert!(w["cpu_percent"].as_f64().is_some(), "{w}");
        assert_eq!(slot["restarts"]["crash"], 0);
    }
    let l = &s["listeners"][0];
    assert_eq!(l["address"], format!("127.0.0.1:{port}"));
    assert_eq!(
        (l["fd"].as_u64(), l["accept_queue"].as_u64()),
        (Some(3), Some(0))
    );
    assert!(s["limits"]["cpus"].as_f64().unwrap() > 0.0);

    // A worker killed from outside: a crash, restarted in its slot.
    let victim = seen[0];
    let host_victim = children_of(init.run.init_pid)
        .into_iter()
        .find(|&h| {
            std::fs::read_to_string(format!("/proc/{h}/status"))
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("NSpid:"))
                .and_then(|n| n.split_whitespace().last()?.parse::<i64>().ok())
                == Some(victim)
        })
        .expect("the worker's host pid");
    kill(host_victim, 9);
    wait_until("the killed worker's slot to count a crash", PROMPT, || {
        let s = init.status();
        s["programs"][0]["restarts"]["crash"] == 1 && s["ready"] == true
    });
    let s = init.status();
    let slot = s["programs"][0]["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|sl| sl["restarts"]["crash"] == 1)
        .unwrap()
        .clone();
    assert_eq!(slot["last_exit"]["signal"], "KILL");
    assert_eq!(slot["last_exit"]["reason"], "crash");
    assert_ne!(slot["worker"]["pid"].as_i64(), Some(victim));

    // The text form: a header and one row per slot.
    let (code, out, err) = init.client(&["--status"]);
    assert_eq!(code, 0, "{err}");
    let first = out.lines().next().unwrap();
    assert!(
        first.starts_with("cinit (pid 1)  running  up ") && first.ends_with("ready (3/3)"),
        "{out}"
    );
    assert!(out.contains("workers 3 (--workers; at most 64)"), "{out}");
    let header = out.lines().find(|l| l.starts_with("SLOT")).expect(&out);
    for col in [
        "PID",
        "STATE",
        "READY",
        "UPTIME",
        "RESTARTS",
        "LAST EXIT",
        "MEMORY",
        "CPU",
        "STATUS",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.parse::<u32>().is_ok())
        })
        .collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(
        rows.iter()
            .any(|r| r.contains("1 (crash 1)") && r.contains("SIGKILL (crash)")),
        "{out}"
    );
    assert!(
        out.contains(&format!("127.0.0.1:{port}  3   0 of ")),
        "{out}"
    );

    // Another uid: the socket's mode keeps it out, and past the mode
    // (made world-writable here) the peer check refuses it.
    let (code, _, err) = client_as(&init.sock, &["--status"], Some(65534));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("permission denied"), "{err}");
    std::fs::set_permissions(&init.dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&init.sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    for args in [&["--status"][..], &["--stop"], &["--probe", "ready"]] {
        let (code, out, err) = client_as(&init.sock, args, Some(65534));
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(
            err.contains("refused: uid 65534 may not control this init"),
            "{err}"
        );
    }
    assert_eq!(
        init.status()["phase"],
        "running",
        "the refused stop did nothing"
    );

    init.run.signal(15);
    assert_eq!(init.run.code(PROMPT), 0);
    assert!(
        !std::path::Path::new(&init.sock).exists(),
        "the init removes its socket file"
    );
    let (code, _, err) = init.client(&["--status"]);
    assert_eq!(code, 3, "no init answers: {err}");
}

#[test]
fn reload_scale_and_stop_through_the_socket_do_what_the_signals_do() {
    let Some(mut init) = start(&[
        "--workers",
        "2",
        "--max-workers",
        "4",
        "--listen",
        "127.0.0.1:0",
        "--",
        DEMO,
        "serve",
    ]) else {
        return;
    };
    init.wait_ready();
    let (code, out, err) = init.client(&["--scale", "+1"]);
    assert_eq!(
        (code, out.trim()),
        (0, "scaling from 2 to 3 worker(s)"),
        "{err}"
    );
    init.run
        .stderr_line(PROMPT, "control socket: scale +1 asked by pid");
    init.run.stderr_line(PROMPT, "worker 2 started");
    wait_until("three workers", PROMPT, || {
        children_of(init.run.init_pid).len() == 3
    });

    // Beyond --max-workers: refused, nothing changes (like TTIN).
    let (code, _, err) = init.client(&["--scale", "5"]);
    assert_eq!(code, 1);
    assert!(err.contains("(4, --max-workers)"), "{err}");
    let (code, _, _) = init.client(&["--scale", "+9"]);
    assert_eq!(code, 0, "+9 stops at the maximum, as nine TTINs would");
    wait_until("four workers", PROMPT, || {
        init.status()["programs"][0]["workers"] == 4
    });
    let (code, out, _) = init.client(&["--scale=-3"]);
    assert_eq!((code, out.trim()), (0, "scaling from 4 to 1 worker(s)"));
    wait_until("one worker left", PROMPT, || {
        children_of(init.run.init_pid).len() == 1
    });
    let (code, out, _) = init.client(&["--scale", "1"]);
    assert_eq!((code, out.trim()), (0, "already at 1 worker(s)"));

    // Reload: the worker is replaced, new first.
    init.wait_ready();
    let before = pids(&init.status());
    let (code, out, _) = init.client(&["--reload"]);
    assert_eq!(code, 0);
    assert!(out.contains("replacing every worker"), "{out}");
    init.run.stderr_line(PROMPT, "worker 0 replaced: pid");
    wait_until("the replacement to take over", PROMPT, || {
        let s = init.status();
        s["ready"] == true && pids(&s) != before && s["programs"][0]["restarts"]["reload"] == 1
    });

    // Stop: the same as TERM; a second stop changes nothing.
    let (code, out, _) = init.client(&["--stop"]);
    assert_eq!((code, out.trim()), (0, "stopping"));
    let (code, _, err) = init.client(&["--stop"]);
    assert!(code == 1 || code == 3, "{code} {err}");
    assert_eq!(init.run.code(PROMPT), 0, "a clean shutdown");
    let log = init.run.drain_stderr().join("\n");
    assert!(log.contains("control socket: stop asked by pid"), "{log}");
    assert!(!log.contains("killing everything"), "{log}");
}

#[test]
fn plain_mode_child_is_stopped_by_stop_and_cannot_be_scaled() {
    let Some(mut init) = start(&["--", DEMO, "signals"]) else {
        return;
    };
    init.wait_ready();
    let (code, _, err) = init.client(&["--scale", "+1"]);
    assert_eq!(code, 1);
    assert!(err.contains("plain mode runs one child"), "{err}");
    let s = init.status();
    assert_eq!(s["mode"], "plain");
    let (code, _, _) = init.client(&["--stop"]);
    assert_eq!(code, 0);
    // The child got TERM (15), as `docker stop` would give it, and its
    // exit (0 on TERM) is the init's.
    init.run.line_matching(PROMPT, |l| l.trim() == "15");
    assert_eq!(init.run.code(PROMPT), 0);
}

#[test]
fn probe_ready_is_false_while_starting_and_stopping_and_true_when_all_are_ready() {
    let go = TempDir::new("status-go");
    let flag = go.path("go");
    let Some(mut init) = start(&[
        "--wait-for",
        &format!("file://{flag}"),
        "--wait-timeout",
        "60s",
        "--workers",
        "2",
        "--ready",
        "notify",
        "--shutdown-delay",
        "30s",
        "--",
        DEMO,
        "sleep",
        "600",
    ]) else {
        return;
    };
    // Pre-start: not ready, and it says why.
    let (code, out, _) = init.client(&["--probe", "ready"]);
    assert_eq!((code, out.trim()), (1, "not ready: pre-start step 1/1"));
    assert_eq!(init.status()["phase"], "prestart");
    std::fs::write(&flag, "").unwrap();
    // The workers never send READY=1: running, but starting.
    wait_until("the workers to start", PROMPT, || {
        init.status()["programs"][0]["slots"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "starting")
    });
    let (code, out, _) = init.client(&["--probe", "ready"]);
    assert_eq!((code, out.trim()), (1, "not ready: 0/2 worker(s) ready"));
    init.run.signal(15);
    init.run.stderr_line(PROMPT, "still serving for 30s");
    let (code, out, _) = init.client(&["--probe", "ready"]);
    assert_eq!((code, out.trim()), (1, "not ready: draining"));
    init.run.signal(15);
    init.run.code(PROMPT);

    // Ready once every worker is.
    let Some(init) = start(&[
        "--workers",
        "2",
        "--listen",
        "127.0.0.1:0",
        "--",
        DEMO,
        "serve",
    ]) else {
        return;
    };
    init.wait_ready();
    let (code, out, _) = init.client(&["--probe", "ready"]);
    assert_eq!((code, out.trim()), (0, "ready: 2/2 worker(s) ready"));
    let (code, out, _) = init.client(&["--probe", "ready", "--json"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["ready"].as_bool(), v["ready_workers"].as_u64()),
        (Some(true), Some(2))
    );
}

#[test]
fn malformed_oversized_slow_and_too_many_requests_never_hold_the_loop() {
    let Some(init) = start(&["--workers", "1", "--", DEMO, "sleep", "600"]) else {
        return;
    };
    init.wait_ready();
    let error = |answer: &str| -> String {
        let v: Value = serde_json::from_str(answer).unwrap_or_else(|e| panic!("{e}: {answer:?}"));
        assert_eq!(v["ok"], false, "{answer}");
        v["error"].as_str().unwrap().to_string()
    };
    assert!(error(&init.raw(b"hello\n")).contains("not a JSON object"));
    assert!(
        error(&init.raw(b"{\"version\":7,\"command\":\"status\"}\n")).contains("speaks version 1")
    );
    assert!(error(&init.raw(b"{\"command\":\"format c:\"}\n")).contains("unknown command"));
    assert!(error(&init.raw(&[b'x'; 10_000])).contains("longer than 4096 bytes"));
    assert!(error(&init.raw(&[0xff, 0xfe, b'\n'])).contains("not a JSON object"));
    // A request without its newline, then EOF, still counts.
    let mut s = UnixStream::connect(&init.sock).unwrap();
    s.write_all(b"{\"command\":\"ready\"}").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.contains("\"ready\":true"), "{out}");

    // A slow client holds its own connection only: others are answered
    // meanwhile, and it is told off at its deadline.
    let mut slow = UnixStream::connect(&init.sock).unwrap();
    slow.write_all(b"{\"command\":").unwrap();
    let started = Instant::now();
    assert_eq!(init.status()["phase"], "running");
    let (code, _, _) = init.client(&["--probe", "ready"]);
    assert_eq!(code, 0);
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut out = String::new();
    slow.read_to_string(&mut out).unwrap();
    assert!(error(&out).contains("no complete request within"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(15));

    // More idle connections than are served at once: the extra ones are
    // told "busy", and the init answers again once the idle ones are gone.
    let idle: Vec<UnixStream> = (0..16)
        .map(|_| UnixStream::connect(&init.sock).unwrap())
        .collect();
    wait_until("the 17th connection to be turned away", PROMPT, || {
        let answer = init.raw(b"{\"command\":\"ready\"}\n");
        answer.contains("busy")
    });
    drop(idle);
    wait_until("the init to answer again", PROMPT, || {
        init.client(&["--probe", "ready"]).0 == 0
    });
    // And it still supervises: a scale goes through at once.
    let (code, _, _) = init.client(&["--scale", "2"]);
    assert_eq!(code, 0);
    wait_until("two workers", PROMPT, || {
        init.status()["programs"][0]["workers"] == 2
    });
}

#[test]
fn an_idle_init_with_its_sockets_open_makes_no_wake_up() {
    let port = free_port();
    let metrics = format!("127.0.0.1:{port}");
    let Some(init) = start(&[
        "--workers",
        "2",
        "--metrics",
        &metrics,
        "--",
        DEMO,
        "sleep",
        "600",
    ]) else {
        return;
    };
    init.wait_ready();
    // One request of each kind first: nothing they leave behind may wake
    // the init up afterwards.
    assert_eq!(init.client(&["--status"]).0, 0);
    let (code, _) = http_get(port, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert_stays_asleep(init.run.init_pid);
}

/// The page, parsed by Prometheus' own parsers.
#[test]
fn the_metrics_page_parses_with_prometheus_client_and_promtool() {
    let port = free_port();
    let metrics = format!("127.0.0.1:{port}");
    let Some(init) = start(&[
        "--workers",
        "2",
        "--listen",
        "127.0.0.1:0",
        "--metrics",
        &metrics,
        "--",
        DEMO,
        "serve",
    ]) else {
        return;
    };
    init.wait_ready();
    let (code, page) = http_get(port, "/metrics").unwrap();
    assert_eq!(code, 200);
    for name in [
        "cinit_start_time_seconds ",
        "cinit_phase{phase=\"running\"} 1",
        "cinit_ready 1",
        "cinit_workers{program=\"\",state=\"ready\"} 2",
        "cinit_restarts_total{program=\"\",reason=\"oom\"} 0",
        "cinit_worker_memory_bytes{program=\"\",slot=\"1\"} ",
        "cinit_listener_accept_queue{address=\"127.0.0.1:",
        "cinit_limit_cpus ",
    ] {
        assert!(page.contains(name), "{name} missing:\n{page}");
    }
    assert_eq!(http_get(port, "/").unwrap().0, 404);
    assert_eq!(http_get(port, "/metrics?x=1").unwrap().0, 200);

    let dir = TempDir::new("metrics");
    let file = dir.path("page.txt");
    std::fs::write(&file, &page).unwrap();
    let parse = Command::new("python3")
        .args([
            "-c",
            "import sys\n\
             from prometheus_client.parser import text_string_to_metric_families\n\
             fams = list(text_string_to_metric_families(open(sys.argv[1]).read()))\n\
             for f in fams:\n\
             \x20   print(f.name, f.type, len(f.samples))\n",
            &file,
        ])
        .output();
    match parse {
        Ok(o) if o.status.success() => {
            let out = String::from_utf8_lossy(&o.stdout);
            // The parser names counters without `_total`.
            for fam in [
                "cinit_restarts counter 8",
                "cinit_workers gauge 7",
                "cinit_ready gauge 1",
            ] {
                assert!(out.contains(fam), "{fam} not in\n{out}");
            }
        }
        Ok(o) if String::from_utf8_lossy(&o.stderr).contains("No module named") => skip(
            Need::Prometheus,
            "python3 has no prometheus_client (pip install prometheus_client)",
        ),
        Ok(o) => panic!(
            "prometheus_client could not parse the page: {}\n{page}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => skip(Need::Prometheus, &format!("no python3: {e}")),
    }
    match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
    {
        Ok(o) => assert!(
            o.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(_) => skip(Need::Prometheus, "no promtool (apt-get install prometheus)"),
    }
}

/// Not PID 1 and not root: /run is not writable, so the socket goes to
/// $XDG_RUNTIME_DIR, where a client of the same user finds it.
#[test]
fn without_a_writable_run_the_socket_goes_to_xdg_runtime_dir() {
    if !is_root() {
        skip(Need::Pid1, "needs root to run the init as another user");
        return;
    }
    let dir = TempDir::new("xdg");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let xdg = dir.0.to_string_lossy().into_owned();
    let mut cmd = clean_command(INIT);
    cmd.args(["--workers", "1", "--", DEMO, "sleep", "600"])
        // The default place, not the private one the helpers give.
        .env("CINIT_CONTROL", "auto")
        .env("XDG_RUNTIME_DIR", &xdg)
        .uid(65534)
        .gid(65534);
    let mut run = Running::start(cmd, false);
    let sock = dir.path("cinit.sock");
    wait_until("the socket in $XDG_RUNTIME_DIR", PROMPT, || {
        std::path::Path::new(&sock).exists()
    });
    let mut c = clean_command(INIT);
    c.args(["--probe", "ready"])
        .env("XDG_RUNTIME_DIR", &xdg)
        .uid(65534)
        .gid(65534);
    wait_until("the init's own user to be answered", PROMPT, || {
        c.output().is_ok_and(|o| o.status.success())
    });
    run.signal(15);
    assert_eq!(run.code(PROMPT), 0);
    assert!(!std::path::Path::new(&sock).exists());
}
