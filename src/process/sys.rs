//! The one module with `unsafe`: fork and exec, and raw fd numbers.
//!
//! Everything the child needs is allocated before `fork`: the program path,
//! `argv`, `envp` (with `LISTEN_PID=` and `WATCHDOG_PID=` slots the child
//! fills in with its
//! own pid, since `std::process::Command` would fix the environment before
//! the fork), the fds to pass and the ids to switch to. Between `fork` and
//! `execve` the child calls only async-signal-safe functions: `setpgid`,
//! `tcsetpgrp`, `sigaction`, `dup2`, `getpid`, the raw `setgroups`,
//! `setresgid`, `setresuid`, `getresgid` and `getresuid` system calls (in
//! that order: groups and gid while still root, the uid last; each checked,
//! and the result read back), `prctl(PR_SET_NO_NEW_PRIVS)`, `sigprocmask`,
//! `execve`, `write`, `_exit`. A failure travels back to the parent through
//! a close-on-exec pipe as the step that failed and its `errno`; the
//! failed child is then left to the reaper like any other (`waitpid` is
//! called only by `wait_any`, which only `reaper` uses).
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::ptr;
use std::time::Duration;

use nix::unistd::Pid;

/// A child's environment: `inherited`, entries of the init's own, used in
/// place; `added`, entries `NAME=VALUE` (without their NUL).
pub struct ChildEnv<'a> {
    pub inherited: &'a [&'static CStr],
    pub added: Vec<Vec<u8>>,
}

/// The ids a child switches to before it execs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    /// The supplementary groups, exactly (empty clears them).
    pub groups: Vec<u32>,
}

/// How the child is set up between fork and exec.
#[derive(Clone, Debug, Default)]
pub struct Setup {
    /// Own process group.
    pub new_pgroup: bool,
    /// Become the terminal's foreground process group.
    pub foreground: bool,
    /// Switch to these ids (the init must be root).
    pub creds: Option<Creds>,
    /// PR_SET_NO_NEW_PRIVS.
    pub no_new_privs: bool,
    /// fds to become the child's stdout and stderr (`--log-prefix`).
    pub stdio: Option<(RawFd, RawFd)>,
}

/// The step of the child's set-up that failed, sent to the parent with
/// its errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildStep {
    /// `dup2` of a socket, or `execve`.
    Exec = 0,
    Groups = 1,
    Gid = 2,
    Uid = 3,
    NoNewPrivs = 4,
}

impl ChildStep {
    fn from_raw(n: i32) -> ChildStep {
        match n {
            1 => ChildStep::Groups,
            2 => ChildStep::Gid,
            3 => ChildStep::Uid,
            4 => ChildStep::NoNewPrivs,
            _ => ChildStep::Exec,
        }
    }
}

/// A child ready to be forked: every byte it needs is already allocated.
pub struct Prepared {
    path: CString,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp: Vec<Vec<u8>>,
    envp_ptrs: Vec<*const libc::c_char>,
    /// `envp` entries to complete with the child's pid after the fork: the
    /// index and the length of the `NAME=` prefix.
    pid_slots: Vec<(usize, usize)>,
    /// Sockets to place at fds 3, 4, ... in the child (each at or above
    /// `listeners::HIGH_FD`, so no `dup2` clobbers another source).
    fds: Vec<RawFd>,
    setup: Setup,
}

/// Room for the decimal pid and the NUL.
const PID_ROOM: usize = 21;

