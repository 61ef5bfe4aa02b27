//! `--log-prefix`: the children's stdout and stderr through the init.
//!
//! Each worker gets two pipes of its own (its fds 1 and 2); the init
//! reads them as they become readable and passes every whole line, with
//! the worker's `NAME.SLOT` prefix (`output::Lines`), to the log's stdout
//! or stderr queue (`log::relay`). A queue that is full is not fed: the
//! pipes of that stream are not read until it drains, so the children
//! wait on their writes instead of the init dropping their lines or
//! growing without bound. A pipe is read until every process holding it
//! has closed it (a grandchild may outlive its worker); what is left
//! without a newline then comes out as a last line.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::task::{Context, Poll};

use tokio::io::unix::AsyncFd;

use crate::log::{self, Stream};
use crate::output::Lines;
use crate::process::sys;

/// What one read takes from a pipe at most.
const READ_BYTES: usize = 64 * 1024;

struct Pipe {
    fd: AsyncFd<OwnedFd>,
    prefix: String,
    stream: Stream,
    lines: Lines,
}

#[derive(Default)]
pub struct Relay {
    pipes: Vec<Pipe>,
    buf: Vec<u8>,
    /// Pipes could not be made once: said once.
    warned: bool,
}

/// The ends a child gets as its stdout and stderr; the init closes its
/// copies once the child has started.
pub struct ChildEnds {
    pub out: OwnedFd,
    pub err: OwnedFd,
}

impl ChildEnds {
    pub fn raw(&self) -> (RawFd, RawFd) {
        (self.out.as_raw_fd(), self.err.as_raw_fd())
    }
}

impl Relay {
    /// Two pipes for a child about to start as `prefix`; `None` (the child
    /// keeps the init's stdout and stderr) when they cannot be made, as
    /// under a tight `ulimit -n`.
    pub fn open(&mut self, prefix: &str) -> Option<ChildEnds> {
        match self.pipes_for(prefix) {
            Ok(ends) => Some(ends),
            Err(e) => {
                if !std::mem::replace(&mut self.warned, true) {
                    log::warn(&format!(
                        "failed to make the pipes for --log-prefix ({e}): {prefix} and the workers after it that hit the same error write to the init's stdout and stderr unprefixed"
                    ));
                }
                None
            }
        }
    }

    fn pipes_for(&mut self, prefix: &str) -> std::io::Result<ChildEnds> {
        let (out_r, out_w) = sys::relay_pipe()?;
        let (err_r, err_w) = sys::relay_pipe()?;
        for (fd, stream) in [(out_r, Stream::Out), (err_r, Stream::Err)] {
            self.pipes.push(Pipe {
                fd: sys::async_fd(fd)?,
                prefix: prefix.to_string(),
                stream,
                lines: Lines::default(),
            });
        }
        Ok(ChildEnds {
            out: out_w,
            err: err_w,
        })
    }

    /// Reads what the pipes hold (one read per pipe), passing the whole
    /// lines on; `Ready` when anything was read or a pipe closed.
    pub fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Relay { pipes, buf, .. } = self;
        if buf.is_empty() && !pipes.is_empty() {
            buf.resize(READ_BYTES, 0);
        }
        let mut progressed = false;
        let mut i = 0;
        while i < pipes.len() {
            let p = &mut pipes[i];
            if !log::has_room(p.stream) {
                i += 1;
                continue;
            }
            // Until the pipe has nothing more or was read once: a cleared
            // readiness must be polled again, which registers the waker
            // for the pipe's next bytes.
            let mut closed = false;
            while let Poll::Ready(ready) = p.fd.poll_read_ready(cx) {
                let Ok(mut guard) = ready else {
                    closed = true;
                    break;
                };
                match sys::read_fd(p.fd.get_ref().as_raw_fd(), buf) {
                    Ok(0) => closed = true,
                    Ok(n) => {
                        let lines = p.lines.push(&p.prefix, &buf[..n]);
                        if !lines.is_empty() {
                            log::relay(p.stream, lines);
                        }
                        progressed = true;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        guard.clear_ready();
                        continue;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => closed = true,
                }
                break;
            }
            if closed {
                let mut p = pipes.swap_remove(i);
                let rest = p.lines.finish(&p.prefix);
                if !rest.is_empty() {
                    log::relay(p.stream, rest);
                }
                progressed = true;
                continue;
            }
            i += 1;
        }
        if pipes.is_empty() {
            *buf = Vec::new();
        }
        if progressed {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Before the init exits: what the pipes hold now, and the lines left
    /// without a newline.
    pub fn finish(&mut self) {
        let mut buf = vec![0u8; READ_BYTES];
        for mut p in self.pipes.drain(..) {
            let fd = p.fd.get_ref().as_raw_fd();
            while let Ok(n) = sys::read_fd(fd, &mut buf) {
                if n == 0 {
                    break;
                }
                let lines = p.lines.push(&p.prefix, &buf[..n]);
                log::relay(p.stream, lines);
            }
            let rest = p.lines.finish(&p.prefix);
            if !rest.is_empty() {
                log::relay(p.stream, rest);
            }
        }
    }
}
