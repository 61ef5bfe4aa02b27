//! `cinit-demo serve`: HTTP on inherited listening sockets, one thread per
//! connection, graceful stop on SIGTERM/SIGINT/SIGQUIT.
//!
//! Theory of operation. The crate forbids `unsafe`, and Rust offers no safe
//! way to turn an inherited fd *number* into an `OwnedFd`/`BorrowedFd`, so
//! the listener can be neither polled (`nix::poll` wants a `BorrowedFd`) nor
//! switched to non-blocking mode (`fcntl` wants `AsFd`). nix's socket calls
//! that take a `RawFd` (`accept4`, `recv`, `send`, `shutdown`,
//! `getsockname`, `close`) are safe, so:
//!
//! * one accept thread per listener blocks in `accept4` (idle: no wake-ups);
//! * the main thread blocks reading a signalfd (TERM, INT, QUIT, HUP are
//!   blocked in every thread);
//! * on the first stop signal a drain thread stops the accept loops, lets
//!   every open connection finish, and exits 0. A second stop signal exits 1
//!   at once.
//!
//! Stopping an accept thread is the subtle part: it sits in a blocking
//! `accept` on a socket shared with the init and the other workers, which
//! nothing may shut down or make non-blocking. Exiting while it sits there
//! is safe, but exiting just as the kernel hands it a connection would drop
//! that connection. So the drain thread connects to the listener's own
//! address until every accept thread has come back out and parked; an
//! accept thread serves whatever it got (a real client or a dummy, which
//! sends nothing and closes) and then parks. A dummy accepted by another
//! worker costs it one empty connection. If no dummy can reach the thread
//! in `WAKE_FOR` (say, an address family we cannot connect to), we exit
//! anyway once no connection is open.
//!
//! A connection counts as open from accept to close. One that has not sent
//! a byte `IDLE_GRACE` after the stop began (a pre-connect, a dummy) is shut
//! down, so an idle client cannot hold the exit back; one that has started a
//! request is waited for.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::RawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{self, MsgFlags, Shutdown, SockFlag, SockaddrStorage};

use crate::http::{self, Head, Ident};

const IDLE_GRACE: Duration = Duration::from_secs(1);
const WAKE_EVERY: Duration = Duration::from_millis(25);
const WAKE_FOR: Duration = Duration::from_secs(3);
const CONN_STACK: usize = 128 * 1024;

/// Where the sockets come from: `--fd N`, else the LISTEN_FDS protocol.
pub fn listen_fds(explicit: Option<RawFd>) -> Result<Vec<RawFd>, String> {
    if let Some(fd) = explicit {
        return Ok(vec![fd]);
    }
    let Some(n) = std::env::var_os("LISTEN_FDS") else {
        return Err(
            "no listening socket: LISTEN_FDS is not set (run me under `init \
                    --listen ADDR`, or pass --fd N)"
                .into(),
        );
    };
    let n = n
        .to_str()
        .and_then(|n| n.parse::<RawFd>().ok())
        .filter(|n| (1..=1024).contains(n))
        .ok_or_else(|| format!("LISTEN_FDS={n:?} is not a number from 1 to 1024"))?;
    let me = std::process::id();
    match std::env::var("LISTEN_PID").ok().map(|p| p.parse::<u32>()) {
        Some(Ok(pid)) if pid == me => Ok((3..3 + n).collect()),
        Some(Ok(pid)) => Err(format!(
            "LISTEN_PID={pid} is not this process (pid {me}): the sockets were meant \
             for another process (pass --fd N to use one anyway)"
        )),
        _ => Err("LISTEN_FDS is set but LISTEN_PID is missing or not a number".into()),
    }
}

/// Checks that `fd` is a socket, and what it is bound to.
pub fn check(fd: RawFd) -> Result<SockaddrStorage, String> {
    socket::getsockname::<SockaddrStorage>(fd)
        .map_err(|e| format!("fd {fd} is not a usable socket: {}", e.desc()))
}

