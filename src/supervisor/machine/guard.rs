//! The memory guard, recycling by age, and OOM attribution.
//!
//! * With `--max-worker-memory` or `--memory-high`, the machine asks for a
//!   sample every `--memory-interval` (and only then: without them there
//!   is no timer at all). A ready worker above `--max-worker-memory` is
//!   replaced; when the container's working set passes `--memory-high`,
//!   the largest worker is, then the guard waits three intervals before it
//!   looks at the container again (the old worker's memory goes only once
//!   its replacement is ready and it has stopped).
//! * With `--max-worker-age`, each ready worker is replaced once it is
//!   that old plus its own share of the jitter (derived from its pid, so
//!   workers started together fall due apart).
//! * Every replacement goes through one queue per program: one slot at a
//!   time, new worker ready first, old one stopped after (`roll.rs`). A
//!   replacement that fails leaves the old worker serving and alone for a
//!   while.
//! * A worker that dies of SIGKILL that no one in the init sent, while the
//!   cgroup's `oom_kill` count rose, was killed by the kernel's OOM killer:
//!   reported as such, with the limit and its last sampled size, and
//!   counted apart.

use std::collections::BTreeSet;
use std::time::Instant;

use nix::unistd::Pid;

use super::{report, Machine};
use crate::reaper::Status;
use crate::supervisor::events::{Action, SlotId};
use crate::supervisor::report::{Report, Why};
use crate::vocab::{format_bytes, format_uptime, Signal};

/// How many sampling intervals the container-wide guard waits after it
/// asked for a replacement.
const HIGH_COOLDOWN_INTERVALS: u32 = 3;

#[derive(Default)]
pub(super) struct Guard {
    next_sample: Option<Instant>,
    /// The cgroup's OOM kill count last seen.
    oom_seen: Option<u64>,
    /// OOM kills counted when a child died of SIGKILL, not yet matched
    /// with a worker's death.
    oom_unclaimed: u64,
    /// Children the init itself sent SIGKILL.
    sigkilled: BTreeSet<Pid>,
    /// The container-wide guard waits until then.
    high_cooldown: Option<Instant>,
}

impl Guard {
    pub fn killed_by_init(&mut self, pid: Pid) {
        self.sigkilled.insert(pid);
    }
}

/// The share of the jitter a worker gets, from 0 to 1, from its pid (a
/// multiplicative hash: neighbouring pids land far apart).
fn jitter_share(pid: Pid) -> f64 {
    let h = (pid.as_raw() as u32).wrapping_mul(2_654_435_761);
    h as f64 / u32::MAX as f64
}

impl Machine {
    fn sampling(&self) -> bool {
        self.settings.memory_high.is_some()
            || self
                .settings
                .programs
                .iter()
                .any(|p| p.max_memory.is_some())
    }

    pub(super) fn guard_start(&mut self, now: Instant) {
        if self.sampling() {
            self.guard.next_sample = Some(now + self.settings.memory_interval);
        }
    }

    /// When a worker of program `p` (pid, started) is due for recycling
    /// by age; `None` when not, or not now (being replaced, on hold).
    fn age_due(&self, p: usize, slot: u32) -> Option<Instant> {
        let s = &self.settings.programs[p];
        let age = s.max_age?;
        let prog = &self.programs[p];
        let sl = prog.slots.get(slot as usize)?;
        let w = sl.current.as_ref()?;
        if !w.ready()
            || w.failing.is_some()
            || sl.replacement.is_some()
            || sl.replacing.is_some()
            || prog.pending.iter().any(|(s, _, _)| *s == slot)
        {
            return None;
        }
        let extra = age.mul_f64(s.age_jitter / 100.0 * jitter_share(w.pid));
        let due = w.started.checked_add(age)?.checked_add(extra)?;
        Some(match w.hold_until {
            Some(h) if h > due => h,
            _ => due,
        })
    }

    pub(super) fn guard_deadline(&self) -> Option<Instant> {
        let ages = (0..self.programs.len()).flat_map(|p| {
            (0..self.programs[p].slots.len() as u32).filter_map(move |s| self.age_due(p, s))
        });
        ages.chain(self.guard.next_sample).min()
    }

    pub(super) fn guard_tick(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.guard.next_sample.is_some_and(|t| t <= now) {
            self.guard.next_sample = Some(now + self.settings.memory_interval);
            let pids: Vec<Pid> = self
                .programs
                .iter()
                .flat_map(|p| p.workers().map(|w| w.pid))
                .collect();
            out.push(Action::SampleMemory { pids });
        }
        for p in 0..self.programs.len() {
            for slot in 0..self.programs[p].slots.len() as u32 {
                if self.age_due(p, slot).is_some_and(|t| t <= now) {
                    let Some(w) = self.programs[p].slots[slot as usize].current.as_ref() else {
                        continue;
                    };
                    let detail = format!(
                        "{} old, past --max-worker-age",
                        format_uptime(now.saturating_duration_since(w.started))
                    );
                    out.extend(self.recycle(p, slot, Why::Age, detail));
                }
            }
        }
        out
    }

