//! The memory guard end to end, as PID 1 in a real memory cgroup (v1 on
//! these machines, made by the test and removed with it): a growing
//! FastAPI worker replaced before the limit with no failed request, a
//! worker the kernel's OOM killer kills reported as such, recycling by age
//! one slot at a time, and no sampling (no wake-up) without a guard.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;

const MIB: u64 = 1 << 20;
const SLOW: Duration = Duration::from_secs(120);

/// A memory cgroup with `limit`, or why there is none here.
fn memory_group(groups: &mut Groups, limit: u64) -> Option<std::path::PathBuf> {
    if let Some(why) = live_cgroups_unavailable() {
        skip(
            Need::Cgroups,
            &format!("memory cgroup tests need root and a writable v1 memory hierarchy ({why})"),
        );
        return None;
    }
    let home = own_dir("memory")?;
    let dir = groups.create(&home, "mem");
    cgroup_write(&dir, "memory.limit_in_bytes", &limit.to_string());
    Some(dir)
}

/// The init as PID 1 inside `group`, in examples/fastapi, with `env`.
fn start_in(group: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut script = format!(
        "echo $$ > {}/cgroup.procs && exec unshare --pid --fork --kill-child --mount-proc {INIT}",
        group.display()
    );
    for a in args {
        script.push_str(&format!(" '{a}'"));
    }
    let mut cmd = clean_command("sh");
    cmd.args(["-c", &script])
        .current_dir(format!("{}/examples/fastapi", env!("CARGO_MANIFEST_DIR")))
        .envs(env.iter().copied());
    Running::start(cmd, true)
}

fn oom_kills(group: &std::path::Path) -> u64 {
    std::fs::read_to_string(group.join("memory.oom_control"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn python_packages() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import fastapi, uvicorn"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "fastapi and uvicorn are needed: bash .ci/test installs them"
    );
    ok
}

#[test]
fn a_growing_worker_is_replaced_before_the_limit_without_a_failed_request() {
    if !require_pid1() || !python_packages() {
        return;
    }
    let mut groups = Groups::new();
    let Some(group) = memory_group(&mut groups, 500 * MIB) else {
        return;
    };
    let mut r = start_in(
        &group,
        &[
            "--workers",
            "2",
            "--listen",
            "127.0.0.1:0",
            "--max-worker-memory",
            "150MiB",
            "--memory-interval",
            "200ms",
            "--",
            "python3",
            "-m",
            "uvicorn",
            "app.main:app",
            "--fd",
            "3",
            "--log-level",
            "warning",
        ],
        &[("APP_LEAK", "1")],
    );
    let port = listening_port(&mut r);
    r.stderr_line(SLOW, "ready: 2 worker(s) serving");
    // Each request keeps 1 MiB in whichever worker answers it, about 40 a
    // second: a leak fast for a test (minutes in real life), slow enough
    // that a replacement (3 s to start) is ready long before the group's
    // 500 MiB.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU32::new(0));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let load = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match http_get(port, "/leak?mib=1") {
                    Ok((200, _)) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((s, b)) => failed.lock().unwrap().push(format!("{s} {b}")),
                    Err(e) => failed.lock().unwrap().push(e),
                }
                // The load's pace, not a wait for anything.
                std::thread::sleep(Duration::from_millis(25));
            }
        })
    };
    let first = r.stderr_line(SLOW, "replacing it (memory)");
    assert!(
        first.contains("above --max-worker-memory 150 MiB"),
        "{first}"
    );
    r.stderr_line(SLOW, "replaced (memory)");
    r.stderr_line(SLOW, "replaced (memory)");
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let failed = failed.lock().unwrap().clone();
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert!(ok.load(Ordering::Relaxed) > 0);
    assert_eq!(oom_kills(&group), 0, "the kernel had to kill");
    r.signal(libc::SIGTERM);
    assert_eq!(r.code(PROMPT), 0);
}

/// Grows by 8 MiB every 10 ms until something stops it.
const GROW: &str = r#"
import time
kept = []
print("growing", flush=True)
while True:
    kept.append(bytearray(8 << 20))
    time.sleep(0.01)
"#;

#[test]
fn a_worker_killed_by_the_oom_killer_is_reported_as_such() {
    if !require_pid1() {
        return;
    }
    let mut groups = Groups::new();
    let Some(group) = memory_group(&mut groups, 150 * MIB) else {
        return;
    };
    let mut r = start_in(
        &group,
        &["--workers", "1", "--", "python3", "-c", GROW],
        &[],
    );
    let line = r.stderr_line(SLOW, "killed by the kernel OOM killer");
    assert!(line.contains("container limit 150 MiB"), "{line}");
    assert!(oom_kills(&group) >= 1);
    r.signal(libc::SIGTERM);
    assert_eq!(r.code(PROMPT), 0, "the init itself survived");
}

#[test]
fn age_recycling_replaces_one_slot_at_a_time() {
    if !require_pid1() {
        return;
    }
    let mut r = Running::pid1(&[
        "--workers",
        "3",
        "--listen",
        "127.0.0.1:0",
        "--max-worker-age",
        "1s",
        "--max-worker-age-jitter",
        "50%",
        "--",
        DEMO,
        "serve",
    ]);
    // Replacements never overlap: each "replacement started" is followed
    // by its "replaced" before the next one starts.
    let mut replaced = 0;
    let mut open = false;
    while replaced < 6 {
        let line = r.stderr_line(SLOW, "replace");
        if line.contains("replacement started") {
            assert!(!open, "two replacements at once: {line}");
            open = true;
        } else if line.contains("replaced (age)") {
            assert!(open, "{line}");
            open = false;
            replaced += 1;
        }
    }
    r.signal(libc::SIGTERM);
    assert_eq!(r.code(PROMPT), 0);
}

#[test]
fn without_sampling_the_idle_init_never_wakes_up() {
    if !require_pid1() {
        return;
    }
    let mut r = Running::pid1(&[
        "--workers",
        "2",
        "--listen",
        "127.0.0.1:0",
        "--max-worker-age",
        "1h",
        "--",
        DEMO,
        "serve",
    ]);
    r.stderr_line(PROMPT, "ready: 2 worker(s) serving");
    assert_stays_asleep(r.init_pid);
    r.signal(libc::SIGTERM);
    assert_eq!(r.code(PROMPT), 0);
}
