//! A worker's resource use, read from /proc when someone asks (a status
//! request, a metrics scrape; the memory guard's sampler): nothing here
//! runs on its own, so an idle init reads nothing.
//!
//! A worker is its whole process tree (`readiness::tree`): gunicorn's
//! master under cinit has its workers as grandchildren, and they are
//! what uses the memory.
//!
//! * Memory is PSS (proportional set size) from `/proc/PID/smaps_rollup`:
//!   pages shared by N processes count 1/N in each, so the sum over a
//!   tree (and over all workers) is what they really use. RSS counts a
//!   shared page in every process; it is given too, and stands in where
//!   `smaps_rollup` is missing (kernels before 4.14) or unreadable.
//! * CPU is utime + stime from `/proc/PID/stat`, in clock ticks; a
//!   percentage needs two readings (`cpu_percent`).

use std::time::Duration;

/// The memory of a process tree, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// None when some process of the tree had no readable smaps_rollup.
    pub pss: Option<u64>,
    pub rss: u64,
}

impl Memory {
    /// PSS when known, else RSS.
    pub fn best(&self) -> u64 {
        self.pss.unwrap_or(self.rss)
    }
}

/// The memory of `pid` and its descendants; None when `pid` is gone.
pub fn tree_memory(pid: i32) -> Option<Memory> {
    let mut total = Memory {
        pss: Some(0),
        rss: 0,
    };
    let mut seen = false;
    for p in crate::readiness::tree(pid) {
        let Some(m) = process_memory(p) else { continue };
        seen = true;
        total.rss += m.rss;
        total.pss = match (total.pss, m.pss) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
    }
    seen.then_some(total)
}

/// One process's memory.
pub fn process_memory(pid: i32) -> Option<Memory> {
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
        if let Some(m) = parse_smaps_rollup(&text) {
            return Some(m);
        }
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Memory {
        pss: None,
        rss: kib_field(&status, "VmRSS:").unwrap_or(0),
    })
}

/// `Rss:` and `Pss:` of a smaps_rollup text, in bytes.
pub fn parse_smaps_rollup(text: &str) -> Option<Memory> {
    Some(Memory {
        rss: kib_field(text, "Rss:")?,
        pss: Some(kib_field(text, "Pss:")?),
    })
}

/// A `Name:   1234 kB` line's value in bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time (user + system, clock ticks) of `pid` and its descendants;
/// None when `pid` is gone.
pub fn tree_cpu_ticks(pid: i32) -> Option<u64> {
    let mut total = None;
    for p in crate::readiness::tree(pid) {
        if let Some(t) = cpu_ticks(p) {
            total = Some(total.unwrap_or(0) + t);
        }
    }
    total
}

/// CPU time (user + system, clock ticks) of one process.
pub fn cpu_ticks(pid: i32) -> Option<u64> {
    parse_stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` text. The
/// command name may hold spaces and parentheses: fields count from the
/// last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`USER_HZ`, 100 on every Linux build in use).
pub fn ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|&t| t > 0)
        .map(|t| t as u64)
        .unwrap_or(100)
}

/// The share of one CPU used between two readings, in percent (200 is
/// two CPUs' worth).
pub fn cpu_percent(ticks: u64, over: Duration, per_second: u64) -> f64 {
    let secs = over.as_secs_f64();
    if secs <= 0.0 || per_second == 0 {
        return 0.0;
    }
    ticks as f64 / per_second as f64 / secs * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaps_rollup_gives_rss_and_pss() {
        let text =
            "55d0c0a00000-7ffd3c9f2000 ---p 00000000 00:00 0                          [rollup]\n\
                    Rss:               10240 kB\n\
                    Pss:                4096 kB\n\
                    Pss_Anon:           2048 kB\n\
                    Shared_Clean:       6144 kB\n";
        assert_eq!(
            parse_smaps_rollup(text),
            Some(Memory {
                pss: Some(4096 * 1024),
                rss: 10240 * 1024
            })
        );
        assert_eq!(parse_smaps_rollup("garbage"), None);
    }

    #[test]
    fn stat_gives_cpu_ticks_past_an_odd_name() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 1234 0 0";
        assert_eq!(parse_stat_ticks(stat), Some(300));
        assert_eq!(parse_stat_ticks("42 (x) S 1"), None);
    }

    #[test]
    fn own_tree_is_readable() {
        let me = std::process::id() as i32;
        let m = tree_memory(me).expect("our own memory");
        assert!(m.rss > 0);
        assert!(m.best() > 0);
        assert!(tree_cpu_ticks(me).is_some());
        assert_eq!(cpu_percent(100, Duration::from_secs(2), 100), 50.0);
        assert_eq!(cpu_percent(100, Duration::ZERO, 100), 0.0);
    }
}
