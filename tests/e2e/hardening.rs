//! Regression tests for the defects an adversarial run found in the
//! release binary: each runs the real init as PID 1 (`unshare`) and fails
//! on the code before its fix. A PID 1 must never hang, never block on its
//! own output, and never hurt healthy workers.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// The host pids of the init's workers, by slot (`CINIT_WORKER_ID`).
fn workers_by_slot(init: i32) -> BTreeMap<u32, i32> {
    children_of(init)
        .into_iter()
        .filter(|&p| alive(p))
        .filter_map(|p| {
            let env = std::fs::read(format!("/proc/{p}/environ")).ok()?;
            let slot = env
                .split(|&b| b == 0)
                .find_map(|kv| kv.strip_prefix(b"CINIT_WORKER_ID"))
                .and_then(|v| {
                    std::str::from_utf8(v.strip_prefix(b"=")?)
                        .ok()?
                        .parse()
                        .ok()
                })?;
            Some((slot, p))
        })
        .collect()
}

fn wait_workers(init: i32, n: usize) -> BTreeMap<u32, i32> {
    let mut w = BTreeMap::new();
    wait_until(&format!("{n} workers"), PROMPT, || {
        w = workers_by_slot(init);
        w.len() == n
    });
    w
}

fn unshare(args: &[&str]) -> Command {
    let mut c = clean_command("unshare");
    c.args(["--pid", "--fork", "--kill-child", "--mount-proc", INIT])
        .args(args);
    c
}

#[test]
fn a_child_killed_by_a_realtime_signal_ends_plain_mode_at_once() {
    if !require_pid1() {
        return;
    }
    let mut r = Running::pid1(&["--", "sh", "-c", &format!("kill -{} $$", rtmin(6))]);
    assert_eq!(r.code(PROMPT), 128 + rtmin(6));
}

#[test]
fn a_worker_killed_by_a_realtime_signal_is_restarted() {
    if !require_pid1() {
        return;
    }
    let mut r = Running::pid1(&["--workers", "2", "--", DEMO, "sleep"]);
    let before = wait_workers(r.init_pid, 2);
    kill(before[&0], rtmin(2));
    r.stderr_line(PROMPT, "worker 0 was killed by SIGRTMIN+2");
    wait_until("slot 0 to get a new worker", PROMPT, || {
        workers_by_slot(r.init_pid)
            .get(&0)
            .is_some_and(|&p| p != before[&0])
    });
    r.signal(15);
    assert_eq!(r.code(PROMPT), 0);
}

#[test]
fn a_realtime_stop_signal_stops_without_waiting_for_the_timeout() {
    if !require_pid1() {
        return;
    }
    // The graceful timeout is longer than the test's deadline: only a
    // stop that sees the workers die of RTMIN+3 ends in time.
    let mut r = Running::pid1(&[
        "--workers",
        "2",
        "--stop-signal",
        "RTMIN+3",
        "--graceful-timeout",
        "60s",
        "--",
        DEMO,
        "sleep",
    ]);
    wait_workers(r.init_pid, 2);
    r.signal(15);
    assert_eq!(r.code(PROMPT), 0);
    let log = r.drain_stderr().join("\n");
    assert!(!log.contains("graceful timeout"), "{log}");
}

#[test]
fn a_prestart_step_killed_by_a_realtime_signal_fails_the_start() {
    if !require_pid1() {
        return;
    }
    let step = format!("{DEMO} sleep");
    let mut r = Running::pid1(&[
        "--prestart",
        &step,
        "--prestart-timeout",
        "60s",
        "--",
        "true",
    ]);
    r.stderr_line(PROMPT, "pre-start 1/1: running");
    let mut step_pid = 0;
    wait_until("the step's process", PROMPT, || {
        step_pid = children_of(r.init_pid).first().copied().unwrap_or(0);
        step_pid != 0
    });
    kill(step_pid, rtmin(4));
    assert_eq!(r.code(PROMPT), 128 + rtmin(4));
}

/// An init as PID 1 whose stderr is a pipe the test controls.
struct PipedInit {
    child: std::process::Child,
    init_pid: i32,
    stderr: Option<std::process::ChildStderr>,
}

