//! The supervisor's decisions, without I/O: `(state, event, now) -> actions`.
//!
//! # Theory of operation
//!
//! The machine runs a whole start-to-exit sequence in phases:
//!
//! 1. `Prestart`: the pre-start steps, one at a time (`prestart.rs`): a
//!    wait-for, a command, or each executable of a directory. A shutdown
//!    signal stops the step (stop signal, then SIGKILL after the graceful
//!    timeout) and the init exits 128+N; a failed step ends the start with
//!    its own exit code.
//! 2. `Binding`: the shell binds the `--listen` sockets.
//! 3. `Running`: each program owns N slots (plain mode is one program with
//!    one slot and restart `never`). A slot holds at most one running
//!    worker, plus a replacement while a rolling restart replaces it.
//!    Workers being stopped (replaced, scaled away) are `retiring` until
//!    they exit, with a SIGKILL deadline (`program.rs`, `roll.rs`).
//! 4. `Draining` (still serving for the shutdown delay) -> `Stopping` (the
//!    stop signal sent to every worker's process group, waiting up to the
//!    graceful timeout) -> `Leftovers` (every other process in the
//!    container, or every descendant when not PID 1, gets the stop signal,
//!    then SIGKILL at the same deadline) -> exit once no child is left, and
//!    as PID 1 once no other process is left either (briefly polled:
//!    `docker exec` sessions are not children, nothing reports their end).
//!    A second shutdown signal jumps to SIGKILL for everything.
//!
//! The control socket's commands (`control.rs`) take the signals' paths;
//! `snapshot` (`snapshot.rs`) copies the state out for the status, the
//! readiness probe and the metrics without changing it.
//!
//! Events come from the shell (`events.rs`); the machine answers with
//! actions the shell performs and reports (`report.rs`) it logs. It never
//! forks, reads a clock or sleeps, so it is tested with synthetic events
//! and a fake clock (`tests.rs`).
//!
//! Invariants: a pid is in at most one place (a slot's current worker, a
//! slot's replacement, the retiring list, the running step); `Exit` is
//! emitted once, last; nothing is spawned outside `Running`.

mod control;
mod guard;
mod order;
mod prestart;
mod program;
mod ready;
mod roll;
mod snapshot;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_control;
#[cfg(test)]
mod tests_programs;

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::events::{Action, Event, SlotId, StartFailure, Step, Who};
use super::report::Report;
use crate::reaper::Status;
use crate::vocab::{ReadyMode, RestartPolicy, Signal, SignalRule};
use prestart::StepRun;
use program::Program;

/// As PID 1, how long past the graceful deadline the init keeps waiting
/// for processes that are not its children, and how often it looks.
const OUTSIDERS_GRACE: Duration = Duration::from_secs(2);
const OUTSIDERS_POLL: Duration = Duration::from_millis(50);

/// The settings of one program: a command run as N supervised workers.
#[derive(Clone, Debug)]
pub struct ProgramSettings {
    /// Empty for the single program of `init [OPTIONS] COMMAND`.
    pub name: Arc<str>,
    pub count: u32,
    /// TTIN stops here.
    pub max_count: u32,
    pub policy: RestartPolicy,
    pub min_uptime: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub crash_loop: u32,
    pub stop_signal: Signal,
    pub graceful_timeout: Duration,
    /// How a worker tells it is ready (`Auto` is resolved by the plan).
    pub ready: ReadyMode,
    pub ready_timeout: Duration,
    pub watchdog: Option<Duration>,
    /// Replace a worker above this many bytes (PSS of its tree).
    pub max_memory: Option<u64>,
    /// Replace a worker this old (plus its jitter).
    pub max_age: Option<Duration>,
    /// Percent added at most to `max_age`, different for each worker.
    pub age_jitter: f64,
    /// The programs (indices) that must be satisfied before it starts.
    pub after: Vec<usize>,
    /// Its crash loop stops the container; otherwise it alone stops.
    pub critical: bool,
}

