//! One program's workers: its slots, each with a current worker and maybe
//! a replacement, the workers retiring, the readiness and watchdog
//! timers, and the pure restart decision `(policy, status, how long it
//! ran, whether it was ever ready, quick failures) -> restart`.
//!
//! Invariants: a pid is in at most one of current / replacement /
//! retiring; `quick_failures` counts the exits in a row of one slot that
//! came before the worker was ready or sooner than `min_uptime` after its
//! start (a crash loop once it reaches `crash_loop`); a failed fork is
//! counted apart (`fork_failures`): it says the machine is short of
//! processes, not that the command is broken.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::ProgramSettings;
use crate::reaper::Status;
use crate::supervisor::events::Action;
use crate::supervisor::report::Why;
use crate::vocab::{ReadyMode, RestartPolicy, Signal};

/// How often a starting worker's /proc is looked at in `listen` mode:
/// only while one is starting, so an init whose workers are all ready
/// makes no wake-up.
pub(super) const LISTEN_POLL: Duration = Duration::from_millis(25);

/// Why a worker that still owns its slot is being stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Failing {
    /// Not ready within `--ready-timeout`.
    NotReady,
    /// Silent longer than `--watchdog` (or `WATCHDOG=trigger`).
    Hung,
}

#[derive(Clone, Debug)]
pub(super) struct Worker {
    pub pid: Pid,
    pub started: Instant,
    /// The reload generation it was started in: a rolling restart
    /// replaces every worker of an older generation.
    pub generation: u64,
    pub ready_at: Option<Instant>,
    /// The last sign of life for the watchdog (`WATCHDOG=1`, or readiness).
    pub last_ping: Option<Instant>,
    /// Its last `STATUS=` text.
    pub status: Option<String>,
    /// It said `STOPPING=1`.
    pub stopping: bool,
    /// Being stopped while it still owns its slot, with its SIGKILL due.
    pub failing: Option<(Failing, Option<Instant>)>,
    /// `listen` readiness could not be seen in /proc: ready by delay.
    pub unseen: bool,
    /// Its memory at the guard's last sample (PSS of its tree, bytes).
    pub memory: Option<u64>,
    /// A replacement for it failed: the guard leaves it alone until then.
    pub hold_until: Option<Instant>,
}

impl Worker {
    fn new(pid: Pid, started: Instant, generation: u64) -> Worker {
        Worker {
            pid,
            started,
            generation,
            ready_at: None,
            last_ping: None,
            status: None,
            stopping: false,
            failing: None,
            unseen: false,
            memory: None,
            hold_until: None,
        }
    }

    pub fn ready(&self) -> bool {
        self.ready_at.is_some()
    }

    /// Stands for a start that failed before a child existed: never
    /// ready, ran no time.
    pub fn failed_start(now: Instant) -> Worker {
        Worker::new(Pid::from_raw(0), now, 0)
    }
}

/// Why a slot's last worker ended, for the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastExit {
    pub status: Status,
    pub why: Option<Why>,
}

#[derive(Clone, Debug, Default)]
pub(super) struct Slot {
    pub current: Option<Worker>,
    pub replacement: Option<Worker>,
    /// Why the replacement under way was started.
    pub replacing: Option<Why>,
    pub quick_failures: u32,
    fork_failures: u32,
    pub restart_at: Option<Instant>,
    /// Exited and not restarted (policy), with its last status.
    finished: Option<Status>,
    /// Restarts of this slot by reason.
    pub restarts: BTreeMap<Why, u32>,
    pub last_exit: Option<LastExit>,
}

impl Slot {
    /// Its worker exited and is not restarted (restart policy).
    pub fn finished(&self) -> bool {
        self.finished.is_some()
    }
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
    /// When to look at the starting workers' /proc again (`listen`).
    pub listen_check_at: Option<Instant>,
    /// The restarts of slots scaled away, so that the program's totals
    /// never go down (they are counters for the metrics).
    pub removed_restarts: BTreeMap<Why, u32>,
    /// Replacements asked for while another was under way (memory, age):
    /// one slot at a time, in order; each for the worker (pid) it was
    /// asked for, dropped if that worker is gone by then.
    pub pending: std::collections::VecDeque<(u32, Why, Pid)>,
    /// Its workers were started (its `after` programs were satisfied).
    pub launched: bool,
    /// Every slot had a ready worker, or all finished cleanly: the
    /// programs that start after it may start.
    pub satisfied: bool,
    /// Not critical and in a crash loop: left stopped.
    pub gave_up: bool,
    /// When its stop signal was sent, its SIGKILL deadline.
    pub stop_deadline: Option<Instant>,
    /// The SIGKILL at `stop_deadline` was sent.
    pub stop_killed: bool,
}

