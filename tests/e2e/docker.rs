//! Docker end-to-end tests: cinit as the `ENTRYPOINT ["/init"]` of real
//! containers on this machine's engine.
//!
//! No registry is needed: the static (musl) `init` and `cinit-demo` are
//! built once per test process (`cargo build --release --target
//! x86_64-unknown-linux-musl --bins` into `<target>/static`) and each
//! test builds its own `FROM scratch` image from a generated Dockerfile.
//! Images and containers have unique names and are removed by Drop guards,
//! failures included. Every docker command and every wait is bounded; the
//! tests poll `docker inspect`, `docker top`, `docker logs` or HTTP until a
//! condition holds and never sleep to let something happen (the one fixed
//! window is the idle wake-up measurement, which is a measurement).
//!
//! Without a Docker daemon (`docker info` fails) every test here is skipped
//! through `common::skip`: a failure where Docker is required (CI sets
//! `CINIT_REQUIRE_ALL=1`; `CINIT_REQUIRE_DOCKER=1` does it for these
//! alone), else counted in `.ci/test`'s closing summary. A missing musl
//! target is a failure (CI installs it).
//!
//! `comparison_with_docker_init` runs the same scenarios under `docker run
//! --init` (Docker's bundled tini, the demo as PID 2) and prints a table on
//! stderr (`cargo test --test e2e docker::comparison -- --nocapture`); the table
//! in docs/deploying.md comes from such a run.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::TempDir;
use serde_json::Value;

const MUSL: &str = "x86_64-unknown-linux-musl";
/// The port the demo serves on inside the containers.
pub(crate) const PORT: u16 = 8000;

// ------------------------------------------------------------------ set-up

pub(crate) fn docker_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Without a daemon the test is skipped: a failure under
/// `CINIT_REQUIRE_DOCKER=1` or `CINIT_REQUIRE_ALL=1` (CI), else counted in
/// `.ci/test`'s summary (`common::skip`).
macro_rules! require_docker {
    () => {
        if !$crate::docker::docker_available() {
            crate::common::skip(
                crate::common::Need::Docker,
                "no Docker daemon answers `docker info`",
            );
            return;
        }
    };
}
pub(crate) use require_docker;

/// The directory holding the static x86_64 `init` and `cinit-demo`.
fn static_bins() -> &'static Path {
    crate::common::static_bins(MUSL)
}

pub(crate) fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

// ------------------------------------------------------------ docker CLI

/// Runs `docker ARGS`, killing it past `timeout`.
pub(crate) fn docker_within(args: &[&str], timeout: Duration) -> Output {
    let mut cmd = Command::new("docker");
    cmd.args(args);
    output_within(cmd, timeout)
}

/// Runs `cmd` to its end with its output captured, killing it past
/// `timeout`.
pub(crate) fn output_within(mut cmd: Command, timeout: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("failed to run {what}: {e}"));
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let end = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for docker") {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

pub(crate) fn docker(args: &[&str]) -> Output {
    docker_within(args, Duration::from_secs(60))
}

