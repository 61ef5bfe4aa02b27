//! `listen` readiness, seen from outside the worker: a worker is ready
//! when it, or one of its descendants (gunicorn's master under cinit has
//! its workers as grandchildren), waits for connections on one of the
//! init's `--listen` sockets. No change to the app is needed; uvicorn, for
//! example, registers the socket only after its lifespan startup ran.
//!
//! Two signs, both read from /proc:
//! * the socket's inode in an epoll interest list: `/proc/PID/fdinfo/N` of
//!   an `anon_inode:[eventpoll]` fd has a `tfd: ... ino: HEX` line per
//!   watched file (asyncio, libuv, Go, Rust runtimes);
//! * a thread asleep in `accept`/`accept4` on it:
//!   `/proc/PID/task/TID/syscall` gives the call number and its first
//!   argument, the fd (threaded and blocking servers).
//!
//! Reading another process's fds needs the right to ptrace it (same uid,
//! or CAP_SYS_PTRACE): `Probe::check` says when it could not look.

use std::collections::HashSet;
use std::os::fd::RawFd;

/// The inodes of the init's listening sockets.
#[derive(Clone, Debug, Default)]
pub struct Probe {
    inodes: HashSet<u64>,
}

/// What a look at one worker's tree found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    Listening,
    NotYet,
    /// /proc refused to show the fds (another uid, no CAP_SYS_PTRACE).
    Denied,
}

impl Probe {
    pub fn new(fds: &[RawFd]) -> Probe {
        use std::os::unix::fs::MetadataExt;
        let inodes = fds
            .iter()
            .filter_map(|fd| std::fs::metadata(format!("/proc/self/fd/{fd}")).ok())
            .map(|m| m.ino())
            .collect();
        Probe { inodes }
    }

    pub fn is_empty(&self) -> bool {
        self.inodes.is_empty()
    }

    /// Whether `pid` or a descendant waits for connections on a listener.
    pub fn check(&self, pid: i32) -> Seen {
        let mut denied = false;
        for p in tree(pid) {
            match self.process(p) {
                Seen::Listening => return Seen::Listening,
                Seen::Denied => denied = true,
                Seen::NotYet => {}
            }
        }
        if denied {
            Seen::Denied
        } else {
            Seen::NotYet
        }
    }

    fn process(&self, pid: i32) -> Seen {
        let dir = match std::fs::read_dir(format!("/proc/{pid}/fd")) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Seen::Denied,
            Err(_) => return Seen::NotYet,
        };
        for entry in dir.flatten() {
            // A root init without CAP_SYS_PTRACE may list the fds (it has
            // CAP_DAC_OVERRIDE) but not read them: that is a refusal too,
            // not "not yet" (which would wait for the ready timeout).
            let target = match std::fs::read_link(entry.path()) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Seen::Denied,
                Err(_) => continue,
            };
            if target.as_os_str() != "anon_inode:[eventpoll]" {
                continue;
            }
            let info = format!("/proc/{pid}/fdinfo/{}", entry.file_name().to_string_lossy());
            if let Ok(text) = std::fs::read_to_string(info) {
                if epoll_inodes(&text).any(|ino| self.inodes.contains(&ino)) {
                    return Seen::Listening;
                }
            }
        }
        if self.accepting(pid) {
            return Seen::Listening;
        }
        Seen::NotYet
    }

    /// A thread of `pid` blocked in accept on a listener.
    fn accepting(&self, pid: i32) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return false;
        };
        tasks.flatten().any(|t| {
            let Ok(text) = std::fs::read_to_string(t.path().join("syscall")) else {
                return false;
            };
            let Some(fd) = accept_fd(&text) else {
                return false;
            };
            std::fs::metadata(format!("/proc/{pid}/fd/{fd}"))
                .is_ok_and(|m| self.inodes.contains(&m.ino()))
        })
    }
}

/// The inodes an epoll fd watches, from its fdinfo text.
pub fn epoll_inodes(fdinfo: &str) -> impl Iterator<Item = u64> + '_ {
    fdinfo
        .lines()
        .filter(|l| l.starts_with("tfd:"))
        .filter_map(|l| {
            let hex = l.split_whitespace().find_map(|w| w.strip_prefix("ino:"))?;
            u64::from_str_radix(hex, 16).ok()
        })
}

/// The fd argument of a thread asleep in accept/accept4, from its
/// `/proc/PID/task/TID/syscall` text (`43 0x3 0x7ffd... ...`).
pub fn accept_fd(syscall: &str) -> Option<i64> {
    let mut words = syscall.split_whitespace();
    let nr: i64 = words.next()?.parse().ok()?;
    if nr != libc::SYS_accept && nr != libc::SYS_accept4 {
        return None;
    }
    let arg = words.next()?;
    i64::from_str_radix(arg.strip_prefix("0x")?, 16).ok()
}

/// `pid` and its descendants, through the children lists of its threads.
pub fn tree(pid: i32) -> Vec<i32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() && out.len() < 4096 {
        let p = out[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.flatten() {
                if let Ok(kids) = std::fs::read_to_string(t.path().join("children")) {
                    out.extend(
                        kids.split_whitespace()
                            .filter_map(|k| k.parse::<i32>().ok()),
                    );
                }
            }
        }
        i += 1;
    }
    out
}

/// The parent of `pid`, from /proc/PID/stat (the command name may hold
/// spaces and parentheses: parse from the last `)`).
pub fn parent(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// `pid` and its ancestors, nearest first, up to (not including) PID 1 or
/// the init itself.
pub fn ancestry(pid: i32, init: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut p = pid;
    while p > 1 && p != init && out.len() < 64 {
        out.push(p);
        match parent(p) {
            Some(pp) => p = pp,
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoll_lines_give_inodes() {
        let text = "pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1057\n\
                    tfd:        3 events:       19 data:                3  pos:0 ino:81b0c sdev:9\n\
                    tfd:        7 events:       19 data:                7  pos:0 ino:10 sdev:9\n";
        let v: Vec<u64> = epoll_inodes(text).collect();
        assert_eq!(v, [0x81b0c, 0x10]);
        assert_eq!(epoll_inodes("garbage\ntfd: x ino:zz\n").count(), 0);
    }

    #[test]
    fn accept_calls_give_their_fd() {
        let accept4 = format!(
            "{} 0x3 0x7ffd 0x7ffc 0x80800 0x0 0x0 0x7ffd 0x7f",
            libc::SYS_accept4
        );
        assert_eq!(accept_fd(&accept4), Some(3));
        let read = format!("{} 0x3 0x1 0x1", libc::SYS_read);
        assert_eq!(accept_fd(&read), None);
        assert_eq!(accept_fd("running"), None);
        assert_eq!(accept_fd(""), None);
    }

    #[test]
    fn a_socket_in_our_own_epoll_set_is_seen() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        use std::os::fd::AsRawFd;
        let probe = Probe::new(&[l.as_raw_fd()]);
        let me = std::process::id() as i32;
        // The test process may already have other epolls; the listener is
        // in none of them yet.
        assert_eq!(probe.check(me), Seen::NotYet);
        // An event loop registers it (tokio's epoll, as asyncio would).
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let _in_rt = rt.enter();
        let _registered = crate::process::sys::async_fd(l).unwrap();
        assert_eq!(probe.check(me), Seen::Listening);
    }
}
