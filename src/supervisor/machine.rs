//! The supervisor's decisions, without I/O: `(state, event, now) -> actions`.
//!
//! # Theory of operation
//!
//! The machine owns N slots (plain mode is one slot with restart `never`).
//! Each slot holds at most one running worker, plus a replacement while a
//! rolling restart replaces it. Workers that are being stopped (replaced,
//! scaled away) are `retiring` until they exit, with a SIGKILL deadline.
//!
//! Events come from the shell: a child exited or stopped (from the reaper),
//! a signal arrived (from the signal edge), a timer fired, the shell found
//! no child left. The machine answers with `Action`s the shell performs:
//! spawn, kill, log, exit. It never forks, reads a clock or sleeps, so it is
//! tested with synthetic events and a fake clock.
//!
//! Phases: `Running` -> (shutdown signal) `Draining` (still serving for
//! `shutdown_delay`) -> `Stopping` (stop signal sent, waiting up to the
//! graceful timeout) -> `Leftovers` (every other process in the container,
//! or every descendant when not PID 1, gets the stop signal, then SIGKILL at
//! the same deadline) -> exit once no child is left. A second shutdown
//! signal jumps to SIGKILL for everything.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use nix::unistd::Pid;
use serde_json::Value;

use crate::plan::Mode;
use crate::reaper::Status;
use crate::vocab::format_duration;
use crate::vocab::{RestartPolicy, Signal, SignalRule};

