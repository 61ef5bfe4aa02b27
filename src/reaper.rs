//! The only caller of `waitpid` (through `process::sys::wait_any`).
//! SIGCHLD coalesces (ten children exiting at once may raise it once), so
//! every SIGCHLD drains every exited child with `waitpid(-1, WNOHANG)`
//! until none is left, and hands each status to the supervisor, which
//! decides whose it was: a worker's, a pre-start step's, or an orphan's
//! (logged at most, never mistaken for a worker).
//!
//! Statuses are decoded here, completely: a child killed by a realtime
//! signal (34..64) is a `Signaled` like any other. (A library that cannot
//! name those signals once turned such a status into an error after the
//! kernel had reaped the child: the init lost the exit and waited forever.)

use std::io;

use nix::unistd::Pid;

use crate::process::sys;
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
    /// Decodes a raw wait status (`WIFEXITED`, `WIFSIGNALED`,
    /// `WIFSTOPPED`), for every signal number the kernel has.
    pub fn from_raw(raw: i32) -> Status {
        if libc::WIFEXITED(raw) {
            Status::Exited(libc::WEXITSTATUS(raw))
        } else if libc::WIFSIGNALED(raw) {
            Status::Signaled(signal_of(libc::WTERMSIG(raw)))
        } else if libc::WIFSTOPPED(raw) {
            Status::Stopped(signal_of(libc::WSTOPSIG(raw)))
        } else {
            // Not reachable without WCONTINUED; as an exit it is at least
            // never lost.
            Status::Exited(raw & 0xff)
        }
    }

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

/// The kernel never reports a number outside 1..=SIGRTMAX; should it, the
/// number is still kept (as the closest valid signal) rather than dropped.
fn signal_of(n: i32) -> Signal {
    Signal::from_raw(n).unwrap_or(Signal::KILL)
}

/// Collects every child that has changed state. An unexpected error
/// stops the drain for this round only; the next SIGCHLD drains again.
pub fn reap() -> Vec<(Pid, Status)> {
    let mut out = Vec::new();
    loop {
        match sys::wait_any() {
            Ok(Some(w)) => out.push((Pid::from_raw(w.pid), Status::from_raw(w.status))),
            Ok(None) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => break,
            Err(e) => {
                crate::log::warn(&format!("failed to collect exited children: {e}"));
                break;
            }
        }
    }
    out
}

/// True while the init has any child at all (exited or not), without
/// collecting anything.
pub fn has_children() -> bool {
    sys::has_children()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: i32) -> i32 {
        (code & 0xff) << 8
    }
    fn killed(sig: i32) -> i32 {
        sig & 0x7f
    }
    fn stopped(sig: i32) -> i32 {
        (sig << 8) | 0x7f
    }

    #[test]
    fn every_signal_decodes() {
        assert_eq!(Status::from_raw(exited(0)), Status::Exited(0));
        assert_eq!(Status::from_raw(exited(255)), Status::Exited(255));
        for n in 1..=libc::SIGRTMAX() {
            let sig = Signal::from_raw(n).unwrap();
            assert_eq!(Status::from_raw(killed(n)), Status::Signaled(sig), "{n}");
            assert_eq!(Status::from_raw(killed(n) | 0x80).code(), 128 + n);
        }
        let rt = Signal::from_raw(libc::SIGRTMIN() + 6).unwrap();
        assert_eq!(Status::from_raw(killed(rt.raw())).code(), 128 + rt.raw());
        assert_eq!(
            Status::from_raw(stopped(libc::SIGTSTP)),
            Status::Stopped(Signal::TSTP)
        );
    }
}
