//! What goes into the machine (`Event`) and what comes out (`Action`).
//!
//! The shell turns every OS happening into an `Event` (a signal from the
//! signalfd, a status from the reaper, a timer, the outcome of something
//! it was asked to do) and performs every `Action` the machine answers
//! with. The machine never touches the OS; the shell never decides.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::unistd::Pid;

use super::report::{Report, StepLabel};
use crate::reaper::Status;
use crate::vocab::{Scale, Signal, WaitTarget};

/// A worker slot: which program, which slot of it. Slots keep their
/// number across restarts (`CINIT_WORKER_ID`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotId {
    pub program: usize,
    pub slot: u32,
}

/// Who a report is about, with what is needed to name it: `child` in
/// plain mode, `worker 3` for the single unnamed program, `web.3` for a
/// named one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Who {
    pub program: Arc<str>,
    pub slot: u32,
    pub plain: bool,
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.plain {
            f.write_str("child")
        } else if self.program.is_empty() {
            write!(f, "worker {}", self.slot)
        } else {
            write!(f, "{}.{}", self.program, self.slot)
        }
    }
}

/// Why a child could not be started, as far as the machine cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartFailure {
    /// The command itself is wrong (127 not found, 126 not executable, 1
    /// another exec failure): retrying the same command cannot help.
    Command { message: String, code: i32 },
    /// No process could be made (EAGAIN under a pids limit): a shortage of
    /// the moment; retried with backoff, never a crash.
    Fork { message: String },
}

/// A pre-start step, as the machine runs it.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Wait {
        target: WaitTarget,
        timeout: Duration,
    },
    Run {
        argv: Vec<OsString>,
        timeout: Duration,
    },
    Dir {
        path: PathBuf,
        timeout: Duration,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A worker the machine asked for runs (its exec succeeded).
    Spawned {
        slot: SlotId,
        replacement: bool,
        pid: Pid,
    },
    SpawnFailed {
        slot: SlotId,
        replacement: bool,
        failure: StartFailure,
    },
    /// The pre-start command asked for runs, or could not start.
    StepSpawned {
        pid: Pid,
    },
    StepSpawnFailed {
        failure: StartFailure,
    },
    /// A wait-for step answered (`Ok`, after how long) or gave up.
    WaitDone(Result<Duration, String>),
    /// The executables of a `--prestart-dir`, in order, or why not.
    DirListed(Result<Vec<PathBuf>, String>),
    /// The `--listen` sockets are bound; workers may start.
    Bound,
    /// A child ended (any child: a worker, a step, an orphan).
    Exited {
        pid: Pid,
        status: Status,
    },
    /// A child was stopped (Ctrl-Z, SIGSTOP, background tty use).
    Stopped {
        pid: Pid,
        signal: Signal,
    },
    /// A signal for the init (never one the init caused itself).
    Signal(Signal),
    /// The deadline the machine asked for has come.
    Tick,
    /// HUP's re-plan: the new worker count of a program (None: keep).
    Replanned {
        program: usize,
        count: Option<u32>,
    },
    /// A starting worker is ready: it waits on a `--listen` socket (seen
    /// by `Action::CheckListening`).
    Ready {
        pid: Pid,
    },
    /// /proc would not show a starting worker's fds.
    Unseen {
        pid: Pid,
    },
    /// An sd_notify message: the sender and its ancestors, nearest first
    /// (the machine takes the first that is one of its workers).
    Notified {
        chain: Vec<Pid>,
        message: crate::notify::Message,
    },
    /// What the memory guard asked for: each worker's memory (PSS of its
    /// tree, bytes; `None` when it could not be read) and the container's
    /// working set.
    MemorySampled {
        workers: Vec<(Pid, Option<u64>)>,
        working_set: Option<u64>,
    },
    /// The container's count of OOM kills and its memory limit, read
    /// when a child died of SIGKILL (before its `Exited`).
    OomKills {
        count: u64,
        limit: Option<u64>,
    },
    /// In the last phase, the shell found no child left; `others_alive`:
    /// as PID 1, processes that are not children (`docker exec`) remain.
    NoChildren {
        others_alive: bool,
    },
    /// A command through the control socket, from `by`: it does what the
    /// signal does (HUP, TTIN/TTOU, TERM), whatever `--signal-map` says
    /// of the signal.
    Control {
        command: Command,
        /// The program named with `--program` (`--reload`, `--scale`);
        /// none: every program for a reload, the primary one for a scale.
        program: Option<usize>,
        by: Peer,
    },
}

/// What a client of the control socket asks the init to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// A rolling restart (HUP).
    Reload,
    /// A worker count, or a change of it (TTIN/TTOU by any amount).
    Scale(Scale),
    /// A graceful shutdown (TERM).
    Stop,
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Reload => f.write_str("reload"),
            Command::Scale(s) => write!(f, "scale {s}"),
            Command::Stop => f.write_str("stop"),
        }
    }
}

/// Who sent a control request (SO_PEERCRED).
pub use crate::vocab::Peer;

/// What the init reports to its own NOTIFY_SOCKET.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// Every slot has a ready worker.
    Ready {
        workers: u32,
    },
    /// A rolling restart began.
    Reloading,
    Stopping,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Start a worker; the shell answers `Spawned` or `SpawnFailed`.
    /// `workers` is the program's slot count (`CINIT_WORKERS`).
    SpawnWorker {
        slot: SlotId,
        replacement: bool,
        workers: u32,
    },
    /// Start a pre-start command; answered by `StepSpawned` or
    /// `StepSpawnFailed`.
    SpawnStep {
        argv: Vec<OsString>,
    },
    /// Begin a wait-for; answered by `WaitDone`. `step` names it in the
    /// progress lines the shell logs meanwhile.
    StartWait {
        target: WaitTarget,
        timeout: Duration,
        step: StepLabel,
    },
    /// Abandon the wait under way (a shutdown came first).
    CancelWait,
    /// List a `--prestart-dir`; answered by `DirListed`.
    ListDir {
        path: PathBuf,
    },
    /// Bind the `--listen` sockets; answered by `Bound`.
    Bind,
    /// Ask a child to stop: `signal` to its whole process group (each
    /// child leads its own), so what a shell wrapper started stops too;
    /// SIGCONT follows when the child is stopped (it would act on nothing
    /// else).
    Stop {
        pid: Pid,
        signal: Signal,
    },
    /// SIGKILL to a child's process group.
    Kill {
        pid: Pid,
    },
    /// Pass a signal on to the child itself.
    Forward {
        pid: Pid,
        signal: Signal,
    },
    /// SIGCONT to a stopped child's process group.
    Resume {
        pid: Pid,
    },
    /// Signal every process left: all of the container's as PID 1, the
    /// init's descendants otherwise (SIGCONT follows unless KILL).
    KillLeftovers {
        signal: Signal,
    },
    /// Look whether these starting workers wait on a `--listen` socket;
    /// answered by `Ready` (or `Unseen`) for each that does.
    CheckListening {
        pids: Vec<Pid>,
    },
    /// Read these workers' memory (and the container's working set);
    /// answered by `MemorySampled`.
    SampleMemory {
        pids: Vec<Pid>,
    },
    /// Tell whoever started the init (its own NOTIFY_SOCKET).
    Upstream(Upstream),
    /// Re-read the limits for a program and answer `Replanned`.
    Replan {
        program: usize,
    },
    Report(Report),
    Exit(i32),
}
