//! Starting children: the program resolved on PATH, the environment built
//! (worker slot, socket-activation variables), then `sys` forks and execs.
//!
//! This module owns the socket-activation protocol (`LISTEN_FDS`,
//! `LISTEN_PID`, `LISTEN_FDNAMES`, sockets at fds 3, 4, ...). Children
//! start with default signal dispositions, an empty signal mask and no fd
//! of the init except stdio and the `--listen` sockets; with a user, as
//! that user with exactly its groups and its `HOME` and `USER` (as su-exec
//! sets them), and with `no_new_privs` when asked. Nobody here waits
//! for a child: `reaper` is the only caller of `waitpid`, also for a child
//! whose exec failed.

pub mod sys;

use std::ffi::{OsStr, OsString};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;

use nix::unistd::Pid;
use thiserror::Error;

use crate::vocab::Identity;

/// The first fd a child receives a socket at (systemd's
/// SD_LISTEN_FDS_START).
pub const FIRST_FD: RawFd = 3;

/// What to start.
#[derive(Clone, Debug, Default)]
pub struct Spec {
    pub argv: Vec<OsString>,
    /// Variables added to (or replacing those of) the init's environment.
    pub env: Vec<(OsString, OsString)>,
    /// Sockets to pass as fds 3, 4, ... with LISTEN_FDS/LISTEN_PID/
    /// LISTEN_FDNAMES.
    pub fds: Vec<(RawFd, String)>,
    /// Own process group, so signals to the group reach its descendants
    /// and a terminal's Ctrl-C to the init's group does not.
    pub new_pgroup: bool,
    /// Become the terminal's foreground process group (plain mode on a tty).
    pub foreground: bool,
    /// Variables set to the child's own pid (`WATCHDOG_PID`); `LISTEN_PID`
    /// is added by itself when `fds` is not empty.
    pub pid_vars: Vec<&'static str>,
    /// Who the child runs as; `None` (or an identity that does not
    /// switch): the init's own credentials.
    pub user: Option<Identity>,
    /// PR_SET_NO_NEW_PRIVS in the child.
    pub no_new_privs: bool,
    /// fds (at 3 or above) to become the child's stdout and stderr;
    /// `None`: the init's own.
    pub stdio: Option<(RawFd, RawFd)>,
}

/// Why a child did not start. `exit_code` maps each to the code the init
/// reports when it gives up: 127 not found, 126 not executable, 1 else.
#[derive(Debug, Error)]
pub enum SpawnError {
    #[error("failed to run `{program}`: {reason}")]
    NotFound { program: String, reason: String },
    #[error("failed to run `{program}`: {reason}")]
    NotExecutable { program: String, reason: String },
    /// No process could be made (EAGAIN under a pids limit, ENOMEM): a
    /// resource shortage of the moment, not a fault of the command.
    #[error("failed to fork for `{program}`: {}", errno_text(source))]
    Fork {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// The child could not take its identity or no_new_privs before the
    /// exec.
    #[error(
        "failed to start `{program}`: failed to {what}: {}{hint}",
        errno_text(source)
    )]
    Setup {
        program: String,
        what: String,
        hint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to start `{program}`: {reason}")]
    Other { program: String, reason: String },
}

impl SpawnError {
    pub fn exit_code(&self) -> i32 {
        match self {
            SpawnError::NotFound { .. } => 127,
            SpawnError::NotExecutable { .. } => 126,
            SpawnError::Fork { .. } | SpawnError::Setup { .. } | SpawnError::Other { .. } => 1,
        }
    }
}

/// `EAGAIN (Resource temporarily unavailable)`: the errno's name, which
/// is what one searches for, and its text.
fn errno_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let errno = nix::errno::Errno::from_raw(n);
            format!("{errno:?} ({})", errno.desc())
        }
        None => e.to_string(),
    }
}

/// Variables the init must not pass on unchanged: they describe the init's
/// own inherited sockets, not the child's.
const SOCKET_VARS: [&str; 4] = [
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "LISTEN_FDS_START",
];