impl PipedInit {
    fn start(args: &[&str]) -> PipedInit {
        let mut child = unshare(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start init");
        let p = child.id() as i32;
        let mut init_pid = 0;
        wait_until("unshare to fork the init", PROMPT, || {
            init_pid = children_of(p).first().copied().unwrap_or(0);
            init_pid != 0
        });
        let stderr = child.stderr.take();
        PipedInit {
            child,
            init_pid,
            stderr,
        }
    }

    fn code(&mut self) -> i32 {
        let end = Instant::now() + PROMPT;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            assert!(Instant::now() < end, "the init did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for PipedInit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_closed_stderr_never_costs_a_worker_its_life() {
    if !require_pid1() {
        return;
    }
    let mut init = PipedInit::start(&["--workers", "2", "--", DEMO, "sleep"]);
    let before = wait_workers(init.init_pid, 2);
    // The reader goes away: every further log line is EPIPE, and the
    // kernel raises SIGPIPE in the init for each.
    drop(init.stderr.take());
    kill(init.init_pid, 21); // TTIN: logs "scaling ..."
    wait_workers(init.init_pid, 3);
    kill(init.init_pid, 22); // TTOU
    wait_workers(init.init_pid, 2);
    for (slot, pid) in &before {
        assert!(alive(*pid), "worker {slot} died of the init's own SIGPIPE");
    }
    kill(init.init_pid, 15);
    assert_eq!(init.code(), 0, "a clean stop, not a crash loop");
}

#[test]
fn a_full_stderr_pipe_never_freezes_the_init() {
    if !require_pid1() {
        return;
    }
    // Slot 0 sleeps; slot 1 exits at once and is restarted at once (no
    // exit is "quick" with a zero min-uptime), two log lines each time: a
    // flood no reader keeps up with.
    let dir = TempDir::new("flood");
    let count = dir.path("starts");
    let script = format!(r#"[ "$CINIT_WORKER_ID" = 0 ] && exec {DEMO} sleep; echo >> {count}"#);
    let mut init = PipedInit::start(&[
        "--workers",
        "2",
        "--min-uptime",
        "0s",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let mut worker = 0;
    wait_until("slot 0's worker", PROMPT, || {
        worker = workers_by_slot(init.init_pid).get(&0).copied().unwrap_or(0);
        worker != 0
    });
    // The smallest pipe the kernel allows (one page), and nobody reads.
    let stderr = init.stderr.take().unwrap();
    let _ = nix::fcntl::fcntl(stderr.as_fd(), nix::fcntl::FcntlArg::F_SETPIPE_SZ(4096));
    // Enough restarts of slot 1 to fill the pipe and the init's queue
    // (64 KiB, about 1,000 restarts); each start adds a byte to the file.
    wait_until(
        "slot 1 to restart 3000 times",
        Duration::from_secs(60),
        || std::fs::metadata(&count).is_ok_and(|m| m.len() > 3000),
    );
    // The init still reaps and restarts: kill slot 0's worker.
    kill(worker, 9);
    wait_until(
        "the killed worker to be reaped and replaced",
        PROMPT,
        || {
            !std::path::Path::new(&format!("/proc/{worker}")).exists()
                && workers_by_slot(init.init_pid)
                    .get(&0)
                    .is_some_and(|&p| p != worker)
        },
    );
    // The children's stderr is not made non-blocking by the init.
    let new = workers_by_slot(init.init_pid)[&0];
    let flags = std::fs::read_to_string(format!("/proc/{new}/fdinfo/2")).unwrap();
    let flags = flags
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .map(|f| u32::from_str_radix(f.trim(), 8).unwrap())
        .unwrap();
    assert_eq!(flags & 0o4000, 0, "O_NONBLOCK reached the worker's fd 2");
    // Reading again: the queued lines come, then the count of the
    // dropped ones.
    let reader = std::thread::spawn(move || {
        let mut s = stderr;
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        String::from_utf8_lossy(&all).into_owned()
    });
    kill(init.init_pid, 15);
    assert_eq!(init.code(), 0);
    let text = reader.join().unwrap();
    assert!(
        text.contains("log line(s) dropped"),
        "{}",
        &text[text.len().saturating_sub(2000)..]
    );
    for line in text.lines() {
        assert!(line.starts_with("cinit: "), "a torn line: {line:?}");
    }
}

#[test]
fn a_live_unix_socket_is_never_taken_over() {
    if !require_pid1() {
        return;
    }
    let dir = TempDir::new("live-sock");
    let path = dir.path("app.sock");
    let owner = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let listen = format!("unix:{path}");
    let mut r = Running::pid1(&["--workers", "1", "--listen", &listen, "--", DEMO, "sleep"]);
    assert_eq!(r.code(PROMPT), 1);
    let log = r.drain_stderr().join("\n");
    assert!(
        log.contains("another process is listening on") && log.contains(&path),
        "{log}"
    );
    // The original server still owns its path.
    assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
    drop(owner);
}

#[test]
fn exec_errors_are_reported_with_many_listeners() {
    if !require_pid1() {
        return;
    }
    let dir = TempDir::new("bad-exec");
    let bad = dir.path("bad");
    std::fs::write(&bad, b"\x00\x01garbage").unwrap();
    std::fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut args = vec!["--workers", "1"];
    for _ in 0..8 {
        args.extend(["--listen", "127.0.0.1:0"]);
    }
    args.extend(["--", &bad]);
    let mut r = Running::pid1(&args);
    assert_eq!(r.code(PROMPT), 126);
    let log = r.drain_stderr().join("\n");
    assert!(log.contains("not executable"), "{log}");
}

#[test]
fn a_missing_interpreter_is_named() {
    if !require_pid1() {
        return;
    }
    let dir = TempDir::new("shebang");
    let script = dir.path("script");
    std::fs::write(&script, "#!/nonexistent/interp\necho hi\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut r = Running::pid1(&["--", &script]);
    assert_eq!(r.code(PROMPT), 127);
    let log = r.drain_stderr().join("\n");
    assert!(log.contains("interpreter `/nonexistent/interp`"), "{log}");
}

#[test]
fn hups_faster_than_a_roll_replace_every_slot() {
    if !require_pid1() {
        return;
    }
    let mut r = Running::pid1(&[
        "--workers",
        "3",
        "--min-uptime",
        "300ms",
        "--",
        DEMO,
        "sleep",
    ]);
    wait_workers(r.init_pid, 3);
    // A HUP every 200 ms: a roll of 3 slots needs 900 ms.
    for _ in 0..15 {
        r.signal(1);
        std::thread::sleep(Duration::from_millis(200));
    }
    for slot in 0..3 {
        r.stderr_line(PROMPT, &format!("worker {slot} replaced"));
    }
    r.signal(15);
    assert_eq!(r.code(PROMPT), 0);
}

#[test]
fn stopping_a_worker_stops_what_its_shell_wrapper_started() {
    if !require_pid1() {
        return;
    }
    // A wrapper without `exec`: the server is the shell's child.
    let wrapper = format!("{DEMO} sleep; echo wrapper-exit");
    let mut r = Running::pid1(&[
        "--workers",
        "1",
        "--min-uptime",
        "200ms",
        "--",
        "sh",
        "-c",
        &wrapper,
    ]);
    let sh = wait_workers(r.init_pid, 1)[&0];
    let mut server = 0;
    wait_until("the wrapped server", PROMPT, || {
        server = children_of(sh).first().copied().unwrap_or(0);
        server != 0
    });
    r.signal(1);
    r.stderr_line(PROMPT, "worker 0 replaced");
    wait_until("the old wrapped server to be stopped", PROMPT, || {
        !alive(server)
    });
    r.signal(15);
    assert_eq!(r.code(PROMPT), 0);
}

#[test]
fn ttin_stops_at_max_workers() {
    if !require_pid1() {
        return;
    }
    let mut r = Running::pid1(&["--workers", "2", "--max-workers", "3", "--", DEMO, "sleep"]);
    wait_workers(r.init_pid, 2);
    r.signal(21);
    r.stderr_line(PROMPT, "scaling from 2 to 3");
    r.signal(21);
    r.stderr_line(
        PROMPT,
        "not scaling up: already at the most workers allowed (3",
    );
    assert_eq!(wait_workers(r.init_pid, 3).len(), 3);
    r.signal(15);
    assert_eq!(r.code(PROMPT), 0);
}

/// A pids cgroup made for one test and removed with it.
struct PidsGroup(std::path::PathBuf);

impl PidsGroup {
    fn new() -> Option<PidsGroup> {
        let base = std::path::Path::new("/sys/fs/cgroup/pids");
        if !base.join("cgroup.procs").exists() || !is_root() {
            return None;
        }
        let dir = base.join(format!("cinit-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        Some(PidsGroup(dir))
    }

    fn set_max(&self, n: u32) {
        std::fs::write(self.0.join("pids.max"), n.to_string()).unwrap();
    }
}

impl Drop for PidsGroup {
    fn drop(&mut self) {
        let procs = self.0.join("cgroup.procs");
        let _ = std::fs::write(self.0.join("pids.max"), "max");
        for p in std::fs::read_to_string(&procs)
            .unwrap_or_default()
            .split_whitespace()
        {
            let _ = Command::new("kill").args(["-9", p]).status();
        }
        let end = Instant::now() + PROMPT;
        while std::fs::remove_dir(&self.0).is_err() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn a_failed_fork_is_retried_and_never_stops_healthy_workers() {
    if !require_pid1() {
        return;
    }
    let Some(group) = PidsGroup::new() else {
        skip(
            Need::Cgroups,
            "no writable pids cgroup (cgroup v1 pids controller, root)",
        );
        return;
    };
    // unshare + the init + 2 workers fill 4 pids; a third worker cannot
    // be forked until the limit rises.
    group.set_max(4);
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec unshare --pid --fork --kill-child --mount-proc {INIT} --workers 2 --backoff-max 500ms -- {DEMO} sleep",
        group.0.display()
    );
    let mut cmd = clean_command("sh");
    cmd.args(["-c", &script]);
    let mut r = Running::start(cmd, true);
    let before = wait_workers(r.init_pid, 2);
    r.signal(21);
    r.stderr_line(PROMPT, "failed to fork");
    r.stderr_line(PROMPT, "failed to fork");
    for (slot, pid) in &before {
        assert!(alive(*pid), "worker {slot} was stopped by a fork failure");
    }
    group.set_max(16);
    wait_workers(r.init_pid, 3);
    r.signal(15);
    assert_eq!(r.code(PROMPT), 0);
}

#[test]
fn a_shutdown_signal_mapped_to_nothing_is_ignored_as_the_plan_says() {
    if !require_pid1() {
        return;
    }
    let (code, out, err) = run(
        &["--dry-run", "--signal-map", "TERM:0", "--", "true"],
        false,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("TERM: ignored (--signal-map TERM:0)"), "{out}");
    let mut r = Running::pid1(&["--signal-map", "TERM:0", "--", DEMO, "sleep"]);
    let child = {
        let mut c = 0;
        wait_until("the child", PROMPT, || {
            c = children_of(r.init_pid).first().copied().unwrap_or(0);
            c != 0
        });
        c
    };
    r.signal(15);
    r.stderr_line(PROMPT, "SIGTERM ignored");
    assert!(alive(child), "TERM:0 still stopped the child");
    r.signal(2);
    assert_eq!(r.code(PROMPT), 130);
}

#[test]
fn a_low_open_file_limit_still_binds_or_names_the_limit() {
    if !require_pid1() {
        return;
    }
    let script = format!(
        "ulimit -n 16 && exec unshare --pid --fork --kill-child --mount-proc {INIT} --workers 1 --listen 127.0.0.1:0 --listen 127.0.0.1:0 -- {DEMO} sleep"
    );
    let mut cmd = clean_command("sh");
    cmd.args(["-c", &script]);
    let mut r = Running::start(cmd, true);
    wait_workers(r.init_pid, 1);
    r.signal(15);
    assert_eq!(r.code(PROMPT), 0);
}

#[test]
fn a_unix_path_too_long_for_the_kernel_fails_the_dry_run() {
    let long = format!("unix:/tmp/{}.sock", "a".repeat(120));
    let (code, _, err) = run(&["--dry-run", "--listen", &long, "--", "true"], false);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("at most 107"), "{err}");
}
