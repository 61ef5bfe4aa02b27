//! `Dockerfile.example` built as written, with Docker's legacy builder,
//! from the repository root, and run: the image users copy is the one
//! tested.
//!
//! Nothing can be pulled here, so its two base images are local stand-ins
//! passed as the build arguments that default to the official images
//! (`tests/docker/standins.sh`: Debian bookworm root file systems made by
//! mmdebstrap, one with this machine's Rust toolchain, one with Python 3.11
//! in a virtual environment; built once and kept, by tag, between runs).
//! The build itself reaches crates.io and PyPI like a user's would.
//!
//! The running image, under `docker run --cpus 1.5 --memory 512m`:
//!
//! * the build context is small: the root .dockerignore works with the
//!   legacy builder too (it sent target/, over a gigabyte, before);
//! * the planned worker count (2, as the Dockerfile's comments say) is
//!   the number of uvicorn processes, and every slot answers;
//! * the FastAPI routes answer through the published port;
//! * its HEALTHCHECK (`/init --probe`) turns the container healthy;
//! * `docker stop` ends in exit 0, cinit's clean shutdown, with no SIGKILL;
//! * no process but the init runs as root: uvicorn runs as the image's
//!   `CINIT_USER` (uid and gid 10001, no supplementary group, its HOME,
//!   no new privileges), read from each worker's /proc/PID/status;
//! * the same image with the whole container unprivileged (`--user
//!   10001:10001 --cap-drop ALL --read-only`, as the Kubernetes example's
//!   `restricted` pod runs it, on port 8080): it serves, every process is
//!   uid 10001, and `docker stop` ends in exit 0.
//!
//! Without a Docker daemon the test is skipped loudly; without mmdebstrap
//! it fails with the command that installs it (.ci/test installs it). The
//! test holds a machine-wide lock, and removes its container, its image and
//! the intermediate images of its build (never the stand-ins), failures
//! included.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{exclusive_lock, http_get, PROMPT};
use crate::docker::{docker, docker_ok, output_within, require_docker, unique, Container};

