//! The memory guard in Docker (issue 11): `docker run --memory 256m` with
//! the FastAPI example leaking on every request (`APP_LEAK=1`, `GET
//! /leak?mib=1`) under a minute of load, twice side by side on the same
//! image, limit and load:
//!
//! * with `--max-worker-memory` the container survives, no request fails,
//!   the kernel killed nothing (the container cgroup's own OOM count, not
//!   only `docker inspect`, see below) and the guard did replace workers;
//! * without it the container reaches its limit, and every OOM kill the
//!   cgroup counted is reported by the init as one, with the limit.
//!
//! `docker inspect`'s `State.OOMKilled` is asserted false for the guarded
//! container, but it proves little: Docker 20.10 on cgroup v1 sets it only
//! when the container's main process dies of an OOM kill, and stays
//! `false` while workers are killed (the unguarded run shows it, printed
//! on stderr). The count that matters is `oom_kill` in the container's
//! `memory.oom_control` (v1) or `memory.events` (v2), read on the host.
//!
//! No image can be pulled here and no package is installed in one: the
//! image is the `FROM scratch` one of `docker.rs` (the static init), and
//! the host's Python with fastapi and uvicorn (which `.ci/test` installs)
//! is bind-mounted read-only at the same paths (`/usr`, `/lib`, `/lib64`,
//! the interpreter's prefix and the directories of its `sys.path`), the
//! app at `/app`. It starts in a second and needs no network.
//!
//! The leak is 4 MiB/s per container (4 requests/s of 1 MiB from two
//! paced clients), fast for a test but slow enough that a replacement
//! started at 70 MiB is ready long before the limit even on a loaded
//! machine: two workers of at most 70 MiB plus a new one of about 45 MiB
//! leave some 90 MiB, 20 s of leaking, for the new worker to start. The
//! unguarded container starts at about 90 MiB and reaches 256 MiB after
//! about 40 s.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::PROMPT;
use crate::docker::{docker_ok, require_docker, Container, Image, PORT};

/// How long the load runs.
const LOAD: Duration = Duration::from_secs(60);
/// Each of `CLIENTS` asks for 1 MiB every `PACE`: 4 MiB/s in all.
const CLIENTS: usize = 2;
const PACE: Duration = Duration::from_millis(500);
/// Python workers start in seconds; a loaded CI machine may take longer.
const SLOW: Duration = Duration::from_secs(120);

/// The host's Python, as the container sees it through bind mounts.
struct HostPython {
    /// `sys.executable` (a path that exists in the container too).
    exe: String,
    /// `-v DIR:DIR:ro` arguments.
    mounts: Vec<String>,
    /// The host's `sys.path` directories, for PYTHONPATH (a user site
    /// directory is found from HOME, which the container does not share).
    path: String,
}

impl HostPython {
    fn find() -> HostPython {
        const PROBE: &str = "import json, os, sys, fastapi, uvicorn\n\
            dirs = [sys.prefix, sys.base_prefix] + [p for p in sys.path if os.path.isabs(p) and os.path.isdir(p)]\n\
            print(json.dumps({'exe': sys.executable, 'dirs': dirs, 'path': [p for p in sys.path if os.path.isabs(p) and os.path.isdir(p)]}))";
        let out = Command::new("python3")
            .args(["-c", PROBE])
            .output()
            .expect("run python3");
        assert!(
            out.status.success(),
            "python3 with fastapi and uvicorn is needed (bash .ci/test installs them): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the probe's JSON");
        let strings = |k: &str| -> Vec<String> {
            v[k].as_array()
                .unwrap()
                .iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        };
        // /usr whole; the loader's paths (symlinks into /usr on a merged
        // /usr, mounted as what they point to); then each directory not
        // already inside one mounted.
        let mut dirs: Vec<String> = vec!["/usr".into()];
        for d in ["/lib", "/lib64"] {
            if std::path::Path::new(d).exists() {
                dirs.push(d.into());
            }
        }
        let mut wanted = strings("dirs");
        wanted.sort_by_key(|d| d.len());
        for d in wanted {
            let inside = dirs
                .iter()
                .any(|m| d == *m || d.starts_with(&format!("{}/", m.trim_end_matches('/'))));
            if !inside {
                dirs.push(d);
            }
        }
        HostPython {
            exe: v["exe"].as_str().unwrap().to_string(),
            mounts: dirs.iter().map(|d| format!("{d}:{d}:ro")).collect(),
            path: strings("path").join(":"),
        }
    }
}