impl Prepared {
    /// `env` is the child's whole environment; each name of `pid_vars`
    /// (`LISTEN_PID`, `WATCHDOG_PID`) is added, set to the child's own pid
    /// after the fork.
    pub fn new(
        path: &OsStr,
        argv: &[&OsStr],
        env: ChildEnv,
        pass_fds: &[RawFd],
        pid_vars: &[&str],
        setup: Setup,
    ) -> io::Result<Prepared> {
        let cstr = |b: &[u8]| {
            CString::new(b).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in an argument")
            })
        };
        let path = cstr(path.as_bytes())?;
        let argv: Vec<CString> = argv
            .iter()
            .map(|a| cstr(a.as_bytes()))
            .collect::<Result<_, _>>()?;
        let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        argv_ptrs.push(ptr::null());

        let ChildEnv { inherited, added } = env;
        let mut envp = added;
        for e in &mut envp {
            if e.contains(&0) || e.first() == Some(&b'=') || !e.contains(&b'=') {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a bad environment variable",
                ));
            }
            e.push(0);
        }
        envp.reserve(pid_vars.len());
        let mut pid_slots = Vec::new();
        for name in pid_vars {
            let mut e = name.as_bytes().to_vec();
            e.push(b'=');
            let prefix = e.len();
            e.resize(prefix + PID_ROOM, 0);
            envp.push(e);
            pid_slots.push((envp.len() - 1, prefix));
        }
        let mut envp_ptrs: Vec<*const libc::c_char> =
            Vec::with_capacity(inherited.len() + envp.len() + 1);
        envp_ptrs.extend(inherited.iter().map(|e| e.as_ptr()));
        envp_ptrs.extend(envp.iter().map(|e| e.as_ptr() as *const libc::c_char));
        envp_ptrs.push(ptr::null());
        Ok(Prepared {
            path,
            _argv: argv,
            argv_ptrs,
            envp,
            envp_ptrs,
            pid_slots,
            fds: pass_fds.to_vec(),
            setup,
        })
    }

    /// Forks and execs. `Ok(pid)` once the exec succeeded;
    /// `Err(Spawn::Fork(e))` when no child could be made (EAGAIN under a
    /// pids limit), `Err(Spawn::Exec(pid, e))` when the child could not
    /// exec (it has `_exit`ed; the reaper collects it).
    pub fn spawn(&mut self) -> Result<Pid, SpawnFailure> {
        let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| SpawnFailure::Fork(e.into()))?;
        // Above every fd the child `dup2`s a socket onto (3 ..
        // 3 + sockets), so no listener can replace the error pipe.
        let wr = move_fd_high(wr, super::FIRST_FD + self.fds.len() as RawFd)
            .map_err(SpawnFailure::Fork)?;
        // Raw pointers are taken before the fork so the child touches no
        // allocator: it only writes into memory that already exists.
        let pid_bufs: Vec<*mut u8> = self
            .pid_slots
            .iter()
            .map(|&(i, prefix)| {
                // SAFETY: the entry holds `prefix + PID_ROOM` bytes.
                unsafe { self.envp[i].as_mut_ptr().add(prefix) }
            })
            .collect();
        // SAFETY: the child branch below calls only async-signal-safe
        // functions on memory allocated before the fork, then execs or
        // `_exit`s; it never returns into Rust code that could allocate or
        // take a lock.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(SpawnFailure::Fork(io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: async-signal-safe calls only (see the module doc).
            unsafe { self.child(wr.as_raw_fd(), &pid_bufs) }
        }
        drop(wr);
        // The failed step and errno, 4 bytes each; nothing when the exec
        // succeeded (the pipe closed on exec).
        let mut report = [0u8; 8];
        let mut got = 0;
        loop {
            match nix::unistd::read(&rd, &mut report[got..]) {
                Ok(0) => break,
                Ok(n) => {
                    got += n;
                    if got == report.len() {
                        break;
                    }
                }
                Err(nix::errno::Errno::EINTR) => continue,
                // The child exists; whether it exec'd is unknown. Treat it
                // as started: if it failed, it exits 127 and is reaped.
                Err(_) => break,
            }
        }
        if got == report.len() {
            let word = |i: usize| {
                i32::from_ne_bytes([report[i], report[i + 1], report[i + 2], report[i + 3]])
            };
            let step = ChildStep::from_raw(word(0));
            let error = io::Error::from_raw_os_error(word(4));
            return Err(match step {
                ChildStep::Exec => SpawnFailure::Exec(Pid::from_raw(pid), error),
                step => SpawnFailure::Setup(Pid::from_raw(pid), step, error),
            });
        }
        Ok(Pid::from_raw(pid))
    }

    /// The child between fork and exec.
    ///
    /// # Safety
    /// Must be called only in the child right after `fork`.
    unsafe fn child(&self, err_fd: RawFd, pid_bufs: &[*mut u8]) -> ! {
        // SAFETY: all of these are async-signal-safe system calls on
        // memory that was allocated before the fork.
        unsafe {
            if self.setup.new_pgroup {
                libc::setpgid(0, 0);
            }
            if self.setup.foreground {
                // Signals are still blocked, so SIGTTOU cannot stop us even
                // when we are not yet the foreground group. ENOTTY/ENXIO
                // (no controlling terminal) are fine.
                libc::tcsetpgrp(0, libc::getpid());
            }
            // Default dispositions for every signal: Rust ignores SIGPIPE,
            // and the init's parent may have ignored others. The raw system
            // call, because libc's wrapper refuses the realtime signals it
            // reserves (32, 33), which glibc's posix_spawn leaves ignored.
            let dfl = KernelSigaction::default();
            for sig in 1..=KERNEL_NSIG {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::syscall(
                        libc::SYS_rt_sigaction,
                        sig,
                        &dfl as *const KernelSigaction,
                        ptr::null_mut::<KernelSigaction>(),
                        KERNEL_SIGSET_BYTES,
                    );
                }
            }
            // stdout and stderr first: a socket's dup2 below may then
            // reuse their source fds, never the other way round (sockets
            // sit at or above HIGH_FD).
            if let Some((out, err)) = self.setup.stdio {
                if libc::dup2(out, 1) < 0 || libc::dup2(err, 2) < 0 {
                    fail(err_fd, ChildStep::Exec);
                }
            }
            for (i, &fd) in self.fds.iter().enumerate() {
                if libc::dup2(fd, super::FIRST_FD + i as RawFd) < 0 {
                    fail(err_fd, ChildStep::Exec);
                }
            }
            let pid = libc::getpid() as u64;
            for &buf in pid_bufs {
                write_decimal(buf, pid);
            }
            if let Some(c) = &self.setup.creds {
                switch_ids(c, err_fd);
            }
            if self.setup.no_new_privs
                && libc::prctl(
                    libc::PR_SET_NO_NEW_PRIVS,
                    1 as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                ) != 0
            {
                fail(err_fd, ChildStep::NoNewPrivs);
            }
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, ptr::null_mut());
            libc::execve(
                self.path.as_ptr(),
                self.argv_ptrs.as_ptr(),
                self.envp_ptrs.as_ptr(),
            );
            fail(err_fd, ChildStep::Exec)
        }
    }
}

