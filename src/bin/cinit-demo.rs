//! `cinit-demo`: the demo worker the README runs under cinit on a shared
//! port (`serve`), and a set of small helpers for end-to-end tests in
//! images without a shell. std and nix only, no `unsafe`.
//!
//! Arguments are parsed into a `Cmd` before anything runs; a bad argument is
//! a message on stderr and exit status 2, never a panic. Exit statuses: 0
//! done, 1 a runtime failure, 2 usage (or no usable socket for `serve`);
//! `exit CODE` exits CODE.

/// `eprintln!` that never panics, a closed or full stderr (a reader that
/// went away, `2>/dev/full`) must not kill the demo worker, and writes
/// each line with one `write`, so it never tears into another process's
/// line on a shared pipe.
macro_rules! eprintln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!("{}\n", format_args!($($arg)*));
        let _ = std::io::stderr().write_all(line.as_bytes());
    }};
}

// The crate root resolves modules beside itself, in src/bin/; ours live in
// src/bin/cinit-demo/ so that Cargo does not take them for binaries.
#[path = "cinit-demo/helpers.rs"]
mod helpers;
#[path = "cinit-demo/http.rs"]
mod http;
#[path = "cinit-demo/serve.rs"]
mod serve;

use std::os::fd::RawFd;
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;

const USAGE: &str = "\
cinit-demo: the demo worker and test helper of cinit

Usage: cinit-demo <COMMAND> [ARGS]

Worker:
  serve [--fd N]     Serve HTTP/1.1 on fd N, else on the sockets passed with
                     LISTEN_FDS/LISTEN_PID (fds 3, 4, ...). Every path answers
                     {\"pid\":..,\"worker\":..,\"workers\":..,\"path\":..};
                     /healthz answers ok; ?delay=MS holds the body back.
                     SIGTERM/SIGINT/SIGQUIT: stop accepting, finish open
                     requests, exit 0 (a second one: exit 1 at once).

Test helpers (each first prints \"ready <pid>\" on stdout):
  sleep [SECS]       Sleep SECS (fractions allowed), exit 0; forever without
                     SECS. Default signal dispositions.
  exit CODE          Exit with CODE (0-255).
  ignore-term        Block SIGTERM; print \"ignored 15\" for each one; run
                     until killed.
  signals [--exit-on SIG]
                     Print the number of every signal received (all catchable
                     ones, realtime included), one per line; exit 0 after
                     printing SIG (default TERM).
  orphans N [--secs S] [--stay]
                     Start N children that each start a grandchild sleeping S
                     seconds (default 0.2) and exit at once; print
                     \"orphan <pid>\" per grandchild once the children are gone;
                     then exit 0, or with --stay sleep until killed.
  zombie-check       Print \"zombies <n>\": processes in state Z (details on
                     stderr).
  status             Print \"ppid <n>\", \"pgid <n>\", \"sid <n>\", \"tpgid <n>\",
                     \"SigBlk: <hex>\", \"SigIgn: <hex>\", \"fd <n> <target>\" per
                     open fd, \"env NAME=VALUE\" for LISTEN_FDS, LISTEN_PID,
                     LISTEN_FDNAMES, CINIT_WORKER_ID, CINIT_WORKERS when set.
  help, --help       This text.
";

#[derive(Debug, PartialEq)]
enum Cmd {
    Help,
    Serve {
        fd: Option<RawFd>,
    },
    Sleep(Option<Duration>),
    Exit(i32),
    IgnoreTerm,
    Signals {
        exit_on: i32,
    },
    Orphans {
        n: usize,
        secs: Duration,
        stay: bool,
    },
    OrphanChild(Duration),
    ZombieCheck,
    Status,
}

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    let mut args = Vec::new();
    for a in std::env::args_os().skip(1) {
        match a.into_string() {
            Ok(a) => args.push(a),
            Err(a) => return usage_error(&format!("argument {a:?} is not UTF-8")),
        }
    }
    let cmd = match parse(&args) {
        Ok(cmd) => cmd,
        Err(msg) => return usage_error(&msg),
    };
    match cmd {
        Cmd::Help => {
            print!("{USAGE}");
            0
        }
        Cmd::Serve { fd } => serve(fd),
        Cmd::Sleep(secs) => helpers::sleep(secs),
        Cmd::Exit(code) => helpers::exit(code),
        Cmd::IgnoreTerm => helpers::ignore_term(),
        Cmd::Signals { exit_on } => helpers::signals(exit_on),
        Cmd::Orphans { n, secs, stay } => helpers::orphans(n, secs, stay),
        Cmd::OrphanChild(secs) => helpers::orphan_child(secs),
        Cmd::ZombieCheck => helpers::zombie_check(),
        Cmd::Status => helpers::status(),
    }
}

