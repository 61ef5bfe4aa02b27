//! Pre-start steps, run in order before any worker: waits (the probes live
//! in `prestart`) and commands. Commands are children of the init like
//! the workers: reaped by the one reaper, sent the signals the init gets.
//! A shutdown signal during a step stops it (the stop signal, then SIGKILL
//! after the graceful timeout) and the init exits 128+N without starting
//! any worker. A step that fails or times out stops the start with its
//! own exit code, or 1.

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use crate::error::Error;
use crate::log;
use crate::plan::{Plan, StepPlan};
use crate::prestart::{self, Target};
use crate::process;
use crate::reaper::{self, Status};
use crate::signals::Signals;
use crate::vocab::format_duration;
use crate::vocab::Signal;

/// The level of the pre-start progress lines. Not "info": plain mode
/// silences info (tini's territory: a child that starts is not news), but a
/// container sitting there waiting for its database must say so, whatever
/// the mode. "notice" is syslog's level between info and warning.
const PROGRESS: &str = "notice";

pub enum Outcome {
    Done,
    Interrupted(Signal),
}

fn is_shutdown(s: Signal) -> bool {
    [Signal::TERM, Signal::INT, Signal::QUIT].contains(&s)
}

pub async fn run_all(plan: &Plan, signals: &mut Signals) -> Result<Outcome, Error> {
    let total = plan.steps.len();
    for (i, step) in plan.steps.iter().enumerate() {
        let n = i + 1;
        let outcome = match step {
            StepPlan::WaitFor { target, timeout } => {
                wait(n, total, target, *timeout, signals).await?
            }
            StepPlan::Run { argv, timeout } => {
                let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
                command(plan, &format!("{n}/{total}"), &argv, *timeout, signals).await?
            }
            StepPlan::Dir { path, timeout } => {
                let mut outcome = Outcome::Done;
                for file in executables(path)? {
                    let label = format!("{n}/{total} ({})", file.display());
                    outcome =
                        command(plan, &label, &[file.into_os_string()], *timeout, signals).await?;
                    if matches!(outcome, Outcome::Interrupted(_)) {
                        break;
                    }
                }
                outcome
            }
        };
        if let Outcome::Interrupted(sig) = outcome {
            log::event(
                "warn",
                "prestart_interrupted",
                &format!("{sig} during pre-start step {n}/{total}: no worker started"),
                &[("step", n.into()), ("signal", sig.name().into())],
            );
            return Ok(outcome);
        }
    }
    Ok(Outcome::Done)
}

/// The executable regular files of `dir`, in byte order of their names;
/// anything else is skipped with a log line.
fn executables(dir: &Path) -> Result<Vec<std::path::PathBuf>, Error> {
    use std::os::unix::fs::PermissionsExt;
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Prestart {
        step: format!("--prestart-dir {}", dir.display()),
        reason: format!("failed to read the directory: {e}"),
        code: None,
    })?;
    let mut files: Vec<std::path::PathBuf> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    Ok(files
        .into_iter()
        .filter(|p| match std::fs::metadata(p) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => true,
            _ => {
                log::event(
                    PROGRESS,
                    "prestart_skip",
                    &format!(
                        "pre-start: skipping {} (not an executable file)",
                        p.display()
                    ),
                    &[],
                );
                false
            }
        })
        .collect())
}

async fn wait(
    n: usize,
    total: usize,
    target: &Target,
    timeout: Duration,
    signals: &mut Signals,
) -> Result<Outcome, Error> {
    let url = target.to_string();
    let url = url.as_str();
    log::event(
        PROGRESS,
        "wait",
        &format!(
            "pre-start {n}/{total}: waiting for {target} (timeout {})",
            format_duration(timeout)
        ),
        &[("step", n.into()), ("url", url.into())],
    );
    let mut report = |p: &prestart::Progress| {
        let tries = match p.attempt {
            1 => "1 attempt".to_string(),
            k => format!("{k} attempts"),
        };
        log::event(
            PROGRESS,
            "wait_progress",
            &format!(
                "pre-start {n}/{total}: still waiting for {url} after {} ({tries}; last error: {})",
                format_duration(Duration::from_secs(p.elapsed.as_secs())),
                p.last_error
            ),
            &[
                ("step", n.into()),
                ("url", url.into()),
                ("attempt", p.attempt.into()),
            ],
        )
    };
    let fut = prestart::wait_for(target, timeout, &mut report);
    tokio::pin!(fut);
    loop {
        tokio::select! {
            r = &mut fut => {
                return match r {
                    Ok(took) => {
                        log::event(PROGRESS, "wait_done", &format!("pre-start {n}/{total}: {target} answered after {}", format_duration(Duration::from_millis(took.as_millis() as u64))), &[("step", n.into())]);
                        Ok(Outcome::Done)
                    }
                    Err(reason) => Err(Error::Prestart { step: format!("{n}/{total} (wait for {url})"), reason, code: None }),
                };
            }
            received = signals.next() => {
                let received = received.map_err(|e| Error::io("read signals", e))?;
                if received.signal == Signal::CHLD {
                    reaper::reap();
                } else if is_shutdown(received.signal) {
                    return Ok(Outcome::Interrupted(received.signal));
                }
            }
        }
    }
}