const LOCK: &str = "/run/cinit-test-example-image.lock";
/// The tags of the images this test builds: `cinit-test-example-PID-N`.
const TAG_PREFIX: &str = "cinit-test-example";
/// The label of the stand-ins, inherited by every image built from them.
const STANDIN_LABEL: &str = "cinit.standin.key";
/// The image's listening port (CINIT_LISTEN, EXPOSE).
const PORT: u16 = 80;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The stand-ins' tags: RUST_IMAGE and PYTHON_IMAGE, built if missing.
fn standins() -> Vec<(String, String)> {
    let started = Instant::now();
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("tests/docker/standins.sh"));
    let out = output_within(cmd, Duration::from_secs(20 * 60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprint!("{stderr}");
    assert!(
        out.status.success(),
        "the base image stand-ins could not be built (mmdebstrap missing? \
         `apt-get install mmdebstrap`; .ci/test installs it):\n{stderr}"
    );
    eprintln!("stand-ins ready in {:.1}s", started.elapsed().as_secs_f64());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The image built from Dockerfile.example; on drop, removed with the
/// intermediate images of its build ([`sweep`]).
struct Example {
    tag: String,
    build_log: String,
}

impl Example {
    fn build(standins: &[(String, String)]) -> Example {
        let tag = unique(TAG_PREFIX);
        let mut cmd = Command::new("docker");
        // The builder Docker 20.10 uses without buildx, and the one that
        // reads no ignore file but the root .dockerignore.
        cmd.env("DOCKER_BUILDKIT", "0").current_dir(repo()).args([
            "build",
            "--force-rm",
            "-f",
            "Dockerfile.example",
            "-t",
            &tag,
        ]);
        for (k, v) in standins {
            cmd.args(["--build-arg", &format!("{k}={v}")]);
        }
        cmd.arg(".");
        let started = Instant::now();
        let out = output_within(cmd, Duration::from_secs(20 * 60));
        let example = Example {
            tag,
            build_log: String::from_utf8_lossy(&out.stdout).into_owned(),
        };
        assert!(
            out.status.success(),
            "docker build -f Dockerfile.example failed:\n{}\n{}",
            example.build_log,
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "Dockerfile.example built in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        example
    }

    /// "Sending build context to Docker daemon  388.6kB", in bytes.
    fn context_bytes(&self) -> f64 {
        let line = self
            .build_log
            .lines()
            .find_map(|l| l.strip_prefix("Sending build context to Docker daemon"))
            .unwrap_or_else(|| panic!("no build context size in:\n{}", self.build_log));
        let size = line.trim();
        let split = size
            .find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(size.len());
        let (n, unit) = size.split_at(split);
        let n: f64 = n.parse().unwrap_or_else(|_| panic!("size {size:?}"));
        n * match unit {
            "B" => 1.0,
            "kB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            other => panic!("unit {other:?} in {size:?}"),
        }
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        sweep();
    }
}

/// Removes what this test's builds left, a killed run's included: the
/// images tagged `cinit-test-example-*` with their containers, and every
/// dangling image that descends from a stand-in (the intermediate images
/// of a build; they inherit the stand-ins' label). Only this test builds
/// from the stand-ins, under [`LOCK`], and the stand-ins themselves are
/// tagged, so nothing else matches.
fn sweep() {
    let tags = docker(&[
        "images",
        "--format",
        "{{.Repository}}",
        "--filter",
        &format!("reference={TAG_PREFIX}-*"),
    ]);
    for tag in String::from_utf8_lossy(&tags.stdout).split_whitespace() {
        let users = docker(&["ps", "-aq", "--filter", &format!("ancestor={tag}")]);
        for c in String::from_utf8_lossy(&users.stdout).split_whitespace() {
            let _ = docker(&["rm", "-f", "-v", c]);
        }
        let _ = docker(&["rmi", tag]);
    }
    let _ = docker(&[
        "image",
        "prune",
        "-f",
        "--filter",
        &format!("label={STANDIN_LABEL}"),
    ]);
}

/// (user, command) of every process of the container but its PID 1.
fn processes(c: &Container) -> Vec<(String, String)> {
    let pid1 = c.inspect("{{.State.Pid}}");
    docker_ok(&["top", &c.name, "-eo", "user,pid,args"])
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let user = w.next()?.to_string();
            // The host's pid: PID 1 of the container is .State.Pid.
            let pid = w.next()?;
            (pid != pid1).then(|| (user, w.collect::<Vec<_>>().join(" ")))
        })
        .collect()
}

fn get_json(port: u16, path: &str) -> Option<Value> {
    match http_get(port, path) {
        Ok((200, body)) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

#[test]
fn dockerfile_example_builds_and_runs() {
    require_docker!();
    let _machine = exclusive_lock(LOCK);
    // What a killed earlier run may have left.
    sweep();
    let standins = standins();
    let names: Vec<&str> = standins.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["RUST_IMAGE", "PYTHON_IMAGE"], "{standins:?}");
    let image = Example::build(&standins);

    let context = image.context_bytes();
    assert!(
        context < 5e6,
        "the legacy builder sent {context} bytes of context: .dockerignore does not keep \
         target/ out"
    );

    let c = Container::start_tag(
        &image.tag,
        &[
            "--cpus",
            "1.5",
            "--memory",
            "512m",
            "-p",
            &format!("127.0.0.1::{PORT}"),
        ],
        &[],
    );
    // What the init plans in this very cgroup, asked from inside.
    let plan: Value = serde_json::from_str(&c.exec(&[
        "/init",
        "--dry-run",
        "--json",
        "--",
        "uvicorn",
        "app.main:app",
        "--fd",
        "3",
    ]))
    .expect("the plan is JSON");
    let planned = plan["workers"]["count"].as_u64().unwrap() as usize;
    assert_eq!(
        planned, 2,
        "1.5 CPUs and 512 MiB give 2 workers: {}",
        plan["workers"]
    );

    let port = c.host_port_of(PORT);
    let mut slots = std::collections::BTreeSet::new();
    c.wait_for("every planned worker to answer", PROMPT * 3, || {
        if let Some(w) = get_json(port, "/pid") {
            assert_eq!(w["workers"], planned as u64, "{w}");
            slots.insert(w["worker"].as_u64().unwrap());
        }
        slots.len() == planned
    });
    let uvicorns = || {
        processes(&c)
            .into_iter()
            .filter(|(_, args)| args.contains("uvicorn app.main:app"))
            .count()
    };
    assert_eq!(uvicorns(), planned, "{:?}", processes(&c));

    assert_eq!(
        get_json(port, "/"),
        Some(serde_json::json!({"Hello": "World"}))
    );
    assert_eq!(
        get_json(port, "/items/5?q=somequery"),
        Some(serde_json::json!({"item_id": 5, "q": "somequery"}))
    );
    assert_eq!(http_get(port, "/healthz").ok(), Some((200, "ok".into())));

    // The image's own HEALTHCHECK, at its own interval.
    c.wait_for("the HEALTHCHECK to pass", Duration::from_secs(90), || {
        c.inspect("{{if .State.Health}}{{.State.Health.Status}}{{end}}") == "healthy"
    });

    // No process but the init runs as root (`/init --probe` of the
    // HEALTHCHECK is the init too).
    let root: Vec<(String, String)> = processes(&c)
        .into_iter()
        .filter(|(user, args)| user == "root" && !args.starts_with("/init "))
        .collect();
    assert!(
        root.is_empty(),
        "processes other than the init run as root: {root:?}"
    );
    // uvicorn runs as the image's CINIT_USER, seen from its own /proc.
    let workers: Vec<i32> = host_procs(&c)
        .into_iter()
        .filter(|(_, _, args)| is_uvicorn(args))
        .map(|(pid, _, _)| pid)
        .collect();
    assert_eq!(workers.len(), planned);
    for pid in workers {
        let st = status(pid);
        assert_eq!(st["Uid"], "10001 10001 10001 10001", "{st:?}");
        assert_eq!(st["Gid"], "10001 10001 10001 10001", "{st:?}");
        assert_eq!(st["Groups"], "", "no supplementary group: {st:?}");
        assert_eq!(st["NoNewPrivs"], "1", "{st:?}");
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let env = String::from_utf8_lossy(&env);
        let vars: Vec<&str> = env.split('\0').collect();
        assert!(vars.contains(&"HOME=/home/app"), "{vars:?}");
        assert!(vars.contains(&"USER=app"), "{vars:?}");
    }

    // docker stop's default 10s: cinit's 8s graceful timeout fits inside.
    let out = docker(&["stop", &c.name]);
    assert!(out.status.success(), "{out:?}");
    let logs = c.logs();
    assert_eq!(
        c.exit_code(PROMPT),
        0,
        "a clean shutdown, not Docker's SIGKILL (137):\n{logs}"
    );
    assert!(logs.contains("SIGTERM: stopping"), "{logs}");
    assert!(logs.contains("exiting with code 0"), "{logs}");
    assert!(
        !logs.contains("SIGKILL"),
        "every uvicorn stopped on SIGTERM: {logs}"
    );

    // The whole container unprivileged, as the Kubernetes example runs it
    // (restricted level: non-root, no capability, read-only root, no new
    // privileges; port 8080, which needs no privilege in any runtime).
    let c = Container::start_tag(
        &image.tag,
        &[
            "--user",
            "10001:10001",
            "--cap-drop",
            "ALL",
            "--read-only",
            "--tmpfs",
            "/tmp",
            "--security-opt",
            "no-new-privileges",
            "--cpus",
            "1.5",
            "--memory",
            "512m",
            "-e",
            "CINIT_LISTEN=0.0.0.0:8080",
            "-p",
            "127.0.0.1::8080",
        ],
        &[],
    );
    let port = c.host_port_of(8080);
    c.wait_for("the unprivileged container to answer", PROMPT * 3, || {
        get_json(port, "/") == Some(serde_json::json!({"Hello": "World"}))
    });
    c.wait_log("ready: 2 worker(s) serving", PROMPT);
    let procs = host_procs(&c);
    assert!(
        procs.iter().all(|(_, uid, _)| *uid == 10001),
        "every process is uid 10001: {procs:?}"
    );
    assert_eq!(
        procs.iter().filter(|(_, _, args)| is_uvicorn(args)).count(),
        planned,
        "{procs:?}"
    );
    let out = docker(&["stop", &c.name]);
    assert!(out.status.success(), "{out:?}");
    let logs = c.logs();
    assert_eq!(c.exit_code(PROMPT), 0, "{logs}");
    assert!(!logs.contains("SIGKILL"), "{logs}");
}

/// A worker's command line (the init's own, `/init uvicorn ...`, holds
/// the command too).
fn is_uvicorn(args: &str) -> bool {
    args.starts_with("uvicorn app.main:app") || args.contains("/uvicorn app.main:app")
}

/// (host pid, uid, command) of every process of the container.
fn host_procs(c: &Container) -> Vec<(i32, u32, String)> {
    docker_ok(&["top", &c.name, "-eo", "pid,uid,args"])
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let pid = w.next()?.parse().ok()?;
            let uid = w.next()?.parse().ok()?;
            Some((pid, uid, w.collect::<Vec<_>>().join(" ")))
        })
        .collect()
}

