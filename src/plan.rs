//! The Plan: what the init will do and why, decided before anything runs.
//!
//! `Plan::build` is pure apart from reading the resource files: it binds no
//! socket, runs no step and starts no process, so `--dry-run` works as an
//! ordinary user anywhere. The same value is printed by the dry run and
//! executed by `supervisor::run`, so the two cannot disagree.
//!
//! The JSON form (`--dry-run --json`) is a documented, stable document:
//! see docs/plan.md. Fields are only ever added; `schema` says which
//! version a reader gets.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::config::{Config, Step};
use crate::resources::{self, HostFacts, Resources};
use crate::sizing::{self, Sizing, SizingInput};
use crate::vocab::{format_bytes, format_duration, serialize_secs as secs};
use crate::vocab::{
    format_number, Amount, ControlSocket, ListenAddr, LogFormat, RestartPolicy, Signal, SignalRule,
    Workers, CONTROL_FILE,
};
use crate::vocab::{Identity, ReadyMode, SocketPerms};

/// The pre-start step: one type from the configuration to the supervisor.
pub use crate::config::Step as StepPlan;

/// Version of the JSON document; bumped only for incompatible changes.
pub const SCHEMA: u32 = 1;

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub schema: u32,
    /// "plain" (one child, tini-like) or "workers".
    pub mode: Mode,
    /// The command, lossily as UTF-8 for printing.
    pub command: Vec<String>,
    #[serde(skip)]
    pub argv: Vec<OsString>,
    pub workers: WorkerPlan,
    pub resources: Resources,
    pub listen: Vec<ListenPlan>,
    pub backlog: u32,
    /// The mode and owner of the unix `--listen` socket files.
    pub socket: SocketPerms,
    pub steps: Vec<Step>,
    /// Who the workers (or the plain child) run as; `None`: the init's
    /// own user.
    pub user: Option<Identity>,
    /// Who the pre-start commands run as.
    pub prestart_user: Option<Identity>,
    /// PR_SET_NO_NEW_PRIVS for every child.
    pub no_new_privs: bool,
    pub restart: RestartPlan,
    pub ready: ReadyPlan,
    pub memory: MemoryPlan,
    pub shutdown: ShutdownPlan,
    pub signals: SignalPlan,
    /// How orphans are collected: "pid1" or "subreaper".
    pub reaper: &'static str,
    pub log_format: LogFormat,
    pub config_file: Option<PathBuf>,
    /// The control socket (docs/status.md): `path`, and the `fallbacks`
    /// tried in order when its directory is not writable; null with
    /// `--control none`.
    pub control: Option<ControlPlan>,
    #[serde(skip)]
    pub control_setting: ControlSocket,
    /// `--metrics`: where `GET /metrics` is served; null when off.
    pub metrics: Option<ListenAddr>,
    pub warnings: Vec<String>,
    /// What HUP needs to size again with fresh limits.
    #[serde(skip)]
    pub resize: Option<(PathBuf, SizingInput)>,
    /// Every program in start order: one named "" for `init COMMAND`,
    /// one per Procfile line or `[programs.NAME]` table otherwise. The
    /// top-level `command`, `workers`, `listen`, `user`, `ready`,
    /// `restart` and `memory` describe the program TTIN and TTOU act on
    /// (`web`, or the first).
    pub programs: Vec<ProgramPlan>,
    /// `--log-prefix`: the children's lines come through the init, each
    /// with a `NAME.SLOT | ` prefix.
    pub log_prefix: bool,
}

/// One program of the plan.
#[derive(Clone, Debug, Serialize)]
pub struct ProgramPlan {
    pub name: String,
    pub command: Vec<String>,
    #[serde(skip)]
    pub argv: Vec<OsString>,
    pub workers: WorkerPlan,
    pub listen: Vec<ListenPlan>,
    pub backlog: u32,
    pub socket: SocketPerms,
    pub user: Option<Identity>,
    pub restart: RestartPlan,
    pub ready: ReadyPlan,
    pub memory: MemoryPlan,
    /// `None` in plain mode without --stop-signal (the received signal is
    /// passed on).
    pub stop_signal: Option<Signal>,
    #[serde(serialize_with = "secs", rename = "graceful_timeout_s")]
    pub graceful_timeout: Duration,
    /// Programs that must be ready before this one starts.
    pub after: Vec<String>,
    /// Its crash loop ends the container (exit 1); otherwise it is left
    /// stopped and the others go on.
    pub critical: bool,
    /// When it is stopped: stage 0 first; a program stops only once every
    /// program started after it has stopped.
    pub stop_stage: u32,
    /// What one worker needs, in bytes: `worker_memory` for the `auto`
    /// program, its declared `memory` for another; null: not declared.
    pub worker_memory: Option<u64>,
    #[serde(skip)]
    pub resize: Option<(PathBuf, SizingInput)>,
}

