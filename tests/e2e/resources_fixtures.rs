//! Resource detection and sizing on fake roots: each directory under
//! `tests/fixtures/cgroup/<case>/` holds `proc/self/cgroup`,
//! `proc/self/mountinfo`, `proc/meminfo` and the `sys/fs/cgroup` files a
//! process would see in that layout (see the README there). Host facts
//! (affinity, MemTotal) are injected, so the results do not depend on the
//! machine running the tests.
//!
//! Three kinds of test: the library (`detect` + `decide`) per layout, the
//! real binary (`init --dry-run --json --workers auto` with `CINIT_ROOT`),
//! and snapshots of what the dry run prints (`tests/snapshots/`; rewrite
//! them with `UPDATE_SNAPSHOTS=1`).

use crate::common::*;
use std::path::{Path, PathBuf};

use cinit::resources::{detect, HostFacts, Resolution, Resources};
use cinit::sizing::{decide, Sizing, SizingInput};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const ID: &str = "6558aed8fc662b194323ceab5b964f69cf36b3e8af877a14b80256e93aecb044";

fn fixture(case: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cgroup")
        .join(case);
    assert!(p.is_dir(), "missing fixture {}", p.display());
    p
}

/// An 8-CPU, 16 GiB host, as in the research notes' fixtures.
fn host8() -> HostFacts {
    HostFacts {
        online_cpus: 8,
        affinity_cpus: Some(8),
        mem_total: Some(16 * GIB),
    }
}

fn defaults() -> SizingInput {
    cinit::plan::sizing_input(&cinit::config::Config::defaults())
}

fn run(case: &str, host: &HostFacts) -> (Resources, Sizing) {
    let r = detect(&fixture(case), host);
    let s = decide(&defaults(), &r);
    (r, s)
}

fn memory(r: &Resources) -> Option<(u64, &str)> {
    r.memory.as_ref().map(|m| (m.value, m.source.as_str()))
}

// --- the layouts ---------------------------------------------------------

#[test]
fn docker_v2_cpus_1_5_memory_512m() {
    let (r, s) = run("docker-v2-cpus1.5-mem512m", &host8());
    assert_eq!(r.cgroup, "v2");
    assert_eq!(r.cpus.value, 1.5);
    assert_eq!(r.cpus.source, "/sys/fs/cgroup/cpu.max (level /)");
    assert_eq!(
        memory(&r),
        Some((512 * MIB, "/sys/fs/cgroup/memory.max (level /)"))
    );
    assert_eq!(r.memory_high, None);
    assert_eq!(r.cpuset.as_ref().unwrap().value, "0-7");
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!((s.cpu_bound, s.memory_bound, s.count), (4, Some(2), 2));
    assert_eq!(s.limited_by, "memory");
    assert_eq!(
        s.formula,
        "cpu bound    floor(1.5 × 2 + 1) = 4\n\
         memory bound floor((512 MiB − 0 B) / 256 MiB) = 2\n\
         count        clamp(min(4, 2), 1, 64) = 2"
    );
}

#[test]
fn docker_v1_cpus_1_5_memory_512m() {
    let (r, s) = run("docker-v1-cpus1.5-mem512m", &host8());
    // The 0:: line has no cgroup2 mount behind it: plain v1.
    assert_eq!(r.cgroup, "v1");
    assert_eq!(r.cpus.value, 1.5);
    assert_eq!(
        r.cpus.source,
        format!("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us (level /docker/{ID})")
    );
    let mem = format!("/sys/fs/cgroup/memory/memory.limit_in_bytes (level /docker/{ID})");
    assert_eq!(memory(&r), Some((512 * MIB, mem.as_str())));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(s.count, 2);
}

#[test]
fn k8s_pod_limit_on_a_visible_ancestor() {
    let (r, s) = run("k8s-v2-pod-limit-visible", &host8());
    let pod = "/kubepods.slice/kubepods-burstable.slice/\
               kubepods-burstable-pod3f8b57a9_829a_4d47_b220_b830da173956.slice";
    assert_eq!(r.cpus.value, 1.5);
    assert_eq!(
        r.cpus.source,
        format!("/sys/fs/cgroup{pod}/cpu.max (level {pod})")
    );
    let mem = format!("/sys/fs/cgroup{pod}/memory.max (level {pod})");
    assert_eq!(memory(&r), Some((512 * MIB, mem.as_str())));
    // Leaf, container, burstable slice, kubepods.slice, root: all read.
    let cpu = r.walks.iter().find(|w| w.controller == "cpu").unwrap();
    assert_eq!(cpu.levels.len(), 5);
    assert_eq!(cpu.levels.last().unwrap().dir, "/sys/fs/cgroup");
    assert_eq!(s.count, 2);
}

