//! Resource detection on this machine's real cgroups (v1 controllers, as
//! on hybrid hosts): each test creates uniquely named groups below this
//! process's own cgroup in the `cpu` and `memory` hierarchies, sets a
//! quota and a limit, starts `init --dry-run --json --workers auto` inside
//! them (the child writes its own pid to `cgroup.procs` before exec) and
//! checks the figures it reports.
//!
//! Needs root and writable v1 `cpu` and `memory` hierarchies; otherwise
//! every test is skipped through `common::skip` (a failure in CI). Every group a test creates is
//! removed by a guard, even when the test fails: processes still inside
//! are moved back to where this process lives, then the directories are
//! removed, children first.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cinit::resources::{detect, Hierarchy, HostFacts};

const MIB: u64 = 1 << 20;

/// This process's own directory in the v1 hierarchy of `controller`, found
/// by the detection under test (its walk starts there).
fn own_dir(controller: &str) -> Option<PathBuf> {
    let r = detect(Path::new("/"), &HostFacts::read(Path::new("/")));
    let w = r.walks.iter().find(|w| w.controller == controller)?;
    if w.hierarchy != Hierarchy::V1 {
        return None;
    }
    Some(PathBuf::from(&w.levels.first()?.dir))
}

/// Why the live tests cannot run here, if they cannot.
fn unavailable() -> Option<String> {
    // The effective uid: the second field of `Uid:` in /proc/self/status.
    let euid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2)?.parse::<u32>().ok()
        });
    if euid != Some(0) {
        return Some("not root".into());
    }
    for c in ["cpu", "memory"] {
        let Some(dir) = own_dir(c) else {
            return Some(format!("no v1 {c} hierarchy found for this process"));
        };
        let probe = dir.join(format!("cinit-probe-{}", std::process::id()));
        if let Err(e) = std::fs::create_dir(&probe) {
            return Some(format!("{} is not writable: {e}", dir.display()));
        }
        let _ = std::fs::remove_dir(&probe);
    }
    None
}

macro_rules! require_live {
    () => {
        if let Some(why) = unavailable() {
            skip(
                Need::Cgroups,
                &format!(
                    "live cgroup tests need root and writable v1 cpu and memory hierarchies ({why})"
                ),
            );
            return;
        }
    };
}

/// Groups created by one test, removed on drop (children first).
struct Groups {
    /// In creation order: parents before children.
    dirs: Vec<PathBuf>,
}

impl Groups {
    fn new() -> Groups {
        Groups { dirs: Vec::new() }
    }

    /// Creates `parent/name-<pid>-<n>` and remembers it.
    fn create(&mut self, parent: &Path, name: &str) -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = parent.join(format!(
            "cinit-test-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        self.dirs.push(dir.clone());
        dir
    }
}

fn write(dir: &Path, file: &str, value: &str) {
    let p = dir.join(file);
    std::fs::write(&p, value).unwrap_or_else(|e| panic!("write {value} to {}: {e}", p.display()));
}

impl Drop for Groups {
    fn drop(&mut self) {
        for dir in self.dirs.iter().rev() {
            // The processes of a failed test may still be inside: move them
            // to the hierarchy's directory of this process.
            let home = if dir.starts_with("/sys/fs/cgroup/memory") {
                own_dir("memory")
            } else {
                own_dir("cpu")
            };
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                if let (Ok(procs), Some(home)) = (
                    std::fs::read_to_string(dir.join("cgroup.procs")),
                    home.as_ref(),
                ) {
                    for pid in procs.split_whitespace() {
                        let _ = std::fs::write(home.join("cgroup.procs"), pid);
                    }
                }
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if Instant::now() > deadline => {
                        eprintln!("could not remove {}: {e}", dir.display());
                        break;
                    }
                    // An exiting task leaves the group asynchronously.
                    Err(_) => std::thread::yield_now(),
                }
            }
        }
    }
}