impl ProgramPlan {
    /// The program a single-program plan describes.
    fn of(plan: &Plan, name: &str) -> ProgramPlan {
        ProgramPlan {
            name: name.to_string(),
            command: plan.command.clone(),
            argv: plan.argv.clone(),
            workers: plan.workers.clone(),
            listen: plan.listen.clone(),
            backlog: plan.backlog,
            socket: plan.socket,
            user: plan.user.clone(),
            restart: plan.restart.clone(),
            ready: plan.ready.clone(),
            memory: plan.memory.clone(),
            stop_signal: plan.shutdown.stop_signal,
            graceful_timeout: plan.shutdown.graceful_timeout,
            after: Vec::new(),
            critical: true,
            stop_stage: 0,
            worker_memory: None,
            resize: plan.resize.clone(),
        }
    }
}

/// The program TTIN, TTOU and `--scale` act on, and the plan's top-level
/// fields describe: `web`, else the first that listens, else the first.
fn primary_of<'a>(programs: impl Iterator<Item = &'a ProgramPlan> + Clone) -> usize {
    programs
        .clone()
        .position(|p| p.name == "web")
        .or_else(|| programs.clone().position(|p| !p.listen.is_empty()))
        .unwrap_or(0)
}

/// The stop stage of each program, given the indices each starts after:
/// a program no other one starts after stops first (stage 0); one that
/// others start after stops one stage after the last of them.
pub fn stop_stages(after: &[Vec<usize>]) -> Vec<u32> {
    fn stage(i: usize, after: &[Vec<usize>], memo: &mut [Option<u32>], depth: usize) -> u32 {
        if let Some(s) = memo[i] {
            return s;
        }
        // The configuration refuses cycles; the depth bound only keeps a
        // bad input from recursing forever.
        let s = if depth > after.len() {
            0
        } else {
            (0..after.len())
                .filter(|&j| after[j].contains(&i))
                .map(|j| stage(j, after, memo, depth + 1) + 1)
                .max()
                .unwrap_or(0)
        };
        memo[i] = Some(s);
        s
    }
    let mut memo = vec![None; after.len()];
    (0..after.len())
        .map(|i| stage(i, after, &mut memo, 0))
        .collect()
}

/// The longest the stages can take: the longest graceful timeout of each
/// stage (`stages[i]`, `timeouts[i]` of program i), added up.
pub fn staged_timeout(stages: &[u32], timeouts: &[Duration]) -> Duration {
    let last = stages.iter().copied().max().unwrap_or(0);
    (0..=last)
        .map(|stage| {
            stages
                .iter()
                .zip(timeouts)
                .filter(|(s, _)| **s == stage)
                .map(|(_, t)| *t)
                .max()
                .unwrap_or_default()
        })
        .sum()
}

#[derive(Clone, Debug, Serialize)]
pub struct ControlPlan {
    pub path: PathBuf,
    pub fallbacks: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Plain,
    Workers,
    /// Several programs (a Procfile, `[programs.NAME]` tables), each run
    /// as supervised workers.
    Programs,
}

