//! One program's workers: its slots, each with a current worker and maybe
//! a replacement, the workers retiring, and the pure restart decision
//! `(policy, status, how long it ran, quick failures) -> restart`.
//!
//! Invariants: a pid is in at most one of current / replacement /
//! retiring; `quick_failures` counts the exits in a row of one slot that
//! came sooner than `min_uptime` after a start (a crash loop once it
//! reaches `crash_loop`); a failed fork is counted apart
//! (`fork_failures`): it says the machine is short of processes, not that
//! the command is broken.

use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::ProgramSettings;
use crate::reaper::Status;
use crate::supervisor::events::Action;
use crate::vocab::{RestartPolicy, Signal};

#[derive(Clone, Copy, Debug)]
pub(super) struct Worker {
    pub pid: Pid,
    pub started: Instant,
    /// The reload generation it was started in: a rolling restart
    /// replaces every worker of an older generation.
    pub generation: u64,
}

#[derive(Clone, Debug, Default)]
pub(super) struct Slot {
    pub current: Option<Worker>,
    pub replacement: Option<Worker>,
    quick_failures: u32,
    fork_failures: u32,
    restart_at: Option<Instant>,
    /// Exited and not restarted (policy), with its last status.
    finished: Option<Status>,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Retiring {
    pub pid: Pid,
    pub slot: u32,
    pub kill_at: Option<Instant>,
}

/// What a slot does after its worker ended on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Restart {
    In(Duration),
    No,
    CrashLoop { failures: u32 },
}

pub(super) struct Program {
    pub settings: ProgramSettings,
    pub slots: Vec<Slot>,
    pub retiring: Vec<Retiring>,
    /// The current reload generation (`roll.rs`).
    pub generation: u64,
    /// A rolling restart is under way.
    pub rolling: bool,
    /// Where the roll looks for the next slot to replace.
    pub cursor: u32,
    /// A worker of this program has started at least once.
    pub ever_started: bool,
}

impl Program {
    pub fn new(_index: usize, settings: ProgramSettings) -> Program {
        Program {
            slots: vec![Slot::default(); settings.count.max(1) as usize],
            settings,
            retiring: Vec::new(),
            generation: 0,
            rolling: false,
            cursor: 0,
            ever_started: false,
        }
    }