impl Program {
    pub fn new(settings: ProgramSettings) -> Program {
        Program {
            slots: vec![Slot::default(); settings.count.max(1) as usize],
            settings,
            retiring: Vec::new(),
            generation: 0,
            rolling: false,
            cursor: 0,
            ever_started: false,
            listen_check_at: None,
            removed_restarts: BTreeMap::new(),
            pending: std::collections::VecDeque::new(),
            launched: false,
            satisfied: false,
            gave_up: false,
            stop_deadline: None,
            stop_killed: false,
        }
    }

    pub fn workers(&self) -> impl Iterator<Item = &Worker> + '_ {
        self.slots
            .iter()
            .flat_map(|s| s.current.iter().chain(s.replacement.iter()))
    }

    fn workers_mut(&mut self) -> impl Iterator<Item = &mut Worker> + '_ {
        self.slots
            .iter_mut()
            .flat_map(|s| s.current.iter_mut().chain(s.replacement.iter_mut()))
    }

    pub fn live_pids(&self) -> impl Iterator<Item = Pid> + '_ {
        self.workers()
            .map(|w| w.pid)
            .chain(self.retiring.iter().map(|r| r.pid))
    }

    pub fn slot_of(&self, pid: Pid) -> Option<u32> {
        self.slots
            .iter()
            .position(|s| {
                s.current.as_ref().is_some_and(|w| w.pid == pid)
                    || s.replacement.as_ref().is_some_and(|w| w.pid == pid)
            })
            .map(|i| i as u32)
            .or_else(|| self.retiring.iter().find(|r| r.pid == pid).map(|r| r.slot))
    }

    pub fn worker_mut(&mut self, pid: Pid) -> Option<&mut Worker> {
        self.workers_mut().find(|w| w.pid == pid)
    }

    /// Every slot has a ready worker.
    pub fn all_ready(&self) -> bool {
        self.slots
            .iter()
            .all(|s| s.current.as_ref().is_some_and(Worker::ready))
    }

    pub fn ready_count(&self) -> u32 {
        self.slots
            .iter()
            .filter(|s| s.current.as_ref().is_some_and(Worker::ready))
            .count() as u32
    }

    /// Records a started worker; false when its slot no longer exists.
    pub fn spawned(&mut self, slot: u32, replacement: bool, pid: Pid, now: Instant) -> bool {
        let generation = self.generation;
        let Some(sl) = self.slots.get_mut(slot as usize) else {
            return false;
        };
        let w = Worker::new(pid, now, generation);
        sl.fork_failures = 0;
        if replacement {
            sl.replacement = Some(w);
        } else {
            sl.current = Some(w);
            sl.finished = None;
        }
        self.ever_started = true;
        if self.settings.ready == ReadyMode::Listen && self.listen_check_at.is_none() {
            self.listen_check_at = Some(now + LISTEN_POLL);
        }
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
        if sl.replacement.as_ref().is_some_and(|w| w.pid == pid) {
            // `replacing` stays: whoever handles the failure reads it.
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
        if let Some(why) = sl.replacing.take() {
            *sl.restarts.entry(why).or_default() += 1;
        }
        let pid = r.pid;
        sl.current = Some(r);
        Some(pid)
    }

    /// The restart decision for a worker of `slot` that ended on its own.
    pub fn decide_restart(
        &mut self,
        slot: u32,
        worker: &Worker,
        status: Status,
        oom: bool,
        now: Instant,
    ) -> Restart {
        let s = &self.settings;
        let (policy, min_uptime, crash_loop) = (s.policy, s.min_uptime, s.crash_loop);
        let (initial, max) = (s.backoff_initial, s.backoff_max);
        let Some(sl) = self.slots.get_mut(slot as usize) else {
            return Restart::No;
        };
        let ran = now.saturating_duration_since(worker.started);
        // A worker that never became ready failed to start, however long
        // it took to fail; one that was stopped as hung had started.
        let hung = matches!(worker.failing, Some((Failing::Hung, _)));
        // In `delay` mode readiness is the uptime itself (the timer that
        // marks it may not have fired yet when the worker exits).
        let ready = worker.ready() || (s.ready == ReadyMode::Delay && ran >= min_uptime);
        let quick = !hung && (ran < min_uptime || !ready);
        sl.quick_failures = if quick { sl.quick_failures + 1 } else { 0 };
        let why = if oom {
            Why::Oom
        } else if hung {
            Why::Hung
        } else if status == Status::Exited(0) {
            Why::Exit
        } else {
            Why::Crash
        };
        sl.last_exit = Some(LastExit {
            status,
            why: Some(why),
        });
        let restart = match policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => status != Status::Exited(0) || hung,
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
        *sl.restarts.entry(why).or_default() += 1;
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

    /// Why none of its workers runs now and none may be started by a
    /// reload or a scale: it gave up, or waits for its `after`.
    pub fn idle(&self) -> Option<&'static str> {
        if self.gave_up {
            Some("the program gave up (it is not critical): it stays stopped")
        } else if !self.launched {
            Some("the program waits for the programs of its `after`")
        } else {
            None
        }
    }

    pub fn all_finished_cleanly(&self) -> bool {
        self.slots
            .iter()
            .all(|s| s.finished == Some(Status::Exited(0)))
    }

    /// No restart is due any more (a shutdown began).
    pub fn stop_restarts(&mut self) {
        self.rolling = false;
        self.pending.clear();
        for s in &mut self.slots {
            s.replacing = None;
        }
        self.listen_check_at = None;
        for s in &mut self.slots {
            s.restart_at = None;
        }
    }

    /// The stop signal to every worker, with SIGKILL due at `deadline`.
    pub fn stop_all(&mut self, signal: Signal, deadline: Instant) -> Vec<Action> {
        self.stop_restarts();
        let out: Vec<Action> = self
            .workers()
            .filter(|w| w.failing.is_none())
            .map(|w| Action::Stop { pid: w.pid, signal })
            .collect();
        for w in self.workers_mut() {
            if let Some((_, kill_at)) = &mut w.failing {
                *kill_at = Some(kill_at.map_or(deadline, |k| k.min(deadline)));
            }
        }
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
        for w in self.workers_mut() {
            if let Some((_, kill_at)) = &mut w.failing {
                *kill_at = None;
            }
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

    /// Stops the worker `pid` that still owns its slot (not ready in time,
    /// hung): it stays there until it exits, and its slot then restarts.
    pub fn fail(&mut self, pid: Pid, why: Failing, now: Instant) -> Option<Action> {
        let kill_at = now + self.settings.graceful_timeout;
        let signal = self.settings.stop_signal;
        let w = self.worker_mut(pid)?;
        if w.failing.is_some() {
            return None;
        }
        w.failing = Some((why, Some(kill_at)));
        Some(Action::Stop { pid, signal })
    }

    /// The starting workers `listen` readiness should look at.
    pub fn starting_pids(&self) -> Vec<Pid> {
        self.workers()
            .filter(|w| !w.ready() && w.failing.is_none() && !w.unseen)
            .map(|w| w.pid)
            .collect()
    }

    /// When a starting worker counts as ready by delay (`delay` mode, or
    /// `listen` readiness that /proc could not show).
    fn ready_by_delay(&self, w: &Worker) -> Option<Instant> {
        let by_delay = self.settings.ready == ReadyMode::Delay || w.unseen;
        (by_delay && !w.ready() && w.failing.is_none())
            .then(|| w.started + self.settings.min_uptime)
    }

    fn ready_deadline(&self, w: &Worker) -> Option<Instant> {
        (!w.ready() && w.failing.is_none())
            .then(|| w.started.checked_add(self.settings.ready_timeout))
            .flatten()
    }

    /// Armed once the worker is ready: a slow start is the ready
    /// timeout's business, not the watchdog's.
    fn watchdog_deadline(&self, w: &Worker) -> Option<Instant> {
        let wd = self.settings.watchdog?;
        (w.failing.is_none() && w.ready())
            .then_some(w.last_ping?)
            .and_then(|t| t.checked_add(wd))
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let workers = self.workers().flat_map(|w| {
            [
                self.ready_by_delay(w),
                self.ready_deadline(w),
                self.watchdog_deadline(w),
            ]
        });
        self.slots
            .iter()
            .map(|s| s.restart_at)
            .chain(workers)
            .chain([self.listen_check_at])
            .flatten()
            .min()
    }

    pub fn next_kill(&self) -> Option<Instant> {
        self.retiring
            .iter()
            .filter_map(|r| r.kill_at)
            .chain(self.workers().filter_map(|w| w.failing.and_then(|f| f.1)))
            .min()
    }

    pub fn kill_overdue(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        for r in &mut self.retiring {
            if r.kill_at.is_some_and(|t| t <= now) {
                r.kill_at = None;
                out.push(Action::Kill { pid: r.pid });
            }
        }
        for w in self.workers_mut() {
            if let Some((_, kill_at)) = &mut w.failing {
                if kill_at.is_some_and(|t| t <= now) {
                    *kill_at = None;
                    out.push(Action::Kill { pid: w.pid });
                }
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

    /// Starting workers that are ready by delay now.
    pub fn due_ready(&self, now: Instant) -> Vec<Pid> {
        self.workers()
            .filter(|w| self.ready_by_delay(w).is_some_and(|t| t <= now))
            .map(|w| w.pid)
            .collect()
    }

    /// Starting workers past their ready timeout.
    pub fn due_not_ready(&self, now: Instant) -> Vec<Pid> {
        self.workers()
            .filter(|w| self.ready_deadline(w).is_some_and(|t| t <= now))
            .map(|w| w.pid)
            .collect()
    }

    /// Ready workers the watchdog has not heard from in time.
    pub fn due_hung(&self, now: Instant) -> Vec<Pid> {
        self.workers()
            .filter(|w| self.watchdog_deadline(w).is_some_and(|t| t <= now))
            .map(|w| w.pid)
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
