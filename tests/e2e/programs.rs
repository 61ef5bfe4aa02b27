//! Several programs in one container, as PID 1: the Procfile example
//! (FastAPI, a queue worker and a scheduler with the standard library),
//! the start order, restarts that stay within their program, the stop in
//! reverse order with each program's own timeout, a program that is not
//! critical giving up alone, a critical one ending the container, and
//! the prefixed output under load.

use std::process::Command;
use std::time::Duration;

use crate::common::*;

const SLOW: Duration = Duration::from_secs(90);

/// The init as PID 1 in `dir` with `args` and `env`.
fn start_in(dir: &str, args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut cmd = clean_command("unshare");
    cmd.args(["--pid", "--fork", "--kill-child", "--mount-proc", INIT])
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied());
    Running::start(cmd, true)
}

/// A directory with a Procfile and a cinit.toml.
fn setup(procfile: &str, toml: &str) -> TempDir {
    let dir = TempDir::new("programs");
    std::fs::write(dir.path("Procfile"), procfile).unwrap();
    std::fs::write(dir.path("cinit.toml"), toml).unwrap();
    dir
}

fn start(dir: &TempDir, extra: &[&str]) -> Running {
    let sock = dir.path("c.sock");
    let mut args = vec![
        "--procfile",
        "Procfile",
        "--config",
        "cinit.toml",
        "--control",
        &sock,
    ];
    args.extend_from_slice(extra);
    start_in(
        &dir.0.to_string_lossy(),
        &args,
        &[("PATH", &path_with_demo())],
    )
}

/// `init --procfile Procfile --config cinit.toml EXTRA... --dry-run` in
/// `dir`: the plan, nothing started.
fn dry_run(dir: &TempDir, extra: &[&str]) -> std::process::Output {
    Command::new(INIT)
        .args(["--procfile", "Procfile", "--config", "cinit.toml"])
        .args(extra)
        .arg("--dry-run")
        .current_dir(&dir.0)
        .output()
        .unwrap()
}

