//! Typed setting values and their parsers: durations, byte sizes, signals,
//! signal maps, worker counts, restart policies.
//!
//! Every parser takes the text a user wrote (on the command line, in the
//! environment or as a TOML string) and returns either the value or a message
//! that says what was expected. The callers add where the text came from.

use std::fmt;
use std::time::Duration;

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

/// Parses `30`, `30s`, `1m30s`, `500ms`, `2h`, `1.5s`. A bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "`{text}` is not a duration (use forms like 30s, 1m30s, 500ms or a number of seconds)"
        )
    };
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = t.parse::<f64>() {
        return secs_to_duration(secs).ok_or_else(bad);
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_end == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "ms" => 0.001,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * factor;
        rest = &rest[unit_end..];
    }
    secs_to_duration(total).ok_or_else(bad)
}

fn secs_to_duration(secs: f64) -> Option<Duration> {
    (secs.is_finite() && (0.0..=1e9).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

/// A duration printed the way users write it: `30s`, `1m30s`, `500ms`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms % 1000 != 0 {
        return if ms < 1000 {
            format!("{ms}ms")
        } else {
            format!("{}s", d.as_secs_f64())
        };
    }
    let s = ms / 1000;
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

/// Parses `512MiB`, `512m`, `1G`, `1.5GiB`, `1048576`. K/M/G/T without `iB`
/// follow Docker's `--memory` and mean powers of 1024; `kB`, `MB`, `GB` are
/// powers of 1000.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let bad =
        || format!("`{text}` is not a size (use forms like 512MiB, 512m, 1G or a byte count)");
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    if split == 0 {
        return Err(bad());
    }
    let n: f64 = t[..split].parse().map_err(|_| bad())?;
    let unit = t[split..].trim();
    let factor: f64 = match unit {
        "" | "b" | "B" => 1.0,
        "k" | "K" | "KiB" | "Ki" | "kib" => 1024.0,
        "m" | "M" | "MiB" | "Mi" | "mib" => 1024.0 * 1024.0,
        "g" | "G" | "GiB" | "Gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "T" | "TiB" | "Ti" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return Err(bad()),
    };
    let v = n * factor;
    if !(v.is_finite() && v >= 0.0 && v < u64::MAX as f64) {
        return Err(bad());
    }
    Ok(v.round() as u64)
}

/// A byte count printed for people: `512 MiB`, `1.5 GiB`, `1000 B`.
pub fn format_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else if (v - v.round()).abs() < 0.005 {
        format!("{} {}", v.round(), UNITS[i])
    } else {
        format!("{v:.2} {}", UNITS[i])
    }
}

/// Parses a CPU count: `1.5`, `2`, `500m` (Kubernetes millicores).
pub fn parse_cpus(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let bad = || format!("`{text}` is not a CPU count (use forms like 1.5, 2 or 500m)");
    let v = match t.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().map_err(|_| bad())? / 1000.0,
        None => t.parse::<f64>().map_err(|_| bad())?,
    };
    if v.is_finite() && v > 0.0 && v <= 1e6 {
        Ok(v)
    } else {
        Err(bad())
    }
}

/// `--workers`: a fixed count or `auto` (sized from the container's limits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workers {
    Auto,
    Fixed(u32),
}

pub const MAX_WORKERS_LIMIT: u32 = 1024;

pub fn parse_workers(text: &str) -> Result<Workers, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("auto") {
        return Ok(Workers::Auto);
    }
    match t.parse::<u32>() {
        Ok(n) if (1..=MAX_WORKERS_LIMIT).contains(&n) => Ok(Workers::Fixed(n)),
        _ => Err(format!(
            "`{text}` is not a worker count (use auto or a number from 1 to {MAX_WORKERS_LIMIT})"
        )),
    }
}

pub fn parse_count(text: &str) -> Result<u32, String> {
    text.trim()
        .parse::<u32>()
        .map_err(|_| format!("`{text}` is not a whole number"))
}

pub fn parse_f64(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("`{text}` is not a non-negative number")),
    }
}

pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("`{text}` is not a boolean (use true or false)")),
    }
}

/// When a worker that exited is started again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

pub fn parse_restart(text: &str) -> Result<RestartPolicy, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "always" => Ok(RestartPolicy::Always),
        "on-failure" | "on_failure" => Ok(RestartPolicy::OnFailure),
        "never" | "no" => Ok(RestartPolicy::Never),
        _ => Err(format!(
            "`{text}` is not a restart policy (use always, on-failure or never)"
        )),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

pub fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("`{text}` is not a log format (use text or json)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("12"), Ok(Duration::from_secs(12)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "s", "10x", "-1", "1m30", "m30s", "nan", "1e99"] {
            assert!(parse_duration(bad).is_err(), "{bad} should fail");
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("512m"), Ok(512 << 20));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert_eq!(parse_bytes("1MB"), Ok(1_000_000));
        for bad in ["", "MiB", "12 parsecs", "-5M", "1..2G"] {
            assert!(parse_bytes(bad).is_err(), "{bad} should fail");
        }
        assert_eq!(format_bytes(512 << 20), "512 MiB");
        assert_eq!(format_bytes(3 << 29), "1.50 GiB");
        assert_eq!(format_bytes(1000), "1000 B");
    }

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

    #[test]
    fn workers_and_cpus() {
        assert_eq!(parse_workers("auto"), Ok(Workers::Auto));
        assert_eq!(parse_workers("4"), Ok(Workers::Fixed(4)));
        assert!(parse_workers("0").is_err());
        assert!(parse_workers("many").is_err());
        assert_eq!(parse_cpus("1.5"), Ok(1.5));
        assert_eq!(parse_cpus("500m"), Ok(0.5));
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("x").is_err());
    }
}
