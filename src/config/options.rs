//! The one table of settings. Each entry says everything about one
//! setting: its option, its value, its environment variable, its TOML key,
//! its default, its help line and why the default is what it is, and how
//! its value is parsed and stored. `--help` (`cli`), the layers
//! (`layers`, `file`, `steps`) and the reference in docs/configuration.md
//! (`reference`) are all made from it, so they cannot disagree; a test
//! fails when the committed document differs from what this table says.
//!
//! A default written as `Default::Value` is parsed by the setting's own
//! parser when nothing else sets it: the text shown in `--help` is the
//! value the init uses.
//!
//! Adding a setting is one entry here and one field in `Config`.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::steps::Step;
use super::words::split_command;
use super::Config;
use crate::vocab::{
    self, parse_amount, parse_bool, parse_bytes, parse_control, parse_count, parse_cpus,
    parse_duration, parse_f64, parse_log_format, parse_mode, parse_owner, parse_percent,
    parse_ready, parse_restart, parse_scale, parse_signal, parse_signal_rule, parse_user,
    parse_workers, ListenAddr, Request, WaitTarget, MAX_LISTENERS,
};

/// Parses one value as the user wrote it and stores it in the config; the
/// error is a sentence without the origin (the caller adds it).
pub type Apply = fn(&mut Config, &str) -> Result<(), String>;

/// Parses one pre-start step; the config gives the default timeouts.
pub type StepParse = fn(&Config, &str) -> Result<Step, String>;

/// How a setting takes its value.
#[derive(Clone, Copy)]
pub enum Kind {
    /// One value; a later layer replaces an earlier one.
    Scalar(Apply),
    /// Several values: the option repeats, the environment variable is
    /// split at `sep`, the TOML value is an array (one string counts as a
    /// list of one). Each value goes through `apply`, in order.
    List { sep: char, apply: Apply },
    /// A switch: the option takes no value; the environment variable is a
    /// boolean (`1`, `true`, `0`, ...) and goes through `apply`.
    Switch(Apply),
    /// A pre-start step setting (`wait_for`, `prestart`, `prestart_dir`):
    /// steps are resolved together, in order (see `steps`). Repeatable,
    /// split at `sep` in the environment when `sep` is set.
    Step { sep: Option<char>, parse: StepParse },
    /// The file's `steps` list (see `steps`).
    StepList,
    /// The file's `[programs.NAME]` tables (see `programs`).
    Programs,
    /// The command: the words after the options, or the file's `command`.
    Command,
    /// `--config`: read before everything else, to find the file.
    ConfigFile,
}

