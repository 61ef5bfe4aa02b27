//! Readiness and the watchdog.
//!
//! A worker starts *starting* and becomes *ready* by one of three signs
//! (`--ready`): it waits on a `--listen` socket (`listen`, looked for in
//! /proc every `LISTEN_POLL` while some worker starts, and only then), it
//! sent `READY=1` (`notify`; a `READY=1` also counts in `delay` mode, but
//! not in `listen` mode, where gunicorn's master would say it too early),
//! or it has stayed up `--min-uptime` (`delay`). A replacement takes its slot over
//! only once ready. A worker not ready within `--ready-timeout` failed to
//! start: it is stopped (stop signal, SIGKILL after the graceful timeout)
//! and its exit counts toward the crash loop; a replacement that fails so
//! stops the roll, and the old worker keeps serving.
//!
//! With `--watchdog`, a ready worker that sends no `WATCHDOG=1` for that
//! long (or sends `WATCHDOG=trigger`) is hung: a replacement starts first,
//! then the hung worker is stopped; when it is gone the replacement takes
//! over at once.
//!
//! The init is ready once every slot has a ready worker: it then tells its
//! own NOTIFY_SOCKET `READY=1`, again after each rolling restart.

use std::time::Instant;

use nix::unistd::Pid;

use super::program::{Failing, Worker};
use super::{report, Machine, Phase};
use crate::notify::Message;
use crate::supervisor::events::{Action, SlotId, Upstream};
use crate::supervisor::report::{Report, Why};
use crate::vocab::ReadyMode;

impl Machine {
    fn find(&self, pid: Pid) -> Option<(SlotId, bool)> {
        self.programs.iter().enumerate().find_map(|(p, prog)| {
            prog.slots.iter().enumerate().find_map(|(i, s)| {
                let slot = SlotId {
                    program: p,
                    slot: i as u32,
                };
                if s.current.as_ref().is_some_and(|w| w.pid == pid) {
                    Some((slot, false))
                } else if s.replacement.as_ref().is_some_and(|w| w.pid == pid) {
                    Some((slot, true))
                } else {
                    None
                }
            })
        })
    }

    fn worker(&mut self, slot: SlotId, replacement: bool) -> Option<&mut Worker> {
        let s = self
            .programs
            .get_mut(slot.program)?
            .slots
            .get_mut(slot.slot as usize)?;
        if replacement {
            s.replacement.as_mut()
        } else {
            s.current.as_mut()
        }
    }

    /// A starting worker is ready (`how`: what showed it).
    pub(super) fn mark_ready(&mut self, pid: Pid, how: &'static str, now: Instant) -> Vec<Action> {
        if self.phase != Phase::Running {
            return Vec::new();
        }
        let Some((slot, replacement)) = self.find(pid) else {
            return Vec::new();
        };
        let Some(w) = self.worker(slot, replacement) else {
            return Vec::new();
        };
        if w.ready() || w.failing.is_some() {
            return Vec::new();
        }
        w.ready_at = Some(now);
        w.last_ping = Some(now);
        let after = now.saturating_duration_since(w.started);
        let mut out = vec![report(Report::Ready {
            who: self.who(slot),
            pid,
            after,
            how,
        })];
        let prog = &mut self.programs[slot.program];
        if prog.starting_pids().is_empty() {
            // Nobody left to look for: no more wake-ups.
            prog.listen_check_at = None;
        }
        if replacement {
            out.extend(self.promote(slot.program, slot.slot, now));
        } else {
            out.extend(self.check_all_ready());
            out.extend(self.launch_due());
        }
        out
    }

    /// /proc would not show the worker's fds: ready by delay instead,
    /// said once per worker.
    pub(super) fn unseen(&mut self, pid: Pid) -> Vec<Action> {
        let Some((slot, replacement)) = self.find(pid) else {
            return Vec::new();
        };
        let who = self.who(slot);
        match self.worker(slot, replacement) {
            Some(w) if !w.unseen => {
                w.unseen = true;
                vec![report(Report::Unseen { who, pid })]
            }
            _ => Vec::new(),
        }
    }

