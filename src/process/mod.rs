//! Starting children: the program resolved on PATH, the environment built
//! (worker slot, socket-activation variables), then `sys` forks and execs.
//!
//! Children start with default signal dispositions, an empty signal mask
//! and no fd of the init except stdio and the `--listen` sockets. Nobody
//! here waits for a child: `reaper` is the only caller of `waitpid`.

pub mod sys;

use std::ffi::{OsStr, OsString};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;

use nix::unistd::Pid;

use crate::error::Error;

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
}

/// Variables the init must not pass on unchanged: they describe the init's
/// own inherited sockets, not the child's.
const SOCKET_VARS: [&str; 4] = [
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "LISTEN_FDS_START",
];

/// Starts `spec`; errors map to exit codes 127 (not found) and 126 (not
/// executable).
pub fn spawn(spec: &Spec) -> Result<Pid, Error> {
    let program = spec
        .argv
        .first()
        .map(OsString::as_os_str)
        .unwrap_or_default();
    let shown = program.to_string_lossy().into_owned();
    let mut env: Vec<(Vec<u8>, Vec<u8>)> = std::env::vars_os()
        .filter(|(k, _)| {
            let k = k.to_string_lossy();
            !SOCKET_VARS.contains(&k.as_ref())
                && !spec
                    .env
                    .iter()
                    .any(|(ek, _)| ek.as_os_str() == k.as_ref() as &str)
        })
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    env.extend(
        spec.env
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())),
    );
    if !spec.fds.is_empty() {
        env.push((
            b"LISTEN_FDS".to_vec(),
            spec.fds.len().to_string().into_bytes(),
        ));
        let names: Vec<&str> = spec.fds.iter().map(|(_, n)| n.as_str()).collect();
        env.push((b"LISTEN_FDNAMES".to_vec(), names.join(":").into_bytes()));
    }
    let path_var = env
        .iter()
        .find(|(k, _)| k == b"PATH")
        .map(|(_, v)| OsStr::from_bytes(v).to_os_string());
    let path =
        sys::find_program(program, path_var.as_deref()).map_err(|e| exec_error(&shown, e))?;
    let argv: Vec<&OsStr> = spec.argv.iter().map(OsString::as_os_str).collect();
    let fds: Vec<RawFd> = spec.fds.iter().map(|(fd, _)| *fd).collect();
    let mut prepared = sys::Prepared::new(
        path.as_os_str(),
        &argv,
        &env,
        &fds,
        spec.new_pgroup,
        spec.foreground,
    )
    .map_err(|e| Error::Failed(format!("failed to start `{shown}`: {e}")))?;
    prepared.spawn().map_err(|e| exec_error(&shown, e))
}

fn exec_error(program: &str, e: std::io::Error) -> Error {
    let program = program.to_string();
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => Error::NotFound {
            reason: if program.contains('/') {
                "no such file".into()
            } else {
                "not found in PATH".into()
            },
            program,
        },
        Some(libc::EACCES) | Some(libc::ENOEXEC) | Some(libc::EISDIR) | Some(libc::EPERM) => {
            Error::NotExecutable {
                program,
                reason: format!("not executable ({e})"),
            }
        }
        _ => Error::Failed(format!("failed to start `{program}`: {e}")),
    }
}