    pub fn live_pids(&self) -> impl Iterator<Item = Pid> + '_ {
        self.slots
            .iter()
            .flat_map(|s| s.current.iter().chain(s.replacement.iter()).map(|w| w.pid))
            .chain(self.retiring.iter().map(|r| r.pid))
    }

    pub fn slot_of(&self, pid: Pid) -> Option<u32> {
        self.slots
            .iter()
            .position(|s| {
                s.current.is_some_and(|w| w.pid == pid)
                    || s.replacement.is_some_and(|w| w.pid == pid)
            })
            .map(|i| i as u32)
            .or_else(|| self.retiring.iter().find(|r| r.pid == pid).map(|r| r.slot))
    }

    /// Records a started worker; false when its slot no longer exists.
    pub fn spawned(&mut self, slot: u32, replacement: bool, pid: Pid, now: Instant) -> bool {
        let generation = self.generation;
        let Some(sl) = self.slots.get_mut(slot as usize) else {
            return false;
        };
        let w = Worker {
            pid,
            started: now,
            generation,
        };
        sl.fork_failures = 0;
        if replacement {
            sl.replacement = Some(w);
        } else {
            sl.current = Some(w);
            sl.finished = None;
        }
        self.ever_started = true;
        true
    }

    /// A fork failed for `slot`: when to try again.
    pub fn fork_failed(&mut self, slot: u32, now: Instant) -> Duration {
        let s = &self.settings;
        let (initial, max) = (s.backoff_initial, s.backoff_max);
        let Some(sl) = self.slots.get_mut(slot as usize) else {
            return Duration::ZERO;
        };
        sl.fork_failures = sl.fork_failures.saturating_add(1);
        let delay = backoff(initial, max, sl.fork_failures);
        sl.restart_at = Some(now + delay);
        delay
    }

    pub fn take_retiring(&mut self, pid: Pid) -> Option<u32> {
        let i = self.retiring.iter().position(|r| r.pid == pid)?;
        Some(self.retiring.remove(i).slot)
    }

    pub fn take_replacement(&mut self, slot: u32, pid: Pid) -> Option<Worker> {
        let sl = self.slots.get_mut(slot as usize)?;
        if sl.replacement.is_some_and(|w| w.pid == pid) {
            sl.replacement.take()
        } else {
            None
        }
    }

    pub fn take_current(&mut self, slot: u32) -> Option<Worker> {
        self.slots.get_mut(slot as usize)?.current.take()
    }

    /// The replacement of `slot` becomes its worker at once (the old one
    /// exited first); its pid.
    pub fn promote_now(&mut self, slot: u32) -> Option<Pid> {
        let sl = self.slots.get_mut(slot as usize)?;
        let r = sl.replacement.take()?;
        sl.current = Some(r);
        Some(r.pid)
    }

    /// The restart decision for a worker of `slot` that ended on its own.
    pub fn decide_restart(
        &mut self,
        slot: u32,
        status: Status,
        ran: Duration,
        now: Instant,
    ) -> Restart {
        let s = &self.settings;
        let (policy, min_uptime, crash_loop) = (s.policy, s.min_uptime, s.crash_loop);
        let (initial, max) = (s.backoff_initial, s.backoff_max);
        let Some(sl) = self.slots.get_mut(slot as usize) else {
            return Restart::No;
        };
        let quick = ran < min_uptime;
        sl.quick_failures = if quick { sl.quick_failures + 1 } else { 0 };
        let restart = match policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => status != Status::Exited(0),
            RestartPolicy::Never => false,
        };
        if !restart {
            sl.finished = Some(status);
            return Restart::No;
        }
        if sl.quick_failures >= crash_loop {
            return Restart::CrashLoop {
                failures: sl.quick_failures,
            };
        }
        let delay = match sl.quick_failures {
            0 => Duration::ZERO,
            n => backoff(initial, max, n),
        };
        if !delay.is_zero() {
            sl.restart_at = Some(now + delay);
        }
        Restart::In(delay)
    }

    pub fn all_finished(&self) -> bool {
        self.slots
            .iter()
            .all(|s| s.finished.is_some() && s.replacement.is_none())
    }

    pub fn all_finished_cleanly(&self) -> bool {
        self.slots
            .iter()
            .all(|s| s.finished == Some(Status::Exited(0)))
    }

    /// No restart is due any more (a shutdown began).
    pub fn stop_restarts(&mut self) {
        self.rolling = false;
        for s in &mut self.slots {
            s.restart_at = None;
        }
    }

    /// The stop signal to every worker, with SIGKILL due at `deadline`.
    pub fn stop_all(&mut self, signal: Signal, deadline: Instant) -> Vec<Action> {
        self.stop_restarts();
        let out: Vec<Action> = self
            .slots
            .iter()
            .flat_map(|s| s.current.iter().chain(s.replacement.iter()))
            .map(|w| Action::Stop { pid: w.pid, signal })
            .collect();
        for r in &mut self.retiring {
            r.kill_at = Some(r.kill_at.map_or(deadline, |k| k.min(deadline)));
        }
        out
    }

    /// SIGKILL is sent to everything at once: no kill deadline is left.
    pub fn forget_kill_deadlines(&mut self) {
        for r in &mut self.retiring {
            r.kill_at = None;
        }
    }

    /// Stops `pid` of `slot` with this program's stop signal; SIGKILL
    /// follows after the graceful timeout.
    pub fn retire(&mut self, pid: Pid, slot: u32, now: Instant) -> Action {
        self.retiring.push(Retiring {
            pid,
            slot,
            kill_at: Some(now + self.settings.graceful_timeout),
        });
        Action::Stop {
            pid,
            signal: self.settings.stop_signal,
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let min_uptime = self.settings.min_uptime;
        self.slots
            .iter()
            .flat_map(|s| {
                s.restart_at
                    .into_iter()
                    .chain(s.replacement.map(|w| w.started + min_uptime))
            })
            .min()
    }

    pub fn next_kill(&self) -> Option<Instant> {
        self.retiring.iter().filter_map(|r| r.kill_at).min()
    }

    pub fn kill_overdue(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        for r in &mut self.retiring {
            if r.kill_at.is_some_and(|t| t <= now) {
                r.kill_at = None;
                out.push(Action::Kill { pid: r.pid });
            }
        }
        out
    }

    /// Slots whose restart is due; their timers are cleared.
    pub fn due_restarts(&mut self, now: Instant) -> Vec<u32> {
        let mut due = Vec::new();
        for (i, s) in self.slots.iter_mut().enumerate() {
            if s.restart_at.is_some_and(|t| t <= now) {
                s.restart_at = None;
                due.push(i as u32);
            }
        }
        due
    }

    /// Slots whose replacement has stayed up long enough to take over.
    pub fn due_promotions(&self, now: Instant) -> Vec<u32> {
        let min_uptime = self.settings.min_uptime;
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.replacement.is_some_and(|w| w.started + min_uptime <= now))
            .map(|(i, _)| i as u32)
            .collect()
    }
}

/// `initial` doubled for each failure after the first, at most `max`.
fn backoff(initial: Duration, max: Duration, failures: u32) -> Duration {
    initial
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)))
        .min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap() {
        let ms = |n| backoff(Duration::from_millis(100), Duration::from_secs(1), n).as_millis();
        assert_eq!(
            [ms(1), ms(2), ms(3), ms(4), ms(5), ms(60)],
            [100, 200, 400, 800, 1000, 1000]
        );
    }
}
