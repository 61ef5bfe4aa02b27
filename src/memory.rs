//! What the memory guard reads: a worker's memory (PSS from
//! `/proc/PID/smaps_rollup`, summed over the worker and its descendants;
//! RSS where that file is missing) and the container's memory cgroup (the
//! working set, as the kubelet counts it: usage minus inactive file pages;
//! the count of OOM kills; `memory.oom.group`). Every read is fallible and
//! answers `None` rather than an error: a file that is not there is no
//! information.

use std::path::{Path, PathBuf};

use crate::resources::Hierarchy;

/// A process tree's memory, in bytes.
pub fn tree_memory(pid: i32) -> Option<u64> {
    let mut total = 0u64;
    let mut any = false;
    for p in crate::readiness::tree(pid) {
        if let Some(b) = process_memory(p) {
            total = total.saturating_add(b);
            any = true;
        }
    }
    any.then_some(total)
}

/// One process's PSS (its share of the pages it maps: a page shared by
/// two workers counts half in each), or its RSS without smaps_rollup.
pub fn process_memory(pid: i32) -> Option<u64> {
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
        if let Some(kib) = kib_field(&text, "Pss:") {
            return Some(kib * 1024);
        }
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_field(&status, "VmRSS:").map(|kib| kib * 1024)
}

/// `Pss:     1234 kB` -> 1234.
fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// `key N` lines (memory.stat, memory.events, memory.oom_control).
fn stat_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// The init's own memory cgroup.
#[derive(Clone, Debug)]
pub struct Cgroup {
    pub dir: PathBuf,
    pub hierarchy: Hierarchy,
}

impl Cgroup {
    /// Finds it under `root` (`/` in production).
    pub fn find(root: &Path) -> Option<Cgroup> {
        let (dir, hierarchy) = crate::resources::memory_cgroup(root)?;
        Some(Cgroup { dir, hierarchy })
    }

    fn read(&self, file: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(file)).ok()
    }

    /// Processes of this cgroup killed by an OOM killer so far.
    pub fn oom_kills(&self) -> Option<u64> {
        match self.hierarchy {
            Hierarchy::V2 => stat_field(&self.read("memory.events")?, "oom_kill"),
            Hierarchy::V1 => stat_field(&self.read("memory.oom_control")?, "oom_kill"),
        }
    }

    /// Usage minus the inactive file pages, which the kernel reclaims
    /// before it kills: what the kubelet evicts on and what comes closest
    /// to what the OOM killer sees.
    pub fn working_set(&self) -> Option<u64> {
        let (usage, inactive) = match self.hierarchy {
            Hierarchy::V2 => (
                self.read("memory.current")?.trim().parse::<u64>().ok()?,
                stat_field(&self.read("memory.stat")?, "inactive_file").unwrap_or(0),
            ),
            Hierarchy::V1 => (
                self.read("memory.usage_in_bytes")?
                    .trim()
                    .parse::<u64>()
                    .ok()?,
                stat_field(&self.read("memory.stat")?, "total_inactive_file").unwrap_or(0),
            ),
        };
        Some(usage.saturating_sub(inactive))
    }

    /// The cgroup's own hard limit (`memory.max`, `memory.limit_in_bytes`);
    /// `None` when unlimited.
    pub fn limit(&self) -> Option<u64> {
        let text = match self.hierarchy {
            Hierarchy::V2 => self.read("memory.max")?,
            Hierarchy::V1 => self.read("memory.limit_in_bytes")?,
        };
        // v1 writes "no limit" as a huge page-rounded number.
        text.trim().parse::<u64>().ok().filter(|&v| v < 1 << 60)
    }

    /// cgroup v2 `memory.oom.group`: one OOM kill takes every process of
    /// the cgroup (the kubelet sets it from Kubernetes 1.28).
    pub fn oom_group(&self) -> Option<bool> {
        match self.hierarchy {
            Hierarchy::V2 => Some(self.read("memory.oom.group")?.trim() == "1"),
            Hierarchy::V1 => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_parse() {
        let rollup = "55c0-7ffd ---p 00000000 00:00 0  [rollup]\nRss:  10240 kB\nPss:   4096 kB\n";
        assert_eq!(kib_field(rollup, "Pss:"), Some(4096));
        assert_eq!(kib_field("garbage", "Pss:"), None);
        let events = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(stat_field(events, "oom_kill"), Some(2));
        assert_eq!(stat_field(events, "oom"), Some(3));
        assert_eq!(stat_field("oom_kill x", "oom_kill"), None);
    }

    #[test]
    fn our_own_memory_is_read() {
        let me = std::process::id() as i32;
        let own = process_memory(me).unwrap();
        assert!(own > 1 << 20, "{own}");
        assert!(tree_memory(me).unwrap() >= own);
    }

    #[test]
    fn a_v2_cgroup_tree_is_read() {
        let dir = std::env::temp_dir().join(format!("cinit-mem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("memory.current"), "1000000\n").unwrap();
        std::fs::write(dir.join("memory.stat"), "anon 1\ninactive_file 250000\n").unwrap();
        std::fs::write(dir.join("memory.events"), "oom 1\noom_kill 4\n").unwrap();
        std::fs::write(dir.join("memory.oom.group"), "1\n").unwrap();
        let c = Cgroup {
            dir: dir.clone(),
            hierarchy: Hierarchy::V2,
        };
        assert_eq!(c.working_set(), Some(750_000));
        assert_eq!(c.oom_kills(), Some(4));
        assert_eq!(c.oom_group(), Some(true));
        let v1 = Cgroup {
            dir: dir.clone(),
            hierarchy: Hierarchy::V1,
        };
        assert_eq!(v1.oom_kills(), None);
        let _ = std::fs::remove_dir_all(dir);
    }
}
