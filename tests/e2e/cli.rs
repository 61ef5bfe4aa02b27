//! What users read: `--help`, `--version`, usage errors and the reference
//! in docs/configuration.md, compared with the files in tests/snapshots/
//! (and the document) so a change in them is a visible diff.
//! `UPDATE_SNAPSHOTS=1 cargo nextest run --test e2e` rewrites the files.

use crate::common::*;

fn clean_env() -> std::process::Command {
    clean_command(INIT)
}

#[test]
fn help_text() {
    let out = clean_env().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    snapshot("help.txt", &String::from_utf8_lossy(&out.stdout));
}

#[test]
fn version() {
    let out = clean_env().arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("init {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors() {
    let mut text = String::new();
    for args in [
        vec!["--workers", "zero", "true"],
        vec!["--listen", "localhost", "--workers", "2", "true"],
        vec!["--backlog", "-3", "true"],
        vec!["--signal-map", "TERM", "true"],
        vec!["--min-workers", "5", "--max-workers", "2", "true"],
        vec!["--wait-for", "https://db:5432", "true"],
        vec!["--no-such-flag", "true"],
        vec![],
        vec!["--dry-run"],
        vec!["--dry-run", "--json"],
        vec!["--listen", ":80", "--listen", "0.0.0.0:80", "true"],
        vec!["--workers", "2", "--signal-map", "TERM:QUIT", "true"],
        vec!["--signal-map", "KILL:0", "true"],
        vec!["--stop-signal", "STOP", "true"],
        vec!["--config", "/dev/zero", "true"],
    ] {
        let out = clean_env().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        text.push_str(&format!(
            "$ init {}\n{}\n",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    snapshot("usage-errors.txt", &text);
}

/// The dry run touches nothing: it works as an ordinary user and binds no
/// socket (the port is already taken here, so binding would fail), runs no
/// step and starts no process.
#[test]
fn dry_run_works_as_nobody_and_binds_nothing() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = TempDir::new("dry");
    // Writable for nobody too: a step that ran would leave its mark.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let marker = dir.path("ran");
    let listen = format!("127.0.0.1:{port}");
    let step = format!("touch {marker}");
    let args = [
        "--dry-run",
        "--json",
        "--workers",
        "auto",
        "--listen",
        &listen,
        "--prestart",
        &step,
        "--",
        "touch",
        &marker,
    ];
    let mut cmd = if is_root() {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "nobody", "--", INIT]);
        c
    } else {
        std::process::Command::new(INIT)
    };
    let out = cmd.args(args).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["listen"][0]["address"]["port"], port);
    assert_eq!(plan["steps"][0]["kind"], "run");
    assert!(plan["workers"]["count"].as_u64().unwrap() >= 1);
    assert!(
        !std::path::Path::new(&marker).exists(),
        "the dry run ran something"
    );
    drop(taken);
}