/// Everything the machine needs from the plan.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Plain mode: one child, tini's semantics.
    pub plain: bool,
    pub pid1: bool,
    pub shutdown_delay: Duration,
    pub graceful_timeout: Duration,
    /// Plain mode: `None` passes the received shutdown signal on.
    pub stop_signal: Option<Signal>,
    pub signal_map: Vec<SignalRule>,
    pub steps: Vec<Step>,
    pub programs: Vec<ProgramSettings>,
    /// The program TTIN/TTOU act on.
    pub scale_program: usize,
    /// Replace the largest worker when the container's working set
    /// passes this many bytes.
    pub memory_high: Option<u64>,
    /// How often the memory guard samples (when it samples at all).
    pub memory_interval: Duration,
    /// The container's memory limit, for the OOM reports.
    pub memory_limit: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Prestart,
    Binding,
    Running,
    Draining {
        until: Instant,
    },
    Stopping {
        deadline: Instant,
    },
    Leftovers {
        deadline: Instant,
        killed: bool,
        /// As PID 1, when to look again for processes that are not
        /// children.
        poll_at: Option<Instant>,
    },
}

pub struct Machine {
    settings: Settings,
    programs: Vec<Program>,
    phase: Phase,
    /// The pre-start step under way (phase `Prestart`).
    step: Option<StepRun>,
    /// The signal that started the shutdown, for plain mode's pass-through.
    reason: Option<Signal>,
    exit_code: Option<i32>,
    /// Every slot had a ready worker at least once.
    announced_ready: bool,
    /// Upstream READY=1 is due once every slot is ready (at start, after
    /// a rolling restart).
    ready_due: bool,
    /// The memory guard's state (`guard.rs`).
    guard: guard::Guard,
    /// Each program's stop stage (`order.rs`).
    stages: Vec<u32>,
}

fn report(r: Report) -> Action {
    Action::Report(r)
}

impl Machine {
    pub fn new(settings: Settings) -> Machine {
        let programs = settings
            .programs
            .iter()
            .map(|p| Program::new(p.clone()))
            .collect();
        let after: Vec<Vec<usize>> = settings.programs.iter().map(|p| p.after.clone()).collect();
        Machine {
            stages: crate::plan::stop_stages(&after),
            settings,
            programs,
            phase: Phase::Prestart,
            step: None,
            reason: None,
            exit_code: None,
            announced_ready: false,
            ready_due: true,
            guard: guard::Guard::default(),
        }
    }

    /// The first actions: the first pre-start step, or the bind.
    pub fn start(&mut self) -> Vec<Action> {
        self.next_step(0)
    }

    pub fn on_event(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let out = self.dispatch(event, now);
        // Who the init itself SIGKILLed: such a death is never an OOM kill.
        for a in &out {
            if let Action::Kill { pid } = a {
                self.guard.killed_by_init(*pid);
            }
        }
        out
    }

    fn dispatch(&mut self, event: Event, now: Instant) -> Vec<Action> {
        match event {
            Event::Spawned {
                slot,
                replacement,
                pid,
            } => self.spawned(slot, replacement, pid, now),
            Event::SpawnFailed {
                slot,
                replacement,
                failure,
            } => self.spawn_failed(slot, replacement, failure, now),
            Event::StepSpawned { pid } => self.step_spawned(pid, now),
            Event::StepSpawnFailed { failure } => self.step_spawn_failed(failure, now),
            Event::WaitDone(result) => self.wait_done(result, now),
            Event::DirListed(result) => self.dir_listed(result, now),
            Event::Bound => self.bound(now),
            Event::Exited { pid, status } => self.exited(pid, status, now),
            Event::Stopped { pid, signal } => self.stopped(pid, signal),
            Event::Signal(sig) => self.signal(sig, now),
            Event::Tick => self.tick(now),
            Event::Replanned { program, count } => self.reload(program, count, now),
            Event::Ready { pid } => self.mark_ready(pid, "listening", now),
            Event::Unseen { pid } => self.unseen(pid),
            Event::Notified { chain, message } => self.notified(&chain, message, now),
            Event::MemorySampled {
                workers,
                working_set,
            } => self.sampled(&workers, working_set, now),
            Event::OomKills { count, limit } => self.oom_kills(count, limit),
            Event::NoChildren { others_alive } => self.no_children(others_alive, now),
            Event::Control {
                command,
                program,
                by,
            } => self.control(command, program, by, now),
        }
    }

    /// The current number of slots of a program (`CINIT_WORKERS`).
    pub fn worker_count(&self, program: usize) -> u32 {
        self.programs
            .get(program)
            .map(|p| p.slots.len() as u32)
            .unwrap_or(0)
    }

    fn who(&self, slot: SlotId) -> Who {
        Who {
            program: self.settings.programs[slot.program].name.clone(),
            slot: slot.slot,
            plain: self.settings.plain,
        }
    }