/// Where the kernel counts the OOM kills of a container's cgroup, found
/// from its main process (v1: `memory.oom_control`; v2: `memory.events`).
fn oom_count_file(c: &Container) -> PathBuf {
    let pid = c.inspect("{{.State.Pid}}");
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| c.fail(&format!("read /proc/{pid}/cgroup: {e}")));
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        if controllers.split(',').any(|x| x == "memory") {
            return PathBuf::from(format!("/sys/fs/cgroup/memory{path}/memory.oom_control"));
        }
    }
    let v2 = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_else(|| c.fail(&format!("no memory cgroup in {text:?}")));
    PathBuf::from(format!("/sys/fs/cgroup{v2}/memory.events"))
}

fn oom_kills(file: &PathBuf) -> u64 {
    let text =
        std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no oom_kill line in {}: {text:?}", file.display()))
}

/// `CLIENTS` threads asking for `/leak?mib=1` at a fixed pace until
/// `stop`; each returns (answers, failures).
fn load(port: u16, stop: &Arc<AtomicBool>) -> Vec<JoinHandle<(u32, Vec<String>)>> {
    (0..CLIENTS)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0, Vec::new());
                // The clients take turns: one request every PACE / CLIENTS.
                let mut next = Instant::now() + PACE.mul_f64(i as f64 / CLIENTS as f64);
                while !stop.load(Ordering::Relaxed) {
                    // The load's pace, not a wait for anything.
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                    next = (next + PACE).max(Instant::now());
                    match crate::common::http_get(port, "/leak?mib=1") {
                        Ok((200, _)) => ok += 1,
                        Ok((s, b)) => failed.push(format!("{s} {b}")),
                        Err(e) => failed.push(e),
                    }
                }
                (ok, failed)
            })
        })
        .collect()
}

/// One container of the run: started, ready, its port and OOM counter.
struct Run {
    c: Container,
    port: u16,
    oom_file: PathBuf,
}

/// `docker run` arguments: 256 MiB and no swap (the limit is the limit,
/// whatever the host has), the host's Python, and `more`.
fn docker_args(py: &HostPython, more: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["--memory", "256m", "--memory-swap", "256m"]
        .map(String::from)
        .into();
    for m in &py.mounts {
        args.extend(["-v".into(), m.clone()]);
    }
    args.extend(["-e".into(), format!("PYTHONPATH={}", py.path)]);
    args.extend(more.iter().map(|s| s.to_string()));
    args
}

/// The FastAPI example with the leak on, 2 workers, `guard` for cinit.
fn start(img: &Image, py: &HostPython, guard: &[&str]) -> Container {
    let app = format!("{}/examples/fastapi:/app:ro", env!("CARGO_MANIFEST_DIR"));
    let listen = format!("CINIT_LISTEN=0.0.0.0:{PORT}");
    let publish = format!("127.0.0.1::{PORT}");
    let docker_args = docker_args(
        py,
        &[
            "-p",
            &publish,
            "-e",
            &listen,
            "-e",
            "APP_LEAK=1",
            "-w",
            "/app",
            "-v",
            &app,
        ],
    );
    let docker_args: Vec<&str> = docker_args.iter().map(String::as_str).collect();
    let mut args = vec!["--workers", "2"];
    args.extend_from_slice(guard);
    args.extend([
        "--",
        py.exe.as_str(),
        "-m",
        "uvicorn",
        "app.main:app",
        "--fd",
        "3",
        "--log-level",
        "warning",
    ]);
    Container::start(img, &docker_args, &args)
}

fn ready(c: Container) -> Run {
    c.wait_log("ready: 2 worker(s) serving", SLOW);
    let port = c.host_port();
    let oom_file = oom_count_file(&c);
    Run { c, port, oom_file }
}