/// Runs the dry run inside `cpu_dir` and `mem_dir`: the shell moves itself
/// in, then execs init, so init starts inside both groups.
fn dry_run_inside(cpu_dir: &Path, mem_dir: &Path) -> serde_json::Value {
    let mut cmd = crate::common::clean_command("/bin/sh");
    let out = cmd
        .arg("-c")
        .arg(
            r#"echo $$ > "$1/cgroup.procs" && echo $$ > "$2/cgroup.procs" && exec "$0" --dry-run --json --workers auto -- app"#,
        )
        .arg(env!("CARGO_BIN_EXE_init"))
        .arg(cpu_dir)
        .arg(mem_dir)
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "{:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

/// `dir` as the cgroup path init reports for it (`/sys/fs/cgroup/cpu/a/b`
/// -> `/a/b` for a mount root `/`).
fn level_of(dir: &Path, mount: &str) -> String {
    let rel = dir.strip_prefix(mount).expect("under the mount");
    format!("/{}", rel.display())
}

#[test]
fn quota_and_limit_on_the_leaf() {
    require_live!();
    let mut g = Groups::new();
    let cpu = g.create(&own_dir("cpu").unwrap(), "cpu");
    let mem = g.create(&own_dir("memory").unwrap(), "mem");
    write(&cpu, "cpu.cfs_period_us", "100000");
    write(&cpu, "cpu.cfs_quota_us", "150000");
    write(&mem, "memory.limit_in_bytes", &(512 * MIB).to_string());

    let j = dry_run_inside(&cpu, &mem);
    let r = &j["resources"];
    assert_eq!(r["cpu_quota"]["value"], 1.5);
    assert_eq!(
        r["cpu_quota"]["source"],
        format!(
            "{}/cpu.cfs_quota_us (level {})",
            cpu.display(),
            level_of(&cpu, "/sys/fs/cgroup/cpu")
        )
    );
    assert_eq!(r["cpus"]["value"], live_affinity().min(1.5));
    assert_eq!(r["memory"]["value"], 512 * MIB);
    assert_eq!(
        r["memory"]["source"],
        format!(
            "{}/memory.limit_in_bytes (level {})",
            mem.display(),
            level_of(&mem, "/sys/fs/cgroup/memory")
        )
    );
    assert_eq!(j["workers"]["count"], 2);
    assert_eq!(j["workers"]["sizing"]["memory_bound"], 2);
    assert_eq!(j["warnings"], serde_json::json!([]));
}

#[test]
fn quota_and_limit_on_the_parent_only() {
    require_live!();
    let mut g = Groups::new();
    let cpu_parent = g.create(&own_dir("cpu").unwrap(), "cpu-parent");
    let cpu = g.create(&cpu_parent, "leaf");
    let mem_parent = g.create(&own_dir("memory").unwrap(), "mem-parent");
    let mem = g.create(&mem_parent, "leaf");
    write(&cpu_parent, "cpu.cfs_period_us", "100000");
    write(&cpu_parent, "cpu.cfs_quota_us", "150000");
    write(
        &mem_parent,
        "memory.limit_in_bytes",
        &(512 * MIB).to_string(),
    );

    let j = dry_run_inside(&cpu, &mem);
    let r = &j["resources"];
    assert_eq!(r["cpu_quota"]["value"], 1.5);
    assert_eq!(
        r["cpu_quota"]["source"],
        format!(
            "{}/cpu.cfs_quota_us (level {})",
            cpu_parent.display(),
            level_of(&cpu_parent, "/sys/fs/cgroup/cpu")
        )
    );
    assert_eq!(r["memory"]["value"], 512 * MIB);
    assert_eq!(
        r["memory"]["source"],
        format!(
            "{}/memory.limit_in_bytes (level {})",
            mem_parent.display(),
            level_of(&mem_parent, "/sys/fs/cgroup/memory")
        )
    );
    // The leaf was read first and had no limit of its own.
    let cpu_walk = r["walks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["controller"] == "cpu")
        .unwrap();
    assert_eq!(cpu_walk["levels"][0]["dir"], cpu.display().to_string());
    assert_eq!(cpu_walk["levels"][0]["files"][0]["meaning"], "no limit");
    assert_eq!(j["workers"]["count"], 2);
}

#[test]
fn half_a_cpu_on_the_leaf() {
    require_live!();
    let mut g = Groups::new();
    let cpu = g.create(&own_dir("cpu").unwrap(), "half");
    let mem = g.create(&own_dir("memory").unwrap(), "half-mem");
    write(&cpu, "cpu.cfs_period_us", "100000");
    write(&cpu, "cpu.cfs_quota_us", "50000");

    let j = dry_run_inside(&cpu, &mem);
    assert_eq!(j["resources"]["cpus"]["value"], 0.5);
    assert_eq!(j["resources"]["memory"], serde_json::Value::Null);
    // floor(0.5 × 2 + 1) = 2, no memory bound.
    assert_eq!(j["workers"]["count"], 2);
}

#[test]
fn groups_are_removed_even_when_a_test_fails_with_a_process_inside() {
    require_live!();
    let parent = own_dir("cpu").unwrap();
    let mut created = Vec::new();
    let mut sleeper: Option<std::process::Child> = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut g = Groups::new();
        let outer = g.create(&parent, "fail");
        let inner = g.create(&outer, "leaf");
        created = vec![outer.clone(), inner.clone()];
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"echo $$ > "$0/cgroup.procs" && exec sleep 60"#)
            .arg(&inner)
            .spawn()
            .expect("spawn sleep");
        let pid = child.id().to_string();
        sleeper = Some(child);
        // Wait until the child is inside, not a fixed time.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(inner.join("cgroup.procs"))
            .unwrap_or_default()
            .split_whitespace()
            .any(|p| p == pid)
        {
            assert!(
                Instant::now() < deadline,
                "the child never entered the group"
            );
            std::thread::yield_now();
        }
        panic!("expected panic: a failing test with a process inside the group");
    }));
    let mut child = sleeper.expect("the sleeper was started");
    let moved_out = std::fs::read_to_string(parent.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .any(|p| p == child.id().to_string());
    let _ = child.kill();
    let _ = child.wait();
    assert!(result.is_err());
    for dir in &created {
        assert!(!dir.exists(), "{} was left behind", dir.display());
    }
    assert!(
        moved_out,
        "the process was not moved back to {}",
        parent.display()
    );
}

