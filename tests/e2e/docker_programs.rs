//! Several programs in one Docker container: cinit as the `ENTRYPOINT
//! ["/init"]` of a `FROM scratch` image that holds `/init`, `/cinit-demo`,
//! a `/Procfile` and a `/cinit.toml`:
//!
//! * `web` (the demo server, the global `--listen` and `--workers 2`),
//! * `sleeper` (after web),
//! * `stubborn` (after sleeper; ignores SIGTERM, `graceful_timeout` 2s,
//!   not critical).
//!
//! A scratch image has no `/bin/sh`: the Procfile's commands are plain
//! words, which cinit execs directly. `--log-prefix` is left at `auto`,
//! which is on with several programs, also in Docker without `-t`.
//!
//! The helpers (images, containers, their removal on drop, the bounded
//! docker commands) are those of `docker.rs`; every wait polls a condition
//! against a deadline.

use std::time::{Duration, Instant};

use crate::common::PROMPT;
use crate::docker::{docker, docker_within, require_docker, whoami, Container, Image};

const PROCFILE: &str = "\
web: /cinit-demo serve
sleeper: /cinit-demo sleep
stubborn: /cinit-demo ignore-term
";

const CONFIG: &str = "\
[programs.sleeper]
after = [\"web\"]

[programs.stubborn]
after = [\"sleeper\"]
graceful_timeout = \"2s\"
critical = false
";

/// The init's arguments: the programs, and web's socket and workers.
const ARGS: &[&str] = &[
    "--procfile",
    "/Procfile",
    "--config",
    "/cinit.toml",
    "--listen",
    "0.0.0.0:8000",
    "--workers",
    "2",
];

fn image() -> Image {
    Image::build_with(&[("/Procfile", PROCFILE), ("/cinit.toml", CONFIG)], "")
}

fn start(img: &Image) -> Container {
    Container::start(img, &["-p", crate::docker::PUBLISH], ARGS)
}

/// `docker logs` as (stdout lines, stderr lines), each stream in its own
/// order (Docker keeps no order between the two).
fn streams(c: &Container) -> (Vec<String>, Vec<String>) {
    let out = docker(&["logs", &c.name]);
    let lines = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .lines()
            .map(str::to_string)
            .collect()
    };
    (lines(&out.stdout), lines(&out.stderr))
}

/// Polls the logs until every needle shows in its stream.
fn wait_lines(c: &Container, stdout: &[&str], stderr: &[&str]) -> (Vec<String>, Vec<String>) {
    let has = |lines: &[String], n: &str| lines.iter().any(|l| l.contains(n));
    let mut got = (Vec::new(), Vec::new());
    c.wait_for("the expected log lines", PROMPT, || {
        got = streams(c);
        stdout.iter().all(|n| has(&got.0, n)) && stderr.iter().all(|n| has(&got.1, n))
    });
    got
}

/// Where each needle first shows in `lines`, which must be in this order.
fn assert_in_order(lines: &[String], needles: &[&str]) -> Vec<usize> {
    let at: Vec<usize> = needles
        .iter()
        .map(|n| {
            lines
                .iter()
                .position(|l| l.contains(n))
                .unwrap_or_else(|| panic!("no line with {n:?} in {lines:#?}"))
        })
        .collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "{needles:?} not in this order (at {at:?}) in {lines:#?}"
    );
    at
}

/// The pid in `WHO started (pid N)` (the init's own line).
fn started_pid(stderr: &[String], who: &str) -> String {
    let needle = format!("{who} started (pid ");
    stderr
        .iter()
        .find_map(|l| {
            let rest = &l[l.find(&needle)? + needle.len()..];
            Some(rest[..rest.find(')')?].to_string())
        })
        .unwrap_or_else(|| panic!("no {needle:?} in {stderr:#?}"))
}

#[test]
fn programs_serve_and_start_in_order_with_prefixed_output() {
    require_docker!();
    let img = image();
    let c = start(&img);
    let port = c.host_port();
    c.wait_http(port);

    // Both web workers answer on the one published port.
    let mut slots = std::collections::BTreeSet::new();
    c.wait_for("both web workers to answer HTTP", PROMPT, || {
        if let Some(w) = whoami(port) {
            assert_eq!(w["workers"], 2, "{w}");
            slots.insert(w["worker"].as_u64().unwrap());
        }
        slots.len() == 2
    });

    // Each program's output, prefixed with NAME.SLOT (auto: on with a
    // Procfile, though Docker gives no terminal).
    let (stdout, stderr) = wait_lines(
        &c,
        &["sleeper.0 | ready ", "stubborn.0 | ready "],
        &[
            "web.0 | cinit-demo: worker 0 (pid",
            "web.1 | cinit-demo: worker 1 (pid",
            "starting program stubborn: sleeper ready",
        ],
    );
    // Only the children write on stdout, each line through the relay.
    for l in &stdout {
        assert!(
            ["web.0 | ", "web.1 | ", "sleeper.0 | ", "stubborn.0 | "]
                .iter()
                .any(|p| l.starts_with(p)),
            "an unprefixed line on stdout: {l:?}\n{stdout:#?}"
        );
    }
    // The prefix names the worker that wrote the line: the pid it prints
    // is the one the init started in that slot.
    for who in ["sleeper.0", "stubborn.0"] {
        let pid = started_pid(&stderr, who);
        let line = format!("{who} | ready {pid}");
        assert!(stdout.contains(&line), "no {line:?} in {stdout:#?}");
    }
    // Each program started once those of its `after` were ready.
    assert_in_order(
        &stderr,
        &[
            "starting program web",
            "web.0 ready (pid",
            "starting program sleeper: web ready",
            "sleeper.0 started (pid",
            "sleeper.0 ready (pid",
            "starting program stubborn: sleeper ready",
            "stubborn.0 started (pid",
        ],
    );
    assert_in_order(
        &stderr,
        &["web.1 ready (pid", "starting program sleeper: web ready"],
    );
    let none_before: Vec<&String> = stderr
        .iter()
        .take_while(|l| !l.contains("starting program sleeper"))
        .filter(|l| l.contains("sleeper.0") || l.contains("stubborn.0"))
        .collect();
    assert!(none_before.is_empty(), "{none_before:#?}");
    assert!(c.running(), "{}", c.logs());
}