#[derive(Default)]
struct State {
    stopping: bool,
    /// Per listener: its accept thread is in (or about to enter) `accept`.
    in_accept: Vec<bool>,
    parked: usize,
    /// Accepted and not yet closed.
    open: usize,
    /// Open connections that have sent nothing yet, and since when.
    idle: HashMap<RawFd, Instant>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    me: Ident,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking connection thread must not take the server down.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Serves until stopped; returns the exit code.
pub fn run(fds: Vec<(RawFd, SockaddrStorage)>, me: Ident) -> i32 {
    let mut set = SigSet::empty();
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGHUP,
    ] {
        set.add(sig);
    }
    // Before any thread exists, so that every thread inherits the mask.
    let signals = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .and_then(|()| SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC));
    let signals = match signals {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cinit-demo: failed to set up the signalfd: {}", e.desc());
            return 1;
        }
    };
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            in_accept: vec![false; fds.len()],
            ..State::default()
        }),
        changed: Condvar::new(),
        me,
    });
    let worker = std::env::var("CINIT_WORKER_ID").unwrap_or_else(|_| "-".into());
    for (i, &(fd, _)) in fds.iter().enumerate() {
        let mine = Arc::clone(&shared);
        if let Err(e) = thread::Builder::new()
            .name(format!("accept-{fd}"))
            .spawn(move || accept_loop(i, fd, &mine))
        {
            eprintln!("cinit-demo: failed to start the accept thread: {e}");
            return 1;
        }
        eprintln!(
            "cinit-demo: worker {worker} (pid {}) serving on fd {fd}",
            shared.me.pid
        );
    }
    let addrs: Vec<SockaddrStorage> = fds.into_iter().map(|(_, a)| a).collect();
    loop {
        let sig = match signals.read_signal() {
            Ok(Some(info)) => info.ssi_signo as i32,
            Ok(None) | Err(Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("cinit-demo: failed to read the signalfd: {}", e.desc());
                return 1;
            }
        };
        let name = Signal::try_from(sig).map_or("?", |s| s.as_str());
        if sig == libc::SIGHUP {
            eprintln!("cinit-demo: ignoring {name}");
            continue;
        }
        let first = !std::mem::replace(&mut shared.lock().stopping, true);
        if !first {
            eprintln!("cinit-demo: second stop signal ({name}): exiting now");
            return 1;
        }
        eprintln!("cinit-demo: {name}: finishing open requests, then exiting");
        shared.changed.notify_all();
        let shared = Arc::clone(&shared);
        let addrs = addrs.clone();
        if thread::Builder::new()
            .name("drain".into())
            .spawn(move || drain(&shared, &addrs))
            .is_err()
        {
            return 1;
        }
    }
}

fn accept_loop(i: usize, fd: RawFd, shared: &Arc<Shared>) {
    let mut warned = false;
    loop {
        {
            let mut s = shared.lock();
            if s.stopping {
                s.parked += 1;
                shared.changed.notify_all();
                return;
            }
            s.in_accept[i] = true;
        }
        let got = socket::accept4(fd, SockFlag::SOCK_CLOEXEC);
        let mut s = shared.lock();
        s.in_accept[i] = false;
        match got {
            Ok(fd) => {
                s.open += 1;
                s.idle.insert(fd, Instant::now());
                drop(s);
                let conn = Conn {
                    fd,
                    shared: Arc::clone(shared),
                };
                // Should the spawn fail, the closure drops `conn`, which closes it.
                let _ = thread::Builder::new()
                    .stack_size(CONN_STACK)
                    .spawn(move || serve_conn(&conn));
            }
            Err(Errno::EINTR | Errno::ECONNABORTED | Errno::EPROTO | Errno::EPERM) => {}
            Err(
                e
                @ (Errno::EAGAIN | Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM),
            ) => {
                drop(s);
                if !warned {
                    warned = true;
                    eprintln!(
                        "cinit-demo: accept on fd {fd}: {} (retrying every 50 ms; this is \
                         also how a non-blocking listener gets polled)",
                        e.desc()
                    );
                }
                thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                eprintln!(
                    "cinit-demo: failed to accept on fd {fd}: {} (is it a listening stream \
                     socket?)",
                    e.desc()
                );
                std::process::exit(2);
            }
        }
    }
}

/// An accepted connection; dropping it closes the fd and updates the counts.
struct Conn {
    fd: RawFd,
    shared: Arc<Shared>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        s.idle.remove(&self.fd);
        s.open -= 1;
        // Closed under the lock: the drain thread shuts idle fds down under
        // it too, so it can never hit a number that was closed and reused.
        let _ = nix::unistd::close(self.fd);
        self.shared.changed.notify_all();
    }
}

