//! The init's own log lines on stderr: one line per event, as text
//! (`cinit: worker 1 (pid 42) exited with code 3`) or as JSON lines with
//! the event's fields. The supervisor's typed reports are put into words
//! elsewhere (`supervisor::report`); this module only writes lines.
//!
//! Invariants:
//! * A line is written with one `write` of at most `PIPE_BUF` bytes, so it
//!   never interleaves mid-line with the children's output on a pipe.
//! * A write never blocks the init. Its stderr is shared with every child,
//!   so setting `O_NONBLOCK` on fd 2 would reach them too (Python's
//!   `print` then fails with BlockingIOError): a pipe, FIFO or terminal is
//!   reopened through `/proc/self/fd/2`, which gives the init a file
//!   description of its own; a socket is written with `MSG_DONTWAIT`;
//!   failing both, the init polls before it writes.
//! * A line that cannot be written now waits in a bounded queue, flushed
//!   when the event loop sees the fd writable (`backlog_fds`, `drain`);
//!   lines that do not fit are dropped and counted, and the count is
//!   logged once the queue has drained. A reader that went away (EPIPE)
//!   ends the logging, not the init.
//! * With `--log-prefix` the children's lines come through here too
//!   (`relay`), on stdout or stderr as the child wrote them: stderr's
//!   queue is shared with the init's own lines, so the two never mix
//!   mid-line. A relayed line is never dropped: while a queue is full
//!   (`has_room`) the event loop stops reading the children's pipes, and
//!   a child that writes faster than the container's log is read waits,
//!   as it would writing there itself.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::vocab::LogFormat;

static FORMAT: OnceLock<LogFormat> = OnceLock::new();
static QUIET: OnceLock<bool> = OnceLock::new();
/// stdout's and stderr's.
static SINKS: Mutex<[Option<Sink>; 2]> = Mutex::new([None, None]);

/// Where a relayed line goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Out,
    Err,
}

impl Stream {
    fn fd(self) -> RawFd {
        match self {
            Stream::Out => 1,
            Stream::Err => 2,
        }
    }
}

/// Longest line written: the size a pipe writes atomically.
const MAX_LINE: usize = 4096;
/// Lines waiting for a slow reader, at most this many bytes.
const QUEUE_BYTES: usize = 64 * 1024;

/// How serious a line is. `Notice` sits between info and warning: the
/// pre-start progress lines, which plain mode shows although it hides
/// info (a container waiting for its database must say so).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Info,
    Notice,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Notice => "notice",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

pub fn init(format: LogFormat) {
    let _ = FORMAT.set(format);
}

/// Plain mode is tini's territory: a child that starts and exits is not
/// news, so only notices, warnings and errors are printed there.
pub fn set_quiet(quiet: bool) {
    let _ = QUIET.set(quiet);
}

fn format() -> LogFormat {
    *FORMAT.get().unwrap_or(&LogFormat::Text)
}

/// Whether a line of `level` is written at all.
pub fn enabled(level: Level) -> bool {
    !(level == Level::Info && *QUIET.get().unwrap_or(&false))
}

/// Logs `event` with a human message and machine fields.
pub fn event(level: Level, event: &str, message: &str, fields: &[(&str, Value)]) {
    if !enabled(level) {
        return;
    }
    let line = render(format(), level, event, message, fields);
    with_sink(Stream::Err, |s| s.push(line.into_bytes()));
}

/// A child's whole lines (`--log-prefix`), never dropped.
pub fn relay(stream: Stream, bytes: Vec<u8>) {
    let broke = with_sink(stream, |s| {
        if s.broken {
            return false;
        }
        s.flush();
        if s.broken {
            return true;
        }
        if s.queue.is_empty() {
            match s.write(&bytes) {
                Wrote::All => {}
                Wrote::Broken => return true,
                Wrote::Part(n) => s.enqueue(bytes[n..].to_vec(), true),
                Wrote::Later => s.enqueue(bytes, true),
            }
        } else {
            s.enqueue(bytes, true);
        }
        s.broken
    });
    if broke {
        said_broken(stream);
    }
}