    pub(super) fn sampled(
        &mut self,
        workers: &[(Pid, Option<u64>)],
        working_set: Option<u64>,
        now: Instant,
    ) -> Vec<Action> {
        for (pid, mem) in workers {
            // A worker that could not be read (it is exiting) keeps its
            // last figure: the OOM report wants it.
            let Some(mem) = mem else { continue };
            for prog in &mut self.programs {
                if let Some(w) = prog.worker_mut(*pid) {
                    w.memory = Some(*mem);
                }
            }
        }
        let mut out = Vec::new();
        for p in 0..self.programs.len() {
            let Some(max) = self.settings.programs[p].max_memory else {
                continue;
            };
            for slot in 0..self.programs[p].slots.len() as u32 {
                let sl = &self.programs[p].slots[slot as usize];
                let Some(w) = sl.current.as_ref() else {
                    continue;
                };
                let over = w.memory.is_some_and(|m| m > max);
                if over && self.recyclable(p, slot, now) {
                    let detail = format!(
                        "uses {} (PSS), above --max-worker-memory {}",
                        format_bytes(w.memory.unwrap_or(0)),
                        format_bytes(max)
                    );
                    out.extend(self.recycle(p, slot, Why::Memory, detail));
                }
            }
        }
        if let (Some(high), Some(ws)) = (self.settings.memory_high, working_set) {
            let cool = self.guard.high_cooldown.is_some_and(|t| t > now);
            if ws > high && !cool {
                if let Some((p, slot, mem)) = self.largest(now) {
                    let detail = format!(
                        "the container's working set {} passed --memory-high {}; this worker is the largest ({})",
                        format_bytes(ws),
                        format_bytes(high),
                        format_bytes(mem)
                    );
                    out.extend(self.recycle(p, slot, Why::Memory, detail));
                    self.guard.high_cooldown =
                        Some(now + self.settings.memory_interval * HIGH_COOLDOWN_INTERVALS);
                }
            }
        }
        out
    }

    /// A ready worker that may be recycled now.
    fn recyclable(&self, p: usize, slot: u32, now: Instant) -> bool {
        let prog = &self.programs[p];
        let Some(sl) = prog.slots.get(slot as usize) else {
            return false;
        };
        sl.current.as_ref().is_some_and(|w| {
            w.ready() && w.failing.is_none() && w.hold_until.is_none_or(|t| t <= now)
        }) && sl.replacement.is_none()
            && sl.replacing.is_none()
            && !prog.pending.iter().any(|(s, _, _)| *s == slot)
    }

    /// The largest recyclable worker by its last sample.
    fn largest(&self, now: Instant) -> Option<(usize, u32, u64)> {
        let mut best: Option<(usize, u32, u64)> = None;
        for (p, prog) in self.programs.iter().enumerate() {
            for (i, sl) in prog.slots.iter().enumerate() {
                let slot = i as u32;
                let Some(mem) = sl.current.as_ref().and_then(|w| w.memory) else {
                    continue;
                };
                if self.recyclable(p, slot, now) && best.is_none_or(|b| mem > b.2) {
                    best = Some((p, slot, mem));
                }
            }
        }
        best
    }

    /// Asks for a new worker in `slot`; it starts now, or once the
    /// replacement under way in the program is done.
    fn recycle(&mut self, p: usize, slot: u32, why: Why, detail: String) -> Vec<Action> {
        let who = self.who(SlotId { program: p, slot });
        let prog = &mut self.programs[p];
        let Some(pid) = prog.slots[slot as usize].current.as_ref().map(|w| w.pid) else {
            return Vec::new();
        };
        prog.pending.push_back((slot, why, pid));
        let mut out = vec![report(Report::Recycle {
            who,
            pid,
            reason: why,
            detail,
        })];
        out.extend(self.next_roll(p));
        out
    }

    /// The count of OOM kills, read when a child died of SIGKILL, and
    /// the cgroup's limit (the plan knows it only when it read the limits).
    pub(super) fn oom_kills(&mut self, n: u64, limit: Option<u64>) -> Vec<Action> {
        if self.settings.memory_limit.is_none() {
            self.settings.memory_limit = limit;
        }
        let seen = self.guard.oom_seen.unwrap_or(0);
        if n > seen {
            self.guard.oom_unclaimed += n - seen;
        }
        self.guard.oom_seen = Some(n.max(seen));
        Vec::new()
    }

    /// Whether `pid`'s death was an OOM kill: SIGKILL from no one in the
    /// init, with a kill the cgroup counted and no death claimed it yet.
    pub(super) fn claim_oom(&mut self, pid: Pid, status: Status) -> bool {
        let by_init = self.guard.sigkilled.remove(&pid);
        if status != Status::Signaled(Signal::KILL) || by_init || self.guard.oom_unclaimed == 0 {
            return false;
        }
        self.guard.oom_unclaimed -= 1;
        true
    }

    /// The OOM report for a worker of `slot`, with its last sample.
    pub(super) fn oom_report(&self, slot: SlotId, pid: Pid, last: Option<u64>) -> Action {
        report(Report::OomKilled {
            who: self.who(slot),
            pid,
            limit: self.settings.memory_limit,
            last,
        })
    }
}
