//! Plain mode end to end: the real binary as PID 1 of a new PID namespace
//! and as a child subreaper. Children are small shell or Python programs.

use crate::common::*;
use std::time::{Duration, Instant};

/// Python that prints `ready`, then the number of every signal it gets.
const ECHO_SIGNALS: &str = r#"
import signal, sys, os
def h(n, f):
    print(n, flush=True)
skip = {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD}
for n in range(1, signal.SIGRTMAX + 1):
    if n in skip or n in (32, 33):
        continue
    try:
        signal.signal(n, h)
    except (OSError, ValueError):
        pass
print("ready", flush=True)
while True:
    signal.pause()
"#;

#[test]
fn exit_codes_as_pid1_and_not() {
    for pid1 in [true, false] {
        if pid1 && !require_pid1() {
            continue;
        }
        assert_eq!(run(&["--", "sh", "-c", "exit 3"], pid1).0, 3, "pid1={pid1}");
        assert_eq!(run(&["sh", "-c", "exit 0"], pid1).0, 0);
        assert_eq!(run(&["--", "sh", "-c", "kill -TERM $$"], pid1).0, 143);
        assert_eq!(run(&["--", "sh", "-c", "kill -USR1 $$"], pid1).0, 138);
        let (code, _, err) = run(&["--", "no-such-program-here"], pid1);
        assert_eq!(code, 127, "{err}");
        assert!(
            err.contains("no-such-program-here") && err.contains("not found"),
            "{err}"
        );
        let (code, _, err) = run(&["--", "/etc"], pid1);
        assert_eq!(code, 126, "{err}");
        assert!(err.contains("not executable"), "{err}");
    }
}

#[test]
fn arguments_after_the_command_are_the_childs() {
    let (code, out, _) = run(
        &["sh", "-c", "echo \"$@\"", "sh", "--port", "80", "--workers"],
        false,
    );
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "--port 80 --workers");
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, err) = run(&[], false);
    assert_eq!(code, 2);
    assert!(err.contains("no command to run"), "{err}");
    let (code, _, err) = run(&["--graceful-timeout", "soon", "true"], false);
    assert_eq!(code, 2);
    assert!(
        err.contains("--graceful-timeout") && err.contains("not a duration"),
        "{err}"
    );
    let (code, _, _) = run(&["--no-such-option", "true"], false);
    assert_eq!(code, 2);
}

#[test]
fn config_file_errors_have_line_and_column() {
    let dir = TempDir::new("cfg");
    let path = dir.path("cinit.toml");
    std::fs::write(&path, "workers = 2\n\ngraceful_timeout = \"ten seconds\"\n").unwrap();
    let (code, _, err) = run(&["--config", &path, "--", "true"], false);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("{path}:3:20: key `graceful_timeout`")),
        "{err}"
    );
    std::fs::write(&path, "stop_signal = \"TERM\"\nworkerz = 3\n").unwrap();
    let (code, _, err) = run(&["--config", &path, "--", "true"], false);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("{path}:2:1: key `workerz`: unknown key")),
        "{err}"
    );
    std::fs::write(&path, "command = [\"sh\", \"-c\", \"exit 5\"]\n").unwrap();
    assert_eq!(
        run(&["--config", &path], false).0,
        5,
        "command from the file"
    );
    let env_err = std::process::Command::new(INIT)
        .env("CINIT_STOP_SIGNAL", "SIGFOO")
        .args(["true"])
        .output()
        .unwrap();
    assert_eq!(env_err.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&env_err.stderr).contains("environment variable CINIT_STOP_SIGNAL")
    );
}

/// The child's subshell starts 1,000 sleepers and exits, so they are
/// re-parented to the init; the child then waits until they have all ended
/// and counts zombies in the namespace.
#[test]
fn a_thousand_orphans_are_reaped_as_pid1() {
    if !require_pid1() {
        return;
    }
    let script = r#"
import os, sys, time
if os.fork() == 0:
    for _ in range(1000):
        if os.fork() == 0:
            time.sleep(0.3)
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
deadline = time.time() + 30
while time.time() < deadline:
    ps = procs()
    orphans = [p for p in ps if p[2] == 1 and p[0] != os.getpid()]
    if not orphans:
        break
    time.sleep(0.05)
zombies = [p for p in procs() if p[1] == 'Z']
print("orphans", len(orphans), "zombies", len(zombies), flush=True)
sys.exit(0 if not orphans and not zombies else 1)
"#;
    let (code, out, err) = run(&["--", "python3", "-c", script], true);
    assert_eq!(code, 0, "stdout {out} stderr {err}");
    assert_eq!(out.trim(), "orphans 0 zombies 0");
}