#[test]
fn k8s_pod_limit_behind_a_private_namespace_needs_an_override() {
    let (r, s) = run("k8s-v2-pod-limit-private-ns", &host8());
    // Only the container's own cgroup is visible, and it has no limit:
    // the documented limitation.
    assert_eq!(r.cpus.value, 8.0);
    assert_eq!(r.cpus.source, "affinity mask (sched_getaffinity)");
    assert_eq!(r.memory, None);
    assert_eq!(s.count, 17);
    let mut input = defaults();
    input.cpus_override = Some(1.5);
    input.memory_override = Some(512 * MIB);
    let s = decide(&input, &r);
    assert_eq!(s.count, 2);
    assert!(s
        .cpus
        .source
        .starts_with("--cpus override; detected 8 from affinity"));
    assert_eq!(
        s.memory.unwrap().source,
        "--memory override; detected no limit"
    );
}

#[test]
fn k8s_v1_pod_memory_limit_shows_through_memory_stat() {
    let (r, s) = run("k8s-v1-pod-memory-only", &host8());
    let kp = "/kubepods/burstable/pod3f8b57a9_829a_4d47_b220_b830da173956/\
              2b7a54862ac13ec3bf45d691f6e900ba67b27ca3718dab124f6d04e1644ee53e";
    let src = format!("/sys/fs/cgroup/memory/memory.stat hierarchical_memory_limit (level {kp})");
    assert_eq!(memory(&r), Some((512 * MIB, src.as_str())));
    assert_eq!(r.cpus.value, 8.0);
    assert_eq!(r.cpu_quota, None);
    assert_eq!(s.count, 2);
}

#[test]
fn no_limits_v2_and_v1() {
    for case in ["no-limits-v2", "no-limits-v1"] {
        let (r, s) = run(case, &host8());
        assert_eq!(r.cpus.value, 8.0, "{case}");
        assert_eq!(r.cpu_quota, None, "{case}");
        assert_eq!(r.memory, None, "{case}");
        assert!(r.warnings.is_empty(), "{case}: {:?}", r.warnings);
        assert_eq!((s.count, s.memory_bound), (17, None), "{case}");
    }
}

#[test]
fn cpuset_only_is_the_affinity_mask() {
    let host = HostFacts {
        affinity_cpus: Some(2),
        ..host8()
    };
    let (r, s) = run("cpuset-only", &host);
    assert_eq!(r.cpus.value, 2.0);
    assert_eq!(r.cpus.source, "affinity mask (sched_getaffinity)");
    assert_eq!(r.cpu_quota, None);
    let cpuset = r.cpuset.as_ref().unwrap();
    assert_eq!(cpuset.value, "0,2");
    assert_eq!(
        cpuset.source,
        "/sys/fs/cgroup/cpuset.cpus.effective (level /)"
    );
    assert_eq!(s.count, 5);

    // With the mask unknown, the cpuset stands in for it.
    let host = HostFacts {
        affinity_cpus: None,
        ..host8()
    };
    let (r, _) = run("cpuset-only", &host);
    assert_eq!(r.cpus.value, 2.0);
    assert_eq!(
        r.cpus.source,
        "/sys/fs/cgroup/cpuset.cpus.effective (level /)"
    );

    let host = HostFacts {
        affinity_cpus: Some(2),
        ..host8()
    };
    let (r, s) = run("cpuset-and-half-cpu", &host);
    assert_eq!(r.cpus.value, 0.5);
    assert_eq!(s.count, 2);
}

#[test]
fn quota_above_the_affinity_mask_is_clamped() {
    let host = HostFacts {
        affinity_cpus: Some(1),
        ..host8()
    };
    let (r, s) = run("docker-v2-cpus1.5-mem512m", &host);
    assert_eq!(r.cpus.value, 1.0);
    assert_eq!(r.cpus.source, "affinity mask (sched_getaffinity)");
    assert_eq!(r.cpu_quota.as_ref().unwrap().value, 1.5);
    assert_eq!((s.cpu_bound, s.count), (3, 2));
}

