//! Starting children: the program resolved on PATH, the environment built
//! (worker slot, socket-activation variables), then `sys` forks and execs.
//!
//! This module owns the socket-activation protocol (`LISTEN_FDS`,
//! `LISTEN_PID`, `LISTEN_FDNAMES`, sockets at fds 3, 4, ...). Children
//! start with default signal dispositions, an empty signal mask and no fd
//! of the init except stdio and the `--listen` sockets. Nobody here waits
//! for a child: `reaper` is the only caller of `waitpid`, also for a child
//! whose exec failed.

pub mod sys;

use std::ffi::{OsStr, OsString};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;

use nix::unistd::Pid;
use thiserror::Error;

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
    #[error("failed to start `{program}`: {reason}")]
    Other { program: String, reason: String },
}

impl SpawnError {
    pub fn exit_code(&self) -> i32 {
        match self {
            SpawnError::NotFound { .. } => 127,
            SpawnError::NotExecutable { .. } => 126,
            SpawnError::Fork { .. } | SpawnError::Other { .. } => 1,
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

/// Starts `spec`.
pub fn spawn(spec: &Spec) -> Result<Pid, SpawnError> {
    let program = spec
        .argv
        .first()
        .map(OsString::as_os_str)
        .unwrap_or_default();
    let shown = program.to_string_lossy().into_owned();
    let fds: Vec<RawFd> = spec.fds.iter().map(|(fd, _)| *fd).collect();
    let mut pid_vars = spec.pid_vars.clone();
    if !fds.is_empty() {
        pid_vars.push("LISTEN_PID");
    }
    // The name of an entry `NAME=VALUE`.
    fn name(e: &[u8]) -> &[u8] {
        e.split(|&b| b == b'=').next().unwrap_or(e)
    }
    let replaced = |n: &[u8]| {
        SOCKET_VARS.iter().any(|v| v.as_bytes() == n)
            || pid_vars.iter().any(|v| v.as_bytes() == n)
            || spec.env.iter().any(|(k, _)| k.as_bytes() == n)
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
    let mut env: Vec<Vec<u8>> = spec
        .env
        .iter()
        .map(|(k, v)| entry(k.as_bytes(), v.as_bytes()))
        .collect();
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
    let mut prepared = sys::Prepared::new(
        path.as_os_str(),
        &argv,
        sys::ChildEnv {
            inherited: &inherited,
            added: env,
        },
        &fds,
        &pid_vars,
        spec.new_pgroup,
        spec.foreground,
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
        sys::SpawnFailure::Exec(_, e) => exec_error(&shown, Some(&path), e),
    })
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
