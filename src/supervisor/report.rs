//! What happened, typed: the machine says `Report::Exited { .. }`, and this
//! module says it in words (the text log line), as an event name with
//! fields (the JSON log line), and as a level. The status and the metrics
//! read the machine's state, not these lines. Tests assert on reports,
//! never on prose.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use nix::unistd::Pid;
use serde_json::Value;

use super::events::{Peer, Who};
use crate::log::Level;
use crate::reaper::Status;
use crate::vocab::{format_bytes, format_duration, format_number, format_uptime, Signal};

/// A pre-start step's place: `2/3`, or `2/3 (/docker-entrypoint.d/10-x)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepLabel {
    pub n: usize,
    pub total: usize,
    pub file: Option<String>,
}

impl fmt::Display for StepLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.n, self.total)?;
        if let Some(file) = &self.file {
            write!(f, " ({file})")?;
        }
        Ok(())
    }
}

/// Why a worker was restarted or replaced: the reasons the status and
/// the metrics count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Why {
    /// It exited 0 and was started again.
    Exit,
    /// It failed (a code, a signal) and was started again.
    Crash,
    /// The kernel's OOM killer killed it.
    Oom,
    /// It grew past `--max-worker-memory`, or the container past
    /// `--memory-high`.
    Memory,
    /// It reached `--max-worker-age`.
    Age,
    /// The watchdog did not hear from it in time.
    Hung,
    /// A rolling restart (HUP, `init --reload`).
    Reload,
    /// Scaling added its slot.
    Scale,
}

impl Why {
    pub const ALL: [Why; 8] = [
        Why::Exit,
        Why::Crash,
        Why::Oom,
        Why::Memory,
        Why::Age,
        Why::Hung,
        Why::Reload,
        Why::Scale,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Why::Exit => "exit",
            Why::Crash => "crash",
            Why::Oom => "oom",
            Why::Memory => "memory",
            Why::Age => "age",
            Why::Hung => "hung",
            Why::Reload => "reload",
            Why::Scale => "scale",
        }
    }
}

