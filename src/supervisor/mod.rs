//! The event-loop shell: runs a Plan on a current-thread tokio runtime.
//!
//! Order of a run: mark inherited fds close-on-exec, become a child
//! subreaper when not PID 1, block signals into the signalfd, run the
//! pre-start steps, bind the `--listen` sockets, then hand control to the
//! `Machine`, performing its actions. The shell waits on two things only:
//! the signalfd and the machine's next deadline, so an idle init with idle
//! workers sleeps in epoll without a single wake-up.

mod leftovers;
pub mod machine;
mod steps;

use std::collections::VecDeque;
use std::ffi::OsString;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use crate::error::{exit_code, Error};
use crate::listeners::{self, Listener};
use crate::log;
use crate::plan::{Mode, Plan};
use crate::process::{self, sys};
use crate::reaper::{self, Status};
use crate::signals::Signals;
use crate::vocab::Signal;
use machine::{Action, Machine, Settings};

/// How often, as PID 1, the init looks for processes that are not its
/// children during the last phase of a shutdown (there is no notification
/// for them), and how long past the graceful timeout it keeps looking.
const OUTSIDERS_POLL: Duration = Duration::from_millis(50);
const OUTSIDERS_GRACE: Duration = Duration::from_secs(2);

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::io("start the event loop", e))
}

/// `--probe URL`: one attempt, exit 0 when it answers, 1 when not.
pub fn probe(target: &crate::vocab::WaitTarget) -> Result<i32, Error> {
    let rt = runtime()?;
    match rt.block_on(crate::prestart::probe(target, Duration::from_secs(5))) {
        Ok(()) => Ok(0),
        Err(e) => {
            log::error(&format!("probe {target} failed: {e}"));
            Ok(1)
        }
    }
}

pub fn run(plan: Plan) -> Result<i32, Error> {
    sys::cloexec_inherited_fds();
    let pid1 = nix::unistd::getpid().as_raw() == 1;
    if !pid1 {
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            log::warn(&format!(
                "failed to become a child subreaper ({e}): orphans of the command will not be reaped here"
            ));
        }
    }
    let rt = runtime()?;
    rt.block_on(run_async(plan, pid1))
}

async fn run_async(plan: Plan, pid1: bool) -> Result<i32, Error> {
    let mut signals = Signals::install().map_err(|e| Error::io("set up signal handling", e))?;
    match steps::run_all(&plan, &mut signals).await? {
        steps::Outcome::Done => {}
        steps::Outcome::Interrupted(sig) => return Ok(128 + sig.raw()),
    }
    let addrs: Vec<_> = plan.listen.iter().map(|l| l.address.clone()).collect();
    let sockets = listeners::bind_all(&addrs, plan.backlog)?;
    for (i, l) in sockets.iter().enumerate() {
        log::event(
            "info",
            "listening",
            &format!(
                "listening on {} (fd {} in workers)",
                l.local,
                listeners::FIRST_FD + i as i32
            ),
            &[("address", l.local.clone().into())],
        );
    }
    let shell = Shell {
        plan: &plan,
        sockets: &sockets,
        foreground: plan.mode == Mode::Plain
            && nix::unistd::isatty(std::io::stdin()).unwrap_or(false),
        pid1,
    };
    shell.supervise(&mut signals).await
}

struct Shell<'a> {
    plan: &'a Plan,
    sockets: &'a [Listener],
    foreground: bool,
    pid1: bool,
}

