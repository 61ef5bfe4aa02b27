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
use crate::vocab::{format_mode, SocketPerms};

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
    #[error("failed to bind {addr}: permission denied: {why}")]
    Privileged { addr: String, why: String },
    #[error("failed to set the {what} of {path}: {source}")]
    Perms {
        path: String,
        what: String,
        #[source]
        source: std::io::Error,
    },
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

/// Binds every address in order; on error nothing stays bound. Unix
/// socket files get `perms` (mode, owner).
pub fn bind_all(
    addrs: &[ListenAddr],
    backlog: u32,
    perms: &SocketPerms,
) -> Result<Vec<Listener>, BindError> {
    let above = FIRST_FD + addrs.len() as RawFd;
    addrs
        .iter()
        .map(|a| bind(a, backlog, above, perms))
        .collect()
}

fn bind(
    addr: &ListenAddr,
    backlog: u32,
    above: RawFd,
    perms: &SocketPerms,
) -> Result<Listener, BindError> {
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
            socket::bind(fd.as_raw_fd(), &ss).map_err(|e| match e {
                nix::errno::Errno::EACCES => {
                    privileged_port(addr, *port).unwrap_or_else(|| fail(e.into()))
                }
                e => fail(e.into()),
            })?;
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
            // With a mode or owner to set, the file is made with no
            // permission at all (umask 777), so nobody can connect before
            // it has its final mode and owner. The umask is the process's,
            // and the init has one thread: it is put back at once.
            let restrict = perms.mode.is_some() || perms.uid.is_some() || perms.gid.is_some();
            let old_umask = restrict
                .then(|| nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o777)));
            let bound = socket::bind(fd.as_raw_fd(), &ua);
            if let Some(old) = old_umask {
                nix::sys::stat::umask(old);
            }
            bound.map_err(|e| unix_bind_error(addr, path, e))?;
            {
                use std::os::unix::fs::MetadataExt;
                if let Ok(m) = std::fs::symlink_metadata(path) {
                    made = Some((path.clone(), m.dev(), m.ino()));
                }
            }
            if restrict {
                if let Err(e) = set_perms(path, perms) {
                    if let Some((path, ..)) = made.take() {
                        let _ = std::fs::remove_file(path);
                    }
                    return Err(e);
                }
            }
            crate::process::sys::listen(&fd, backlog).map_err(listen_failed)?;
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

/// Gives the socket file its owner, then its mode (a chown by root
/// clears no bit of a socket, but the mode is set last all the same).
fn set_perms(path: &Path, perms: &SocketPerms) -> Result<(), BindError> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display().to_string();
    if perms.uid.is_some() || perms.gid.is_some() {
        std::os::unix::fs::chown(path, perms.uid, perms.gid).map_err(|source| {
            let id = |n: Option<u32>| n.map_or_else(|| "-".to_string(), |n| n.to_string());
            let hint = match source.raw_os_error() {
                Some(libc::EPERM) => {
                    let uid = nix::unistd::geteuid().as_raw();
                    if uid == 0 {
                        " (the init is root but lacks CAP_CHOWN)".to_string()
                    } else {
                        format!(
                            " (the init runs as uid {uid}: it can only give the file a group it is a member of)"
                        )
                    }
                }
                _ => String::new(),
            };
            BindError::Perms {
                path: shown.clone(),
                what: format!("owner to {}:{}{hint}", id(perms.uid), id(perms.gid)),
                source,
            }
        })?;
    }
    let mode = perms.mode.unwrap_or_else(|| 0o777 & !current_umask());
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        BindError::Perms {
            path: shown,
            what: format!("mode to {}", format_mode(mode)),
            source,
        }
    })
}

/// The umask, read by setting it and putting it back.
fn current_umask() -> u32 {
    use nix::sys::stat::{umask, Mode};
    let old = umask(Mode::from_bits_truncate(0o022));
    umask(old);
    old.bits()
}

/// EACCES for a port below `net.ipv4.ip_unprivileged_port_start`: the
/// message says why and the four ways out. `None` for a port above it
/// (EACCES from elsewhere: an LSM).
fn privileged_port(addr: &ListenAddr, port: u16) -> Option<BindError> {
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(1024);
    if u32::from(port) >= start {
        return None;
    }
    let uid = nix::unistd::geteuid().as_raw();
    let who = if uid == 0 {
        "the init is root but lacks CAP_NET_BIND_SERVICE".to_string()
    } else {
        format!("the init runs as uid {uid} without CAP_NET_BIND_SERVICE")
    };
    Some(BindError::Privileged {
        addr: addr.to_string(),
        why: format!(
            "port {port} is below {start} (net.ipv4.ip_unprivileged_port_start) and {who}; \
             run the init as root with --user for the workers, grant CAP_NET_BIND_SERVICE, \
             lower net.ipv4.ip_unprivileged_port_start (Docker 20.10+ sets it to 0 in a container's \
             own network; CRI-O and --network host do not), or listen on a port of {start} or above"
        ),
    })
}

/// A unix socket that cannot be made: a read-only or foreign directory
/// gets a word on where sockets can go.
fn unix_bind_error(addr: &ListenAddr, path: &Path, e: nix::errno::Errno) -> BindError {
    let dir = path
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let hint = match e {
        nix::errno::Errno::EROFS => format!(
            " ({dir} is on a read-only file system: put the socket on a writable volume, such as an emptyDir or --tmpfs)"
        ),
        nix::errno::Errno::EACCES => format!(
            " (the init, uid {}, may not create files in {dir})",
            nix::unistd::geteuid().as_raw()
        ),
        _ => String::new(),
    };
    BindError::Bind {
        addr: format!("{addr}{hint}"),
        source: std::io::Error::from(e),
    }
}

/// A socket file left by an earlier run would make bind fail with
/// EADDRINUSE, so it is removed, but only when it is stale: a connect
/// that is refused. One that accepts belongs to a live server (`Err`). A
/// regular file at that path is left alone (bind reports it).
fn remove_stale_socket(path: &Path) -> Result<(), ()> {
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
            let l = bind_all(
                &[ListenAddr::parse("[::1]:0").unwrap()],
                4096,
                &SocketPerms::default(),
            )
            .unwrap();
            assert!(l[0].local.starts_with("[::1]:"), "{}", l[0].local);
        }
        let path = std::env::temp_dir().join(format!("cinit-unit-{}.sock", std::process::id()));
        let addr = ListenAddr::parse(&format!("unix:{}", path.display())).unwrap();
        let l = bind_all(std::slice::from_ref(&addr), 16, &SocketPerms::default()).unwrap();
        assert!(path.exists());
        // A live socket is never taken over.
        match bind_all(std::slice::from_ref(&addr), 16, &SocketPerms::default()) {
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
        let l = bind_all(&[addr], 16, &SocketPerms::default()).unwrap();
        drop(l);
        assert!(!path.exists());
    }

    #[test]
    fn the_socket_file_of_another_is_not_removed_at_exit() {
        let path = std::env::temp_dir().join(format!("cinit-unit-own-{}.sock", std::process::id()));
        let addr = ListenAddr::parse(&format!("unix:{}", path.display())).unwrap();
        let l = bind_all(&[addr], 16, &SocketPerms::default()).unwrap();
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
        let l = bind_all(
            &[ListenAddr::parse("127.0.0.1:0").unwrap()],
            16,
            &SocketPerms::default(),
        )
        .unwrap();
        assert!(l[0].raw_fd() > FIRST_FD);
        assert!(l[0].local.starts_with("127.0.0.1:"));
        assert_ne!(l[0].local, "127.0.0.1:0");
    }
}