/// What a slot does after its worker ended on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    Restart(Duration),
    /// Not restarted (restart policy).
    Done,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Report {
    Listening {
        address: String,
        fd: i32,
    },
    Started {
        who: Who,
        pid: Pid,
        replacement: bool,
    },
    /// A start that failed for good (the command is wrong).
    SpawnFailed {
        who: Who,
        message: String,
        code: i32,
    },
    /// No process could be made; another try follows.
    ForkFailed {
        who: Who,
        message: String,
        retry_in: Duration,
    },
    /// A worker ended on its own while running.
    Exited {
        who: Who,
        /// None for a start that failed before the child existed.
        pid: Option<Pid>,
        status: Status,
        ran: Duration,
        next: Next,
    },
    /// A worker ended while the init was stopping.
    Ended {
        who: Who,
        pid: Pid,
        status: Status,
    },
    /// The worker being replaced ended first; its replacement takes over.
    TookOver {
        who: Who,
        old: Pid,
        status: Status,
        new: Pid,
    },
    Replaced {
        who: Who,
        old: Pid,
        new: Pid,
        reason: Why,
    },
    Ready {
        who: Who,
        pid: Pid,
        after: Duration,
        how: &'static str,
    },
    /// The memory guard or the age limit asks for a new worker.
    Recycle {
        who: Who,
        pid: Pid,
        reason: Why,
        /// The figures that triggered it, in words.
        detail: String,
    },
    RecycleFailed {
        who: Who,
        reason: Why,
        why: String,
        retry_in: Duration,
    },
    /// Killed by the kernel's OOM killer (SIGKILL from no one in the init,
    /// while the cgroup's oom_kill count rose).
    OomKilled {
        who: Who,
        pid: Pid,
        limit: Option<u64>,
        last: Option<u64>,
    },
    NotReady {
        who: Who,
        pid: Pid,
        timeout: Duration,
        replacement: bool,
    },
    /// /proc does not show a worker's fds (another uid without
    /// CAP_SYS_PTRACE): `listen` readiness falls back to the delay.
    Unseen {
        who: Who,
        pid: Pid,
    },
    Hung {
        who: Who,
        pid: Pid,
        silent: Duration,
        triggered: bool,
    },
    /// Every slot has a ready worker.
    AllReady {
        count: u32,
    },
    /// A replaced or scaled-away worker ended.
    Retired {
        who: Who,
        pid: Pid,
        status: Status,
    },
    AllFinished,
    CrashLoop {
        who: Who,
        failures: u32,
        within: Duration,
        last: Status,
    },
    /// A program that is not critical is in a crash loop: it is left
    /// stopped and the other programs go on.
    GaveUp {
        who: Who,
        failures: u32,
        within: Duration,
        last: Status,
        /// Programs that start after it and so will not start.
        blocked: Vec<Arc<str>>,
    },
    /// A program's turn to start: the programs of its `after` are ready.
    ProgramStarting {
        program: Arc<str>,
        after: Vec<Arc<str>>,
    },
    /// A program's turn to stop, in the stop order.
    ProgramStopping {
        program: Arc<str>,
        signal: Signal,
        timeout: Duration,
        workers: u32,
    },
    /// A program's workers outlived its graceful timeout.
    ProgramTimeout {
        program: Arc<str>,
        timeout: Duration,
        pids: Vec<i32>,
    },
    StoppedChild {
        who: Who,
        pid: Pid,
        signal: Signal,
        resumed: bool,
    },
    Reload,
    Replanned {
        cpus: f64,
        memory: Option<u64>,
        count: u32,
    },
    ReloadFailed {
        who: Who,
        why: String,
    },
    Scaled {
        from: u32,
        to: u32,
    },
    AlreadyAt {
        count: u32,
    },
    AtMost {
        max: u32,
    },
    Ignored {
        signal: Signal,
        why: &'static str,
    },
    /// A shutdown signal a `--signal-map` rule drops.
    Dropped {
        signal: Signal,
    },
    Shutdown {
        signal: Signal,
        delay: Option<Duration>,
        plain: bool,
    },
    ShutdownAgain {
        signal: Signal,
    },
    GracefulTimeout {
        timeout: Duration,
        pids: Vec<i32>,
        plain: bool,
    },
    LeftoversKilled,
    Exit {
        code: i32,
    },
    WaitBegin {
        step: StepLabel,
        target: String,
        timeout: Duration,
    },
    WaitProgress {
        step: StepLabel,
        target: String,
        elapsed: Duration,
        attempt: u32,
        last_error: String,
    },
    WaitDone {
        step: StepLabel,
        target: String,
        took: Duration,
    },
    StepSkip {
        path: String,
    },
    StepRunning {
        step: StepLabel,
        command: String,
        pid: Pid,
        timeout: Duration,
    },
    StepDone {
        step: StepLabel,
        took: Duration,
    },
    StepTimeout {
        step: StepLabel,
        timeout: Duration,
        pid: Pid,
    },
    StepFailed {
        step: StepLabel,
        what: String,
        reason: String,
    },
    StepInterrupted {
        step: StepLabel,
        signal: Signal,
    },
    /// A command came through the control socket.
    Requested {
        command: String,
        by: Peer,
    },
    /// A control command that cannot be done now.
    Refused {
        command: String,
        why: &'static str,
    },
    /// `init --reload`: the same as HUP's `Reload`, without the signal.
    Reloading {
        /// `--program NAME`; none: every program.
        program: Option<Arc<str>>,
    },
    /// `init --stop`: the same as TERM's `Shutdown`, without the signal.
    Stopping {
        delay: Option<Duration>,
    },
}

