//! `--user`, `--prestart-user`, `--no-new-privs` and the unix socket's
//! owner and mode, as PID 1 (SPEC 14), and the init run with no privilege
//! at all.
//!
//! The init reads the real /etc/passwd and /etc/group. Each test gives it
//! fixtures in a mount namespace of its own (`unshare --mount`, the files
//! bind-mounted over /etc/passwd and /etc/group), so the host's files are
//! neither read nor touched. What a child runs as is read from the child's
//! own /proc/PID/status (Uid, Gid, Groups, NoNewPrivs) and environ.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use crate::common::*;

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
app:x:10001:10001:the app:/home/app:/bin/sh\n\
# a comment, and a line for another user that is broken: no harm\n\
other:x:10003\n\
broken:x:10002:10002::/home/broken\n";

const GROUP: &str = "root:x:0:\n\
app:x:10001:\n\
extra:x:20001:app\n\
more:x:20002:someone,app\n\
web:x:33:\n";

/// The fixtures, in a directory the test owns.
fn db() -> TempDir {
    let d = TempDir::new("users");
    std::fs::write(d.path("passwd"), PASSWD).unwrap();
    std::fs::write(d.path("group"), GROUP).unwrap();
    // Children of other uids walk into it (sockets live there).
    std::fs::set_permissions(&d.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// `unshare` with a mount namespace in which the fixtures are /etc/passwd
/// and /etc/group, then `wrap` (setpriv, say), then `init ARGS` as PID 1.
fn init_cmd(db: &TempDir, wrap: &[&str], args: &[&str]) -> Command {
    let mut c = clean_command("unshare");
    c.args(["--mount", "--pid", "--fork", "--kill-child", "--mount-proc"])
        .args([
            "sh",
            "-c",
            "mount --bind \"$0/passwd\" /etc/passwd && mount --bind \"$0/group\" /etc/group && exec \"$@\"",
        ])
        .arg(&db.0)
        .args(wrap)
        .arg(INIT)
        .args(args);
    c
}

fn start(db: &TempDir, wrap: &[&str], args: &[&str]) -> Running {
    Running::start(init_cmd(db, wrap, args), true)
}

/// `init ARGS` to its end: (code, stdout, stderr).
fn run_to_end(db: &TempDir, wrap: &[&str], args: &[&str]) -> (i32, String, String) {
    let out = init_cmd(db, wrap, args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run unshare");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The fields of /proc/PID/status.
fn status(pid: i32) -> BTreeMap<String, String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// Real, effective, saved and file-system ids: all four must be `id`.
fn ids(field: &str) -> String {
    field.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn environ(pid: i32) -> BTreeMap<String, String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_default()
        .split(|&b| b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// The child of `parent` that runs `comm`, once it has exec'd.
fn child_running(parent: i32, comm: &str) -> i32 {
    let mut found = 0;
    wait_until(&format!("a `{comm}` child of {parent}"), PROMPT, || {
        found = children_of(parent)
            .into_iter()
            .find(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm)
            })
            .unwrap_or(0);
        found != 0
    });
    found
}

#[test]
fn a_named_user_gets_its_ids_groups_home_and_name() {
    if !require_pid1() {
        return;
    }
    let db = db();
    // The init itself has supplementary groups (4, 27): none may reach
    // the child.
    let mut r = start(
        &db,
        &["setpriv", "--groups", "4,27", "--"],
        &["--user", "app", "--", "sleep", "1000"],
    );
    let init = r.init_pid;
    let child = child_running(init, "sleep");
    assert_eq!(status(init)["Groups"], "4 27", "the init's own groups");
    let st = status(child);
    assert_eq!(ids(&st["Uid"]), "10001 10001 10001 10001");
    assert_eq!(ids(&st["Gid"]), "10001 10001 10001 10001");
    assert_eq!(
        st["Groups"], "20001 20002",
        "memberships from /etc/group only"
    );
    assert_eq!(st["NoNewPrivs"], "0");
    assert_eq!(st["CapEff"], "0000000000000000", "no capability is left");
    let env = environ(child);
    assert_eq!(env.get("HOME").map(String::as_str), Some("/home/app"));
    assert_eq!(env.get("USER").map(String::as_str), Some("app"));
    // The init keeps root.
    assert_eq!(ids(&status(init)["Uid"]), "0 0 0 0");
    r.signal(15);
    assert_eq!(r.code(PROMPT), 143);
}

#[test]
fn a_uid_without_entry_gets_gid_0_no_groups_and_no_user_variable() {
    if !require_pid1() {
        return;
    }
    let db = db();
    let mut cmd = init_cmd(
        &db,
        &["setpriv", "--groups", "4,27", "--"],
        &["--user", "4242", "--no-new-privs", "--", "sleep", "1000"],
    );
    cmd.env("USER", "root").env("HOME", "/root");
    let mut r = Running::start(cmd, true);
    let child = child_running(r.init_pid, "sleep");
    let st = status(child);
    assert_eq!(ids(&st["Uid"]), "4242 4242 4242 4242");
    assert_eq!(
        ids(&st["Gid"]),
        "0 0 0 0",
        "docker --user 4242 gives gid 0 too"
    );
    assert_eq!(st["Groups"], "", "supplementary groups cleared");
    assert_eq!(st["NoNewPrivs"], "1");
    let env = environ(child);
    assert_eq!(env.get("HOME").map(String::as_str), Some("/"));
    assert_eq!(
        env.get("USER"),
        None,
        "the init's USER=root is not passed on"
    );
    r.stderr_line(
        PROMPT,
        "uid 4242 has no entry in /etc/passwd: its group is 0",
    );
    r.signal(15);
    assert_eq!(r.code(PROMPT), 143);
    let said = r
        .stderr_seen
        .iter()
        .filter(|l| l.contains("has no entry"))
        .count();
    assert_eq!(said, 1, "the warning once: {:?}", r.stderr_seen);
}

#[test]
fn a_group_given_replaces_the_gid_and_leaves_no_supplementary_group() {
    if !require_pid1() {
        return;
    }
    let db = db();
    let mut r = start(&db, &[], &["--user", "app:web", "--", "sleep", "1000"]);
    let st = status(child_running(r.init_pid, "sleep"));
    assert_eq!(ids(&st["Uid"]), "10001 10001 10001 10001");
    assert_eq!(ids(&st["Gid"]), "33 33 33 33");
    assert_eq!(st["Groups"], "");
    r.signal(15);
    assert_eq!(r.code(PROMPT), 143);
}

/// The steps run as the user, or as root with `--prestart-user 0`; the
/// workers as the user either way.
#[test]
fn steps_run_as_the_user_or_as_root_when_asked() {
    if !require_pid1() {
        return;
    }
    let db = db();
    let step = "sh -c 'echo step $(id -u):$(id -g):$(id -G) HOME=$HOME'";
    let worker = ["sh", "-c", "echo worker $(id -u):$(id -g); exec sleep 1000"];
    for (extra, want) in [
        (&[][..], "step 10001:10001:10001 20001 20002 HOME=/home/app"),
        (&["--prestart-user", "0"][..], "step 0:0:0 HOME=/root"),
    ] {
        let mut args = vec!["--workers", "1", "--user", "app", "--prestart", step];
        args.extend_from_slice(extra);
        args.push("--");
        args.extend_from_slice(&worker);
        let mut r = start(&db, &[], &args);
        assert_eq!(r.line_matching(PROMPT, |l| l.starts_with("step ")), want);
        assert_eq!(
            r.line_matching(PROMPT, |l| l.starts_with("worker ")),
            "worker 10001:10001"
        );
        r.signal(15);
        assert_eq!(r.code(PROMPT), 0);
    }
}

/// Listen readiness reads the workers' fds in /proc; as root without
/// CAP_SYS_PTRACE (Docker's default) that works only with the workers'
/// ids as the init's file-system ids.
#[test]
fn listen_readiness_sees_workers_of_another_user() {
    if !require_pid1() {
        return;
    }
    let db = db();
    let mut r = start(
        &db,
        // Docker's root: no CAP_SYS_PTRACE.
        &["setpriv", "--bounding-set", "-sys_ptrace", "--"],
        &[
            "--workers",
            "2",
            "--user",
            "app",
            "--listen",
            "127.0.0.1:0",
            "--",
            DEMO,
            "serve",
        ],
    );
    let port = listening_port(&mut r);
    let ready = r.stderr_line(PROMPT, "ready: 2 worker(s) serving");
    let seen = r.drain_stderr();
    assert!(
        !seen.iter().any(|l| l.contains("/proc does not show")),
        "a worker was not seen listening: {seen:?} {ready}"
    );
    assert!(
        seen.iter().filter(|l| l.contains(" ready (pid")).count() >= 2,
        "{seen:?}"
    );
    assert_eq!(http_get(port, "/").unwrap().0, 200);
    for w in children_of(r.init_pid) {
        assert_eq!(ids(&status(w)["Uid"]), "10001 10001 10001 10001");
    }
    r.signal(15);
    assert_eq!(r.code(PROMPT), 0);
}

#[test]
fn unix_socket_owner_group_and_mode() {
    if !require_pid1() {
        return;
    }
    let db = db();
    let sock = db.path("app.sock");
    let listen = format!("unix:{sock}");
    // umask 000 would make it srwxrwxrwx: the mode given wins.
    let cmd = init_cmd(
        &db,
        &[],
        &[
            "--workers",
            "1",
            "--user",
            "app",
            "--listen",
            &listen,
            "--socket-mode",
            "660",
            "--socket-owner",
            "app:web",
            "--",
            "sleep",
            "1000",
        ],
    );
    let mut r = Running::start(umask_000(cmd), true);
    r.stderr_line(PROMPT, "listening on");
    let m = std::fs::symlink_metadata(&sock).unwrap();
    assert_eq!((m.uid(), m.gid()), (10001, 33));
    assert_eq!(m.mode() & 0o7777, 0o660, "mode {:o}", m.mode());
    r.signal(15);
    assert_eq!(r.code(PROMPT), 0);
    assert!(!std::path::Path::new(&sock).exists(), "removed at exit");

    // Without a mode the umask decides, as before.
    let mut r = Running::start(
        umask_000(init_cmd(
            &db,
            &[],
            &["--workers", "1", "--listen", &listen, "--", "sleep", "1000"],
        )),
        true,
    );
    r.stderr_line(PROMPT, "listening on");
    let m = std::fs::symlink_metadata(&sock).unwrap();
    assert_eq!(m.mode() & 0o777, 0o777);
    r.signal(15);
    assert_eq!(r.code(PROMPT), 0);
}

/// `cmd` run under umask 000 (through sh, which sets it and execs).
fn umask_000(cmd: Command) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", "umask 000 && exec \"$@\"", "sh"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c
}

#[test]
fn bad_users_and_groups_are_configuration_errors() {
    if !require_pid1() {
        return;
    }
    let db = db();
    for (args, want) in [
        (
            vec!["--user", "nobody-here"],
            "invalid value for --user: no user `nobody-here` in /etc/passwd",
        ),
        (
            vec!["--user", "app:nogroup"],
            "invalid value for --user: no group `nogroup` in /etc/group",
        ),
        (
            vec!["--user", "broken"],
            "invalid value for --user: /etc/passwd:5: the line for user `broken` is malformed: 6 fields",
        ),
        (
            vec!["--user", "4294967296"],
            "invalid value for --user: user id `4294967296` does not fit",
        ),
        (
            vec!["--user", "app", "--prestart-user", "ghost"],
            "invalid value for --prestart-user: no user `ghost`",
        ),
        (
            vec!["--socket-owner", ":ghosts", "--listen", "unix:/tmp/x.sock"],
            "invalid value for --socket-owner: no group `ghosts` in /etc/group",
        ),
        (vec!["--socket-mode", "4755"], "invalid value for --socket-mode"),
    ] {
        for dry in [true, false] {
            let mut a = args.clone();
            if dry {
                a.push("--dry-run");
            }
            a.extend(["--", "true"]);
            let (code, out, err) = run_to_end(&db, &[], &a);
            assert_eq!(code, 2, "{a:?}: {out}{err}");
            assert!(err.contains(want), "{a:?}: {err}");
            assert!(out.is_empty(), "{a:?} printed a plan: {out}");
        }
    }
    // The dry run shows the resolved identity, and the line for another
    // user that is broken does no harm.
    let (code, out, err) = run_to_end(&db, &[], &["--dry-run", "--user", "app", "--", "true"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "user        the child runs as app (uid 10001, gid 10001, groups 20001,20002), HOME=/home/app"
        ),
        "{out}"
    );
    let (_, out, _) = run_to_end(
        &db,
        &[],
        &[
            "--dry-run",
            "--json",
            "--user",
            "app",
            "--prestart-user",
            "0",
            "--",
            "true",
        ],
    );
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["user"]["uid"], 10001);
    assert_eq!(plan["user"]["groups"], serde_json::json!([20001, 20002]));
    assert_eq!(plan["prestart_user"]["uid"], 0);
    assert_eq!(plan["prestart_user"]["gid"], 0);
}

/// A root init that lost CAP_SETUID and CAP_SETGID (`--cap-drop ALL`)
/// cannot switch: the start fails with the reason.
#[test]
fn a_root_init_without_setuid_capability_says_so() {
    if !require_pid1() {
        return;
    }
    let db = db();
    let (code, _, err) = run_to_end(
        &db,
        &["setpriv", "--bounding-set", "-setuid,-setgid", "--"],
        &["--user", "app", "--", "true"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("failed to start `true`: failed to set the supplementary groups to [20001,20002] (setgroups): EPERM")
            && err.contains("lacks CAP_SETGID"),
        "{err}"
    );
}

/// The whole init unprivileged (Kubernetes `restricted`, `docker run
/// --user 1000:1000`): workers serve, the shutdown is clean, no process
/// is root; `--user` naming its own uid is fine, another uid is refused.
#[test]
fn an_unprivileged_init_works_and_refuses_other_users() {
    if !require_pid1() {
        return;
    }
    let db = db();
    let unpriv = [
        "setpriv",
        "--reuid=10001",
        "--regid=10001",
        "--clear-groups",
        "--",
    ];
    let mut r = start(
        &db,
        &unpriv,
        &[
            "--workers",
            "2",
            "--user",
            "app",
            "--no-new-privs",
            "--listen",
            "127.0.0.1:0",
            "--",
            DEMO,
            "serve",
        ],
    );
    let port = listening_port(&mut r);
    r.stderr_line(PROMPT, "ready: 2 worker(s) serving");
    assert!(
        !r.drain_stderr()
            .iter()
            .any(|l| l.contains("/proc does not show")),
        "{:?}",
        r.stderr_seen
    );
    assert_eq!(http_get(port, "/").unwrap().0, 200);
    let init = r.init_pid;
    assert_eq!(ids(&status(init)["Uid"]), "10001 10001 10001 10001");
    let workers = children_of(init);
    assert_eq!(workers.len(), 2);
    for w in workers {
        let st = status(w);
        assert_eq!(ids(&st["Uid"]), "10001 10001 10001 10001");
        assert_eq!(st["NoNewPrivs"], "1");
    }
    r.signal(15);
    assert_eq!(r.code(PROMPT), 0);

    let (code, _, err) = run_to_end(&db, &unpriv, &["--user", "0", "--", "true"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("invalid value for --user: the init runs as uid 10001, not as root, so it cannot start children as uid 0"),
        "{err}"
    );
}

/// A port below net.ipv4.ip_unprivileged_port_start (1024 in a new
/// network namespace) as non-root: the message says what to do.
#[test]
fn a_privileged_port_without_root_says_what_to_do() {
    if !require_pid1() {
        return;
    }
    let db = db();
    let (code, _, err) = {
        let inner = init_cmd(
            &db,
            &[
                "setpriv",
                "--reuid=10001",
                "--regid=10001",
                "--clear-groups",
                "--",
            ],
            &["--workers", "1", "--listen", "0.0.0.0:80", "--", "true"],
        );
        let out = Command::new("unshare")
            .arg("--net")
            .arg(inner.get_program())
            .args(inner.get_args())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(code, 1, "{err}");
    for want in [
        "failed to bind 0.0.0.0:80: permission denied: port 80 is below 1024 (net.ipv4.ip_unprivileged_port_start)",
        "the init runs as uid 10001 without CAP_NET_BIND_SERVICE",
        "run the init as root with --user",
        "or listen on a port of 1024 or above",
    ] {
        assert!(err.contains(want), "{want:?} not in {err}");
    }
}

/// The init finds the program as root; the user may not run it: the
/// message says as whom it was tried.
#[test]
fn a_program_the_user_cannot_run_is_named_with_the_user() {
    if !is_root() {
        return skip(Need::Pid1, "needs root to switch users");
    }
    let dir = TempDir::new("noexec");
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let app = dir.path("app");
    std::fs::write(&app, "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&app, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (code, _, err) = run(&["--user", "4242:4242", "--", &app], false);
    assert_eq!(code, 126, "{err}");
    assert!(
        err.contains("not executable (Permission denied (os error 13)) as uid 4242 gid 4242"),
        "{err}"
    );
    // Root itself runs it.
    assert_eq!(run(&["--", &app], false).0, 0);
}