#[test]
fn docker_stop_kills_the_stubborn_program_at_its_own_timeout() {
    require_docker!();
    let img = image();
    let c = start(&img);
    c.wait_http(c.host_port());
    // stubborn blocks SIGTERM before it prints `ready`.
    wait_lines(
        &c,
        &["stubborn.0 | ready ", "sleeper.0 | ready "],
        &["stubborn.0 ready (pid"],
    );

    let t = Instant::now();
    // Docker would SIGKILL the whole container after 30 s (exit 137);
    // cinit kills stubborn itself after its own 2 s.
    let out = docker_within(&["stop", "-t", "30", &c.name], Duration::from_secs(60));
    let took = t.elapsed();
    assert!(out.status.success(), "{out:?}");
    let code = c.exit_code(PROMPT);
    let (stdout, stderr) = streams(&c);
    let logs = format!("{stdout:#?}\n{stderr:#?}");
    // docs/deploying.md: worker mode exits 0 when cinit killed the late
    // ones itself (its log names them); 137 would be Docker's SIGKILL.
    assert_eq!(code, 0, "{logs}");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(10),
        "docker stop took {took:?}; expected stubborn's 2s graceful timeout, \
         far below Docker's 30s\n{logs}"
    );
    assert!(
        stdout.iter().any(|l| l == "stubborn.0 | ignored 15"),
        "stubborn got SIGTERM first: {logs}"
    );
    // The stop runs in reverse start order, each program with its own
    // timeout; the log names the program that needed SIGKILL.
    let stubborn_pid = started_pid(&stderr, "stubborn.0");
    assert_in_order(
        &stderr,
        &[
            "SIGTERM: stopping",
            "stopping program stubborn: SIGTERM to 1 worker(s), SIGKILL after 2s",
            "program stubborn did not stop within 2s: SIGKILL to 1 worker(s)",
            &format!("stubborn.0 (pid {stubborn_pid}) was killed by SIGKILL"),
            "stopping program sleeper",
            "sleeper.0 (pid",
            "stopping program web",
            "exiting with code 0",
        ],
    );
    // (`SIGKILL after 8s` announces a deadline, not a kill.)
    let killed: Vec<&String> = stderr
        .iter()
        .filter(|l| l.contains("SIGKILL") && !l.contains("SIGKILL after"))
        .collect();
    assert_eq!(killed.len(), 2, "{killed:#?}");
    assert!(
        killed
            .iter()
            .all(|l| l.contains("stubborn") && !l.contains("web") && !l.contains("sleeper")),
        "only stubborn needed SIGKILL: {killed:#?}"
    );

    // The kill came at stubborn's 2 s, by Docker's clock of the log.
    let stamped = docker(&["logs", "-t", &c.name]);
    let stamped = String::from_utf8_lossy(&stamped.stderr).into_owned();
    let at = |needle: &str| -> f64 {
        let l = stamped
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in {stamped}"));
        seconds_of_day(l.split_whitespace().next().unwrap())
    };
    // (rem_euclid: the two lines may straddle midnight.)
    let waited = (at("program stubborn did not stop within") - at("stopping program stubborn"))
        .rem_euclid(86_400.0);
    assert!(
        (1.9..4.0).contains(&waited),
        "SIGKILL {waited:.3}s after stubborn's SIGTERM, not about 2s\n{stamped}"
    );
    eprintln!(
        "docker stop -t 30 took {:.2}s; stubborn SIGKILLed {waited:.3}s after its SIGTERM; exit {code}",
        took.as_secs_f64()
    );
}

/// Seconds since midnight of an RFC 3339 timestamp of `docker logs -t`
/// (`2024-05-01T12:34:56.123456789Z`).
fn seconds_of_day(stamp: &str) -> f64 {
    let time = stamp
        .split_once('T')
        .and_then(|(_, t)| t.strip_suffix('Z'))
        .unwrap_or_else(|| panic!("not a docker log timestamp: {stamp:?}"));
    time.split(':')
        .map(|p| p.parse::<f64>().unwrap())
        .fold(0.0, |acc, v| acc * 60.0 + v)
}