fn usage_error(msg: &str) -> i32 {
    eprintln!("cinit-demo: {msg}\nRun `cinit-demo --help` for the commands.");
    2
}

fn serve(fd: Option<RawFd>) -> i32 {
    let fds = match serve::listen_fds(fd) {
        Ok(fds) => fds,
        Err(msg) => return usage_error(&msg),
    };
    let mut checked = Vec::with_capacity(fds.len());
    for fd in fds {
        match serve::check(fd) {
            Ok(addr) => checked.push((fd, addr)),
            Err(msg) => return usage_error(&msg),
        }
    }
    let env_num = |k: &str| std::env::var(k).ok()?.parse::<u64>().ok();
    let me = http::Ident {
        pid: std::process::id(),
        worker: env_num("CINIT_WORKER_ID"),
        workers: env_num("CINIT_WORKERS"),
    };
    serve::run(checked, me)
}

fn parse(args: &[String]) -> Result<Cmd, String> {
    let Some((cmd, rest)) = args.split_first() else {
        return Err("a command is missing".into());
    };
    let mut rest = rest.iter().map(String::as_str);
    let cmd = match cmd.as_str() {
        "help" | "--help" | "-h" => Cmd::Help,
        "serve" => {
            let mut fd = None;
            while let Some(arg) = rest.next() {
                let value = match arg.strip_prefix("--fd=") {
                    Some(v) => v,
                    None if arg == "--fd" => rest.next().ok_or("--fd needs a number")?,
                    None => return Err(format!("serve: unexpected argument `{arg}`")),
                };
                let n = value
                    .parse::<RawFd>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| format!("--fd: `{value}` is not a file descriptor number"))?;
                fd = Some(n);
            }
            Cmd::Serve { fd }
        }
        "sleep" => {
            let secs = rest.next().map(seconds).transpose()?;
            Cmd::Sleep(secs)
        }
        "exit" => {
            let code = rest.next().ok_or("exit needs a CODE")?;
            let code = code
                .parse::<u8>()
                .map_err(|_| format!("exit: `{code}` is not a code from 0 to 255"))?;
            Cmd::Exit(code.into())
        }
        "ignore-term" => Cmd::IgnoreTerm,
        "signals" => {
            let mut exit_on = libc::SIGTERM;
            while let Some(arg) = rest.next() {
                let value = match arg.strip_prefix("--exit-on=") {
                    Some(v) => v,
                    None if arg == "--exit-on" => rest.next().ok_or("--exit-on needs a signal")?,
                    None => return Err(format!("signals: unexpected argument `{arg}`")),
                };
                exit_on = signal(value)?;
            }
            Cmd::Signals { exit_on }
        }
        "orphans" => {
            let (mut n, mut secs, mut stay) = (None, Duration::from_millis(200), false);
            while let Some(arg) = rest.next() {
                match arg {
                    "--stay" => stay = true,
                    "--secs" => secs = seconds(rest.next().ok_or("--secs needs a number")?)?,
                    _ if n.is_none() => {
                        n = Some(
                            arg.parse::<usize>()
                                .ok()
                                .filter(|n| *n <= 1000)
                                .ok_or_else(|| {
                                    format!("orphans: `{arg}` is not a count from 0 to 1000")
                                })?,
                        )
                    }
                    _ => return Err(format!("orphans: unexpected argument `{arg}`")),
                }
            }
            let n = n.ok_or("orphans needs a count N")?;
            Cmd::Orphans { n, secs, stay }
        }
        "orphan-child" => Cmd::OrphanChild(seconds(rest.next().ok_or("orphan-child needs SECS")?)?),
        "zombie-check" => Cmd::ZombieCheck,
        "status" => Cmd::Status,
        other => return Err(format!("unknown command `{other}`")),
    };
    match rest.next() {
        Some(extra) => Err(format!("unexpected argument `{extra}`")),
        None => Ok(cmd),
    }
}

