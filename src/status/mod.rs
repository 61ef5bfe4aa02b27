//! The status document: what `init --status` shows, `init --status --json`
//! prints, `init --probe ready` decides on, and `/metrics` counts.
//!
//! Plain data. The supervisor's machine fills in what it decides (phase,
//! slots, workers, readiness, restarts, last exits: `Machine::snapshot`),
//! the shell adds what only the OS knows at the moment of the request
//! (memory, CPU, accept queues, limits), and `text` and `metrics` render
//! it. The JSON form is a documented, versioned document
//! (docs/status.md): fields are only ever added within a version.
//! Durations are seconds in fields ending in `_s`, sizes bytes in fields
//! ending in `_bytes`.

pub mod metrics;
pub mod text;

use serde::Serialize;

/// What the supervisor is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Running the pre-start steps.
    Prestart,
    /// Binding the `--listen` sockets.
    Binding,
    Running,
    /// Still serving for the shutdown delay.
    Draining,
    /// Stop signal sent, waiting for the workers.
    Stopping,
    /// The workers are gone; stopping every other process, then exiting.
    Exiting,
}

impl Phase {
    pub const ALL: [Phase; 6] = [
        Phase::Prestart,
        Phase::Binding,
        Phase::Running,
        Phase::Draining,
        Phase::Stopping,
        Phase::Exiting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Prestart => "prestart",
            Phase::Binding => "binding",
            Phase::Running => "running",
            Phase::Draining => "draining",
            Phase::Stopping => "stopping",
            Phase::Exiting => "exiting",
        }
    }

    /// A shutdown has begun.
    pub fn stopping(self) -> bool {
        matches!(self, Phase::Draining | Phase::Stopping | Phase::Exiting)
    }
}

/// The state of a worker slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotState {
    /// Its worker runs and is not ready yet.
    Starting,
    Ready,
    /// Its worker is being stopped (not ready in time, hung, or the init
    /// is shutting down).
    Stopping,
    /// No worker: a restart is due (after the backoff).
    Backoff,
    /// No worker, and none will start (restart policy, or its program
    /// gave up).
    Exited,
    /// Its program waits for the programs of its `after`.
    Waiting,
}

impl SlotState {
    pub const ALL: [SlotState; 6] = [
        SlotState::Starting,
        SlotState::Ready,
        SlotState::Stopping,
        SlotState::Backoff,
        SlotState::Exited,
        SlotState::Waiting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SlotState::Starting => "starting",
            SlotState::Ready => "ready",
            SlotState::Stopping => "stopping",
            SlotState::Backoff => "backoff",
            SlotState::Exited => "exited",
            SlotState::Waiting => "waiting",
        }
    }
}

/// The version of the status document; bumped only for incompatible
/// changes.
pub const SCHEMA: u32 = 1;

/// The whole status.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub schema: u32,
    /// The init's pid (1 in a container).
    pub pid: i32,
    /// "plain", "workers" or "programs".
    pub mode: &'static str,
    pub phase: Phase,
    /// A shutdown has begun (`draining`, `stopping`, `exiting`).
    pub stopping: bool,
    /// Running, not stopping, and every slot has a ready worker: what
    /// `init --probe ready` answers.
    pub ready: bool,
    /// Unix time the init started, in seconds.
    pub started_at_s: f64,
    #[serde(rename = "uptime_s")]
    pub uptime: f64,
    /// The pre-start step under way (`2/3`), in phase `prestart`.
    pub step: Option<String>,
    pub programs: Vec<Program>,
    pub listeners: Vec<Listener>,
    pub limits: Option<Limits>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Program {
    /// Empty for the one program of `init [OPTIONS] COMMAND`.
    pub name: String,
    /// The slot count now (after scaling and reloads).
    pub workers: u32,
    /// The most `--scale` and TTIN go to.
    pub max_workers: u32,
    /// Slots whose worker is ready.
    pub ready: u32,
    /// A rolling restart is under way.
    pub rolling: bool,
    /// Where the worker count came from (`--workers`, `auto (...)`).
    pub source: String,
    /// Restarts by reason, over the program's life (slots scaled away
    /// included).
    pub restarts: Restarts,
    pub slots: Vec<Slot>,
    /// Workers being stopped after a replacement or a scale-down.
    pub retiring: Vec<Retiring>,
    /// `waiting` (for the programs of its `after`), `running`, or
    /// `gave_up` (not critical, stopped after a crash loop).
    pub state: &'static str,
    /// The programs it starts after.
    pub after: Vec<String>,
    /// Its crash loop stops the container.
    pub critical: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Slot {
    /// The slot number (`CINIT_WORKER_ID`).
    pub slot: u32,
    pub state: SlotState,
    pub worker: Option<Worker>,
    /// The new worker of a rolling restart, until it takes over.
    pub replacement: Option<Worker>,
    /// Restarts of this slot by reason.
    pub restarts: Restarts,
    pub last_exit: Option<Exit>,
    /// In state `backoff`: when the next start is due.
    pub restart_in_s: Option<f64>,
}

/// Restarts by reason (the supervisor's `Why`): a field each, so every
/// reason is always present, in this order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Restarts {
    pub exit: u32,
    pub crash: u32,
    pub oom: u32,
    pub memory: u32,
    pub age: u32,
    pub hung: u32,
    pub reload: u32,
    pub scale: u32,
}