/// The fields of /proc/PID/status (a host pid), whitespace collapsed.
fn status(pid: i32) -> std::collections::BTreeMap<String, String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect()
}

/// The build stage of Dockerfile.example with `TARGETARCH=arm64`, as
/// BuildKit sets it for `--platform linux/arm64` (here on the amd64
/// stand-in, so the init is cross-linked by rust-lld): the stage's /init
/// is an aarch64 binary that runs (under qemu-user) and plans. A second
/// cargo build of minutes, so it runs only with CINIT_TEST_EXAMPLE_ARM64=1
/// (not in CI, for its time budget); measured by hand in
/// docs/deploying.md.
#[test]
fn dockerfile_example_builds_the_arm64_init() {
    require_docker!();
    if std::env::var("CINIT_TEST_EXAMPLE_ARM64").map_or(true, |v| v != "1") {
        eprintln!(
            "\n\
             ##########################################################\n\
             ## SKIPPED: the arm64 build of Dockerfile.example runs   ##\n\
             ## only with CINIT_TEST_EXAMPLE_ARM64=1 (minutes).        ##\n\
             ##########################################################\n"
        );
        return;
    }
    let _machine = exclusive_lock(LOCK);
    sweep();
    let standins = standins();
    let tag = unique(TAG_PREFIX);
    let image = Example {
        tag: tag.clone(),
        build_log: String::new(),
    };
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_BUILDKIT", "0")
        .current_dir(repo())
        .args(["build", "-q", "--force-rm", "-f", "Dockerfile.example"])
        .args(["--target", "init", "--build-arg", "TARGETARCH=arm64"])
        .args(["--build-arg", &format!("RUST_IMAGE={}", standins[0].1)])
        .args(["-t", &tag, "."]);
    let out = output_within(cmd, Duration::from_secs(20 * 60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = crate::common::TempDir::new("example-arm64");
    let init = dir.0.join("init");
    let c = Container {
        name: unique("cinit-test"),
    };
    docker_ok(&["create", "--name", &c.name, &image.tag, "true"]);
    docker_ok(&["cp", &format!("{}:/init", c.name), &init.to_string_lossy()]);
    let a = crate::qemu::Aarch64::new();
    let qemu_init = |args: &[&str]| {
        let mut argv = a.argv("init");
        *argv.last_mut().unwrap() = init.to_string_lossy().into_owned();
        let out = Command::new(&argv[0])
            .args(&argv[1..])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let elf = std::fs::read(&init).unwrap();
    assert_eq!(u16::from_le_bytes([elf[18], elf[19]]), 183, "EM_AARCH64");
    assert!(qemu_init(&["--version"]).starts_with("init "));
    let plan: Value = serde_json::from_str(&qemu_init(&[
        "--dry-run",
        "--json",
        "--workers",
        "auto",
        "--cpus",
        "1.5",
        "--memory",
        "512m",
        "--",
        "true",
    ]))
    .unwrap();
    assert_eq!(plan["workers"]["count"], 2, "{}", plan["workers"]);
}