async fn command(
    plan: &Plan,
    label: &str,
    argv: &[OsString],
    timeout: Duration,
    signals: &mut Signals,
) -> Result<Outcome, Error> {
    let words: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let shown = crate::plan::shell_join(&words);
    let step = format!("{label} (`{shown}`)");
    // On a terminal (`docker run -it`) the step must be its foreground
    // group: in the background, a step that reads it (a prompt, psql
    // without -f) is stopped by SIGTTIN, resumed below, stopped again: a
    // busy loop until the timeout.
    let terminal = Terminal(nix::unistd::isatty(std::io::stdin()).unwrap_or(false));
    let spec = process::Spec {
        argv: argv.to_vec(),
        env: Vec::new(),
        fds: Vec::new(),
        new_pgroup: true,
        foreground: terminal.0,
    };
    let pid = match process::spawn(&spec) {
        Ok(pid) => pid,
        Err(e) => {
            return Err(Error::Prestart {
                step,
                reason: e.to_string(),
                code: Some(crate::error::exit_code(&e)),
            })
        }
    };
    log::event(
        PROGRESS,
        "prestart",
        &format!(
            "pre-start {label}: running {shown} (pid {pid}, timeout {})",
            format_duration(timeout)
        ),
        &[
            ("pid", pid.as_raw().into()),
            ("command", shown.clone().into()),
        ],
    );
    let started = Instant::now();
    let stop_signal = plan.shutdown.stop_signal.unwrap_or(Signal::TERM);
    // Escalation: first the deadline of the step; once a stop was sent, the
    // graceful timeout before SIGKILL.
    let mut deadline = started + timeout;
    let mut stopping: Option<StopReason> = None;
    loop {
        let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
        tokio::select! {
            received = signals.next() => {
                let received = received.map_err(|e| Error::io("read signals", e))?;
                let sig = received.signal;
                if sig == Signal::CHLD {
                    for (p, status) in reaper::reap() {
                        if p != pid {
                            continue;
                        }
                        match status {
                            Status::Stopped(_) => super::send(pid, Signal::CONT),
                            status => return finish(label, &step, status, started, stopping),
                        }
                    }
                } else if is_shutdown(sig) {
                    if stopping.is_some() {
                        stop_group(pid, Signal::KILL);
                    } else {
                        stop_group(pid, plan.shutdown.stop_signal.unwrap_or(sig));
                        stopping = Some(StopReason::Signal(sig));
                        deadline = Instant::now() + plan.shutdown.graceful_timeout;
                    }
                } else {
                    super::send(pid, sig);
                }
            }
            _ = sleep => {
                if stopping.is_some() {
                    stop_group(pid, Signal::KILL);
                    deadline = Instant::now() + Duration::from_secs(3600);
                } else {
                    log::event("error", "prestart_timeout", &format!("pre-start {label}: still running after {}; stopping it", format_duration(timeout)), &[("pid", pid.as_raw().into())]);
                    stop_group(pid, stop_signal);
                    stopping = Some(StopReason::Timeout(timeout));
                    deadline = Instant::now() + plan.shutdown.graceful_timeout;
                }
            }
        }
    }
}

/// Whether a step was given the terminal. However the step ends, the
/// terminal then goes back to the init's own process group, so that
/// Ctrl-C reaches the init again (in worker mode the workers never take
/// the terminal). The init may do this from the background: SIGTTOU is
/// blocked, like every signal it reads from its signalfd.
struct Terminal(bool);

impl Drop for Terminal {
    fn drop(&mut self) {
        if self.0 {
            let _ = nix::unistd::tcsetpgrp(std::io::stdin(), nix::unistd::getpgrp());
        }
    }
}

enum StopReason {
    Signal(Signal),
    Timeout(Duration),
}

/// The step leads its own process group; stop the whole group, so that
/// what it started goes too.
fn stop_group(pid: Pid, signal: Signal) {
    crate::process::sys::kill_raw(-pid.as_raw(), signal.raw());
    crate::process::sys::kill_raw(-pid.as_raw(), Signal::CONT.raw());
}

fn finish(
    label: &str,
    step: &str,
    status: Status,
    started: Instant,
    stopping: Option<StopReason>,
) -> Result<Outcome, Error> {
    let took = format_duration(Duration::from_millis(started.elapsed().as_millis() as u64));
    match stopping {
        Some(StopReason::Signal(sig)) => Ok(Outcome::Interrupted(sig)),
        Some(StopReason::Timeout(t)) => Err(Error::Prestart {
            step: step.to_string(),
            reason: format!("timed out after {}", format_duration(t)),
            code: None,
        }),
        None if status == Status::Exited(0) => {
            log::event(
                PROGRESS,
                "prestart_done",
                &format!("pre-start {label}: done in {took}"),
                &[],
            );
            Ok(Outcome::Done)
        }
        None => Err(Error::Prestart {
            step: step.to_string(),
            reason: format!("{} after {took}", status.describe()),
            code: Some(status.code()),
        }),
    }
}
