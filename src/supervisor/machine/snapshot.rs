//! What the machine shows of itself: `snapshot(now)`, a plain copy of
//! its state for the status, the readiness probe and the metrics. Pure
//! and read-only: taking one changes nothing and arms no timer.

use std::collections::BTreeMap;
use std::time::Instant;

use super::program::{Failing, Program, Slot, Worker};
use super::{Machine, Phase};
use crate::reaper::Status as ExitStatus;
use crate::status::{self, SlotState};
use crate::supervisor::report::Why;

fn counted(counts: &BTreeMap<Why, u32>) -> status::Restarts {
    let mut r = status::Restarts::default();
    for (why, n) in counts {
        r.add(why.as_str(), *n);
    }
    r
}

fn secs(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// Ready, and not being stopped as hung or unready.
fn serving(w: &Worker) -> bool {
    w.ready() && w.failing.is_none()
}

impl Machine {
    /// The machine's part of the status; the shell adds what only the OS
    /// knows (pid, memory, CPU, sockets, limits).
    pub fn snapshot(&self, now: Instant) -> status::Status {
        let phase = self.status_phase();
        let programs: Vec<status::Program> =
            self.programs.iter().map(|p| self.program(p, now)).collect();
        let ready = phase == status::Phase::Running
            && self.programs.iter().all(|p| {
                p.gave_up
                    || p.slots
                        .iter()
                        .all(|s| s.current.as_ref().is_some_and(serving))
            });
        status::Status {
            schema: status::SCHEMA,
            pid: 0,
            // Named programs come from a Procfile or [programs] tables.
            mode: if self.settings.plain {
                "plain"
            } else if self.settings.programs.iter().any(|p| !p.name.is_empty()) {
                "programs"
            } else {
                "workers"
            },
            phase,
            stopping: phase.stopping(),
            ready,
            started_at_s: 0.0,
            uptime: 0.0,
            step: (phase == status::Phase::Prestart && self.step.is_some())
                .then(|| self.label().to_string()),
            programs,
            listeners: Vec::new(),
            limits: None,
        }
    }

    fn status_phase(&self) -> status::Phase {
        match self.phase {
            Phase::Prestart => status::Phase::Prestart,
            Phase::Binding => status::Phase::Binding,
            Phase::Running => status::Phase::Running,
            Phase::Draining { .. } => status::Phase::Draining,
            Phase::Stopping { .. } => status::Phase::Stopping,
            Phase::Leftovers { .. } => status::Phase::Exiting,
        }
    }

    fn program(&self, p: &Program, now: Instant) -> status::Program {
        let mut totals = counted(&p.removed_restarts);
        for s in &p.slots {
            for (why, n) in &s.restarts {
                totals.add(why.as_str(), *n);
            }
        }
        status::Program {
            name: p.settings.name.to_string(),
            workers: p.slots.len() as u32,
            max_workers: p.settings.max_count.max(p.slots.len() as u32),
            ready: p
                .slots
                .iter()
                .filter(|s| s.current.as_ref().is_some_and(serving))
                .count() as u32,
            rolling: p.rolling,
            source: String::new(),
            restarts: totals,
            slots: p
                .slots
                .iter()
                .enumerate()
                .map(|(i, s)| self.slot(p, i as u32, s, now))
                .collect(),
            retiring: p
                .retiring
                .iter()
                .map(|r| status::Retiring {
                    pid: r.pid.as_raw(),
                    slot: r.slot,
                })
                .collect(),
            state: if p.gave_up {
                "gave_up"
            } else if p.launched {
                "running"
            } else {
                "waiting"
            },
            after: p
                .settings
                .after
                .iter()
                .map(|&a| self.settings.programs[a].name.to_string())
                .collect(),
            critical: p.settings.critical,
        }
    }

    fn slot(&self, p: &Program, i: u32, s: &Slot, now: Instant) -> status::Slot {
        let stopping = matches!(self.phase, Phase::Stopping { .. } | Phase::Leftovers { .. });
        let state = match &s.current {
            None if p.gave_up => SlotState::Exited,
            None if !p.launched && !stopping => SlotState::Waiting,
            Some(w) if w.failing.is_some() || stopping => SlotState::Stopping,
            Some(w) if w.ready() => SlotState::Ready,
            Some(_) => SlotState::Starting,
            None if s.finished() || self.status_phase().stopping() => SlotState::Exited,
            None => SlotState::Backoff,
        };
        status::Slot {
            slot: i,
            state,
            worker: s.current.as_ref().map(|w| worker(w, now)),
            replacement: s.replacement.as_ref().map(|w| worker(w, now)),
            restarts: counted(&s.restarts),
            last_exit: s.last_exit.map(|e| status::Exit {
                code: match e.status {
                    ExitStatus::Exited(c) => Some(c),
                    _ => None,
                },
                signal: match e.status {
                    ExitStatus::Signaled(sig) | ExitStatus::Stopped(sig) => Some(sig.name()),
                    _ => None,
                },
                reason: e.why.map(Why::as_str),
                oom: e.why == Some(Why::Oom),
            }),
            restart_in_s: match (&s.current, s.restart_at) {
                (None, Some(t)) => Some(secs(t.saturating_duration_since(now))),
                _ => None,
            },
        }
    }
}

fn worker(w: &Worker, now: Instant) -> status::Worker {
    status::Worker {
        pid: w.pid.as_raw(),
        ready: serving(w),
        uptime_s: secs(now.saturating_duration_since(w.started)),
        ready_after_s: w
            .ready_at
            .map(|t| secs(t.saturating_duration_since(w.started))),
        status: w.status.clone(),
        stopping: w.stopping,
        failing: w.failing.map(|(f, _)| match f {
            Failing::NotReady => "not_ready",
            Failing::Hung => "hung",
        }),
        generation: w.generation,
        ..Default::default()
    }
}
