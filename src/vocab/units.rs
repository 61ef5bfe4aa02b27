//! Durations, byte sizes, CPU counts and plain numbers: parsed from what a
//! user writes (a flag, an environment variable, a TOML value) and printed
//! back the same way. Every parser caps its value, so nothing computed
//! from a setting can overflow.

use std::time::Duration;

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

/// The longest duration any setting may have (about 31 years): every
/// deadline the init computes from one stays far from `Instant`'s limits.
pub const MAX_DURATION: Duration = Duration::from_secs(1_000_000_000);

fn secs_to_duration(secs: f64) -> Option<Duration> {
    (secs.is_finite() && (0.0..=MAX_DURATION.as_secs_f64()).contains(&secs))
        .then(|| Duration::from_secs_f64(secs))
}

/// A duration as a JSON number of seconds (`"timeout_s": 1.5`), for the
/// plan's `*_s` fields.
pub fn serialize_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// A duration printed the way users write it: `30s`, `1m30s`, `500ms`,
/// `1.25s`; exact to the millisecond.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if ms % 1000 != 0 {
        let s = format!("{}.{:03}", ms / 1000, ms % 1000);
        return format!("{}s", s.trim_end_matches('0'));
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

/// How long something ran, for a log line: tenths of a second under a
/// minute (`1.8s`), whole seconds above (`2m5s`).
pub fn format_uptime(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        let tenths = (d.as_millis() + 50) / 100;
        if tenths % 10 == 0 {
            format!("{}s", tenths / 10)
        } else {
            format!("{}.{}s", tenths / 10, tenths % 10)
        }
    } else {
        format_duration(Duration::from_secs((d.as_millis() as u64 + 500) / 1000))
    }
}

/// A number with at most three decimals and no trailing zeros: `1.5`, `2`.
pub fn format_number(v: f64) -> String {
    let s = format!("{v:.3}");
    match s.trim_end_matches('0').trim_end_matches('.') {
        "-0" => "0".into(),
        s => s.into(),
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

/// A size, or a share of something larger: `300MiB`, `80%`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Amount {
    Bytes(u64),
    Percent(f64),
}

impl Amount {
    /// The bytes this is of `whole` (a percentage needs it).
    pub fn of(self, whole: Option<u64>) -> Option<u64> {
        match self {
            Amount::Bytes(b) => Some(b),
            Amount::Percent(p) => whole.map(|w| (w as f64 * p / 100.0) as u64),
        }
    }
}

/// Parses a size (`512MiB`) or a percentage (`80%`, up to 100).
pub fn parse_amount(text: &str) -> Result<Amount, String> {
    match text.trim().strip_suffix('%') {
        Some(p) => parse_percent(p).map(Amount::Percent),
        None => parse_bytes(text).map(Amount::Bytes),
    }
}

/// Parses a percentage: `10%` or `10`, from 0 to 100.
pub fn parse_percent(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let n = t.strip_suffix('%').unwrap_or(t).trim();
    match n.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=100.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "`{text}` is not a percentage (use a number from 0 to 100, like 10%)"
        )),
    }
}

pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("`{text}` is not a boolean (use true or false)")),
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
        assert_eq!(format_duration(Duration::from_millis(1848)), "1.848s");
        assert_eq!(format_uptime(Duration::from_millis(1848)), "1.8s");
        assert_eq!(format_uptime(Duration::from_millis(2_960)), "3s");
        assert_eq!(format_uptime(Duration::from_millis(125_400)), "2m5s");
        assert!(parse_duration("1000000001").is_err(), "above the cap");
        assert_eq!(parse_duration("1000000000"), Ok(MAX_DURATION));
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
    fn amounts() {
        assert_eq!(parse_amount("80%"), Ok(Amount::Percent(80.0)));
        assert_eq!(parse_amount("300MiB"), Ok(Amount::Bytes(300 << 20)));
        assert!(parse_amount("180%").is_err());
        assert!(parse_amount("%").is_err());
        assert_eq!(Amount::Percent(50.0).of(Some(1000)), Some(500));
        assert_eq!(Amount::Percent(50.0).of(None), None);
        assert_eq!(parse_percent("10"), Ok(10.0));
        assert_eq!(parse_percent("12.5%"), Ok(12.5));
    }

    #[test]
    fn cpus_and_numbers() {
        assert_eq!(parse_cpus("1.5"), Ok(1.5));
        assert_eq!(parse_cpus("500m"), Ok(0.5));
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("x").is_err());
        assert_eq!(format_number(1.5), "1.5");
        assert_eq!(format_number(2.0), "2");
    }
}