#[test]
fn v1_private_namespace() {
    let (r, s) = run("v1-private-ns", &host8());
    assert_eq!(r.cpus.value, 1.5);
    assert_eq!(
        r.cpus.source,
        "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us (level /)"
    );
    assert_eq!(r.memory.as_ref().unwrap().value, 512 * MIB);
    assert_eq!(s.count, 2);
}

#[test]
fn v1_limit_on_the_parent_of_a_service() {
    let (r, s) = run("v1-service-parent-limit", &host8());
    assert_eq!(r.cpus.value, 1.5);
    assert_eq!(
        r.cpus.source,
        "/sys/fs/cgroup/cpu,cpuacct/system.slice/cpu.cfs_quota_us (level /system.slice)"
    );
    // The hierarchical limit ties with the visible file: the file is named.
    assert_eq!(
        memory(&r),
        Some((
            512 * MIB,
            "/sys/fs/cgroup/memory/system.slice/memory.limit_in_bytes (level /system.slice)"
        ))
    );
    assert_eq!(s.count, 2);
}

#[test]
fn manager_moved_into_a_leaf_below_a_limited_root() {
    let (r, s) = run("v2-manager-moved-into-leaf", &host8());
    assert_eq!(r.cpus.value, 1.5);
    assert_eq!(r.cpus.source, "/sys/fs/cgroup/cpu.max (level /)");
    assert_eq!(
        memory(&r),
        Some((512 * MIB, "/sys/fs/cgroup/memory.max (level /)"))
    );
    let cpu = r.walks.iter().find(|w| w.controller == "cpu").unwrap();
    assert_eq!(cpu.levels[0].dir, "/sys/fs/cgroup/supervisor");
    assert_eq!(s.count, 2);
}

#[test]
fn namespace_entered_without_remount_reads_only_the_mount_root() {
    let (r, s) = run("v2-ns-without-remount", &host8());
    assert_eq!(r.cpu_quota, None);
    assert_eq!(r.cpus.value, 8.0);
    assert_eq!(r.memory, None);
    let cpu = r.walks.iter().find(|w| w.controller == "cpu").unwrap();
    assert_eq!(cpu.resolution, Resolution::Partial);
    assert_eq!(cpu.levels.len(), 1);
    assert_eq!(cpu.levels[0].cgroup, "/..");
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(
        r.warnings[0].starts_with("cpu, memory: /sys/fs/cgroup shows the cgroup tree from /.."),
        "{}",
        r.warnings[0]
    );
    assert_eq!(s.count, 17);
}

#[test]
fn moved_out_of_the_namespace_reads_nothing() {
    let (r, _) = run("v2-moved-outside-ns", &host8());
    // The mount root has 1.5 CPUs and 512 MiB, but it is not our ancestor.
    assert_eq!(r.cpu_quota, None);
    assert_eq!(r.cpus.value, 8.0);
    assert_eq!(r.memory, None);
    assert_eq!(
        r.warnings,
        [
            "cpu, memory: cgroup /../sibling is not below the mount root / of /sys/fs/cgroup \
          (moved out of its cgroup namespace?); its limits cannot be read"
        ]
    );
    let cpu = r.walks.iter().find(|w| w.controller == "cpu").unwrap();
    assert_eq!(cpu.resolution, Resolution::Unresolvable);
    assert!(cpu.levels.is_empty());
}

#[test]
fn memory_high_below_memory_max_wins() {
    let (r, s) = run("v2-memory-high", &host8());
    assert_eq!(
        memory(&r),
        Some((483183820, "/sys/fs/cgroup/memory.high (level /)"))
    );
    assert_eq!(r.memory_max.as_ref().unwrap().value, 512 * MIB);
    assert_eq!(r.memory_high.as_ref().unwrap().value, 483183820);
    assert_eq!(s.memory_bound, Some(1));
    assert_eq!(s.count, 1);
}

#[test]
fn stacked_mount_the_later_line_wins() {
    // A reader of the first line would find probe_x/ (0.5 CPU) below it.
    let (r, _) = run("v1-stacked-bind-mount", &host8());
    assert_eq!(r.cpus.value, 1.0);
    assert_eq!(
        r.cpus.source,
        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us (level /probe_x)"
    );
}