/// Says once, on stderr, that the children's stdout lines go nowhere
/// from now on (a stderr that broke cannot say it).
fn said_broken(stream: Stream) {
    if stream == Stream::Out {
        event(
            Level::Warn,
            "stdout_closed",
            "stdout is closed (nobody reads it): the children's stdout lines are dropped from now on",
            &[],
        );
    }
}

/// Whether `stream`'s queue takes more relayed lines now; a broken one
/// takes everything (and writes nothing), so children never wait on a
/// reader that is gone.
pub fn has_room(stream: Stream) -> bool {
    with_sink(stream, |s| s.broken || s.queued < QUEUE_BYTES)
}

fn render(
    format: LogFormat,
    level: Level,
    event: &str,
    message: &str,
    fields: &[(&str, Value)],
) -> String {
    let mut line = match format {
        LogFormat::Text => format!("cinit: {message}"),
        LogFormat::Json => {
            let mut m = Map::new();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            m.insert("ts".into(), Value::from((now * 1000.0).round() / 1000.0));
            m.insert("level".into(), level.as_str().into());
            m.insert("event".into(), event.into());
            for (k, v) in fields {
                m.insert((*k).into(), v.clone());
            }
            m.insert("msg".into(), message.into());
            Value::Object(m).to_string()
        }
    };
    if line.len() >= MAX_LINE {
        let mut cut = MAX_LINE - 4;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push_str("...");
    }
    line.push('\n');
    line
}

pub fn info(message: &str) {
    event(Level::Info, "info", message, &[]);
}

pub fn warn(message: &str) {
    event(Level::Warn, "warning", message, &[]);
}

pub fn error(message: &str) {
    event(Level::Error, "error", message, &[]);
}

/// The fd to wait on for writability while `stream`'s lines are queued;
/// `None` when nothing waits (the event loop then does not watch it).
pub fn backlog_fd(stream: Stream) -> Option<RawFd> {
    with_sink(stream, |s| {
        (!s.queue.is_empty() && !s.broken).then(|| s.fd())
    })
}

/// Writes what `stream`'s queue holds, as far as the reader takes it;
/// called by the event loop when the fd is writable. Returns whether
/// lines remain.
pub fn drain(stream: Stream) -> bool {
    let (left, broke) = with_sink(stream, |s| {
        let was = s.broken;
        s.flush();
        (!s.queue.is_empty() && !s.broken, s.broken && !was)
    });
    if broke {
        said_broken(stream);
    }
    left
}

/// Before the init exits: a last chance, bounded by `within`, for the
/// queued lines.
pub fn flush_before_exit(within: Duration) {
    let end = Instant::now() + within;
    for stream in [Stream::Out, Stream::Err] {
        loop {
            if !drain(stream) {
                break;
            }
            let Some(fd) = backlog_fd(stream) else { break };
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() || !crate::process::sys::poll_writable(fd, left) {
                break;
            }
        }
    }
}

fn with_sink<T>(stream: Stream, f: impl FnOnce(&mut Sink) -> T) -> T {
    let mut guard = SINKS.lock().unwrap_or_else(|e| e.into_inner());
    let i = (stream.fd() - 1) as usize;
    f(guard[i].get_or_insert_with(|| Sink::open(stream.fd())))
}

/// How the init writes without blocking on its stdout or stderr.
enum Mode {
    /// A file description of its own, `O_NONBLOCK`.
    Own(OwnedFd),
    /// The fd is a socket: `send(MSG_DONTWAIT | MSG_NOSIGNAL)`.
    Socket,
    /// The fd could not be reopened: poll for room, then write.
    PollFirst,
    /// A regular file (or /dev/null): writes do not wait on a reader.
    Plain,
}

struct Sink {
    /// 1 or 2.
    fd: RawFd,
    mode: Mode,
    queue: VecDeque<Vec<u8>>,
    queued: usize,
    dropped: u64,
    /// The reader went away (EPIPE) or the fd is unusable: stop writing.
    broken: bool,
}

enum Wrote {
    All,
    Part(usize),
    Later,
    Broken,
}

