//! The signal edge: every catchable signal is blocked and read from one
//! signalfd, so the init has no signal handler at all (nothing to race,
//! nothing that wipes a child's dispositions, no EINTR) and, idle, it
//! sleeps in epoll with no wake-up. Raw numbers become `Received` values
//! here and nowhere else.
//!
//! The fault signals (SEGV, BUS, ...) stay unblocked: they concern the init
//! itself. Children unblock everything between fork and exec
//! (`process::sys`).
//!
//! A signal the init caused itself is dropped here: a write to a closed
//! stderr pipe raises SIGPIPE "sent" by the writer, and forwarding it
//! would kill every healthy worker. The init never signals itself on
//! purpose, so the sender's pid is enough to tell.

use std::io;

use nix::sys::signal::{SigSet, SigmaskHow};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use tokio::io::unix::AsyncFd;

use crate::vocab::Signal;

/// One signal as read from the signalfd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    pub signal: Signal,
    /// The sender's pid (0 for the kernel, e.g. a terminal's Ctrl-C).
    pub from: i32,
}

pub struct Signals {
    fd: AsyncFd<SignalFd>,
    own_pid: i32,
}

fn catchable_set() -> SigSet {
    crate::process::sys::sigset(Signal::catchable().map(Signal::raw))
}

impl Signals {
    /// Blocks every catchable signal and opens the signalfd. Must run
    /// before any thread or child is started.
    pub fn install() -> io::Result<Signals> {
        let set = catchable_set();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
        let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(Signals {
            fd: crate::process::sys::async_fd(sfd)?,
            own_pid: crate::process::sys::own_pid(),
        })
    }

    /// The next signal; waits without waking up until one arrives.
    pub async fn next(&mut self) -> io::Result<Received> {
        loop {
            let mut guard = self.fd.readable_mut().await?;
            match guard.get_inner_mut().read_signal() {
                Ok(Some(info)) => {
                    let from = info.ssi_pid as i32;
                    if from == self.own_pid {
                        continue;
                    }
                    if let Some(signal) = Signal::from_raw(info.ssi_signo as i32) {
                        return Ok(Received { signal, from });
                    }
                }
                Ok(None) => guard.clear_ready(),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}
