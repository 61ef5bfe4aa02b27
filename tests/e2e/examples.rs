//! The deployment examples are checked, not only written:
//!
//! * `Dockerfile.example` is parsed: multi-stage with the official base
//!   images as ARG defaults, the init built for amd64 and arm64, JSON exec
//!   forms, COPY sources that exist and pass the root .dockerignore,
//!   CINIT_* names that `init --help` knows, and a plan (`init --dry-run
//!   --json` with the image's environment) that agrees with its comments
//!   and its HEALTHCHECK. (`example_image.rs` builds and runs it for real.)
//! * `examples/kubernetes/*.yaml` validate offline against the Kubernetes
//!   schemas (`kubernetes-validate --strict`, the oldest and the newest
//!   version it bundles), and each pod's grace period covers cinit's
//!   shutdown budget computed by cinit itself from the pod's environment.
//! * `examples/compose-replicas/docker-compose.yml` passes
//!   `docker-compose config -q`, and its stop_grace_period covers the budget.
//!
//! A missing tool fails the test with the command that installs it (CI
//! installs them in `.ci/test`); nothing passes silently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{clean_command, INIT};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command, what: &str, install: &str) -> Output {
    cmd.output().unwrap_or_else(|e| {
        panic!("failed to run {what}: {e}; install it with: {install}");
    })
}

// ---------------------------------------------------------------- Dockerfile

/// One instruction, continuation lines joined and comment lines dropped
/// (as Docker does, comments inside a continuation included).
#[derive(Debug)]
struct Instr {
    line: usize,
    name: String,
    args: String,
}

fn parse_dockerfile(text: &str) -> Vec<Instr> {
    let mut out = Vec::new();
    let mut buf = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        let t = raw.trim();
        if t.starts_with('#') || (t.is_empty() && !buf.is_empty()) {
            continue;
        }
        if t.is_empty() {
            continue;
        }
        if buf.is_empty() {
            start = i + 1;
        }
        match t.strip_suffix('\\') {
            Some(part) => {
                buf.push_str(part);
                buf.push(' ');
            }
            None => {
                buf.push_str(t);
                let (name, args) = buf.split_once(char::is_whitespace).unwrap_or((&buf, ""));
                out.push(Instr {
                    line: start,
                    name: name.to_ascii_uppercase(),
                    args: args.trim().to_string(),
                });
                buf.clear();
            }
        }
    }
    assert!(buf.is_empty(), "Dockerfile ends inside a continuation");
    out
}

/// Words as a POSIX shell would split them (quotes, backslashes), which is
/// how Docker reads ENV and COPY arguments.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

fn exec_form(i: &Instr, json: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(json).unwrap_or_else(|e| {
        panic!(
            "Dockerfile.example:{}: {} must be in JSON exec form ({e}): {json}",
            i.line, i.name
        )
    })
}

struct Dockerfile {
    instrs: Vec<Instr>,
    /// The defaults of the ARGs declared before the first FROM.
    args: BTreeMap<String, String>,
    env: Vec<(String, String)>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    healthcheck: Vec<String>,
}