/// Switches the child to `c`: the supplementary groups and the gid while
/// it is still root, the uid last (after it, nothing else could be
/// changed). Raw system calls: libc's wrappers broadcast the change to
/// every thread with signals and locks, which a forked child (one thread)
/// neither needs nor may use. Each result is read back, so a kernel or
/// seccomp filter that reports success without the change is caught too.
///
/// # Safety
/// Only in the forked child; `c` was allocated before the fork.
unsafe fn switch_ids(c: &Creds, err_fd: RawFd) {
    // SAFETY: raw system calls on integers and on the groups' buffer,
    // which was allocated before the fork and is not touched meanwhile.
    unsafe {
        let long = |n: u32| n as libc::c_long;
        if libc::syscall(
            libc::SYS_setgroups,
            c.groups.len() as libc::c_long,
            c.groups.as_ptr(),
        ) != 0
        {
            fail(err_fd, ChildStep::Groups);
        }
        if libc::syscall(libc::SYS_setresgid, long(c.gid), long(c.gid), long(c.gid)) != 0 {
            fail(err_fd, ChildStep::Gid);
        }
        if libc::syscall(libc::SYS_setresuid, long(c.uid), long(c.uid), long(c.uid)) != 0 {
            fail(err_fd, ChildStep::Uid);
        }
        let (mut r, mut e, mut s): (libc::gid_t, libc::gid_t, libc::gid_t) = (0, 0, 0);
        let read = libc::syscall(
            libc::SYS_getresgid,
            &mut r as *mut libc::gid_t,
            &mut e as *mut libc::gid_t,
            &mut s as *mut libc::gid_t,
        );
        if read != 0 || r != c.gid || e != c.gid || s != c.gid {
            *libc::__errno_location() = libc::EPERM;
            fail(err_fd, ChildStep::Gid);
        }
        let (mut r, mut e, mut s): (libc::uid_t, libc::uid_t, libc::uid_t) = (0, 0, 0);
        let read = libc::syscall(
            libc::SYS_getresuid,
            &mut r as *mut libc::uid_t,
            &mut e as *mut libc::uid_t,
            &mut s as *mut libc::uid_t,
        );
        if read != 0 || r != c.uid || e != c.uid || s != c.uid {
            *libc::__errno_location() = libc::EPERM;
            fail(err_fd, ChildStep::Uid);
        }
    }
}

