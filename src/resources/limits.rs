//! Parsers for the values inside cgroup files (`cpu.max`,
//! `cpu.cfs_quota_us`, `memory.max`, `memory.stat`, CPU lists) and
//! `/proc/meminfo`.
//!
//! Each returns `Ok(None)` for "no limit" and `Err(reason)` for text that
//! is not what the kernel writes; the caller turns a reason into a
//! warning and ignores that file. Nothing here panics or divides by zero.

/// The CFS period the kernel uses when only a quota is written.
pub const DEFAULT_PERIOD_US: u64 = 100_000;

/// Memory values at or above this are "unlimited" sentinels whatever the
/// page size (v1 writes `LONG_MAX` rounded down to a page).
const UNLIMITED_FLOOR: u64 = 1 << 62;

/// v2 `cpu.max`: `max 100000`, `150000 100000`, or `150000` alone.
pub fn parse_cpu_max(text: &str) -> Result<Option<f64>, String> {
    let mut f = text.split_whitespace();
    let quota = f.next().ok_or("empty file")?;
    let period = match f.next() {
        Some(p) => p
            .parse::<u64>()
            .map_err(|_| format!("period `{p}` is not a number"))?,
        None => DEFAULT_PERIOD_US,
    };
    if f.next().is_some() {
        return Err(format!("`{}` has more than two fields", text.trim()));
    }
    if quota == "max" {
        return Ok(None);
    }
    let quota = quota
        .parse::<u64>()
        .map_err(|_| format!("quota `{quota}` is not a number or `max`"))?;
    ratio(quota, period).map(Some)
}

/// v1 `cpu.cfs_quota_us` (negative means no limit) with
/// `cpu.cfs_period_us`, which must be present when a quota is set.
pub fn parse_cfs(quota: &str, period: Option<&str>) -> Result<Option<f64>, String> {
    let q = quota.trim();
    let q = q
        .parse::<i64>()
        .map_err(|_| format!("quota `{q}` is not a number"))?;
    if q < 0 {
        return Ok(None);
    }
    let period = period.ok_or("cpu.cfs_period_us is missing")?.trim();
    let p = period
        .parse::<u64>()
        .map_err(|_| format!("period `{period}` is not a number"))?;
    ratio(q.unsigned_abs(), p).map(Some)
}

fn ratio(quota: u64, period: u64) -> Result<f64, String> {
    if period == 0 {
        return Err("period 0".into());
    }
    if quota == 0 {
        return Err("quota 0".into());
    }
    Ok(quota as f64 / period as f64)
}

/// What a memory limit file says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemValue {
    /// `max`, or the v1 "unlimited" sentinel.
    Unlimited,
    /// A number at or above MemTotal: no limit in practice.
    AboveTotal(u64),
    Limit(u64),
}

/// v2 `memory.max`/`memory.high`, v1 `memory.limit_in_bytes`.
pub fn parse_memory(text: &str, mem_total: Option<u64>) -> Result<MemValue, String> {
    let t = text.trim();
    if t == "max" {
        return Ok(MemValue::Unlimited);
    }
    let v = t
        .parse::<u64>()
        .map_err(|_| format!("`{t}` is not a number of bytes or `max`"))?;
    Ok(classify_memory(v, mem_total))
}

pub fn classify_memory(v: u64, mem_total: Option<u64>) -> MemValue {
    if v >= UNLIMITED_FLOOR {
        MemValue::Unlimited
    } else if mem_total.is_some_and(|t| v >= t) {
        MemValue::AboveTotal(v)
    } else {
        MemValue::Limit(v)
    }
}

/// The value of `key` in a `key value` file such as `memory.stat`. The
/// whole key must match: `hierarchical_memsw_limit` and `rss_huge` share
/// prefixes with other keys.
pub fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut f = line.split_whitespace();
        (f.next() == Some(key)).then(|| f.next()?.parse().ok())?
    })
}

/// The number of CPUs in a list like `0-3,8,10-11`. An empty list is
/// `Ok(0)` (for `cpuset.cpus`, "inherited from the parent").
pub fn count_cpu_list(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let bad = || format!("`{t}` is not a CPU list");
    let mut n: usize = 0;
    for item in t.split(',').filter(|s| !s.is_empty()) {
        let (a, b) = match item.split_once('-') {
            Some((a, b)) => (a, b),
            None => (item, item),
        };
        let a: usize = a.trim().parse().map_err(|_| bad())?;
        let b: usize = b.trim().parse().map_err(|_| bad())?;
        if b < a {
            return Err(bad());
        }
        n = n.saturating_add((b - a).saturating_add(1));
    }
    Ok(n)
}

