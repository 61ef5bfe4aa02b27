//! The `--listen` sockets: parsed addresses, bound once by the init before
//! the first fork, and passed to every worker as fds 3, 4, ... with the
//! systemd socket-activation variables.
//!
//! Invariants:
//! * the init owns each socket for its whole life (a worker that dies never
//!   closes the port, so connections wait in the backlog instead of being
//!   refused);
//! * the fds are close-on-exec and kept at numbers at or above 3 + the
//!   number of sockets, so the child can `dup2` them to 3, 4, ... without
//!   clobbering one another;
//! * a unix socket path is only ever taken over when it is stale (nobody
//!   accepts on it: connect is refused), never from a live server, and the
//!   init removes at exit only the socket file it made itself.

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, UnixAddr};
use thiserror::Error;

use crate::process::FIRST_FD;
pub use crate::vocab::ListenAddr;

#[derive(Debug, Error)]
pub enum BindError {
    #[error("failed to bind {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to bind {addr}: another process is listening on {path} (remove it or choose another path)")]
    InUse { addr: String, path: PathBuf },
}

/// A bound, listening socket owned by the init.
#[derive(Debug)]
pub struct Listener {
    pub addr: ListenAddr,
    /// The address the kernel gave (port 0 becomes the real port).
    pub local: String,
    fd: OwnedFd,
    /// The socket file this init made (device, inode), removed at exit
    /// only if the path still holds it.
    made: Option<(PathBuf, u64, u64)>,
}

impl Listener {
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// A second fd for the same socket (close-on-exec), for the event
    /// loop to accept on; this `Listener` keeps the socket file.
    pub fn try_clone_fd(&self) -> std::io::Result<OwnedFd> {
        self.fd.try_clone()
    }
}

/// The socket file of a unix listener goes with the init, as gunicorn's
/// does; the children exec before any Rust destructor could run in them.
impl Drop for Listener {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        if let Some((path, dev, ino)) = &self.made {
            if let Ok(m) = std::fs::symlink_metadata(path) {
                if m.dev() == *dev && m.ino() == *ino {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }
}

/// Binds every address in order; on error nothing stays bound.
pub fn bind_all(addrs: &[ListenAddr], backlog: u32) -> Result<Vec<Listener>, BindError> {
    let above = FIRST_FD + addrs.len() as RawFd;
    addrs.iter().map(|a| bind(a, backlog, above)).collect()
}

fn bind(addr: &ListenAddr, backlog: u32, above: RawFd) -> Result<Listener, BindError> {
    let fail = |e: std::io::Error| BindError::Bind {
        addr: addr.to_string(),
        source: e,
    };
    let listen_failed = |e: std::io::Error| BindError::Listen {
        addr: addr.to_string(),
        source: e,
    };
    // Not nix's `Backlog`: it refuses values above libc's SOMAXCONN, which
    // is 128 on musl; the kernel itself caps the value at
    // net.core.somaxconn.
    let backlog = backlog.min(i32::MAX as u32) as i32;
    let mut made = None;
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
            remove_stale_socket(path).map_err(|()| BindError::InUse {
                addr: addr.to_string(),
                path: path.clone(),
            })?;
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
            {
                use std::os::unix::fs::MetadataExt;
                if let Ok(m) = std::fs::symlink_metadata(path) {
                    made = Some((path.clone(), m.dev(), m.ino()));
                }
            }
            (fd, addr.to_string())
        }
    };
    let fd = crate::process::sys::move_fd_high(fd, above).map_err(fail)?;
    Ok(Listener {
        addr: addr.clone(),
        local,
        fd,
        made,
    })
}

/// A socket file left by an earlier run would make bind fail with
/// EADDRINUSE, so it is removed, but only when it is stale: a connect
/// that is refused. One that accepts belongs to a live server (`Err`). A
/// regular file at that path is left alone (bind reports it).
pub(crate) fn remove_stale_socket(path: &Path) -> Result<(), ()> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Ok(());
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(()),
        // EAGAIN: a live listener whose backlog is full.
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Err(()),
        Err(_) => {
            let _ = std::fs::remove_file(path);
            Ok(())
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
        let l = bind_all(std::slice::from_ref(&addr), 16).unwrap();
        assert!(path.exists());
        // A live socket is never taken over.
        match bind_all(std::slice::from_ref(&addr), 16) {
            Err(BindError::InUse { .. }) => {}
            other => panic!("a live socket was taken over: {other:?}"),
        }
        assert!(path.exists(), "the refused bind left the live socket alone");
        drop(l);
        assert!(!path.exists(), "the socket file goes with the listener");
        // A stale socket file (nobody listens) is replaced.
        let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(stale);
        assert!(path.exists());
        let l = bind_all(&[addr], 16).unwrap();
        drop(l);
        assert!(!path.exists());
    }

    #[test]
    fn the_socket_file_of_another_is_not_removed_at_exit() {
        let path = std::env::temp_dir().join(format!("cinit-unit-own-{}.sock", std::process::id()));
        let addr = ListenAddr::parse(&format!("unix:{}", path.display())).unwrap();
        let l = bind_all(&[addr], 16).unwrap();
        // Another server replaces the path while the init runs.
        std::fs::remove_file(&path).unwrap();
        let other = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(l);
        assert!(path.exists(), "the init removed a socket it did not make");
        drop(other);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn binds_and_moves_high() {
        let l = bind_all(&[ListenAddr::parse("127.0.0.1:0").unwrap()], 16).unwrap();
        assert!(l[0].raw_fd() > FIRST_FD);
        assert!(l[0].local.starts_with("127.0.0.1:"));
        assert_ne!(l[0].local, "127.0.0.1:0");
    }
}