impl Restarts {
    /// Every reason with its count, in order.
    pub fn pairs(&self) -> [(&'static str, u32); 8] {
        [
            ("exit", self.exit),
            ("crash", self.crash),
            ("oom", self.oom),
            ("memory", self.memory),
            ("age", self.age),
            ("hung", self.hung),
            ("reload", self.reload),
            ("scale", self.scale),
        ]
    }

    /// Counts `n` more for `reason`; false for a reason it has no field
    /// for (a test keeps the two lists the same).
    pub fn add(&mut self, reason: &str, n: u32) -> bool {
        let field = match reason {
            "exit" => &mut self.exit,
            "crash" => &mut self.crash,
            "oom" => &mut self.oom,
            "memory" => &mut self.memory,
            "age" => &mut self.age,
            "hung" => &mut self.hung,
            "reload" => &mut self.reload,
            "scale" => &mut self.scale,
            _ => return false,
        };
        *field += n;
        true
    }

    pub fn total(&self) -> u32 {
        self.pairs().iter().map(|(_, n)| n).sum()
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Worker {
    pub pid: i32,
    pub ready: bool,
    pub uptime_s: f64,
    /// How long after its start it became ready.
    pub ready_after_s: Option<f64>,
    /// Its last `STATUS=` text (sd_notify).
    pub status: Option<String>,
    /// It said `STOPPING=1`.
    pub stopping: bool,
    /// Why the init is stopping it while it owns its slot: `not_ready`
    /// (ready timeout) or `hung` (watchdog).
    pub failing: Option<&'static str>,
    /// The reload generation it was started in.
    pub generation: u64,
    /// PSS of its process tree (RSS where PSS cannot be read).
    pub memory_bytes: Option<u64>,
    pub pss_bytes: Option<u64>,
    pub rss_bytes: Option<u64>,
    /// CPU time of its process tree so far.
    pub cpu_s: Option<f64>,
    /// Its CPU use in percent of one CPU, over `cpu_window_s`: since the
    /// previous request that measured it, else since its start.
    pub cpu_percent: Option<f64>,
    pub cpu_window_s: Option<f64>,
}

/// How a slot's last worker ended.
#[derive(Clone, Debug, Serialize)]
pub struct Exit {
    /// The exit code, or null when killed by a signal.
    pub code: Option<i32>,
    /// The signal's name (`KILL`), or null.
    pub signal: Option<String>,
    /// Why it counts as a restart: exit, crash, oom, memory, age, hung.
    pub reason: Option<&'static str>,
    /// The kernel's OOM killer ended it.
    pub oom: bool,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Retiring {
    pub pid: i32,
    pub slot: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct Listener {
    pub address: String,
    /// The fd a worker receives it as.
    pub fd: i32,
    /// Connections waiting to be accepted (TCP only: TCP_INFO), null when
    /// unknown.
    pub accept_queue: Option<u32>,
    /// The most that may wait (the backlog the kernel applied).
    pub accept_queue_max: Option<u32>,
}

/// What the kernel grants, read at the request, and the worker-count
/// decision.
#[derive(Clone, Debug, Serialize)]
pub struct Limits {
    /// `v1`, `v2`, `hybrid` or `none`.
    pub cgroup: String,
    pub cpus: f64,
    pub cpus_source: String,
    pub memory_bytes: Option<u64>,
    pub memory_source: Option<String>,
    /// For `--workers auto`: the count the limits give now, and why.
    pub sizing: Option<Sizing>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Sizing {
    pub count: u32,
    pub limited_by: String,
    pub formula: String,
}

impl Status {
    pub fn workers_mut(&mut self) -> impl Iterator<Item = &mut Worker> + '_ {
        self.programs.iter_mut().flat_map(|p| {
            p.slots
                .iter_mut()
                .flat_map(|s| s.worker.iter_mut().chain(s.replacement.iter_mut()))
        })
    }
}
