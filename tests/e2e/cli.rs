//! What users read: `--help`, `--version` and usage errors, compared with
//! the files in tests/snapshots/ so a change in them is a visible diff.
//! `UPDATE_SNAPSHOTS=1 cargo test --test e2e` rewrites the files.

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