/// The kernel's `struct sigaction` for `rt_sigaction` on x86_64 and
/// aarch64 (the two architectures built and tested): all zero is SIG_DFL
/// with no flags and an empty mask. Other layouts (mips, alpha, sparc)
/// differ, so the build refuses them rather than pass the kernel a struct
/// of the wrong size.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[repr(C)]
#[derive(Default)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("KernelSigaction has the x86_64/aarch64 layout: check the kernel's for this target");
const _: () = assert!(std::mem::size_of::<KernelSigaction>() == 32);

/// The kernel's signal count (`_NSIG`) and its sigset size in bytes on
/// these architectures: realtime signals included.
const KERNEL_NSIG: i32 = 64;
const KERNEL_SIGSET_BYTES: usize = 8;

/// Why a child could not be started.
#[derive(Debug)]
pub enum SpawnFailure {
    /// No child exists: `fork` (or the pipe before it) failed.
    Fork(io::Error),
    /// The child exists but its `execve` failed; it exits 127 and the
    /// reaper collects it.
    Exec(Pid, io::Error),
    /// The child exists but a step of its set-up before the exec failed
    /// (switching ids, no_new_privs); it exits 127 likewise.
    Setup(Pid, ChildStep, io::Error),
}

/// One child that changed state: its pid and the raw wait status.
pub struct Waited {
    pub pid: i32,
    pub status: i32,
}

/// `waitpid(-1, WNOHANG | WUNTRACED)` with the raw status, which nix would
/// turn into an error for a child killed by a realtime signal (after the
/// kernel has already reaped it). `Ok(None)`: no child has changed state;
/// `Err(ECHILD)`: no child at all.
pub fn wait_any() -> io::Result<Option<Waited>> {
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid writes one int into `status`, which we own.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG | libc::WUNTRACED) };
    match pid {
        0 => Ok(None),
        p if p > 0 => Ok(Some(Waited { pid: p, status })),
        _ => Err(io::Error::last_os_error()),
    }
}

/// True while the init has any child at all (running or exited but not
/// collected), without collecting anything.
pub fn has_children() -> bool {
    // SAFETY: waitid writes one siginfo_t into `info`, which we own;
    // WNOWAIT leaves the child's state as it was.
    let r = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            libc::P_ALL,
            0,
            &mut info,
            libc::WEXITED | libc::WSTOPPED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    !(r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD))
}

/// Reports the failed step and errno to the parent (one write of 8
/// bytes, far below PIPE_BUF) and exits the child.
///
/// # Safety
/// Only in the forked child.
unsafe fn fail(err_fd: RawFd, step: ChildStep) -> ! {
    // SAFETY: errno location, write and _exit are async-signal-safe; the
    // report lives on the child's own stack.
    unsafe {
        let e = (*libc::__errno_location()).to_ne_bytes();
        let s = (step as i32).to_ne_bytes();
        let report = [s[0], s[1], s[2], s[3], e[0], e[1], e[2], e[3]];
        libc::write(err_fd, report.as_ptr() as *const libc::c_void, report.len());
        libc::_exit(127)
    }
}