#[test]
fn under_a_leak_the_guarded_container_survives_and_the_unguarded_ones_kills_are_reported() {
    require_docker!();
    let py = HostPython::find();
    let img = Image::build("");
    let guarded = start(
        &img,
        &py,
        &["--max-worker-memory", "70MiB", "--memory-interval", "1s"],
    );
    let unguarded = start(&img, &py, &[]);
    let guarded = ready(guarded);
    let unguarded = ready(unguarded);
    assert_eq!(oom_kills(&guarded.oom_file), 0);
    assert_eq!(oom_kills(&unguarded.oom_file), 0);

    let stop = Arc::new(AtomicBool::new(false));
    let clients = [load(guarded.port, &stop), load(unguarded.port, &stop)];
    let started = Instant::now();
    // Fail early when either init dies; otherwise the load runs its minute.
    while started.elapsed() < LOAD {
        for r in [&guarded, &unguarded] {
            if !r.c.running() {
                stop.store(true, Ordering::Relaxed);
                r.c.fail("the container stopped under the load");
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, Ordering::Relaxed);
    let [g, u] = clients.map(|threads| {
        threads.into_iter().map(|t| t.join().unwrap()).fold(
            (0, Vec::new()),
            |(ok, mut f), (o, more)| {
                f.extend(more);
                (ok + o, f)
            },
        )
    });

    // Without the guard: the limit was reached, and every kill the cgroup
    // counted is reported as an OOM kill of a worker, with the limit.
    if oom_kills(&unguarded.oom_file) == 0 {
        unguarded.c.fail(&format!(
            "4 MiB/s for {LOAD:?} never reached the 256 MiB limit ({} answers)",
            u.0
        ));
    }
    let reported = |logs: &str| logs.matches("killed by the kernel OOM killer").count() as u64;
    unguarded
        .c
        .wait_for("an OOM report for every OOM kill", PROMPT, || {
            reported(&unguarded.c.logs()) == oom_kills(&unguarded.oom_file)
        });
    let logs = unguarded.c.logs();
    for line in logs.lines().filter(|l| l.contains("OOM killer")) {
        assert!(
            line.starts_with("cinit: worker ")
                && line.contains("was killed by the kernel OOM killer (container limit 256 MiB"),
            "{line}\n{logs}"
        );
    }
    assert!(unguarded.c.running(), "the init itself survives: {logs}");
    eprintln!(
        "without the guard: {} OOM kill(s) reported, {} answers, {} failed requests, \
         docker inspect OOMKilled={}",
        oom_kills(&unguarded.oom_file),
        u.0,
        u.1.len(),
        unguarded.c.inspect("{{.State.OOMKilled}}")
    );

    // With the guard: nothing failed, nothing was killed, workers were
    // replaced for their memory.
    let logs = guarded.c.logs();
    assert!(guarded.c.running(), "{logs}");
    assert!(g.0 > 0);
    assert!(
        g.1.is_empty(),
        "{} of {} requests failed: {:?}\n{logs}",
        g.1.len(),
        g.0 as usize + g.1.len(),
        &g.1[..g.1.len().min(5)]
    );
    assert_eq!(oom_kills(&guarded.oom_file), 0, "{logs}");
    assert_eq!(guarded.c.inspect("{{.State.OOMKilled}}"), "false");
    assert!(!logs.contains("OOM killer"), "{logs}");
    let replaced = logs.matches(" replaced (memory): pid ").count();
    assert!(
        replaced >= 2,
        "the guard replaced {replaced} worker(s):\n{logs}"
    );
    assert!(
        logs.contains("(PSS), above --max-worker-memory 70 MiB; replacing it (memory)"),
        "{logs}"
    );
    eprintln!(
        "with the guard: {replaced} worker(s) replaced, {} answers, 0 failed, 0 OOM kills",
        g.0
    );
    docker_ok(&["stop", "-t", "10", &guarded.c.name]);
    assert_eq!(guarded.c.exit_code(PROMPT), 0, "{}", guarded.c.logs());
}

/// A worker that holds 60 MiB and waits.
const HOLD: &str =
    "import time\nkept = bytearray(60 << 20)\nprint('holding', flush=True)\ntime.sleep(3600)";

/// `--memory-high 10%` of `docker run --memory 256m`, with a fixed worker
/// count (which reads the limits for nothing else): a worker holding
/// 60 MiB puts the container past 25.6 MiB and is replaced.
#[test]
fn memory_high_is_a_share_of_the_containers_limit() {
    require_docker!();
    let py = HostPython::find();
    let img = Image::build("");
    let docker_args = docker_args(&py, &[]);
    let docker_args: Vec<&str> = docker_args.iter().map(String::as_str).collect();
    let c = Container::start(
        &img,
        &docker_args,
        &[
            "--workers",
            "1",
            "--memory-high",
            "10%",
            "--memory-interval",
            "500ms",
            "--",
            &py.exe,
            "-c",
            HOLD,
        ],
    );
    let logs = c.wait_log("passed --memory-high 25.60 MiB", SLOW);
    assert!(
        logs.contains("this worker is the largest") && logs.contains("replacing it (memory)"),
        "{logs}"
    );
    c.wait_log("worker 0 replaced (memory): pid ", SLOW);
}