    /// Every child the machine is responsible for, in a stable order.
    fn live_pids(&self) -> Vec<Pid> {
        let mut v: Vec<Pid> = self.programs.iter().flat_map(Program::live_pids).collect();
        v.extend(self.step.as_ref().and_then(StepRun::pid));
        v
    }

    fn spawned(&mut self, slot: SlotId, replacement: bool, pid: Pid, now: Instant) -> Vec<Action> {
        let who = self.who(slot);
        let accepted = self.phase == Phase::Running
            && self
                .programs
                .get_mut(slot.program)
                .is_some_and(|p| p.spawned(slot.slot, replacement, pid, now));
        if !accepted {
            // The slot went away (scaled down) or a shutdown began while
            // the spawn was under way.
            return vec![Action::Kill { pid }];
        }
        if self.settings.plain {
            // One child, never replaced: readiness has nothing to decide,
            // and timing it would only wake the init up.
            if let Some(w) = self.programs[slot.program].worker_mut(pid) {
                w.ready_at = Some(now);
            }
        }
        vec![report(Report::Started {
            who,
            pid,
            replacement,
        })]
    }

    fn spawn_failed(
        &mut self,
        slot: SlotId,
        replacement: bool,
        failure: StartFailure,
        now: Instant,
    ) -> Vec<Action> {
        if self.phase != Phase::Running {
            return Vec::new();
        }
        let who = self.who(slot);
        let p = slot.program;
        match failure {
            StartFailure::Fork { message } if replacement => self.replacement_failed(
                p,
                slot.slot,
                &format!("could not be started: {message}"),
                now,
            ),
            StartFailure::Fork { message } => {
                let retry_in = self.programs[p].fork_failed(slot.slot, now);
                vec![report(Report::ForkFailed {
                    who,
                    message,
                    retry_in,
                })]
            }
            StartFailure::Command { message, code } => {
                let mut out = vec![report(Report::SpawnFailed { who, message, code })];
                if replacement {
                    out.extend(self.replacement_failed(p, slot.slot, "could not be started", now));
                } else if !self.programs[p].ever_started || self.settings.plain {
                    // The command cannot start at all: nothing will fix
                    // that by retrying, and the orchestrator should see
                    // 127/126 at once.
                    self.exit_code = Some(code);
                    out.extend(self.begin_stop(now));
                } else {
                    out.extend(self.after_exit(slot, None, Status::Exited(code), false, now));
                }
                out
            }
        }
    }

    fn stopped(&mut self, pid: Pid, signal: Signal) -> Vec<Action> {
        if self.step.as_ref().and_then(StepRun::pid) == Some(pid) {
            return vec![Action::Resume { pid }];
        }
        let Some(slot) = self.slot_of(pid) else {
            return Vec::new();
        };
        // Stopped for using the terminal from the background: resuming it
        // would only stop it again, a busy loop.
        let resumed = signal != Signal::TTIN && signal != Signal::TTOU;
        let mut out = vec![report(Report::StoppedChild {
            who: self.who(slot),
            pid,
            signal,
            resumed,
        })];
        if resumed {
            out.push(Action::Resume { pid });
        }
        out
    }

    fn slot_of(&self, pid: Pid) -> Option<SlotId> {
        self.programs
            .iter()
            .enumerate()
            .find_map(|(i, p)| p.slot_of(pid).map(|slot| SlotId { program: i, slot }))
    }

    fn exited(&mut self, pid: Pid, status: Status, now: Instant) -> Vec<Action> {
        if self.step.as_ref().and_then(StepRun::pid) == Some(pid) {
            return self.step_exited(status, now);
        }
        let oom = self.claim_oom(pid, status);
        let mut out = Vec::new();
        if oom {
            if let Some(slot) = self.slot_of(pid) {
                let last = self.programs[slot.program]
                    .worker_mut(pid)
                    .and_then(|w| w.memory);
                out.push(self.oom_report(slot, pid, last));
            }
        }
        for p in 0..self.programs.len() {
            if let Some(slot) = self.programs[p].take_retiring(pid) {
                out.push(report(Report::Retired {
                    who: self.who(SlotId { program: p, slot }),
                    pid,
                    status,
                }));
                out.extend(self.check_stopped(now));
                return out;
            }
        }
        let Some(slot) = self.slot_of(pid) else {
            // An orphan re-parented to the init, or a child whose exec
            // failed: reaped, nothing else.
            return out;
        };
        let who = self.who(slot);
        let p = slot.program;
        let running = self.phase == Phase::Running;
        if let Some(w) = self.programs[p].take_replacement(slot.slot, pid) {
            if !running {
                out.extend(self.check_stopped(now));
                return out;
            }
            let ran = now.saturating_duration_since(w.started);
            let why = format!(
                "{} after {}",
                status.describe(),
                crate::vocab::format_uptime(ran)
            );
            out.extend(self.replacement_failed(p, slot.slot, &why, now));
            return out;
        }
        let Some(w) = self.programs[p].take_current(slot.slot) else {
            return out;
        };
        if !running {
            // Stopping: this is the expected end; the status only matters
            // in plain mode, where it becomes the exit code.
            if self.settings.plain {
                self.exit_code.get_or_insert(status.code());
            }
            out.push(report(Report::Ended { who, pid, status }));
            out.extend(self.check_stopped(now));
            return out;
        }
        // A replacement waiting to take over does so now.
        if let Some(new) = self.programs[p].promote_now(slot.slot) {
            out.push(report(Report::TookOver {
                who,
                old: pid,
                status,
                new,
            }));
            out.extend(self.next_roll(p));
            return out;
        }
        out.extend(self.after_exit(slot, Some(w), status, oom, now));
        out
    }