fn status_fields(f: &mut Vec<(&'static str, Value)>, status: Status) {
    match status {
        Status::Exited(c) => f.push(("code", c.into())),
        Status::Signaled(s) | Status::Stopped(s) => f.push(("signal", s.name().into())),
    }
}

fn join(names: &[Arc<str>]) -> String {
    names
        .iter()
        .map(|n| n.as_ref())
        .collect::<Vec<_>>()
        .join(", ")
}

fn who_fields(f: &mut Vec<(&'static str, Value)>, who: &Who) {
    if !who.program.is_empty() {
        f.push(("program", who.program.as_ref().into()));
    }
    f.push(("slot", who.slot.into()));
}

fn secs(d: Duration) -> Value {
    ((d.as_secs_f64() * 1000.0).round() / 1000.0).into()
}

impl Report {
    pub fn level(&self) -> Level {
        use Report::*;
        match self {
            SpawnFailed { .. }
            | OomKilled { .. }
            | Hung { .. }
            | NotReady { .. }
            | CrashLoop { .. }
            | GaveUp { .. }
            | ReloadFailed { .. }
            | StepFailed { .. }
            | StepTimeout { .. } => Level::Error,
            ForkFailed { .. }
            | Recycle { .. }
            | RecycleFailed { .. }
            | Unseen { .. }
            | GracefulTimeout { .. }
            | ProgramTimeout { .. }
            | LeftoversKilled
            | ShutdownAgain { .. }
            | StepInterrupted { .. } => Level::Warn,
            Exited { next, .. } => match next {
                Next::Restart(_) => Level::Warn,
                Next::Done => Level::Info,
            },
            StoppedChild { resumed: false, .. } => Level::Warn,
            Dropped { .. } | Requested { .. } | Refused { .. } => Level::Notice,
            // A shutdown delay in plain mode changes when the child hears
            // of the stop: worth a line where info is silenced.
            Shutdown {
                plain: true,
                delay: Some(_),
                ..
            } => Level::Notice,
            WaitBegin { .. }
            | WaitProgress { .. }
            | WaitDone { .. }
            | StepSkip { .. }
            | StepRunning { .. }
            | StepDone { .. } => Level::Notice,
            _ => Level::Info,
        }
    }

    /// The `event` of a JSON line.
    pub fn event(&self) -> &'static str {
        use Report::*;
        match self {
            Listening { .. } => "listening",
            Started { .. } => "started",
            SpawnFailed { .. } => "spawn_failed",
            ForkFailed { .. } => "fork_failed",
            Exited { .. } | Ended { .. } | TookOver { .. } => "exited",
            Replaced { .. } => "replaced",
            Ready { .. } => "ready",
            Recycle { .. } => "recycle",
            RecycleFailed { .. } => "recycle_failed",
            OomKilled { .. } => "oom_killed",
            NotReady { .. } => "not_ready",
            Unseen { .. } => "readiness_unseen",
            Hung { .. } => "hung",
            AllReady { .. } => "all_ready",
            Retired { .. } => "retired",
            AllFinished => "finished",
            CrashLoop { .. } => "crash_loop",
            GaveUp { .. } => "program_gave_up",
            ProgramStarting { .. } => "program_start",
            ProgramStopping { .. } => "program_stop",
            ProgramTimeout { .. } => "kill",
            StoppedChild { .. } => "stopped",
            Reload => "reload",
            Replanned { .. } => "replan",
            ReloadFailed { .. } => "reload_failed",
            Scaled { .. } | AlreadyAt { .. } | AtMost { .. } => "scale",
            Ignored { .. } | Dropped { .. } => "ignored",
            Shutdown { .. } | ShutdownAgain { .. } => "shutdown",
            GracefulTimeout { .. } | LeftoversKilled => "kill",
            Exit { .. } => "exit",
            WaitBegin { .. } => "wait",
            WaitProgress { .. } => "wait_progress",
            WaitDone { .. } => "wait_done",
            StepSkip { .. } => "prestart_skip",
            StepRunning { .. } => "prestart",
            StepDone { .. } => "prestart_done",
            StepTimeout { .. } => "prestart_timeout",
            StepFailed { .. } => "prestart_failed",
            StepInterrupted { .. } => "prestart_interrupted",
            Requested { .. } => "control",
            Refused { .. } => "control_refused",
            Reloading { .. } => "reload",
            Stopping { .. } => "shutdown",
        }
    }

    /// The machine-readable fields of a JSON line.
    pub fn fields(&self) -> Vec<(&'static str, Value)> {
        use Report::*;
        let mut f = Vec::new();
        match self {
            Listening { address, fd } => {
                f.push(("address", address.as_str().into()));
                f.push(("fd", (*fd).into()));
            }
            Started {
                who,
                pid,
                replacement,
            } => {
                who_fields(&mut f, who);
                f.push(("pid", pid.as_raw().into()));
                f.push(("replacement", (*replacement).into()));
            }
            SpawnFailed { who, code, .. } => {
                who_fields(&mut f, who);
                f.push(("code", (*code).into()));
            }
            ForkFailed { who, retry_in, .. } => {
                who_fields(&mut f, who);
                f.push(("restart_in_s", secs(*retry_in)));
            }
            Exited {
                who,
                pid,
                status,
                ran,
                next,
            } => {
                who_fields(&mut f, who);
                if let Some(pid) = pid {
                    f.push(("pid", pid.as_raw().into()));
                }
                status_fields(&mut f, *status);
                f.push(("uptime_s", secs(*ran)));
                if let Next::Restart(d) = next {
                    f.push(("restart_in_s", secs(*d)));
                }
            }
            Ended { who, pid, status } | Retired { who, pid, status } => {
                who_fields(&mut f, who);
                f.push(("pid", pid.as_raw().into()));
                status_fields(&mut f, *status);
            }
            TookOver {
                who,
                old,
                status,
                new,
            } => {
                who_fields(&mut f, who);
                f.push(("pid", old.as_raw().into()));
                status_fields(&mut f, *status);
                f.push(("new_pid", new.as_raw().into()));
            }
            Replaced {
                who,
                old,
                new,
                reason,
            } => {
                who_fields(&mut f, who);
                f.push(("pid", new.as_raw().into()));
                f.push(("old_pid", old.as_raw().into()));
                f.push(("reason", reason.as_str().into()));
            }
            Ready {
                who,
                pid,
                after,
                how,
            } => {
                who_fields(&mut f, who);
                f.push(("pid", pid.as_raw().into()));
                f.push(("after_s", secs(*after)));
                f.push(("how", (*how).into()));
            }
            NotReady {
                who,
                pid,
                timeout,
                replacement,
            } => {
                who_fields(&mut f, who);
                f.push(("pid", pid.as_raw().into()));
                f.push(("timeout_s", secs(*timeout)));
                f.push(("replacement", (*replacement).into()));
            }
            Unseen { who, pid } => {
                who_fields(&mut f, who);
                f.push(("pid", pid.as_raw().into()));
            }
            Recycle {
                who, pid, reason, ..
            } => {
                who_fields(&mut f, who);
                f.push(("pid", pid.as_raw().into()));
                f.push(("reason", reason.as_str().into()));
            }
            RecycleFailed { who, reason, .. } => {
                who_fields(&mut f, who);
                f.push(("reason", reason.as_str().into()));
            }
            OomKilled {
                who,
                pid,
                limit,
                last,
            } => {
                who_fields(&mut f, who);
                f.push(("pid", pid.as_raw().into()));
                f.push(("limit_bytes", (*limit).into()));
                f.push(("last_bytes", (*last).into()));
            }
            Hung {
                who, pid, silent, ..
            } => {
                who_fields(&mut f, who);
                f.push(("pid", pid.as_raw().into()));
                f.push(("silent_s", secs(*silent)));
            }
            AllReady { count } => f.push(("workers", (*count).into())),
            CrashLoop {
                who,
                failures,
                last,
                ..
            } => {
                who_fields(&mut f, who);
                f.push(("failures", (*failures).into()));
                status_fields(&mut f, *last);
            }
            GaveUp {
                who,
                failures,
                last,
                blocked,
                ..
            } => {
                who_fields(&mut f, who);
                f.push(("failures", (*failures).into()));
                status_fields(&mut f, *last);
                f.push((
                    "blocked",
                    blocked.iter().map(|b| Value::from(b.as_ref())).collect(),
                ));
            }
            ProgramStarting { program, after } => {
                f.push(("program", program.as_ref().into()));
                f.push((
                    "after",
                    after.iter().map(|b| Value::from(b.as_ref())).collect(),
                ));
            }
            ProgramStopping {
                program,
                signal,
                timeout,
                workers,
            } => {
                f.push(("program", program.as_ref().into()));
                f.push(("signal", signal.name().into()));
                f.push(("timeout_s", secs(*timeout)));
                f.push(("workers", (*workers).into()));
            }
            ProgramTimeout { program, pids, .. } => {
                f.push(("program", program.as_ref().into()));
                f.push(("pids", pids.clone().into()));
            }
            StoppedChild {
                who, pid, signal, ..
            } => {
                who_fields(&mut f, who);
                f.push(("pid", pid.as_raw().into()));
                f.push(("signal", signal.name().into()));
            }
            Replanned { count, .. } => f.push(("workers", (*count).into())),
            ReloadFailed { who, .. } => who_fields(&mut f, who),
            Scaled { from, to } => {
                f.push(("from", (*from).into()));
                f.push(("workers", (*to).into()));
            }
            AlreadyAt { count } => f.push(("workers", (*count).into())),
            AtMost { max } => f.push(("max_workers", (*max).into())),
            Ignored { signal, .. } | Dropped { signal } | ShutdownAgain { signal } => {
                f.push(("signal", signal.name().into()))
            }
            Shutdown { signal, delay, .. } => {
                f.push(("signal", signal.name().into()));
                if let Some(d) = delay {
                    f.push(("delay_s", secs(*d)));
                }
            }
            GracefulTimeout { pids, .. } => f.push(("pids", pids.clone().into())),
            Exit { code } => f.push(("code", (*code).into())),
            WaitBegin { step, target, .. } | WaitDone { step, target, .. } => {
                f.push(("step", step.n.into()));
                f.push(("url", target.as_str().into()));
            }
            WaitProgress {
                step,
                target,
                attempt,
                ..
            } => {
                f.push(("step", step.n.into()));
                f.push(("url", target.as_str().into()));
                f.push(("attempt", (*attempt).into()));
            }
            StepRunning {
                step, command, pid, ..
            } => {
                f.push(("step", step.n.into()));
                f.push(("pid", pid.as_raw().into()));
                f.push(("command", command.as_str().into()));
            }
            StepDone { step, .. } | StepFailed { step, .. } => f.push(("step", step.n.into())),
            StepTimeout { step, pid, .. } => {
                f.push(("step", step.n.into()));
                f.push(("pid", pid.as_raw().into()));
            }
            StepInterrupted { step, signal } => {
                f.push(("step", step.n.into()));
                f.push(("signal", signal.name().into()));
            }
            Requested { command, by } => {
                f.push(("command", command.as_str().into()));
                f.push(("peer_pid", by.pid.into()));
                f.push(("peer_uid", by.uid.into()));
            }
            Refused { command, .. } => f.push(("command", command.as_str().into())),
            Stopping { delay } => {
                if let Some(d) = delay {
                    f.push(("delay_s", secs(*d)));
                }
            }
            AllFinished | LeftoversKilled | Reload | StepSkip { .. } => {}
            Reloading { program } => {
                if let Some(p) = program {
                    f.push(("program", Value::from(p.as_ref())));
                }
            }
        }
        f
    }

    /// Writes the report as one log line (nothing is built for a line
    /// the log would drop: plain mode's info).
    pub fn log(&self) {
        if !crate::log::enabled(self.level()) {
            return;
        }
        crate::log::event(
            self.level(),
            self.event(),
            &self.to_string(),
            &self.fields(),
        );
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Report::*;
        match self {
            Listening { address, fd } => write!(f, "listening on {address} (fd {fd} in workers)"),
            Started {
                who,
                pid,
                replacement: false,
            } => write!(f, "{who} started (pid {pid})"),
            Started {
                who,
                pid,
                replacement: true,
            } => write!(f, "{who} replacement started (pid {pid})"),
            SpawnFailed { message, .. } => f.write_str(message),
            ForkFailed {
                who,
                message,
                retry_in,
            } => write!(
                f,
                "{who}: {message}; the running workers keep serving; trying again in {}",
                format_duration(*retry_in)
            ),
            Exited {
                who,
                status,
                ran,
                next,
                ..
            } => {
                write!(f, "{who} {} after {}", status.describe(), format_uptime(*ran))?;
                match next {
                    Next::Restart(d) => write!(f, "; restarting in {}", format_duration(*d)),
                    Next::Done => Ok(()),
                }
            }
            Ended { who, pid, status } => write!(f, "{who} (pid {pid}) {}", status.describe()),
            TookOver {
                who,
                old,
                status,
                new,
            } => write!(
                f,
                "{who} (pid {old}) {} during the reload; its replacement (pid {new}) takes over",
                status.describe()
            ),
            Replaced {
                who,
                old,
                new,
                reason,
            } => match reason {
                Why::Reload => write!(f, "{who} replaced: pid {new} took over from pid {old}"),
                r => write!(
                    f,
                    "{who} replaced ({}): pid {new} took over from pid {old}",
                    r.as_str()
                ),
            },
            Ready { who, pid, after, how } => write!(
                f,
                "{who} ready (pid {pid}) after {} ({how})",
                format_uptime(*after)
            ),
            NotReady {
                who,
                pid,
                timeout,
                replacement: false,
            } => write!(
                f,
                "{who} (pid {pid}) was not ready within {} (--ready-timeout); stopping it",
                format_duration(*timeout)
            ),
            NotReady {
                who,
                pid,
                timeout,
                replacement: true,
            } => write!(
                f,
                "{who} replacement (pid {pid}) was not ready within {} (--ready-timeout); stopping it",
                format_duration(*timeout)
            ),
            Recycle {
                who,
                pid,
                reason,
                detail,
            } => write!(
                f,
                "{who} (pid {pid}): {detail}; replacing it ({}), new worker first",
                reason.as_str()
            ),
            RecycleFailed {
                who,
                reason,
                why,
                retry_in,
            } => write!(
                f,
                "{who}: its replacement ({}) {why}; it keeps serving, not retried for {}",
                reason.as_str(),
                format_duration(*retry_in)
            ),
            OomKilled {
                who,
                pid,
                limit,
                last,
            } => {
                write!(
                    f,
                    "{who} (pid {pid}) was killed by the kernel OOM killer (container limit {}",
                    limit.map(format_bytes).unwrap_or_else(|| "unknown".into()),
                )?;
                match last {
                    Some(l) => write!(f, ", worker last sampled at {})", format_bytes(*l)),
                    None => f.write_str(")"),
                }
            }
            Unseen { who, pid } => write!(
                f,
                "{who} (pid {pid}): /proc does not show its sockets (another user, no CAP_SYS_PTRACE): ready after --min-uptime instead"
            ),
            Hung {
                who,
                pid,
                silent,
                triggered: false,
            } => write!(
                f,
                "{who} (pid {pid}) is hung: no WATCHDOG=1 for {}; replacing it and stopping it",
                format_uptime(*silent)
            ),
            Hung {
                who,
                pid,
                triggered: true,
                ..
            } => write!(
                f,
                "{who} (pid {pid}) sent WATCHDOG=trigger; replacing it and stopping it"
            ),
            AllReady { count } => write!(f, "ready: {count} worker(s) serving"),
            Retired { who, pid, status } => {
                write!(f, "{who}: the old worker (pid {pid}) {}", status.describe())
            }
            AllFinished => f.write_str("every worker has exited and none is restarted"),
            CrashLoop {
                who,
                failures,
                within,
                last,
            } => write!(
                f,
                "crash loop: {who} failed {failures} times in a row, each within {} of starting (last: {}); stopping everything",
                format_duration(*within),
                last.describe()
            ),
            StoppedChild {
                who,
                pid,
                signal,
                resumed: true,
            } => write!(
                f,
                "{who} (pid {pid}) was stopped by {signal}; resumed (a container has no shell to resume it)"
            ),
            StoppedChild {
                who,
                pid,
                signal,
                resumed: false,
            } => write!(
                f,
                "{who} (pid {pid}) is stopped by {signal}: it used the terminal from the background; not resumed"
            ),
            Reload => f.write_str("SIGHUP: re-reading limits, then replacing every worker one by one"),
            Replanned { cpus, memory, count } => write!(
                f,
                "limits re-read: {} cpus, {}; {count} worker(s)",
                format_number(*cpus),
                memory.map(format_bytes).unwrap_or_else(|| "no memory limit".into())
            ),
            ReloadFailed { who, why } => write!(
                f,
                "reload stopped: the new {who} {why}; the running workers keep serving"
            ),
            Scaled { from, to } => write!(f, "scaling from {from} to {to} worker(s)"),
            AlreadyAt { count } => write!(f, "already at {count} worker(s)"),
            AtMost { max } => write!(
                f,
                "not scaling up: already at the most workers allowed ({max}, --max-workers)"
            ),
            Ignored { signal, why } => write!(f, "{signal} ignored: {why}"),
            Dropped { signal } => write!(f, "{signal} ignored: --signal-map drops it"),
            Shutdown {
                signal,
                delay: None,
                ..
            } => write!(f, "{signal}: stopping"),
            Shutdown {
                signal,
                delay: Some(d),
                plain: false,
            } => write!(
                f,
                "{signal}: still serving for {} (shutdown delay), then stopping",
                format_duration(*d)
            ),
            Shutdown {
                signal,
                delay: Some(d),
                plain: true,
            } => write!(
                f,
                "{signal}: the child hears of it in {} (shutdown delay)",
                format_duration(*d)
            ),
            ShutdownAgain { signal } => write!(f, "{signal} again: killing everything now"),
            GracefulTimeout {
                timeout,
                plain: true,
                ..
            } => write!(
                f,
                "graceful timeout ({}) passed: SIGKILL to the child",
                format_duration(*timeout)
            ),
            GracefulTimeout { timeout, pids, .. } => write!(
                f,
                "graceful timeout ({}) passed: SIGKILL to {} worker(s)",
                format_duration(*timeout),
                pids.len()
            ),
            GaveUp {
                who,
                failures,
                within,
                last,
                blocked,
            } => {
                write!(
                    f,
                    "crash loop: {who} failed {failures} times in a row, each within {} of starting (last: {}); program {} is not critical: it stays stopped, the others go on",
                    format_duration(*within),
                    last.describe(),
                    who.program
                )?;
                if !blocked.is_empty() {
                    write!(f, " ({} will not start: they start after it)", join(blocked))?;
                }
                Ok(())
            }
            ProgramStarting { program, after } => {
                write!(f, "starting program {program}")?;
                if !after.is_empty() {
                    write!(f, ": {} ready", join(after))?;
                }
                Ok(())
            }
            ProgramStopping {
                program,
                signal,
                timeout,
                workers,
            } => write!(
                f,
                "stopping program {program}: {signal} to {workers} worker(s), SIGKILL after {}",
                format_duration(*timeout)
            ),
            ProgramTimeout {
                program,
                timeout,
                pids,
            } => write!(
                f,
                "program {program} did not stop within {}: SIGKILL to {} worker(s)",
                format_duration(*timeout),
                pids.len()
            ),
            LeftoversKilled => f.write_str("graceful timeout passed: SIGKILL to every process left"),
            Exit { code } => write!(f, "exiting with code {code}"),
            WaitBegin {
                step,
                target,
                timeout,
            } => write!(
                f,
                "pre-start {step}: waiting for {target} (timeout {})",
                format_duration(*timeout)
            ),
            WaitProgress {
                step,
                target,
                elapsed,
                attempt,
                last_error,
            } => write!(
                f,
                "pre-start {step}: still waiting for {target} after {} ({attempt} attempt{}; last error: {last_error})",
                format_duration(Duration::from_secs(elapsed.as_secs())),
                if *attempt == 1 { "" } else { "s" }
            ),
            WaitDone { step, target, took } => write!(
                f,
                "pre-start {step}: {target} answered after {}",
                format_uptime(*took)
            ),
            StepSkip { path } => write!(f, "pre-start: skipping {path} (not an executable file)"),
            StepRunning {
                step,
                command,
                pid,
                timeout,
            } => write!(
                f,
                "pre-start {step}: running {command} (pid {pid}, timeout {})",
                format_duration(*timeout)
            ),
            StepDone { step, took } => {
                write!(f, "pre-start {step}: done in {}", format_uptime(*took))
            }
            StepTimeout { step, timeout, .. } => write!(
                f,
                "pre-start {step}: still running after {}; stopping it",
                format_duration(*timeout)
            ),
            StepFailed { step, what, reason } => {
                write!(f, "pre-start step {step} ({what}) failed: {reason}")
            }
            StepInterrupted { step, signal } => {
                write!(f, "{signal} during pre-start step {step}: no worker started")
            }
            Requested { command, by } => write!(
                f,
                "control socket: {command} asked by pid {} (uid {})",
                by.pid, by.uid
            ),
            Refused { command, why } => write!(f, "{command} refused: {why}"),
            Reloading { program: None } => {
                f.write_str("re-reading limits, then replacing every worker one by one")
            }
            Reloading { program: Some(p) } => write!(
                f,
                "re-reading limits, then replacing the workers of program {p} one by one"
            ),
            Stopping { delay: None } => f.write_str("stopping"),
            Stopping { delay: Some(d) } => write!(
                f,
                "still serving for {} (shutdown delay), then stopping",
                format_duration(*d)
            ),
        }
    }
}