impl Sink {
    fn open(fd: RawFd) -> Sink {
        use nix::sys::stat::SFlag;
        let kind = crate::process::sys::file_type(fd);
        let mode = match kind {
            Some(k) if k == SFlag::S_IFSOCK => Mode::Socket,
            Some(k) if k == SFlag::S_IFIFO || k == SFlag::S_IFCHR => {
                match crate::process::sys::reopen_nonblocking(fd) {
                    Ok(fd) => Mode::Own(fd),
                    Err(_) => Mode::PollFirst,
                }
            }
            Some(_) => Mode::Plain,
            // No such fd at all: nothing to write to.
            None => Mode::PollFirst,
        };
        Sink {
            fd,
            mode,
            queue: VecDeque::new(),
            queued: 0,
            dropped: 0,
            broken: kind.is_none(),
        }
    }

    fn fd(&self) -> RawFd {
        match &self.mode {
            Mode::Own(fd) => fd.as_raw_fd(),
            _ => self.fd,
        }
    }

    fn push(&mut self, line: Vec<u8>) {
        if self.broken {
            return;
        }
        self.flush();
        if self.queue.is_empty() {
            match self.write(&line) {
                Wrote::All => return,
                Wrote::Part(n) => return self.enqueue(line[n..].to_vec(), true),
                Wrote::Broken => return,
                Wrote::Later => {}
            }
        }
        self.enqueue(line, false);
    }

    /// `rest`: the tail of a line already partly written, which must go
    /// out whatever the queue holds, or the next line would be glued to
    /// half of it.
    fn enqueue(&mut self, bytes: Vec<u8>, rest: bool) {
        if !rest && self.queued + bytes.len() > QUEUE_BYTES {
            self.dropped += 1;
            return;
        }
        self.queued += bytes.len();
        self.queue.push_back(bytes);
    }

    fn flush(&mut self) {
        while let Some(front) = self.queue.front_mut() {
            match write_to(self.fd, &self.mode, front) {
                Wrote::All => {
                    self.queued -= front.len();
                    self.queue.pop_front();
                }
                Wrote::Part(n) => {
                    self.queued -= n;
                    front.drain(..n);
                    return;
                }
                Wrote::Later => return,
                Wrote::Broken => {
                    self.broken = true;
                    self.queue.clear();
                    self.queued = 0;
                    return;
                }
            }
        }
        if self.dropped > 0 {
            let n = std::mem::take(&mut self.dropped);
            let line = render(
                format(),
                Level::Warn,
                "log_dropped",
                &format!("{n} log line(s) dropped: stderr was not being read fast enough"),
                &[("dropped", n.into())],
            );
            if let Wrote::Part(k) = self.write(line.as_bytes()) {
                self.enqueue(line.as_bytes()[k..].to_vec(), true);
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Wrote {
        match write_to(self.fd, &self.mode, bytes) {
            Wrote::Broken => {
                // EPIPE, EBADF, ENOSPC: nobody will read what follows.
                self.broken = true;
                self.queue.clear();
                self.queued = 0;
                Wrote::Broken
            }
            other => other,
        }
    }
}

fn write_to(fd: RawFd, mode: &Mode, bytes: &[u8]) -> Wrote {
    use crate::process::sys;
    let r = match mode {
        Mode::Own(own) => sys::write_fd(own.as_raw_fd(), bytes),
        Mode::Socket => sys::send_nonblocking(fd, bytes),
        Mode::PollFirst => {
            if !sys::poll_writable(fd, Duration::ZERO) {
                return Wrote::Later;
            }
            sys::write_fd(fd, bytes)
        }
        Mode::Plain => sys::write_fd(fd, bytes),
    };
    match r {
        Ok(n) if n == bytes.len() => Wrote::All,
        Ok(n) => Wrote::Part(n),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Wrote::Later,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Wrote::Later,
        Err(_) => Wrote::Broken,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_to_one_atomic_write() {
        let long = "é".repeat(5000);
        let line = render(LogFormat::Text, Level::Info, "x", &long, &[]);
        assert!(line.len() <= MAX_LINE, "{}", line.len());
        assert!(line.ends_with("...\n"));
    }

    #[test]
    fn json_lines_carry_level_event_fields_and_message() {
        let line = render(
            LogFormat::Json,
            Level::Warn,
            "exited",
            "worker 0 exited",
            &[("slot", 0.into())],
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "warn");
        assert_eq!(v["event"], "exited");
        assert_eq!(v["slot"], 0);
        assert_eq!(v["msg"], "worker 0 exited");
    }
}
