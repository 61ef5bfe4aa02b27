//! Signals as cinit names them: every number from 1 to SIGRTMAX has a
//! value, the realtime ones included (nix's enum cannot name them, which
//! once lost a child's exit status). Parsed from `TERM`, `SIGTERM`, `15`,
//! `RTMIN+3`; printed as `SIGTERM`, `SIGRTMIN+3`.

use std::fmt;

use nix::sys::signal::Signal as NixSignal;
use serde::Serialize;

/// A signal number that is valid on this system (1..=SIGRTMAX).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(i32);

impl Signal {
    pub const HUP: Signal = Signal(libc::SIGHUP);
    pub const INT: Signal = Signal(libc::SIGINT);
    pub const QUIT: Signal = Signal(libc::SIGQUIT);
    pub const KILL: Signal = Signal(libc::SIGKILL);
    pub const TERM: Signal = Signal(libc::SIGTERM);
    pub const CONT: Signal = Signal(libc::SIGCONT);
    pub const CHLD: Signal = Signal(libc::SIGCHLD);
    pub const TSTP: Signal = Signal(libc::SIGTSTP);
    pub const TTIN: Signal = Signal(libc::SIGTTIN);
    pub const TTOU: Signal = Signal(libc::SIGTTOU);
    pub const STOP: Signal = Signal(libc::SIGSTOP);

    /// Wraps a raw number; `None` when it is not a signal of this system.
    pub fn from_raw(n: i32) -> Option<Signal> {
        (1..=libc::SIGRTMAX()).contains(&n).then_some(Signal(n))
    }

    pub fn raw(self) -> i32 {
        self.0
    }

    /// The name without the `SIG` prefix: `TERM`, `RTMIN+3`.
    pub fn name(self) -> String {
        if let Ok(s) = NixSignal::try_from(self.0) {
            return s.as_str().trim_start_matches("SIG").to_string();
        }
        let min = libc::SIGRTMIN();
        let max = libc::SIGRTMAX();
        match self.0 {
            n if n == min => "RTMIN".into(),
            n if n == max => "RTMAX".into(),
            n if n > min && n < max => format!("RTMIN+{}", n - min),
            n => n.to_string(),
        }
    }

    /// The signals that only make sense for the faulting process itself; the
    /// init neither blocks nor forwards them.
    pub fn is_fault(self) -> bool {
        matches!(
            self.0,
            libc::SIGILL
                | libc::SIGTRAP
                | libc::SIGABRT
                | libc::SIGBUS
                | libc::SIGFPE
                | libc::SIGSEGV
                | libc::SIGSYS
        )
    }

    /// Every signal the init can receive and handle: all of 1..=SIGRTMAX
    /// except KILL, STOP, the fault signals and the realtime signals libc
    /// reserves for itself (32, 33 on glibc).
    pub fn catchable() -> impl Iterator<Item = Signal> {
        let reserved_end = libc::SIGRTMIN();
        (1..=libc::SIGRTMAX())
            .filter(move |&n| n < 32 || n >= reserved_end)
            .map(Signal)
            .filter(|s| *s != Signal::KILL && *s != Signal::STOP && !s.is_fault())
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIG{}", self.name())
    }
}

impl Serialize for Signal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

/// Parses `TERM`, `SIGTERM`, `sigterm`, `15`, `RTMIN+3`, `SIGRTMAX-1`.
pub fn parse_signal(text: &str) -> Result<Signal, String> {
    let t = text.trim();
    let bad = || {
        format!("`{text}` is not a signal (use a name like TERM or SIGTERM, or a number like 15)")
    };
    if let Ok(n) = t.parse::<i32>() {
        return Signal::from_raw(n).ok_or_else(bad);
    }
    let upper = t.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let rt = |base: i32, rest: &str| -> Option<Signal> {
        let n = match rest.as_bytes().first() {
            None => base,
            Some(b'+') => base + rest[1..].parse::<i32>().ok()?,
            Some(b'-') => base - rest[1..].parse::<i32>().ok()?,
            _ => return None,
        };
        (libc::SIGRTMIN()..=libc::SIGRTMAX())
            .contains(&n)
            .then_some(Signal(n))
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt(libc::SIGRTMIN(), rest).ok_or_else(bad);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt(libc::SIGRTMAX(), rest).ok_or_else(bad);
    }
    NixSignal::iterator()
        .find(|s| s.as_str().trim_start_matches("SIG") == name)
        .map(|s| Signal(s as i32))
        .ok_or_else(bad)
}

/// One `--signal-map FROM:TO` rule. `to == None` drops the signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SignalRule {
    pub from: Signal,
    pub to: Option<Signal>,
}

/// Parses `FROM:TO`, where TO may be `0`, `none` or `drop` to drop FROM.
pub fn parse_signal_rule(text: &str) -> Result<SignalRule, String> {
    let (from, to) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not FROM:TO (for example TERM:QUIT or 1:0)"))?;
    let from = parse_signal(from)?;
    let to = match to.trim().to_ascii_lowercase().as_str() {
        "0" | "none" | "drop" => None,
        _ => Some(parse_signal(to)?),
    };
    Ok(SignalRule { from, to })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("TERM"), Ok(Signal::TERM));
        assert_eq!(parse_signal("SIGTERM"), Ok(Signal::TERM));
        assert_eq!(parse_signal("sigterm"), Ok(Signal::TERM));
        assert_eq!(parse_signal("15"), Ok(Signal::TERM));
        assert_eq!(parse_signal("RTMIN+3").unwrap().raw(), libc::SIGRTMIN() + 3);
        assert_eq!(parse_signal("SIGRTMAX").unwrap().raw(), libc::SIGRTMAX());
        for bad in ["", "TERMS", "0", "65", "-1", "RTMIN+99", "RTMIN3"] {
            assert!(parse_signal(bad).is_err(), "{bad} should fail");
        }
        assert_eq!(Signal::TERM.to_string(), "SIGTERM");
        assert_eq!(parse_signal("RTMIN+3").unwrap().name(), "RTMIN+3");
    }

    #[test]
    fn catchable_set() {
        let all: Vec<Signal> = Signal::catchable().collect();
        assert!(all.contains(&Signal::TERM));
        assert!(all.contains(&Signal::CHLD));
        assert!(!all.contains(&Signal::KILL));
        assert!(!all.contains(&Signal::STOP));
        assert!(!all.iter().any(|s| s.is_fault()));
        assert!(all.iter().any(|s| s.raw() == libc::SIGRTMIN()));
    }

    #[test]
    fn signal_rules() {
        let r = parse_signal_rule("TERM:QUIT").unwrap();
        assert_eq!((r.from, r.to), (Signal::TERM, Some(Signal::QUIT)));
        assert_eq!(parse_signal_rule("1:0").unwrap().to, None);
        assert!(parse_signal_rule("TERM").is_err());
        assert!(parse_signal_rule("TERM:BOGUS").is_err());
    }
}