/// Not PID 1: the init makes itself a child subreaper, so orphans of the
/// command come to it and are reaped.
#[test]
fn orphans_are_reaped_as_subreaper() {
    let script = r#"
import os, sys, time
if os.fork() == 0:
    for _ in range(200):
        if os.fork() == 0:
            time.sleep(0.2)
            os._exit(0)
    os._exit(0)
os.wait()
init = os.getppid()
def kids_of(pid):
    out = []
    for p in os.listdir('/proc'):
        if p.isdigit():
            try:
                s = open(f'/proc/{p}/stat').read()
            except OSError:
                continue
            rest = s[s.rfind(')') + 2:].split()
            if int(rest[1]) == pid:
                out.append((int(p), rest[0]))
    return out
deadline = time.time() + 30
while time.time() < deadline:
    others = [k for k in kids_of(init) if k[0] != os.getpid()]
    if not others:
        break
    time.sleep(0.05)
print("left", len(others), flush=True)
sys.exit(0 if not others else 1)
"#;
    let (code, out, err) = run(&["--", "python3", "-c", script], false);
    assert_eq!(code, 0, "stdout {out} stderr {err}");
    assert_eq!(out.trim(), "left 0");
}

#[test]
fn every_catchable_signal_is_forwarded_as_pid1() {
    if !require_pid1() {
        return;
    }
    let mut r = Running::pid1(&["--", "python3", "-c", ECHO_SIGNALS]);
    assert_eq!(r.line(PROMPT), "ready");
    let rtmin = libc::SIGRTMIN();
    let mut sigs = vec![
        libc::SIGHUP,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGPIPE,
        libc::SIGALRM,
        libc::SIGSTKFLT,
        libc::SIGCONT,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
        libc::SIGURG,
        libc::SIGXCPU,
        libc::SIGXFSZ,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGWINCH,
        libc::SIGIO,
        libc::SIGPWR,
        rtmin,
        rtmin + 3,
        libc::SIGRTMAX(),
    ];
    // TERM last: it is forwarded too, and ends the run.
    sigs.push(libc::SIGTERM);
    for sig in sigs {
        r.signal(sig);
        let got = r.line(PROMPT);
        assert_eq!(got, sig.to_string(), "signal {sig}");
    }
    // The child caught TERM and keeps running: the graceful timeout (8s by
    // default) ends it with SIGKILL; a second TERM does it at once.
    r.signal(libc::SIGTERM);
    assert_eq!(r.code(PROMPT), 137);
}

#[test]
fn signal_map_rewrites_and_drops() {
    let mut r = Running::plain(&[
        "--signal-map",
        "USR1:USR2",
        "--signal-map",
        "HUP:0",
        "--",
        "python3",
        "-c",
        ECHO_SIGNALS,
    ]);
    assert_eq!(r.line(PROMPT), "ready");
    r.signal(libc::SIGHUP);
    r.signal(libc::SIGUSR1);
    assert_eq!(
        r.line(PROMPT),
        libc::SIGUSR2.to_string(),
        "HUP dropped, USR1 became USR2"
    );
    r.signal(libc::SIGINT);
    assert_eq!(r.line(PROMPT), libc::SIGINT.to_string());
    r.signal(libc::SIGINT);
    assert_eq!(r.code(PROMPT), 137);
}

/// A child that ignores TERM is SIGKILLed after --graceful-timeout.
#[test]
fn graceful_timeout_ends_in_sigkill_as_pid1() {
    if !require_pid1() {
        return;
    }
    let mut r = Running::pid1(&[
        "--graceful-timeout",
        "1s",
        "--",
        "python3",
        "-c",
        "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(600)",
    ]);
    assert_eq!(r.line(PROMPT), "ready");
    r.signal(libc::SIGTERM);
    assert_eq!(r.code(PROMPT), 137);
}

/// A second TERM skips the (here very long) graceful timeout.
#[test]
fn second_signal_kills_at_once() {
    let mut r = Running::plain(&[
        "--graceful-timeout",
        "10m",
        "--",
        "python3",
        "-c",
        "import signal,time; signal.signal(signal.SIGTERM, lambda *a: print('term', flush=True)); print('ready', flush=True)\nwhile True: time.sleep(1)",
    ]);
    assert_eq!(r.line(PROMPT), "ready");
    r.signal(libc::SIGTERM);
    assert_eq!(r.line(PROMPT), "term");
    r.signal(libc::SIGTERM);
    assert_eq!(r.code(PROMPT), 137);
}

/// `--shutdown-delay` holds the signal in plain mode too (README, Signals):
/// the child keeps running for the delay and only then gets the signal.
/// The assertion is a lower bound (the signal cannot come sooner), never a
/// wait for the delay to pass.
#[test]
fn plain_mode_passes_term_after_the_shutdown_delay() {
    let delay = Duration::from_secs(1);
    let mut r = Running::plain(&[
        "--shutdown-delay",
        "1s",
        "--",
        "python3",
        "-c",
        "import signal, sys, time\n\
         signal.signal(signal.SIGTERM, lambda *a: (print('term', flush=True), sys.exit(0)))\n\
         print('ready', flush=True)\n\
         while True: time.sleep(1)",
    ]);
    assert_eq!(r.line(PROMPT), "ready");
    let sent = Instant::now();
    r.signal(libc::SIGTERM);
    assert_eq!(r.line(PROMPT), "term");
    let after = sent.elapsed();
    assert!(
        after >= delay,
        "the child got SIGTERM {after:?} after the init, before the 1s shutdown delay"
    );
    assert_eq!(r.code(PROMPT), 0);
}