/// SIGHUP re-reads the limits (a resized pod, `docker update --cpus`): the
/// quota goes from 0.5 to 1.5 CPUs while `--workers auto` runs, and the
/// rolling restart scales from 2 to 4 workers.
#[test]
fn hup_rereads_a_changed_quota_and_scales() {
    require_live!();
    let mut g = Groups::new();
    let cpu = g.create(&own_dir("cpu").unwrap(), "hup");
    write(&cpu, "cpu.cfs_period_us", "100000");
    write(&cpu, "cpu.cfs_quota_us", "50000");
    let mut cmd = crate::common::clean_command("/bin/sh");
    cmd.arg("-c")
        .arg(r#"echo $$ > "$1/cgroup.procs" && exec "$0" --workers auto --min-uptime 200ms -- "$2" sleep"#)
        .arg(env!("CARGO_BIN_EXE_init"))
        .arg(&cpu)
        .arg(env!("CARGO_BIN_EXE_cinit-demo"));
    let mut r = crate::common::Running::start(cmd, false);
    r.stderr_line(crate::common::PROMPT, "worker 1 started");
    write(&cpu, "cpu.cfs_quota_us", "150000");
    r.signal(libc::SIGHUP);
    r.stderr_line(crate::common::PROMPT, "limits re-read: 1.5 cpus");
    r.stderr_line(crate::common::PROMPT, "scaling from 2 to 4 worker(s)");
    r.stderr_line(crate::common::PROMPT, "worker 3 started");
    r.signal(libc::SIGTERM);
    assert_eq!(r.code(crate::common::PROMPT), 0);
}
