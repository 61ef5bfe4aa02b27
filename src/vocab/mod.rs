//! The words every module shares, and nothing else: signals, durations and
//! sizes, listen addresses, wait-for targets, the worker count, the
//! restart policy, the log format, who a child runs as, the control
//! socket and scaling. Each comes with its parser and its printed form.
//!
//! This module imports nothing from the crate: configuration parses into
//! these types, and every other module (the OS edges included) uses them
//! without depending on configuration. When two modules seem to need each
//! other, a word belongs here.

mod addr;
mod control;
mod signal;
mod target;
mod units;
mod user;
mod words;

pub use addr::{ListenAddr, MAX_LISTENERS, MAX_UNIX_PATH};
pub use control::{parse_control, parse_scale, ControlSocket, Peer, Request, Scale, CONTROL_FILE};
pub use signal::{parse_signal, parse_signal_rule, Signal, SignalRule};
pub use target::{url_host, Target as WaitTarget};
pub use units::{
    format_bytes, format_duration, format_number, format_uptime, parse_amount, parse_bool,
    parse_bytes, parse_count, parse_cpus, parse_duration, parse_f64, parse_percent, serialize_secs,
    Amount, MAX_DURATION,
};
pub use user::{
    format_mode, parse_mode, parse_owner, parse_user, Account, Identity, SocketPerms, UserSpec,
    MAX_ID,
};
pub use words::{
    parse_log_format, parse_ready, parse_restart, parse_workers, shell_join, valid_program_name,
    LogFormat, ReadyMode, RestartPolicy, Workers, MAX_WORKERS_LIMIT,
};