/// Writes `n` in decimal and a NUL at `buf` (which has `PID_ROOM` bytes).
///
/// # Safety
/// `buf` must point to at least `PID_ROOM` writable bytes.
unsafe fn write_decimal(buf: *mut u8, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        // SAFETY: len <= 20 < PID_ROOM, guaranteed by the caller's buffer.
        unsafe { *buf.add(i) = digits[len - 1 - i] };
    }
    // SAFETY: as above; index len <= 20 < PID_ROOM.
    unsafe { *buf.add(len) = 0 };
}

/// A signal set holding `signals`, realtime numbers included (nix's own
/// `SigSet::add` takes only the named signals).
pub fn sigset(signals: impl Iterator<Item = i32>) -> nix::sys::signal::SigSet {
    // SAFETY: sigemptyset initialises the set; sigaddset writes only inside
    // it and rejects invalid numbers with an error we can ignore.
    unsafe {
        let mut raw: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut raw);
        for sig in signals {
            libc::sigaddset(&mut raw, sig);
        }
        nix::sys::signal::SigSet::from_sigset_t_unchecked(raw)
    }
}

/// Registers an fd the caller owns with the event loop for reading.
pub fn async_fd<T: std::os::fd::AsRawFd>(inner: T) -> io::Result<tokio::io::unix::AsyncFd<T>> {
    // SAFETY: `inner` owns its fd (a signalfd or a socket created by the
    // init), which stays open and unchanged until the AsyncFd is dropped.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(inner, tokio::io::Interest::READABLE)
            .map_err(io::Error::from)
    }
}

/// Registers an fd the caller keeps open with the event loop for
/// writability (the log, while lines wait for a slow reader).
pub fn async_fd_writable<T: std::os::fd::AsRawFd>(
    inner: T,
) -> io::Result<tokio::io::unix::AsyncFd<T>> {
    // SAFETY: as for `async_fd`: the fd stays open and unchanged while the
    // AsyncFd exists (the log's fd lives as long as the process).
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(inner, tokio::io::Interest::WRITABLE)
            .map_err(io::Error::from)
    }
}

/// `kill(2)` with a raw signal number (realtime signals have no nix enum
/// value); errors such as ESRCH are ignored by design. A negative `pid`
/// is a process group.
pub fn kill_raw(pid: i32, sig: i32) {
    // SAFETY: kill takes plain integers and touches no memory.
    unsafe { libc::kill(pid, sig) };
}

/// The process's own pid, for telling its own signals apart (a write to
/// a closed pipe raises SIGPIPE "sent" by the writer itself).
pub fn own_pid() -> i32 {
    // SAFETY: getpid has no arguments and cannot fail.
    unsafe { libc::getpid() }
}

/// `listen(2)` with any backlog (see `listeners::bind`).
pub fn listen(fd: &OwnedFd, backlog: i32) -> io::Result<()> {
    // SAFETY: listen takes an fd we own and a plain integer.
    if unsafe { libc::listen(fd.as_raw_fd(), backlog) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A listening TCP socket's accept queue: (waiting, most), from
/// `TCP_INFO` (for a listener the kernel puts the queue length in
/// `tcpi_unacked` and the backlog in `tcpi_sacked`). Read as the kernel's
/// fixed layout (8 one-byte fields, then u32s: rto, ato, snd_mss,
/// rcv_mss, unacked at byte 24, sacked at 28), not a libc struct, whose
/// definition differs between C libraries. None for a socket that is not
/// TCP.
pub fn accept_queue(fd: RawFd) -> Option<(u32, u32)> {
    let mut buf = [0u8; 32];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `buf`, which is
    // that long, and updates `len`; the fd is one the caller holds.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            buf.as_mut_ptr() as *mut libc::c_void,
            &mut len,
        )
    };
    if r != 0 || (len as usize) < 32 {
        return None;
    }
    let word = |at: usize| u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
    Some((word(24), word(28)))
}

