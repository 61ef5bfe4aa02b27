//! The linux/arm64 build (static aarch64 musl, linked by rust-lld) run
//! under qemu-user on this x86_64 machine (see `qemu.rs` for how: through
//! binfmt_misc where the machine allows, else the emulator called
//! directly): plain mode as PID 1 (exit codes, 126/127, signals, orphans,
//! the graceful timeout), worker mode with the aarch64 demo worker on a
//! shared port (HUP, TTIN/TTOU, TERM), and `--dry-run --json`.
//!
//! Emulation is slow and its speed varies: these tests check behaviour
//! only, and every wait is on a condition with a deadline.

use std::collections::BTreeSet;

use crate::common::*;
use crate::qemu::Aarch64;

/// The namespace's pid 1 as the aarch64 child sees it: its parent.
#[test]
fn arm64_init_is_pid1_and_returns_the_childs_exit_code() {
    if !require_pid1() {
        return;
    }
    let a = Aarch64::new();
    let (code, out, err) = a.run_pid1(&["--", "sh", "-c", "echo ppid=$PPID; exit 3"]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(
        out.trim(),
        "ppid=1",
        "the emulated init is pid 1 of the namespace: {err}"
    );
    assert_eq!(a.run_pid1(&["sh", "-c", "exit 0"]).0, 0);
    assert_eq!(
        a.run_pid1(&["--", "sh", "-c", "kill -TERM $$"]).0,
        143,
        "128 + SIGTERM"
    );
    assert_eq!(a.run_pid1(&["--", "sh", "-c", "kill -USR1 $$"]).0, 138);

    // An aarch64 child of the aarch64 init, and its exit code.
    let mut args = vec!["--".to_string()];
    args.extend(a.argv("cinit-demo"));
    args.extend(["exit".into(), "42".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = a.run_pid1(&args);
    assert_eq!(code, 42, "{out} {err}");
    assert!(out.starts_with("ready "), "{out}");
}

#[test]
fn arm64_init_exits_127_and_126_for_commands_it_cannot_run() {
    if !require_pid1() {
        return;
    }
    let a = Aarch64::new();
    let (code, _, err) = a.run_pid1(&["--", "no-such-program-here"]);
    assert_eq!(code, 127, "{err}");
    assert!(
        err.contains("no-such-program-here") && err.contains("not found"),
        "{err}"
    );
    let (code, _, err) = a.run_pid1(&["--", "/etc"]);
    assert_eq!(code, 126, "{err}");
    assert!(err.contains("not executable"), "{err}");
}

/// The aarch64 demo prints the number of every signal it gets; the init
/// forwards each one, and TERM (last) ends the demo, which exits 0.
/// Standard signals only: qemu-user keeps two realtime signals of the host
/// for itself and renumbers the others between host and guest (the host's
/// SIGRTMIN+3 reaches the emulated init as 35), which no real arm64
/// machine does; realtime forwarding is tested natively in `pid1.rs`.
#[test]
fn arm64_init_forwards_signals_as_pid1() {
    if !require_pid1() {
        return;
    }
    let a = Aarch64::new();
    let mut args = vec!["--".to_string()];
    args.extend(a.argv("cinit-demo"));
    args.push("signals".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut r = a.pid1(&args);
    let ready = r.line(PROMPT);
    assert!(ready.starts_with("ready "), "{ready}");
    for sig in [
        libc::SIGHUP,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGWINCH,
        libc::SIGALRM,
        libc::SIGURG,
        libc::SIGTERM,
    ] {
        r.signal(sig);
        assert_eq!(r.line(PROMPT), sig.to_string(), "signal {sig}");
    }
    assert_eq!(r.code(PROMPT), 0, "the demo exits 0 after TERM");
}

/// 200 orphans (grandchildren whose parent exited) are re-parented to the
/// emulated init and reaped: none is left, as a process or as a zombie.
#[test]
fn arm64_init_reaps_orphans_as_pid1() {
    if !require_pid1() {
        return;
    }
    let a = Aarch64::new();
    let script = r#"
import os, sys, time
if os.fork() == 0:
    for _ in range(200):
        if os.fork() == 0:
            time.sleep(0.2)
            os._exit(0)
    os._exit(0)
os.wait()
def procs():
    out = []
    for p in os.listdir('/proc'):
        if p.isdigit():
            try:
                s = open(f'/proc/{p}/stat').read()
            except OSError:
                continue
            rest = s[s.rfind(')') + 2:].split()
            out.append((int(p), rest[0], int(rest[1])))
    return out
deadline = time.time() + 60
while time.time() < deadline:
    ps = procs()
    orphans = [p for p in ps if p[2] == 1 and p[0] != os.getpid()]
    zombies = [p for p in ps if p[1] == 'Z']
    if not orphans and not zombies:
        break
    time.sleep(0.05)
print("orphans", len(orphans), "zombies", len(zombies), flush=True)
"#;
    let (code, out, err) = a.run_pid1(&["--", "python3", "-c", script]);
    assert_eq!(code, 0, "stdout {out} stderr {err}");
    assert_eq!(out.trim(), "orphans 0 zombies 0", "{err}");
}

/// A child that ignores SIGTERM gets SIGKILL after --graceful-timeout.
#[test]
fn arm64_graceful_timeout_ends_in_sigkill_as_pid1() {
    if !require_pid1() {
        return;
    }
    let a = Aarch64::new();
    let mut args = vec!["--graceful-timeout".to_string(), "1s".into(), "--".into()];
    args.extend(a.argv("cinit-demo"));
    args.push("ignore-term".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut r = a.pid1(&args);
    assert!(r.line(PROMPT).starts_with("ready "));
    r.signal(libc::SIGTERM);
    assert_eq!(r.line(PROMPT), "ignored 15", "the child got the TERM");
    assert_eq!(r.code(PROMPT), 137, "then the init's SIGKILL");
}

/// The host pids of the init's children that run the demo.
fn demo_workers(init: i32) -> BTreeSet<i64> {
    std::fs::read_to_string(format!("/proc/{init}/task/{init}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|k| k.parse::<i64>().ok())
        .filter(|k| {
            std::fs::read(format!("/proc/{k}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("cinit-demo"))
        })
        .collect()
}

/// (pid in the namespace, slot) of whoever answers one request.
fn who(port: u16) -> Option<(i64, i64)> {
    let (status, body) = http_get(port, "/").ok()?;
    if status != 200 {
        return None;
    }
    Some((json_field(&body, "pid")?, json_field(&body, "worker")?))
}

/// Asks until every slot in `slots` has answered; slot -> pid.
fn answers(port: u16, slots: usize) -> std::collections::BTreeMap<i64, i64> {
    let mut seen = std::collections::BTreeMap::new();
    wait_until(&format!("{slots} slots to answer"), PROMPT * 3, || {
        if let Some((pid, slot)) = who(port) {
            seen.insert(slot, pid);
        }
        (0..slots as i64).all(|s| seen.contains_key(&s))
    });
    seen
}

/// Two aarch64 demo workers on one port bound by the aarch64 init: both
/// answer; HUP replaces both; TTIN adds a third that answers; TTOU takes
/// one away; TERM stops them all and the init exits 0.
#[test]
fn arm64_workers_share_a_port_and_follow_hup_ttin_ttou_term() {
    if !require_pid1() {
        return;
    }
    let a = Aarch64::new();
    let mut args: Vec<String> = ["--workers", "2", "--listen", "127.0.0.1:0", "--"]
        .map(String::from)
        .to_vec();
    args.extend(a.argv("cinit-demo"));
    args.push("serve".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut r = a.pid1(&args);
    let port = listening_port(&mut r);
    let init = r.init_pid;

    let before = answers(port, 2);
    wait_until("2 worker processes", PROMPT, || {
        demo_workers(init).len() == 2
    });
    let old = demo_workers(init);

    r.signal(libc::SIGHUP);
    let mut new = BTreeSet::new();
    wait_until("both workers to be replaced", PROMPT * 3, || {
        new = demo_workers(init);
        new.len() == 2 && new.is_disjoint(&old)
    });
    let after: std::collections::BTreeMap<i64, i64> = answers(port, 2);
    for slot in [0, 1] {
        let (b, n) = (before[&slot], after[&slot]);
        assert_ne!(b, n, "slot {slot} answers from a new process after HUP");
    }

    r.signal(libc::SIGTTIN);
    wait_until("a third worker", PROMPT * 3, || {
        demo_workers(init).len() == 3
    });
    answers(port, 3);

    r.signal(libc::SIGTTOU);
    wait_until("back to 2 workers", PROMPT * 3, || {
        demo_workers(init).len() == 2
    });

    r.signal(libc::SIGTERM);
    assert_eq!(r.code(PROMPT * 3), 0, "{:?}", r.drain_stderr());
}

/// The emulated aarch64 init plans exactly what the native x86_64 one does
/// from the same settings on the same machine.
#[test]
fn arm64_dry_run_json_is_the_native_plan() {
    let a = Aarch64::new();
    let args = [
        "--dry-run",
        "--json",
        "--workers",
        "auto",
        "--cpus",
        "1.5",
        "--memory",
        "512m",
        "--listen",
        "127.0.0.1:8000",
        "--",
        "uvicorn",
        "app.main:app",
        "--fd",
        "3",
    ];
    let mut argv = a.argv("init");
    let mut emulated = clean_command(argv.remove(0));
    let out = emulated.args(argv).args(args).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON plan");
    let sizing = &plan["workers"]["sizing"];
    assert_eq!(plan["workers"]["count"], 2, "{}", plan["workers"]);
    assert_eq!(sizing["cpus"]["value"], 1.5, "{sizing}");
    assert_eq!(sizing["memory"]["value"], 512u64 << 20, "{sizing}");
    assert_eq!(plan["listen"][0]["fd"], 3);

    let native = clean_command(INIT).args(args).output().unwrap();
    let native: serde_json::Value = serde_json::from_slice(&native.stdout).unwrap();
    assert_eq!(plan, native, "the aarch64 plan differs from the native one");
}
