//! cinit: a container-aware process manager that runs as PID 1.
//!
//! Data flows one way, and each step has its own module (the map and the
//! rules are in docs/architecture.md, checked by tests/e2e/architecture.rs):
//!
//! * `vocab` holds the words every module shares (signals, durations,
//!   sizes, addresses, policies) and imports nothing from the crate;
//! * `config` declares every setting once (`config::options`), reads the
//!   words (`config::cli`) and merges them with the environment and the
//!   TOML file into typed settings (nothing runs before all are valid);
//! * `resources` reads what the kernel grants (cgroup v1/v2, affinity) and
//!   `sizing` turns it into a worker count;
//! * `plan` is the one value that `--dry-run` prints and the real run
//!   executes, so the two cannot disagree;
//! * `supervisor` runs it: a sans-IO state machine decides, a thin shell
//!   on a current-thread event loop performs, fed by `signals` (signalfd)
//!   and `reaper` (the only caller of `waitpid`);
//! * `process` forks and execs (`process::sys` is the one unsafe module),
//!   `listeners` binds the shared sockets, `log` writes without blocking;
//! * `control` serves the control socket and the metrics page from the
//!   supervisor's loop, and is the client of `init --status` and friends;
//!   `status` is the document they show, `procfs` reads memory and CPU.
//!
//! `run` maps every error to the exit codes of the README's table in one
//! place (`error`).

pub mod config;
pub mod control;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod listeners;
pub mod log;
pub mod memory;
pub mod notify;
pub mod output;
pub mod plan;
pub mod prestart;
pub mod process;
pub mod procfs;
pub mod readiness;
pub mod reaper;
pub mod resources;
pub mod signals;
pub mod sizing;
pub mod status;
pub mod supervisor;
pub mod users;
pub mod vocab;

use std::ffi::OsString;

pub use error::{exit_code, Error};

/// Runs the init with these arguments and returns the process exit code.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let code = match try_run(args) {
        Ok(code) => code,
        Err(e) => {
            e.report();
            exit_code(&e)
        }
    };
    // Lines still queued for a slow stderr reader get a last, bounded
    // chance; the exit never waits on the reader for long.
    log::flush_before_exit(std::time::Duration::from_millis(250));
    code
}

fn try_run<I, T>(args: I) -> Result<i32, Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args = config::parse_args(args).map_err(Error::Usage)?;
    let config = config::resolve(&args, &config::ProcessEnv::read())?;
    log::init(config.log_format);
    for w in &config.warnings {
        log::warn(&format!("warning: {w}"));
    }
    if let Some(target) = &config.probe {
        return supervisor::probe(target);
    }
    if let Some(request) = config.request {
        return Ok(control::client::run(
            request,
            config.program.clone(),
            config.json,
            &config.control,
        ));
    }
    let plan = plan::Plan::build(&config);
    if config.dry_run {
        let out = if config.json {
            plan.to_json()
        } else {
            plan.to_text()
        };
        return print_plan(&out);
    }
    // What the dry run shows as warnings, a real run says too; those of
    // the configuration, which the plan repeats, were said above.
    for w in plan
        .warnings
        .iter()
        .filter(|w| !config.warnings.contains(w))
    {
        log::warn(&format!("warning: {w}"));
    }
    log::set_quiet(plan.mode == plan::Mode::Plain);
    supervisor::run(plan)
}

/// Writes the dry run's plan to stdout. A reader that went away
/// (`init --dry-run | head -1`) took what it wanted: exit 0. Any other
/// failure (a full disk, `> /dev/full`) means the plan was lost: exit 1
/// with a message.
fn print_plan(text: &str) -> Result<i32, Error> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(Error::io("write the plan to stdout", e)),
    }
}