/// True while any process other than the init itself is left in its PID
/// namespace (`kill(-1, 0)`); meaningful only as PID 1.
pub fn others_alive() -> bool {
    // SAFETY: kill with signal 0 only checks for existence and permission.
    unsafe { libc::kill(-1, 0) == 0 }
}

/// Moves `fd` to the lowest free number at or above `min`, close-on-exec.
/// `F_DUPFD` answers EINVAL when `min` is at or above the open-file
/// limit: that is reported as the limit being too low.
pub fn move_fd_high(fd: OwnedFd, min: RawFd) -> io::Result<OwnedFd> {
    match nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(min)) {
        // SAFETY: fcntl just returned this fd and nothing else owns it.
        Ok(new) => Ok(unsafe { OwnedFd::from_raw_fd(new) }),
        Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::EMFILE) => {
            let limit = nofile_limit();
            Err(io::Error::other(format!(
                "the open-file limit (ulimit -n) is {limit}; the init needs a few more than {min}"
            )))
        }
        Err(e) => Err(e.into()),
    }
}

/// A file description of the init's own for its stdout or stderr (`fd`),
/// non-blocking: reopening `/proc/self/fd/N` gives a new description of
/// the same pipe, FIFO or terminal, so `O_NONBLOCK` on it does not reach
/// the children that share the fd.
pub fn reopen_nonblocking(fd: RawFd) -> io::Result<OwnedFd> {
    use nix::fcntl::OFlag;
    let fd = nix::fcntl::open(
        format!("/proc/self/fd/{fd}").as_str(),
        OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
        nix::sys::stat::Mode::empty(),
    )?;
    Ok(fd)
}

/// A pipe for a child's stdout or stderr (`--log-prefix`): the read end
/// non-blocking for the init, both close-on-exec, neither at 0, 1 or 2
/// (a write end there could not be `dup2`ed onto the child's own).
pub fn relay_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::OFlag;
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    let high = |fd: OwnedFd| -> io::Result<OwnedFd> {
        if fd.as_raw_fd() < 3 {
            move_fd_high(fd, 3)
        } else {
            Ok(fd)
        }
    };
    let (r, w) = (high(r)?, high(w)?);
    // The write end is the child's: blocking, as a stdout should be.
    let flags = nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_GETFL)?;
    let flags = OFlag::from_bits_truncate(flags) & !OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_SETFL(flags))?;
    Ok((r, w))
}

/// One `read(2)` on a raw fd the caller keeps open.
pub fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: read writes at most `buf.len()` bytes into a live slice.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// The file type of an fd (`S_IFIFO`, `S_IFSOCK`, ...); `None` when it is
/// not open.
pub fn file_type(fd: RawFd) -> Option<nix::sys::stat::SFlag> {
    use nix::sys::stat::SFlag;
    // SAFETY: fstat writes into a zeroed struct it is given; a closed fd
    // is an error, not undefined behaviour.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    Some(SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT)
}