    /// A slot's worker ended on its own while running: restart, give up
    /// the slot, or declare a crash loop.
    fn after_exit(
        &mut self,
        slot: SlotId,
        worker: Option<program::Worker>,
        status: Status,
        oom: bool,
        now: Instant,
    ) -> Vec<Action> {
        let who = self.who(slot);
        let p = slot.program;
        // A start that failed before the child existed: it never ran.
        let worker = worker.unwrap_or_else(|| program::Worker::failed_start(now));
        let pid = (worker.pid.as_raw() > 0).then_some(worker.pid);
        let ran = now.saturating_duration_since(worker.started);
        if self.programs[p].gave_up {
            // Stopped with the rest of its program (`order.rs`).
            return pid
                .map(|pid| report(Report::Ended { who, pid, status }))
                .into_iter()
                .collect();
        }
        let decision = self.programs[p].decide_restart(slot.slot, &worker, status, oom, now);
        match decision {
            program::Restart::In(delay) => {
                let mut out = vec![report(Report::Exited {
                    who,
                    pid,
                    status,
                    ran,
                    next: super::report::Next::Restart(delay),
                })];
                if delay.is_zero() {
                    out.push(self.spawn_action(slot, false));
                }
                out
            }
            program::Restart::CrashLoop { failures } => {
                self.crash_loop(slot, failures, status, now)
            }
            program::Restart::No => {
                let mut out = vec![report(Report::Exited {
                    who,
                    pid,
                    status,
                    ran,
                    next: super::report::Next::Done,
                })];
                if self.settings.plain {
                    self.exit_code = Some(status.code());
                    out.extend(self.begin_leftovers(now, self.settings.graceful_timeout));
                } else if self.programs.iter().all(|q| q.gave_up || q.all_finished()) {
                    let ok = self
                        .programs
                        .iter()
                        .all(|q| !q.gave_up && q.all_finished_cleanly());
                    self.exit_code = Some(if ok { 0 } else { 1 });
                    out.push(report(Report::AllFinished));
                    out.extend(self.begin_leftovers(now, self.settings.graceful_timeout));
                } else {
                    // A one-shot program done: those after it may start.
                    out.extend(self.launch_due());
                }
                out
            }
        }
    }

    fn spawn_action(&self, slot: SlotId, replacement: bool) -> Action {
        Action::SpawnWorker {
            slot,
            replacement,
            workers: self.worker_count(slot.program),
        }
    }

