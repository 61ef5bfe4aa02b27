//! The sd_notify protocol, both ways.
//!
//! * **From the workers**: the init owns a datagram socket and passes it
//!   to every worker as `NOTIFY_SOCKET`. A message is one datagram of
//!   `KEY=VALUE` lines (`READY=1`, `STATUS=...`, `STOPPING=1`,
//!   `WATCHDOG=1`, `WATCHDOG=trigger`). `SO_PASSCRED` makes the kernel
//!   attach the sender's real pid to each datagram; the supervisor accepts
//!   a message only from a worker or one of its descendants, so nobody
//!   else can mark a worker ready, whoever can reach the socket.
//!   The socket is abstract and autobound (the kernel picks a unique
//!   name): it needs no writable directory (a read-only root file system
//!   works) and leaves no file behind.
//! * **To whoever started the init**: when the init itself has
//!   `NOTIFY_SOCKET` (systemd, `podman --sdnotify=container`), it reports
//!   `READY=1` once every worker is ready, `RELOADING=1` and `READY=1`
//!   around a rolling restart, `STOPPING=1`, and a `STATUS=` line.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    self, sockopt, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr,
};

/// Longest datagram read; longer ones are dropped.
const MAX_MESSAGE: usize = 4096;

/// What one datagram says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub ready: bool,
    pub status: Option<String>,
    pub stopping: bool,
    pub reloading: bool,
    /// `WATCHDOG=1`: the worker is alive.
    pub watchdog: bool,
    /// `WATCHDOG=trigger`: the worker asks to be treated as hung.
    pub watchdog_trigger: bool,
}

impl Message {
    /// Parses `KEY=VALUE` lines; unknown keys are ignored, as systemd
    /// does.
    pub fn parse(text: &str) -> Message {
        let mut m = Message::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            match k {
                "READY" => m.ready |= v == "1",
                "STATUS" => m.status = Some(v.chars().take(200).collect()),
                "STOPPING" => m.stopping |= v == "1",
                "RELOADING" => m.reloading |= v == "1",
                "WATCHDOG" if v == "1" => m.watchdog = true,
                "WATCHDOG" if v == "trigger" => m.watchdog_trigger = true,
                _ => {}
            }
        }
        m
    }

    pub fn is_empty(&self) -> bool {
        *self == Message::default()
    }
}

/// The init's receiving socket.
pub struct Socket {
    fd: OwnedFd,
    /// What workers get as NOTIFY_SOCKET: `@` and the abstract name.
    pub address: String,
}

impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Socket {
    pub fn bind() -> std::io::Result<Socket> {
        let fd = socket::socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )?;
        socket::setsockopt(&fd, sockopt::PassCred, &true)?;
        // An unnamed address makes the kernel pick a unique abstract one.
        socket::bind(fd.as_raw_fd(), &UnixAddr::new_unnamed())?;
        let local: UnixAddr = socket::getsockname(fd.as_raw_fd())?;
        let name = local
            .as_abstract()
            .ok_or_else(|| std::io::Error::other("the kernel gave no abstract name"))?;
        let address = format!("@{}", String::from_utf8_lossy(name));
        Ok(Socket { fd, address })
    }

    /// The next datagram waiting: the sender's pid and the text; `None`
    /// when none waits. Datagrams without credentials, too long, or not
    /// text are skipped.
    pub fn recv(&self) -> Option<(i32, String)> {
        loop {
            let mut buf = [0u8; MAX_MESSAGE];
            let mut iov = [IoSliceMut::new(&mut buf)];
            let mut space = nix::cmsg_space!(socket::UnixCredentials);
            let msg = match socket::recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(m) => m,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return None,
            };
            if msg
                .flags
                .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC)
            {
                continue;
            }
            let pid = msg.cmsgs().ok()?.find_map(|c| match c {
                ControlMessageOwned::ScmCredentials(cred) => Some(cred.pid()),
                _ => None,
            });
            let len = msg.bytes;
            let Some(pid) = pid else { continue };
            match std::str::from_utf8(&buf[..len]) {
                Ok(text) => return Some((pid, text.to_string())),
                Err(_) => continue,
            }
        }
    }
}

/// The init's own NOTIFY_SOCKET, read once at start: where to report.
pub struct Upstream {
    fd: OwnedFd,
    addr: UnixAddr,
}

impl Upstream {
    /// `None` when the init was given no NOTIFY_SOCKET (or a form this
    /// does not speak, such as vsock).
    pub fn from_env() -> Option<Upstream> {
        let value = std::env::var_os("NOTIFY_SOCKET")?;
        Upstream::new(&value.to_string_lossy())
    }

    /// A path (`/run/...`) or an abstract name (`@...`).
    pub fn new(value: &str) -> Option<Upstream> {
        let addr = match value.strip_prefix('@') {
            Some(name) => UnixAddr::new_abstract(name.as_bytes()).ok()?,
            None if value.starts_with('/') => UnixAddr::new(std::path::Path::new(value)).ok()?,
            None => return None,
        };
        let fd = socket::socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .ok()?;
        Some(Upstream { fd, addr })
    }

    /// Sends one message; a listener that went away is not the init's
    /// problem.
    pub fn send(&self, text: &str) {
        let _ = socket::sendto(
            self.fd.as_raw_fd(),
            text.as_bytes(),
            &self.addr,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse_and_ignore_what_they_do_not_know() {
        let m = Message::parse("READY=1\nSTATUS=serving 3 requests\nX_CUSTOM=1\nMAINPID=7\n");
        assert!(m.ready);
        assert_eq!(m.status.as_deref(), Some("serving 3 requests"));
        assert!(!m.watchdog);
        let m = Message::parse("WATCHDOG=1");
        assert!(m.watchdog && !m.ready);
        assert!(Message::parse("WATCHDOG=trigger").watchdog_trigger);
        assert!(Message::parse("READY=0\ngarbage").is_empty());
        assert!(Message::parse("STOPPING=1").stopping);
    }

    #[test]
    fn a_datagram_arrives_with_the_senders_pid() {
        let s = Socket::bind().unwrap();
        assert!(s.address.starts_with('@'));
        let up = Upstream::new(&s.address).unwrap();
        up.send("READY=1\nSTATUS=hello");
        let (pid, text) = s.recv().expect("a message");
        assert_eq!(pid, std::process::id() as i32);
        assert_eq!(Message::parse(&text).status.as_deref(), Some("hello"));
        assert!(s.recv().is_none());
    }
}
