//! Rolling restarts and scaling.
//!
//! A reload (HUP) opens a new generation. The roll then replaces, one slot
//! at a time and new worker first, every worker of an older generation:
//! the replacement starts, and once it is ready (`ready.rs`) it takes over
//! and the old worker is stopped. The roll goes on from where it was, round the
//! slots, so a burst of HUPs never starves the last slots: after the burst
//! every slot ends with a worker started after the last HUP. A
//! replacement that fails stops the roll; the old workers keep serving.

use std::time::Instant;

use super::{report, Machine, Phase};
use crate::supervisor::events::{Action, SlotId, Upstream};
use crate::supervisor::report::{Report, Why};

impl Machine {
    /// A reload's re-plans: of `only`, or of every program that runs (one
    /// not started yet starts with the new plan anyway; one that gave up
    /// stays stopped).
    pub(super) fn replans(&self, only: Option<usize>) -> Vec<Action> {
        (0..self.programs.len())
            .filter(|&p| only.map_or(self.programs[p].idle().is_none(), |o| o == p))
            .map(|program| Action::Replan { program })
            .collect()
    }

    /// HUP's answer for one program: `count` is the re-planned worker
    /// count (None: keep).
    pub(super) fn reload(&mut self, p: usize, count: Option<u32>, now: Instant) -> Vec<Action> {
        if self.phase != Phase::Running || p >= self.programs.len() {
            return Vec::new();
        }
        // It may have gone idle since the re-plan was asked for.
        if self.programs[p].idle().is_some() {
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Some(n) = count.filter(|&n| n != self.worker_count(p)) {
            out.extend(self.scale_to(p, n, now));
        }
        let prog = &mut self.programs[p];
        prog.generation += 1;
        prog.rolling = true;
        self.ready_due = true;
        out.push(Action::Upstream(Upstream::Reloading));
        // A replacement still settling holds the roll until it is ready.
        out.extend(self.next_roll(p));
        out
    }

    /// The next slot of the roll that has a worker of an older generation.
    pub(super) fn next_roll(&mut self, p: usize) -> Vec<Action> {
        let prog = &mut self.programs[p];
        // One replacement at a time: one asked for (its spawn may still be
        // on its way) or starting.
        if prog
            .slots
            .iter()
            .any(|s| s.replacement.is_some() || s.replacing.is_some())
        {
            return Vec::new();
        }
        // Recycles asked for while another replacement was under way.
        while let Some((slot, why, pid)) = prog.pending.pop_front() {
            let Some(sl) = prog.slots.get_mut(slot as usize) else {
                continue;
            };
            if sl
                .current
                .as_ref()
                .is_some_and(|w| w.pid == pid && w.failing.is_none())
            {
                sl.replacing = Some(why);
                return vec![self.spawn_action(SlotId { program: p, slot }, true)];
            }
        }
        if !prog.rolling {
            return Vec::new();
        }
        let n = prog.slots.len() as u32;
        let target = prog.generation;
        for k in 0..n {
            let i = (prog.cursor + k) % n;
            let sl = &mut prog.slots[i as usize];
            if sl.current.as_ref().is_some_and(|w| w.generation < target) {
                sl.replacing = Some(Why::Reload);
                prog.cursor = (i + 1) % n;
                let slot = SlotId {
                    program: p,
                    slot: i,
                };
                return vec![self.spawn_action(slot, true)];
            }
        }
        prog.rolling = false;
        self.check_all_ready()
    }

    /// A replacement did not make it (it exited, could not start, was not
    /// ready in time): the worker it was to replace keeps serving. A
    /// rolling restart stops there; a recycle (memory, age) leaves that
    /// worker alone for a while and goes on with the next request.
    pub(super) fn replacement_failed(
        &mut self,
        p: usize,
        slot: u32,
        why: &str,
        now: Instant,
    ) -> Vec<Action> {
        let who = self.who(SlotId { program: p, slot });
        let hold = self.settings.programs[p]
            .backoff_max
            .max(self.settings.memory_interval);
        let prog = &mut self.programs[p];
        let reason = prog
            .slots
            .get_mut(slot as usize)
            .and_then(|s| s.replacing.take())
            .unwrap_or(Why::Reload);
        match reason {
            Why::Reload => {
                prog.rolling = false;
                vec![report(Report::ReloadFailed {
                    who,
                    why: why.to_string(),
                })]
            }
            reason => {
                if let Some(w) = prog
                    .slots
                    .get_mut(slot as usize)
                    .and_then(|s| s.current.as_mut())
                {
                    // A hung worker is being stopped anyway; its slot
                    // restarts when it is gone.
                    if w.failing.is_none() {
                        w.hold_until = Some(now + hold);
                    }
                }
                let mut out = vec![report(Report::RecycleFailed {
                    who,
                    reason,
                    why: why.to_string(),
                    retry_in: hold,
                })];
                out.extend(self.next_roll(p));
                out
            }
        }
    }

    /// The replacement of `slot` is ready: it takes over and the old
    /// worker is stopped (unless it is already being stopped).
    pub(super) fn promote(&mut self, p: usize, slot: u32, now: Instant) -> Vec<Action> {
        let who = self.who(SlotId { program: p, slot });
        let prog = &mut self.programs[p];
        let Some(sl) = prog.slots.get_mut(slot as usize) else {
            return Vec::new();
        };
        let Some(new) = sl.replacement.take() else {
            return Vec::new();
        };
        let reason = sl.replacing.take().unwrap_or(Why::Reload);
        *sl.restarts.entry(reason).or_default() += 1;
        let new_pid = new.pid;
        let old = sl.current.replace(new);
        let mut out = Vec::new();
        if let Some(old) = old {
            out.push(report(Report::Replaced {
                who,
                old: old.pid,
                new: new_pid,
                reason,
            }));
            match old.failing {
                // Already stopped, its SIGKILL due: it retires as it is.
                Some((_, kill_at)) => prog.retiring.push(super::program::Retiring {
                    pid: old.pid,
                    slot,
                    kill_at,
                }),
                None => out.push(prog.retire(old.pid, slot, now)),
            }
        }
        out.extend(self.next_roll(p));
        out
    }

    /// TTIN (+1) and TTOU (-1), within 1 ..= the program's maximum.
    pub(super) fn scale_by(&mut self, p: usize, delta: i32, now: Instant) -> Vec<Action> {
        let count = self.worker_count(p);
        let max = self.settings.programs[p].max_count.max(count);
        if delta > 0 && count >= max {
            return vec![report(Report::AtMost { max })];
        }
        let n = count.saturating_add_signed(delta).clamp(1, max);
        self.scale_to(p, n, now)
    }

    pub(super) fn scale_to(&mut self, p: usize, n: u32, now: Instant) -> Vec<Action> {
        let n = n.max(1);
        let before = self.worker_count(p);
        if n == before {
            return vec![report(Report::AlreadyAt { count: n })];
        }
        let mut out = vec![report(Report::Scaled {
            from: before,
            to: n,
        })];
        while self.worker_count(p) < n {
            let mut sl: super::program::Slot = Default::default();
            sl.restarts.insert(Why::Scale, 1);
            self.programs[p].slots.push(sl);
            let slot = self.worker_count(p) - 1;
            out.push(self.spawn_action(SlotId { program: p, slot }, false));
        }
        let prog = &mut self.programs[p];
        while prog.slots.len() as u32 > n {
            let slot = prog.slots.len() as u32 - 1;
            let Some(sl) = prog.slots.pop() else { break };
            for (why, n) in &sl.restarts {
                *prog.removed_restarts.entry(*why).or_default() += n;
            }
            for w in sl.current.into_iter().chain(sl.replacement) {
                out.push(prog.retire(w.pid, slot, now));
            }
        }
        if prog.cursor >= n {
            prog.cursor = 0;
        }
        // A roll that was waiting on a removed slot's replacement goes on.
        out.extend(self.next_roll(p));
        out
    }
}