/// What a setting is when no layer sets it.
#[derive(Clone, Copy)]
pub enum Default {
    /// Nothing: the setting is absent.
    None,
    /// This text, parsed like a user's value.
    Value(&'static str),
    /// Decided elsewhere (by the mode, the limits); the text says how.
    Described(&'static str),
}

/// One setting. Build entries with `..BASE` so that an entry names only
/// what it has.
#[derive(Clone, Copy)]
pub struct Setting {
    /// The TOML key, and the id of the setting everywhere.
    pub key: &'static str,
    /// The long option without its dashes; `None` for a file-only key.
    pub option: Option<&'static str>,
    /// What the value looks like (`DURATION`); empty for a switch.
    pub value: &'static str,
    /// The environment variable; `None` when there is none.
    pub env: Option<&'static str>,
    /// A second variable read when `env` is unset (`WEB_CONCURRENCY`).
    pub env_fallback: Option<&'static str>,
    /// Whether the TOML file may set it, under `key`.
    pub toml: bool,
    pub kind: Kind,
    pub default: Default,
    /// One line for `--help`.
    pub help: &'static str,
    /// Why the default is what it is, for docs/configuration.md.
    pub why: &'static str,
    /// Not shown in `--help` (diagnosis and tests only).
    pub hidden: bool,
    /// Also allowed in a `[programs.NAME]` table (SPEC 15, not built yet):
    /// those settings apply through the same `Apply` to a copy of the
    /// global config.
    pub per_program: bool,
}

const BASE: Setting = Setting {
    key: "",
    option: None,
    value: "",
    env: None,
    env_fallback: None,
    toml: true,
    kind: Kind::Command,
    default: Default::None,
    help: "",
    why: "",
    hidden: false,
    per_program: false,
};

/// A memory threshold below 1 MiB is surely a slip (`85` for `85%`):
/// every worker would be recycled at once, again and again.
fn at_least_a_mib(b: u64) -> Result<u64, String> {
    if b < 1 << 20 {
        Err(format!(
            "{b} bytes is less than 1 MiB: give a size like 300MiB (or, where it is allowed, a percentage like 85%)"
        ))
    } else {
        Ok(b)
    }
}

/// `off` (or `none`) for an optional setting, else the value.
fn off_or<T>(
    v: &str,
    parse: impl Fn(&str) -> Result<Option<T>, String>,
) -> Result<Option<T>, String> {
    match v.trim() {
        "off" | "none" => Ok(None),
        v => parse(v),
    }
}

/// Variables the init sets for its children. They are not settings, but
/// a nested init (or a worker's own tools) may see them: they draw no
/// warning about an unknown `CINIT_` variable.
pub const CHILD_ENV: &[&str] = &["CINIT_WORKER_ID", "CINIT_WORKERS", "CINIT_PROGRAM"];

/// The settings in the order `--help` and the reference list them.
pub static SETTINGS: &[Setting] = &[
    Setting {
        key: "config",
        option: Some("config"),
        value: "PATH",
        env: Some("CINIT_CONFIG"),
        toml: false,
        kind: Kind::ConfigFile,
        default: Default::Described("/etc/cinit.toml when it exists"),
        help: "TOML configuration file",
        why: "The conventional place for a container's settings; a missing default file is no error.",
        ..BASE
    },
    Setting {
        key: "dry_run",
        option: Some("dry-run"),
        env: Some("CINIT_DRY_RUN"),
        toml: false,
        kind: Kind::Switch(|c, v| {
            c.dry_run = parse_bool(v)?;
            Ok(())
        }),
        help: "Print the plan (limits, worker count, sockets, steps, shutdown) and run nothing",
        why: "`docker run -e CINIT_DRY_RUN=1 IMAGE` shows an image's plan without changing its command. Not a file key: a file that stops every start is a trap.",
        ..BASE
    },
    Setting {
        key: "json",
        option: Some("json"),
        env: Some("CINIT_JSON"),
        toml: false,
        kind: Kind::Switch(|c, v| {
            c.json = parse_bool(v)?;
            Ok(())
        }),
        help: "With --dry-run: print the plan as one JSON document; with --status, the status",
        why: "The variable goes with `CINIT_DRY_RUN=1` for the same reason.",
        ..BASE
    },
    Setting {
        key: "probe",
        option: Some("probe"),
        value: "URL|ready",
        env: None,
        toml: false,
        kind: Kind::Scalar(|c, v| {
            if v.trim() == "ready" {
                return request(c, Request::Ready);
            }
            c.probe = Some(WaitTarget::parse(v)?);
            Ok(())
        }),
        help: "Probe URL once (tcp://, http://, unix://, file://) and exit 0 if it answers, 1 if not: a HEALTHCHECK for images without curl. `ready` asks the running init: 0 while every worker slot has a ready worker and no shutdown began",
        why: "A health check names its URL on its own command line; a variable would turn every start of the image into a probe. `ready` never touches the app (docs/status.md).",
        ..BASE
    },
    Setting {
        key: "status",
        option: Some("status"),
        env: None,
        toml: false,
        kind: Kind::Switch(|c, v| switch_request(c, v, Request::Status)),
        help: "Show the running init's workers (pid, state, ready, uptime, restarts, last exit, memory, CPU, STATUS=), sockets and limits; --json for the document",
        why: "`docker exec CONTAINER /init --status` works where there is no `ps` (docs/status.md).",
        ..BASE
    },
    Setting {
        key: "reload",
        option: Some("reload"),
        env: None,
        toml: false,
        kind: Kind::Switch(|c, v| switch_request(c, v, Request::Reload)),
        help: "Ask the running init for a rolling restart, as SIGHUP does",
        why: "`kill -HUP 1`, with an answer.",
        ..BASE
    },
    Setting {
        key: "scale",
        option: Some("scale"),
        value: "N|+N|-N",
        env: None,
        toml: false,
        kind: Kind::Scalar(|c, v| request(c, Request::Scale(parse_scale(v)?))),
        help: "Ask the running init for N workers, or N more or fewer (1 to --max-workers, as SIGTTIN/SIGTTOU do)",
        why: "TTIN and TTOU move by one; this by any amount, within the same bounds.",
        ..BASE
    },
    Setting {
        key: "program",
        option: Some("program"),
        value: "NAME",
        env: None,
        toml: false,
        kind: Kind::Scalar(|c, v| {
            if !crate::vocab::valid_program_name(v) {
                return Err("a program's name: letters, digits, `-` and `_`".into());
            }
            c.program = Some(v.to_string());
            Ok(())
        }),
        help: "With --reload or --scale: the program asked about (default: --reload rolls every program, --scale acts on web or the first)",
        why: "Several programs (docs/programs.md): a new release of the queue worker alone, more web workers alone.",
        ..BASE
    },
    Setting {
        key: "stop",
        option: Some("stop"),
        env: None,
        toml: false,
        kind: Kind::Switch(|c, v| switch_request(c, v, Request::Stop)),
        help: "Ask the running init to shut down, as SIGTERM does",
        why: "`kill -TERM 1`, with an answer; again while stopping, it changes nothing (a second TERM kills everything).",
        ..BASE
    },
    Setting {
        key: "control",
        option: Some("control"),
        value: "PATH|none",
        env: Some("CINIT_CONTROL"),
        kind: Kind::Scalar(|c, v| {
            c.control = parse_control(v)?;
            Ok(())
        }),
        default: Default::Described("/run/cinit.sock; $XDG_RUNTIME_DIR/cinit.sock or /tmp/cinit.sock when /run is not writable"),
        help: "The control socket (mode 0600, root or the init's uid) of --status, --reload, --scale, --stop and --probe ready; none: no socket",
        why: "`/run` is where runtime sockets live (the init makes it in a FROM scratch image); clients look in the same places.",
        ..BASE
    },
    Setting {
        key: "metrics",
        option: Some("metrics"),
        value: "ADDR",
        env: Some("CINIT_METRICS"),
        kind: Kind::Scalar(|c, v| {
            c.metrics = match v.trim() {
                "none" | "off" => None,
                v => match ListenAddr::parse(v)? {
                    ListenAddr::Unix { .. } => {
                        return Err("metrics are served over TCP: use host:port".into())
                    }
                    tcp => Some(tcp),
                },
            };
            Ok(())
        }),
        default: Default::Value("off"),
        help: "Serve GET /metrics (Prometheus text format) on ADDR (host:port)",
        why: "Off: a port is the operator's choice, and the page shows pids to whoever reaches it (docs/status.md).",
        ..BASE
    },
    Setting {
        key: "workers",
        option: Some("workers"),
        value: "N|auto",
        env: Some("CINIT_WORKERS"),
        env_fallback: Some("WEB_CONCURRENCY"),
        kind: Kind::Scalar(|c, v| {
            c.workers = Some(parse_workers(v)?);
            Ok(())
        }),
        default: Default::Described("plain mode, one child; WEB_CONCURRENCY when set"),
        help: "Worker count, or `auto` to size it from the container's CPUs and memory",
        why: "Without it cinit is a drop-in tini. `WEB_CONCURRENCY` counts when neither `--workers` nor `CINIT_WORKERS` is set (the gunicorn/uvicorn/Heroku convention). `auto` sizes from the container's limits (docs/sizing.md).",
        per_program: true,
        ..BASE
    },
    Setting {
        key: "cpus",
        option: Some("cpus"),
        value: "CPUS",
        env: Some("CINIT_CPUS"),
        kind: Kind::Scalar(|c, v| {
            c.cpus = Some(parse_cpus(v)?);
            Ok(())
        }),
        default: Default::Described("detected"),
        help: "CPUs the container may use, when the kernel cannot show it (1.5, 500m)",
        why: "An override for a limit the container cannot see (a Kubernetes pod-level limit behind a private cgroup namespace).",
        ..BASE
    },
    Setting {
        key: "memory",
        option: Some("memory"),
        value: "SIZE",
        env: Some("CINIT_MEMORY"),
        kind: Kind::Scalar(|c, v| {
            c.memory = Some(parse_bytes(v)?);
            Ok(())
        }),
        default: Default::Described("detected"),
        help: "Memory the container may use, when the kernel cannot show it (512MiB, 1G)",
        why: "The same, for memory.",
        ..BASE
    },
    Setting {
        key: "workers_per_cpu",
        option: Some("workers-per-cpu"),
        value: "N",
        env: Some("CINIT_WORKERS_PER_CPU"),
        kind: Kind::Scalar(|c, v| {
            c.workers_per_cpu = parse_f64(v)?;
            Ok(())
        }),
        default: Default::Value("2"),
        help: "Auto sizing: workers per CPU",
        why: "gunicorn's \"(2 × cores) + 1\": a worker waits on I/O about half the time.",
        ..BASE
    },
    Setting {
        key: "extra_workers",
        option: Some("extra-workers"),
        value: "N",
        env: Some("CINIT_EXTRA_WORKERS"),
        kind: Kind::Scalar(|c, v| {
            c.extra_workers = parse_f64(v)?;
            Ok(())
        }),
        default: Default::Value("1"),
        help: "Auto sizing: workers added to the CPU bound",
        why: "The \"+ 1\" of the same rule.",
        ..BASE
    },
    Setting {
        key: "worker_memory",
        option: Some("worker-memory"),
        value: "SIZE",
        env: Some("CINIT_WORKER_MEMORY"),
        kind: Kind::Scalar(|c, v| {
            c.worker_memory = match parse_bytes(v)? {
                0 => return Err("must not be 0".into()),
                n => n,
            };
            Ok(())
        }),
        default: Default::Value("256MiB"),
        help: "Auto sizing: memory one worker needs",
        why: "Heroku's Python buildpack budget per worker (a FastAPI/uvicorn worker is about 60–120 MiB RSS; 256 MiB leaves room for the app's data).",
        ..BASE
    },
    Setting {
        key: "memory_reserve",
        option: Some("memory-reserve"),
        value: "SIZE",
        env: Some("CINIT_MEMORY_RESERVE"),
        kind: Kind::Scalar(|c, v| {
            c.memory_reserve = parse_bytes(v)?;
            Ok(())
        }),
        default: Default::Value("0"),
        help: "Auto sizing: memory kept back from the workers",
        why: "Heroku reserves nothing; raise it when the container runs other processes.",
        ..BASE
    },
    Setting {
        key: "min_workers",
        option: Some("min-workers"),
        value: "N",
        env: Some("CINIT_MIN_WORKERS"),
        kind: Kind::Scalar(|c, v| {
            c.min_workers = match parse_count(v)? {
                0 => return Err("must be at least 1".into()),
                n => n,
            };
            Ok(())
        }),
        default: Default::Value("1"),
        help: "Auto sizing: the fewest workers",
        why: "At least one worker.",
        ..BASE
    },
    Setting {
        key: "max_workers",
        option: Some("max-workers"),
        value: "N",
        env: Some("CINIT_MAX_WORKERS"),
        kind: Kind::Scalar(|c, v| {
            c.max_workers = match parse_count(v)? {
                n if n > vocab::MAX_WORKERS_LIMIT => {
                    return Err(format!(
                        "{n} is above the limit of {}",
                        vocab::MAX_WORKERS_LIMIT
                    ))
                }
                n => n,
            };
            Ok(())
        }),
        default: Default::Value("64"),
        help: "Auto sizing: the most workers",
        why: "Caps a mis-detected huge host.",
        ..BASE
    },
    Setting {
        key: "listen",
        option: Some("listen"),
        value: "ADDR",
        env: Some("CINIT_LISTEN"),
        kind: Kind::List {
            sep: ',',
            apply: |c, v| {
                let addr = ListenAddr::parse(v)?;
                // Port 0 asks the kernel for any free port: each such
                // socket gets its own.
                let any_port = matches!(addr, ListenAddr::Tcp { port: 0, .. });
                if !any_port && c.listen.contains(&addr) {
                    return Err(format!("{addr} is given twice"));
                }
                if c.listen.len() == MAX_LISTENERS {
                    return Err(format!("at most {MAX_LISTENERS} sockets are supported"));
                }
                c.listen.push(addr);
                Ok(())
            },
        },
        help: "Bind before the first fork and pass to every worker as fd 3, 4, ... (host:port, [::]:port, unix:/path); repeatable",
        why: "The command binds its own sockets unless asked.",
        per_program: true,
        ..BASE
    },
    Setting {
        key: "backlog",
        option: Some("backlog"),
        value: "N",
        env: Some("CINIT_BACKLOG"),
        kind: Kind::Scalar(|c, v| {
            c.backlog = match parse_count(v)? {
                n @ 1..=0x7fff_ffff => n,
                _ => return Err("must be between 1 and 2147483647".into()),
            };
            Ok(())
        }),
        default: Default::Value("2048"),
        help: "Listen backlog of every --listen socket",
        why: "gunicorn's and uvicorn's default; connections wait here while a worker restarts.",
        ..BASE
    },
    Setting {
        key: "socket_mode",
        option: Some("socket-mode"),
        value: "MODE",
        env: Some("CINIT_SOCKET_MODE"),
        kind: Kind::Scalar(|c, v| {
            c.socket_mode = Some(parse_mode(v)?);
            Ok(())
        }),
        default: Default::Described("what the umask leaves of 777"),
        help: "Unix --listen sockets: permission bits of the socket file, in octal (660)",
        why: "A client needs write permission on the file to connect. The file is made with no permission at all and given this mode (and owner) before anyone can connect; without it the umask decides (`srwxrwxrwx` under umask 000).",
        ..BASE
    },
    Setting {
        key: "socket_owner",
        option: Some("socket-owner"),
        value: "USER[:GROUP]",
        env: Some("CINIT_SOCKET_OWNER"),
        kind: Kind::Scalar(|c, v| {
            c.socket_owner = Some(parse_owner(v)?);
            Ok(())
        }),
        default: Default::Described("the init's own user and group"),
        help: "Unix --listen sockets: owner of the socket file, as chown takes it (USER, USER:GROUP or :GROUP; names or numbers)",
        why: "A web server in another container (nginx as www-data) connects through a shared volume when the socket's group is its own: `--socket-owner :www-data --socket-mode 660`. Giving the file to another user needs a root init.",
        ..BASE
    },
    Setting {
        key: "wait_for",
        option: Some("wait-for"),
        value: "URL",
        env: Some("CINIT_WAIT_FOR"),
        kind: Kind::Step {
            sep: Some(','),
            parse: wait_for_step,
        },
        help: "Pre-start: wait until URL answers (tcp://host:port, http://host:port/path, unix:///path, file:///path); repeatable",
        why: "Steps run in the order given (docs/prestart.md).",
        ..BASE
    },
    Setting {
        key: "wait_timeout",
        option: Some("wait-timeout"),
        value: "DURATION",
        env: Some("CINIT_WAIT_TIMEOUT"),
        kind: Kind::Scalar(|c, v| {
            c.wait_timeout = parse_duration(v)?;
            Ok(())
        }),
        default: Default::Value("60s"),
        help: "Pre-start: how long one --wait-for may wait",
        why: "A database container usually answers within seconds; a minute covers a cold start without hiding a wrong address for long.",
        ..BASE
    },
    Setting {
        key: "prestart",
        option: Some("prestart"),
        value: "CMD",
        env: Some("CINIT_PRESTART"),
        kind: Kind::Step {
            sep: Some(';'),
            parse: run_step,
        },
        help: "Pre-start: run \"CMD ARGS\" once before the workers (split like a shell would, no expansion); repeatable",
        why: "Migrations and other one-off commands, without a shell script in the image.",
        ..BASE
    },
    Setting {
        key: "prestart_dir",
        option: Some("prestart-dir"),
        value: "DIR",
        env: Some("CINIT_PRESTART_DIR"),
        kind: Kind::Step {
            sep: None,
            parse: dir_step,
        },
        help: "Pre-start: run the executables in DIR in name order",
        why: "Like the `/docker-entrypoint.d` directories of the official images.",
        ..BASE
    },
    Setting {
        key: "prestart_timeout",
        option: Some("prestart-timeout"),
        value: "DURATION",
        env: Some("CINIT_PRESTART_TIMEOUT"),
        kind: Kind::Scalar(|c, v| {
            c.prestart_timeout = parse_duration(v)?;
            Ok(())
        }),
        default: Default::Value("5m"),
        help: "Pre-start: how long one command may run",
        why: "Migrations can be slow; an unbounded step would hang the deployment silently.",
        ..BASE
    },
    Setting {
        key: "user",
        option: Some("user"),
        value: "USER[:GROUP]",
        env: Some("CINIT_USER"),
        kind: Kind::Scalar(|c, v| {
            c.user = Some(parse_user(v)?);
            Ok(())
        }),
        default: Default::Described("the init's own user"),
        help: "Run the workers and the pre-start commands as this user (names from /etc/passwd and /etc/group, or numbers); the init keeps root to bind, signal and reap",
        why: "Least privilege without gosu or su-exec in the image: /etc/passwd and /etc/group are read directly (no NSS), so it works FROM scratch. A name gives its gid, HOME and its /etc/group memberships; a group given replaces the gid and leaves no supplementary group; a uid without an entry gets gid 0, as with `docker --user`. Never root's groups. A non-root init can only name its own uid.",
        per_program: true,
        ..BASE
    },
    Setting {
        key: "prestart_user",
        option: Some("prestart-user"),
        value: "USER[:GROUP]",
        env: Some("CINIT_PRESTART_USER"),
        kind: Kind::Scalar(|c, v| {
            c.prestart_user = Some(parse_user(v)?);
            Ok(())
        }),
        default: Default::Described("--user"),
        help: "Run the pre-start commands as this user instead (0 keeps a root init's root for them)",
        why: "A migration may need what the workers must not have (a root-only secret, a chown of a volume); `--prestart-user 0` runs the steps as root while the workers run as --user.",
        ..BASE
    },
    Setting {
        key: "no_new_privs",
        option: Some("no-new-privs"),
        env: Some("CINIT_NO_NEW_PRIVS"),
        kind: Kind::Switch(|c, v| {
            c.no_new_privs = parse_bool(v)?;
            Ok(())
        }),
        help: "Start every child with PR_SET_NO_NEW_PRIVS: no setuid, setgid or file capability can raise its privileges",
        why: "Kubernetes' `allowPrivilegeEscalation: false` for the children alone, in any runtime (the init itself is unchanged). Off by default: a worker that runs `sudo` or `ping` on purpose would break.",
        per_program: true,
        ..BASE
    },
    Setting {
        key: "procfile",
        option: Some("procfile"),
        value: "PATH",
        env: Some("CINIT_PROCFILE"),
        kind: Kind::Scalar(|c, v| {
            if v.trim().is_empty() {
                return Err("the path is empty".into());
            }
            c.procfile = Some(PathBuf::from(v));
            Ok(())
        }),
        help: "Run several programs, one per `NAME: command` line of this file (Heroku's Procfile); [programs.NAME] tables of the TOML file set each one's settings",
        why: "The format many repositories have already (foreman, honcho, overmind). Each program runs one worker unless its table says otherwise; `web` gets the --listen sockets and the worker count.",
        ..BASE
    },
    Setting {
        key: "programs",
        env: None,
        kind: Kind::Programs,
        help: "Several programs: [programs.NAME] tables, each with a command and its own settings (workers, listen, ready, restart, stop_signal, graceful_timeout, user, the memory guard), after = [\"NAME\", ...], critical = false, memory = \"SIZE\"",
        why: "A table per program keeps each one's settings next to its command; what a table leaves out comes from the global settings (docs/programs.md).",
        ..BASE
    },
    Setting {
        key: "steps",
        env: None,
        kind: Kind::StepList,
        help: "Pre-start steps in order, each with its own timeout: [{ wait_for = \"tcp://db:5432\", timeout = \"30s\" }, { run = \"alembic upgrade head\" }, { dir = \"/docker-entrypoint.d\" }]",
        why: "Only a file can say the order of mixed steps and give each its own timeout; on the command line the order of the options is kept.",
        ..BASE
    },
    Setting {
        key: "restart",
        option: Some("restart"),
        value: "POLICY",
        env: Some("CINIT_RESTART"),
        kind: Kind::Scalar(|c, v| {
            c.restart = Some(parse_restart(v)?);
            Ok(())
        }),
        default: Default::Described("always with workers, never in plain mode"),
        help: "When an exited worker is started again: always, on-failure, never",
        why: "A web worker that exits should come back; a plain child's exit is the container's exit.",
        per_program: true,
        ..BASE
    },
    Setting {
        key: "min_uptime",
        option: Some("min-uptime"),
        value: "DURATION",
        env: Some("CINIT_MIN_UPTIME"),
        kind: Kind::Scalar(|c, v| {
            c.min_uptime = parse_duration(v)?;
            Ok(())
        }),
        default: Default::Value("2s"),
        help: "A worker that exits sooner than this after its start failed to start; one that stays up this long resets the backoff",
        why: "An import error or a port clash kills a worker within a second or two. pm2 uses 1 s, supervisord `startsecs=1`; 2 s allows for a slow Python import.",
        per_program: true,
        ..BASE
    },
    Setting {
        key: "backoff_max",
        option: Some("backoff-max"),
        value: "DURATION",
        env: Some("CINIT_BACKOFF_MAX"),
        kind: Kind::Scalar(|c, v| {
            c.backoff_max = parse_duration(v)?;
            Ok(())
        }),
        default: Default::Value("10s"),
        help: "Longest wait before a restart; the backoff doubles from 100ms up to it",
        why: "Restarts wait 100 ms, 200 ms, 400 ms, ... up to this, so a broken worker does not spin.",
        per_program: true,
        ..BASE
    },
    Setting {
        key: "crash_loop",
        option: Some("crash-loop"),
        value: "N",
        env: Some("CINIT_CRASH_LOOP"),
        kind: Kind::Scalar(|c, v| {
            c.crash_loop = match parse_count(v)? {
                0 => return Err("must be at least 1".into()),
                n => n,
            };
            Ok(())
        }),
        default: Default::Value("5"),
        help: "Quick failures in a row of one slot that make a crash loop: everything stops, exit 1",
        why: "uvicorn and supervisord keep running or exit 0 there; an orchestrator needs a non-zero exit to show CrashLoopBackOff.",
        per_program: true,
        ..BASE
    },
    Setting {
        key: "ready",
        option: Some("ready"),
        value: "MODE",
        env: Some("CINIT_READY"),
        kind: Kind::Scalar(|c, v| {
            c.ready = parse_ready(v)?;
            Ok(())
        }),
        default: Default::Value("auto"),
        help: "When a new worker counts as ready (a roll waits for it): auto, listen (it waits on a --listen socket), notify (it sends READY=1), delay (up for --min-uptime)",
        why: "`auto` is `listen` with `--listen` sockets (no change to the app: uvicorn takes the socket only once its startup ran), else `delay`. A `READY=1` also counts in `delay` mode, not in `listen` mode (gunicorn's master sends it before its workers boot).",
        per_program: true,
        ..BASE
    },
    Setting {
        key: "ready_timeout",
        option: Some("ready-timeout"),
        value: "DURATION",
        env: Some("CINIT_READY_TIMEOUT"),
        kind: Kind::Scalar(|c, v| {
            c.ready_timeout = parse_duration(v)?;
            Ok(())
        }),
        default: Default::Value("60s"),
        help: "A worker not ready this long after its start failed to start: it is stopped, and a roll keeps the old worker",
        why: "A minute covers a slow model load or lifespan hook without hiding, for long, a worker that never serves (systemd's start timeout is 90 s; pm2 waits only 3 s, then kills the old worker anyway).",
        per_program: true,
        ..BASE
    },
    Setting {
        key: "watchdog",
        option: Some("watchdog"),
        value: "DURATION",
        env: Some("CINIT_WATCHDOG"),
        kind: Kind::Scalar(|c, v| {
            c.watchdog = match v.trim() {
                "off" | "none" => None,
                v => Some(parse_duration(v)?).filter(|d| !d.is_zero()),
            };
            Ok(())
        }),
        default: Default::Value("off"),
        help: "A ready worker that sends no WATCHDOG=1 (sd_notify) for this long is hung: replaced, then stopped",
        why: "Off: only an app that pings (`WATCHDOG_USEC` tells it how often) can use it. It is separate from the ready timeout, so a slow start is never taken for a hang (uvicorn's own health check killed slow-starting workers).",
        per_program: true,
        ..BASE
    },
    Setting {
        key: "stop_signal",
        option: Some("stop-signal"),
        value: "SIGNAL",
        env: Some("CINIT_STOP_SIGNAL"),
        kind: Kind::Scalar(|c, v| {
            let s = parse_signal(v)?;
            if s == vocab::Signal::STOP || s == vocab::Signal::CONT {
                return Err(format!(
                    "{s} cannot stop a process (use TERM, INT, QUIT or the signal the program drains on)"
                ));
            }
            c.stop_signal = Some(s);
            Ok(())
        }),
        default: Default::Described("TERM for workers; in plain mode the signal received"),
        help: "Signal that asks a child to stop",
        why: "uvicorn and gunicorn drain on TERM. In plain mode `docker kill -s INT` reaches the child as INT, as under tini.",
        per_program: true,
        ..BASE
    },
    Setting {
        key: "graceful_timeout",
        option: Some("graceful-timeout"),
        value: "DURATION",
        env: Some("CINIT_GRACEFUL_TIMEOUT"),
        kind: Kind::Scalar(|c, v| {
            c.graceful_timeout = parse_duration(v)?;
            Ok(())
        }),
        default: Default::Value("8s"),
        help: "How long children may take to stop before SIGKILL",
        why: "Inside `docker stop`'s 10 s, so cinit's own SIGKILL (and the stop of leftover processes) happens before Docker's. Raise it together with Kubernetes' `terminationGracePeriodSeconds` (30 s there).",
        per_program: true,
        ..BASE
    },
    Setting {
        key: "max_worker_memory",
        option: Some("max-worker-memory"),
        value: "SIZE",
        env: Some("CINIT_MAX_WORKER_MEMORY"),
        kind: Kind::Scalar(|c, v| {
            c.max_worker_memory = off_or(v, |v| parse_bytes(v).and_then(at_least_a_mib).map(Some))?;
            Ok(())
        }),
        default: Default::Value("off"),
        help: "Memory guard: replace a worker (new one ready first) whose memory passes SIZE (PSS of its process tree)",
        why: "Off: the right figure depends on the app. A Python worker that grows (caches, fragmentation, a leak) is recycled before the container's limit makes the kernel kill it; see docs/memory.md for how to choose it.",
        per_program: true,
        ..BASE
    },
    Setting {
        key: "max_worker_age",
        option: Some("max-worker-age"),
        value: "DURATION",
        env: Some("CINIT_MAX_WORKER_AGE"),
        kind: Kind::Scalar(|c, v| {
            c.max_worker_age =
                off_or(v, |v| parse_duration(v).map(|d| (!d.is_zero()).then_some(d)))?;
            Ok(())
        }),
        default: Default::Value("off"),
        help: "Replace each worker (new one ready first) once it is this old, one at a time",
        why: "Off. The init cannot count requests (workers accept on their own), so age is its `--max-requests`: the same cure for slow leaks, but never two workers at once.",
        per_program: true,
        ..BASE
    },
    Setting {
        key: "max_worker_age_jitter",
        option: Some("max-worker-age-jitter"),
        value: "PERCENT",
        env: Some("CINIT_MAX_WORKER_AGE_JITTER"),
        kind: Kind::Scalar(|c, v| {
            c.max_worker_age_jitter = parse_percent(v)?;
            Ok(())
        }),
        default: Default::Value("10%"),
        help: "Up to this much is added to --max-worker-age, per worker, so workers started together are not all due together",
        why: "gunicorn's `--max-requests-jitter` idea; 10% spreads workers started at once over a tenth of their life.",
        per_program: true,
        ..BASE
    },
    Setting {
        key: "memory_high",
        option: Some("memory-high"),
        value: "SIZE|PERCENT",
        env: Some("CINIT_MEMORY_HIGH"),
        kind: Kind::Scalar(|c, v| {
            c.memory_high = off_or(v, |v| {
                match parse_amount(v)? {
                    vocab::Amount::Bytes(b) => at_least_a_mib(b).map(vocab::Amount::Bytes),
                    a => Ok(a),
                }
                .map(Some)
            })?;
            Ok(())
        }),
        default: Default::Value("off"),
        help: "Memory guard: when the container's working set passes this (a size, or a share of its memory limit), replace the largest worker",
        why: "Off. Leave room below the limit for a new worker to start while the old one still holds its memory (docs/memory.md: 80–90% only when workers are small next to the limit); the working set (usage minus inactive file pages) is what the kubelet counts.",
        ..BASE
    },
    Setting {
        key: "memory_interval",
        option: Some("memory-interval"),
        value: "DURATION",
        env: Some("CINIT_MEMORY_INTERVAL"),
        kind: Kind::Scalar(|c, v| {
            c.memory_interval = match parse_duration(v)? {
                d if d.is_zero() => return Err("must be more than 0s".into()),
                d => d,
            };
            Ok(())
        }),
        default: Default::Value("5s"),
        help: "How often the memory guard samples, only when --max-worker-memory or --memory-high is set",
        why: "Reading PSS costs a walk of each worker's mappings; every 5 s is quick enough for a leak that takes minutes (pm2 samples every 30 s, uWSGI's master every 3 s), and without a guard there is no sampling at all.",
        ..BASE
    },
    Setting {
        key: "shutdown_delay",
        option: Some("shutdown-delay"),
        value: "DURATION",
        env: Some("CINIT_SHUTDOWN_DELAY"),
        kind: Kind::Scalar(|c, v| {
            c.shutdown_delay = parse_duration(v)?;
            Ok(())
        }),
        default: Default::Value("0s"),
        help: "On SIGTERM keep serving this long before stopping workers, for load balancers to notice",
        why: "Kubernetes removes a terminating pod from its Service endpoints asynchronously; 5–10 s here keeps serving meanwhile (the `preStop: sleep` trick, built in). Keep `shutdown_delay + graceful_timeout` below the grace period.",
        ..BASE
    },
    Setting {
        key: "signal_map",
        option: Some("signal-map"),
        value: "FROM:TO",
        env: Some("CINIT_SIGNAL_MAP"),
        kind: Kind::List {
            sep: ',',
            apply: |c, v| {
                let rule = parse_signal_rule(v)?;
                if c.signal_map.iter().any(|r| r.from == rule.from) {
                    return Err(format!("{} has two rules", rule.from));
                }
                c.signal_map.push(rule);
                Ok(())
            },
        },
        help: "Rewrite a signal the init receives, FROM:TO (TO 0: ignore it); repeatable",
        why: "dumb-init's `--rewrite`, e.g. `HUP:0` when package scripts send SIGHUP to PID 1. A rule takes HUP/TTIN/TTOU away from their worker-mode meaning; TERM/INT/QUIT:0 means the init ignores that signal.",
        ..BASE
    },
    Setting {
        key: "log_format",
        option: Some("log-format"),
        value: "FORMAT",
        env: Some("CINIT_LOG_FORMAT"),
        kind: Kind::Scalar(|c, v| {
            c.log_format = parse_log_format(v)?;
            Ok(())
        }),
        default: Default::Value("text"),
        help: "Supervision log lines on stderr: text or json",
        why: "`json` gives one JSON object per supervision event (`ts`, `level`, `event`, fields, `msg`).",
        ..BASE
    },
    Setting {
        key: "log_prefix",
        option: Some("log-prefix"),
        value: "on|off|auto",
        env: Some("CINIT_LOG_PREFIX"),
        kind: Kind::Scalar(|c, v| {
            c.log_prefix = match v.trim().to_ascii_lowercase().as_str() {
                "auto" => None,
                "on" | "true" | "1" | "yes" => Some(true),
                "off" | "false" | "0" | "no" => Some(false),
                _ => return Err(format!("`{v}` is not on, off or auto")),
            };
            Ok(())
        }),
        default: Default::Value("auto"),
        help: "Prefix each line the children print with `NAME.SLOT | ` (the init copies their output, whole lines only); auto: on with several programs (a Procfile or [programs] tables)",
        why: "foreman and honcho prefix lines with the process name, and several programs in one container want it; off, the children write to the container's stdout and stderr themselves, with no copy.",
        ..BASE
    },
    Setting {
        key: "root",
        option: Some("root"),
        value: "DIR",
        env: Some("CINIT_ROOT"),
        toml: false,
        kind: Kind::Scalar(|c, v| {
            if v.is_empty() {
                return Err("the directory is empty".into());
            }
            c.root = PathBuf::from(v);
            Ok(())
        }),
        default: Default::Value("/"),
        help: "Root of the /proc and /sys/fs/cgroup trees to read limits from (for tests and diagnosis)",
        why: "Reads `/proc` and `/sys/fs/cgroup` below DIR instead of `/`: the tests use it with fixture trees, and it helps diagnose a captured layout.",
        hidden: true,
        ..BASE
    },
    Setting {
        key: "command",
        value: "COMMAND",
        env: None,
        kind: Kind::Command,
        help: "The program to run and its arguments; every word from the first one that is not an option belongs to it",
        why: "In the file, `command = [\"uvicorn\", \"app.main:app\", \"--fd\", \"3\"]` or a string split like a shell would (no expansion). The command line wins.",
        per_program: true,
        ..BASE
    },
];

/// Records a client request; two of them cannot be combined.
fn request(c: &mut Config, r: Request) -> Result<(), String> {
    match c.request {
        Some(other) if other != r => Err(format!("cannot be combined with {}", other.option())),
        _ => {
            c.request = Some(r);
            Ok(())
        }
    }
}

fn switch_request(c: &mut Config, v: &str, r: Request) -> Result<(), String> {
    if parse_bool(v)? {
        request(c, r)?;
    }
    Ok(())
}

/// `--wait-for URL`, `{ wait_for = "URL" }`.
pub fn wait_for_step(c: &Config, v: &str) -> Result<Step, String> {
    Ok(Step::WaitFor {
        target: WaitTarget::parse(v)?,
        timeout: c.wait_timeout,
    })
}

/// `--prestart "CMD ARGS"`, `{ run = "CMD ARGS" }`.
pub fn run_step(c: &Config, v: &str) -> Result<Step, String> {
    Ok(Step::Run {
        argv: split_command(v)?,
        timeout: c.prestart_timeout,
    })
}

/// `--prestart-dir DIR`, `{ dir = "DIR" }`.
pub fn dir_step(c: &Config, v: &str) -> Result<Step, String> {
    if v.trim().is_empty() {
        return Err("the directory is empty".into());
    }
    Ok(Step::Dir {
        path: PathBuf::from(v),
        timeout: c.prestart_timeout,
    })
}

impl Setting {
    /// The help line with the default and the variable, as `--help` shows
    /// it.
    pub fn help_line(&self) -> String {
        let mut h = self.help.to_string();
        if let (Some(sep), Some(_)) = (self.separator(), self.env) {
            let _ = write!(h, ", `{sep}`-separated in the variable");
        }
        match self.default {
            Default::Value(v) | Default::Described(v) => {
                let _ = write!(h, " [default: {v}]");
            }
            Default::None => {}
        }
        if let Some(env) = self.env {
            let _ = write!(h, " [env: {env}]");
        }
        h
    }

    /// What splits the environment variable into several values.
    pub fn separator(&self) -> Option<char> {
        match self.kind {
            Kind::List { sep, .. } => Some(sep),
            Kind::Step { sep, .. } => sep,
            _ => None,
        }
    }
}

/// The environment variables of the settings.
pub fn env_names() -> impl Iterator<Item = &'static str> {
    SETTINGS.iter().filter_map(|s| s.env)
}

/// The keys the TOML file may hold.
pub fn toml_keys() -> impl Iterator<Item = &'static str> {
    SETTINGS.iter().filter(|s| s.toml).map(|s| s.key)
}