/// Runs `f` with `ids` (uid, gid) as the init's file-system ids, then
/// puts its own back: a root init reading /proc of workers that switched
/// to another uid needs to be that uid there (ptrace's access check uses
/// the file-system ids), unless it has CAP_SYS_PTRACE. Without
/// CAP_SETUID the switch does nothing and /proc refuses as before.
/// `setfsuid` is per thread; the init has one.
pub fn with_fs_ids<T>(ids: Option<(u32, u32)>, f: impl FnOnce() -> T) -> T {
    use nix::unistd::{setfsgid, setfsuid, Gid, Uid};
    let Some((uid, gid)) = ids else {
        return f();
    };
    let old_gid = setfsgid(Gid::from_raw(gid));
    let old_uid = setfsuid(Uid::from_raw(uid));
    let result = f();
    setfsuid(old_uid);
    setfsgid(old_gid);
    result
}

/// Starts `spec`.
pub fn spawn(spec: &Spec) -> Result<Pid, SpawnError> {
    let program = spec
        .argv
        .first()
        .map(OsString::as_os_str)
        .unwrap_or_default();
    let shown = program.to_string_lossy().into_owned();
    let switch = spec.user.as_ref().filter(|u| u.switch);
    let fds: Vec<RawFd> = spec.fds.iter().map(|(fd, _)| *fd).collect();
    let mut pid_vars = spec.pid_vars.clone();
    if !fds.is_empty() {
        pid_vars.push("LISTEN_PID");
    }
    // The name of an entry `NAME=VALUE`.
    fn name(e: &[u8]) -> &[u8] {
        e.split(|&b| b == b'=').next().unwrap_or(e)
    }
    // HOME and USER describe the init's user (root): a child that
    // switches gets its own, and no USER when its uid has no name.
    let mut own: Vec<(&[u8], &[u8])> = Vec::new();
    let mut unset: Vec<&[u8]> = Vec::new();
    if let Some(u) = switch {
        own.push((b"HOME", u.home.as_bytes()));
        match &u.name {
            Some(name) => own.push((b"USER", name.as_bytes())),
            None => unset.push(b"USER"),
        }
    }
    own.retain(|(k, _)| !spec.env.iter().any(|(ek, _)| ek.as_bytes() == *k));
    let replaced = |n: &[u8]| {
        SOCKET_VARS.iter().any(|v| v.as_bytes() == n)
            || pid_vars.iter().any(|v| v.as_bytes() == n)
            || spec.env.iter().any(|(k, _)| k.as_bytes() == n)
            || own.iter().any(|(k, _)| *k == n)
            || unset.contains(&n)
    };
    let entry = |k: &[u8], v: &[u8]| {
        let mut e = Vec::with_capacity(k.len() + v.len() + 2);
        e.extend_from_slice(k);
        e.push(b'=');
        e.extend_from_slice(v);
        e
    };
    let inherited: Vec<&'static std::ffi::CStr> = sys::environ()
        .into_iter()
        .filter(|e| !replaced(name(e.to_bytes())))
        .collect();
    let mut env: Vec<Vec<u8>> = own.iter().map(|(k, v)| entry(k, v)).collect();
    env.extend(
        spec.env
            .iter()
            .map(|(k, v)| entry(k.as_bytes(), v.as_bytes())),
    );
    if !spec.fds.is_empty() {
        env.push(entry(b"LISTEN_FDS", spec.fds.len().to_string().as_bytes()));
        let names: Vec<&str> = spec.fds.iter().map(|(_, n)| n.as_str()).collect();
        env.push(entry(b"LISTEN_FDNAMES", names.join(":").as_bytes()));
    }
    let path_var = env
        .iter()
        .map(Vec::as_slice)
        .chain(inherited.iter().map(|e| e.to_bytes()))
        .find(|e| name(e) == b"PATH")
        .map(|e| OsStr::from_bytes(&e[5..]).to_os_string());
    let path =
        sys::find_program(program, path_var.as_deref()).map_err(|e| exec_error(&shown, None, e))?;
    let argv: Vec<&OsStr> = spec.argv.iter().map(OsString::as_os_str).collect();
    let creds = switch.map(|u| sys::Creds {
        uid: u.uid,
        gid: u.gid,
        groups: u.groups.clone(),
    });
    let setup = sys::Setup {
        new_pgroup: spec.new_pgroup,
        foreground: spec.foreground,
        creds: creds.clone(),
        no_new_privs: spec.no_new_privs,
        stdio: spec.stdio,
    };
    let mut prepared = sys::Prepared::new(
        path.as_os_str(),
        &argv,
        sys::ChildEnv {
            inherited: &inherited,
            added: env,
        },
        &fds,
        &pid_vars,
        setup,
    )
    .map_err(|e| SpawnError::Other {
        program: shown.clone(),
        reason: e.to_string(),
    })?;
    prepared.spawn().map_err(|e| match e {
        sys::SpawnFailure::Fork(source) => SpawnError::Fork {
            program: shown.clone(),
            source,
        },
        sys::SpawnFailure::Exec(_, e) => {
            let denied = matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM));
            match (exec_error(&shown, Some(&path), e), &creds) {
                // The init found the file as root; the user may not run it.
                (SpawnError::NotExecutable { program, reason }, Some(c)) if denied => {
                    SpawnError::NotExecutable {
                        program,
                        reason: format!("{reason} as uid {} gid {}", c.uid, c.gid),
                    }
                }
                (e, _) => e,
            }
        }
        sys::SpawnFailure::Setup(_, step, e) => setup_error(&shown, step, creds.as_ref(), e),
    })
}

