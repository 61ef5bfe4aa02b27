//! The `--listen` sockets: parsed addresses, bound once by the init before
//! the first fork, and passed to every worker as fds 3, 4, ... with the
//! systemd socket-activation variables.
//!
//! Invariants: the init owns each socket for its whole life (a worker that
//! dies never closes the port, so connections wait in the backlog instead of
//! being refused); the fds are close-on-exec and kept at numbers at or above
//! `HIGH_FD`, so the child can `dup2` them to 3.. without clobbering one
//! another.

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, UnixAddr};

use crate::error::Error;
pub use crate::vocab::ListenAddr;

/// Listening fds are moved to this number or above.
pub const HIGH_FD: RawFd = 64;
/// The first fd a worker receives (systemd's SD_LISTEN_FDS_START).
pub const FIRST_FD: RawFd = 3;

/// A bound, listening socket owned by the init.
#[derive(Debug)]
pub struct Listener {
    pub addr: ListenAddr,
    /// The address the kernel gave (port 0 becomes the real port).
    pub local: String,
    fd: OwnedFd,
}

impl Listener {
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// The socket file of a unix listener goes with the init, as gunicorn's
/// does; the children exec before any Rust destructor could run in them.
impl Drop for Listener {
    fn drop(&mut self) {
        if let ListenAddr::Unix { path } = &self.addr {
            remove_stale_socket(path);
        }
    }
}

/// Binds every address in order; on error nothing stays bound.
pub fn bind_all(addrs: &[ListenAddr], backlog: u32) -> Result<Vec<Listener>, Error> {
    addrs.iter().map(|a| bind(a, backlog)).collect()
}

fn bind(addr: &ListenAddr, backlog: u32) -> Result<Listener, Error> {
    let fail = |e: std::io::Error| Error::io(format!("bind {addr}"), e);
    let listen_failed = |e: std::io::Error| Error::io(format!("listen on {addr}"), e);
    // Not nix's `Backlog`: it refuses values above libc's SOMAXCONN, which
    // is 128 on musl; the kernel itself caps the value at
    // net.core.somaxconn.
    let backlog = backlog.min(i32::MAX as u32) as i32;
    let (fd, local) = match addr {
        ListenAddr::Tcp { host, port } => {
            let sa: SocketAddr = (host.as_str(), *port)
                .to_socket_addrs()
                .map_err(fail)?
                .next()
                .ok_or_else(|| fail(std::io::Error::other("the name has no address")))?;
            let family = if sa.is_ipv4() {
                AddressFamily::Inet
            } else {
                AddressFamily::Inet6
            };
            let fd = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
                .map_err(|e| fail(e.into()))?;
            socket::setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(|e| fail(e.into()))?;
            // Linux copies TCP_NODELAY to accepted sockets: `uvicorn --fd`
            // never sets it, and without it every response waits on the
            // peer's delayed ACK (40 ms).
            socket::setsockopt(&fd, sockopt::TcpNoDelay, &true).map_err(|e| fail(e.into()))?;
            let ss = socket::SockaddrStorage::from(sa);
            socket::bind(fd.as_raw_fd(), &ss).map_err(|e| fail(e.into()))?;
            crate::process::sys::listen(&fd, backlog).map_err(listen_failed)?;
            let local = socket::getsockname::<socket::SockaddrStorage>(fd.as_raw_fd())
                .ok()
                .and_then(|s| {
                    s.as_sockaddr_in()
                        .map(|a| SocketAddr::from(std::net::SocketAddrV4::from(*a)).to_string())
                        .or_else(|| {
                            s.as_sockaddr_in6().map(|a| {
                                SocketAddr::from(std::net::SocketAddrV6::from(*a)).to_string()
                            })
                        })
                })
                .unwrap_or_else(|| addr.to_string());
            (fd, local)
        }
        ListenAddr::Unix { path } => {
            remove_stale_socket(path);
            let fd = socket::socket(
                AddressFamily::Unix,
                SockType::Stream,
                SockFlag::SOCK_CLOEXEC,
                None,
            )
            .map_err(|e| fail(e.into()))?;
            let ua = UnixAddr::new(path.as_path()).map_err(|e| fail(e.into()))?;
            socket::bind(fd.as_raw_fd(), &ua).map_err(|e| fail(e.into()))?;
            crate::process::sys::listen(&fd, backlog).map_err(listen_failed)?;
            (fd, addr.to_string())
        }
    };
    let fd = crate::process::sys::move_fd_high(fd, HIGH_FD).map_err(fail)?;
    Ok(Listener {
        addr: addr.clone(),
        local,
        fd,
    })
}

/// A socket file left by an earlier run would make bind fail with
/// EADDRINUSE; a regular file at that path is left alone (bind reports it).
fn remove_stale_socket(path: &std::path::Path) {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_ipv6_and_unix() {
        if std::net::TcpListener::bind("[::1]:0").is_ok() {
            let l = bind_all(&[ListenAddr::parse("[::1]:0").unwrap()], 4096).unwrap();
            assert!(l[0].local.starts_with("[::1]:"), "{}", l[0].local);
        }
        let path = std::env::temp_dir().join(format!("cinit-unit-{}.sock", std::process::id()));
        let addr = ListenAddr::parse(&format!("unix:{}", path.display())).unwrap();
        let l = bind_all(&[addr], 16).unwrap();
        assert!(path.exists());
        drop(l);
        assert!(!path.exists(), "the socket file goes with the listener");
    }

    #[test]
    fn binds_and_moves_high() {
        let l = bind_all(&[ListenAddr::parse("127.0.0.1:0").unwrap()], 16).unwrap();
        assert!(l[0].raw_fd() >= HIGH_FD);
        assert!(l[0].local.starts_with("127.0.0.1:"));
        assert_ne!(l[0].local, "127.0.0.1:0");
    }
}