    fn signal(&mut self, sig: Signal, now: Instant) -> Vec<Action> {
        let rule = self
            .settings
            .signal_map
            .iter()
            .find(|r| r.from == sig)
            .copied();
        if [Signal::TERM, Signal::INT, Signal::QUIT].contains(&sig) {
            if let Some(SignalRule { to: None, .. }) = rule {
                return vec![report(Report::Dropped { signal: sig })];
            }
            return self.shutdown(sig, now);
        }
        let workers = !self.settings.plain;
        let special = [Signal::HUP, Signal::TTIN, Signal::TTOU].contains(&sig);
        if workers && rule.is_none() && special {
            return match self.phase {
                Phase::Running => match sig {
                    Signal::HUP => {
                        let mut out = vec![report(Report::Reload)];
                        out.extend(self.replans(None));
                        out
                    }
                    Signal::TTIN => self.scale_by(self.settings.scale_program, 1, now),
                    _ => self.scale_by(self.settings.scale_program, -1, now),
                },
                Phase::Prestart | Phase::Binding => vec![report(Report::Ignored {
                    signal: sig,
                    why: "no worker has started yet",
                })],
                // Shutting down: no reload or scaling any more, and the
                // workers must not get a signal meant for the init.
                _ => vec![report(Report::Ignored {
                    signal: sig,
                    why: "shutting down",
                })],
            };
        }
        let to = match rule {
            Some(r) => r.to,
            None => Some(sig),
        };
        let Some(to) = to else {
            return Vec::new();
        };
        if self.phase == Phase::Prestart {
            // Forwarded to the step's command; dropped during a wait.
            return self
                .step
                .as_ref()
                .and_then(StepRun::pid)
                .map(|pid| Action::Forward { pid, signal: to })
                .into_iter()
                .collect();
        }
        self.live_pids()
            .into_iter()
            .map(|pid| Action::Forward { pid, signal: to })
            .collect()
    }

    fn shutdown(&mut self, sig: Signal, now: Instant) -> Vec<Action> {
        match self.phase {
            Phase::Prestart => self.step_shutdown(sig, now),
            Phase::Binding | Phase::Running => {
                self.reason = Some(sig);
                let delay = self.settings.shutdown_delay;
                if delay.is_zero() || self.live_pids().is_empty() {
                    let mut out = vec![report(Report::Shutdown {
                        signal: sig,
                        delay: None,
                        plain: self.settings.plain,
                    })];
                    out.extend(self.begin_stop(now));
                    out
                } else {
                    for p in &mut self.programs {
                        p.stop_restarts();
                    }
                    self.phase = Phase::Draining { until: now + delay };
                    vec![
                        report(Report::Shutdown {
                            signal: sig,
                            delay: Some(delay),
                            plain: self.settings.plain,
                        }),
                        Action::Upstream(super::events::Upstream::Stopping),
                    ]
                }
            }
            Phase::Draining { .. } | Phase::Stopping { .. } | Phase::Leftovers { .. } => {
                let mut out = vec![report(Report::ShutdownAgain { signal: sig })];
                out.extend(self.kill_everything(now));
                out
            }
        }
    }

    /// The signal a program's workers get to stop, given what started the
    /// shutdown: plain mode passes the received signal on (mapped by a
    /// rule), unless `--stop-signal` says otherwise.
    fn stop_signal(&self, program: usize) -> Signal {
        if !self.settings.plain {
            return self.settings.programs[program].stop_signal;
        }
        if let Some(s) = self.settings.stop_signal {
            return s;
        }
        self.passed_on(self.reason.unwrap_or(Signal::TERM))
    }

    /// Plain mode: what the child gets for a shutdown signal the init
    /// received, rewritten by a `--signal-map` rule.
    fn passed_on(&self, received: Signal) -> Signal {
        match self.settings.signal_map.iter().find(|r| r.from == received) {
            Some(SignalRule { to: Some(to), .. }) => *to,
            _ => received,
        }
    }

    /// The stop, program by program in the stop order (`order.rs`).
    fn begin_stop(&mut self, now: Instant) -> Vec<Action> {
        let deadline = now + self.stop_timeout();
        self.phase = Phase::Stopping { deadline };
        for p in &mut self.programs {
            p.stop_restarts();
        }
        let mut out = vec![Action::Upstream(super::events::Upstream::Stopping)];
        out.extend(self.stop_due(now));
        out.extend(self.check_stopped(now));
        out
    }

    /// In `Stopping`, the next programs' turn as the earlier ones end;
    /// once no worker is left, the leftovers follow.
    fn check_stopped(&mut self, now: Instant) -> Vec<Action> {
        let Phase::Stopping { deadline } = self.phase else {
            return Vec::new();
        };
        let mut out = self.stop_due(now);
        if self.live_pids().is_empty() {
            out.extend(self.begin_leftovers(now, deadline.saturating_duration_since(now)));
        }
        out
    }

    fn begin_leftovers(&mut self, now: Instant, within: Duration) -> Vec<Action> {
        for p in &mut self.programs {
            p.stop_restarts();
        }
        self.phase = Phase::Leftovers {
            deadline: now + within,
            killed: false,
            poll_at: None,
        };
        let sig = if self.programs.is_empty() {
            Signal::TERM
        } else {
            self.stop_signal(0)
        };
        vec![Action::KillLeftovers { signal: sig }]
    }

