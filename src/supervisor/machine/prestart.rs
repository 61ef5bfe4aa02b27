//! The pre-start phase: the steps in order, before any worker.
//!
//! A wait-for runs in the shell (a probe loop) until it answers or gives
//! up; a command is a child like the workers, reaped by the one reaper and
//! stopped the same way: the stop signal to its process group, SIGKILL
//! once the graceful timeout has passed. A step that runs past its own
//! timeout is stopped that way too. A shutdown signal abandons a wait at
//! once, or stops the command, and the init exits 128+N without starting
//! any worker; a step that fails ends the start with its own exit code (1
//! when it has none).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::{report, Machine, Phase};
use crate::reaper::Status;
use crate::supervisor::events::{Action, StartFailure, Step};
use crate::supervisor::report::{Report, StepLabel};
use crate::vocab::{format_duration, format_uptime, Signal};

/// The step under way.
pub(super) struct StepRun {
    index: usize,
    /// A `--prestart-dir`'s executables, once listed, and which one runs.
    files: Vec<PathBuf>,
    file: usize,
    state: State,
}

enum State {
    /// The shell probes a wait-for target.
    Waiting,
    /// The shell lists a directory.
    Listing,
    /// A command was asked for; its pid comes with `StepSpawned`.
    Spawning,
    Running {
        pid: Pid,
        started: Instant,
        timeout: Duration,
        /// When to act next: the step's timeout, then SIGKILL.
        deadline: Option<Instant>,
        stopping: Option<Stopping>,
    },
}

#[derive(Clone, Copy)]
enum Stopping {
    Signal(Signal),
    Timeout,
}

impl StepRun {
    pub fn pid(&self) -> Option<Pid> {
        match self.state {
            State::Running { pid, .. } => Some(pid),
            _ => None,
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Running { deadline, .. } => deadline,
            _ => None,
        }
    }

    /// Everything was sent SIGKILL: nothing more to time.
    pub fn killed(&mut self) {
        if let State::Running { deadline, .. } = &mut self.state {
            *deadline = None;
        }
    }
}

impl Machine {
    pub(super) fn label(&self) -> StepLabel {
        let run = self.step.as_ref();
        StepLabel {
            n: run.map_or(0, |r| r.index + 1),
            total: self.settings.steps.len(),
            file: run
                .and_then(|r| r.files.get(r.file))
                .map(|f| f.display().to_string()),
        }
    }

    /// How the failing step is named: `wait for URL` or the command.
    fn what(&self) -> String {
        let Some(run) = &self.step else {
            return String::new();
        };
        match &self.settings.steps[run.index] {
            Step::Wait { target, .. } => format!("wait for {target}"),
            Step::Run { argv, .. } => format!("`{}`", shown(argv)),
            Step::Dir { path, .. } => match run.files.get(run.file) {
                Some(f) => format!("`{}`", f.display()),
                None => format!("--prestart-dir {}", path.display()),
            },
        }
    }

    /// Begins step `index`, or binds once every step is done.
    pub(super) fn next_step(&mut self, index: usize) -> Vec<Action> {
        let Some(step) = self.settings.steps.get(index).cloned() else {
            self.step = None;
            self.phase = Phase::Binding;
            return vec![Action::Bind];
        };
        self.phase = Phase::Prestart;
        let mut run = StepRun {
            index,
            files: Vec::new(),
            file: 0,
            state: State::Listing,
        };
        let action = match step {
            Step::Wait { target, timeout } => {
                run.state = State::Waiting;
                self.step = Some(run);
                let step = self.label();
                return vec![
                    report(Report::WaitBegin {
                        step: step.clone(),
                        target: target.to_string(),
                        timeout,
                    }),
                    Action::StartWait {
                        target,
                        timeout,
                        step,
                    },
                ];
            }
            Step::Run { argv, .. } => {
                run.state = State::Spawning;
                Action::SpawnStep { argv }
            }
            Step::Dir { path, .. } => Action::ListDir { path },
        };
        self.step = Some(run);
        vec![action]
    }