/// The settings the machine needs from the plan.
#[derive(Clone, Debug)]
pub struct Settings {
    pub mode: Mode,
    pub policy: RestartPolicy,
    pub min_uptime: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub crash_loop: u32,
    /// None: pass the received shutdown signal on (plain mode default).
    pub stop_signal: Option<Signal>,
    pub graceful_timeout: Duration,
    pub shutdown_delay: Duration,
    pub signal_map: Vec<SignalRule>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LogLine {
    pub level: &'static str,
    pub event: &'static str,
    pub message: String,
    pub fields: Vec<(&'static str, Value)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Start a worker for `slot`; `replacement` during a rolling restart.
    /// The shell answers with `spawned` or `spawn_failed`.
    Spawn {
        slot: u32,
        replacement: bool,
    },
    Kill {
        pid: Pid,
        signal: Signal,
    },
    /// Signal every process left: all of the container's as PID 1, the
    /// init's descendants otherwise.
    KillLeftovers {
        signal: Signal,
    },
    /// SIGCONT to a stopped worker's process group.
    Resume {
        pid: Pid,
    },
    /// Re-read the limits and answer with `reload(count)`.
    Replan,
    Log(LogLine),
    Exit(i32),
}

#[derive(Clone, Copy, Debug)]
struct Worker {
    pid: Pid,
    started: Instant,
}

#[derive(Clone, Debug)]
struct Slot {
    current: Option<Worker>,
    replacement: Option<Worker>,
    quick_failures: u32,
    restart_at: Option<Instant>,
    /// Exited and not restarted (policy), with its last status.
    finished: Option<Status>,
}

#[derive(Clone, Copy, Debug)]
struct Retiring {
    pid: Pid,
    slot: u32,
    kill_at: Option<Instant>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Running,
    Draining { until: Instant },
    Stopping { deadline: Instant },
    Leftovers { deadline: Instant, killed: bool },
}

pub struct Machine {
    s: Settings,
    slots: Vec<Slot>,
    retiring: Vec<Retiring>,
    phase: Phase,
    /// The signal that started the shutdown, for plain mode's pass-through.
    reason: Option<Signal>,
    /// Slots still to be replaced by the rolling restart under way.
    roll: VecDeque<u32>,
    exit_code: Option<i32>,
}

fn line(
    level: &'static str,
    event: &'static str,
    message: String,
    fields: Vec<(&'static str, Value)>,
) -> Action {
    Action::Log(LogLine {
        level,
        event,
        message,
        fields,
    })
}

fn status_fields(status: Status) -> Vec<(&'static str, Value)> {
    match status {
        Status::Exited(c) => vec![("code", c.into())],
        Status::Signaled(s) | Status::Stopped(s) => vec![("signal", s.name().into())],
    }
}

impl Machine {
    pub fn new(s: Settings, count: u32) -> Machine {
        let slots = (0..count.max(1))
            .map(|_| Slot {
                current: None,
                replacement: None,
                quick_failures: 0,
                restart_at: None,
                finished: None,
            })
            .collect();
        Machine {
            s,
            slots,
            retiring: Vec::new(),
            phase: Phase::Running,
            reason: None,
            roll: VecDeque::new(),
            exit_code: None,
        }
    }

    /// Spawns are performed only while running: a spawn queued before a
    /// shutdown began is dropped.
    pub fn accepts_spawns(&self) -> bool {
        self.phase == Phase::Running
    }

    /// The current number of slots (CINIT_WORKERS for new workers).
    pub fn worker_count(&self) -> u32 {
        self.slots.len() as u32
    }

    fn workers(&self) -> bool {
        self.s.mode == Mode::Workers
    }

    fn name(&self, slot: u32) -> String {
        if self.workers() {
            format!("worker {slot}")
        } else {
            "child".into()
        }
    }

    pub fn start(&mut self) -> Vec<Action> {
        (0..self.slots.len() as u32)
            .map(|slot| Action::Spawn {
                slot,
                replacement: false,
            })
            .collect()
    }

    pub fn spawned(&mut self, slot: u32, replacement: bool, pid: Pid, now: Instant) -> Vec<Action> {
        let w = Worker { pid, started: now };
        let Some(sl) = self.slots.get_mut(slot as usize) else {
            return vec![Action::Kill {
                pid,
                signal: Signal::KILL,
            }];
        };
        if replacement {
            sl.replacement = Some(w);
        } else {
            sl.current = Some(w);
            sl.finished = None;
        }
        let what = if replacement {
            "replacement started"
        } else {
            "started"
        };
        vec![line(
            "info",
            "started",
            format!("{} {what} (pid {pid})", self.name(slot)),
            vec![
                ("slot", slot.into()),
                ("pid", pid.as_raw().into()),
                ("replacement", replacement.into()),
            ],
        )]
    }

    /// A spawn failed: `code` is the exit code it maps to (127, 126, 1).
    pub fn spawn_failed(
        &mut self,
        slot: u32,
        replacement: bool,
        message: &str,
        code: i32,
        now: Instant,
    ) -> Vec<Action> {
        let mut out = vec![line(
            "error",
            "spawn_failed",
            message.to_string(),
            vec![("slot", slot.into()), ("code", code.into())],
        )];
        let never_started = self
            .slots
            .iter()
            .all(|s| s.current.is_none() && s.finished.is_none());
        if replacement {
            out.push(self.abort_roll(slot, "could not be started"));
        } else if never_started || !self.workers() {
            // The command cannot start at all: nothing will fix that by
            // retrying, and the orchestrator should see 127/126 at once.
            self.exit_code = Some(code);
            out.extend(self.begin_stop(now));
        } else {
            out.extend(self.after_exit(slot, Status::Exited(code), Duration::ZERO, now));
        }
        out
    }

    pub fn stopped(&mut self, pid: Pid, signal: Signal) -> Vec<Action> {
        let Some(slot) = self.slot_of(pid) else {
            return Vec::new();
        };
        if signal == Signal::TTIN || signal == Signal::TTOU {
            return vec![line(
                "warn",
                "stopped",
                format!("{} (pid {pid}) is stopped by {signal}: it used the terminal from the background; not resumed", self.name(slot)),
                vec![("slot", slot.into()), ("pid", pid.as_raw().into()), ("signal", signal.name().into())],
            )];
        }
        vec![
            line(
                "info",
                "stopped",
                format!("{} (pid {pid}) was stopped by {signal}; resumed (a container has no shell to resume it)", self.name(slot)),
                vec![("slot", slot.into()), ("pid", pid.as_raw().into()), ("signal", signal.name().into())],
            ),
            Action::Resume { pid },
        ]
    }

    fn slot_of(&self, pid: Pid) -> Option<u32> {
        self.slots
            .iter()
            .position(|s| {
                s.current.map(|w| w.pid) == Some(pid) || s.replacement.map(|w| w.pid) == Some(pid)
            })
            .map(|i| i as u32)
            .or_else(|| self.retiring.iter().find(|r| r.pid == pid).map(|r| r.slot))
    }

    fn live_pids(&self) -> Vec<Pid> {
        let mut v: Vec<Pid> = self
            .slots
            .iter()
            .flat_map(|s| s.current.iter().chain(s.replacement.iter()).map(|w| w.pid))
            .collect();
        v.extend(self.retiring.iter().map(|r| r.pid));
        v
    }

    pub fn exited(&mut self, pid: Pid, status: Status, now: Instant) -> Vec<Action> {
        if let Some(i) = self.retiring.iter().position(|r| r.pid == pid) {
            let r = self.retiring.remove(i);
            let mut out = vec![line(
                "info",
                "retired",
                format!(
                    "{} old worker (pid {pid}) {}",
                    self.name(r.slot),
                    status.describe()
                ),
                [
                    vec![("slot", r.slot.into()), ("pid", pid.as_raw().into())],
                    status_fields(status),
                ]
                .concat(),
            )];
            out.extend(self.check_stopped(now));
            return out;
        }
        let Some(idx) = self.slots.iter().position(|s| {
            s.current.map(|w| w.pid) == Some(pid) || s.replacement.map(|w| w.pid) == Some(pid)
        }) else {
            // An orphan re-parented to the init: reaped, nothing else.
            return Vec::new();
        };
        let slot = idx as u32;
        let sl = &mut self.slots[idx];
        if sl.replacement.map(|w| w.pid) == Some(pid) {
            let w = sl.replacement.take().expect("checked above");
            if self.phase != Phase::Running {
                return self.check_stopped(now);
            }
            let ran = now.saturating_duration_since(w.started);
            return vec![self.abort_roll(
                slot,
                &format!("{} after {}", status.describe(), format_duration(ran)),
            )];
        }
        let w = sl.current.take().expect("checked above");
        let ran = now.saturating_duration_since(w.started);
        if self.phase != Phase::Running {
            // Stopping: this is the expected end; the status only matters
            // in plain mode, where it becomes the exit code.
            if !self.workers() {
                self.exit_code.get_or_insert(status.code());
            }
            let mut out = vec![line(
                "info",
                "exited",
                format!("{} (pid {pid}) {}", self.name(slot), status.describe()),
                [
                    vec![("slot", slot.into()), ("pid", pid.as_raw().into())],
                    status_fields(status),
                ]
                .concat(),
            )];
            out.extend(self.check_stopped(now));
            return out;
        }
        // A replacement waiting to take over does so now.
        if let Some(r) = self.slots[idx].replacement.take() {
            self.slots[idx].current = Some(r);
            let mut out = vec![line(
                "info",
                "exited",
                format!(
                    "{} (pid {pid}) {} during the reload; its replacement (pid {}) takes over",
                    self.name(slot),
                    status.describe(),
                    r.pid
                ),
                [
                    vec![("slot", slot.into()), ("pid", pid.as_raw().into())],
                    status_fields(status),
                ]
                .concat(),
            )];
            out.extend(self.next_roll());
            return out;
        }
        self.after_exit(slot, status, ran, now)
    }

    /// A slot's worker ended on its own while running: restart, give up
    /// the slot, or declare a crash loop.
    fn after_exit(
        &mut self,
        slot: u32,
        status: Status,
        ran: Duration,
        now: Instant,
    ) -> Vec<Action> {
        let idx = slot as usize;
        let clean = status == Status::Exited(0);
        let quick = ran < self.s.min_uptime;
        let sl = &mut self.slots[idx];
        sl.quick_failures = if quick { sl.quick_failures + 1 } else { 0 };
        let qf = sl.quick_failures;
        let restart = match self.s.policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => !clean,
            RestartPolicy::Never => false,
        };
        let mut fields = vec![
            ("slot", slot.into()),
            ("uptime_s", ran.as_secs_f64().into()),
        ];
        fields.extend(status_fields(status));
        let what = format!(
            "{} {} after {}",
            self.name(slot),
            status.describe(),
            format_duration(round_ms(ran))
        );
        if !restart {
            self.slots[idx].finished = Some(status);
            let mut out = vec![line("info", "exited", what, fields)];
            if !self.workers() {
                self.exit_code = Some(status.code());
                out.extend(self.begin_leftovers(now, self.s.graceful_timeout));
            } else if self
                .slots
                .iter()
                .all(|s| s.finished.is_some() && s.replacement.is_none())
            {
                let ok = self
                    .slots
                    .iter()
                    .all(|s| s.finished == Some(Status::Exited(0)));
                self.exit_code = Some(if ok { 0 } else { 1 });
                out.push(line(
                    "info",
                    "finished",
                    "every worker has exited and none is restarted".into(),
                    vec![],
                ));
                out.extend(self.begin_leftovers(now, self.s.graceful_timeout));
            }
            return out;
        }
        if qf >= self.s.crash_loop {
            self.exit_code = Some(1);
            let mut out = vec![line(
                "error",
                "crash_loop",
                format!(
                    "crash loop: {} failed {qf} times in a row, each within {} of starting (last: {}); stopping everything",
                    self.name(slot),
                    format_duration(self.s.min_uptime),
                    status.describe()
                ),
                fields,
            )];
            out.extend(self.begin_stop(now));
            return out;
        }
        let delay = if qf == 0 {
            Duration::ZERO
        } else {
            (self.s.backoff_initial * 2u32.saturating_pow(qf - 1)).min(self.s.backoff_max)
        };
        fields.push(("restart_in_s", delay.as_secs_f64().into()));
        let mut out = vec![line(
            "warn",
            "exited",
            format!("{what}; restarting in {}", format_duration(delay)),
            fields,
        )];
        if delay.is_zero() {
            out.push(Action::Spawn {
                slot,
                replacement: false,
            });
        } else {
            self.slots[idx].restart_at = Some(now + delay);
        }
        out
    }

    pub fn signal(&mut self, sig: Signal, now: Instant) -> Vec<Action> {
        if [Signal::TERM, Signal::INT, Signal::QUIT].contains(&sig) {
            return self.shutdown(sig, now);
        }
        let rule = self.s.signal_map.iter().find(|r| r.from == sig).copied();
        if self.workers() && rule.is_none() && self.phase == Phase::Running {
            match sig {
                Signal::HUP => {
                    return vec![
                        line(
                            "info",
                            "reload",
                            "SIGHUP: re-reading limits, then replacing every worker one by one"
                                .into(),
                            vec![],
                        ),
                        Action::Replan,
                    ]
                }
                Signal::TTIN => return self.scale_to(self.worker_count() + 1, now),
                Signal::TTOU => return self.scale_to(self.worker_count().saturating_sub(1), now),
                _ => {}
            }
        }
        if self.workers()
            && rule.is_none()
            && [Signal::HUP, Signal::TTIN, Signal::TTOU].contains(&sig)
        {
            // Shutting down: no reload or scaling any more, and the
            // workers must not get a signal meant for the init.
            return vec![line(
                "info",
                "ignored",
                format!("{sig} ignored: shutting down"),
                vec![("signal", sig.name().into())],
            )];
        }
        let to = match rule {
            Some(r) => r.to,
            None => Some(sig),
        };
        match to {
            Some(to) => self
                .live_pids()
                .into_iter()
                .map(|pid| Action::Kill { pid, signal: to })
                .collect(),
            None => Vec::new(),
        }
    }

    fn shutdown(&mut self, sig: Signal, now: Instant) -> Vec<Action> {
        match self.phase {
            Phase::Running => {
                self.reason = Some(sig);
                self.roll.clear();
                let delay = self.s.shutdown_delay;
                if delay.is_zero() || self.live_pids().is_empty() {
                    let mut out = vec![line(
                        "info",
                        "shutdown",
                        format!("{sig}: stopping"),
                        vec![("signal", sig.name().into())],
                    )];
                    out.extend(self.begin_stop(now));
                    out
                } else {
                    self.phase = Phase::Draining { until: now + delay };
                    vec![line(
                        "info",
                        "shutdown",
                        format!(
                            "{sig}: still serving for {} (shutdown delay), then stopping",
                            format_duration(delay)
                        ),
                        vec![
                            ("signal", sig.name().into()),
                            ("delay_s", delay.as_secs_f64().into()),
                        ],
                    )]
                }
            }
            _ => {
                let mut out = vec![line(
                    "warn",
                    "shutdown",
                    format!("{sig} again: killing everything now"),
                    vec![("signal", sig.name().into())],
                )];
                out.extend(self.kill_everything(now));
                out
            }
        }
    }

    /// The signal a worker gets to stop, given what started the shutdown.
    fn stop_signal(&self) -> Option<Signal> {
        match self.s.stop_signal {
            Some(s) => Some(s),
            None => {
                let received = self.reason.unwrap_or(Signal::TERM);
                match self.s.signal_map.iter().find(|r| r.from == received) {
                    Some(r) => r.to,
                    None => Some(received),
                }
            }
        }
    }

    fn begin_stop(&mut self, now: Instant) -> Vec<Action> {
        self.roll.clear();
        for s in &mut self.slots {
            s.restart_at = None;
        }
        let deadline = now + self.s.graceful_timeout;
        self.phase = Phase::Stopping { deadline };
        let mut out = Vec::new();
        if let Some(sig) = self.stop_signal() {
            for pid in self.live_pids() {
                out.push(Action::Kill { pid, signal: sig });
            }
        }
        for r in &mut self.retiring {
            r.kill_at = Some(deadline);
        }
        out.extend(self.check_stopped(now));
        out
    }

    /// In `Stopping`, once no worker is left, the leftovers follow.
    fn check_stopped(&mut self, now: Instant) -> Vec<Action> {
        match self.phase {
            Phase::Stopping { deadline } if self.live_pids().is_empty() => {
                self.begin_leftovers(now, deadline.saturating_duration_since(now))
            }
            _ => Vec::new(),
        }
    }

    fn begin_leftovers(&mut self, now: Instant, within: Duration) -> Vec<Action> {
        self.roll.clear();
        self.phase = Phase::Leftovers {
            deadline: now + within,
            killed: false,
        };
        let sig = self.stop_signal().unwrap_or(Signal::TERM);
        vec![Action::KillLeftovers { signal: sig }]
    }

    fn kill_everything(&mut self, now: Instant) -> Vec<Action> {
        let mut out: Vec<Action> = self
            .live_pids()
            .into_iter()
            .map(|pid| Action::Kill {
                pid,
                signal: Signal::KILL,
            })
            .collect();
        self.roll.clear();
        self.phase = Phase::Leftovers {
            deadline: now,
            killed: true,
        };
        out.push(Action::KillLeftovers {
            signal: Signal::KILL,
        });
        out
    }

    /// True when the shell should report `no_children` once it finds none.
    pub fn awaiting_no_children(&self) -> bool {
        matches!(self.phase, Phase::Leftovers { .. }) && self.live_pids().is_empty()
    }

    pub fn no_children(&mut self) -> Vec<Action> {
        if !self.awaiting_no_children() {
            return Vec::new();
        }
        let code = self.exit_code.unwrap_or(0);
        vec![
            line(
                "info",
                "exit",
                format!("exiting with code {code}"),
                vec![("code", code.into())],
            ),
            Action::Exit(code),
        ]
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let mut d: Vec<Instant> = Vec::new();
        match self.phase {
            Phase::Running => {
                d.extend(self.slots.iter().filter_map(|s| s.restart_at));
                d.extend(
                    self.slots
                        .iter()
                        .filter_map(|s| s.replacement.map(|w| w.started + self.s.min_uptime)),
                );
            }
            Phase::Draining { until } => d.push(until),
            Phase::Stopping { deadline } => d.push(deadline),
            Phase::Leftovers { deadline, killed } => {
                if !killed {
                    d.push(deadline)
                }
            }
        }
        d.extend(self.retiring.iter().filter_map(|r| r.kill_at));
        d.into_iter().min()
    }

    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        for r in &mut self.retiring {
            if r.kill_at.is_some_and(|t| t <= now) {
                r.kill_at = None;
                out.push(Action::Kill {
                    pid: r.pid,
                    signal: Signal::KILL,
                });
            }
        }
        match self.phase {
            Phase::Running => {
                for i in 0..self.slots.len() {
                    if self.slots[i].restart_at.is_some_and(|t| t <= now) {
                        self.slots[i].restart_at = None;
                        out.push(Action::Spawn {
                            slot: i as u32,
                            replacement: false,
                        });
                    }
                    if let Some(r) = self.slots[i].replacement {
                        if r.started + self.s.min_uptime <= now {
                            out.extend(self.promote(i as u32, now));
                        }
                    }
                }
            }
            Phase::Draining { until } if until <= now => out.extend(self.begin_stop(now)),
            Phase::Stopping { deadline } if deadline <= now => {
                let pids = self.live_pids();
                out.push(line(
                    "warn",
                    "kill",
                    format!(
                        "graceful timeout ({}) passed: SIGKILL to {} worker(s)",
                        format_duration(self.s.graceful_timeout),
                        pids.len()
                    ),
                    vec![(
                        "pids",
                        pids.iter().map(|p| p.as_raw()).collect::<Vec<_>>().into(),
                    )],
                ));
                out.extend(self.kill_everything(now));
            }
            Phase::Leftovers {
                deadline,
                killed: false,
            } if deadline <= now => {
                out.push(line(
                    "warn",
                    "kill",
                    "graceful timeout passed: SIGKILL to every process left".into(),
                    vec![],
                ));
                self.phase = Phase::Leftovers {
                    deadline,
                    killed: true,
                };
                out.push(Action::KillLeftovers {
                    signal: Signal::KILL,
                });
            }
            _ => {}
        }
        out
    }

    /// The replacement of `slot` stayed up: it takes over and the old
    /// worker is stopped.
    fn promote(&mut self, slot: u32, now: Instant) -> Vec<Action> {
        let sl = &mut self.slots[slot as usize];
        let Some(new) = sl.replacement.take() else {
            return Vec::new();
        };
        let old = sl.current.replace(new);
        let mut out = Vec::new();
        if let Some(old) = old {
            out.push(line(
                "info",
                "replaced",
                format!(
                    "{} replaced: pid {} took over from pid {}",
                    self.name(slot),
                    new.pid,
                    old.pid
                ),
                vec![
                    ("slot", slot.into()),
                    ("pid", new.pid.as_raw().into()),
                    ("old_pid", old.pid.as_raw().into()),
                ],
            ));
            out.extend(self.retire(old.pid, slot, now));
        }
        out.extend(self.next_roll());
        out
    }

    fn retire(&mut self, pid: Pid, slot: u32, now: Instant) -> Vec<Action> {
        self.retiring.push(Retiring {
            pid,
            slot,
            kill_at: Some(now + self.s.graceful_timeout),
        });
        let sig = self.s.stop_signal.unwrap_or(Signal::TERM);
        vec![Action::Kill { pid, signal: sig }]
    }

    /// The next slot of the rolling restart that has a worker to replace.
    fn next_roll(&mut self) -> Vec<Action> {
        while let Some(slot) = self.roll.pop_front() {
            if let Some(sl) = self.slots.get(slot as usize) {
                if sl.current.is_some() && sl.replacement.is_none() {
                    return vec![Action::Spawn {
                        slot,
                        replacement: true,
                    }];
                }
            }
        }
        Vec::new()
    }

    fn abort_roll(&mut self, slot: u32, why: &str) -> Action {
        self.roll.clear();
        line(
            "error",
            "reload_failed",
            format!(
                "reload stopped: the new {} {why}; the running workers keep serving",
                self.name(slot)
            ),
            vec![("slot", slot.into())],
        )
    }

    /// HUP's answer: `count` is the re-planned worker count (None: keep).
    pub fn reload(&mut self, count: Option<u32>, now: Instant) -> Vec<Action> {
        if self.phase != Phase::Running {
            return Vec::new();
        }
        let mut out = Vec::new();
        let before = self.worker_count();
        if let Some(n) = count.filter(|&n| n != before) {
            out.extend(self.scale_to(n, now));
        }
        let keep = before.min(self.worker_count());
        self.roll = (0..keep).collect();
        if self.slots.iter().any(|s| s.replacement.is_some()) {
            // A replacement is still settling; the roll goes on after it.
            return out;
        }
        out.extend(self.next_roll());
        out
    }

    fn scale_to(&mut self, n: u32, now: Instant) -> Vec<Action> {
        let n = n.max(1);
        let before = self.worker_count();
        if n == before {
            return vec![line(
                "info",
                "scale",
                format!("already at {n} worker(s)"),
                vec![("workers", n.into())],
            )];
        }
        let mut out = vec![line(
            "info",
            "scale",
            format!("scaling from {before} to {n} worker(s)"),
            vec![("from", before.into()), ("workers", n.into())],
        )];
        while self.worker_count() < n {
            self.slots.push(Slot {
                current: None,
                replacement: None,
                quick_failures: 0,
                restart_at: None,
                finished: None,
            });
            out.push(Action::Spawn {
                slot: self.worker_count() - 1,
                replacement: false,
            });
        }
        while self.worker_count() > n {
            let slot = self.worker_count() - 1;
            let sl = self.slots.pop().expect("count > n >= 1");
            for w in sl.current.into_iter().chain(sl.replacement) {
                out.extend(self.retire(w.pid, slot, now));
            }
            self.roll.retain(|&s| s < n);
        }
        out
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mode: Mode) -> Settings {
        Settings {
            mode,
            policy: if mode == Mode::Workers {
                RestartPolicy::Always
            } else {
                RestartPolicy::Never
            },
            min_uptime: Duration::from_secs(2),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            crash_loop: 3,
            stop_signal: if mode == Mode::Workers {
                Some(Signal::TERM)
            } else {
                None
            },
            graceful_timeout: Duration::from_secs(8),
            shutdown_delay: Duration::ZERO,
            signal_map: Vec::new(),
        }
    }

    fn pid(n: i32) -> Pid {
        Pid::from_raw(n)
    }

    fn non_log(actions: Vec<Action>) -> Vec<Action> {
        actions
            .into_iter()
            .filter(|a| !matches!(a, Action::Log(_)))
            .collect()
    }

    fn logs(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Log(l) => Some(l.message.clone()),
                _ => None,
            })
            .collect()
    }

    /// A machine with `n` workers started at `t0` as pids 100, 101, ...
    fn running(n: u32, mode: Mode) -> (Machine, Instant) {
        let t0 = Instant::now();
        let mut m = Machine::new(settings(mode), n);
        assert_eq!(m.start().len(), n as usize);
        for i in 0..n {
            m.spawned(i, false, pid(100 + i as i32), t0);
        }
        (m, t0)
    }

    #[test]
    fn plain_child_exit_becomes_the_exit_code() {
        let (mut m, t0) = running(1, Mode::Plain);
        let a = non_log(m.exited(pid(100), Status::Exited(3), t0 + Duration::from_secs(1)));
        assert_eq!(
            a,
            vec![Action::KillLeftovers {
                signal: Signal::TERM
            }]
        );
        assert!(m.awaiting_no_children());
        assert_eq!(non_log(m.no_children()), vec![Action::Exit(3)]);
    }

    #[test]
    fn plain_passes_the_received_signal_and_reports_128_plus_n() {
        let (mut m, t0) = running(1, Mode::Plain);
        let a = non_log(m.signal(Signal::INT, t0));
        assert_eq!(
            a,
            vec![Action::Kill {
                pid: pid(100),
                signal: Signal::INT
            }]
        );
        m.exited(pid(100), Status::Signaled(Signal::INT), t0);
        assert_eq!(non_log(m.no_children()), vec![Action::Exit(130)]);
    }

    #[test]
    fn other_signals_are_forwarded_and_rewritten() {
        let (mut m, t0) = running(1, Mode::Plain);
        m.s.signal_map = vec![
            SignalRule {
                from: Signal::HUP,
                to: Some(Signal::QUIT),
            },
            SignalRule {
                from: Signal::TTIN,
                to: None,
            },
        ];
        let usr1 = Signal::from_raw(libc::SIGUSR1).unwrap();
        assert_eq!(
            m.signal(usr1, t0),
            vec![Action::Kill {
                pid: pid(100),
                signal: usr1
            }]
        );
        assert_eq!(
            m.signal(Signal::HUP, t0),
            vec![Action::Kill {
                pid: pid(100),
                signal: Signal::QUIT
            }]
        );
        assert!(m.signal(Signal::TTIN, t0).is_empty());
    }

    #[test]
    fn graceful_timeout_then_kill_then_leftovers() {
        let (mut m, t0) = running(2, Mode::Workers);
        let a = non_log(m.signal(Signal::TERM, t0));
        assert_eq!(
            a,
            vec![
                Action::Kill {
                    pid: pid(100),
                    signal: Signal::TERM
                },
                Action::Kill {
                    pid: pid(101),
                    signal: Signal::TERM
                }
            ]
        );
        m.exited(
            pid(100),
            Status::Signaled(Signal::TERM),
            t0 + Duration::from_secs(1),
        );
        assert_eq!(m.next_deadline(), Some(t0 + Duration::from_secs(8)));
        let a = non_log(m.tick(t0 + Duration::from_secs(8)));
        assert_eq!(
            a,
            vec![
                Action::Kill {
                    pid: pid(101),
                    signal: Signal::KILL
                },
                Action::KillLeftovers {
                    signal: Signal::KILL
                }
            ]
        );
        m.exited(
            pid(101),
            Status::Signaled(Signal::KILL),
            t0 + Duration::from_secs(8),
        );
        assert_eq!(non_log(m.no_children()), vec![Action::Exit(0)]);
    }

    #[test]
    fn second_signal_kills_at_once() {
        let (mut m, t0) = running(1, Mode::Workers);
        m.signal(Signal::TERM, t0);
        let a = non_log(m.signal(Signal::INT, t0 + Duration::from_millis(10)));
        assert!(a.contains(&Action::Kill {
            pid: pid(100),
            signal: Signal::KILL
        }));
        assert!(a.contains(&Action::KillLeftovers {
            signal: Signal::KILL
        }));
    }

    #[test]
    fn shutdown_delay_keeps_serving_first() {
        let (mut m, t0) = running(1, Mode::Workers);
        m.s.shutdown_delay = Duration::from_secs(5);
        assert!(non_log(m.signal(Signal::TERM, t0)).is_empty());
        assert_eq!(m.next_deadline(), Some(t0 + Duration::from_secs(5)));
        let a = non_log(m.tick(t0 + Duration::from_secs(5)));
        assert_eq!(
            a,
            vec![Action::Kill {
                pid: pid(100),
                signal: Signal::TERM
            }]
        );
    }

    #[test]
    fn killed_worker_restarts_in_its_slot_with_backoff() {
        let (mut m, t0) = running(2, Mode::Workers);
        // Ran long enough: restarted at once.
        let a = non_log(m.exited(
            pid(101),
            Status::Signaled(Signal::KILL),
            t0 + Duration::from_secs(60),
        ));
        assert_eq!(
            a,
            vec![Action::Spawn {
                slot: 1,
                replacement: false
            }]
        );
        let t1 = t0 + Duration::from_secs(60);
        m.spawned(1, false, pid(200), t1);
        // Quick failure: backoff 100 ms, then 200 ms.
        assert!(
            non_log(m.exited(pid(200), Status::Exited(1), t1 + Duration::from_millis(50)))
                .is_empty()
        );
        assert_eq!(m.next_deadline(), Some(t1 + Duration::from_millis(150)));
        let a = non_log(m.tick(t1 + Duration::from_millis(150)));
        assert_eq!(
            a,
            vec![Action::Spawn {
                slot: 1,
                replacement: false
            }]
        );
        m.spawned(1, false, pid(201), t1 + Duration::from_millis(150));
        m.exited(pid(201), Status::Exited(1), t1 + Duration::from_millis(200));
        assert_eq!(m.next_deadline(), Some(t1 + Duration::from_millis(400)));
    }

    #[test]
    fn crash_loop_stops_everything_and_exits_1() {
        let (mut m, t0) = running(2, Mode::Workers);
        let mut t = t0;
        m.exited(pid(100), Status::Exited(3), t);
        for p in 300..302 {
            t = m.next_deadline().unwrap();
            m.tick(t);
            m.spawned(0, false, pid(p), t);
            let a = m.exited(pid(p), Status::Exited(3), t + Duration::from_millis(10));
            if logs(&a)
                .iter()
                .any(|l| l.starts_with("crash loop: worker 0 failed 3 times"))
            {
                assert!(a.contains(&Action::Kill {
                    pid: pid(101),
                    signal: Signal::TERM
                }));
                m.exited(pid(101), Status::Signaled(Signal::TERM), t);
                assert_eq!(non_log(m.no_children()), vec![Action::Exit(1)]);
                return;
            }
        }
        panic!("no crash loop detected");
    }

    #[test]
    fn rolling_restart_starts_new_before_stopping_old() {
        let (mut m, t0) = running(2, Mode::Workers);
        assert!(non_log(m.signal(Signal::HUP, t0)).contains(&Action::Replan));
        let a = non_log(m.reload(None, t0));
        assert_eq!(
            a,
            vec![Action::Spawn {
                slot: 0,
                replacement: true
            }]
        );
        m.spawned(0, true, pid(200), t0);
        // Until the replacement has stayed up, the old one keeps running.
        assert!(non_log(m.tick(t0 + Duration::from_secs(1))).is_empty());
        let t1 = t0 + Duration::from_secs(2);
        let a = non_log(m.tick(t1));
        assert_eq!(
            a,
            vec![
                Action::Kill {
                    pid: pid(100),
                    signal: Signal::TERM
                },
                Action::Spawn {
                    slot: 1,
                    replacement: true
                }
            ]
        );
        m.exited(pid(100), Status::Signaled(Signal::TERM), t1);
        m.spawned(1, true, pid(201), t1);
        let a = non_log(m.tick(t1 + Duration::from_secs(2)));
        assert_eq!(
            a,
            vec![Action::Kill {
                pid: pid(101),
                signal: Signal::TERM
            }]
        );
        assert_eq!(m.live_pids(), vec![pid(200), pid(201), pid(101)]);
    }

    #[test]
    fn failed_replacement_keeps_the_running_workers() {
        let (mut m, t0) = running(2, Mode::Workers);
        m.signal(Signal::HUP, t0);
        m.reload(None, t0);
        m.spawned(0, true, pid(200), t0);
        let a = m.exited(pid(200), Status::Exited(1), t0 + Duration::from_millis(100));
        assert!(logs(&a)[0].starts_with("reload stopped"), "{a:?}");
        assert!(non_log(a).is_empty());
        assert_eq!(m.live_pids(), vec![pid(100), pid(101)]);
        assert_eq!(m.next_deadline(), None);
    }

    #[test]
    fn ttin_ttou_scale() {
        let (mut m, t0) = running(2, Mode::Workers);
        assert_eq!(
            non_log(m.signal(Signal::TTIN, t0)),
            vec![Action::Spawn {
                slot: 2,
                replacement: false
            }]
        );
        m.spawned(2, false, pid(102), t0);
        assert_eq!(
            non_log(m.signal(Signal::TTOU, t0)),
            vec![Action::Kill {
                pid: pid(102),
                signal: Signal::TERM
            }]
        );
        assert_eq!(m.worker_count(), 2);
        // The retired worker exiting is not restarted.
        assert!(non_log(m.exited(pid(102), Status::Signaled(Signal::TERM), t0)).is_empty());
        m.signal(Signal::TTOU, t0);
        assert_eq!(m.worker_count(), 1);
        assert!(m
            .signal(Signal::TTOU, t0)
            .iter()
            .all(|a| matches!(a, Action::Log(_))));
        assert_eq!(m.worker_count(), 1);
    }

    #[test]
    fn reload_and_scaling_are_ignored_while_shutting_down() {
        let (mut m, t0) = running(2, Mode::Workers);
        m.s.shutdown_delay = Duration::from_secs(5);
        m.signal(Signal::TERM, t0);
        for sig in [Signal::HUP, Signal::TTIN, Signal::TTOU] {
            assert!(non_log(m.signal(sig, t0)).is_empty(), "{sig}");
        }
        assert_eq!(m.worker_count(), 2);
    }

    #[test]
    fn idle_machine_has_no_deadline() {
        let (m, _) = running(4, Mode::Workers);
        assert_eq!(m.next_deadline(), None);
    }

    #[test]
    fn orphans_are_ignored() {
        let (mut m, t0) = running(1, Mode::Workers);
        assert!(m.exited(pid(999), Status::Exited(0), t0).is_empty());
    }

    #[test]
    fn command_not_found_exits_127() {
        let mut m = Machine::new(settings(Mode::Workers), 2);
        m.start();
        let t0 = Instant::now();
        let a = non_log(m.spawn_failed(0, false, "not found", 127, t0));
        assert_eq!(
            a,
            vec![Action::KillLeftovers {
                signal: Signal::TERM
            }]
        );
        assert_eq!(non_log(m.no_children()), vec![Action::Exit(127)]);
    }

    #[test]
    fn stopped_child_is_resumed() {
        let (mut m, _) = running(1, Mode::Plain);
        assert!(m
            .stopped(pid(100), Signal::TSTP)
            .contains(&Action::Resume { pid: pid(100) }));
        assert!(!m
            .stopped(pid(100), Signal::TTIN)
            .contains(&Action::Resume { pid: pid(100) }));
    }
}