fn seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("`{text}` is not a number of seconds"))
}

/// A signal as a number (realtime ones included) or a name, with or
/// without `SIG`: `15`, `TERM`, `SIGTERM`, `RTMIN+2`.
fn signal(text: &str) -> Result<i32, String> {
    let bad = || format!("`{text}` is not a signal");
    let max = libc::SIGRTMAX();
    if let Ok(n) = text.parse::<i32>() {
        return if (1..=max).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    // RTMIN, RTMIN+N, RTMAX, RTMAX-N.
    let rt = |base: i32, off: &str, sign: char| -> Result<i32, String> {
        let off = match off {
            "" => 0,
            _ => off
                .strip_prefix(sign)
                .and_then(|n| n.parse::<u8>().ok())
                .ok_or_else(bad)?,
        };
        let n = if sign == '+' {
            base + i32::from(off)
        } else {
            base - i32::from(off)
        };
        Some(n)
            .filter(|n| (libc::SIGRTMIN()..=max).contains(n))
            .ok_or_else(bad)
    };
    if let Some(off) = name.strip_prefix("RTMIN") {
        return rt(libc::SIGRTMIN(), off, '+');
    }
    if let Some(off) = name.strip_prefix("RTMAX") {
        return rt(max, off, '-');
    }
    Signal::from_str(&format!("SIG{name}"))
        .map(|s| s as i32)
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Cmd, String> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn parses_commands() {
        assert_eq!(p(&["serve"]), Ok(Cmd::Serve { fd: None }));
        assert_eq!(p(&["serve", "--fd", "5"]), Ok(Cmd::Serve { fd: Some(5) }));
        assert_eq!(p(&["serve", "--fd=3"]), Ok(Cmd::Serve { fd: Some(3) }));
        assert_eq!(
            p(&["sleep", "0.5"]),
            Ok(Cmd::Sleep(Some(Duration::from_millis(500))))
        );
        assert_eq!(p(&["exit", "255"]), Ok(Cmd::Exit(255)));
        assert_eq!(
            p(&["orphans", "--stay", "3"]),
            Ok(Cmd::Orphans {
                n: 3,
                secs: Duration::from_millis(200),
                stay: true
            })
        );
        assert_eq!(
            p(&["signals", "--exit-on", "usr1"]),
            Ok(Cmd::Signals { exit_on: 10 })
        );
    }

    #[test]
    fn rejects_bad_arguments() {
        for bad in [
            &[][..],
            &["nope"],
            &["serve", "--fd"],
            &["serve", "--fd", "-1"],
            &["serve", "x"],
            &["sleep", "-1"],
            &["sleep", "nan"],
            &["sleep", "1", "2"],
            &["exit"],
            &["exit", "256"],
            &["orphans"],
            &["orphans", "1", "2"],
            &["signals", "--exit-on", "NOPE"],
            &["status", "x"],
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn signal_names_and_numbers() {
        assert_eq!(signal("TERM"), Ok(15));
        assert_eq!(signal("SIGint"), Ok(2));
        assert_eq!(signal("34"), Ok(34));
        assert_eq!(signal("RTMIN+2"), Ok(libc::SIGRTMIN() + 2));
        assert_eq!(signal("RTMAX"), Ok(libc::SIGRTMAX()));
        assert!(signal("0").is_err());
        assert!(signal("RTMAX+1").is_err());
        assert!(signal("RTMIN-1").is_err());
        assert_eq!(signal("rtmax-1"), Ok(libc::SIGRTMAX() - 1));
    }
}