/// MemTotal from `/proc/meminfo` (`MemTotal:  24684084 kB`), in bytes.
pub fn meminfo_total(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix("MemTotal:")?;
        let mut f = rest.split_whitespace();
        let v: u64 = f.next()?.parse().ok()?;
        match f.next() {
            Some("kB") => v.checked_mul(1024),
            None => Some(v),
            Some(_) => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_forms() {
        assert_eq!(parse_cpu_max("max 100000\n"), Ok(None));
        assert_eq!(parse_cpu_max("max"), Ok(None));
        assert_eq!(parse_cpu_max("150000 100000\n"), Ok(Some(1.5)));
        assert_eq!(parse_cpu_max("150000"), Ok(Some(1.5)));
        assert_eq!(parse_cpu_max("50000 100000"), Ok(Some(0.5)));
        assert!(parse_cpu_max("600000 0").is_err());
        assert!(parse_cpu_max("0 100000").is_err());
        for bad in [
            "",
            "\n",
            "banana",
            "150000 x",
            "1 2 3",
            "-1 100000",
            "max -5",
        ] {
            assert!(parse_cpu_max(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cfs_forms() {
        assert_eq!(parse_cfs("-1\n", Some("100000\n")), Ok(None));
        assert_eq!(parse_cfs("-1", None), Ok(None));
        assert_eq!(parse_cfs("150000\n", Some("100000\n")), Ok(Some(1.5)));
        assert_eq!(parse_cfs("25000", Some("50000")), Ok(Some(0.5)));
        assert!(parse_cfs("150000", None).is_err());
        assert!(parse_cfs("150000", Some("0")).is_err());
        assert!(parse_cfs("0", Some("100000")).is_err());
        assert!(parse_cfs("x", Some("100000")).is_err());
        assert!(parse_cfs("", Some("100000")).is_err());
    }

    #[test]
    fn memory_values() {
        let total = Some(16 << 30);
        assert_eq!(parse_memory("max\n", total), Ok(MemValue::Unlimited));
        assert_eq!(
            parse_memory("536870912\n", total),
            Ok(MemValue::Limit(536870912))
        );
        assert_eq!(
            parse_memory("9223372036854771712", total),
            Ok(MemValue::Unlimited)
        );
        // 64 KiB pages give a different sentinel; unknown MemTotal too.
        assert_eq!(
            parse_memory("9223372036854710272", None),
            Ok(MemValue::Unlimited)
        );
        assert_eq!(
            parse_memory("17179869184", total),
            Ok(MemValue::AboveTotal(17179869184))
        );
        assert_eq!(parse_memory("0", total), Ok(MemValue::Limit(0)));
        for bad in ["", "-1", "12 kB", "banana", "99999999999999999999999"] {
            assert!(parse_memory(bad, total).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn memory_stat_matches_whole_keys() {
        let stat = "cache 0\nhierarchical_memsw_limit 1073741824\n\
                    hierarchical_memory_limit_x 1\nhierarchical_memory_limit 536870912\n";
        assert_eq!(
            stat_value(stat, "hierarchical_memory_limit"),
            Some(536870912)
        );
        assert_eq!(stat_value(stat, "rss"), None);
        assert_eq!(
            stat_value("hierarchical_memory_limit x\n", "hierarchical_memory_limit"),
            None
        );
        assert_eq!(stat_value("", "hierarchical_memory_limit"), None);
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(count_cpu_list("0-7\n"), Ok(8));
        assert_eq!(count_cpu_list("0,2"), Ok(2));
        assert_eq!(count_cpu_list("0-3,8,10-11"), Ok(7));
        assert_eq!(count_cpu_list("\n"), Ok(0));
        assert_eq!(count_cpu_list("0-18446744073709551615"), Ok(usize::MAX));
        for bad in ["a", "3-1", "1-", "-1", "0-3;5"] {
            assert!(count_cpu_list(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn meminfo() {
        let text = "MemFree:  1 kB\nMemTotal:       24684084 kB\n";
        assert_eq!(meminfo_total(text), Some(24684084 * 1024));
        assert_eq!(meminfo_total("MemTotal: x kB"), None);
        assert_eq!(meminfo_total(""), None);
        assert_eq!(meminfo_total("MemTotal: 18446744073709551615 kB"), None);
    }
}