fn dockerfile() -> Dockerfile {
    let text = std::fs::read_to_string(repo().join("Dockerfile.example"))
        .expect("read Dockerfile.example");
    let instrs = parse_dockerfile(&text);
    let args = instrs
        .iter()
        .take_while(|i| i.name != "FROM")
        .filter(|i| i.name == "ARG")
        .filter_map(|i| {
            let (k, v) = i.args.split_once('=')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    const KNOWN: &[&str] = &[
        "FROM",
        "RUN",
        "CMD",
        "LABEL",
        "EXPOSE",
        "ENV",
        "ADD",
        "COPY",
        "ENTRYPOINT",
        "VOLUME",
        "USER",
        "WORKDIR",
        "ARG",
        "ONBUILD",
        "STOPSIGNAL",
        "HEALTHCHECK",
        "SHELL",
    ];
    for i in &instrs {
        assert!(
            KNOWN.contains(&i.name.as_str()),
            "Dockerfile.example:{}: unknown instruction {}",
            i.line,
            i.name
        );
    }
    let last_stage = instrs.iter().rposition(|i| i.name == "FROM").unwrap();
    let mut env = Vec::new();
    let (mut entrypoint, mut cmd, mut healthcheck) = (None, None, None);
    for i in &instrs[last_stage..] {
        match i.name.as_str() {
            "ENV" => {
                let w = words(&i.args);
                if w.iter().all(|w| w.contains('=')) {
                    for kv in w {
                        let (k, v) = kv.split_once('=').unwrap();
                        env.push((k.to_string(), v.to_string()));
                    }
                } else {
                    // The legacy `ENV KEY value` form.
                    let (k, v) = i.args.split_once(char::is_whitespace).unwrap();
                    env.push((k.to_string(), v.trim().to_string()));
                }
            }
            "ENTRYPOINT" => entrypoint = Some(exec_form(i, &i.args)),
            "CMD" => cmd = Some(exec_form(i, &i.args)),
            "HEALTHCHECK" => {
                let (_, json) = i.args.split_once("CMD ").unwrap_or_else(|| {
                    panic!("Dockerfile.example:{}: HEALTHCHECK without CMD", i.line)
                });
                healthcheck = Some(exec_form(i, json.trim()));
            }
            _ => {}
        }
    }
    Dockerfile {
        instrs,
        args,
        env,
        entrypoint: entrypoint.expect("the app stage has an ENTRYPOINT"),
        cmd: cmd.expect("the app stage has a CMD"),
        healthcheck: healthcheck.expect("the app stage has a HEALTHCHECK"),
    }
}

/// Every `[env: NAME]` of `init --help`.
fn help_env_names() -> Vec<String> {
    let out = Command::new(INIT).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let names: Vec<String> = text
        .split("[env: ")
        .skip(1)
        .filter_map(|s| s.split_once(']').map(|(n, _)| n.to_string()))
        .collect();
    assert!(
        names.len() > 10,
        "init --help shows too few env names: {names:?}"
    );
    names
}

/// `init --dry-run --json ARGS` with exactly `env` as its CINIT_* settings.
fn plan(env: &[(String, String)], args: &[&str]) -> Value {
    let mut c = clean_command(INIT);
    c.envs(env.iter().map(|(k, v)| (k, v)));
    let out = c.args(["--dry-run", "--json"]).args(args).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "init --dry-run {args:?} with {env:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the plan is JSON")
}

fn port_of(url_or_addr: &str) -> u16 {
    let rest = url_or_addr.rsplit_once("://").map_or(url_or_addr, |p| p.1);
    let hostport = rest.split('/').next().unwrap();
    hostport
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url_or_addr}"))
}

impl Dockerfile {
    /// `${NAME}` and `$NAME` of the global ARGs replaced by their defaults.
    fn resolve(&self, word: &str) -> String {
        let mut out = word.to_string();
        for (k, v) in &self.args {
            out = out
                .replace(&format!("${{{k}}}"), v)
                .replace(&format!("${k}"), v);
        }
        out
    }
}

/// The Rust targets the files that build releases name, in order.
const TARGETS: [(&str, &str); 2] = [
    ("amd64", "x86_64-unknown-linux-musl"),
    ("arm64", "aarch64-unknown-linux-musl"),
];