/// One `write(2)` on a raw fd the caller keeps open.
pub fn write_fd(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: write reads `bytes.len()` bytes from a live slice.
    let n = unsafe { libc::write(fd, bytes.as_ptr() as *const libc::c_void, bytes.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// `send(2)` that neither blocks nor raises SIGPIPE, for a socket fd.
pub fn send_nonblocking(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: send reads `bytes.len()` bytes from a live slice.
    let n = unsafe {
        libc::send(
            fd,
            bytes.as_ptr() as *const libc::c_void,
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Waits up to `within` for a write on `fd` not to block: true when it
/// would take bytes, or fail at once (a reader that went away).
pub fn poll_writable(fd: RawFd, within: Duration) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    let ms = within.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: poll reads and writes one pollfd we own.
    let r = unsafe { libc::poll(&mut p, 1, ms) };
    r > 0 && p.revents & (libc::POLLOUT | libc::POLLERR | libc::POLLHUP) != 0
}

/// CLOCK_MONOTONIC in microseconds (sd_notify's MONOTONIC_USEC).
pub fn monotonic_usec() -> u64 {
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe {
        let mut t: libc::timespec = std::mem::zeroed();
        if libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) != 0 {
            return 0;
        }
        t.tv_sec as u64 * 1_000_000 + t.tv_nsec as u64 / 1000
    }
}

/// The init's own environment, entry by entry (`NAME=VALUE`), read in
/// place: no copy, no allocation per variable.
pub fn environ() -> Vec<&'static CStr> {
    extern "C" {
        static environ: *const *const libc::c_char;
    }
    let mut out = Vec::new();
    // SAFETY: `environ` is the C library's NULL-terminated array of
    // NUL-terminated strings. The init never changes its own environment
    // (no setenv, putenv or std::env::set_var anywhere in it, and no other
    // thread does), so the array and its strings stay valid and unchanged
    // for the life of the process.
    unsafe {
        let mut p = environ;
        if p.is_null() {
            return out;
        }
        while !(*p).is_null() {
            out.push(CStr::from_ptr(*p));
            p = p.add(1);
        }
    }
    out
}

/// The soft RLIMIT_NOFILE.
pub fn nofile_limit() -> u64 {
    // SAFETY: getrlimit writes one struct we own.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur
        } else {
            0
        }
    }
}

/// Marks every fd from 3 up close-on-exec, so that whatever the init
/// inherited from its parent is not passed on to its children.
pub fn cloexec_inherited_fds() {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags; it
    // closes nothing and touches no memory.
    let r = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if r == 0 {
        return;
    }
    // Kernels before 5.11: walk /proc/self/fd instead.
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<RawFd> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: F_SETFD on a number that may or may not be open is
        // harmless: it changes a flag or fails with EBADF.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}

/// Resolves `program` the way `execvp` would, with the child's PATH.
/// `Err` carries ENOENT when nothing was found and EACCES when only
/// non-executable files were.
pub fn find_program(program: &OsStr, path_var: Option<&OsStr>) -> io::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let p = std::path::Path::new(program);
    if program.as_bytes().contains(&b'/') {
        return Ok(p.to_path_buf());
    }
    if program.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    let default = OsStr::new("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let mut saw_eacces = false;
    for dir in std::env::split_paths(path_var.unwrap_or(default)) {
        let dir = if dir.as_os_str().is_empty() {
            ".".into()
        } else {
            dir
        };
        let candidate = dir.join(p);
        match std::fs::metadata(&candidate) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => return Ok(candidate),
            Ok(_) => saw_eacces = true,
            Err(_) => {}
        }
    }
    Err(io::Error::from_raw_os_error(if saw_eacces {
        libc::EACCES
    } else {
        libc::ENOENT
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal() {
        let mut buf = [0xffu8; PID_ROOM];
        // SAFETY: buf has PID_ROOM bytes.
        unsafe { write_decimal(buf.as_mut_ptr(), 4194304) };
        assert_eq!(&buf[..8], b"4194304\0");
        // SAFETY: as above.
        unsafe { write_decimal(buf.as_mut_ptr(), 0) };
        assert_eq!(&buf[..2], b"0\0");
    }

    #[test]
    fn finds_programs() {
        assert!(find_program(OsStr::new("sh"), None).is_ok());
        let e = find_program(OsStr::new("no-such-program-cinit"), None).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn accept_queue_counts_connections_not_yet_accepted() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        assert_eq!(accept_queue(l.as_raw_fd()).map(|q| q.0), Some(0));
        let _a = std::net::TcpStream::connect(addr).unwrap();
        let _b = std::net::TcpStream::connect(addr).unwrap();
        let (waiting, most) = accept_queue(l.as_raw_fd()).unwrap();
        assert_eq!(waiting, 2);
        assert!(most >= 2, "{most}");
        let u = std::os::unix::net::UnixListener::bind(
            std::env::temp_dir().join(format!("cinit-sys-{}.sock", std::process::id())),
        );
        if let Ok(u) = u {
            assert_eq!(accept_queue(u.as_raw_fd()), None, "not TCP");
            let _ = std::fs::remove_file(u.local_addr().unwrap().as_pathname().unwrap());
        }
    }
}