    fn kill_everything(&mut self, now: Instant) -> Vec<Action> {
        let mut out: Vec<Action> = self
            .live_pids()
            .into_iter()
            .map(|pid| Action::Kill { pid })
            .collect();
        for p in &mut self.programs {
            p.stop_restarts();
            p.forget_kill_deadlines();
        }
        if let Some(step) = &mut self.step {
            step.killed();
        }
        self.phase = Phase::Leftovers {
            deadline: now,
            killed: true,
            poll_at: None,
        };
        out.push(Action::KillLeftovers {
            signal: Signal::KILL,
        });
        out
    }

    /// True when the shell should look for children and answer
    /// `NoChildren` once it finds none.
    pub fn awaiting_no_children(&self, now: Instant) -> bool {
        match self.phase {
            Phase::Leftovers { poll_at, .. } => {
                poll_at.is_none_or(|t| t <= now) && self.live_pids().is_empty()
            }
            _ => false,
        }
    }

    fn no_children(&mut self, others_alive: bool, now: Instant) -> Vec<Action> {
        let Phase::Leftovers {
            deadline, killed, ..
        } = self.phase
        else {
            return Vec::new();
        };
        if !self.live_pids().is_empty() {
            return Vec::new();
        }
        if self.settings.pid1 && others_alive && now < deadline + OUTSIDERS_GRACE {
            self.phase = Phase::Leftovers {
                deadline,
                killed,
                poll_at: Some(now + OUTSIDERS_POLL),
            };
            return Vec::new();
        }
        let code = self.exit_code.unwrap_or(0);
        vec![report(Report::Exit { code }), Action::Exit(code)]
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let mut d: Vec<Instant> = Vec::new();
        match self.phase {
            Phase::Prestart => d.extend(self.step.as_ref().and_then(StepRun::deadline)),
            Phase::Binding => {}
            Phase::Running => {
                for p in &self.programs {
                    d.extend(p.next_deadline());
                }
                d.extend(self.guard_deadline());
                d.extend(self.program_kill_deadline());
            }
            Phase::Draining { until } => d.push(until),
            Phase::Stopping { deadline } => {
                d.push(deadline);
                d.extend(self.program_kill_deadline());
            }
            Phase::Leftovers {
                deadline,
                killed,
                poll_at,
            } => {
                if !killed {
                    d.push(deadline)
                }
                d.extend(poll_at);
            }
        }
        for p in &self.programs {
            d.extend(p.next_kill());
        }
        d.into_iter().min()
    }

    fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        for p in &mut self.programs {
            out.extend(p.kill_overdue(now));
        }
        match self.phase {
            Phase::Prestart => out.extend(self.step_tick(now)),
            Phase::Binding => {}
            Phase::Running => {
                for p in 0..self.programs.len() {
                    for slot in self.programs[p].due_restarts(now) {
                        out.push(self.spawn_action(SlotId { program: p, slot }, false));
                    }
                    out.extend(self.readiness_tick(p, now));
                }
                out.extend(self.guard_tick(now));
                out.extend(self.kill_overdue_programs(now));
            }
            Phase::Draining { until } if until <= now => out.extend(self.begin_stop(now)),
            Phase::Stopping { deadline } if deadline <= now => {
                let pids: Vec<i32> = self.live_pids().iter().map(|p| p.as_raw()).collect();
                out.push(report(Report::GracefulTimeout {
                    timeout: self.stop_timeout(),
                    pids,
                    plain: self.settings.plain,
                }));
                out.extend(self.kill_everything(now));
            }
            Phase::Stopping { .. } => out.extend(self.kill_overdue_programs(now)),
            Phase::Leftovers {
                deadline,
                killed: false,
                poll_at,
            } if deadline <= now => {
                out.push(report(Report::LeftoversKilled));
                self.phase = Phase::Leftovers {
                    deadline,
                    killed: true,
                    poll_at: poll_at.filter(|t| *t > now),
                };
                out.push(Action::KillLeftovers {
                    signal: Signal::KILL,
                });
            }
            Phase::Leftovers {
                deadline,
                killed,
                poll_at: Some(t),
            } if t <= now => {
                self.phase = Phase::Leftovers {
                    deadline,
                    killed,
                    poll_at: None,
                };
            }
            _ => {}
        }
        out
    }

    fn bound(&mut self, now: Instant) -> Vec<Action> {
        if self.phase != Phase::Binding {
            return Vec::new();
        }
        self.phase = Phase::Running;
        self.guard_start(now);
        self.launch_due()
    }
}