fn serve_conn(conn: &Conn) {
    let fd = conn.fd;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let req = loop {
        let n = match socket::recv(fd, &mut chunk, MsgFlags::empty()) {
            Ok(0) => return,
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(_) => return,
        };
        // The first byte makes the connection a request to wait for; if the
        // drain thread already gave up on it, it stays given up.
        if buf.is_empty() && conn.shared.lock().idle.remove(&fd).is_none() {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        match http::parse_head(&buf) {
            Head::Incomplete => {}
            Head::Complete(req) => break req,
            Head::Bad(resp) => {
                let _ = send_all(fd, resp.head().as_bytes()) && send_all(fd, resp.body.as_bytes());
                return;
            }
        }
    };
    // Read the body (and ignore it): closing with unread data would reset
    // the connection and could destroy the answer before the client reads it.
    let mut rest = (req.head_len + req.content_length).saturating_sub(buf.len());
    while rest > 0 {
        match socket::recv(fd, &mut chunk, MsgFlags::empty()) {
            Ok(0) => return,
            Ok(n) => rest = rest.saturating_sub(n),
            Err(Errno::EINTR) => {}
            Err(_) => return,
        }
    }
    let resp = http::respond(&req, &conn.shared.me);
    if !send_all(fd, resp.head().as_bytes()) {
        return;
    }
    thread::sleep(resp.delay);
    if resp.send_body {
        send_all(fd, resp.body.as_bytes());
    }
}

fn send_all(fd: RawFd, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        match socket::send(fd, data, MsgFlags::MSG_NOSIGNAL) {
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
    true
}

/// Stops the accept threads, waits for the open connections, exits 0.
fn drain(shared: &Shared, addrs: &[SockaddrStorage]) -> ! {
    let started = Instant::now();
    let mut next_knock = started;
    let mut s = shared.lock();
    loop {
        let now = Instant::now();
        let mut wake_at: Option<Instant> = None;
        let mut at = |t: Instant| wake_at = Some(wake_at.map_or(t, |w| w.min(t)));
        s.idle.retain(|&fd, since| {
            let due = (*since).max(started) + IDLE_GRACE;
            if due <= now {
                let _ = socket::shutdown(fd, Shutdown::Both);
                return false;
            }
            at(due);
            true
        });
        let knocking = now < started + WAKE_FOR;
        let accepting_done = s.parked == addrs.len() || !knocking;
        if accepting_done && s.open == 0 {
            let _ = std::io::stderr().flush();
            std::process::exit(0);
        }
        if !accepting_done {
            at(started + WAKE_FOR);
            if now >= next_knock {
                for (i, addr) in addrs.iter().enumerate() {
                    if s.in_accept[i] {
                        let addr = *addr;
                        let _ = thread::Builder::new()
                            .stack_size(CONN_STACK)
                            .spawn(move || knock(&addr));
                    }
                }
                next_knock = now + WAKE_EVERY;
            }
            at(next_knock);
        }
        s = match wake_at {
            Some(t) => {
                let wait = t.saturating_duration_since(Instant::now());
                let (s, _) = shared
                    .changed
                    .wait_timeout(s, wait)
                    .unwrap_or_else(|p| p.into_inner());
                s
            }
            None => shared.changed.wait(s).unwrap_or_else(|p| p.into_inner()),
        };
    }
}

/// Opens and at once closes a connection to our own listener, to bring a
/// thread blocked in `accept` back out.
fn knock(addr: &SockaddrStorage) {
    let ip = if let Some(a) = addr.as_sockaddr_in() {
        Some(SocketAddr::from(*a))
    } else {
        addr.as_sockaddr_in6().map(|a| SocketAddr::from(*a))
    };
    if let Some(mut to) = ip {
        if to.ip().is_unspecified() {
            to.set_ip(match to {
                SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        let _ = TcpStream::connect_timeout(&to, Duration::from_secs(1));
    } else if let Some(a) = addr.as_unix_addr() {
        if let Some(path) = a.path() {
            let _ = UnixStream::connect(path);
        } else if let Some(name) = a.as_abstract() {
            use std::os::linux::net::SocketAddrExt;
            if let Ok(a) = std::os::unix::net::SocketAddr::from_abstract_name(name) {
                let _ = UnixStream::connect_addr(&a);
            }
        }
    }
}
