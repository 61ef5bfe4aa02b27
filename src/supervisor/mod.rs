//! The event-loop shell: runs a Plan on a current-thread tokio runtime.
//!
//! The shell decides nothing. It marks inherited fds close-on-exec,
//! becomes a child subreaper when not PID 1, blocks signals into the
//! signalfd, then hands everything to the `Machine` (`machine/`): it turns
//! each OS happening into an `Event` and performs each `Action` the
//! machine answers with (`events.rs`), logging the machine's typed
//! `Report`s (`report.rs`).
//!
//! The loop waits on the signalfd, the machine's next deadline, a wait-for
//! probe while one runs, the log fd while log lines wait for a slow
//! reader, and the requests of the control socket and the metrics page
//! (`control::server`: their connections live in tasks of their own, and
//! only a complete request reaches the loop, which answers it at once
//! from the machine's `snapshot` and /proc); so an idle init with idle
//! workers sleeps in epoll without a single wake-up.

mod events;
mod leftovers;
pub mod machine;
mod relay;
pub mod report;

use std::collections::VecDeque;
use std::ffi::OsString;
use std::future::Future;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

pub use events::{Action, Command, Event, SlotId, StartFailure, Step, Upstream, Who};
use machine::{Machine, ProgramSettings, Settings};
use report::Report;

use crate::control::protocol;
use crate::control::server::{Asked, Query, Served};
use crate::error::Error;
use crate::listeners::{self, Listener};
use crate::plan::{Mode, Plan, StepPlan};
use crate::process::{self, sys, SpawnError};
use crate::reaper::{self, Status};
use crate::signals::Signals;
use crate::status;
use crate::vocab::{Request, Signal, WaitTarget};
use crate::{notify, procfs, readiness};

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::io("start the event loop", e))
}

/// What the init tells its own NOTIFY_SOCKET.
fn upstream_text(u: Upstream) -> String {
    match u {
        Upstream::Ready { workers } => format!("READY=1\nSTATUS={workers} worker(s) ready"),
        Upstream::Reloading => {
            let now = sys::monotonic_usec();
            format!("RELOADING=1\nMONOTONIC_USEC={now}\nSTATUS=reloading")
        }
        Upstream::Stopping => "STOPPING=1\nSTATUS=stopping".into(),
    }
}

/// `--probe URL`: one attempt, exit 0 when it answers, 1 when not.
pub fn probe(target: &WaitTarget) -> Result<i32, Error> {
    let rt = runtime()?;
    match rt.block_on(crate::prestart::probe(target, Duration::from_secs(5))) {
        Ok(()) => Ok(0),
        Err(e) => {
            crate::log::error(&format!("probe {target} failed: {e}"));
            Ok(1)
        }
    }
}

pub fn run(plan: Plan) -> Result<i32, Error> {
    sys::cloexec_inherited_fds();
    let pid1 = sys::own_pid() == 1;
    if !pid1 {
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            crate::log::warn(&format!(
                "failed to become a child subreaper ({e}): orphans of the command will not be reaped here"
            ));
        }
    }
    let started = (Instant::now(), wall_clock());
    let rt = runtime()?;
    rt.block_on(async {
        let signals = Signals::install().map_err(|e| Error::io("set up signal handling", e))?;
        let served = crate::control::server::start(
            crate::control::server_path(&plan.control_setting),
            plan.metrics.as_ref(),
        )
        .map_err(Error::Failed)?;
        let workers = plan.mode != Mode::Plain;
        let notify = if workers {
            match notify::Socket::bind() {
                Ok(s) => Some(s),
                Err(e) => {
                    crate::log::warn(&format!(
                        "failed to open the workers' NOTIFY_SOCKET ({e}): READY=1 and WATCHDOG=1 will not be heard"
                    ));
                    None
                }
            }
        } else {
            None
        };
        let mut shell = Shell {
            notify_address: notify.as_ref().map(|n| n.address.clone()),
            notify,
            upstream: if workers {
                notify::Upstream::from_env()
            } else {
                None
            },
            probe: readiness::Probe::default(),
            answers: Vec::new(),
            memory_cgroup: None,
            foreground: plan.mode == Mode::Plain
                && nix::unistd::isatty(std::io::stdin()).unwrap_or(false),
            terminal_step: None,
            plan: &plan,
            pid1,
            sockets: Vec::new(),
            served: Some(served),
            started,
            cpu_seen: Vec::new(),
            program_of: std::collections::HashMap::new(),
        };
        shell.supervise(signals).await
    })
}