#[derive(Clone, Debug, Serialize)]
pub struct WorkerPlan {
    pub count: u32,
    /// The most workers TTIN scales to.
    pub max: u32,
    /// Where the count came from: "plain mode", "--workers", "environment
    /// variable WEB_CONCURRENCY", "auto", ...
    pub source: String,
    /// The sizing decision, for `auto`.
    pub sizing: Option<Sizing>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ListenPlan {
    pub address: ListenAddr,
    /// The fd a worker receives it as.
    pub fd: i32,
    pub name: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct RestartPlan {
    pub policy: RestartPolicy,
    #[serde(serialize_with = "secs", rename = "min_uptime_s")]
    pub min_uptime: Duration,
    #[serde(serialize_with = "secs", rename = "backoff_initial_s")]
    pub backoff_initial: Duration,
    #[serde(serialize_with = "secs", rename = "backoff_max_s")]
    pub backoff_max: Duration,
    pub crash_loop: u32,
}

/// How a worker tells it is ready, and the watchdog (docs/workers.md).
#[derive(Clone, Debug, Serialize)]
pub struct ReadyPlan {
    /// `listen`, `notify` or `delay` (`auto` resolved).
    pub mode: ReadyMode,
    #[serde(serialize_with = "secs", rename = "timeout_s")]
    pub timeout: Duration,
    #[serde(serialize_with = "opt_secs", rename = "watchdog_s")]
    pub watchdog: Option<Duration>,
}

/// The memory guard and OOM attribution (docs/memory.md).
#[derive(Clone, Debug, Serialize)]
pub struct MemoryPlan {
    /// `--max-worker-memory`, bytes.
    pub max_worker: Option<u64>,
    #[serde(serialize_with = "opt_secs", rename = "max_age_s")]
    pub max_age: Option<Duration>,
    /// Percent added at most to `max_age`, per worker.
    pub age_jitter: f64,
    /// `--memory-high` in bytes (a percentage resolved against the limit).
    pub high: Option<u64>,
    /// The container's memory limit the guard and the OOM reports use.
    pub limit: Option<u64>,
    #[serde(serialize_with = "secs", rename = "interval_s")]
    pub interval: Duration,
    /// Whether the guard samples at all.
    pub sampling: bool,
    /// cgroup v2 `memory.oom.group` of the container (`None`: not v2, or
    /// not read).
    pub oom_group: Option<bool>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ShutdownPlan {
    #[serde(serialize_with = "secs", rename = "delay_s")]
    pub delay: Duration,
    /// None in plain mode without --stop-signal: the signal received is
    /// passed on as it is (tini's behaviour).
    pub stop_signal: Option<Signal>,
    #[serde(serialize_with = "secs", rename = "graceful_timeout_s")]
    pub graceful_timeout: Duration,
    /// The longest a shutdown can take: delay + graceful timeout. Keep it
    /// below Docker's stop timeout / Kubernetes' grace period.
    #[serde(serialize_with = "secs", rename = "budget_s")]
    pub budget: Duration,
}

/// What each signal with a meaning of its own does, after the
/// `--signal-map` rules (docs/plan.md).
#[derive(Clone, Debug, Serialize)]
pub struct SignalPlan {
    /// The signals that start a graceful shutdown.
    pub shutdown: Vec<Signal>,
    /// What TERM, INT and QUIT do: "shutdown", "shutdown, the child gets
    /// SIGx (--signal-map TERM:x)" (plain mode only), or "ignored
    /// (--signal-map TERM:0)".
    pub term: String,
    pub int: String,
    pub quit: String,
    /// What HUP, TTIN and TTOU do: "rolling restart", "add a worker",
    /// "remove a worker" (worker mode), "forward" (plain mode), "forward
    /// as SIGx (--signal-map HUP:x)" or "ignored (--signal-map HUP:0)".
    pub hup: String,
    pub ttin: String,
    pub ttou: String,
    pub map: Vec<SignalRule>,
}

impl SignalPlan {
    fn new(mode: Mode, map: &[SignalRule]) -> SignalPlan {
        let rule = |sig: Signal| map.iter().find(|r| r.from == sig).map(|r| r.to);
        let ignored = |sig: Signal| format!("ignored (--signal-map {}:0)", sig.name());
        // TERM, INT, QUIT: a rule to another signal is only valid in plain
        // mode without --stop-signal (config checks it).
        let shutdown_role = |sig: Signal| match rule(sig) {
            None => "shutdown".to_string(),
            Some(None) => ignored(sig),
            Some(Some(to)) => format!(
                "shutdown, the child gets {to} (--signal-map {}:{})",
                sig.name(),
                to.name()
            ),
        };
        // HUP, TTIN, TTOU: their own meaning in worker mode, unless a rule
        // takes them away.
        let own_role = |sig: Signal, meaning: &str| match rule(sig) {
            None if mode != Mode::Plain => meaning.to_string(),
            None => "forward".to_string(),
            Some(None) => ignored(sig),
            Some(Some(to)) => {
                format!(
                    "forward as {to} (--signal-map {}:{})",
                    sig.name(),
                    to.name()
                )
            }
        };
        SignalPlan {
            shutdown: [Signal::TERM, Signal::INT, Signal::QUIT]
                .into_iter()
                .filter(|s| rule(*s) != Some(None))
                .collect(),
            term: shutdown_role(Signal::TERM),
            int: shutdown_role(Signal::INT),
            quit: shutdown_role(Signal::QUIT),
            hup: own_role(Signal::HUP, "rolling restart"),
            ttin: own_role(Signal::TTIN, "add a worker"),
            ttou: own_role(Signal::TTOU, "remove a worker"),
            map: map.to_vec(),
        }
    }
}

/// The first backoff delay; it doubles up to `backoff_max`.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(100);

/// What the sizing needs from the settings.
pub fn sizing_input(config: &Config) -> SizingInput {
    SizingInput {
        workers_per_cpu: config.workers_per_cpu,
        extra_workers: config.extra_workers,
        worker_memory: config.worker_memory,
        memory_reserve: config.memory_reserve,
        min_workers: config.min_workers,
        max_workers: config.max_workers,
        cpus_override: config.cpus,
        memory_override: config.memory,
    }
}

fn opt_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// How long `docker stop` waits before its SIGKILL unless told (`-t`).
const DOCKER_STOP_TIMEOUT: Duration = Duration::from_secs(10);

impl Plan {
    pub fn build(config: &Config) -> Plan {
        // The limits decide `--workers auto` and a `--memory-high` given as
        // a share of the limit (without `--memory`); the dry run shows them
        // always. Any other run skips reading them.
        let high_needs_limit =
            matches!(config.memory_high, Some(Amount::Percent(_))) && config.memory.is_none();
        if config.dry_run || config.workers == Some(Workers::Auto) || high_needs_limit {
            Plan::build_with(config, Some(&HostFacts::read(&config.root)))
        } else {
            Plan::build_with(config, None)
        }
    }

    /// `build` with injected host facts (tests); `None` reads no limits.
    pub fn build_with(config: &Config, host: Option<&HostFacts>) -> Plan {
        let resources = match host {
            Some(host) => resources::detect(&config.root, host),
            None => Resources::not_read(),
        };
        if !config.programs.is_empty() {
            return Plan::build_programs(config, host, resources);
        }
        let mut plan = Plan::build_one(config, host, resources);
        plan.programs = vec![ProgramPlan::of(&plan, "")];
        plan
    }

    /// Several programs: each planned as a worker-mode command of its own
    /// settings; the one `auto` program is sized with the memory the
    /// others declare (`memory` x their workers) set aside.
    fn build_programs(config: &Config, host: Option<&HostFacts>, resources: Resources) -> Plan {
        let mut warnings = config.warnings.clone();
        let fixed_memory: u64 = config
            .programs
            .iter()
            .filter_map(|p| match (p.config.workers, p.memory) {
                (Some(Workers::Fixed(n)), Some(m)) => Some(m.saturating_mul(u64::from(n))),
                _ => None,
            })
            .sum();
        let limit = config.memory.or(resources.memory.as_ref().map(|m| m.value));
        if let Some(limit) = limit.filter(|l| fixed_memory > *l) {
            warnings.push(format!(
                "the programs with a fixed worker count declare {} in all (memory x workers), more than the memory limit {}",
                format_bytes(fixed_memory),
                format_bytes(limit)
            ));
        }
        let mut plans: Vec<(ProgramPlan, Plan)> = Vec::new();
        for p in &config.programs {
            let mut c = p.config.clone();
            c.command = p.command.clone();
            c.steps.clear();
            c.dry_run = config.dry_run;
            if c.workers == Some(Workers::Auto) {
                c.memory_reserve = c.memory_reserve.saturating_add(fixed_memory);
            }
            let sub = Plan::build_one(&c, host, resources.clone());
            for w in &sub.warnings {
                if !resources.warnings.contains(w) && !config.warnings.contains(w) {
                    warnings.push(format!("program {}: {w}", p.name));
                }
            }
            let mut pp = ProgramPlan::of(&sub, &p.name);
            if p.config.origin("workers").is_none() {
                pp.workers.source = "a program's default".into();
            }
            pp.after = p.after.clone();
            pp.critical = p.critical;
            pp.worker_memory = match c.workers {
                Some(Workers::Auto) => Some(c.worker_memory),
                _ => p.memory,
            };
            if let Some(s) = &mut pp.workers.sizing {
                if fixed_memory > 0 {
                    s.formula.push_str(&format!(
                        "\n(the reserve includes {} the other programs declare)",
                        format_bytes(fixed_memory)
                    ));
                }
            }
            plans.push((pp, sub));
        }
        let after: Vec<Vec<usize>> = plans
            .iter()
            .map(|(p, _)| {
                p.after
                    .iter()
                    .filter_map(|a| plans.iter().position(|(q, _)| &q.name == a))
                    .collect()
            })
            .collect();
        for (stage, (p, _)) in stop_stages(&after).into_iter().zip(plans.iter_mut()) {
            p.stop_stage = stage;
        }
        let primary = primary_of(plans.iter().map(|(p, _)| p));
        let programs: Vec<ProgramPlan> = plans.iter().map(|(p, _)| p.clone()).collect();
        let (_, mut plan) = plans.swap_remove(primary);
        plan.mode = Mode::Programs;
        plan.steps = config.steps.clone();
        plan.prestart_user = config.identities.prestart.clone();
        plan.signals = SignalPlan::new(Mode::Programs, &config.signal_map);
        let stages: Vec<u32> = programs.iter().map(|p| p.stop_stage).collect();
        let timeouts: Vec<Duration> = programs.iter().map(|p| p.graceful_timeout).collect();
        plan.shutdown.budget = config.shutdown_delay + staged_timeout(&stages, &timeouts);
        // Each stop stage waits for its slowest program, one after the other.
        if plan.shutdown.budget > DOCKER_STOP_TIMEOUT {
            warnings.push(format!(
                "the programs may take up to {} to stop (each stop stage waits its own graceful_timeout), more than docker stop's default 10s: run docker stop -t {}, or raise stop_grace_period (Compose) or terminationGracePeriodSeconds (Kubernetes) to match",
                format_duration(plan.shutdown.budget),
                plan.shutdown.budget.as_secs_f64().ceil() as u64 + 1
            ));
        }
        plan.memory.sampling = programs.iter().any(|p| p.memory.sampling);
        warnings.extend(resources.warnings.iter().cloned());
        plan.warnings = warnings;
        plan.programs = programs;
        plan.log_prefix = config.log_prefix.unwrap_or(true);
        plan
    }

    fn build_one(config: &Config, host: Option<&HostFacts>, resources: Resources) -> Plan {
        let mut warnings = config.warnings.clone();
        let input = sizing_input(config);
        let origin = config.origin("workers").unwrap_or("--workers").to_string();
        let (mode, workers, resize) = match config.workers {
            None => (
                Mode::Plain,
                WorkerPlan {
                    count: 1,
                    max: 1,
                    source: "plain mode (no --workers)".into(),
                    sizing: None,
                },
                None,
            ),
            Some(Workers::Fixed(n)) => (
                Mode::Workers,
                WorkerPlan {
                    count: n,
                    max: config.max_workers.max(n),
                    source: origin,
                    sizing: None,
                },
                None,
            ),
            Some(Workers::Auto) => {
                let s = sizing::decide(&input, &resources);
                (
                    Mode::Workers,
                    WorkerPlan {
                        count: s.count,
                        max: config.max_workers.max(s.count),
                        source: format!("auto ({origin})"),
                        sizing: Some(s),
                    },
                    Some((config.root.clone(), input.clone())),
                )
            }
        };

        let listen: Vec<ListenPlan> = config
            .listen
            .iter()
            .enumerate()
            .map(|(i, address)| ListenPlan {
                name: address.fd_name(),
                address: address.clone(),
                fd: crate::process::FIRST_FD + i as i32,
            })
            .collect();
        if mode == Mode::Plain && !listen.is_empty() {
            warnings.push(
                "--listen in plain mode: the one child gets the sockets as fd 3.. too".into(),
            );
        }

        let policy = config.restart.unwrap_or(match mode {
            Mode::Plain => RestartPolicy::Never,
            Mode::Workers | Mode::Programs => RestartPolicy::Always,
        });
        let stop_signal = match (config.stop_signal, mode) {
            (Some(s), _) => Some(s),
            (None, Mode::Workers | Mode::Programs) => Some(Signal::TERM),
            (None, Mode::Plain) => None,
        };
        let ready = ReadyPlan {
            mode: match config.ready {
                ReadyMode::Auto if listen.is_empty() => ReadyMode::Delay,
                ReadyMode::Auto => ReadyMode::Listen,
                m => m,
            },
            timeout: config.ready_timeout,
            watchdog: config.watchdog,
        };
        if ready.mode == ReadyMode::Listen && listen.is_empty() && mode == Mode::Workers {
            warnings.push(
                "--ready listen without --listen: no socket to wait on, so every worker counts as ready only by READY=1 or fails its ready timeout".into(),
            );
        }
        // `--memory` stands for the limit, as it does for the sizing.
        let limit = config.memory.or(resources.memory.as_ref().map(|m| m.value));
        let high = config.memory_high.and_then(|a| a.of(limit));
        if config.memory_high.is_some() && high.is_none() {
            warnings.push(
                "--memory-high as a percentage needs a memory limit, and none was found: the container guard is off (give a size, or --memory)".into(),
            );
        }
        let oom_group = host
            .and_then(|_| crate::memory::Cgroup::find(&config.root))
            .and_then(|c| c.oom_group());
        if oom_group == Some(true) {
            warnings.push(
                "memory.oom.group is 1 (Kubernetes 1.28+): one worker's OOM kill ends every process of the container; recycle workers before the limit (--max-worker-memory, --memory-high)".into(),
            );
        }
        let memory = MemoryPlan {
            max_worker: config.max_worker_memory,
            max_age: config.max_worker_age,
            age_jitter: config.max_worker_age_jitter,
            high,
            limit,
            interval: config.memory_interval,
            sampling: mode == Mode::Workers
                && (config.max_worker_memory.is_some() || high.is_some()),
            oom_group,
        };
        let budget = config.shutdown_delay + config.graceful_timeout;
        let pid1 = nix::unistd::getpid().as_raw() == 1;
        warnings.extend(resources.warnings.iter().cloned());
        Plan {
            schema: SCHEMA,
            mode,
            command: config
                .command
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            argv: config.command.clone(),
            workers,
            resources,
            listen,
            backlog: config.backlog,
            socket: config.identities.socket,
            steps: config.steps.clone(),
            user: config.identities.workers.clone(),
            prestart_user: config.identities.prestart.clone(),
            no_new_privs: config.no_new_privs,
            ready,
            memory,
            restart: RestartPlan {
                policy,
                min_uptime: config.min_uptime,
                backoff_initial: BACKOFF_INITIAL,
                backoff_max: config.backoff_max,
                crash_loop: config.crash_loop,
            },
            shutdown: ShutdownPlan {
                delay: config.shutdown_delay,
                stop_signal,
                graceful_timeout: config.graceful_timeout,
                budget,
            },
            signals: SignalPlan::new(mode, &config.signal_map),
            reaper: if pid1 { "pid1" } else { "subreaper" },
            log_format: config.log_format,
            config_file: config.file.clone(),
            control: match &config.control {
                ControlSocket::Off => None,
                ControlSocket::Path(p) => Some(ControlPlan {
                    path: p.clone(),
                    fallbacks: Vec::new(),
                }),
                ControlSocket::Auto => Some(ControlPlan {
                    path: PathBuf::from("/run").join(CONTROL_FILE),
                    fallbacks: vec![
                        format!("$XDG_RUNTIME_DIR/{CONTROL_FILE}"),
                        format!("/tmp/{CONTROL_FILE}"),
                    ],
                }),
            },
            control_setting: config.control.clone(),
            metrics: config.metrics.clone(),
            warnings,
            resize,
            programs: Vec::new(),
            log_prefix: config.log_prefix.unwrap_or(false),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The plan for a person: numbers, where they came from, the formula.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let r = &self.resources;
        let _ = writeln!(o, "cinit plan (dry run: nothing was started)");
        let _ = writeln!(o);
        if self.mode != Mode::Programs {
            let _ = writeln!(o, "command     {}", shell_join(&self.command));
        }
        let _ = writeln!(
            o,
            "mode        {}",
            match self.mode {
                Mode::Plain => "plain: one child, exit code passed through",
                Mode::Workers => "workers: supervised copies of the command",
                Mode::Programs =>
                    "programs: several commands, each supervised with its own settings",
            }
        );
        if self.mode == Mode::Programs {
            let _ = writeln!(o, "{}", self.programs_text());
        }
        if let Some(f) = &self.config_file {
            let _ = writeln!(o, "config      {}", f.display());
        }
        let _ = writeln!(o);
        let _ = writeln!(o, "resources   (cgroup {})", r.cgroup);
        let _ = writeln!(
            o,
            "  cpus      {}  from {}",
            format_number(r.cpus.value),
            r.cpus.source
        );
        match &r.memory {
            Some(m) => {
                let _ = writeln!(
                    o,
                    "  memory    {}  from {}",
                    format_bytes(m.value),
                    m.source
                );
            }
            None => {
                let _ = writeln!(
                    o,
                    "  memory    no limit{}",
                    r.host
                        .mem_total
                        .map(|t| format!(" (host has {})", format_bytes(t)))
                        .unwrap_or_default()
                );
            }
        }
        let _ = writeln!(o, "  host      {} cpus online", r.host.online_cpus);
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "workers     {}  ({}){}",
            self.workers.count,
            self.workers.source,
            match self.programs.first() {
                Some(_) if self.mode == Mode::Programs => {
                    format!(
                        " for program {}, which TTIN/TTOU scale",
                        self.primary_name()
                    )
                }
                _ => String::new(),
            }
        );
        if let Some(s) = &self.workers.sizing {
            let _ = writeln!(
                o,
                "  cpus      {}  from {}",
                format_number(s.cpus.value),
                s.cpus.source
            );
            if let Some(m) = &s.memory {
                let _ = writeln!(
                    o,
                    "  memory    {}  from {}",
                    format_bytes(m.value),
                    m.source
                );
            }
            for line in s.formula.lines() {
                let _ = writeln!(o, "  {line}");
            }
            let _ = writeln!(o, "  limited by {}", s.limited_by);
        }
        let _ = writeln!(o);
        if self.listen.is_empty() {
            let _ = writeln!(o, "listen      none (the command binds its own sockets)");
        } else {
            let _ = writeln!(
                o,
                "listen      backlog {}, TCP_NODELAY on TCP",
                self.backlog
            );
            let perms = self.socket_text();
            for l in &self.listen {
                let perms = match (&l.address, &perms) {
                    (ListenAddr::Unix { .. }, Some(p)) => format!("; {p}"),
                    _ => String::new(),
                };
                let _ = writeln!(
                    o,
                    "  fd {}      {}  (LISTEN_FDNAMES {}{perms})",
                    l.fd, l.address, l.name
                );
            }
        }
        let _ = writeln!(o);
        if self.steps.is_empty() {
            let _ = writeln!(o, "pre-start   none");
        } else {
            let _ = writeln!(o, "pre-start   in this order, each must succeed:");
            for (i, s) in self.steps.iter().enumerate() {
                let line = match s {
                    Step::WaitFor { target, timeout } => {
                        format!("wait for {target}  (timeout {})", format_duration(*timeout))
                    }
                    Step::Run { argv, timeout } => {
                        format!(
                            "run {}  (timeout {})",
                            shell_join(argv),
                            format_duration(*timeout)
                        )
                    }
                    Step::Dir { path, timeout } => format!(
                        "run the executables in {} in name order  (timeout {} each)",
                        path.display(),
                        format_duration(*timeout)
                    ),
                };
                let _ = writeln!(o, "  {}. {line}", i + 1);
            }
        }
        let _ = writeln!(o);
        if let Some(text) = self.user_text() {
            let _ = writeln!(o, "{text}");
            let _ = writeln!(o);
        }
        let rs = &self.restart;
        let _ = writeln!(
            o,
            "restart     {}; backoff {} doubling to {}; crash loop after {} exits within {} of start",
            rs.policy,
            format_duration(rs.backoff_initial),
            format_duration(rs.backoff_max),
            rs.crash_loop,
            format_duration(rs.min_uptime)
        );
        if self.mode != Mode::Plain {
            let r = &self.ready;
            let how = match r.mode {
                ReadyMode::Listen => "once it waits on a --listen socket",
                ReadyMode::Notify => "once it sends READY=1",
                _ => "once up for --min-uptime or once it sends READY=1",
            };
            let _ = writeln!(
                o,
                "ready       {}: a worker is ready {how}; not ready within {}: a failed start; watchdog {}",
                r.mode,
                format_duration(r.timeout),
                r.watchdog
                    .map(|w| format!("{} (WATCHDOG=1 expected)", format_duration(w)))
                    .unwrap_or_else(|| "off".into())
            );
        }
        if self.mode != Mode::Plain {
            let m = &self.memory;
            let mut parts = Vec::new();
            if let Some(b) = m.max_worker {
                parts.push(format!("replace a worker above {} (PSS)", format_bytes(b)));
            }
            if let Some(h) = m.high {
                parts.push(format!(
                    "replace the largest worker when the container's working set passes {}{}",
                    format_bytes(h),
                    m.limit
                        .map(|l| format!(" (of {})", format_bytes(l)))
                        .unwrap_or_default()
                ));
            }
            if m.sampling {
                parts.push(format!("sampled every {}", format_duration(m.interval)));
            }
            if let Some(a) = m.max_age {
                parts.push(format!(
                    "replace each worker at {} plus up to {}%, one at a time",
                    format_duration(a),
                    format_number(m.age_jitter)
                ));
            }
            let guard = if parts.is_empty() {
                "off".to_string()
            } else {
                parts.join("; ")
            };
            let _ = writeln!(
                o,
                "memory      guard {guard}; OOM kills are reported as such{}",
                match m.oom_group {
                    Some(true) => " (memory.oom.group=1: one ends the container)",
                    _ => "",
                }
            );
        }
        let sd = &self.shutdown;
        let stop = sd
            .stop_signal
            .map(|s| s.to_string())
            .unwrap_or_else(|| "the signal received".into());
        let on = match self.signals.shutdown.as_slice() {
            [] => "on no signal (TERM, INT and QUIT are ignored)".to_string(),
            list => format!(
                "on {}",
                list.iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            ),
        };
        if self.mode == Mode::Programs {
            let _ = writeln!(
                o,
                "shutdown    {on}: serve {} more, then stop the programs in the stop order, \
                 each with its stop signal, SIGKILL after its graceful timeout; \
                 leftover processes likewise (at most {} in all)",
                format_duration(sd.delay),
                format_duration(sd.budget)
            );
        } else {
            let _ = writeln!(
                o,
                "shutdown    {on}: serve {} more, send {stop}, wait {}, then SIGKILL; \
                 leftover processes likewise (at most {} in all)",
                format_duration(sd.delay),
                format_duration(sd.graceful_timeout),
                format_duration(sd.budget)
            );
        }
        let sg = &self.signals;
        let shutdown_roles = if sg.term == sg.int && sg.int == sg.quit {
            format!("TERM, INT, QUIT: {}", sg.term)
        } else {
            format!("TERM: {}; INT: {}; QUIT: {}", sg.term, sg.int, sg.quit)
        };
        let own = [
            Signal::TERM,
            Signal::INT,
            Signal::QUIT,
            Signal::HUP,
            Signal::TTIN,
            Signal::TTOU,
        ];
        let rewritten: Vec<String> = sg
            .map
            .iter()
            .filter(|r| !own.contains(&r.from))
            .map(|r| {
                format!(
                    "{}->{}",
                    r.from.name(),
                    r.to.map_or_else(|| "ignored".into(), |t| t.name())
                )
            })
            .collect();
        let _ = writeln!(
            o,
            "signals     {shutdown_roles}; HUP: {}; TTIN: {}; TTOU: {}",
            sg.hup, sg.ttin, sg.ttou
        );
        let _ = writeln!(
            o,
            "            every other signal is forwarded{}",
            if rewritten.is_empty() {
                String::new()
            } else {
                format!(" (rewritten: {})", rewritten.join(", "))
            }
        );
        let _ = writeln!(
            o,
            "reaper      {}",
            if self.reaper == "pid1" {
                "PID 1: every orphan in the container is reaped"
            } else {
                "child subreaper: orphans of the command are reaped"
            }
        );
        let control = match &self.control {
            None => "none (--control none)".to_string(),
            Some(c) if c.fallbacks.is_empty() => c.path.display().to_string(),
            Some(c) => format!(
                "{} (or {} when /run is not writable)",
                c.path.display(),
                c.fallbacks.join(", ")
            ),
        };
        let _ = writeln!(
            o,
            "control     {control}: init --status, --reload, --scale, --stop, --probe ready"
        );
        let _ = writeln!(
            o,
            "metrics     {}",
            match &self.metrics {
                Some(a) => format!("GET /metrics on {a}"),
                None => "off".into(),
            }
        );
        if !self.warnings.is_empty() {
            let _ = writeln!(o);
            for w in &self.warnings {
                let _ = writeln!(o, "warning: {w}");
            }
        }
        o.trim_end().to_string()
    }
}

impl Plan {
    /// The program TTIN and TTOU act on: `web`, or the first.
    pub fn primary(&self) -> usize {
        primary_of(self.programs.iter())
    }

    fn primary_name(&self) -> &str {
        self.programs
            .get(self.primary())
            .map_or("", |p| p.name.as_str())
    }

    /// The `programs` block: each program in start order, then the order
    /// of the shutdown.
    fn programs_text(&self) -> String {
        let width = self
            .programs
            .iter()
            .map(|p| p.name.len())
            .max()
            .unwrap_or(0);
        let mut lines = vec![format!(
            "programs    {} (a program starts once every program of its `after` is ready; lines {})",
            self.programs.len(),
            if self.log_prefix {
                "prefixed NAME.SLOT |"
            } else {
                "not prefixed"
            }
        )];
        for p in &self.programs {
            lines.push(format!("  {:width$}  {}", p.name, shell_join(&p.command)));
            let mut facts = vec![format!(
                "{} worker(s) ({})",
                p.workers.count, p.workers.source
            )];
            for l in &p.listen {
                facts.push(format!("fd {} {}", l.fd, l.address));
            }
            facts.push(format!("ready {}", p.ready.mode));
            if !p.after.is_empty() {
                facts.push(format!("after {}", p.after.join(", ")));
            }
            facts.push(format!(
                "stop {} within {}",
                p.stop_signal.unwrap_or(Signal::TERM),
                format_duration(p.graceful_timeout)
            ));
            if let Some(u) = &p.user {
                if u.switch {
                    facts.push(format!("as {}", u.describe()));
                }
            }
            facts.push(if p.critical {
                "critical: its crash loop stops the container".into()
            } else {
                "not critical: its crash loop stops it alone".into()
            });
            lines.push(format!("  {:width$}  {}", "", facts.join("; ")));
        }
        let last = self
            .programs
            .iter()
            .map(|p| p.stop_stage)
            .max()
            .unwrap_or(0);
        let stages: Vec<String> = (0..=last)
            .map(|stage| {
                self.programs
                    .iter()
                    .filter(|p| p.stop_stage == stage)
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect();
        lines.push(format!("  stop order  {}", stages.join(", then ")));
        if let Some(m) = self.programs_memory_text() {
            lines.push(format!("  memory      {m}"));
        }
        lines.join("\n")
    }

    /// What the programs' workers need together against the limit:
    /// `web 6 × 100 MiB + worker 2 × 200 MiB = 1000 MiB of the 1 GiB
    /// limit`; None when no program declares its memory.
    fn programs_memory_text(&self) -> Option<String> {
        if self.programs.iter().all(|p| p.worker_memory.is_none()) {
            return None;
        }
        let mut parts = Vec::new();
        let mut total: u64 = 0;
        let mut unknown = Vec::new();
        for p in &self.programs {
            match p.worker_memory {
                Some(m) => {
                    total = total.saturating_add(m.saturating_mul(u64::from(p.workers.count)));
                    parts.push(format!(
                        "{} {} × {}",
                        p.name,
                        p.workers.count,
                        format_bytes(m)
                    ));
                }
                None => unknown.push(p.name.as_str()),
            }
        }
        let mut text = format!("{} = {}", parts.join(" + "), format_bytes(total));
        match self.memory.limit {
            Some(limit) => text.push_str(&format!(" of the {} limit", format_bytes(limit))),
            None => text.push_str(" (no memory limit known)"),
        }
        if !unknown.is_empty() {
            text.push_str(&format!("; not declared: {}", unknown.join(", ")));
        }
        Some(text)
    }

    /// `mode 0660, owner 0:33` for a unix socket, when either is set.
    fn socket_text(&self) -> Option<String> {
        let s = &self.socket;
        let id = |n: Option<u32>| n.map_or_else(|| "-".to_string(), |n| n.to_string());
        let mut parts = Vec::new();
        if let Some(m) = s.mode {
            parts.push(format!("mode {}", crate::vocab::format_mode(m)));
        }
        if s.uid.is_some() || s.gid.is_some() {
            parts.push(format!("owner {}:{}", id(s.uid), id(s.gid)));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }

    /// The `user` block: who the children run as, when anything is set.
    fn user_text(&self) -> Option<String> {
        if self.user.is_none() && self.prestart_user.is_none() && !self.no_new_privs {
            return None;
        }
        let who = |id: &Option<Identity>| match id {
            None => "as the init's own user".to_string(),
            Some(id) if !id.switch => format!(
                "as uid {}, the init's own (it is not root: the children keep its credentials)",
                id.uid
            ),
            Some(id) => format!("as {}, HOME={}", id.describe(), id.home),
        };
        let children = match self.mode {
            Mode::Plain => "the child runs",
            Mode::Workers => "workers run",
            Mode::Programs => "workers of the programs without a user of their own run",
        };
        let mut lines = vec![format!("user        {children} {}", who(&self.user))];
        if !self.steps.is_empty() || self.prestart_user != self.user {
            lines.push(format!(
                "            pre-start commands run {}",
                who(&self.prestart_user)
            ));
        }
        if self.no_new_privs {
            lines.push(
                "            no new privileges (PR_SET_NO_NEW_PRIVS) for every child".to_string(),
            );
        }
        Some(lines.join("\n"))
    }
}

pub(crate) use crate::vocab::shell_join;