/// An empty CINIT_* variable counts as unset (an image's ENV can only be
/// emptied with `docker run -e`), and WEB_CONCURRENCY is the fallback.
#[test]
fn empty_environment_variables_count_as_unset() {
    let plan = |env: &[(&str, &str)]| -> serde_json::Value {
        let mut c = clean_env();
        c.envs(env.iter().copied())
            .args(["--dry-run", "--json", "true"]);
        let out = c.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(plan(&[("CINIT_WORKERS", "")])["mode"], "plain");
    let p = plan(&[("CINIT_WORKERS", " "), ("WEB_CONCURRENCY", "3")]);
    assert_eq!(
        (p["mode"].as_str(), p["workers"]["count"].as_u64()),
        (Some("workers"), Some(3))
    );
    assert_eq!(
        p["workers"]["source"],
        "environment variable WEB_CONCURRENCY"
    );
    assert_eq!(
        plan(&[("CINIT_WORKERS", "2"), ("WEB_CONCURRENCY", "3")])["workers"]["count"],
        2
    );
    assert_eq!(
        plan(&[("CINIT_GRACEFUL_TIMEOUT", "")])["shutdown"]["graceful_timeout_s"],
        8.0
    );
}

/// The reference in docs/configuration.md is made from the table of
/// settings; this fails when the two differ (`UPDATE_SNAPSHOTS=1`
/// rewrites the block between the markers).
#[test]
fn configuration_reference_matches_the_table() {
    const BEGIN: &str = "<!-- reference: generated from src/config/options.rs -->\n";
    const END: &str = "<!-- end of reference -->";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (Some(start), Some(end)) = (doc.find(BEGIN), doc.find(END)) else {
        panic!("docs/configuration.md lacks the reference markers");
    };
    let start = start + BEGIN.len();
    let actual = cinit::config::options::reference();
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        let updated = format!("{}{actual}{}", &doc[..start], &doc[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert!(
        doc[start..end] == actual,
        "docs/configuration.md's reference differs from the table (UPDATE_SNAPSHOTS=1 rewrites it)\n--- document\n{}\n--- table\n{actual}",
        &doc[start..end]
    );
}

/// The README's `init --help` block is the real help, from the usage line
/// down.
#[test]
fn readme_help_is_the_real_help() {
    let out = clean_env().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let help = &help[help.find("Usage:").unwrap()..];
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let block = readme
        .split("```text\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.starts_with("Usage: init"))
        .expect("README.md has no ```text block with the help");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        let fresh = format!("{}\n", help.trim_end());
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
        std::fs::write(path, readme.replacen(block, &fresh, 1)).unwrap();
        return;
    }
    assert_eq!(
        block.trim_end(),
        help.trim_end(),
        "README.md's help block is stale"
    );
}

/// `--dry-run` takes no value: the next word is the command's.
#[test]
fn dry_run_does_not_swallow_the_command() {
    let out = clean_env()
        .args(["--dry-run", "--json", "uvicorn", "app:app"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["command"], serde_json::json!(["uvicorn", "app:app"]));
    let out = clean_env()
        .env("CINIT_DRY_RUN", "1")
        .env("CINIT_JSON", "1")
        .arg("true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(serde_json::from_slice::<serde_json::Value>(&out.stdout).is_ok());
}

/// A plan that cannot be written is a failure, not a silent exit 0.
#[test]
fn dry_run_into_a_full_device_fails() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = clean_env()
        .args(["--dry-run", "--", "x"])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("failed to write the plan"), "{err}");
}

#[test]
fn unknown_cinit_variables_are_warned_about() {
    let out = clean_env()
        .env("CINIT_WORKER", "4")
        .args(["--dry-run", "--", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cinit: warning: unknown environment variable CINIT_WORKER ignored (did you mean CINIT_WORKERS?)"),
        "{err}"
    );
}

/// A config file that is a FIFO is refused at once (it used to block).
#[test]
fn a_fifo_config_does_not_block() {
    let dir = TempDir::new("fifo");
    let fifo = dir.path("c.toml");
    nix::unistd::mkfifo(
        fifo.as_str(),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let mut child = clean_env()
        .args(["--config", &fifo, "--dry-run", "--", "x"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut status = None;
    wait_until("the init to exit", PROMPT, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    assert_eq!(status.unwrap().code(), Some(2));
}

/// A plain run reads no cgroup file (`num_cpus` used to read the cgroup
/// files at every start). Needs strace (.ci/test installs it).
#[test]
fn a_plain_run_reads_no_cgroup_file() {
    if std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_err()
    {
        skip(Need::Strace, "strace is not installed");
        return;
    }
    for args in [
        &["--", "true"][..],
        &["--workers", "1", "--restart", "never", "--", "true"],
    ] {
        let out = clean_command("strace")
            .args(["-f", "-e", "trace=openat,open", "--", INIT])
            .args(args)
            .output()
            .unwrap();
        let trace = String::from_utf8_lossy(&out.stderr);
        assert!(trace.contains("openat"), "strace saw nothing: {trace}");
        for line in trace.lines() {
            assert!(
                !(line.contains("cgroup")
                    || line.contains("mountinfo")
                    || line.contains("/sys/devices/system/cpu")),
                "{args:?} opened {line}"
            );
        }
    }
}

/// The plan says what TERM, INT, QUIT, HUP, TTIN and TTOU really do once
/// the `--signal-map` rules apply.
#[test]
fn plan_says_what_each_signal_does() {
    struct NoEnv;
    impl cinit::config::Env for NoEnv {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
    }
    let plan = |args: &[&str]| {
        let mut argv = vec!["init"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["--", "app"]);
        let args = cinit::config::parse_args(argv).unwrap();
        let config = cinit::config::resolve(&args, &NoEnv).unwrap();
        cinit::plan::Plan::build_with(&config, None)
    };
    let p = plan(&[
        "--workers",
        "2",
        "--signal-map",
        "TERM:0",
        "--signal-map",
        "HUP:USR1",
    ]);
    let j: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
    let s = &j["signals"];
    assert_eq!(s["shutdown"], serde_json::json!(["INT", "QUIT"]));
    assert_eq!(s["term"], "ignored (--signal-map TERM:0)");
    assert_eq!(s["int"], "shutdown");
    assert_eq!(s["hup"], "forward as SIGUSR1 (--signal-map HUP:USR1)");
    assert_eq!(s["ttin"], "add a worker");
    let text = p.to_text();
    assert!(
        text.contains("signals     TERM: ignored (--signal-map TERM:0); INT: shutdown; QUIT: shutdown; HUP: forward as SIGUSR1 (--signal-map HUP:USR1); TTIN: add a worker; TTOU: remove a worker"),
        "{text}"
    );
    assert!(text.contains("shutdown    on SIGINT/SIGQUIT:"), "{text}");

    let p = plan(&[
        "--signal-map",
        "TERM:QUIT",
        "--signal-map",
        "TTOU:0",
        "--signal-map",
        "USR1:USR2",
    ]);
    let j: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
    let s = &j["signals"];
    assert_eq!(
        s["term"],
        "shutdown, the child gets SIGQUIT (--signal-map TERM:QUIT)"
    );
    assert_eq!(s["hup"], "forward");
    assert_eq!(s["ttou"], "ignored (--signal-map TTOU:0)");
    assert!(p
        .to_text()
        .contains("every other signal is forwarded (rewritten: USR1->USR2)"));
}