/// When the main child exits, a process it left behind gets SIGTERM and
/// time to handle it before the init exits (tini, dumb-init and catatonit
/// leave it to the kernel's SIGKILL).
#[test]
fn leftovers_get_a_graceful_stop_as_pid1() {
    if !require_pid1() {
        return;
    }
    let dir = TempDir::new("left");
    let mark = dir.path("mark");
    let leftover = format!(
        "import signal,sys,time\ndef h(*a):\n    time.sleep(0.3)\n    open('{mark}','w').write('graceful')\n    sys.exit(0)\nsignal.signal(signal.SIGTERM, h)\nopen('{mark}.ready','w').close()\nwhile True: time.sleep(1)"
    );
    let script =
        format!("python3 -c \"$0\" & while [ ! -e {mark}.ready ]; do sleep 0.01; done; exit 4",);
    let (code, _, err) = run(&["--", "sh", "-c", &script, &leftover], true);
    assert_eq!(code, 4, "{err}");
    assert_eq!(
        std::fs::read_to_string(&mark).unwrap_or_default(),
        "graceful",
        "{err}"
    );
}

/// The child sees no blocked or ignored signal and no fd beyond stdio,
/// even when the init's own parent left some.
#[test]
fn children_start_clean() {
    let launcher = r#"
import os, signal, sys
signal.signal(signal.SIGUSR1, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2, signal.SIGTERM})
fd = os.open('/dev/null', os.O_RDONLY)
os.dup2(fd, 7)
os.set_inheritable(7, True)
os.execv(sys.argv[1], sys.argv[1:])
"#;
    // cat and ls, not Python: Python ignores SIGPIPE and SIGXFSZ itself.
    let child = "grep -E '^Sig(Blk|Ign)' /proc/self/status; ls /proc/self/fd | tr '\\n' ' '";
    let out = std::process::Command::new("python3")
        .args(["-c", launcher, INIT, "--", "sh", "-c", child])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("SigBlk:\t0000000000000000"), "{text}");
    assert!(text.contains("SigIgn:\t0000000000000000"), "{text}");
    // 0, 1, 2 and the directory ls itself opened; not the parent's fd 7.
    assert_eq!(text.lines().last().unwrap().trim(), "0 1 2 3", "{text}");
}

/// Ctrl-C reaches the child as the terminal's foreground group, Ctrl-Z does
/// not leave the container hung, and the child sees itself in the
/// foreground.
#[test]
fn terminal_foreground_group_as_pid1() {
    if !require_pid1() {
        return;
    }
    let driver = r#"
import os, pty, sys, time, select
init = sys.argv[1]
def run(cmd, keys, wait_for):
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp("unshare", ["unshare", "--pid", "--fork", "--mount-proc", init, "--"] + cmd)
    buf = b""
    deadline = time.time() + 20
    while wait_for not in buf and time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                buf += os.read(fd, 1024)
            except OSError:
                break
    for k in keys:
        os.write(fd, k)
        time.sleep(0.2)
    open_ = True
    while time.time() < deadline:
        if open_:
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                try:
                    chunk = os.read(fd, 1024)
                except OSError:
                    chunk = b""
                if not chunk:
                    open_ = False
                buf += chunk
        else:
            time.sleep(0.05)
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), buf
    os.kill(pid, 9)
    return "hung", buf
fg = "import os,time; print('fg', os.tcgetpgrp(0) == os.getpgrp(), flush=True); time.sleep(60)"
# Wait for the whole line: ^C flushes the terminal's pending output.
code, out = run(["python3", "-c", fg], [b"\x03"], b"fg True")
print("ctrl-c", code, b"fg True" in out)
code, out = run(["python3", "-c", "import time; print('go', flush=True); time.sleep(1.5); print('done', flush=True)"], [b"\x1a"], b"go")
print("ctrl-z", code, b"done" in out)
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", driver, INIT])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ctrl-c 130 True"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("ctrl-z 0 True"), "{text}");
}

/// Idle, the init makes no wake-ups: its context-switch count does not move
/// while its child sleeps. (The rate itself is measured in bench/.)
#[test]
fn idle_init_does_not_wake_up() {
    let mut r = Running::plain(&["--", "sh", "-c", "echo ready; exec sleep 600"]);
    assert_eq!(r.line(PROMPT), "ready");
    assert_stays_asleep(r.init_pid);
    r.signal(libc::SIGTERM);
    assert_eq!(r.code(PROMPT), 143);
}
