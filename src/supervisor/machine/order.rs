//! Several programs: the order they start and stop in, and a program
//! that gives up alone.
//!
//! A program starts once every program of its `after` is *satisfied*:
//! each of its slots had a ready worker (`--ready`), or all of them
//! finished cleanly (a one-shot program, `restart = "never"`, exit 0).
//! Programs without `after` start when the sockets are bound.
//!
//! The shutdown goes the other way, in stages: a program gets its stop
//! signal once no program that starts after it has a process left, and
//! SIGKILL when its own graceful timeout passes; the whole stop is
//! bounded by the sum of each stage's longest timeout (the plan's
//! budget). With one program this is the single-program shutdown.
//!
//! A program that is not `critical` and falls into a crash loop is left
//! stopped (its other workers are stopped too) and the rest go on; the
//! programs that start after it never start. The container ends (exit 1)
//! only when no program is left running.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{report, Machine, Phase};
use crate::reaper::Status;
use crate::supervisor::events::{Action, SlotId};
use crate::supervisor::report::Report;

impl Machine {
    /// Starts every program whose turn has come; none started twice.
    pub(super) fn launch_due(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase != Phase::Running {
            return out;
        }
        for p in &mut self.programs {
            if p.launched && !p.satisfied && (p.all_ready() || p.all_finished_cleanly()) {
                p.satisfied = true;
            }
        }
        for i in 0..self.programs.len() {
            let prog = &self.programs[i];
            if prog.launched || prog.gave_up {
                continue;
            }
            let after = &self.settings.programs[i].after;
            if !after.iter().all(|&a| self.programs[a].satisfied) {
                continue;
            }
            self.programs[i].launched = true;
            if self.programs.len() > 1 {
                out.push(report(Report::ProgramStarting {
                    program: self.settings.programs[i].name.clone(),
                    after: after
                        .iter()
                        .map(|&a| self.settings.programs[a].name.clone())
                        .collect(),
                }));
            }
            for slot in 0..self.worker_count(i) {
                out.push(self.spawn_action(SlotId { program: i, slot }, false));
            }
        }
        out
    }

    /// Program `p` is in a crash loop: the container stops when it is
    /// critical (or alone); otherwise it alone stops.
    pub(super) fn crash_loop(
        &mut self,
        slot: SlotId,
        failures: u32,
        last: Status,
        now: Instant,
    ) -> Vec<Action> {
        let p = slot.program;
        let who = self.who(slot);
        let within = self.settings.programs[p].min_uptime;
        if self.settings.programs[p].critical || self.programs.len() == 1 {
            self.exit_code = Some(1);
            let mut out = vec![report(Report::CrashLoop {
                who,
                failures,
                within,
                last,
            })];
            out.extend(self.begin_stop(now));
            return out;
        }
        self.programs[p].gave_up = true;
        let blocked = self.blocked_by(p);
        let mut out = vec![report(Report::GaveUp {
            who,
            failures,
            within,
            last,
            blocked,
        })];
        // Its other workers stop, SIGKILL at its graceful timeout
        // (`kill_overdue_programs`); nothing of it restarts (`after_exit`).
        let s = &self.settings.programs[p];
        let (signal, deadline) = (s.stop_signal, now + s.graceful_timeout);
        self.programs[p].stop_deadline = Some(deadline);
        out.extend(self.programs[p].stop_all(signal, deadline));
        out.extend(self.check_all_ready());
        if self.programs.iter().all(|q| q.gave_up || q.all_finished()) {
            self.exit_code = Some(1);
            out.extend(self.begin_stop(now));
        }
        out
    }

    /// The programs that will never start because `p` gave up (directly
    /// or through another).
    fn blocked_by(&self, p: usize) -> Vec<Arc<str>> {
        let mut blocked = vec![p];
        loop {
            let more: Vec<usize> = (0..self.programs.len())
                .filter(|i| !blocked.contains(i) && !self.programs[*i].launched)
                .filter(|i| {
                    self.settings.programs[*i]
                        .after
                        .iter()
                        .any(|a| blocked.contains(a))
                })
                .collect();
            if more.is_empty() {
                break;
            }
            blocked.extend(more);
        }
        blocked[1..]
            .iter()
            .map(|&i| self.settings.programs[i].name.clone())
            .collect()
    }

    /// Sends the stop signal to each program whose turn has come: no
    /// program that starts after it has a process left.
    pub(super) fn stop_due(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let n = self.programs.len();
        for i in 0..n {
            if self.programs[i].stop_deadline.is_some() {
                continue;
            }
            let waiting = (0..n).any(|j| {
                self.settings.programs[j].after.contains(&i)
                    && self.programs[j].live_pids().next().is_some()
            });
            if waiting {
                continue;
            }
            let timeout = self.settings.programs[i].graceful_timeout;
            let deadline = now + timeout;
            self.programs[i].stop_deadline = Some(deadline);
            let signal = self.stop_signal(i);
            let workers = self.programs[i].workers().count() as u32;
            if n > 1 && self.programs[i].live_pids().next().is_some() {
                out.push(report(Report::ProgramStopping {
                    program: self.settings.programs[i].name.clone(),
                    signal,
                    timeout,
                    workers,
                }));
            }
            out.extend(self.programs[i].stop_all(signal, deadline));
        }
        out
    }

    /// SIGKILL to the programs past their own graceful timeout: while
    /// stopping (the phase's deadline covers the whole stop), and for a
    /// program that gave up.
    pub(super) fn kill_overdue_programs(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        for i in 0..self.programs.len() {
            let prog = &mut self.programs[i];
            match prog.stop_deadline {
                Some(d) if d <= now && !prog.stop_killed => prog.stop_killed = true,
                _ => continue,
            }
            let pids: Vec<_> = self.programs[i].live_pids().collect();
            if pids.is_empty() {
                continue;
            }
            out.push(report(Report::ProgramTimeout {
                program: self.settings.programs[i].name.clone(),
                timeout: self.settings.programs[i].graceful_timeout,
                pids: pids.iter().map(|p| p.as_raw()).collect(),
            }));
            out.extend(pids.into_iter().map(|pid| Action::Kill { pid }));
        }
        out
    }

    /// The longest the stop may take: each stage's longest graceful
    /// timeout, added up.
    pub(super) fn stop_timeout(&self) -> Duration {
        if self.settings.plain {
            return self.settings.graceful_timeout;
        }
        let timeouts: Vec<Duration> = self
            .settings
            .programs
            .iter()
            .map(|p| p.graceful_timeout)
            .collect();
        crate::plan::staged_timeout(&self.stages, &timeouts)
    }

    /// The earliest per-program SIGKILL still due while stopping.
    pub(super) fn program_kill_deadline(&self) -> Option<Instant> {
        self.programs
            .iter()
            .filter(|p| !p.stop_killed && p.live_pids().next().is_some())
            .filter_map(|p| p.stop_deadline)
            .min()
    }
}