/// `docker ARGS`, which must succeed; its stdout.
pub(crate) fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "`docker {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Held around `docker build` and `docker rmi`: the images of the tests
/// share their cached layers (identical contexts even build the same image
/// id), and removing one image deletes the untagged parents that a build
/// running at the same moment is about to reuse ("failed to get digest").
/// The tests run in processes of their own (nextest, .ci/each-test), and
/// other checkouts on this machine share the daemon, so the lock is an
/// flock on one file in the temp directory, not a mutex of this process.
/// It is released when the guard (its open file) is dropped.
fn image_lock() -> nix::fcntl::Flock<std::fs::File> {
    let path = std::env::temp_dir().join("cinit-test-docker-images.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .unwrap_or_else(|(_, e)| panic!("flock {}: {e}", path.display()))
}

/// A `FROM scratch` image with `/init` and `/cinit-demo`; removed on drop.
pub(crate) struct Image {
    tag: String,
}

impl Image {
    /// `extra` is appended to the Dockerfile (a HEALTHCHECK, say).
    pub(crate) fn build(extra: &str) -> Image {
        Image::build_from(static_bins(), None, &[], extra)
    }

    /// The same image with more files: each `(path, contents)` is copied
    /// to that absolute path (a Procfile, a cinit.toml).
    pub(crate) fn build_with(files: &[(&str, &str)], extra: &str) -> Image {
        Image::build_from(static_bins(), None, files, extra)
    }

    /// The same image from the binaries in `bins`, for `platform`
    /// (`linux/arm64`) where it is not the machine's own.
    fn build_from(
        bins: &Path,
        platform: Option<&str>,
        files: &[(&str, &str)],
        extra: &str,
    ) -> Image {
        let ctx = TempDir::new("docker-ctx");
        for bin in ["init", "cinit-demo"] {
            std::fs::copy(bins.join(bin), ctx.0.join(bin))
                .unwrap_or_else(|e| panic!("copy {bin} into the build context: {e}"));
        }
        let mut copies = String::new();
        for (i, (path, contents)) in files.iter().enumerate() {
            assert!(
                path.starts_with('/'),
                "{path}: an absolute path in the image"
            );
            let name = format!("file-{i}");
            std::fs::write(ctx.0.join(&name), contents).unwrap();
            copies.push_str(&format!("COPY {name} {path}\n"));
        }
        std::fs::write(
            ctx.0.join("Dockerfile"),
            format!(
                "FROM scratch\n\
                 COPY init /init\n\
                 COPY cinit-demo /cinit-demo\n\
                 {copies}\
                 ENTRYPOINT [\"/init\"]\n\
                 {extra}\n"
            ),
        )
        .unwrap();
        let tag = unique("cinit-test-image");
        let ctx_dir = ctx.0.to_string_lossy();
        let mut args = vec!["build", "-q", "--force-rm", "-t", &tag];
        if let Some(p) = platform {
            args.extend(["--platform", p]);
        }
        args.push(&ctx_dir);
        let out = {
            let _lock = image_lock();
            docker_within(&args, Duration::from_secs(120))
        };
        assert!(
            out.status.success(),
            "docker build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Image { tag }
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _lock = image_lock();
        let _ = Command::new("docker")
            .args(["rmi", "-f", &self.tag])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A process of a container as `docker top` shows it, with its pid inside
/// the container's PID namespace (from the host's /proc/PID/status NSpid).
#[derive(Debug, Clone)]
pub(crate) struct Proc {
    /// The pid inside the container.
    pub(crate) pid: i32,
    pub(crate) stat: String,
    pub(crate) args: String,
}

/// A container, removed (with its volumes) on drop.
pub(crate) struct Container {
    pub(crate) name: String,
}

impl Container {
    /// `docker run -d --name NAME DOCKER_ARGS IMAGE ARGS`.
    pub(crate) fn start(image: &Image, docker_args: &[&str], args: &[&str]) -> Container {
        Container::start_tag(&image.tag, docker_args, args)
    }

    /// The same for an image given by its tag.
    pub(crate) fn start_tag(tag: &str, docker_args: &[&str], args: &[&str]) -> Container {
        let c = Container {
            name: unique("cinit-test"),
        };
        let mut all = vec!["run", "-d", "--name", &c.name];
        all.extend_from_slice(docker_args);
        all.push(tag);
        all.extend_from_slice(args);
        docker_ok(&all);
        c
    }

    /// `docker run --name NAME DOCKER_ARGS IMAGE ARGS` to its end.
    fn run_to_end(image: &Image, docker_args: &[&str], args: &[&str]) -> (Container, Output) {
        let c = Container {
            name: unique("cinit-test"),
        };
        let mut all = vec!["run", "--name", &c.name];
        all.extend_from_slice(docker_args);
        all.push(&image.tag);
        all.extend_from_slice(args);
        let out = docker(&all);
        (c, out)
    }

    pub(crate) fn inspect(&self, format: &str) -> String {
        docker_ok(&["inspect", "-f", format, &self.name])
            .trim()
            .to_string()
    }

    pub(crate) fn logs(&self) -> String {
        let out = docker(&["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    pub(crate) fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        loop {
            let logs = self.logs();
            if logs.contains(needle) {
                return logs;
            }
            if Instant::now() > end {
                self.fail(&format!("no {needle:?} in the logs within {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls `cond` until it holds; past `timeout`, fails with the
    /// container's state and logs.
    pub(crate) fn wait_for(&self, what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
        let end = Instant::now() + timeout;
        while !cond() {
            if Instant::now() > end {
                self.fail(&format!("timed out after {timeout:?} waiting for {what}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn fail(&self, msg: &str) -> ! {
        let state = docker(&["inspect", "-f", "{{json .State}}", &self.name]);
        panic!(
            "{msg}\n{} state: {}\n--- docker logs ---\n{}",
            self.name,
            String::from_utf8_lossy(&state.stdout).trim(),
            self.logs()
        )
    }

    pub(crate) fn running(&self) -> bool {
        self.inspect("{{.State.Running}}") == "true"
    }

    /// Waits for the container to stop; its exit code.
    pub(crate) fn exit_code(&self, timeout: Duration) -> i32 {
        self.wait_for("the container to exit", timeout, || !self.running());
        self.inspect("{{.State.ExitCode}}").parse().unwrap()
    }

    /// The host port that `docker run -p 127.0.0.1::PORT` chose.
    pub(crate) fn host_port(&self) -> u16 {
        self.host_port_of(PORT)
    }

    /// The host port that `docker run -p 127.0.0.1::port` chose.
    pub(crate) fn host_port_of(&self, port: u16) -> u16 {
        let out = docker(&["port", &self.name, &format!("{port}/tcp")]);
        if !out.status.success() {
            self.fail(&format!(
                "docker port: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let out = String::from_utf8_lossy(&out.stdout).into_owned();
        out.lines()
            .find_map(|l| l.strip_prefix("127.0.0.1:"))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no published port in {out:?}"))
    }

    pub(crate) fn top(&self) -> Vec<Proc> {
        let out = docker_ok(&["top", &self.name, "-eo", "pid,stat,args"]);
        out.lines()
            .skip(1)
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let host_pid: i32 = w.next()?.parse().ok()?;
                let stat = w.next()?.to_string();
                let args = w.collect::<Vec<_>>().join(" ");
                let pid = std::fs::read_to_string(format!("/proc/{host_pid}/status"))
                    .ok()?
                    .lines()
                    .find_map(|l| l.strip_prefix("NSpid:"))
                    .and_then(|s| s.split_whitespace().last()?.parse().ok())?;
                Some(Proc { pid, stat, args })
            })
            .collect()
    }

    /// The in-container pids of the processes whose command line starts
    /// with `prefix`.
    pub(crate) fn pids_of(&self, prefix: &str) -> BTreeSet<i32> {
        self.top()
            .into_iter()
            .filter(|p| p.args.starts_with(prefix))
            .map(|p| p.pid)
            .collect()
    }

    pub(crate) fn exec(&self, args: &[&str]) -> String {
        let mut all = vec!["exec", self.name.as_str()];
        all.extend_from_slice(args);
        let out = docker(&all);
        if !out.status.success() {
            self.fail(&format!(
                "docker exec {args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `/healthz` answers 200 through the published port.
    pub(crate) fn wait_http(&self, port: u16) {
        let end = Instant::now() + crate::common::PROMPT;
        while http_get(port, "/healthz").map(|r| r.0) != Some(200) {
            if Instant::now() > end || !self.running() {
                self.fail(&format!("no HTTP answer on port {port}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// One GET on 127.0.0.1:PORT: (status, body), or None when nothing
/// answered (docker-proxy accepts and closes when the container does not
/// listen yet).
pub(crate) fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    crate::common::http_get(port, path).ok()
}

/// The demo's answer to `/`: {"pid", "worker", "workers", "path"}.
pub(crate) fn whoami(port: u16) -> Option<Value> {
    let (status, body) = http_get(port, "/")?;
    if status != 200 {
        return None;
    }
    serde_json::from_str(&body).ok()
}

fn serve_args(workers: &str) -> Vec<&str> {
    vec!["--workers", workers, "/cinit-demo", "serve"]
}

pub(crate) const LISTEN_ENV: &str = "CINIT_LISTEN=0.0.0.0:8000";
pub(crate) const PUBLISH: &str = "127.0.0.1::8000";

// ------------------------------------------------------------------ tests

/// The static binary is what goes into images; it must bind with the
/// default settings (no Docker needed for this one).
#[test]
fn static_init_listens_with_the_default_settings() {
    let bins = static_bins();
    let out = Command::new(bins.join("init"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--restart",
            "never",
        ])
        .arg(bins.join("cinit-demo"))
        .args(["exit", "0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the static init failed with the default --backlog (2048):\n{stderr}"
    );
    assert!(stderr.contains("listening on 127.0.0.1:"), "{stderr}");
}

#[test]
fn dry_run_in_a_container_sees_its_limits() {
    require_docker!();
    let img = Image::build("");
    let limits = ["--cpus", "1.5", "--memory", "512m"];
    let mut args = vec!["--dry-run", "--json", "--workers", "auto", "--"];
    args.extend(["/cinit-demo", "serve"]);
    let (_c, out) = Container::run_to_end(&img, &limits, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).expect("the plan is JSON");
    let res = &plan["resources"];
    assert_eq!(res["cpus"]["value"], 1.5, "{}", res["cpus"]);
    assert_eq!(
        res["memory"]["value"],
        512 * 1024 * 1024,
        "{}",
        res["memory"]
    );
    let cpu_src = res["cpus"]["source"].as_str().unwrap();
    assert!(
        cpu_src.contains("cpu.cfs_quota_us") || cpu_src.contains("cpu.max"),
        "the CPUs come from the cgroup quota: {cpu_src}"
    );
    // floor(1.5 x 2 + 1) = 4 by CPU, floor(512 MiB / 256 MiB) = 2 by memory.
    assert_eq!(plan["workers"]["count"], 2, "{}", plan["workers"]);
    assert_eq!(plan["workers"]["sizing"]["limited_by"], "memory");
    assert_eq!(plan["reaper"], "pid1", "the entrypoint is PID 1");
    assert_eq!(plan["warnings"], serde_json::json!([]));
}

#[test]
fn auto_workers_start_the_planned_count() {
    require_docker!();
    let img = Image::build("");
    let c = Container::start(
        &img,
        &[
            "--cpus", "1.5", "--memory", "512m", "-p", PUBLISH, "-e", LISTEN_ENV,
        ],
        &serve_args("auto"),
    );
    // The plan of the same cgroup, asked from inside the container.
    let plan: Value = serde_json::from_str(&c.exec(&[
        "/init",
        "--dry-run",
        "--json",
        "--workers",
        "auto",
        "--",
        "/cinit-demo",
        "serve",
    ]))
    .unwrap();
    let planned = plan["workers"]["count"].as_u64().unwrap() as usize;
    assert_eq!(planned, 2);

    let port = c.host_port();
    c.wait_http(port);
    let mut workers = BTreeSet::new();
    c.wait_for(
        "worker processes to reach the planned count",
        crate::common::PROMPT,
        || c.pids_of("/cinit-demo serve").len() == planned,
    );
    let pids = c.pids_of("/cinit-demo serve");
    // The kernel hands connections on the shared socket to the workers in
    // turn; every one of them answers, and each knows the count.
    let mut seen_pids = BTreeSet::new();
    c.wait_for(
        "every worker slot to answer HTTP",
        crate::common::PROMPT,
        || {
            if let Some(w) = whoami(port) {
                assert_eq!(w["workers"], planned as u64, "{w}");
                workers.insert(w["worker"].as_u64().unwrap());
                seen_pids.insert(w["pid"].as_i64().unwrap() as i32);
            }
            workers.len() == planned
        },
    );
    assert_eq!(workers, (0..planned as u64).collect());
    assert_eq!(
        seen_pids, pids,
        "the answering pids are the worker processes"
    );
    assert_eq!(c.pids_of("/cinit-demo serve").len(), planned, "no more");
}

#[test]
fn docker_stop_is_a_graceful_shutdown_with_exit_0() {
    require_docker!();
    let img = Image::build("");
    let c = Container::start(&img, &["-p", PUBLISH, "-e", LISTEN_ENV], &serve_args("2"));
    c.wait_http(c.host_port());
    let t = Instant::now();
    docker_ok(&["stop", "-t", "10", &c.name]);
    let took = t.elapsed();
    assert_eq!(c.exit_code(crate::common::PROMPT), 0, "{}", c.logs());
    assert!(
        took < Duration::from_secs(5),
        "docker stop took {took:?}, close to its 10s timeout"
    );
    let logs = c.logs();
    assert!(logs.contains("SIGTERM: stopping"), "{logs}");
    assert!(logs.contains("exiting with code 0"), "{logs}");
    assert!(!logs.contains("SIGKILL"), "no worker needed a kill: {logs}");
}

#[test]
fn a_worker_ignoring_term_is_killed_by_cinit_before_docker() {
    require_docker!();
    let img = Image::build("");
    let c = Container::start(
        &img,
        &["-e", "CINIT_GRACEFUL_TIMEOUT=2s"],
        &["--workers", "1", "/cinit-demo", "ignore-term"],
    );
    c.wait_log("ready", crate::common::PROMPT);
    let t = Instant::now();
    // Docker would SIGKILL after 30s (exit 137); cinit does it after 2s.
    docker_within(&["stop", "-t", "30", &c.name], Duration::from_secs(60));
    let took = t.elapsed();
    let code = c.exit_code(crate::common::PROMPT);
    let logs = c.logs();
    assert_eq!(
        code, 0,
        "cinit's own kill, a clean worker-mode exit:\n{logs}"
    );
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(15),
        "stopped after {took:?}; expected the 2s graceful timeout"
    );
    assert!(logs.contains("ignored 15"), "the worker got TERM: {logs}");
    assert!(
        logs.contains("graceful timeout (2s) passed: SIGKILL to 1 worker(s)"),
        "{logs}"
    );
    assert!(logs.contains("exiting with code 0"), "{logs}");
}

/// Starts `docker exec NAME ARGS` with its stdout piped; returns once the
/// process shows in `docker top`.
fn exec_in_background(c: &Container, args: &[&str]) -> std::process::Child {
    let mut all = vec!["exec", c.name.as_str()];
    all.extend_from_slice(args);
    let child = Command::new("docker")
        .args(&all)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run docker exec");
    let prefix = args.join(" ");
    c.wait_for("the exec'd process to start", crate::common::PROMPT, || {
        c.pids_of(&prefix).len() == 1
    });
    child
}

/// Waits for a `docker exec` to end: its exit code and output.
fn finish_exec(mut exec: std::process::Child) -> (Option<i32>, String) {
    let mut out = exec.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let end = Instant::now() + crate::common::PROMPT;
    let status = loop {
        if let Some(s) = exec.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = exec.kill();
            panic!("docker exec did not end within {:?}", crate::common::PROMPT);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code(), reader.join().unwrap())
}

/// A process that is not the init's child (a `docker exec` session) and
/// does not stop on SIGTERM: as PID 1, cinit gives it the stop signal and
/// the graceful timeout, then SIGKILL, before it exits itself (README,
/// "Signals"); the kernel's SIGKILL when PID 1 exits must not come first.
#[test]
fn a_leftover_process_gets_the_graceful_window() {
    require_docker!();
    let img = Image::build("");
    let c = Container::start(
        &img,
        &["-e", "CINIT_GRACEFUL_TIMEOUT=2s"],
        &["/cinit-demo", "sleep"],
    );
    c.wait_log("ready", crate::common::PROMPT);
    let exec = exec_in_background(&c, &["/cinit-demo", "ignore-term"]);
    let t = Instant::now();
    docker_within(&["stop", "-t", "30", &c.name], Duration::from_secs(60));
    let took = t.elapsed();
    let (code, printed) = finish_exec(exec);
    assert!(
        printed.contains("ignored 15"),
        "it got SIGTERM: {printed:?}"
    );
    assert_eq!(code, Some(137), "and SIGKILL in the end");
    assert_eq!(c.exit_code(crate::common::PROMPT), 143, "the child's TERM");
    let logs = c.logs();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(15),
        "the container stopped after {took:?}: the leftover had no 2s graceful window \
         (PID 1 exited right after sending SIGTERM, and the kernel killed the rest)\n{logs}"
    );
    assert!(
        logs.contains("graceful timeout passed: SIGKILL to every process left"),
        "{logs}"
    );
}

#[test]
fn hup_rolls_every_worker_without_a_failed_request() {
    require_docker!();
    let img = Image::build("");
    let c = Container::start(&img, &["-p", PUBLISH, "-e", LISTEN_ENV], &serve_args("2"));
    let port = c.host_port();
    c.wait_http(port);
    c.wait_for("2 workers", crate::common::PROMPT, || {
        c.pids_of("/cinit-demo serve").len() == 2
    });
    let old = c.pids_of("/cinit-demo serve");

    // A client keeps asking during the whole roll.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match http_get(port, "/") {
                    Some((200, _)) => ok += 1,
                    other => failed.push(format!("{other:?}")),
                }
            }
            (ok, failed)
        })
    };

    docker_ok(&["kill", "-s", "HUP", &c.name]);
    let mut new = BTreeSet::new();
    c.wait_for(
        "both slots to be replaced by new processes",
        Duration::from_secs(40),
        || {
            new = c.pids_of("/cinit-demo serve");
            new.len() == 2 && new.is_disjoint(&old)
        },
    );
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = client.join().unwrap();
    for _ in 0..6 {
        let w = whoami(port).expect("an answer after the roll");
        let pid = w["pid"].as_i64().unwrap() as i32;
        assert!(new.contains(&pid), "answered by {pid}, not one of {new:?}");
    }
    let logs = c.logs();
    assert_eq!(logs.matches(" replaced: pid ").count(), 2, "{logs}");
    assert!(ok > 0, "the client got answers during the roll");
    assert!(
        failed.is_empty(),
        "{} of {} requests failed during the roll: {:?}",
        failed.len(),
        ok as usize + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(c.running());
}

/// `cinit-demo orphans N --stay`: N grandchildren are re-parented to PID 1
/// and exit after 0.2s. Waits until none of them sleeps any more, then
/// until zombie-check counts `settled` zombies (0 when PID 1 reaps, N when
/// nothing does); returns the orphans' pids and the last count.
fn orphans_then_zombies(c: &Container, n: usize, settled: usize) -> (Vec<i32>, usize) {
    let mut orphans = Vec::new();
    c.wait_for("the orphans to be reported", crate::common::PROMPT, || {
        orphans = c
            .logs()
            .lines()
            .filter_map(|l| l.trim().strip_prefix("orphan ")?.parse().ok())
            .collect();
        orphans.len() == n
    });
    c.wait_for("the orphans to exit", crate::common::PROMPT, || {
        c.top()
            .iter()
            .all(|p| !orphans.contains(&p.pid) || p.stat.starts_with('Z'))
    });
    let zombies = || -> usize {
        let out = c.exec(&["/cinit-demo", "zombie-check"]);
        out.lines()
            .find_map(|l| l.trim().strip_prefix("zombies "))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("zombie-check said {out:?}"))
    };
    let end = Instant::now() + Duration::from_secs(10);
    let mut z = zombies();
    while z != settled && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
        z = zombies();
    }
    (orphans, z)
}

#[test]
fn orphans_are_reaped() {
    require_docker!();
    let img = Image::build("");
    let c = Container::start(&img, &[], &["/cinit-demo", "orphans", "50", "--stay"]);
    let (orphans, zombies) = orphans_then_zombies(&c, 50, 0);
    assert_eq!(zombies, 0, "zombies left in the container");
    let left: Vec<i32> = c
        .top()
        .into_iter()
        .map(|p| p.pid)
        .filter(|p| orphans.contains(p))
        .collect();
    assert!(
        left.is_empty(),
        "orphans still in the process table: {left:?}"
    );
    assert!(c.running(), "the command itself keeps running");
}

#[test]
fn docker_run_t_makes_the_child_the_terminals_foreground() {
    require_docker!();
    let img = Image::build("");
    let (_c, out) = Container::run_to_end(&img, &["-t"], &["/cinit-demo", "status"]);
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert_eq!(out.status.code(), Some(0), "{text}");
    let field = |k: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k} ")))
            .unwrap_or_else(|| panic!("no {k} in {text}"))
            .to_string()
    };
    assert!(
        field("fd 0").starts_with("/dev/pts/"),
        "stdin is the container's terminal: {text}"
    );
    assert_eq!(
        field("tpgid"),
        field("pgid"),
        "the child is the terminal's foreground process group (Ctrl-C reaches it): {text}"
    );
    assert_ne!(field("pgid"), "1", "the child has its own group: {text}");
}

#[test]
fn healthcheck_with_probe_works_in_a_scratch_image() {
    require_docker!();
    let img = Image::build(
        "HEALTHCHECK --interval=1s --timeout=3s --retries=2 \
         CMD [\"/init\",\"--probe\",\"http://127.0.0.1:8000/healthz\"]",
    );
    let serving = Container::start(&img, &["-e", LISTEN_ENV], &serve_args("1"));
    let silent = Container::start(&img, &[], &["/cinit-demo", "sleep"]);
    let health = |c: &Container| c.inspect("{{if .State.Health}}{{.State.Health.Status}}{{end}}");
    serving.wait_for(
        "the serving container to be healthy",
        Duration::from_secs(30),
        || health(&serving) == "healthy",
    );
    silent.wait_for(
        "the silent container to be unhealthy",
        Duration::from_secs(30),
        || health(&silent) == "unhealthy",
    );
    let last: Value =
        serde_json::from_str(&silent.inspect("{{json (index .State.Health.Log 0)}}")).unwrap();
    assert_eq!(
        last["ExitCode"], 1,
        "--probe exits 1 when nothing answers: {last}"
    );
}

/// A FROM scratch image has no `ps` and no `/run`: `docker exec CID
/// /init --status` asks the init through the socket it made in `/run`, and
/// a HEALTHCHECK of `/init --probe ready` never touches the app.
#[test]
fn status_and_probe_ready_work_in_a_scratch_image() {
    require_docker!();
    let img = Image::build(
        "HEALTHCHECK --interval=1s --timeout=3s --retries=2 \
         CMD [\"/init\",\"--probe\",\"ready\"]",
    );
    let c = Container::start(&img, &["-e", LISTEN_ENV], &serve_args("2"));
    let health = || c.inspect("{{if .State.Health}}{{.State.Health.Status}}{{end}}");
    c.wait_for(
        "the container to be healthy",
        Duration::from_secs(30),
        || health() == "healthy",
    );
    let text = c.exec(&["/init", "--status"]);
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("cinit (pid 1)  running") && first.ends_with("ready (2/2)"),
        "{text}"
    );
    let s: Value = serde_json::from_str(&c.exec(&["/init", "--status", "--json"])).unwrap();
    assert_eq!(s["pid"], 1);
    let slots = s["programs"][0]["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 2);
    let inside: BTreeSet<i32> = c.pids_of("/cinit-demo");
    for sl in slots {
        let pid = sl["worker"]["pid"].as_i64().unwrap() as i32;
        assert!(inside.contains(&pid), "{pid} not among {inside:?}");
        assert!(sl["worker"]["memory_bytes"].as_u64().unwrap() > 0);
    }
    assert_eq!(s["listeners"][0]["address"], "0.0.0.0:8000");
    assert_eq!(
        c.exec(&["/init", "--scale", "+1"]).trim(),
        "scaling from 2 to 3 worker(s)"
    );
    c.wait_for("three ready workers", Duration::from_secs(30), || {
        let out = docker(&["exec", &c.name, "/init", "--probe", "ready"]);
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).trim() == "ready: 3/3 worker(s) ready"
    });
    assert_eq!(c.exec(&["/init", "--stop"]).trim(), "stopping");
    assert_eq!(c.exit_code(Duration::from_secs(30)), 0);
    assert!(
        c.logs().contains("control socket: stop asked by pid"),
        "{}",
        c.logs()
    );
}

// --------------------------------------------------- least privilege

impl Container {
    /// (uid, command line) of every process of the container.
    fn uids(&self) -> Vec<(u32, String)> {
        // docker top needs the pid column.
        docker_ok(&["top", &self.name, "-eo", "pid,uid,args"])
            .lines()
            .skip(1)
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let _pid = w.next()?;
                let uid = w.next()?.parse().ok()?;
                Some((uid, w.collect::<Vec<_>>().join(" ")))
            })
            .collect()
    }
}

/// The whole container unprivileged, as Kubernetes' `restricted` level
/// runs it: uid 1000, no capability, read-only root file system, no new
/// privileges. The FROM scratch image has no /etc/passwd: numbers only.
/// `--user 1000:1000` is the init's own uid, so nothing is switched.
#[test]
fn a_fully_unprivileged_container_serves_and_stops_cleanly() {
    require_docker!();
    let img = Image::build("");
    let c = Container::start(
        &img,
        &[
            "--user",
            "1000:1000",
            "--cap-drop",
            "ALL",
            "--read-only",
            "--security-opt",
            "no-new-privileges",
            "-p",
            PUBLISH,
            "-e",
            LISTEN_ENV,
        ],
        &[
            "--workers",
            "2",
            "--user",
            "1000:1000",
            "--no-new-privs",
            "/cinit-demo",
            "serve",
        ],
    );
    c.wait_http(c.host_port());
    c.wait_log("ready: 2 worker(s) serving", crate::common::PROMPT);
    let procs = c.uids();
    assert_eq!(procs.len(), 3, "{procs:?}");
    assert!(procs.iter().all(|(uid, _)| *uid == 1000), "{procs:?}");
    let logs = c.logs();
    assert!(!logs.contains("/proc does not show"), "{logs}");
    assert!(logs.contains("ready (pid"), "{logs}");
    docker_ok(&["stop", "-t", "10", &c.name]);
    assert_eq!(c.exit_code(crate::common::PROMPT), 0, "{}", c.logs());
}

/// A root init (Docker's default capabilities, which do not include
/// CAP_SYS_PTRACE) with the workers as uid 1000: only the init is root,
/// and it still sees the workers listen.
#[test]
fn only_the_init_is_root_with_user() {
    require_docker!();
    let img = Image::build("");
    let c = Container::start(
        &img,
        &["-p", PUBLISH, "-e", LISTEN_ENV],
        &[
            "--workers",
            "2",
            "--user",
            "1000:1000",
            "--no-new-privs",
            "/cinit-demo",
            "serve",
        ],
    );
    c.wait_http(c.host_port());
    c.wait_log("ready: 2 worker(s) serving", crate::common::PROMPT);
    let procs = c.uids();
    let root: Vec<_> = procs.iter().filter(|(uid, _)| *uid == 0).collect();
    assert_eq!(root.len(), 1, "{procs:?}");
    assert!(root[0].1.starts_with("/init"), "{procs:?}");
    assert_eq!(
        procs.iter().filter(|(uid, _)| *uid == 1000).count(),
        2,
        "{procs:?}"
    );
    let logs = c.logs();
    assert!(!logs.contains("/proc does not show"), "{logs}");
    docker_ok(&["stop", "-t", "10", &c.name]);
    assert_eq!(c.exit_code(crate::common::PROMPT), 0, "{}", c.logs());

    // Root without CAP_SETUID/CAP_SETGID cannot switch: it says so.
    let (_c, out) = Container::run_to_end(
        &img,
        &["--cap-drop", "ALL"],
        &["--user", "1000:1000", "/cinit-demo", "exit", "0"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("(setgroups): EPERM") && err.contains("lacks CAP_SETGID"),
        "{err}"
    );
}

// ------------------------------------------------------------ linux/arm64

/// A `FROM scratch` linux/arm64 image of the aarch64 init and demo, run by
/// this x86_64 engine through binfmt_misc (qemu-user, registered with the
/// F flag so that it works inside the container; `qemu.rs`): the plan sees
/// the container's limits, the planned workers answer on the shared port,
/// and `docker stop` ends in exit 0, cinit's own clean shutdown.
#[test]
fn arm64_image_runs_under_emulation() {
    require_docker!();
    let a64 = crate::qemu::Aarch64::new();
    match a64.binfmt() {
        Some(b) if b.fix_binary => {}
        other => {
            eprintln!(
                "\n\
                 ########################################################\n\
                 ## SKIPPED: the linux/arm64 Docker test needs qemu-   ##\n\
                 ## aarch64 registered with binfmt_misc and the F flag ##\n\
                 ## (found: {:<42}) ##\n\
                 ########################################################\n",
                other.map_or("none".into(), |b| format!("{} without F", b.name))
            );
            return;
        }
    }
    let arm64 = ["--platform", "linux/arm64"];
    let img = Image::build_from(&a64.bins, Some("linux/arm64"), &[], "");
    assert_eq!(
        docker_ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Os}}/{{.Architecture}}",
            &img.tag
        ])
        .trim(),
        "linux/arm64"
    );

    let limits = ["--cpus", "1.5", "--memory", "512m"];
    let mut args = vec!["--dry-run", "--json", "--workers", "auto", "--"];
    args.extend(["/cinit-demo", "serve"]);
    let (_c, out) = Container::run_to_end(&img, &[&arm64[..], &limits].concat(), &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).expect("the plan is JSON");
    assert_eq!(
        plan["resources"]["cpus"]["value"], 1.5,
        "{}",
        plan["resources"]
    );
    assert_eq!(plan["resources"]["memory"]["value"], 512u64 << 20);
    assert_eq!(plan["workers"]["count"], 2, "{}", plan["workers"]);
    assert_eq!(plan["reaper"], "pid1", "the entrypoint is PID 1");

    let c = Container::start(
        &img,
        &[&arm64[..], &limits, &["-p", PUBLISH, "-e", LISTEN_ENV]].concat(),
        &serve_args("auto"),
    );
    // PID 1 is the aarch64 init, run by the emulator the kernel chose.
    let pid = c.inspect("{{.State.Pid}}");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(
        exe.to_string_lossy().contains("qemu-aarch64"),
        "PID 1 runs under {}",
        exe.display()
    );
    let port = c.host_port();
    let mut slots = BTreeSet::new();
    c.wait_for(
        "both worker slots to answer",
        crate::common::PROMPT * 3,
        || {
            if let Some(w) = whoami(port) {
                assert_eq!(w["workers"], 2, "{w}");
                slots.insert(w["worker"].as_u64().unwrap());
            }
            slots.len() == 2
        },
    );
    let serving = c
        .top()
        .into_iter()
        .filter(|p| p.pid != 1 && p.args.contains("/cinit-demo serve"))
        .count();
    assert_eq!(serving, 2, "the planned worker count: {:?}", c.top());

    docker_within(&["stop", "-t", "30", &c.name], Duration::from_secs(60));
    let logs = c.logs();
    assert_eq!(c.exit_code(crate::common::PROMPT), 0, "{logs}");
    assert!(logs.contains("exiting with code 0"), "{logs}");
}

// ------------------------------------------------------- cinit vs tini

/// Which init a comparison scenario runs under.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Init {
    /// The image's ENTRYPOINT /init, plain mode.
    Cinit,
    /// `docker run --init`: Docker's bundled tini is PID 1, the demo PID 2.
    Tini,
    /// The demo itself as PID 1.
    None,
}

impl Init {
    /// docker-run arguments that put `demo_args` under this init.
    fn start(self, img: &Image, docker_args: &[&str], demo_args: &[&str]) -> Container {
        let mut d: Vec<&str> = docker_args.to_vec();
        let mut a: Vec<&str> = Vec::new();
        match self {
            Init::Cinit => a.push("/cinit-demo"),
            Init::Tini => d.extend(["--init", "--entrypoint", "/cinit-demo"]),
            Init::None => d.extend(["--entrypoint", "/cinit-demo"]),
        }
        a.extend_from_slice(demo_args);
        Container::start(img, &d, &a)
    }
}

struct Row {
    what: &'static str,
    cinit: String,
    tini: String,
}

/// Zombies after 20 orphans have exited.
fn zombies_row(img: &Image) -> (usize, usize, usize) {
    let run = |init: Init, settled: usize| {
        let c = init.start(img, &[], &["orphans", "20", "--stay"]);
        orphans_then_zombies(&c, 20, settled).1
    };
    (run(Init::Cinit, 0), run(Init::Tini, 0), run(Init::None, 20))
}

/// A process started with `docker exec` (not a child of PID 1) is still
/// running at `docker stop`: what does it get?
fn leftover_row(img: &Image, init: Init) -> String {
    let c = init.start(img, &[], &["sleep"]);
    c.wait_log("ready", crate::common::PROMPT);
    let exec = exec_in_background(&c, &["/cinit-demo", "signals"]);
    docker_ok(&["stop", "-t", "10", &c.name]);
    let (code, printed) = finish_exec(exec);
    let got: Vec<&str> = printed
        .lines()
        .filter(|l| !l.starts_with("ready"))
        .collect();
    match (got.as_slice(), code) {
        (["15"], Some(0)) => "SIGTERM (it exits cleanly)".into(),
        (["15"], Some(137)) => "SIGTERM, then SIGKILL before it could exit".into(),
        ([], Some(137)) => "SIGKILL (no chance to clean up)".into(),
        (g, code) => format!("{g:?}, exec exit {code:?}"),
    }
}

/// The child ignores TERM; `docker stop -t 5`: (seconds, exit code).
fn ignore_term_row(img: &Image, init: Init) -> (f64, i32) {
    let c = init.start(img, &["-e", "CINIT_GRACEFUL_TIMEOUT=2s"], &["ignore-term"]);
    c.wait_log("ready", crate::common::PROMPT);
    let t = Instant::now();
    docker_ok(&["stop", "-t", "5", &c.name]);
    let took = t.elapsed().as_secs_f64();
    (took, c.exit_code(crate::common::PROMPT))
}

/// `docker run -it`, Ctrl-Z, then Ctrl-C, typed on a real pty: (the child
/// was seen stopped, the container's exit code or None if it hung).
fn ctrl_z_row(img: &Image, init: Init) -> (bool, Option<i64>) {
    let name = unique("cinit-test");
    let _guard = Container { name: name.clone() };
    let mut argv = vec!["docker", "run", "--rm", "-it", "--name", &name];
    match init {
        Init::Cinit => argv.extend([img.tag.as_str(), "/cinit-demo"]),
        _ => argv.extend(["--init", "--entrypoint", "/cinit-demo", img.tag.as_str()]),
    }
    argv.extend(["sleep", "60"]);
    let top = serde_json::json!(["docker", "top", name, "-eo", "pid,stat,args"]);
    let script = serde_json::json!([
        ["expect", "ready", 20],
        ["send", "\u{1a}"],
        ["expect", "^Z", 5],
        // tini leaves the child stopped (state T); cinit resumes it at once.
        ["poll", top, r"^\s*\d+\s+T\S*\s+/cinit-demo sleep", 2],
        ["send", "\u{3}"],
        ["exit", 5]
    ]);
    let helper = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/docker/pty_run.py");
    let out = Command::new("python3")
        .arg(helper)
        .arg(script.to_string())
        .arg("--")
        .args(&argv)
        .stdin(Stdio::null())
        .output()
        .expect("python3 drives the pty (apt-get install python3)");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "pty_run.py: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let steps = r["steps"].as_array().unwrap();
    assert!(
        steps.len() >= 3 && steps[..3].iter().all(|s| s == true),
        "the pty session did not start as expected: {r}"
    );
    (steps[3] == true, r["exit"].as_i64())
}

/// Context switches of PID 1 over 3 idle seconds.
fn wakeups(img: &Image, init: Init) -> u64 {
    let c = init.start(img, &[], &["sleep"]);
    c.wait_log("ready", crate::common::PROMPT);
    let pid = c.inspect("{{.State.Pid}}");
    let switches = || -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum()
    };
    let before = switches();
    // A measurement window, not a wait for something to happen.
    std::thread::sleep(Duration::from_secs(3));
    switches() - before
}

#[test]
fn comparison_with_docker_init() {
    require_docker!();
    let img = Image::build("");
    let mut rows = Vec::new();

    let (zc, zt, zn) = zombies_row(&img);
    rows.push(Row {
        what: "zombies after 20 orphans exit (no init at all: 20)",
        cinit: zc.to_string(),
        tini: zt.to_string(),
    });
    assert_eq!(zc, 0);
    assert_eq!(zn, 20, "without an init the orphans stay zombies");

    let (lc, lt) = (
        leftover_row(&img, Init::Cinit),
        leftover_row(&img, Init::Tini),
    );
    assert!(lc.starts_with("SIGTERM"), "cinit: {lc}");
    rows.push(Row {
        what: "`docker exec`'d process still running at `docker stop` gets",
        cinit: lc,
        tini: lt,
    });

    let (ic, it) = (
        ignore_term_row(&img, Init::Cinit),
        ignore_term_row(&img, Init::Tini),
    );
    assert!(ic.0 < 4.0 && ic.1 == 137, "cinit: {ic:?}");
    rows.push(Row {
        what: "child ignores SIGTERM, `docker stop -t 5`: stopped after, exit code",
        cinit: format!("{:.1}s (`--graceful-timeout 2s`), {}", ic.0, ic.1),
        tini: format!("{:.1}s (Docker's SIGKILL), {}", it.0, it.1),
    });

    let (cz, tz) = (ctrl_z_row(&img, Init::Cinit), ctrl_z_row(&img, Init::Tini));
    let show = |(stopped, exit): (bool, Option<i64>)| {
        format!(
            "{}; then Ctrl-C: {}",
            if stopped {
                "child stays stopped"
            } else {
                "child resumed"
            },
            match exit {
                Some(c) => format!("exits {c}"),
                None => "nothing happens, the container hangs".into(),
            }
        )
    };
    assert_eq!(cz, (false, Some(130)), "cinit: Ctrl-Z then Ctrl-C");
    rows.push(Row {
        what: "Ctrl-Z under `docker run -it`",
        cinit: show(cz),
        tini: show(tz),
    });

    let (wc, wt) = (wakeups(&img, Init::Cinit), wakeups(&img, Init::Tini));
    assert_eq!(wc, 0, "an idle cinit never wakes up");
    rows.push(Row {
        what: "context switches of idle PID 1 in 3 s",
        cinit: wc.to_string(),
        tini: wt.to_string(),
    });

    let mut table =
        String::from("| scenario | cinit | docker run --init (tini) |\n|---|---|---|\n");
    for r in &rows {
        table.push_str(&format!("| {} | {} | {} |\n", r.what, r.cinit, r.tini));
    }
    eprintln!("\ncinit vs docker run --init, measured on this machine:\n\n{table}");
}