/// PATH with the directory of `cinit-demo` first.
fn path_with_demo() -> String {
    let demo_dir = std::path::Path::new(DEMO).parent().unwrap();
    format!(
        "{}:{}",
        demo_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Where each needle first appears in `lines`; panics naming a missing one.
fn positions(lines: &[String], needles: &[&str]) -> Vec<usize> {
    needles
        .iter()
        .map(|n| {
            lines
                .iter()
                .position(|l| l.contains(n))
                .unwrap_or_else(|| panic!("no line with {n:?} in {lines:#?}"))
        })
        .collect()
}

fn assert_in_order(lines: &[String], needles: &[&str]) {
    let p = positions(lines, needles);
    assert!(
        p.windows(2).all(|w| w[0] < w[1]),
        "{needles:?} not in this order (at {p:?}) in {lines:#?}"
    );
}

/// The pids of a program's workers, from `init --status --json`.
fn pids_of(dir: &TempDir, program: &str) -> Vec<i64> {
    pids_at(&dir.path("c.sock"), program)
}

/// The pids of `program`'s workers, from the init whose control socket
/// is `sock`.
fn pids_at(sock: &str, program: &str) -> Vec<i64> {
    let status = status_at(sock);
    status["programs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == program)
        .unwrap_or_else(|| panic!("no program {program} in {status}"))["slots"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["worker"]["pid"].as_i64())
        .collect()
}

/// The status of the init started in `dir` (its control socket is there).
fn status_json(dir: &TempDir) -> serde_json::Value {
    status_at(&dir.path("c.sock"))
}

fn status_at(sock: &str) -> serde_json::Value {
    let out = clean_command(INIT)
        .args(["--control", sock, "--status", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// One POST with an empty body; returns (status, body).
fn http_post(port: u16, path: &str) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "POST {path} HTTP/1.0\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).map_err(|e| e.to_string())?;
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not HTTP: {buf:?}"))?;
    Ok((
        status,
        buf.split_once("\r\n\r\n")
            .map(|x| x.1.to_string())
            .unwrap_or_default(),
    ))
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
fn the_procfile_example_runs_web_queue_worker_and_scheduler() {
    if !require_pid1() || !python_packages() {
        return;
    }
    let jobs = TempDir::new("jobs");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let dir = format!("{}/examples/procfile", env!("CARGO_MANIFEST_DIR"));
    let sock = jobs.path("c.sock");
    let mut r = start_in(
        &dir,
        &[
            "--control",
            &sock,
            "--procfile",
            "Procfile",
            "--config",
            "cinit.toml",
            "--listen",
            &listen,
            "--workers",
            "2",
        ],
        &[
            ("JOBS_DIR", &jobs.0.to_string_lossy()),
            ("CLOCK_INTERVAL", "0.5"),
        ],
    );
    r.stderr_line(SLOW, "cinit: ready:");
    // Each program started once those of its `after` were ready.
    assert_in_order(
        &r.stderr_seen,
        &[
            "starting program web",
            "web.0 ready",
            "web.1 ready",
            "starting program worker: web ready",
            "worker.0 ready",
            "starting program clock: worker ready",
        ],
    );
    // A job through the API, run by the worker program.
    let (code, body) = http_post(port, "/jobs?n=1000").unwrap();
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    let mut result = serde_json::Value::Null;
    wait_until("the worker to run the job", SLOW, || {
        let (_, b) = http_get(port, &format!("/jobs/{id}")).unwrap();
        let j: serde_json::Value = serde_json::from_str(&b).unwrap();
        result = j["result"].clone();
        j["state"] == "done"
    });
    assert_eq!(result, (0..1000u64).map(|i| i * i).sum::<u64>());
    // The queue worker killed: restarted alone, web's workers untouched,
    // and the next job is still run.
    let web = pids_at(&sock, "web");
    let queue = pids_at(&sock, "worker");
    kill(host_pid(r.init_pid, queue[0]) as i32, 9);
    wait_until("the queue worker to run again", SLOW, || {
        pids_at(&sock, "worker")
            .first()
            .is_some_and(|p| *p != queue[0])
    });
    assert_eq!(pids_at(&sock, "web"), web, "web's workers were not touched");
    let (code, body) = http_post(port, "/jobs?n=10").unwrap();
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id2 = v["id"].as_str().unwrap().to_string();
    wait_until("the new queue worker to run the job", SLOW, || {
        let (_, b) = http_get(port, &format!("/jobs/{id2}")).unwrap();
        serde_json::from_str::<serde_json::Value>(&b).unwrap()["state"] == "done"
    });
    // Their output, each line with its program's prefix.
    r.line_matching(SLOW, |l| {
        l.starts_with(&format!("worker.0 | job {id} (api) done"))
    });
    r.line_matching(SLOW, |l| l.starts_with("clock.0 | enqueued scheduled job"));
    r.line_matching(SLOW, |l| {
        l.starts_with("worker.0 | job ") && l.contains("(clock) done")
    });
    // The stop goes the other way: the scheduler, the worker, then web.
    r.signal(15);
    assert_eq!(r.code(SLOW), 0, "{:#?}", r.stderr_seen);
    assert_in_order(
        &r.stderr_seen,
        &[
            "stopping program clock",
            "clock.0 (pid",
            "stopping program worker",
            "worker.0 (pid",
            "stopping program web",
            "exiting with code 0",
        ],
    );
    r.line_matching(SLOW, |l| l == "worker.0 | SIGTERM: no job in hand, exiting");
}

#[test]
fn a_restart_stays_within_its_program() {
    if !require_pid1() {
        return;
    }
    let dir = setup(
        "web: cinit-demo serve\nqueue: cinit-demo sleep\n",
        "listen = [\"tcp://127.0.0.1:0\"]\nworkers = 2\n[programs.queue]\nafter = [\"web\"]\nworkers = 2\n",
    );
    let mut r = start(&dir, &[]);
    r.stderr_line(SLOW, "cinit: ready:");
    let web = pids_of(&dir, "web");
    let queue = pids_of(&dir, "queue");
    assert_eq!((web.len(), queue.len()), (2, 2));
    kill(host_pid(r.init_pid, queue[0]) as i32, 9);
    r.stderr_line(SLOW, "queue.0 started");
    wait_until("queue.0 to run again", SLOW, || {
        let now = pids_of(&dir, "queue");
        now.len() == 2 && now[0] != queue[0]
    });
    assert_eq!(pids_of(&dir, "web"), web, "web's workers were not touched");
    assert_eq!(pids_of(&dir, "queue")[1], queue[1]);
    let s = status_json(&dir);
    assert_eq!(s["mode"], "programs");
    let programs = s["programs"].as_array().unwrap();
    assert_eq!(programs[1]["restarts"]["crash"], 1, "{s}");
    assert_eq!(programs[0]["restarts"]["crash"], 0, "{s}");
    r.signal(15);
    assert_eq!(r.code(SLOW), 0);
}

#[test]
fn each_program_stops_after_those_started_after_it_within_its_own_timeout() {
    if !require_pid1() {
        return;
    }
    // stubborn ignores TERM: SIGKILL after its own 1 s, then the others.
    let dir = setup(
        "web: cinit-demo serve\nstubborn: cinit-demo ignore-term\nlast: cinit-demo sleep\n",
        "listen = [\"tcp://127.0.0.1:0\"]\n[programs.stubborn]\nafter = [\"web\"]\ngraceful_timeout = \"1s\"\n[programs.last]\nafter = [\"stubborn\"]\n",
    );
    let mut r = start(&dir, &[]);
    r.stderr_line(SLOW, "cinit: ready:");
    r.signal(15);
    assert_eq!(r.code(SLOW), 0, "{:#?}", r.stderr_seen);
    assert_in_order(
        &r.stderr_seen,
        &[
            "stopping program last",
            "last.0 (pid",
            "stopping program stubborn: SIGTERM to 1 worker(s), SIGKILL after 1s",
            "program stubborn did not stop within 1s: SIGKILL",
            "stubborn.0 (pid",
            "stopping program web",
        ],
    );
    assert!(
        !r.stderr_seen
            .iter()
            .any(|l| l.contains("web.0 (pid") && l.contains("SIGKILL")),
        "web stopped on its own: {:#?}",
        r.stderr_seen
    );
}

#[test]
fn a_program_that_is_not_critical_gives_up_alone_and_web_keeps_serving() {
    if !require_pid1() {
        return;
    }
    let dir = setup(
        "web: cinit-demo serve\nflaky: cinit-demo exit 3\n",
        "listen = [\"tcp://127.0.0.1:0\"]\n[programs.flaky]\ncritical = false\ncrash_loop = 3\n",
    );
    let mut r = start(&dir, &[]);
    let port = listening_port(&mut r);
    r.stderr_line(
        SLOW,
        "program flaky is not critical: it stays stopped, the others go on",
    );
    let (code, _) = http_get(port, "/").unwrap();
    assert_eq!(code, 200);
    let s = status_json(&dir);
    assert_eq!(s["programs"][1]["state"], "gave_up", "{s}");
    assert_eq!(s["phase"], "running");
    assert_eq!(s["ready"], true, "the programs left are ready: {s}");
    r.signal(15);
    assert_eq!(r.code(SLOW), 0);
}

#[test]
fn a_critical_program_in_a_crash_loop_ends_the_container_with_1() {
    if !require_pid1() {
        return;
    }
    let dir = setup(
        "web: cinit-demo serve\nbroken: cinit-demo exit 3\n",
        "listen = [\"tcp://127.0.0.1:0\"]\n[programs.broken]\ncrash_loop = 3\n",
    );
    let mut r = start(&dir, &[]);
    assert_eq!(r.code(SLOW), 1);
    let line = r
        .stderr_seen
        .iter()
        .find(|l| l.contains("crash loop"))
        .unwrap_or_else(|| panic!("{:#?}", r.stderr_seen))
        .clone();
    assert!(line.contains("broken.0 failed 3 times"), "{line}");
    assert!(line.contains("stopping everything"), "{line}");
}

#[test]
fn a_one_shot_program_runs_to_the_end_before_the_next_starts() {
    if !require_pid1() {
        return;
    }
    // release: a migration (shell syntax: run by /bin/sh), exit 0, once.
    let dir = setup(
        "release: echo migrating && sleep 0.3 && echo migrated\nweb: cinit-demo serve\n",
        "listen = [\"tcp://127.0.0.1:0\"]\n[programs.release]\nrestart = \"never\"\n[programs.web]\nafter = [\"release\"]\n",
    );
    let mut r = start(&dir, &[]);
    let port = listening_port(&mut r);
    r.stderr_line(SLOW, "starting program web: release ready");
    assert_in_order(
        &r.stderr_seen,
        &["release.0 exited with code 0", "starting program web"],
    );
    r.line_matching(SLOW, |l| l == "release.0 | migrated");
    wait_until("web to serve", SLOW, || http_get(port, "/").is_ok());
    r.signal(15);
    assert_eq!(r.code(SLOW), 0);
}

#[test]
fn a_line_written_alone_comes_out_at_once() {
    if !require_pid1() {
        return;
    }
    // Nothing else happens in the container while `late` is written: the
    // init must be woken by the pipe itself.
    let dir = setup(
        "talker: sh -c 'echo early; sleep 1; echo late; exec sleep 1000'\n",
        "",
    );
    let mut r = start(&dir, &[]);
    r.line_matching(SLOW, |l| l == "talker.0 | early");
    r.line_matching(Duration::from_secs(10), |l| l == "talker.0 | late");
    r.signal(15);
    assert_eq!(r.code(SLOW), 0);
}

#[test]
fn prefixed_lines_stay_whole_and_complete_under_load() {
    if !require_pid1() {
        return;
    }
    // Two programs, two workers each, writing 3 KiB lines in pieces
    // (dd writes 1000 bytes at a time), stdout and stderr; and one line
    // longer than the 16 KiB a line is kept whole to.
    let writer = |tag: &str| {
        format!(
            "sh -c 'i=0; while [ $i -lt 300 ]; do \
             printf \"{tag}-$CINIT_WORKER_ID-%05d-\" $i; \
             head -c 3000 /dev/zero | tr \"\\\\0\" {tag} | dd bs=1000 status=none; \
             echo; i=$((i+1)); done; \
             echo {tag}-err >&2; \
             head -c 20000 /dev/zero | tr \"\\\\0\" L; echo; exec sleep 1000'"
        )
    };
    let dir = setup(
        &format!("a: {}\nb: {}\n", writer("a"), writer("b")),
        "workers = 2\n[programs.b]\nworkers = 2\n",
    );
    let mut r = start(&dir, &[]);
    let mut seen = std::collections::BTreeMap::new();
    let mut long = 0;
    let deadline = std::time::Instant::now() + SLOW;
    while !(seen.len() == 4 && seen.values().all(|v| *v == 300) && long == 8) {
        let l = r.line(deadline.saturating_duration_since(std::time::Instant::now()));
        let (prefix, rest) = l.split_at(l.find(' ').expect("a prefix"));
        if rest.starts_with(" + ") || rest.len() > 16 * 1024 {
            long += 1;
            continue;
        }
        let body = rest
            .strip_prefix(" | ")
            .unwrap_or_else(|| panic!("{l:.80}"));
        if body.starts_with('L') {
            long += 1;
            continue;
        }
        let tag = &prefix[..1];
        let slot = &prefix[2..];
        let mut parts = body.splitn(4, '-');
        let (t, s, n, fill) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        assert_eq!((t, s), (tag, slot), "a line of another worker: {l:.80}");
        assert_eq!(fill.len(), 3000, "a cut line: {l:.80}");
        assert!(
            fill.bytes().all(|b| b == tag.as_bytes()[0]),
            "mixed: {l:.80}"
        );
        let expected = seen.entry(prefix.to_string()).or_insert(0u32);
        assert_eq!(n.parse::<u32>().unwrap(), *expected, "out of order or lost");
        *expected += 1;
    }
    // The 20,000-byte line: cut at 16 KiB, its rest on a continued line.
    assert_eq!(long, 8);
    wait_until("each worker's stderr line", SLOW, || {
        r.drain_stderr();
        ["a.0", "a.1", "b.0", "b.1"].iter().all(|tag| {
            let want = format!("{tag} | {}-err", &tag[..1]);
            r.stderr_seen.contains(&want)
        })
    });
    r.signal(15);
    assert_eq!(r.code(SLOW), 0);
}

#[test]
fn the_plan_shows_the_programs_their_order_and_the_budget() {
    let dir = setup(
        "web: cinit-demo serve\nworker: cinit-demo sleep\nclock: cinit-demo sleep\n",
        "listen = [\"tcp://127.0.0.1:8000\"]\ngraceful_timeout = \"10s\"\n\
         [programs.worker]\nafter = [\"web\"]\ngraceful_timeout = \"20s\"\n\
         [programs.clock]\nafter = [\"web\"]\ngraceful_timeout = \"3s\"\n",
    );
    let out = dry_run(&dir, &["--json"]);
    assert!(out.status.success(), "{out:?}");
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["mode"], "programs");
    let programs = plan["programs"].as_array().unwrap();
    let stage = |name: &str| {
        programs.iter().find(|p| p["name"] == name).unwrap()["stop_stage"]
            .as_u64()
            .unwrap()
    };
    assert_eq!((stage("worker"), stage("clock"), stage("web")), (0, 0, 1));
    // worker and clock stop together (20 s at most), then web (10 s).
    assert_eq!(plan["shutdown"]["budget_s"], 30.0);
    // Past docker stop's 10 s: the plan says what to raise.
    let warned = plan["warnings"].as_array().unwrap().iter().any(|w| {
        w.as_str()
            .is_some_and(|w| w.contains("up to 30s") && w.contains("docker stop -t 31"))
    });
    assert!(warned, "{}", plan["warnings"]);
    assert_eq!(programs[0]["listen"][0]["fd"], 3);
    assert_eq!(programs[1]["listen"].as_array().unwrap().len(), 0);
    let text = dry_run(&dir, &[]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("stop order  worker, clock, then web"),
        "{text}"
    );
}

#[test]
fn bad_programs_are_refused_with_a_clear_message() {
    let cases = [
        ("web: a\nweb: b\n", "", "named twice"),
        (
            "web: a\n",
            "[programs.web]\nafter = [\"db\"]\n",
            "names no program",
        ),
        (
            "a: x\nb: y\n",
            "[programs.a]\nafter = [\"b\"]\n[programs.b]\nafter = [\"a\"]\n",
            "make a cycle: a -> b -> a",
        ),
        (
            "web: a\n",
            "[programs.web]\ncolour = 1\n",
            "not a setting of a program",
        ),
        ("garbage\n", "", "Procfile:1:"),
    ];
    for (procfile, toml, message) in cases {
        let dir = setup(procfile, toml);
        let out = dry_run(&dir, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{procfile:?} {toml:?}: {err}");
        assert!(err.contains(message), "{procfile:?} {toml:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // Not a file, or not text: named as the Procfile, not the config.
    let dir = TempDir::new("programs");
    std::fs::write(dir.path("binary"), [0xff, 0xfe, b'\n', 0]).unwrap();
    for (path, message) in [
        ("/", "failed to read Procfile /: not a regular file"),
        ("binary", "failed to read Procfile binary: "),
    ] {
        let out = Command::new(INIT)
            .args(["--procfile", path, "--dry-run"])
            .current_dir(&dir.0)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{path}: {err}");
        assert!(err.contains(message), "{path}: {err}");
    }
}

#[test]
fn the_auto_program_is_sized_with_what_the_others_declare_set_aside() {
    let plan = |toml: &str| -> serde_json::Value {
        let dir = setup("web: cinit-demo serve\nq: cinit-demo sleep\n", toml);
        let out = dry_run(&dir, &["--memory", "1GiB", "--cpus", "8", "--json"]);
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let base = "workers = \"auto\"\nworker_memory = \"100MiB\"\n[programs.q]\nworkers = 2\n";
    // 1 GiB / 100 MiB: 10 web workers when q declares nothing.
    let p = plan(base);
    assert_eq!(p["programs"][0]["workers"]["count"], 10, "{p}");
    // q's 2 x 200 MiB are set aside: (1 GiB - 400 MiB) / 100 MiB = 6.
    let p = plan(&format!("{base}memory = \"200MiB\"\n"));
    let web = &p["programs"][0]["workers"];
    assert_eq!(web["count"], 6, "{p}");
    assert_eq!(web["sizing"]["limited_by"], "memory");
    assert!(web["sizing"]["formula"]
        .as_str()
        .unwrap()
        .contains("the reserve includes 400 MiB the other programs declare"));
    assert_eq!(p["programs"][1]["workers"]["count"], 2);
    assert_eq!(p["programs"][1]["worker_memory"], 200 * 1024 * 1024);
    // The text form adds it up against the limit.
    let dir = setup(
        "web: cinit-demo serve\nq: cinit-demo sleep\n",
        &format!("{base}memory = \"200MiB\"\n"),
    );
    let text = dry_run(&dir, &["--memory", "1GiB", "--cpus", "8"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(
            "  memory      web 6 × 100 MiB + q 2 × 200 MiB = 1000 MiB of the 1 GiB limit"
        ),
        "{text}"
    );
    // More declared than the limit: said, and web still gets its minimum.
    let p = plan(&format!("{base}memory = \"600MiB\"\n"));
    assert_eq!(p["programs"][0]["workers"]["count"], 1, "{p}");
    assert!(
        p["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("more than the memory limit")),
        "{p}"
    );
}

#[test]
fn reload_and_scale_can_name_one_program() {
    if !require_pid1() {
        return;
    }
    let dir = setup(
        "web: cinit-demo serve\nqueue: cinit-demo sleep\n",
        "listen = [\"tcp://127.0.0.1:0\"]\nworkers = 2\n[programs.queue]\nafter = [\"web\"]\n",
    );
    let mut r = start(&dir, &[]);
    r.stderr_line(SLOW, "cinit: ready:");
    let ask = |args: &[&str]| {
        let out = clean_command(INIT)
            .args(["--control", &dir.path("c.sock")])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let web = pids_of(&dir, "web");
    let queue = pids_of(&dir, "queue");
    // A new release of the queue worker alone.
    let (code, out) = ask(&["--reload", "--program", "queue"]);
    assert_eq!(code, Some(0), "{out}");
    r.stderr_line(SLOW, "replacing the workers of program queue one by one");
    wait_until("queue.0 to be replaced", SLOW, || {
        pids_of(&dir, "queue")
            .first()
            .is_some_and(|p| *p != queue[0])
    });
    assert_eq!(pids_of(&dir, "web"), web, "web's workers were not touched");
    // One more queue worker; web keeps its two.
    let (code, out) = ask(&["--scale", "+1", "--program", "queue"]);
    assert_eq!(code, Some(0), "{out}");
    wait_until("a second queue worker", SLOW, || {
        pids_of(&dir, "queue").len() == 2
    });
    assert_eq!(pids_of(&dir, "web").len(), 2);
    // A name that is not a program, and --program without a command.
    let (code, out) = ask(&["--reload", "--program", "nope"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("no program named nope (there are web, queue)"),
        "{out}"
    );
    let (code, out) = ask(&["--status", "--program", "web"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("--program names the program"), "{out}");
    r.signal(15);
    assert_eq!(r.code(SLOW), 0);
}

#[test]
fn without_web_the_program_that_listens_is_the_one_scaled() {
    // No global --listen: `api` listens from its own table, so TTIN,
    // TTOU and --scale act on it, not on the first program.
    let dir = setup(
        "jobs: cinit-demo sleep\napi: cinit-demo serve\n",
        "[programs.api]\nlisten = [\"tcp://127.0.0.1:8000\"]\nworkers = 3\n",
    );
    let out = dry_run(&dir, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "workers     3  (key `programs.api.workers`) for program api, which TTIN/TTOU scale"
        ),
        "{text}"
    );
}

#[test]
fn a_closed_stdout_is_said_once_and_blocks_no_worker() {
    if !require_pid1() {
        return;
    }
    use std::io::{BufRead, Read};
    // `talker` writes without end; the reader of the init's stdout goes
    // away after its first bytes.
    let dir = setup("talker: sh -c 'while :; do echo talking; done'\n", "");
    let mut child = clean_command("unshare")
        .args(["--pid", "--fork", "--kill-child", "--mount-proc", INIT])
        .args(["--procfile", "Procfile", "--control", &dir.path("c.sock")])
        .current_dir(&dir.0)
        .env("PATH", path_with_demo())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Whatever happens below, nothing of it outlives the test.
    struct Reap(u32);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-9", &self.0.to_string()])
                .status();
        }
    }
    let _reap = Reap(child.id());
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    out.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"talker.0 | talki");
    drop(out);
    let (tx, rx) = std::sync::mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let said =
        "stdout is closed (nobody reads it): the children's stdout lines are dropped from now on";
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.ends_with(said)) {
        seen.push(rx.recv_timeout(SLOW).expect("the closed stdout is said"));
    }
    // The talker goes on (its lines dropped, not held): its CPU time grows.
    let cpu = || {
        status_json(&dir)["programs"][0]["slots"][0]["worker"]["cpu_s"]
            .as_f64()
            .unwrap()
    };
    let before = cpu();
    wait_until("the talker to keep running", SLOW, || cpu() > before + 0.1);
    // unshare itself does not pass TERM on: signal the init, its child.
    let p = child.id();
    let init: i32 = std::fs::read_to_string(format!("/proc/{p}/task/{p}/children"))
        .unwrap()
        .split_whitespace()
        .next()
        .and_then(|k| k.parse().ok())
        .expect("the init under unshare");
    kill(init, 15);
    let status = child.wait().unwrap();
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(5)) {
        seen.push(l);
    }
    assert_eq!(
        seen.iter()
            .filter(|l| l.contains("stdout is closed"))
            .count(),
        1,
        "{seen:#?}"
    );
    assert!(status.success(), "{status:?}: {seen:#?}");
}
