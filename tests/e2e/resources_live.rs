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
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

macro_rules! require_live {
    () => {
        if let Some(why) = live_cgroups_unavailable() {
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
    cgroup_write(&cpu, "cpu.cfs_period_us", "100000");
    cgroup_write(&cpu, "cpu.cfs_quota_us", "150000");
    cgroup_write(&mem, "memory.limit_in_bytes", &(512 * MIB).to_string());

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
    cgroup_write(&cpu_parent, "cpu.cfs_period_us", "100000");
    cgroup_write(&cpu_parent, "cpu.cfs_quota_us", "150000");
    cgroup_write(
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
    cgroup_write(&cpu, "cpu.cfs_period_us", "100000");
    cgroup_write(&cpu, "cpu.cfs_quota_us", "50000");

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
    cgroup_write(&cpu, "cpu.cfs_period_us", "100000");
    cgroup_write(&cpu, "cpu.cfs_quota_us", "50000");
    let mut cmd = crate::common::clean_command("/bin/sh");
    cmd.arg("-c")
        .arg(r#"echo $$ > "$1/cgroup.procs" && exec "$0" --workers auto --min-uptime 200ms -- "$2" sleep"#)
        .arg(env!("CARGO_BIN_EXE_init"))
        .arg(&cpu)
        .arg(env!("CARGO_BIN_EXE_cinit-demo"));
    let mut r = crate::common::Running::start(cmd, false);
    r.stderr_line(crate::common::PROMPT, "worker 1 started");
    cgroup_write(&cpu, "cpu.cfs_quota_us", "150000");
    r.signal(libc::SIGHUP);
    r.stderr_line(crate::common::PROMPT, "limits re-read: 1.5 cpus");
    r.stderr_line(crate::common::PROMPT, "scaling from 2 to 4 worker(s)");
    r.stderr_line(crate::common::PROMPT, "worker 3 started");
    r.signal(libc::SIGTERM);
    assert_eq!(r.code(crate::common::PROMPT), 0);
}