    pub(super) fn notified(&mut self, chain: &[Pid], m: Message, now: Instant) -> Vec<Action> {
        let Some((pid, slot, replacement)) = chain
            .iter()
            .find_map(|&p| self.find(p).map(|(s, r)| (p, s, r)))
        else {
            // Not from a worker or one of its descendants: dropped.
            return Vec::new();
        };
        let Some(w) = self.worker(slot, replacement) else {
            return Vec::new();
        };
        if let Some(status) = m.status {
            w.status = Some(status);
        }
        w.stopping |= m.stopping;
        if m.watchdog && w.ready() {
            w.last_ping = Some(now);
        }
        let mut out = Vec::new();
        // In `listen` mode the socket decides: gunicorn's master, for one,
        // sends READY=1 as soon as it has bound, before any of its
        // workers has booted.
        if m.ready && self.settings.programs[slot.program].ready != ReadyMode::Listen {
            out.extend(self.mark_ready(pid, "READY=1", now));
        }
        if m.watchdog_trigger {
            out.extend(self.hung(slot, replacement, true, now));
        }
        out
    }

    /// The timed part of readiness for program `p`: the delay rule, the
    /// ready timeout, the watchdog, and the next /proc look.
    pub(super) fn readiness_tick(&mut self, p: usize, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        for pid in self.programs[p].due_ready(now) {
            out.extend(self.mark_ready(pid, "up for --min-uptime", now));
        }
        for pid in self.programs[p].due_not_ready(now) {
            out.extend(self.not_ready(pid, now));
        }
        for pid in self.programs[p].due_hung(now) {
            if let Some((slot, replacement)) = self.find(pid) {
                out.extend(self.hung(slot, replacement, false, now));
            }
        }
        let prog = &mut self.programs[p];
        if prog.listen_check_at.is_some_and(|t| t <= now) {
            let pids = prog.starting_pids();
            if pids.is_empty() || prog.settings.ready != ReadyMode::Listen {
                prog.listen_check_at = None;
            } else {
                prog.listen_check_at = Some(now + super::program::LISTEN_POLL);
                out.push(Action::CheckListening { pids });
            }
        }
        out
    }

    fn not_ready(&mut self, pid: Pid, now: Instant) -> Vec<Action> {
        let Some((slot, replacement)) = self.find(pid) else {
            return Vec::new();
        };
        let timeout = self.settings.programs[slot.program].ready_timeout;
        let mut out = vec![report(Report::NotReady {
            who: self.who(slot),
            pid,
            timeout,
            replacement,
        })];
        let prog = &mut self.programs[slot.program];
        if replacement {
            // The old worker keeps serving; the new one goes.
            if let Some(new) = prog.take_replacement(slot.slot, pid) {
                out.push(prog.retire(new.pid, slot.slot, now));
            }
            out.extend(self.replacement_failed(
                slot.program,
                slot.slot,
                &format!(
                    "was not ready within {}",
                    crate::vocab::format_duration(timeout)
                ),
                now,
            ));
        } else {
            out.extend(prog.fail(pid, Failing::NotReady, now));
        }
        out
    }

    /// A hung worker: a replacement first, then the stop.
    fn hung(
        &mut self,
        slot: SlotId,
        replacement: bool,
        triggered: bool,
        now: Instant,
    ) -> Vec<Action> {
        let Some(w) = self.worker(slot, replacement) else {
            return Vec::new();
        };
        if w.failing.is_some() {
            return Vec::new();
        }
        let pid = w.pid;
        let silent = now.saturating_duration_since(w.last_ping.unwrap_or(w.started));
        let mut out = vec![report(Report::Hung {
            who: self.who(slot),
            pid,
            silent,
            triggered,
        })];
        let prog = &mut self.programs[slot.program];
        if !replacement {
            let sl = &mut prog.slots[slot.slot as usize];
            if sl.replacement.is_none() {
                sl.replacing = Some(Why::Hung);
                out.push(self.spawn_action(slot, true));
            }
        }
        out.extend(self.programs[slot.program].fail(pid, Failing::Hung, now));
        out
    }

    /// Upstream `READY=1` once every slot has a ready worker and no roll
    /// is under way (first at start, then after each rolling restart).
    pub(super) fn check_all_ready(&mut self) -> Vec<Action> {
        if !self.ready_due
            || self.phase != Phase::Running
            || self
                .programs
                .iter()
                .any(|p| !p.gave_up && (p.rolling || !p.all_ready()))
        {
            return Vec::new();
        }
        self.ready_due = false;
        let workers = self.programs.iter().map(|p| p.ready_count()).sum();
        let mut out = vec![Action::Upstream(Upstream::Ready { workers })];
        if !self.announced_ready {
            self.announced_ready = true;
            out.insert(0, report(Report::AllReady { count: workers }));
        }
        out
    }
}