    fn step_timeout(&self) -> Duration {
        match self.step.as_ref().map(|r| &self.settings.steps[r.index]) {
            Some(
                Step::Run { timeout, .. } | Step::Dir { timeout, .. } | Step::Wait { timeout, .. },
            ) => *timeout,
            None => Duration::ZERO,
        }
    }

    pub(super) fn dir_listed(
        &mut self,
        result: Result<Vec<PathBuf>, String>,
        now: Instant,
    ) -> Vec<Action> {
        let Some(run) = &mut self.step else {
            return Vec::new();
        };
        if !matches!(run.state, State::Listing) {
            return Vec::new();
        }
        match result {
            Ok(files) => {
                run.files = files;
                run.file = 0;
                self.next_file()
            }
            Err(reason) => self.step_failed(reason, 1, now),
        }
    }

    /// The next executable of the directory under way, or the next step.
    fn next_file(&mut self) -> Vec<Action> {
        let Some(run) = &mut self.step else {
            return Vec::new();
        };
        match run.files.get(run.file) {
            Some(f) => {
                run.state = State::Spawning;
                vec![Action::SpawnStep {
                    argv: vec![OsString::from(f.as_os_str())],
                }]
            }
            None => {
                let next = run.index + 1;
                self.next_step(next)
            }
        }
    }

    pub(super) fn step_spawned(&mut self, pid: Pid, now: Instant) -> Vec<Action> {
        let timeout = self.step_timeout();
        let command = self.what().trim_matches('`').to_string();
        let Some(run) = &mut self.step else {
            // The init is no longer starting (a signal came first).
            return vec![Action::Kill { pid }];
        };
        if !matches!(run.state, State::Spawning) {
            return vec![Action::Kill { pid }];
        }
        run.state = State::Running {
            pid,
            started: now,
            timeout,
            deadline: now.checked_add(timeout),
            stopping: None,
        };
        vec![report(Report::StepRunning {
            step: self.label(),
            command,
            pid,
            timeout,
        })]
    }

    pub(super) fn step_spawn_failed(&mut self, failure: StartFailure, now: Instant) -> Vec<Action> {
        let (reason, code) = match failure {
            StartFailure::Command { message, code } => (message, code),
            StartFailure::Fork { message } => (message, 1),
        };
        self.step_failed(reason, code, now)
    }

    pub(super) fn wait_done(
        &mut self,
        result: Result<Duration, String>,
        now: Instant,
    ) -> Vec<Action> {
        let Some(run) = &self.step else {
            return Vec::new();
        };
        let State::Waiting = run.state else {
            return Vec::new();
        };
        match result {
            Ok(took) => {
                let Step::Wait { target, .. } = &self.settings.steps[run.index] else {
                    return Vec::new();
                };
                let mut out = vec![report(Report::WaitDone {
                    step: self.label(),
                    target: target.to_string(),
                    took,
                })];
                let next = run.index + 1;
                out.extend(self.next_step(next));
                out
            }
            Err(reason) => self.step_failed(reason, 1, now),
        }
    }

    pub(super) fn step_exited(&mut self, status: Status, now: Instant) -> Vec<Action> {
        let Some(run) = &mut self.step else {
            return Vec::new();
        };
        let State::Running {
            started,
            timeout,
            stopping,
            ..
        } = run.state
        else {
            return Vec::new();
        };
        // The pid is gone: nothing to stop any more.
        run.state = State::Listing;
        let took = now.saturating_duration_since(started);
        match stopping {
            Some(Stopping::Signal(sig)) => self.step_interrupted(sig, now),
            Some(Stopping::Timeout) => self.step_failed(
                format!("timed out after {}", format_duration(timeout)),
                1,
                now,
            ),
            None if status == Status::Exited(0) => {
                let mut out = vec![report(Report::StepDone {
                    step: self.label(),
                    took,
                })];
                if let Some(run) = &mut self.step {
                    run.file += 1;
                    if matches!(self.settings.steps[run.index], Step::Dir { .. }) {
                        out.extend(self.next_file());
                        return out;
                    }
                    let next = run.index + 1;
                    out.extend(self.next_step(next));
                }
                out
            }
            None => self.step_failed(
                format!("{} after {}", status.describe(), format_uptime(took)),
                status.code(),
                now,
            ),
        }
    }