/// What the child was doing when its set-up failed, and what to do about
/// it.
fn setup_error(
    program: &str,
    step: sys::ChildStep,
    creds: Option<&sys::Creds>,
    source: std::io::Error,
) -> SpawnError {
    use sys::ChildStep;
    let (what, cap) = match (step, creds) {
        (ChildStep::Groups, Some(c)) => (
            format!(
                "set the supplementary groups to [{}] (setgroups)",
                c.groups
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            "CAP_SETGID",
        ),
        (ChildStep::Gid, Some(c)) => (format!("switch to gid {} (setresgid)", c.gid), "CAP_SETGID"),
        (ChildStep::Uid, Some(c)) => (format!("switch to uid {} (setresuid)", c.uid), "CAP_SETUID"),
        (ChildStep::NoNewPrivs, _) => ("set no_new_privs (prctl PR_SET_NO_NEW_PRIVS)".into(), ""),
        _ => ("set up the child".into(), ""),
    };
    let hint = match source.raw_os_error() {
        Some(libc::EPERM) if !cap.is_empty() => {
            let uid = nix::unistd::geteuid().as_raw();
            if uid == 0 {
                format!(
                    "; the init is root but lacks {cap} (was the container started with --cap-drop ALL? keep SETUID and SETGID, or run the whole container as the user and leave out --user)"
                )
            } else {
                format!(
                    "; the init runs as uid {uid}: only root can switch users (run the container as the user and leave out --user)"
                )
            }
        }
        _ => String::new(),
    };
    SpawnError::Setup {
        program: program.to_string(),
        what,
        hint,
        source,
    }
}

fn exec_error(program: &str, path: Option<&std::path::Path>, e: std::io::Error) -> SpawnError {
    let program = program.to_string();
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => {
            // execve says ENOENT also when the file exists but the
            // interpreter its `#!` line names does not.
            if let Some(interp) = path.and_then(missing_interpreter) {
                return SpawnError::NotFound {
                    program,
                    reason: format!("its #! interpreter `{interp}` was not found"),
                };
            }
            SpawnError::NotFound {
                reason: if program.contains('/') {
                    "no such file".into()
                } else {
                    "not found in PATH".into()
                },
                program,
            }
        }
        Some(libc::EACCES) | Some(libc::ENOEXEC) | Some(libc::EISDIR) | Some(libc::EPERM) => {
            SpawnError::NotExecutable {
                program,
                reason: format!("not executable ({e})"),
            }
        }
        _ => SpawnError::Other {
            program,
            reason: e.to_string(),
        },
    }
}

/// The interpreter of a script whose `#!` line names a file that does not
/// exist; `None` when the file is no script or its interpreter exists.
fn missing_interpreter(path: &std::path::Path) -> Option<String> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = line.split(|&b| b == b'\n').next()?;
    let interp = line
        .split(|b| b.is_ascii_whitespace())
        .find(|w| !w.is_empty())?;
    let interp = OsStr::from_bytes(interp);
    (!std::path::Path::new(interp).exists()).then(|| interp.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_interpreter_is_named() {
        let dir = std::env::temp_dir().join(format!("cinit-interp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("bad");
        std::fs::write(&script, "#!/nonexistent/interp -x\necho hi\n").unwrap();
        assert_eq!(
            missing_interpreter(&script).as_deref(),
            Some("/nonexistent/interp")
        );
        std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
        assert_eq!(missing_interpreter(&script), None);
        std::fs::write(&script, "\x7fELF").unwrap();
        assert_eq!(missing_interpreter(&script), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