/// A fake root built at run time, for names `cargo package` refuses to
/// ship (`:` is not allowed in packaged file names).
struct TempRoot(PathBuf);

impl TempRoot {
    fn new(files: &[(&str, &str)]) -> TempRoot {
        let dir = std::env::temp_dir().join(format!("cinit-root-{}", std::process::id()));
        for (path, text) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        TempRoot(dir)
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn cgroup_path_with_colons() {
    // containerd's systemd-style path, host cgroup namespace.
    let p = "/system.slice/containerd.service/\
             kubepods-burstable-pod3f8b57a9_829a_4d47_b220_b830da173956.slice:cri-containerd:\
             2b7a54862ac13ec3bf45d691f6e900ba67b27ca3718dab124f6d04e1644ee53e";
    let cgroup = format!("0::{p}\n");
    let leaf = format!("sys/fs/cgroup{p}");
    let (cpu, mem) = (format!("{leaf}/cpu.max"), format!("{leaf}/memory.max"));
    let root = TempRoot::new(&[
        ("proc/self/cgroup", &cgroup),
        (
            "proc/self/mountinfo",
            "25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
             30 23 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n",
        ),
        ("proc/meminfo", "MemTotal:       16777216 kB\n"),
        (
            "sys/fs/cgroup/cgroup.controllers",
            "cpuset cpu io memory pids\n",
        ),
        ("sys/fs/cgroup/system.slice/cpu.max", "max 100000\n"),
        (&cpu, "50000 100000\n"),
        (&mem, "268435456\n"),
    ]);
    let r = detect(&root.0, &host8());
    assert_eq!(r.cpus.value, 0.5);
    assert_eq!(
        r.cpus.source,
        format!("/sys/fs/cgroup{p}/cpu.max (level {p})")
    );
    assert_eq!(r.memory.as_ref().unwrap().value, 256 * MIB);
    let cpu_walk = r.walks.iter().find(|w| w.controller == "cpu").unwrap();
    assert_eq!(cpu_walk.levels.len(), 4);
    assert_eq!(decide(&defaults(), &r).count, 1);
}

#[test]
fn escaped_mount_point() {
    let (r, _) = run("v2-escaped-mount-point", &host8());
    assert_eq!(r.cpus.value, 1.5);
    assert_eq!(r.cpus.source, "/sys/fs/cgroup/with space/cpu.max (level /)");
}

#[test]
fn restricted_proc_falls_back_to_host_figures() {
    let (r, s) = run("restricted", &host8());
    assert_eq!(r.cgroup, "none");
    assert_eq!(r.cpus.value, 8.0);
    assert_eq!(r.memory, None);
    assert_eq!(
        r.warnings,
        ["cannot read /proc/self/cgroup: no cgroup limit can be detected"]
    );
    assert_eq!(s.count, 17);
}

#[test]
fn garbage_files_are_warnings_not_crashes() {
    let (r, _) = run("garbage", &host8());
    assert_eq!(r.cgroup, "v2");
    assert_eq!(r.cpus.value, 8.0);
    assert_eq!(r.memory, None);
    assert_eq!(r.cpuset, None);
    assert_eq!(
        r.warnings,
        [
            "cpu: ignored /sys/fs/cgroup/cpu.max: quota `banana` is not a number or `max`",
            "memory: ignored /sys/fs/cgroup/memory.max: `-5` is not a number of bytes or `max`",
        ]
    );
}

#[test]
fn this_machine_hybrid_layout_captured_verbatim() {
    let host = HostFacts {
        online_cpus: 2,
        affinity_cpus: Some(2),
        mem_total: Some(24684084 * 1024),
    };
    let (r, s) = run("hybrid-this-machine", &host);
    assert_eq!(r.cgroup, "hybrid");
    assert_eq!(r.cpus.value, 2.0);
    assert_eq!(r.cpu_quota, None);
    assert_eq!(r.memory, None);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    // The memory walk starts in the sandbox's cgroup and reaches the root.
    let mem = r.walks.iter().find(|w| w.controller == "memory").unwrap();
    assert!(mem.cgroup.starts_with("/process_api/"));
    assert_eq!(mem.levels.len(), 3);
    assert_eq!(mem.levels[2].dir, "/sys/fs/cgroup/memory");
    assert_eq!(s.count, 5);
    // HostFacts::read takes MemTotal and the online count under the root.
    let read = HostFacts::read(&fixture("hybrid-this-machine"));
    assert_eq!(read.mem_total, Some(24684084 * 1024));
    assert_eq!(read.online_cpus, 2);
}

#[test]
fn every_fixture_detects_without_panicking() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cgroup");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let r = detect(&path, &host8());
            assert!(r.cpus.value > 0.0, "{}", path.display());
            let s = decide(&defaults(), &r);
            assert!(s.count >= 1);
            n += 1;
        }
    }
    assert!(n >= 19);
}