    /// A shutdown signal during pre-start.
    pub(super) fn step_shutdown(&mut self, sig: Signal, now: Instant) -> Vec<Action> {
        self.reason = Some(sig);
        let stop = self.step_stop_signal(Some(sig));
        let graceful = self.settings.graceful_timeout;
        let Some(run) = &mut self.step else {
            return self.step_interrupted(sig, now);
        };
        match &mut run.state {
            State::Running {
                pid,
                deadline,
                stopping,
                ..
            } => {
                let pid = *pid;
                if stopping.is_some() {
                    *deadline = None;
                    return vec![
                        report(Report::ShutdownAgain { signal: sig }),
                        Action::Kill { pid },
                    ];
                }
                *stopping = Some(Stopping::Signal(sig));
                *deadline = now.checked_add(graceful);
                vec![Action::Stop { pid, signal: stop }]
            }
            State::Waiting => {
                let mut out = vec![Action::CancelWait];
                out.extend(self.step_interrupted(sig, now));
                out
            }
            State::Listing | State::Spawning => self.step_interrupted(sig, now),
        }
    }

    pub(super) fn step_tick(&mut self, now: Instant) -> Vec<Action> {
        let stop = self.step_stop_signal(None);
        let graceful = self.settings.graceful_timeout;
        let label = self.label();
        let Some(run) = &mut self.step else {
            return Vec::new();
        };
        let State::Running {
            pid,
            timeout,
            deadline,
            stopping,
            ..
        } = &mut run.state
        else {
            return Vec::new();
        };
        if deadline.is_none_or(|d| d > now) {
            return Vec::new();
        }
        let pid = *pid;
        if stopping.is_some() {
            *deadline = None;
            return vec![Action::Kill { pid }];
        }
        *stopping = Some(Stopping::Timeout);
        *deadline = now.checked_add(graceful);
        vec![
            report(Report::StepTimeout {
                step: label,
                timeout: *timeout,
                pid,
            }),
            Action::Stop { pid, signal: stop },
        ]
    }

    /// The signal that stops a step: the workers' stop signal, or in plain
    /// mode the one received (mapped), TERM for a timeout.
    fn step_stop_signal(&self, received: Option<Signal>) -> Signal {
        if !self.settings.plain {
            if let Some(p) = self.settings.programs.first() {
                return p.stop_signal;
            }
        }
        match (self.settings.stop_signal, received) {
            (Some(s), _) => s,
            (None, Some(r)) => self.passed_on(r),
            (None, None) => Signal::TERM,
        }
    }

    fn step_interrupted(&mut self, sig: Signal, now: Instant) -> Vec<Action> {
        self.exit_code = Some(128 + sig.raw());
        let mut out = vec![report(Report::StepInterrupted {
            step: self.label(),
            signal: sig,
        })];
        self.step = None;
        out.extend(self.begin_leftovers(now, self.settings.graceful_timeout));
        out
    }

    fn step_failed(&mut self, reason: String, code: i32, now: Instant) -> Vec<Action> {
        self.exit_code = Some(if code == 0 { 1 } else { code });
        let mut out = vec![report(Report::StepFailed {
            step: self.label(),
            what: self.what(),
            reason,
        })];
        self.step = None;
        out.extend(self.begin_leftovers(now, self.settings.graceful_timeout));
        out
    }
}

/// Words joined for display, quoted where a shell would need it.
fn shown(argv: &[OsString]) -> String {
    let words: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    crate::vocab::shell_join(&words)
}