impl Shell<'_> {
    fn settings(&self) -> Settings {
        let p = self.plan;
        Settings {
            mode: p.mode,
            policy: p.restart.policy,
            min_uptime: p.restart.min_uptime,
            backoff_initial: p.restart.backoff_initial,
            backoff_max: p.restart.backoff_max,
            crash_loop: p.restart.crash_loop,
            stop_signal: p.shutdown.stop_signal,
            graceful_timeout: p.shutdown.graceful_timeout,
            shutdown_delay: p.shutdown.delay,
            signal_map: p.signals.map.clone(),
        }
    }

    fn spec(&self, slot: u32, workers: u32) -> process::Spec {
        let mut env: Vec<(OsString, OsString)> = Vec::new();
        if self.plan.mode == Mode::Workers {
            env.push(("CINIT_WORKER_ID".into(), slot.to_string().into()));
            env.push(("CINIT_WORKERS".into(), workers.to_string().into()));
        }
        process::Spec {
            argv: self.plan.argv.clone(),
            env,
            fds: self
                .sockets
                .iter()
                .map(|l| (l.raw_fd(), l.addr.fd_name()))
                .collect(),
            new_pgroup: true,
            foreground: self.foreground,
        }
    }

    /// Re-sizes for HUP: `auto` reads the limits again; a fixed count stays.
    fn replan(&self) -> Option<u32> {
        let (root, input) = self.plan.resize.as_ref()?;
        let host = crate::resources::HostFacts::read(root);
        let res = crate::resources::detect(root, &host);
        let sizing = crate::sizing::decide(input, &res);
        log::event(
            "info",
            "replan",
            &format!(
                "limits re-read: {} cpus, {}; {} worker(s)",
                sizing.cpus.value,
                sizing
                    .memory
                    .as_ref()
                    .map(|m| crate::vocab::format_bytes(m.value))
                    .unwrap_or_else(|| "no memory limit".into()),
                sizing.count
            ),
            &[("workers", sizing.count.into())],
        );
        Some(sizing.count)
    }

    async fn supervise(&self, signals: &mut Signals) -> Result<i32, Error> {
        let mut machine = Machine::new(self.settings(), self.plan.workers.count);
        let mut actions: VecDeque<Action> = machine.start().into();
        let mut outsiders_since: Option<Instant> = None;
        loop {
            while let Some(action) = actions.pop_front() {
                let now = Instant::now();
                match action {
                    Action::Spawn { slot, replacement } => {
                        if !machine.accepts_spawns() {
                            continue;
                        }
                        let spec = self.spec(slot, machine.worker_count());
                        let more = match process::spawn(&spec) {
                            Ok(pid) => machine.spawned(slot, replacement, pid, now),
                            Err(e) => machine.spawn_failed(
                                slot,
                                replacement,
                                &e.to_string(),
                                exit_code(&e),
                                now,
                            ),
                        };
                        actions.extend(more);
                    }
                    Action::Kill { pid, signal } => send(pid, signal),
                    // Not PID 1: no child left means no descendant left
                    // either (orphans come to the subreaper), so skip the
                    // /proc scan. PID 1 also signals processes that are
                    // not its descendants (`docker exec`).
                    Action::KillLeftovers { signal } => {
                        if self.pid1 || reaper::has_children() {
                            leftovers::signal_all(signal, self.pid1)
                        }
                    }
                    Action::Resume { pid } => {
                        // The worker leads its own process group.
                        sys::kill_raw(-pid.as_raw(), Signal::CONT.raw());
                    }
                    Action::Replan => {
                        let count = self.replan();
                        actions.extend(machine.reload(count, now));
                    }
                    Action::Log(l) => log::event(l.level, l.event, &l.message, &l.fields),
                    Action::Exit(code) => return Ok(code),
                }
            }
            // As PID 1, processes that are not the init's children (a
            // `docker exec` session, whose parent is outside the container)
            // exit without telling the init: poll for them, briefly, and
            // only while the init is otherwise done.
            let mut poll = None;
            if machine.awaiting_no_children() && !reaper::has_children() {
                let since = *outsiders_since.get_or_insert_with(Instant::now);
                let give_up = since + self.plan.shutdown.graceful_timeout + OUTSIDERS_GRACE;
                if self.pid1 && sys::others_alive() && Instant::now() < give_up {
                    poll = Some(Instant::now() + OUTSIDERS_POLL);
                } else {
                    actions.extend(machine.no_children());
                    continue;
                }
            }
            let deadline = match (machine.next_deadline(), poll) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                received = signals.next() => {
                    let received = received.map_err(|e| Error::io("read signals", e))?;
                    let now = Instant::now();
                    if received.signal == Signal::CHLD {
                        for (pid, status) in reaper::reap() {
                            actions.extend(match status {
                                Status::Stopped(sig) => machine.stopped(pid, sig),
                                _ => machine.exited(pid, status, now),
                            });
                        }
                    } else {
                        actions.extend(machine.signal(received.signal, now));
                    }
                }
                _ = sleep => actions.extend(machine.tick(Instant::now())),
            }
        }
    }
}

/// Sends a signal; a process that is already gone is not an error.
pub(crate) fn send(pid: Pid, signal: Signal) {
    sys::kill_raw(pid.as_raw(), signal.raw());
}