/// The settings the machine runs with, from the plan.
pub fn settings(plan: &Plan, pid1: bool) -> Settings {
    let plain = plan.mode == Mode::Plain;
    let sd = &plan.shutdown;
    let index = |name: &String| plan.programs.iter().position(|q| &q.name == name);
    Settings {
        plain,
        pid1,
        shutdown_delay: sd.delay,
        graceful_timeout: sd.graceful_timeout,
        stop_signal: sd.stop_signal,
        signal_map: plan.signals.map.clone(),
        steps: plan.steps.iter().map(step).collect(),
        programs: plan
            .programs
            .iter()
            .map(|p| {
                let r = &p.restart;
                ProgramSettings {
                    name: Arc::from(p.name.as_str()),
                    count: p.workers.count,
                    max_count: p
                        .workers
                        .max
                        .max(p.workers.count)
                        .min(crate::vocab::MAX_WORKERS_LIMIT),
                    policy: r.policy,
                    min_uptime: r.min_uptime,
                    backoff_initial: r.backoff_initial,
                    backoff_max: r.backoff_max,
                    crash_loop: r.crash_loop,
                    stop_signal: p.stop_signal.unwrap_or(Signal::TERM),
                    graceful_timeout: p.graceful_timeout,
                    ready: p.ready.mode,
                    ready_timeout: p.ready.timeout,
                    watchdog: p.ready.watchdog,
                    max_memory: p.memory.max_worker,
                    max_age: p.memory.max_age,
                    age_jitter: p.memory.age_jitter,
                    after: p.after.iter().filter_map(index).collect(),
                    critical: p.critical,
                }
            })
            .collect(),
        scale_program: plan.primary(),
        memory_high: plan.memory.high,
        memory_interval: plan.memory.interval,
        memory_limit: plan.memory.limit,
    }
}

fn step(s: &StepPlan) -> Step {
    match s {
        StepPlan::WaitFor { target, timeout } => Step::Wait {
            target: target.clone(),
            timeout: *timeout,
        },
        StepPlan::Run { argv, timeout } => Step::Run {
            argv: argv.iter().map(OsString::from).collect(),
            timeout: *timeout,
        },
        StepPlan::Dir { path, timeout } => Step::Dir {
            path: path.clone(),
            timeout: *timeout,
        },
    }
}

struct Shell<'a> {
    plan: &'a Plan,
    /// The workers' NOTIFY_SOCKET (worker mode), until the loop takes it.
    notify: Option<notify::Socket>,
    /// Its address, which every worker gets.
    notify_address: Option<String>,
    /// The init's own NOTIFY_SOCKET (worker mode).
    upstream: Option<notify::Upstream>,
    /// The `--listen` sockets' inodes, for `listen` readiness.
    probe: readiness::Probe,
    /// Events an action produced beyond its one answer.
    answers: Vec<Event>,
    /// The init's memory cgroup, once looked for.
    memory_cgroup: Option<Option<crate::memory::Cgroup>>,
    pid1: bool,
    /// Plain mode on a terminal: the child becomes its foreground group.
    foreground: bool,
    /// The pre-start command that was given the terminal: it goes back to
    /// the init's own group when that command ends.
    terminal_step: Option<Pid>,
    /// Each program's `--listen` sockets.
    sockets: Vec<Vec<Listener>>,
    /// The program of each live worker, for reading its /proc as its user.
    program_of: std::collections::HashMap<i32, usize>,
    /// The control socket and the metrics page, until the loop takes them.
    served: Option<Served>,
    /// When the init started: monotonic, and Unix time in seconds.
    started: (Instant, f64),
    /// Each worker's CPU ticks at the last request that read them, for
    /// the CPU% of the next (live pids only): (pid, ticks, when).
    cpu_seen: Vec<(i32, u64, Instant)>,
}