#[test]
fn dockerfile_is_multi_stage_and_builds_the_static_init_for_amd64_and_arm64() {
    let d = dockerfile();
    let froms: Vec<&Instr> = d.instrs.iter().filter(|i| i.name == "FROM").collect();
    assert!(froms.len() >= 2, "a build stage and an app stage");
    let build_stage = words(&froms[0].args);
    assert!(
        build_stage.len() == 3 && build_stage[1].eq_ignore_ascii_case("as"),
        "the build stage is named: FROM image AS name (got {build_stage:?})"
    );
    let stage = &build_stage[2];
    // The bases are build arguments whose defaults are the official images.
    assert_eq!(d.resolve(&build_stage[0]), "rust:1-slim-bookworm");
    assert_ne!(build_stage[0], "rust:1-slim-bookworm", "a build argument");
    let app = words(&froms[1].args)[0].clone();
    assert_eq!(d.resolve(&app), "python:3.12-slim");
    assert_ne!(app, "python:3.12-slim", "a build argument");

    // The build stage picks the target from TARGETARCH (BuildKit), else
    // from its own architecture (the legacy builder sets no TARGETARCH).
    let stage_starts: Vec<usize> = (0..d.instrs.len())
        .filter(|&n| d.instrs[n].name == "FROM")
        .collect();
    let build = &d.instrs[stage_starts[0]..stage_starts[1]];
    assert!(
        build
            .iter()
            .any(|i| i.name == "ARG" && i.args == "TARGETARCH"),
        "ARG TARGETARCH in the build stage"
    );
    let runs: Vec<&str> = build
        .iter()
        .filter(|i| i.name == "RUN")
        .map(|i| i.args.as_str())
        .collect();
    let all = runs.join("\n");
    assert!(
        all.contains(r#"${TARGETARCH:-$(dpkg --print-architecture)}"#),
        "TARGETARCH where it is set, the stage's architecture otherwise: {all}"
    );
    for (arch, target) in TARGETS {
        assert!(
            all.contains(&format!("{arch}) target={target} ;;")),
            "linux/{arch} builds {target}: {all}"
        );
    }
    assert!(all.contains(r#"rustup target add "$target""#), "{all}");
    assert!(
        all.contains(r#"cargo build --release --locked --target "$target" --bin init"#),
        "{all}"
    );
    assert!(
        all.contains(r#"cp "target/$target/release/init" /init"#),
        "{all}"
    );
    let cargo = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    assert!(
        cargo.contains("name = \"init\""),
        "Cargo.toml has the init bin"
    );
    // Both targets link on any machine (aarch64 by rust-lld), and the
    // release script builds and measures the same two.
    let config = std::fs::read_to_string(repo().join(".cargo/config.toml")).unwrap();
    assert!(
        config.contains("[target.aarch64-unknown-linux-musl]\nlinker = \"rust-lld\""),
        "{config}"
    );
    let release = std::fs::read_to_string(repo().join(".ci/release")).unwrap();
    assert!(
        release.contains(&format!("targets=({} {})", TARGETS[0].1, TARGETS[1].1)),
        ".ci/release builds both targets"
    );

    // The app stage copies the binary from where the build stage left it.
    let from_build = d
        .instrs
        .iter()
        .find(|i| i.name == "COPY" && i.args.contains("--from="))
        .expect("COPY --from the build stage");
    let w = words(&from_build.args);
    assert_eq!(w[0], format!("--from={stage}"));
    assert_eq!(w[1], "/init");
    assert_eq!(w[2], "/init");
}

#[test]
fn dockerfile_copies_files_that_exist_and_pass_the_dockerignore() {
    let d = dockerfile();
    // One ignore file at the context root, read by the legacy builder and
    // BuildKit alike; a <Dockerfile>.dockerignore beside it would win under
    // BuildKit only, and the two builds would send different contexts.
    for shadow in [
        "Dockerfile.example.dockerignore",
        "examples/compose/Dockerfile.dockerignore",
    ] {
        assert!(
            !repo().join(shadow).exists(),
            "{shadow} would override .dockerignore under BuildKit only"
        );
    }
    let ignore = std::fs::read_to_string(repo().join(".dockerignore"))
        .expect(".dockerignore keeps target/ out of the context");
    let allowed: Vec<&str> = ignore
        .lines()
        .filter_map(|l| l.trim().strip_prefix('!'))
        .map(|l| l.trim_end_matches('/'))
        .collect();
    assert!(
        ignore.lines().any(|l| l.trim() == "*"),
        "everything else out"
    );
    // Both Dockerfiles that build from the repository root.
    let compose = std::fs::read_to_string(repo().join("examples/compose/Dockerfile"))
        .expect("examples/compose/Dockerfile");
    let mut sources = 0;
    for (file, instrs) in [
        ("Dockerfile.example", d.instrs),
        ("examples/compose/Dockerfile", parse_dockerfile(&compose)),
    ] {
        for i in instrs
            .iter()
            .filter(|i| i.name == "COPY" || i.name == "ADD")
        {
            let w: Vec<String> = words(&i.args);
            if w.iter().any(|w| w.starts_with("--from=")) {
                continue;
            }
            let paths: Vec<&String> = w.iter().filter(|w| !w.starts_with("--")).collect();
            assert!(paths.len() >= 2, "{file}:{}: COPY SRC... DEST", i.line);
            for src in &paths[..paths.len() - 1] {
                let src = src.trim_end_matches('/').trim_start_matches("./");
                sources += 1;
                assert!(
                    repo().join(src).exists(),
                    "{file}:{}: COPY source {src} does not exist in the repository",
                    i.line
                );
                assert!(
                    allowed
                        .iter()
                        .any(|a| src == *a || src.starts_with(&format!("{a}/"))),
                    "{file}:{}: {src} is excluded by .dockerignore",
                    i.line
                );
            }
        }
    }
    assert!(sources >= 4, "the Rust sources and the app are copied");
    let app = std::fs::read_to_string(repo().join("examples/fastapi/app/main.py"))
        .expect("examples/fastapi/app/main.py");
    assert!(app.contains("\"/healthz\""), "the app answers /healthz");
    assert!(
        app.contains("/items/{item_id}"),
        "the app of the FastAPI docs"
    );
}

#[test]
fn dockerfile_runs_cinit_as_pid1_with_real_settings() {
    let d = dockerfile();
    assert_eq!(d.entrypoint, ["/init"]);
    assert_eq!(d.cmd, ["uvicorn", "app.main:app", "--fd", "3"]);

    let known = help_env_names();
    let cinit: Vec<&(String, String)> = d
        .env
        .iter()
        .filter(|(k, _)| k.starts_with("CINIT_"))
        .collect();
    for (k, _) in &cinit {
        assert!(
            known.contains(k),
            "Dockerfile.example sets {k}, which `init --help` does not know"
        );
    }
    let names: Vec<&str> = cinit.iter().map(|(k, _)| k.as_str()).collect();
    assert!(names.contains(&"CINIT_LISTEN") && names.contains(&"CINIT_WORKERS"));

    // The plan of the image under `docker run --cpus 1.5 --memory 512m`,
    // which its comments promise gives 2 workers.
    let env: Vec<(String, String)> = d.env.clone();
    let mut args = vec!["--cpus", "1.5", "--memory", "512m", "--"];
    args.extend(d.cmd.iter().map(String::as_str));
    let p = plan(&env, &args);
    assert_eq!(p["mode"], "workers");
    assert_eq!(p["workers"]["count"], 2, "{}", p["workers"]);
    assert_eq!(
        p["listen"][0]["fd"], 3,
        "uvicorn --fd 3 is the first socket"
    );
    let listen_port = p["listen"][0]["address"]["port"].as_u64().unwrap() as u16;
    let budget = p["shutdown"]["budget_s"].as_f64().unwrap();
    assert!(
        budget < 10.0,
        "the shutdown ({budget}s) must end inside docker stop's default 10s"
    );

    // The health check probes the port the init binds, with a URL it takes.
    assert_eq!(d.healthcheck[..2], ["/init", "--probe"]);
    let url = &d.healthcheck[2];
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/healthz"));
    assert_eq!(port_of(url), listen_port);
    let expose = d
        .instrs
        .iter()
        .find(|i| i.name == "EXPOSE")
        .expect("EXPOSE");
    assert_eq!(
        expose.args.trim_end_matches("/tcp"),
        listen_port.to_string()
    );
    // 0 (something answers) or 1 (nothing does) here; 2 would be a URL
    // that --probe rejects.
    let probe = Command::new(INIT)
        .args(["--probe", "http://127.0.0.1:1/healthz"])
        .output()
        .unwrap();
    assert_eq!(probe.status.code(), Some(1));
    let probe = Command::new(INIT)
        .args(&d.healthcheck[1..])
        .output()
        .unwrap();
    assert!(
        matches!(probe.status.code(), Some(0 | 1)),
        "init {:?}: {}",
        &d.healthcheck[1..],
        String::from_utf8_lossy(&probe.stderr)
    );
}

/// Stops a host-run init gracefully on drop (a failing test included), so
/// that its uvicorn workers do not outlive it.
struct Stop(crate::common::Running);

impl Drop for Stop {
    fn drop(&mut self) {
        let child = &mut self.0.child;
        if let Ok(None) = child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let end = std::time::Instant::now() + std::time::Duration::from_secs(15);
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < end {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
}

/// One HTTP/1.1 GET on 127.0.0.1: the body of a 200 answer.
fn get_200(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// The image's command with the image's settings, run on the host (the
/// image itself cannot be built here): cinit binds, two uvicorn workers
/// serve the FastAPI app on fd 3, the HEALTHCHECK's `--probe` sees it, and
/// SIGTERM (`docker stop`) ends it with 0.
#[test]
fn dockerfile_command_serves_the_app_with_the_images_settings() {
    let d = dockerfile();
    let have = Command::new("python3")
        .args(["-c", "import fastapi, uvicorn"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        have,
        "fastapi and uvicorn are not installed: \
         python3 -m pip install -r examples/fastapi/requirements.txt"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = d
        .env
        .iter()
        .find(|(k, _)| k == "CINIT_LISTEN")
        .map(|(_, v)| v.clone())
        .unwrap();
    let image_port = port_of(&listen);
    let mut cmd = clean_command(INIT);
    cmd.envs(d.env.iter().map(|(k, v)| (k, v)))
        .env("CINIT_LISTEN", format!("127.0.0.1:{port}"))
        // The image's user does not exist here, and this machine's Python
        // may live where it cannot go (pyenv under /root): the workers run
        // as the test's user. The image itself, user included, is run by
        // example_image.rs.
        .env("CINIT_USER", "")
        // The image's WORKDIR holds examples/fastapi/app as app/.
        .current_dir(repo().join("examples/fastapi"))
        // auto with half a CPU: floor(0.5 x 2 + 1) = 2 workers.
        .args(["--cpus", "0.5", "--"])
        .args(&d.cmd);
    let mut init = Stop(crate::common::Running::start(cmd, false));
    init.0
        .stderr_line(crate::common::PROMPT, "worker 1 started");

    let probe_url = d.healthcheck[2].replace(&format!(":{image_port}/"), &format!(":{port}/"));
    crate::common::wait_until(
        "the HEALTHCHECK probe to pass",
        crate::common::PROMPT,
        || {
            Command::new(INIT)
                .args(["--probe", &probe_url])
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        },
    );
    let body = get_200(port, "/items/5?q=somequery").expect("an answer from the app");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v, serde_json::json!({"item_id": 5, "q": "somequery"}));

    init.0.signal(15);
    assert_eq!(
        init.0.code(crate::common::PROMPT),
        0,
        "{:?}",
        init.0.drain_stderr()
    );
}

// ------------------------------------------------------------- YAML, tools

fn yaml_docs(path: &Path) -> Vec<Value> {
    let out = run(
        Command::new("python3").args([
            "-c",
            "import json, sys, yaml\n\
             print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
            &path.to_string_lossy(),
        ]),
        "python3",
        "apt-get install python3",
    );
    assert!(
        out.status.success(),
        "python3 could not read {} as YAML (PyYAML comes with \
         `python3 -m pip install kubernetes-validate`): {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `1m30s`, `10s`, `500ms`, `2h`, or a bare number of seconds.
fn seconds(v: &Value) -> f64 {
    if let Some(n) = v.as_f64() {
        return n;
    }
    let s = v.as_str().unwrap_or_else(|| panic!("not a duration: {v}"));
    let (mut total, mut num) = (0.0, String::new());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().unwrap_or_else(|_| panic!("bad duration {s}"));
        num.clear();
        total += match c {
            'h' => n * 3600.0,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                n / 1000.0
            }
            'm' => n * 60.0,
            's' => n,
            _ => panic!("bad duration {s}"),
        };
    }
    if !num.is_empty() {
        total += num.parse::<f64>().unwrap();
    }
    total
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
        .unwrap_or_else(|e| panic!("read {dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {dir}");
    files
}

// ---------------------------------------------------------------- Kubernetes

const KV_INSTALL: &str = "python3 -m pip install kubernetes-validate";

/// The oldest and the newest Kubernetes version the installed
/// kubernetes-validate bundles schemas for.
fn bundled_k8s_versions() -> Vec<String> {
    let out = run(
        Command::new("python3").args([
            "-c",
            "import kubernetes_validate.utils as u\n\
             v = sorted(set(u.all_versions()), key=lambda s: tuple(map(int, s.split('.'))))\n\
             print(v[0], v[-1])",
        ]),
        "python3",
        "apt-get install python3",
    );
    assert!(
        out.status.success(),
        "kubernetes-validate is not installed ({KV_INSTALL}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn kubernetes_manifests_validate_against_the_schemas() {
    let versions = bundled_k8s_versions();
    assert_eq!(versions.len(), 2);
    for file in yaml_files("examples/kubernetes") {
        for v in &versions {
            let out = run(
                Command::new("kubernetes-validate")
                    .args(["--strict", "--kubernetes-version", v])
                    .arg(&file),
                "kubernetes-validate",
                KV_INSTALL,
            );
            assert!(
                out.status.success(),
                "{} does not validate against Kubernetes {v}:\n{}{}",
                file.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// The literal `value`s of a container's `env` list (valueFrom is the
/// cluster's business).
fn k8s_env(container: &Value) -> Vec<(String, String)> {
    container["env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| Some((e["name"].as_str()?.into(), e["value"].as_str()?.into())))
                .collect()
        })
        .unwrap_or_default()
}

/// The image's ENV with `extra` on top, as the container sees it.
fn merged_env(base: &[(String, String)], extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut m: BTreeMap<String, String> = base.iter().cloned().collect();
    m.extend(extra.iter().cloned());
    m.into_iter().collect()
}

#[test]
fn kubernetes_grace_period_covers_cinits_shutdown_budget() {
    let image = dockerfile();
    let mut checked = 0;
    for file in yaml_files("examples/kubernetes") {
        for doc in yaml_docs(&file) {
            if doc["kind"] != "Deployment" {
                continue;
            }
            let pod = &doc["spec"]["template"]["spec"];
            // Kubernetes' default when the field is absent.
            let grace = pod["terminationGracePeriodSeconds"]
                .as_f64()
                .unwrap_or(30.0);
            for c in pod["containers"].as_array().unwrap() {
                let env = merged_env(&image.env, &k8s_env(c));
                let limits = &c["resources"]["limits"];
                let (cpu, mem) = (limits["cpu"].as_str(), limits["memory"].as_str());
                let (Some(cpu), Some(mem)) = (cpu, mem) else {
                    panic!(
                        "{}: container {} has no cpu/memory limits for cinit to size from",
                        file.display(),
                        c["name"]
                    );
                };
                // cinit takes Kubernetes quantities as they are written.
                let mut args = vec!["--cpus", cpu, "--memory", mem, "--"];
                args.extend(image.cmd.iter().map(String::as_str));
                let p = plan(&env, &args);
                let budget = p["shutdown"]["budget_s"].as_f64().unwrap();
                assert!(
                    grace >= budget,
                    "{}: terminationGracePeriodSeconds {grace} < cinit's shutdown budget {budget}s \
                     (shutdown delay + graceful timeout): Kubernetes would SIGKILL mid-shutdown",
                    file.display()
                );
                assert_eq!(p["shutdown"]["delay_s"], 5.0);
                assert_eq!(p["shutdown"]["graceful_timeout_s"], 20.0);
                // The manifest's comment: 1500m and 512Mi make 2 workers.
                assert_eq!(
                    p["workers"]["count"], 2,
                    "{}",
                    p["workers"]["sizing"]["formula"]
                );
                let steps = p["steps"].as_array().unwrap();
                // The port stays closed during the pre-start steps, and the
                // kubelet kills a container whose startupProbe has not
                // passed within its budget: it must outlast every step's
                // timeout in the plan.
                let steps_s: f64 = steps.iter().map(|s| s["timeout_s"].as_f64().unwrap()).sum();
                let startup = &c["startupProbe"];
                assert!(
                    !startup.is_null() || steps.is_empty(),
                    "{}: pre-start steps ({steps_s}s) and no startupProbe: the liveness \
                     probe would kill the pod while they run",
                    file.display()
                );
                if !startup.is_null() {
                    let field = |k: &str, default: f64| startup[k].as_f64().unwrap_or(default);
                    // Kubernetes' defaults for absent fields.
                    let budget = field("initialDelaySeconds", 0.0)
                        + field("failureThreshold", 3.0) * field("periodSeconds", 10.0);
                    assert!(
                        budget >= steps_s,
                        "{}: the startupProbe allows {budget}s (initialDelaySeconds + \
                         failureThreshold × periodSeconds), less than the {steps_s}s the \
                         pre-start steps may take (sum of .steps[].timeout_s of the plan): \
                         the kubelet would kill a pod still migrating",
                        file.display()
                    );
                }
                assert_eq!(steps[0]["kind"], "wait_for");
                assert_eq!(steps[0]["url"], "tcp://postgres:5432");
                assert_eq!(steps[1]["kind"], "run");
                assert_eq!(
                    steps[1]["argv"],
                    serde_json::json!(["alembic", "upgrade", "head"])
                );

                // Probes reach the port the init binds.
                let listen = p["listen"][0]["address"]["port"].as_u64().unwrap();
                let port = c["ports"][0]["containerPort"].as_u64().unwrap();
                assert_eq!(port, listen, "containerPort is cinit's --listen port");
                let port_name = c["ports"][0]["name"].as_str();
                for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
                    let pr = &c[probe];
                    if pr.is_null() {
                        continue;
                    }
                    if let Some(cmd) = pr["exec"]["command"].as_array() {
                        assert_eq!(cmd[0], "/init");
                        assert_eq!(cmd[1], "--probe");
                        assert_eq!(port_of(cmd[2].as_str().unwrap()) as u64, listen);
                    } else {
                        let p = &pr["httpGet"]["port"];
                        assert!(
                            p.as_u64() == Some(listen) || p.as_str() == port_name,
                            "{probe} port {p}"
                        );
                        assert_eq!(pr["httpGet"]["path"], "/healthz");
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 0, "no Deployment container was checked");
}

/// Every Deployment's pods meet the Pod Security Standards' `restricted`
/// level (kubernetes.io/docs/concepts/security/pod-security-standards),
/// checked rule by rule on the manifest, and cinit can run in them: the
/// port it binds needs no privilege, and the image's `--user` (when it
/// sets one) is the pod's own uid and gid, which a non-root init can keep
/// (another uid would be a configuration error).
#[test]
fn kubernetes_pods_meet_the_restricted_level() {
    let image = dockerfile();
    let mut checked = 0;
    for file in yaml_files("examples/kubernetes") {
        for doc in yaml_docs(&file) {
            if doc["kind"] != "Deployment" {
                continue;
            }
            let pod = &doc["spec"]["template"]["spec"];
            let at = |what: &str| format!("{}: {what}", file.display());
            for host in ["hostNetwork", "hostPID", "hostIPC"] {
                assert_ne!(pod[host], true, "{}", at(host));
            }
            // Volume types the level allows.
            let allowed = [
                "configMap",
                "csi",
                "downwardAPI",
                "emptyDir",
                "ephemeral",
                "persistentVolumeClaim",
                "projected",
                "secret",
            ];
            for v in pod["volumes"].as_array().into_iter().flatten() {
                let kinds: Vec<&String> = v
                    .as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| k.as_str() != "name")
                    .collect();
                assert!(
                    kinds.iter().all(|k| allowed.contains(&k.as_str())),
                    "{}",
                    at(&format!("volume {v}"))
                );
            }
            let pod_sc = &pod["securityContext"];
            for c in pod["containers"].as_array().unwrap() {
                let sc = &c["securityContext"];
                // A container's field overrides the pod's.
                let field = |k: &str| {
                    if sc[k].is_null() {
                        pod_sc[k].clone()
                    } else {
                        sc[k].clone()
                    }
                };
                let name = c["name"].as_str().unwrap_or("?");
                let at = |what: &str| at(&format!("container {name}: {what}"));
                assert_eq!(field("runAsNonRoot"), true, "{}", at("runAsNonRoot"));
                let uid = field("runAsUser").as_u64();
                assert_ne!(uid, Some(0), "{}", at("runAsUser 0"));
                assert_eq!(
                    sc["allowPrivilegeEscalation"],
                    false,
                    "{}",
                    at("allowPrivilegeEscalation")
                );
                let seccomp = field("seccompProfile");
                assert!(
                    ["RuntimeDefault", "Localhost"]
                        .contains(&seccomp["type"].as_str().unwrap_or("")),
                    "{}",
                    at(&format!("seccompProfile {seccomp}"))
                );
                let caps = &sc["capabilities"];
                assert!(
                    caps["drop"]
                        .as_array()
                        .is_some_and(|d| d.contains(&"ALL".into())),
                    "{}",
                    at("capabilities.drop must hold ALL")
                );
                for add in caps["add"].as_array().into_iter().flatten() {
                    assert_eq!(add, "NET_BIND_SERVICE", "{}", at("capabilities.add"));
                }
                for port in c["ports"].as_array().into_iter().flatten() {
                    assert!(port["hostPort"].is_null(), "{}", at("hostPort"));
                }
                // Not a rule of the level, but what this example promises.
                assert_eq!(
                    sc["readOnlyRootFilesystem"],
                    true,
                    "{}",
                    at("readOnlyRootFilesystem")
                );

                // cinit in that pod: as a non-root process it binds only
                // above net.ipv4.ip_unprivileged_port_start (1024 unless a
                // runtime lowers it), and keeps its own uid for --user.
                let env = merged_env(&image.env, &k8s_env(c));
                let mut args = vec!["--"];
                args.extend(image.cmd.iter().map(String::as_str));
                let p = plan(&env, &args);
                for l in p["listen"].as_array().unwrap() {
                    let port = l["address"]["port"].as_u64();
                    assert!(
                        port.is_none_or(|p| p >= 1024),
                        "{}",
                        at(&format!(
                            "cinit listens on {} as non-root: below 1024 it needs a privilege the level does not grant everywhere",
                            l["address"]
                        ))
                    );
                }
                if !p["user"].is_null() {
                    assert_eq!(
                        p["user"]["uid"].as_u64(),
                        uid,
                        "{}",
                        at("the image's --user is not the pod's runAsUser: the non-root init could not switch")
                    );
                    assert_eq!(
                        p["user"]["gid"].as_u64(),
                        field("runAsGroup").as_u64(),
                        "{}",
                        at("the image's --user group is not the pod's runAsGroup")
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 0, "no Deployment container was checked");
}

// ------------------------------------------------------------------- Compose

fn compose(args: &[&str]) -> Output {
    // docker-compose v1, else the `docker compose` plugin.
    let v1 = Command::new("docker-compose").args(args).output();
    match v1 {
        Ok(out) => out,
        Err(_) => run(
            Command::new("docker").arg("compose").args(args),
            "docker compose",
            "apt-get install docker-compose (or the docker-compose-plugin)",
        ),
    }
}

#[test]
fn compose_replicas_file_is_valid_and_its_stop_period_covers_the_budget() {
    let file = repo().join("examples/compose-replicas/docker-compose.yml");
    let f = file.to_string_lossy();
    let out = compose(&["-f", &f, "config", "-q"]);
    assert!(
        out.status.success(),
        "docker-compose config -q failed (is docker-compose installed? \
         apt-get install docker-compose): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = compose(&["-f", &f, "config"]);
    assert!(out.status.success());
    let dir = crate::common::TempDir::new("compose");
    let resolved = dir.0.join("resolved.yml");
    std::fs::write(&resolved, &out.stdout).unwrap();
    let docs = yaml_docs(&resolved);
    let services = docs[0]["services"].as_object().expect("services");

    let image = dockerfile();
    let app = services
        .iter()
        .find(|(_, s)| {
            s["build"]["dockerfile"]
                .as_str()
                .is_some_and(|d| d.ends_with("Dockerfile.example"))
        })
        .map(|(_, s)| s)
        .expect("a service built from Dockerfile.example");
    assert!(
        app["deploy"]["replicas"].as_u64().unwrap_or(1) > 1,
        "several replicas"
    );
    let env: Vec<(String, String)> = app["environment"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let env = merged_env(&image.env, &env);
    let limits = &app["deploy"]["resources"]["limits"];
    let cpus = limits["cpus"].to_string().trim_matches('"').to_string();
    let mem = limits["memory"]
        .as_str()
        .expect("a memory limit")
        .to_string();
    let mut args = vec!["--cpus", cpus.as_str(), "--memory", mem.as_str(), "--"];
    args.extend(image.cmd.iter().map(String::as_str));
    let p = plan(&env, &args);
    let budget = p["shutdown"]["budget_s"].as_f64().unwrap();
    // Compose's default stop timeout is 10s.
    let grace = app.get("stop_grace_period").map(seconds).unwrap_or(10.0);
    assert!(
        grace >= budget,
        "stop_grace_period {grace}s < cinit's shutdown budget {budget}s"
    );
    assert_eq!(p["workers"]["count"], 1, "one process per replica");

    // The load balancer forwards to that service on the port cinit binds.
    let listen = p["listen"][0]["address"]["port"].as_u64().unwrap();
    let name = services
        .iter()
        .find(|(_, s)| std::ptr::eq(*s, app))
        .map(|(n, _)| n.clone())
        .unwrap();
    let nginx = std::fs::read_to_string(repo().join("examples/compose-replicas/nginx.conf"))
        .expect("nginx.conf");
    assert!(
        nginx.contains(&format!("http://{name}:{listen}")),
        "nginx.conf proxies to {name}:{listen}"
    );
}

#[test]
fn duration_parser() {
    assert_eq!(seconds(&"1m30s".into()), 90.0);
    assert_eq!(seconds(&"500ms".into()), 0.5);
    assert_eq!(seconds(&serde_json::json!(7)), 7.0);
}

// ------------------------------------------------------- recipes in the docs

/// The text of `rel` and the commands it shows: inline code spans
/// (newlines inside a span joined) and the lines of fenced blocks and of
/// comments (a trailing `\` joins the next line).
fn recipes(rel: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let mut out = Vec::new();
    let mut joined = String::new();
    for line in text.lines() {
        let line = line.trim_start_matches('#').trim();
        if let Some(head) = line.strip_suffix('\\') {
            joined.push_str(head);
            joined.push(' ');
            continue;
        }
        joined.push_str(line);
        out.push(std::mem::take(&mut joined));
    }
    if rel.ends_with(".md") {
        let flat = text.replace("```", "\u{0}").replace('\n', " ");
        out.extend(
            flat.split('`')
                .skip(1)
                .step_by(2)
                .filter(|s| !s.contains('\u{0}'))
                .map(String::from),
        );
    }
    out
}

/// A dry-run recipe through Docker, Compose or kubectl must keep the
/// command: words after the image or service replace its CMD (`docker run
/// IMAGE --dry-run`, `docker-compose run --rm app --dry-run` show a plan
/// with no command; use `-e CINIT_DRY_RUN=1`), and an exec'd `/init` has
/// none. So `--dry-run` there must be followed by the command's words.
#[test]
fn dry_run_recipes_keep_the_command() {
    let mut files = vec!["README.md".to_string(), "Dockerfile.example".to_string()];
    for dir in ["docs", "examples"] {
        let mut stack = vec![repo().join(dir)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p
                    .extension()
                    .is_some_and(|x| ["md", "yml", "yaml"].iter().any(|y| x == *y))
                {
                    files.push(
                        p.strip_prefix(repo())
                            .unwrap()
                            .to_string_lossy()
                            .into_owned(),
                    );
                }
            }
        }
    }
    let mut checked = 0;
    for f in &files {
        for r in recipes(f) {
            let through = [
                "docker run",
                "docker-compose",
                "docker compose",
                "kubectl exec",
            ]
            .iter()
            .any(|t| r.contains(t));
            let Some((_, after)) = r.split_once("--dry-run") else {
                continue;
            };
            if !through {
                continue;
            }
            checked += 1;
            let command: Vec<&str> = after
                .split_whitespace()
                .skip_while(|w| w.starts_with('-'))
                .collect();
            assert!(
                !command.is_empty(),
                "{f}: `{r}` shows a plan without the command: the words after the image or \
                 service replace its CMD; use -e CINIT_DRY_RUN=1, or repeat the command"
            );
        }
    }
    assert!(checked > 0, "no dry-run recipe found");
}

/// The Compose snippet of docs/prestart.md shows the example's settings:
/// every CINIT_* variable and the command of examples/compose's `app`
/// service, so the log lines quoted beside it (`timeout 2m`) follow from it.
#[test]
fn prestart_docs_compose_snippet_matches_the_example() {
    let doc = std::fs::read_to_string(repo().join("docs/prestart.md")).unwrap();
    let section = doc
        .split("## Example: FastAPI + PostgreSQL")
        .nth(1)
        .expect("the Compose section of docs/prestart.md");
    let snippet = section
        .split("```yaml")
        .nth(1)
        .and_then(|rest| rest.split_once('\n'))
        .and_then(|(_, rest)| rest.split("```").next())
        .expect("a ```yaml block in it");
    let dir = crate::common::TempDir::new("snippet");
    let path = dir.0.join("snippet.yml");
    std::fs::write(&path, snippet).unwrap();
    let shown = &yaml_docs(&path)[0]["app"];
    let file =
        &yaml_docs(&repo().join("examples/compose/docker-compose.yml"))[0]["services"]["app"];
    let cinit = |svc: &Value| -> BTreeMap<String, Value> {
        svc["environment"]
            .as_object()
            .expect("environment as a map")
            .iter()
            .filter(|(k, _)| k.starts_with("CINIT_"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    assert_eq!(
        cinit(shown),
        cinit(file),
        "docs/prestart.md's snippet and examples/compose/docker-compose.yml set different CINIT_* variables"
    );
    assert_eq!(shown["command"], file["command"]);
}
