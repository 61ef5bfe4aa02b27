//! Command-line syntax only: every option as the user typed it.
//!
//! Values stay strings here; `config` parses them, so a bad value gets the
//! same message whether it came from the command line, the environment or
//! the TOML file. clap reads the `CINIT_*` variables too, which puts each
//! variable into `--help`; `config` asks clap which of the two a value came
//! from.

use std::ffi::OsString;

use clap::Parser;

/// What `init --help` shows above the options.
const ABOUT: &str = "A container-aware process manager for PID 1: reaps zombies, forwards \
signals, runs pre-start steps, sizes and supervises workers on a shared socket.";

const AFTER: &str = "Every option also has a key in the TOML file (the option's name with \
underscores: graceful_timeout = \"10s\"). Precedence: command line > environment > file > \
default. Exit codes: the child's own in plain mode (128+N if killed by signal N), 0 after a \
clean shutdown in worker mode, 126 not executable, 127 not found, 2 usage or configuration \
error, 1 any other failure (pre-start step failed, crash loop).";

#[derive(Parser, Debug, Default)]
#[command(
    name = "init",
    version,
    about = ABOUT,
    after_help = AFTER,
    max_term_width = 100,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// TOML configuration file [default: /etc/cinit.toml when it exists]
    #[arg(long, env = "CINIT_CONFIG", value_name = "PATH")]
    pub config: Option<String>,

    /// Print the plan (limits, worker count, sockets, steps, shutdown) and run nothing
    #[arg(long, env = "CINIT_DRY_RUN", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub dry_run: Option<String>,

    /// With --dry-run: print the plan as one JSON document
    #[arg(long)]
    pub json: bool,

    /// Probe URL once (tcp://, http://, unix://, file://) and exit 0 if it answers, 1 if not: a HEALTHCHECK for images without curl
    #[arg(long, value_name = "URL")]
    pub probe: Option<String>,

    /// Worker count, or `auto` to size it from the container's CPUs and memory [default: plain mode, one child; falls back to WEB_CONCURRENCY]
    #[arg(long, env = "CINIT_WORKERS", value_name = "N|auto")]
    pub workers: Option<String>,

    /// CPUs the container may use, when the kernel cannot show it (1.5, 500m) [default: detected]
    #[arg(long, env = "CINIT_CPUS", value_name = "CPUS")]
    pub cpus: Option<String>,

    /// Memory the container may use, when the kernel cannot show it (512MiB, 1G) [default: detected]
    #[arg(long, env = "CINIT_MEMORY", value_name = "SIZE")]
    pub memory: Option<String>,

    /// Auto sizing: workers per CPU [default: 2]
    #[arg(long, env = "CINIT_WORKERS_PER_CPU", value_name = "N")]
    pub workers_per_cpu: Option<String>,

    /// Auto sizing: workers added to the CPU bound [default: 1]
    #[arg(long, env = "CINIT_EXTRA_WORKERS", value_name = "N")]
    pub extra_workers: Option<String>,

    /// Auto sizing: memory one worker needs [default: 256MiB]
    #[arg(long, env = "CINIT_WORKER_MEMORY", value_name = "SIZE")]
    pub worker_memory: Option<String>,

    /// Auto sizing: memory kept back from the workers [default: 0]
    #[arg(long, env = "CINIT_MEMORY_RESERVE", value_name = "SIZE")]
    pub memory_reserve: Option<String>,

    /// Auto sizing: the fewest workers [default: 1]
    #[arg(long, env = "CINIT_MIN_WORKERS", value_name = "N")]
    pub min_workers: Option<String>,

    /// Auto sizing: the most workers [default: 64]
    #[arg(long, env = "CINIT_MAX_WORKERS", value_name = "N")]
    pub max_workers: Option<String>,

    /// Bind before the first fork and pass to every worker as fd 3, 4, ... (host:port, [::]:port, unix:/path); repeatable, comma-separated in the environment
    #[arg(long, env = "CINIT_LISTEN", value_name = "ADDR")]
    pub listen: Vec<String>,

    /// Listen backlog of every --listen socket [default: 2048]
    #[arg(long, env = "CINIT_BACKLOG", value_name = "N")]
    pub backlog: Option<String>,

    /// Pre-start: wait until URL answers (tcp://host:port, http://host:port/path, unix:///path, file:///path); repeatable, comma-separated in the environment
    #[arg(long, env = "CINIT_WAIT_FOR", value_name = "URL")]
    pub wait_for: Vec<String>,

    /// Pre-start: how long one --wait-for may wait [default: 60s]
    #[arg(long, env = "CINIT_WAIT_TIMEOUT", value_name = "DURATION")]
    pub wait_timeout: Option<String>,

    /// Pre-start: run "CMD ARGS" once before the workers; repeatable, `;`-separated in the environment
    #[arg(long, env = "CINIT_PRESTART", value_name = "CMD")]
    pub prestart: Vec<String>,

    /// Pre-start: run the executables in DIR in name order
    #[arg(long, env = "CINIT_PRESTART_DIR", value_name = "DIR")]
    pub prestart_dir: Option<String>,

    /// Pre-start: how long one command may run [default: 5m]
    #[arg(long, env = "CINIT_PRESTART_TIMEOUT", value_name = "DURATION")]
    pub prestart_timeout: Option<String>,

    /// When an exited worker is started again: always, on-failure, never [default: always with workers, never in plain mode]
    #[arg(long, env = "CINIT_RESTART", value_name = "POLICY")]
    pub restart: Option<String>,

    /// A worker that exits sooner than this after its start failed to start; one that stays up this long resets the backoff [default: 2s]
    #[arg(long, env = "CINIT_MIN_UPTIME", value_name = "DURATION")]
    pub min_uptime: Option<String>,

    /// Longest wait before a restart; the backoff doubles from 100ms up to it [default: 10s]
    #[arg(long, env = "CINIT_BACKOFF_MAX", value_name = "DURATION")]
    pub backoff_max: Option<String>,

    /// Quick failures in a row of one slot that make a crash loop: everything stops, exit 1 [default: 5]
    #[arg(long, env = "CINIT_CRASH_LOOP", value_name = "N")]
    pub crash_loop: Option<String>,

    /// Signal that asks a child to stop [default: TERM for workers; in plain mode the signal received]
    #[arg(long, env = "CINIT_STOP_SIGNAL", value_name = "SIGNAL")]
    pub stop_signal: Option<String>,

    /// How long children may take to stop before SIGKILL [default: 8s, inside docker stop's 10s]
    #[arg(long, env = "CINIT_GRACEFUL_TIMEOUT", value_name = "DURATION")]
    pub graceful_timeout: Option<String>,

    /// On SIGTERM keep serving this long before stopping workers, for load balancers to notice [default: 0s]
    #[arg(long, env = "CINIT_SHUTDOWN_DELAY", value_name = "DURATION")]
    pub shutdown_delay: Option<String>,

    /// Rewrite a forwarded signal, FROM:TO (TO 0 drops it); repeatable, comma-separated in the environment
    #[arg(long, env = "CINIT_SIGNAL_MAP", value_name = "FROM:TO")]
    pub signal_map: Vec<String>,

    /// Supervision log lines on stderr: text or json [default: text]
    #[arg(long, env = "CINIT_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// Root of the /proc and /sys/fs/cgroup trees to read limits from (for tests and diagnosis) [default: /]
    #[arg(long, env = "CINIT_ROOT", value_name = "DIR", hide = true)]
    pub root: Option<String>,

    /// The program to run and its arguments; every word from the first one that is not an option belongs to it
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<OsString>,
}

impl Cli {
    /// Parses the arguments; `Err` carries clap's rendered message and the
    /// code it wants (0 for --help/--version, 2 for usage errors).
    pub fn parse_from_args<I, T>(args: I) -> Result<(Cli, clap::ArgMatches), clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let mut cmd = Cli::command();
        let matches = cmd.try_get_matches_from_mut(args.iter().cloned())?;
        let cli = Cli::from_arg_matches(&matches)?;
        // clap takes an unknown `--flag` as the first word of COMMAND; a
        // command that starts with `-` must come after `--`.
        if let (Some(first), Some(i)) = (cli.command.first(), matches.index_of("command")) {
            let explicit = i > 0 && args.get(i - 1).is_some_and(|a| a == "--");
            if first.to_string_lossy().starts_with('-') && !explicit {
                return Err(cmd.error(
                    clap::error::ErrorKind::UnknownArgument,
                    format!(
                        "unknown option `{}` (a command that starts with - goes after --)",
                        first.to_string_lossy()
                    ),
                ));
            }
        }
        Ok((cli, matches))
    }
}
