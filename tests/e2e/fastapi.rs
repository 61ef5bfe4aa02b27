//! The real FastAPI app (examples/fastapi) under cinit as PID 1: two
//! `uvicorn --fd 3` workers, then gunicorn's uvicorn worker picking the
//! socket up from LISTEN_FDS; answered through a real HTTP client, then
//! SIGTERM and exit 0. Needs fastapi, uvicorn and gunicorn (`.ci/test`
//! installs them); a missing one fails the test with the install command.

use crate::common::*;
use std::collections::BTreeSet;

fn app_dir() -> String {
    format!("{}/examples/fastapi", env!("CARGO_MANIFEST_DIR"))
}

fn require_python_packages() {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import fastapi, uvicorn, gunicorn"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "fastapi, uvicorn and gunicorn are needed: python3 -m pip install -r examples/fastapi/requirements.txt (bash .ci/test does it)"
    );
}

fn serve_and_check(worker: &[&str]) {
    let mut args = vec!["--workers", "2", "--listen", "127.0.0.1:0", "--"];
    args.extend_from_slice(worker);
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--pid", "--fork", "--kill-child", "--mount-proc", INIT])
        .args(&args)
        .current_dir(app_dir());
    let mut r = Running::start(cmd, true);
    let port = listening_port(&mut r);
    let mut body = String::new();
    wait_until(
        "the app to answer",
        std::time::Duration::from_secs(60),
        || match http_get(port, "/items/5?q=somequery") {
            Ok((200, b)) => {
                body = b;
                true
            }
            _ => false,
        },
    );
    assert_eq!(body.trim(), r#"{"item_id":5,"q":"somequery"}"#);
    // Both workers answer on the one port.
    let mut pids = BTreeSet::new();
    wait_until(
        "both workers to answer",
        std::time::Duration::from_secs(60),
        || {
            if let Ok((200, b)) = http_get(port, "/pid") {
                if let Some(p) = json_field(&b, "pid") {
                    pids.insert(p);
                }
            }
            pids.len() == 2
        },
    );
    r.signal(libc::SIGTERM);
    assert_eq!(r.code(PROMPT), 0, "{:?}", r.drain_stderr());
}

#[test]
fn fastapi_under_uvicorn_fd_3() {
    if !require_pid1() {
        return;
    }
    require_python_packages();
    serve_and_check(&[
        "python3",
        "-m",
        "uvicorn",
        "app.main:app",
        "--fd",
        "3",
        "--log-level",
        "warning",
    ]);
}

#[test]
fn fastapi_under_gunicorn_with_listen_fds() {
    if !require_pid1() {
        return;
    }
    require_python_packages();
    // gunicorn checks LISTEN_PID == getpid() and then takes fd 3 from
    // LISTEN_FDS, ignoring any -b address; one gunicorn worker per slot.
    serve_and_check(&[
        "python3",
        "-m",
        "gunicorn",
        "-k",
        "uvicorn.workers.UvicornWorker",
        "-w",
        "1",
        "--log-level",
        "warning",
        "app.main:app",
    ]);
}