/// `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The text under the options in `--help`: which settings have no
/// variable or no key (from the table), the precedence, the exit codes.
pub fn after_help() -> String {
    let shown = || SETTINGS.iter().filter(|s| !s.hidden);
    let options = |keep: fn(&Setting) -> bool| -> Vec<String> {
        shown()
            .filter(|s| keep(s))
            .filter_map(|s| s.option)
            .map(|o| format!("--{o}"))
            .collect()
    };
    let no_toml = options(|s| !s.toml);
    let no_env = options(|s| s.env.is_none());
    let file_only: Vec<String> = SETTINGS
        .iter()
        .filter(|s| s.toml && s.option.is_none() && s.env.is_none())
        .map(|s| format!("`{}`", s.key))
        .collect();
    format!(
        "Every option except {} is also a key of the TOML file, named with underscores \
         (graceful_timeout = \"10s\"); the file also takes {}. {} no environment variable. \
         Precedence: command line > environment > file > default; an empty variable counts as \
         unset. Exit codes: plain mode the child's own (128+N if killed by signal N); worker \
         mode 0 after a clean shutdown; 126 not executable; 127 not found; 2 usage or \
         configuration error; a failed pre-start step its own code, or 1; 1 any other failure \
         of the init (a crash loop). As a client of a running init (--status, --reload, \
         --scale, --stop, --probe): 0 done (or ready), 1 refused or not ready, 3 no init \
         answers.",
        and_list(&no_toml),
        and_list(&file_only),
        match no_env.len() {
            1 => format!("{} has", no_env[0]),
            _ => format!("{} have", and_list(&no_env)),
        }
    )
}

