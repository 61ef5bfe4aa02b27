//! The test helpers: small processes with a fixed stdout contract, for
//! end-to-end tests of the init in `FROM scratch` images (no shell there).
//!
//! Every helper first prints `ready <pid>` (after it has set up whatever
//! signal handling it needs, so a signal sent after that line is handled as
//! documented). Each line is flushed as it is written. Output errors (a
//! reader that went away) are ignored: a helper must not die of its stdout.

use std::fmt;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// Writes one line to stdout and flushes it.
pub fn say(line: fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn ready() {
    say(format_args!("ready {}", std::process::id()));
}

fn fail(what: &str, err: impl fmt::Display) -> i32 {
    eprintln!("cinit-demo: failed to {what}: {err}");
    1
}

/// `sleep [SECS]`: default signal dispositions, so TERM kills it.
pub fn sleep(secs: Option<Duration>) -> i32 {
    ready();
    match secs {
        Some(d) => std::thread::sleep(d),
        None => loop {
            nix::unistd::pause();
        },
    }
    0
}

/// `exit CODE`.
pub fn exit(code: i32) -> i32 {
    ready();
    code
}

/// Blocks `set` and opens a signalfd for it.
fn catch(set: &SigSet) -> nix::Result<SignalFd> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(set), None)?;
    SignalFd::with_flags(set, SfdFlags::SFD_CLOEXEC)
}

/// Reads the next signal number, riding out EINTR.
fn next(sfd: &SignalFd) -> nix::Result<i32> {
    loop {
        match sfd.read_signal() {
            Ok(Some(info)) => return Ok(info.ssi_signo as i32),
            Ok(None) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// `ignore-term`: SIGTERM is blocked and consumed through a signalfd (a
/// real `SIG_IGN` would need `unsafe`), so it shows in SigBlk, not SigIgn.
pub fn ignore_term() -> i32 {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    let sfd = match catch(&set) {
        Ok(s) => s,
        Err(e) => return fail("block SIGTERM", e.desc()),
    };
    ready();
    loop {
        match next(&sfd) {
            Ok(sig) => say(format_args!("ignored {sig}")),
            Err(e) => return fail("read the signalfd", e.desc()),
        }
    }
}

/// `signals`: every catchable signal, realtime ones included, is blocked
/// and read from a signalfd; each is printed as its number. Exits 0 right
/// after printing `exit_on`.
pub fn signals(exit_on: i32) -> i32 {
    // sigfillset leaves out the libc's internal realtime signals; the
    // kernel drops SIGKILL and SIGSTOP from the mask by itself.
    let sfd = match catch(&SigSet::all()) {
        Ok(s) => s,
        Err(e) => return fail("block the signals", e.desc()),
    };
    ready();
    loop {
        match next(&sfd) {
            Ok(sig) => {
                say(format_args!("{sig}"));
                if sig == exit_on {
                    return 0;
                }
            }
            Err(e) => return fail("read the signalfd", e.desc()),
        }
    }
}

/// `orphans N`: starts N children (this program, `orphan-child`), each of
/// which starts a grandchild that sleeps `secs` and exits at once itself,
/// so the grandchildren are re-parented to the nearest subreaper or init.
/// Prints `orphan <pid>` per grandchild once all children are gone.
pub fn orphans(n: usize, secs: Duration, stay: bool) -> i32 {
    ready();
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return fail("find my own executable", e),
    };
    let mut children = Vec::with_capacity(n);
    for _ in 0..n {
        let child = Command::new(&exe)
            .arg("orphan-child")
            .arg(format!("{}", secs.as_secs_f64()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn();
        match child {
            Ok(c) => children.push(c),
            Err(e) => return fail("start a child", e),
        }
    }
    for child in children {
        match child.wait_with_output() {
            Ok(out) => {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    say(format_args!("orphan {pid}"));
                }
            }
            Err(e) => return fail("wait for a child", e),
        }
    }
    if stay {
        loop {
            nix::unistd::pause();
        }
    }
    0
}

/// `orphan-child SECS` (internal): prints the pid of a sleeping grandchild
/// and exits without waiting for it.
pub fn orphan_child(secs: Duration) -> i32 {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return fail("find my own executable", e),
    };
    let child = Command::new(exe)
        .arg("sleep")
        .arg(format!("{}", secs.as_secs_f64()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match child {
        Ok(c) => {
            say(format_args!("{}", c.id()));
            0
        }
        Err(e) => fail("start a grandchild", e),
    }
}

/// The fields of /proc/PID/stat after the command name, which may itself
/// hold spaces and parentheses.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().collect())
}

/// `zombie-check`: prints `zombies <n>`; each zombie's pid, ppid and name
/// go to stderr.
pub fn zombie_check() -> i32 {
    ready();
    let dir = match std::fs::read_dir("/proc") {
        Ok(d) => d,
        Err(e) => return fail("read /proc", e),
    };
    let mut zombies = 0;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        // A process may vanish between the listing and the read.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(fields) = stat_fields(&stat) else {
            continue;
        };
        if fields.first() == Some(&"Z") {
            zombies += 1;
            let comm = stat.split_once('(').map_or("", |(_, c)| c);
            let comm = comm.rsplit_once(')').map_or(comm, |(c, _)| c);
            let ppid = fields.get(1).unwrap_or(&"?");
            eprintln!("cinit-demo: zombie {pid} ({comm}) ppid {ppid}");
        }
    }
    say(format_args!("zombies {zombies}"));
    0
}

/// Environment variables `status` reports when they are set.
const STATUS_ENV: [&str; 5] = [
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "CINIT_WORKER_ID",
    "CINIT_WORKERS",
];

/// `status`: what this process inherited. See the usage text for the lines.
pub fn status() -> i32 {
    ready();
    let stat = match std::fs::read_to_string("/proc/self/stat") {
        Ok(s) => s,
        Err(e) => return fail("read /proc/self/stat", e),
    };
    let fields = stat_fields(&stat).unwrap_or_default();
    // state ppid pgrp session tty_nr tpgid
    for (name, i) in [("ppid", 1), ("pgid", 2), ("sid", 3), ("tpgid", 5)] {
        say(format_args!("{name} {}", fields.get(i).unwrap_or(&"?")));
    }
    let status = match std::fs::read_to_string("/proc/self/status") {
        Ok(s) => s,
        Err(e) => return fail("read /proc/self/status", e),
    };
    for key in ["SigBlk", "SigIgn"] {
        let value = status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .map_or("?", str::trim);
        say(format_args!("{key}: {value}"));
    }
    // List first, then close the directory, then resolve: the directory's
    // own fd is then gone and drops out (its readlink fails).
    let mut fds: Vec<u32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(d) => d
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect(),
        Err(e) => return fail("read /proc/self/fd", e),
    };
    fds.sort_unstable();
    for fd in fds {
        if let Ok(target) = std::fs::read_link(format!("/proc/self/fd/{fd}")) {
            say(format_args!("fd {fd} {}", target.display()));
        }
    }
    for key in STATUS_ENV {
        if let Some(v) = std::env::var_os(key) {
            say(format_args!("env {key}={}", v.to_string_lossy()));
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_odd_names() {
        let f = stat_fields("12 (a) b (c)) Z 1 12 12 0 -1 4194560").unwrap();
        assert_eq!(&f[..3], ["Z", "1", "12"]);
        assert!(stat_fields("garbage").is_none());
    }
}
