//! The skip mechanism itself (`common::skip`): a test whose service is
//! missing never passes silently. Each test here runs one real test of this
//! binary again, in a child process, on a machine made to lack the service
//! (a Docker host that does not exist, a PATH without `unshare`), and checks
//! that it fails where the service is required and is recorded, and counted
//! by `.ci/skipped`, where it is not. The last two run `.ci/each-test`, the
//! runner `.ci/test` uses without cargo-nextest, on this binary.

use crate::common::*;
use std::process::{Command, Output};

/// A Docker test that needs the daemon from its first line.
const DOCKER_TEST: &str = "docker::docker_stop_is_a_graceful_shutdown_with_exit_0";
/// A PID-1 test that needs `unshare` from its first line.
const PID1_TEST: &str = "pid1::a_thousand_orphans_are_reaped_as_pid1";

/// Runs `test` of this binary in a child with `env` on top of an
/// environment without any `CINIT_REQUIRE_*` (CI sets them for this run),
/// its skips recorded in `skips`.
fn rerun(test: &str, skips: &TempDir, env: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("this test binary");
    let mut cmd = Command::new(exe);
    for (k, _) in std::env::vars() {
        if k.starts_with("CINIT_REQUIRE_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env("CINIT_TEST_SKIPS", &skips.0)
        .envs(env.iter().copied())
        .output()
        .expect("run this test binary again")
}

fn records(skips: &TempDir) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_dir(&skips.0)
        .map(|d| {
            d.flatten()
                .map(|e| std::fs::read_to_string(e.path()).unwrap())
                .collect()
        })
        .unwrap_or_default();
    lines.sort();
    lines
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout {}\nstderr {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const NO_DAEMON: (&str, &str) = ("DOCKER_HOST", "unix:///nonexistent/docker.sock");

#[test]
fn a_missing_docker_daemon_fails_a_docker_test_where_docker_is_required() {
    for var in ["CINIT_REQUIRE_DOCKER", "CINIT_REQUIRE_ALL"] {
        let skips = TempDir::new("skips");
        let o = rerun(DOCKER_TEST, &skips, &[NO_DAEMON, (var, "1")]);
        assert!(!o.status.success(), "{var}=1: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!("this run requires it ({var}=1)"))
                && err.contains("no Docker daemon"),
            "{}",
            text(&o)
        );
        assert_eq!(
            records(&skips),
            Vec::<String>::new(),
            "a failure, not a skip"
        );
    }
}

#[test]
fn a_missing_docker_daemon_is_a_recorded_skip_that_ci_skipped_counts() {
    let skips = TempDir::new("skips");
    let o = rerun(DOCKER_TEST, &skips, &[NO_DAEMON]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!("SKIPPED {DOCKER_TEST}")),
        "{}",
        text(&o)
    );
    assert_eq!(
        records(&skips),
        [format!(
            "docker\t{DOCKER_TEST}\tno Docker daemon answers `docker info`\n"
        )]
    );

    // The closing summary of .ci/test.
    let summary = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/skipped"))
        .arg(&skips.0)
        .output()
        .expect("run .ci/skipped");
    assert!(summary.status.success(), "{}", text(&summary));
    let out = String::from_utf8_lossy(&summary.stdout);
    assert!(out.starts_with("1 test skipped"), "{out}");
    assert!(
        out.contains("docker, 1 test: no Docker daemon answers `docker info`")
            && out.contains(DOCKER_TEST),
        "{out}"
    );
}

#[test]
fn a_missing_unshare_fails_a_pid1_test_under_require_all_and_is_counted_otherwise() {
    // A PATH where `unshare` cannot be found.
    let empty = TempDir::new("no-unshare");
    let path = empty.0.to_string_lossy().into_owned();

    let skips = TempDir::new("skips");
    let o = rerun(
        PID1_TEST,
        &skips,
        &[("PATH", &path), ("CINIT_REQUIRE_ALL", "1")],
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("needs pid1"),
        "{}",
        text(&o)
    );

    let o = rerun(PID1_TEST, &skips, &[("PATH", &path)]);
    assert!(o.status.success(), "{}", text(&o));
    let recs = records(&skips);
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert!(
        recs[0].starts_with(&format!("pid1\t{PID1_TEST}\t")),
        "{recs:?}"
    );
}

// ------------------------------------------- .ci/each-test (no nextest)

/// `.ci/each-test` (what `.ci/test` runs without cargo-nextest) on this
/// binary, with `filters`.
fn each_test(filters: &[&str], env: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("this test binary");
    let mut cmd = Command::new("bash");
    for (k, _) in std::env::vars() {
        if k.starts_with("CINIT_REQUIRE_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/each-test"))
        .args(filters)
        .env("TEST_BINARIES", exe)
        .envs(env.iter().copied())
        .output()
        .expect("run .ci/each-test")
}

#[test]
fn each_test_runs_every_test_in_a_process_of_its_own() {
    let o = each_test(
        &[
            "docs_examples::line_patterns",
            "docs_examples::output_patterns",
        ],
        &[],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        out.contains("running 2 tests, each in its own process"),
        "{out}"
    );
    assert_eq!(out.matches("\nPASS [").count(), 2, "{out}");
    assert_eq!(out.lines().last(), Some("2 passed, 0 failed"), "{out}");
}

#[test]
fn each_test_fails_and_shows_the_output_of_a_failed_test() {
    let skips = TempDir::new("skips");
    let o = each_test(
        &[DOCKER_TEST],
        &[
            NO_DAEMON,
            ("CINIT_REQUIRE_DOCKER", "1"),
            ("CINIT_TEST_SKIPS", &skips.0.to_string_lossy()),
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(out.contains("FAIL ["), "{out}");
    assert!(
        out.contains("this run requires it (CINIT_REQUIRE_DOCKER=1)"),
        "the failed test's output: {out}"
    );
    assert_eq!(out.lines().last(), Some("0 passed, 1 failed"), "{out}");
}