fn wall_clock() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// The log's fd, watched for writability while lines wait.
struct LogFd(RawFd);

impl AsRawFd for LogFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

type WaitFuture = Pin<Box<dyn Future<Output = Result<Duration, String>>>>;

impl Shell<'_> {
    async fn supervise(&mut self, mut signals: Signals) -> Result<i32, Error> {
        let mut machine = Machine::new(settings(self.plan, self.pid1));
        let mut queue: VecDeque<Action> = machine.start().into();
        let mut wait: Option<WaitFuture> = None;
        let mut log_fds: [Option<tokio::io::unix::AsyncFd<LogFd>>; 2] = [None, None];
        let mut relay = relay::Relay::default();
        let notify_fd = match self.notify.take() {
            Some(n) => Some(sys::async_fd(n).map_err(|e| Error::io("watch NOTIFY_SOCKET", e))?),
            None => None,
        };
        let self_pid = sys::own_pid();
        let mut served = self.served.take();
        loop {
            while let Some(action) = queue.pop_front() {
                if let Action::Exit(code) = action {
                    relay.finish();
                    return Ok(code);
                }
                if let Some(event) = self.perform(action, &mut wait, &mut relay)? {
                    queue.extend(machine.on_event(event, Instant::now()));
                }
                for event in std::mem::take(&mut self.answers) {
                    queue.extend(machine.on_event(event, Instant::now()));
                }
            }
            // The last phase: once no child is left, the machine decides
            // (as PID 1, other processes may remain: `docker exec`).
            let now = Instant::now();
            if machine.awaiting_no_children(now) && !reaper::has_children() {
                let others_alive = self.pid1 && sys::others_alive();
                queue.extend(machine.on_event(Event::NoChildren { others_alive }, now));
                continue;
            }
            let streams = [crate::log::Stream::Out, crate::log::Stream::Err];
            let backlog = streams.map(crate::log::backlog_fd);
            for (slot, fd) in log_fds.iter_mut().zip(backlog) {
                if let Some(fd) = fd {
                    if slot.as_ref().is_none_or(|l| l.get_ref().0 != fd) {
                        *slot = sys::async_fd_writable(LogFd(fd)).ok();
                    }
                }
            }
            let deadline = machine.next_deadline();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                    None => std::future::pending().await,
                }
            };
            let waiting = async {
                match wait.as_mut() {
                    Some(f) => f.await,
                    None => std::future::pending().await,
                }
            };
            // stdout's or stderr's queued lines, written as the reader
            // takes them.
            let log_writable = std::future::poll_fn(|cx| {
                for i in 0..2 {
                    let (Some(l), Some(_)) = (&log_fds[i], backlog[i]) else {
                        continue;
                    };
                    if let std::task::Poll::Ready(Ok(mut guard)) = l.poll_write_ready(cx) {
                        if crate::log::drain(streams[i]) {
                            guard.clear_ready();
                        }
                        return std::task::Poll::Ready(());
                    }
                }
                std::task::Poll::Pending
            });
            let relayed = std::future::poll_fn(|cx| relay.poll_read(cx));
            let notified = async {
                match &notify_fd {
                    Some(n) => match n.readable().await {
                        Ok(mut guard) => {
                            let mut got = Vec::new();
                            // A bounded batch per wake-up: a flood cannot
                            // starve the rest of the loop.
                            for _ in 0..64 {
                                match guard.get_inner().recv() {
                                    Some(m) => got.push(m),
                                    None => {
                                        guard.clear_ready();
                                        break;
                                    }
                                }
                            }
                            got
                        }
                        Err(_) => std::future::pending().await,
                    },
                    None => std::future::pending().await,
                }
            };
            let asked = async {
                match served.as_mut() {
                    Some(s) => s.asked.recv().await,
                    None => std::future::pending().await,
                }
            };
            let events: Vec<Event> = tokio::select! {
                received = signals.next() => {
                    let received = received.map_err(|e| Error::io("read signals", e))?;
                    if received.signal == Signal::CHLD {
                        reaper::reap()
                            .into_iter()
                            .flat_map(|(pid, status)| self.reaped(pid, status))
                            .collect()
                    } else {
                        vec![Event::Signal(received.signal)]
                    }
                }
                _ = sleep => vec![Event::Tick],
                result = waiting => {
                    wait = None;
                    vec![Event::WaitDone(result)]
                }
                () = log_writable => Vec::new(),
                () = relayed => Vec::new(),
                Some(a) = asked => {
                    self.answer(a, &mut machine, &mut queue);
                    Vec::new()
                }
                messages = notified => messages
                    .into_iter()
                    .map(|(pid, text)| Event::Notified {
                        chain: readiness::ancestry(pid, self_pid)
                            .into_iter()
                            .map(Pid::from_raw)
                            .collect(),
                        message: notify::Message::parse(&text),
                    })
                    .collect(),
            };
            for event in events {
                queue.extend(machine.on_event(event, Instant::now()));
            }
        }
    }

    /// Answers a client of the control socket or the metrics page, from
    /// the machine's state now; a command's actions join the queue.
    fn answer(&mut self, asked: Asked, machine: &mut Machine, queue: &mut VecDeque<Action>) {
        use protocol::Answer;
        let now = Instant::now();
        let (ask, by) = match asked.query {
            Query::Metrics => {
                let page = status::metrics::render(&self.status(machine, now));
                let _ = asked.reply.send(page);
                return;
            }
            Query::Control { ask, by } => (ask, by),
        };
        let program = match &ask.program {
            None => None,
            // A single command is one program named "", which no name matches.
            Some(name) => match self.plan.programs.iter().position(|p| &p.name == name) {
                Some(i) => Some(i),
                None => {
                    let names: Vec<&str> =
                        self.plan.programs.iter().map(|p| p.name.as_str()).collect();
                    let message = if self.plan.mode == Mode::Programs {
                        format!("no program named {name} (there are {})", names.join(", "))
                    } else {
                        format!("no program named {name}: this init runs one command (see docs/programs.md)")
                    };
                    let _ = asked.reply.send(protocol::error(&message));
                    return;
                }
            },
        };
        let command = match ask.request {
            Request::Status => {
                let s = self.status(machine, now);
                let text = ask.text.then(|| status::text::render(&s));
                let answer = match &text {
                    Some(t) => Answer {
                        text: Some(t),
                        ..Answer::ok()
                    },
                    None => Answer {
                        status: Some(&s),
                        ..Answer::ok()
                    },
                };
                let _ = asked.reply.send(answer.line());
                return;
            }
            Request::Ready => {
                let s = machine.snapshot(now);
                let ready: u32 = s.programs.iter().map(|p| p.ready).sum();
                let slots: u32 = s.programs.iter().map(|p| p.workers).sum();
                let message = match (&s.step, s.phase) {
                    (Some(step), _) => format!("not ready: pre-start step {step}"),
                    (None, status::Phase::Running) => format!(
                        "{}: {ready}/{slots} worker(s) ready",
                        if s.ready { "ready" } else { "not ready" }
                    ),
                    (None, phase) => format!("not ready: {}", phase.as_str()),
                };
                let answer = Answer {
                    ready: Some(s.ready),
                    phase: Some(s.phase.as_str()),
                    workers: Some(slots),
                    ready_workers: Some(ready),
                    message: Some(&message),
                    ..Answer::ok()
                };
                let _ = asked.reply.send(answer.line());
                return;
            }
            Request::Reload => Command::Reload,
            Request::Scale(s) => Command::Scale(s),
            Request::Stop => Command::Stop,
        };
        let actions = machine.on_event(
            Event::Control {
                command,
                program,
                by,
            },
            now,
        );
        let mut refused = false;
        let mut message = String::new();
        for a in &actions {
            if let Action::Report(r) = a {
                refused |= matches!(
                    r,
                    Report::Refused { .. } | Report::AtMost { .. } | Report::Ignored { .. }
                );
                if !matches!(r, Report::Requested { .. }) {
                    if !message.is_empty() {
                        message.push_str("; ");
                    }
                    use std::fmt::Write as _;
                    let _ = write!(message, "{r}");
                }
            }
        }
        queue.extend(actions);
        let _ = asked.reply.send(if refused {
            protocol::error(&message)
        } else {
            Answer {
                message: Some(&message),
                ..Answer::ok()
            }
            .line()
        });
    }

    /// The whole status: the machine's snapshot, and what /proc and the
    /// sockets say now.
    fn status(&mut self, machine: &Machine, now: Instant) -> status::Status {
        let mut s = machine.snapshot(now);
        s.pid = sys::own_pid();
        s.uptime =
            (now.saturating_duration_since(self.started.0).as_secs_f64() * 1000.0).round() / 1000.0;
        s.started_at_s = (self.started.1 * 1000.0).round() / 1000.0;
        for (p, planned) in s.programs.iter_mut().zip(&self.plan.programs) {
            p.source = planned.workers.source.clone();
        }
        let per_second = procfs::ticks_per_second();
        let mut seen = Vec::new();
        let mut reader = procfs::Reader::default();
        let pids: Vec<i32> = s.workers_mut().map(|w| w.pid).collect();
        // One pass over /proc (the container's, as PID 1) finds every
        // worker's tree: far fewer reads than walking each tree. With
        // --user, as the workers' user: smaps_rollup needs the right to
        // ptrace them, which root without CAP_SYS_PTRACE lacks.
        let usages = self.usage_by_user(&mut reader, &pids);
        for (w, usage) in s.workers_mut().zip(usages) {
            let Some(usage) = usage else {
                continue;
            };
            let m = usage.memory;
            w.memory_bytes = Some(usage.best);
            w.pss_bytes = m.pss;
            w.rss_bytes = Some(m.rss);
            {
                let ticks = usage.ticks;
                let round = |v: f64| (v * 1000.0).round() / 1000.0;
                w.cpu_s = Some(round(ticks as f64 / per_second as f64));
                // Since the last request that looked, else since its start.
                let since_start = Duration::from_secs_f64(w.uptime_s);
                let (before, at) = self
                    .cpu_seen
                    .iter()
                    .find(|x| x.0 == w.pid)
                    .map(|x| (x.1, x.2))
                    .unwrap_or((0, now.checked_sub(since_start).unwrap_or(now)));
                let window = now.saturating_duration_since(at);
                w.cpu_percent = Some(round(procfs::cpu_percent(
                    ticks.saturating_sub(before),
                    window,
                    per_second,
                )));
                w.cpu_window_s = Some(round(window.as_secs_f64()));
                seen.push((w.pid, ticks, now));
            }
        }
        self.cpu_seen = seen;
        s.listeners = self
            .sockets
            .iter()
            .flat_map(|program| program.iter().enumerate())
            .map(|(i, l)| {
                let q = sys::accept_queue(l.raw_fd());
                status::Listener {
                    address: l.local.clone(),
                    fd: process::FIRST_FD + i as i32,
                    accept_queue: q.map(|q| q.0),
                    accept_queue_max: q.map(|q| q.1),
                }
            })
            .collect();
        s.limits = Some(self.limits());
        s
    }

    /// The limits now (read at the request), and for `auto` the count
    /// they give.
    fn limits(&self) -> status::Limits {
        let root = self
            .plan
            .resize
            .as_ref()
            .map(|(root, _)| root.clone())
            .unwrap_or_else(|| PathBuf::from("/"));
        let host = crate::resources::HostFacts::read(&root);
        let res = crate::resources::detect(&root, &host);
        let sizing = self.plan.resize.as_ref().map(|(_, input)| {
            let z = crate::sizing::decide(input, &res);
            status::Sizing {
                count: z.count,
                limited_by: z.limited_by,
                formula: z.formula,
            }
        });
        status::Limits {
            cgroup: res.cgroup.clone(),
            cpus: res.cpus.value,
            cpus_source: res.cpus.source.clone(),
            memory_bytes: res.memory.as_ref().map(|m| m.value),
            memory_source: res.memory.as_ref().map(|m| m.source.clone()),
            sizing,
        }
    }

    /// The init's memory cgroup, found the first time it is needed (a
    /// run without the memory guard and without an OOM kill reads none of
    /// its files).
    fn cgroup(&mut self) -> Option<&crate::memory::Cgroup> {
        if self.memory_cgroup.is_none() {
            self.memory_cgroup = Some(crate::memory::Cgroup::find(std::path::Path::new("/")));
        }
        self.memory_cgroup.as_ref().and_then(Option::as_ref)
    }

    /// A reaped status as events: a death by SIGKILL comes with the
    /// cgroup's OOM kill count first (was it the kernel?); the terminal
    /// goes back to the init when the pre-start command that had it ends.
    fn reaped(&mut self, pid: Pid, status: Status) -> Vec<Event> {
        let mut out = Vec::new();
        self.program_of.remove(&pid.as_raw());
        if status == Status::Signaled(Signal::KILL) && self.plan.mode != Mode::Plain {
            if let Some(c) = self.cgroup() {
                if let Some(count) = c.oom_kills() {
                    let limit = c.limit();
                    out.push(Event::OomKills { count, limit });
                }
            }
        }
        out.push(self.reaped_one(pid, status));
        out
    }

    fn reaped_one(&mut self, pid: Pid, status: Status) -> Event {
        match status {
            Status::Stopped(signal) => Event::Stopped { pid, signal },
            status => {
                if self.terminal_step == Some(pid) {
                    self.terminal_step = None;
                    let _ = nix::unistd::tcsetpgrp(std::io::stdin(), nix::unistd::getpgrp());
                }
                Event::Exited { pid, status }
            }
        }
    }

    /// Performs one action; some are answered at once with an event.
    fn perform(
        &mut self,
        action: Action,
        wait: &mut Option<WaitFuture>,
        relay: &mut relay::Relay,
    ) -> Result<Option<Event>, Error> {
        Ok(match action {
            Action::SpawnWorker {
                slot,
                replacement,
                workers,
            } => {
                let mut spec = self.worker_spec(slot, workers);
                // Held until the child has started (or failed to); the
                // init keeps only the read ends.
                let ends = if self.plan.log_prefix {
                    relay.open(&self.prefix(slot))
                } else {
                    None
                };
                spec.stdio = ends.as_ref().map(relay::ChildEnds::raw);
                let spawned = process::spawn(&spec);
                drop(ends);
                Some(match spawned {
                    Ok(pid) => {
                        self.program_of.insert(pid.as_raw(), slot.program);
                        Event::Spawned {
                            slot,
                            replacement,
                            pid,
                        }
                    }
                    Err(e) => Event::SpawnFailed {
                        slot,
                        replacement,
                        failure: start_failure(e),
                    },
                })
            }
            Action::SpawnStep { argv } => {
                // On a terminal (`docker run -it`) the step must be its
                // foreground group: in the background, a step that reads
                // it (a prompt, psql without -f) is stopped by SIGTTIN.
                let terminal = nix::unistd::isatty(std::io::stdin()).unwrap_or(false);
                let spec = process::Spec {
                    argv,
                    new_pgroup: true,
                    foreground: terminal,
                    user: self.plan.prestart_user.clone(),
                    no_new_privs: self.plan.no_new_privs,
                    ..Default::default()
                };
                Some(match process::spawn(&spec) {
                    Ok(pid) => {
                        if terminal {
                            self.terminal_step = Some(pid);
                        }
                        Event::StepSpawned { pid }
                    }
                    Err(e) => Event::StepSpawnFailed {
                        failure: start_failure(e),
                    },
                })
            }
            Action::StartWait {
                target,
                timeout,
                step,
            } => {
                *wait = Some(Box::pin(async move {
                    let shown = target.to_string();
                    let mut progress = |p: &crate::prestart::Progress| {
                        Report::WaitProgress {
                            step: step.clone(),
                            target: shown.clone(),
                            elapsed: p.elapsed,
                            attempt: p.attempt,
                            last_error: p.last_error.clone(),
                        }
                        .log()
                    };
                    crate::prestart::wait_for(&target, timeout, &mut progress).await
                }));
                None
            }
            Action::CancelWait => {
                *wait = None;
                None
            }
            Action::ListDir { path } => Some(Event::DirListed(executables(&path))),
            Action::Bind => {
                for p in &self.plan.programs {
                    let addrs: Vec<_> = p.listen.iter().map(|l| l.address.clone()).collect();
                    let bound = listeners::bind_all(&addrs, p.backlog, &p.socket)?;
                    for (i, l) in bound.iter().enumerate() {
                        Report::Listening {
                            address: l.local.clone(),
                            fd: process::FIRST_FD + i as i32,
                        }
                        .log();
                    }
                    self.sockets.push(bound);
                }
                let fds: Vec<RawFd> = self
                    .sockets
                    .iter()
                    .flatten()
                    .map(Listener::raw_fd)
                    .collect();
                self.probe = readiness::Probe::new(&fds);
                Some(Event::Bound)
            }
            Action::Stop { pid, signal } => {
                // Each child leads its own process group. A stopped one
                // acts on nothing but SIGCONT; one that runs is not sent
                // a SIGCONT it might catch.
                sys::kill_raw(-pid.as_raw(), signal.raw());
                if signal != Signal::KILL && is_stopped(pid.as_raw()) {
                    sys::kill_raw(-pid.as_raw(), Signal::CONT.raw());
                }
                None
            }
            Action::Kill { pid } => {
                sys::kill_raw(-pid.as_raw(), Signal::KILL.raw());
                None
            }
            Action::Forward { pid, signal } => {
                sys::kill_raw(pid.as_raw(), signal.raw());
                None
            }
            Action::Resume { pid } => {
                sys::kill_raw(-pid.as_raw(), Signal::CONT.raw());
                None
            }
            // Not PID 1: no child left means no descendant left either
            // (orphans come to the subreaper), so the /proc scan is
            // skipped. PID 1 also signals processes that are not its
            // descendants (`docker exec`).
            Action::KillLeftovers { signal } => {
                if self.pid1 || reaper::has_children() {
                    leftovers::signal_all(signal, self.pid1);
                }
                None
            }
            Action::CheckListening { pids } => {
                // At most one answer per pid; the rest wait for the next
                // look (the machine asks again while any still starts).
                for pid in pids {
                    let as_user = self.ids_of(pid.as_raw());
                    match process::with_fs_ids(as_user, || self.probe.check(pid.as_raw())) {
                        readiness::Seen::Listening => self.answers.push(Event::Ready { pid }),
                        readiness::Seen::Denied => self.answers.push(Event::Unseen { pid }),
                        readiness::Seen::NotYet => {}
                    }
                }
                None
            }
            Action::SampleMemory { pids } => {
                let workers = pids
                    .into_iter()
                    .map(|pid| {
                        let as_user = self.ids_of(pid.as_raw());
                        let bytes = process::with_fs_ids(as_user, || {
                            crate::memory::tree_memory(pid.as_raw())
                        });
                        (pid, bytes)
                    })
                    .collect();
                let working_set = self.cgroup().and_then(|c| c.working_set());
                Some(Event::MemorySampled {
                    workers,
                    working_set,
                })
            }
            Action::Upstream(u) => {
                if let Some(up) = &self.upstream {
                    up.send(&upstream_text(u));
                }
                None
            }
            Action::Replan { program } => Some(Event::Replanned {
                program,
                count: self.replan(program),
            }),
            Action::Report(r) => {
                r.log();
                None
            }
            Action::Exit(_) => None,
        })
    }

    /// A program's workers' uid and gid when they switched to another
    /// user: their /proc files (fds, smaps_rollup) open only to that uid
    /// or to CAP_SYS_PTRACE, which Docker does not grant, so the init
    /// reads them with these as its file-system ids.
    fn workers_ids(&self, program: usize) -> Option<(u32, u32)> {
        let u = self.plan.programs.get(program)?.user.as_ref()?;
        u.switch.then_some((u.uid, u.gid))
    }

    /// `workers_ids` of the program a live worker belongs to.
    fn ids_of(&self, pid: i32) -> Option<(u32, u32)> {
        self.workers_ids(*self.program_of.get(&pid)?)
    }

    /// Each worker's usage, read as the user of its program.
    fn usage_by_user(
        &self,
        reader: &mut procfs::Reader,
        pids: &[i32],
    ) -> Vec<Option<procfs::Usage>> {
        let mut out: Vec<Option<procfs::Usage>> = vec![None; pids.len()];
        let mut users: Vec<Option<(u32, u32)>> = pids.iter().map(|p| self.ids_of(*p)).collect();
        users.sort();
        users.dedup();
        for user in users {
            let mine: Vec<usize> = (0..pids.len())
                .filter(|&i| self.ids_of(pids[i]) == user)
                .collect();
            let some: Vec<i32> = mine.iter().map(|&i| pids[i]).collect();
            let got = process::with_fs_ids(user, || reader.usage_by_scan(&some));
            for (i, u) in mine.into_iter().zip(got) {
                out[i] = u;
            }
        }
        out
    }

    /// A worker's `--log-prefix`: `web.0`, `worker.0` for the single
    /// unnamed program, `child` in plain mode.
    fn prefix(&self, slot: SlotId) -> String {
        if self.plan.mode == Mode::Plain {
            return "child".into();
        }
        let name = self
            .plan
            .programs
            .get(slot.program)
            .map_or("", |p| p.name.as_str());
        let name = if name.is_empty() { "worker" } else { name };
        format!("{name}.{}", slot.slot)
    }

    fn worker_spec(&self, slot: SlotId, workers: u32) -> process::Spec {
        let program = &self.plan.programs[slot.program];
        let mut env: Vec<(OsString, OsString)> = Vec::new();
        let mut pid_vars = Vec::new();
        if self.plan.mode != Mode::Plain {
            env.push(("CINIT_WORKER_ID".into(), slot.slot.to_string().into()));
            env.push(("CINIT_WORKERS".into(), workers.to_string().into()));
            if self.plan.mode == Mode::Programs {
                env.push(("CINIT_PROGRAM".into(), program.name.clone().into()));
            }
            if let Some(address) = &self.notify_address {
                env.push(("NOTIFY_SOCKET".into(), address.into()));
            }
            if let Some(wd) = program.ready.watchdog {
                env.push(("WATCHDOG_USEC".into(), wd.as_micros().to_string().into()));
                pid_vars.push("WATCHDOG_PID");
            }
        }
        process::Spec {
            argv: program.argv.clone(),
            env,
            fds: self
                .sockets
                .get(slot.program)
                .into_iter()
                .flatten()
                .map(|l| (l.raw_fd(), l.addr.fd_name()))
                .collect(),
            new_pgroup: true,
            foreground: self.foreground,
            pid_vars,
            user: program.user.clone(),
            no_new_privs: self.plan.no_new_privs,
            stdio: None,
        }
    }

    /// Re-sizes for HUP: `auto` reads the limits again; a fixed count stays.
    fn replan(&self, program: usize) -> Option<u32> {
        let (root, input) = self.plan.programs.get(program)?.resize.as_ref()?;
        let host = crate::resources::HostFacts::read(root);
        let res = crate::resources::detect(root, &host);
        let sizing = crate::sizing::decide(input, &res);
        Report::Replanned {
            cpus: sizing.cpus.value,
            memory: sizing.memory.as_ref().map(|m| m.value),
            count: sizing.count,
        }
        .log();
        Some(sizing.count)
    }
}

/// The process is stopped (state `T`): it would not act on a signal
/// before a SIGCONT.
fn is_stopped(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            rest.split_whitespace().next().map(|st| st == "T")
        })
        .unwrap_or(false)
}

fn start_failure(e: SpawnError) -> StartFailure {
    match e {
        SpawnError::Fork { .. } => StartFailure::Fork {
            message: e.to_string(),
        },
        e => StartFailure::Command {
            code: e.exit_code(),
            message: e.to_string(),
        },
    }
}

/// The executable regular files of `dir`, in byte order of their names;
/// anything else is skipped with a log line.
fn executables(dir: &Path) -> Result<Vec<PathBuf>, String> {
    use std::os::unix::fs::PermissionsExt;
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("failed to read the directory: {e}"))?;
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    Ok(files
        .into_iter()
        .filter(|p| match std::fs::metadata(p) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => true,
            _ => {
                Report::StepSkip {
                    path: p.display().to_string(),
                }
                .log();
                false
            }
        })
        .collect())
}