/// The reference section of docs/configuration.md: every setting with
/// its option, variable, TOML key, default, help and reason.
pub fn reference() -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "| option | environment variable | TOML key | default | what it does, and why this default |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|");
    let cell = |t: &str| t.replace('|', "\\|");
    for s in SETTINGS {
        let option = match (s.option, &s.kind) {
            (Some(o), Kind::Switch(_)) => format!("`--{o}`"),
            (Some(o), _) => format!("`--{o} {}`", s.value),
            (None, Kind::Command) => format!("`{}...` (after the options)", s.value),
            (None, _) => "none".into(),
        };
        let env = match (s.env, s.env_fallback) {
            (Some(e), Some(f)) => format!("`{e}`, then `{f}`"),
            (Some(e), None) => format!("`{e}`"),
            (None, _) => "none".into(),
        };
        let key = if s.toml {
            format!("`{}`", s.key)
        } else {
            "none".into()
        };
        let default = match s.default {
            Default::None if matches!(s.kind, Kind::Switch(_)) => "off".into(),
            Default::None => "none".into(),
            Default::Value(v) => format!("`{v}`"),
            Default::Described(d) => d.to_string(),
        };
        let mut what = s.help.to_string();
        if let Some(sep) = s.separator() {
            let _ = write!(what, ", `{sep}`-separated in the variable");
        }
        if s.hidden {
            what.push_str(" (hidden from `--help`)");
        }
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {}. {} |",
            cell(&option),
            env,
            key,
            cell(&default),
            cell(what.trim_end_matches('.')),
            cell(s.why)
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names follow one rule: `--a-b`, `CINIT_A_B`, `a_b`.
    #[test]
    fn names_follow_the_key() {
        for s in SETTINGS {
            if let Some(o) = s.option {
                assert_eq!(o.replace('-', "_"), s.key, "{}", s.key);
            }
            if let Some(e) = s.env {
                assert_eq!(e, format!("CINIT_{}", s.key.to_ascii_uppercase()));
            }
            assert!(!s.help.is_empty() && !s.why.is_empty(), "{}", s.key);
            let takes_value = !matches!(s.kind, Kind::Switch(_) | Kind::StepList | Kind::Programs);
            assert_eq!(takes_value, !s.value.is_empty(), "{}", s.key);
        }
        let mut keys: Vec<_> = SETTINGS.iter().map(|s| s.key).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), SETTINGS.len(), "a key is declared twice");
    }

    /// Every default the table shows parses with the setting's own parser.
    #[test]
    fn every_default_parses() {
        for s in SETTINGS {
            if let Default::Value(v) = s.default {
                let mut c = Config::default();
                let result = match s.kind {
                    Kind::Scalar(apply) | Kind::Switch(apply) => apply(&mut c, v),
                    _ => panic!("{}: only scalars have a parsed default", s.key),
                };
                assert_eq!(result, Ok(()), "{}", s.key);
            }
        }
    }

    #[test]
    fn after_help_names_what_has_no_variable_or_key() {
        let t = after_help();
        assert!(
            t.starts_with(
                "Every option except --config, --dry-run, --json, --probe, --status, --reload, \
                 --scale, --program and --stop is also a key"
            ),
            "{t}"
        );
        assert!(
            t.contains("the file also takes `programs`, `steps` and `command`."),
            "{t}"
        );
        assert!(
            t.contains(
                "--probe, --status, --reload, --scale, --program and --stop have no environment variable"
            ),
            "{t}"
        );
    }
}