// --- the real binary -----------------------------------------------------

/// `init --dry-run --json --workers auto` with `CINIT_ROOT=<fixture>` and
/// no other cinit setting from this process's environment.
fn dry_run_json(case: &str, extra: &[&str]) -> serde_json::Value {
    let mut cmd = crate::common::clean_command(env!("CARGO_BIN_EXE_init"));
    let out = cmd
        .env("CINIT_ROOT", fixture(case))
        .args(["--dry-run", "--json", "--workers", "auto"])
        .args(extra)
        .args(["--", "app"])
        .output()
        .expect("run init");
    assert!(
        out.status.success(),
        "{case}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

#[test]
fn binary_docker_v2() {
    let j = dry_run_json("docker-v2-cpus1.5-mem512m", &[]);
    let r = &j["resources"];
    let cpus = live_affinity().min(1.5);
    assert_eq!(r["cgroup"], "v2");
    assert_eq!(r["cpus"]["value"], cpus);
    assert_eq!(r["cpu_quota"]["value"], 1.5);
    assert_eq!(r["cpu_quota"]["source"], "/sys/fs/cgroup/cpu.max (level /)");
    assert_eq!(r["memory"]["value"], 512 * MIB);
    // MemTotal comes from the fixture's proc/meminfo.
    assert_eq!(r["host"]["mem_total"], 16 * GIB);
    let w = &j["workers"];
    assert_eq!(w["count"], 2);
    assert_eq!(w["sizing"]["memory_bound"], 2);
    assert_eq!(w["sizing"]["limited_by"], "memory");
    assert_eq!(r["walks"][0]["controller"], "cpu");
    assert_eq!(
        r["walks"][0]["levels"][0]["files"][0]["content"],
        "150000 100000"
    );
    assert_eq!(j["warnings"], serde_json::json!([]));
}

#[test]
fn binary_docker_v1() {
    let j = dry_run_json("docker-v1-cpus1.5-mem512m", &[]);
    let r = &j["resources"];
    assert_eq!(r["cgroup"], "v1");
    assert_eq!(r["cpu_quota"]["value"], 1.5);
    assert_eq!(
        r["cpu_quota"]["source"],
        format!("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us (level /docker/{ID})")
    );
    assert_eq!(r["memory"]["value"], 512 * MIB);
    assert_eq!(j["workers"]["count"], 2);
}

#[test]
fn binary_private_namespace_with_overrides() {
    let j = dry_run_json(
        "k8s-v2-pod-limit-private-ns",
        &["--cpus", "1500m", "--memory", "512MiB"],
    );
    let s = &j["workers"]["sizing"];
    assert_eq!(s["cpus"]["value"], 1.5);
    assert!(s["cpus"]["source"]
        .as_str()
        .unwrap()
        .starts_with("--cpus override"));
    assert_eq!(s["memory"]["value"], 512 * MIB);
    assert_eq!(j["workers"]["count"], 2);
    assert_eq!(j["resources"]["memory"], serde_json::Value::Null);
}

#[test]
fn binary_unresolvable_cgroup_is_a_plan_warning() {
    let j = dry_run_json("v2-moved-outside-ns", &[]);
    let warnings = j["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0]
        .as_str()
        .unwrap()
        .contains("cgroup /../sibling is not below the mount root"));
    assert_eq!(j["resources"]["cpu_quota"], serde_json::Value::Null);
}

#[test]
fn binary_this_machine_captured() {
    let j = dry_run_json("hybrid-this-machine", &[]);
    let r = &j["resources"];
    assert_eq!(r["cgroup"], "hybrid");
    assert_eq!(r["cpus"]["value"], live_affinity());
    assert_eq!(r["memory"], serde_json::Value::Null);
    assert_eq!(r["host"]["mem_total"], 24684084u64 * 1024);
    assert_eq!(r["host"]["online_cpus"], 2);
    let expect = (live_affinity() * 2.0 + 1.0).floor() as u64;
    assert_eq!(j["workers"]["count"], expect);
}

// --- snapshots of what the dry run prints ---------------------------------

/// The plan for a fixture, built with injected host facts so the snapshot
/// is the same on every machine.
fn plan(case: &str, args: &[&str]) -> cinit::plan::Plan {
    struct NoEnv;
    impl cinit::config::Env for NoEnv {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
    }
    let root = fixture(case);
    let mut argv = vec![
        "init".to_string(),
        "--root".into(),
        root.display().to_string(),
    ];
    argv.extend(args.iter().map(|s| s.to_string()));
    let args = cinit::config::parse_args(argv).expect("arguments");
    let config = cinit::config::resolve(&args, &NoEnv).expect("config");
    cinit::plan::Plan::build_with(&config, Some(&host8()))
}

const PLAN_ARGS: &[&str] = &["--dry-run", "--workers", "auto", "--", "uvicorn", "app:app"];

#[test]
fn snapshot_docker_v2_text_and_json() {
    let p = plan("docker-v2-cpus1.5-mem512m", PLAN_ARGS);
    snapshot("dry-run-docker-v2.txt", &p.to_text());
    snapshot("dry-run-docker-v2.json", &p.to_json());
}

#[test]
fn snapshot_moved_outside_ns_text() {
    let p = plan("v2-moved-outside-ns", PLAN_ARGS);
    snapshot("dry-run-v2-moved-outside-ns.txt", &p.to_text());
}

#[test]
fn snapshot_docker_v1_text() {
    let p = plan("docker-v1-cpus1.5-mem512m", PLAN_ARGS);
    snapshot("dry-run-docker-v1.txt", &p.to_text());
}

// --- the memory guard's limit ---------------------------------------------

/// The config of `init --root FIXTURE ARGS`.
fn config_in(case: &str, args: &[&str]) -> cinit::config::Config {
    struct NoEnv;
    impl cinit::config::Env for NoEnv {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
    }
    let mut argv = vec![
        "init".to_string(),
        "--root".into(),
        fixture(case).display().to_string(),
    ];
    argv.extend(args.iter().map(|s| s.to_string()));
    let args = cinit::config::parse_args(argv).expect("arguments");
    cinit::config::resolve(&args, &NoEnv).expect("config")
}

/// `--memory-high` as a share of the limit is resolved in a real run (no
/// dry run) with a fixed worker count too, which reads no limits for its
/// sizing: the guard must not be off there while the dry run shows it on.
/// `--memory` stands for the limit where it is given, as it does for the
/// sizing (and as the warning about a missing limit advises).
#[test]
fn memory_high_as_a_percentage_is_resolved_in_every_run() {
    let case = "docker-v1-cpus1.5-mem512m";
    let real = |args: &[&str]| cinit::plan::Plan::build(&config_in(case, args));
    let p = real(&["--workers", "2", "--memory-high", "50%", "--", "app"]);
    assert_eq!(p.memory.limit, Some(512 * MIB));
    assert_eq!(p.memory.high, Some(256 * MIB), "{:?}", p.warnings);
    assert!(p.memory.sampling);
    let dry = real(&[
        "--dry-run",
        "--workers",
        "2",
        "--memory-high",
        "50%",
        "--",
        "app",
    ]);
    assert_eq!(
        dry.memory.high, p.memory.high,
        "the dry run and the run agree"
    );

    for workers in ["2", "auto"] {
        let p = real(&[
            "--workers",
            workers,
            "--memory",
            "200MiB",
            "--memory-high",
            "50%",
            "--",
            "app",
        ]);
        assert_eq!(p.memory.limit, Some(200 * MIB), "--workers {workers}");
        assert_eq!(p.memory.high, Some(100 * MIB), "--workers {workers}");
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }
    // A size needs no limit, and none is read for it.
    let p = cinit::plan::Plan::build_with(
        &config_in(
            case,
            &["--workers", "2", "--memory-high", "300MiB", "--", "app"],
        ),
        None,
    );
    assert_eq!(p.memory.high, Some(300 * MIB));
}
