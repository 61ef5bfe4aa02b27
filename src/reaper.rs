//! The only caller of `waitpid`. SIGCHLD coalesces (ten children exiting
//! at once may raise it once), so every SIGCHLD drains every exited child
//! with `waitpid(-1, WNOHANG)` until none is left, and hands each status to
//! the supervisor, which decides whose it was: a worker's, a pre-start
//! step's, or an orphan's (logged at most, never mistaken for a worker).

use nix::errno::Errno;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::vocab::Signal;

/// How a child ended, or that it stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Exited(i32),
    Signaled(Signal),
    /// Stopped by a signal (WUNTRACED): Ctrl-Z on a terminal. A container
    /// has no shell to resume it, so the supervisor does.
    Stopped(Signal),
}

impl Status {
    /// The exit code a shell would report: the code, or 128+N.
    pub fn code(self) -> i32 {
        match self {
            Status::Exited(c) => c,
            Status::Signaled(s) | Status::Stopped(s) => 128 + s.raw(),
        }
    }

    pub fn describe(self) -> String {
        match self {
            Status::Exited(c) => format!("exited with code {c}"),
            Status::Signaled(s) => format!("was killed by {s}"),
            Status::Stopped(s) => format!("was stopped by {s}"),
        }
    }
}

/// Collects every child that has changed state.
pub fn reap() -> Vec<(Pid, Status)> {
    let mut out = Vec::new();
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED)) {
            Ok(WaitStatus::Exited(pid, code)) => out.push((pid, Status::Exited(code))),
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                if let Some(s) = Signal::from_raw(sig as i32) {
                    out.push((pid, Status::Signaled(s)));
                }
            }
            Ok(WaitStatus::Stopped(pid, sig)) => {
                if let Some(s) = Signal::from_raw(sig as i32) {
                    out.push((pid, Status::Stopped(s)));
                }
            }
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    out
}

/// True while the init has any child at all (exited or not), without
/// collecting anything.
pub fn has_children() -> bool {
    !matches!(
        waitid(
            Id::All,
            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT
        ),
        Err(Errno::ECHILD)
    )
}
