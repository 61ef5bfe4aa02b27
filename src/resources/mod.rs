//! Resource detection: the CPUs and memory this process may really use,
//! read from cgroup v1/v2 files and the affinity mask under an injectable
//! root directory (`/` in production, a fixture tree in tests).
//!
//! Theory of operation (facts and sources in docs/sizing.md):
//!
//! 1. `/proc/self/cgroup` names our cgroup in each hierarchy; a v1 line
//!    that lists a controller wins over the unified `0::` line (hybrid).
//! 2. `/proc/self/mountinfo` says where each hierarchy is mounted and which
//!    of its directories the mount shows (`mounts`); the directory is
//!    mount point + (cgroup path − mount root) (`locate`).
//! 3. The walk reads every level from that directory up to and including
//!    the mount point; the smallest limit wins. CPU: v2 `cpu.max`, v1
//!    `cpu.cfs_quota_us`/`cpu.cfs_period_us`, kept fractional. Memory: v2
//!    `memory.max` and `memory.high`, v1 `memory.limit_in_bytes` and the
//!    leaf's `hierarchical_memory_limit`, which covers invisible ancestors.
//!    Shares and weights are relative, never limits, and are not read.
//! 4. CPUs = min(quota, affinity mask); the affinity mask already reflects
//!    the cpuset. A memory value at or above MemTotal is no limit.
//!
//! Invariants: `detect` never fails and never panics. A missing file is
//! "no information"; an unreadable or malformed one, or a cgroup that
//! cannot be located, becomes a warning. Every figure names the file and
//! the cgroup level it came from, and `walks` records every file read.

pub(crate) mod limits;
pub(crate) mod locate;
pub(crate) mod mounts;

use std::fs::File;
use std::io::{BufReader, ErrorKind};
use std::path::Path;

use serde::Serialize;

use crate::vocab::format_bytes;
use limits::MemValue;
use locate::{under, Located};
pub use locate::{Hierarchy, Resolution};

/// Facts about the host that do not come from the cgroup files: injected
/// so tests can fake them.
#[derive(Clone, Debug, Serialize)]
pub struct HostFacts {
    /// CPUs online on the host (`/sys/devices/system/cpu/online`).
    pub online_cpus: usize,
    /// CPUs in this process's affinity mask (`sched_getaffinity`).
    pub affinity_cpus: Option<usize>,
    /// MemTotal from /proc/meminfo, in bytes.
    pub mem_total: Option<u64>,
}

impl HostFacts {
    /// The facts of this process: the affinity mask of the live process
    /// (a syscall cannot be redirected), `/proc/meminfo` and
    /// `/sys/devices/system/cpu/online` read under `root`. The online count
    /// falls back to the affinity count, then to `sysconf`.
    pub fn read(root: &Path) -> HostFacts {
        let affinity_cpus = affinity_count();
        let online_cpus = std::fs::read_to_string(under(root, "/sys/devices/system/cpu/online"))
            .ok()
            .and_then(|t| limits::count_cpu_list(&t).ok())
            .filter(|&n| n > 0)
            .or(affinity_cpus)
            .unwrap_or_else(online_cpus_sysconf);
        let mem_total = std::fs::read_to_string(under(root, "/proc/meminfo"))
            .ok()
            .and_then(|t| limits::meminfo_total(&t));
        HostFacts {
            online_cpus,
            affinity_cpus,
            mem_total,
        }
    }
}

/// The C library's count of online CPUs; 1 when it cannot say.
fn online_cpus_sysconf() -> usize {
    use nix::unistd::{sysconf, SysconfVar};
    match sysconf(SysconfVar::_NPROCESSORS_ONLN) {
        Ok(Some(n)) if n > 0 => n as usize,
        _ => 1,
    }
}

/// CPUs in the calling thread's affinity mask. Read at start-up, before
/// anything pins the thread; `None` past 1024 CPUs (a fixed `cpu_set_t`
/// gets EINVAL there) or when the call fails.
fn affinity_count() -> Option<usize> {
    use nix::sched::{sched_getaffinity, CpuSet};
    let set = sched_getaffinity(nix::unistd::Pid::from_raw(0)).ok()?;
    let n = (0..CpuSet::count())
        .filter(|&i| set.is_set(i).unwrap_or(false))
        .count();
    (n > 0).then_some(n)
}

/// A number and the place it was read from (file and cgroup level).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Figure<T> {
    pub value: T,
    pub source: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Resources {
    /// "v1", "v2", "hybrid" (v1 controllers beside a mounted cgroup2
    /// hierarchy) or "none".
    pub cgroup: String,
    /// Effective CPUs: the smallest of the quota walk and the affinity mask.
    pub cpus: Figure<f64>,
    /// Effective memory limit (the lower of `memory_max` and
    /// `memory_high`); `None` when no limit is set.
    pub memory: Option<Figure<u64>>,
    pub host: HostFacts,
    /// What could not be resolved; never fatal.
    pub warnings: Vec<String>,
    /// The smallest CPU quota on the walk, even when the affinity mask is
    /// lower; `None` when no level sets one.
    pub cpu_quota: Option<Figure<f64>>,
    /// The cpuset of our cgroup (`cpuset.cpus.effective` /
    /// `cpuset.effective_cpus`), for diagnosis: the affinity mask is the
    /// authority, this is only used when the mask is unknown.
    pub cpuset: Option<Figure<String>>,
    /// The smallest hard limit: v2 `memory.max`, v1 `memory.limit_in_bytes`
    /// or `hierarchical_memory_limit`.
    pub memory_max: Option<Figure<u64>>,
    /// The smallest v2 `memory.high`: a throttle, not an OOM limit, but
    /// workers sized past it would crawl.
    pub memory_high: Option<Figure<u64>>,
    /// Every directory read, per controller, with what each file said.
    pub walks: Vec<Walk>,
}

impl Resources {
    /// The value a real run without `--workers auto` carries: there the
    /// limits decide nothing, so reading a dozen cgroup files at every start
    /// would only cost time (the dry run always reads them). It holds no
    /// number: 0 CPUs, said to be not read; nothing reads them.
    pub fn not_read() -> Resources {
        Resources {
            cgroup: "not read".into(),
            cpus: Figure {
                value: 0.0,
                source: "not read: nothing in this run depends on it".into(),
            },
            memory: None,
            host: HostFacts {
                online_cpus: 0,
                affinity_cpus: None,
                mem_total: None,
            },
            warnings: Vec::new(),
            cpu_quota: None,
            cpuset: None,
            memory_max: None,
            memory_high: None,
            walks: Vec::new(),
        }
    }
}

/// The directories read for one controller.
#[derive(Clone, Debug, Serialize)]
pub struct Walk {
    /// "cpu", "memory" or "cpuset".
    pub controller: &'static str,
    pub hierarchy: Hierarchy,
    /// The path in `/proc/self/cgroup`.
    pub cgroup: String,
    pub mount_point: String,
    /// The directory of the tree the mount shows (mountinfo ROOT).
    pub mount_root: String,
    pub resolution: Resolution,
    /// Leaf first, mount root last.
    pub levels: Vec<Level>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Level {
    /// The cgroup in namespace coordinates.
    pub cgroup: String,
    pub dir: String,
    /// Files present at this level; absent files are not listed.
    pub files: Vec<Reading>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Reading {
    pub file: String,
    /// The text read (trimmed; for `memory.stat`, the one line used).
    pub content: String,
    /// What it means: "1.5 CPUs", "512 MiB", "no limit", "ignored: …".
    pub meaning: String,
}

/// Reads the limits under `root`. Never fails: what cannot be read is a
/// warning and leaves the host's figures in place.
pub fn detect(root: &Path, host: &HostFacts) -> Resources {
    let mut d = Detection {
        root,
        host,
        notes: Vec::new(),
    };
    let lines = match d.read("/proc/self/cgroup") {
        Some(t) => mounts::parse_proc_cgroup(&t),
        None => {
            d.note(
                None,
                "cannot read /proc/self/cgroup: no cgroup limit can be detected",
            );
            Vec::new()
        }
    };
    let mounts = match File::open(under(root, "/proc/self/mountinfo")) {
        Ok(f) => mounts::visible_cgroup_mounts(BufReader::new(f)),
        Err(e) => {
            if !lines.is_empty() {
                d.note(None, &format!("cannot read /proc/self/mountinfo: {e}"));
            }
            Vec::new()
        }
    };
    let v1 = lines.iter().any(|l| l.is_v1_controller());
    let v2 = lines.iter().any(|l| l.is_v2());
    let cgroup = match (v1, v2) {
        (true, true) if mounts.iter().any(|m| m.is_v2()) => "hybrid",
        (true, _) => "v1",
        (false, true) => "v2",
        (false, false) => "none",
    };

    let mut walks = Vec::new();
    let locate = |d: &mut Detection, controller: &'static str, warn: bool| {
        if lines.is_empty() {
            return None;
        }
        match locate::locate(root, controller, &lines, &mounts) {
            Ok(l) => {
                if let (true, Some(p)) = (warn, &l.problem) {
                    d.note(Some(controller), p);
                }
                Some(l)
            }
            Err(why) => {
                if warn {
                    d.note(Some(controller), &why);
                }
                None
            }
        }
    };
    let cpu = locate(&mut d, "cpu", true);
    let mem = locate(&mut d, "memory", true);
    let set = locate(&mut d, "cpuset", false);

    let cpu_quota = cpu.map(|l| {
        let (walk, best) = d.cpu_walk(l);
        walks.push(walk);
        best
    });
    let (memory_max, memory_high) = mem
        .map(|l| {
            let (walk, max, high) = d.memory_walk(l);
            walks.push(walk);
            (max, high)
        })
        .unwrap_or((None, None));
    let cpuset = set.map(|l| {
        let (walk, best) = d.cpuset_walk(l);
        walks.push(walk);
        best
    });
    let cpu_quota = cpu_quota.flatten();
    let cpuset = cpuset.flatten();

    let base = match host.affinity_cpus.filter(|&n| n > 0) {
        Some(n) => Figure {
            value: n as f64,
            source: "affinity mask (sched_getaffinity)".into(),
        },
        None => match cpuset.as_ref().and_then(|c| {
            let n = limits::count_cpu_list(&c.value).ok().filter(|&n| n > 0)?;
            Some((n, c))
        }) {
            Some((n, c)) => Figure {
                value: n as f64,
                source: c.source.clone(),
            },
            None => Figure {
                value: host.online_cpus.max(1) as f64,
                source: "online CPUs (affinity mask unknown)".into(),
            },
        },
    };
    let cpus = match &cpu_quota {
        Some(q) if q.value <= base.value => q.clone(),
        _ => base,
    };
    let memory = match (&memory_max, &memory_high) {
        (Some(m), Some(h)) if h.value < m.value => Some(h.clone()),
        (Some(m), _) => Some(m.clone()),
        (None, h) => h.clone(),
    };
    let warnings = merge_notes(d.notes);
    Resources {
        cgroup: cgroup.into(),
        cpus,
        memory,
        host: host.clone(),
        warnings,
        cpu_quota,
        cpuset,
        memory_max,
        memory_high,
        walks,
    }
}

/// The directory of this process's own memory cgroup (the leaf of the
/// walk, or the mount root when only that could be found) and its
/// hierarchy: where the memory guard reads the working set and the OOM
/// kill count. `None` when there is no memory cgroup to read.
pub fn memory_cgroup(root: &Path) -> Option<(std::path::PathBuf, Hierarchy)> {
    let text = std::fs::read_to_string(under(root, "/proc/self/cgroup")).ok()?;
    let lines = mounts::parse_proc_cgroup(&text);
    let f = File::open(under(root, "/proc/self/mountinfo")).ok()?;
    let mounts = mounts::visible_cgroup_mounts(BufReader::new(f));
    let l = locate::locate(root, "memory", &lines, &mounts).ok()?;
    let first = l.levels.first()?;
    Some((under(root, &first.dir), l.hierarchy))
}

/// The state of one detection: where to read and what went wrong.
struct Detection<'a> {
    root: &'a Path,
    host: &'a HostFacts,
    /// (controller, message), merged into warnings at the end.
    notes: Vec<(Option<&'static str>, String)>,
}

/// The smallest value seen so far and where it came from; ties keep the
/// first seen (the deeper level, or a visible file before `memory.stat`).
fn keep_min<T: PartialOrd>(
    best: &mut Option<Figure<T>>,
    value: T,
    source: impl FnOnce() -> String,
) {
    let smaller = match best {
        Some(b) => value < b.value,
        None => true,
    };
    if smaller {
        *best = Some(Figure {
            value,
            source: source(),
        });
    }
}

fn source(dir: &str, file: &str, cgroup: &str) -> String {
    format!("{dir}/{file} (level {cgroup})")
}

fn cpus_text(v: f64) -> String {
    format!(
        "{} CPU{}",
        crate::vocab::format_number(v),
        if v == 1.0 { "" } else { "s" }
    )
}

impl Detection<'_> {
    fn note(&mut self, controller: Option<&'static str>, message: &str) {
        self.notes.push((controller, message.to_string()));
    }

    /// The file's text; `None` when absent (no information) or unreadable
    /// (a warning).
    fn read(&mut self, abs: &str) -> Option<String> {
        match std::fs::read(under(self.root, abs)) {
            Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => {
                self.note(None, &format!("failed to read {abs}: {e}"));
                None
            }
        }
    }

    fn start(&self, controller: &'static str, l: &Located) -> Walk {
        Walk {
            controller,
            hierarchy: l.hierarchy,
            cgroup: l.cgroup.clone(),
            mount_point: l.mount.mount_point.clone(),
            mount_root: l.mount.root.clone(),
            resolution: l.resolution,
            levels: Vec::new(),
        }
    }

    fn cpu_walk(&mut self, l: Located) -> (Walk, Option<Figure<f64>>) {
        let mut walk = self.start("cpu", &l);
        let mut best = None;
        for at in &l.levels {
            let mut files = Vec::new();
            let (file, parsed, content) = match l.hierarchy {
                Hierarchy::V2 => {
                    let Some(text) = self.read(&format!("{}/cpu.max", at.dir)) else {
                        walk.levels.push(level(at, files));
                        continue;
                    };
                    (
                        "cpu.max",
                        limits::parse_cpu_max(&text),
                        text.trim().to_string(),
                    )
                }
                Hierarchy::V1 => {
                    let Some(quota) = self.read(&format!("{}/cpu.cfs_quota_us", at.dir)) else {
                        walk.levels.push(level(at, files));
                        continue;
                    };
                    let period = self.read(&format!("{}/cpu.cfs_period_us", at.dir));
                    let parsed = limits::parse_cfs(&quota, period.as_deref());
                    let content = match &period {
                        Some(p) => format!("{} (period {})", quota.trim(), p.trim()),
                        None => quota.trim().to_string(),
                    };
                    ("cpu.cfs_quota_us", parsed, content)
                }
            };
            let meaning = match parsed {
                Ok(Some(cpus)) => {
                    keep_min(&mut best, cpus, || source(&at.dir, file, &at.cgroup));
                    cpus_text(cpus)
                }
                Ok(None) => "no limit".into(),
                Err(why) => {
                    self.note(Some("cpu"), &format!("ignored {}/{file}: {why}", at.dir));
                    format!("ignored: {why}")
                }
            };
            files.push(Reading {
                file: file.into(),
                content,
                meaning,
            });
            walk.levels.push(level(at, files));
        }
        (walk, best)
    }

    fn memory_meaning(
        &mut self,
        at: &locate::LevelDir,
        file: &str,
        text: &str,
    ) -> (Option<u64>, Reading) {
        let meaning;
        let mut limit = None;
        match limits::parse_memory(text, self.host.mem_total) {
            Ok(MemValue::Limit(v)) => {
                limit = Some(v);
                meaning = format_bytes(v);
            }
            Ok(MemValue::Unlimited) => meaning = "no limit".into(),
            Ok(MemValue::AboveTotal(_)) => meaning = "no limit (at or above MemTotal)".into(),
            Err(why) => {
                self.note(Some("memory"), &format!("ignored {}/{file}: {why}", at.dir));
                meaning = format!("ignored: {why}");
            }
        }
        (
            limit,
            Reading {
                file: file.into(),
                content: text.trim().to_string(),
                meaning,
            },
        )
    }

    fn memory_walk(&mut self, l: Located) -> (Walk, Option<Figure<u64>>, Option<Figure<u64>>) {
        let mut walk = self.start("memory", &l);
        let mut max = None;
        let mut high = None;
        let hard_file = match l.hierarchy {
            Hierarchy::V2 => "memory.max",
            Hierarchy::V1 => "memory.limit_in_bytes",
        };
        for at in &l.levels {
            let mut files = Vec::new();
            if let Some(text) = self.read(&format!("{}/{hard_file}", at.dir)) {
                let (limit, reading) = self.memory_meaning(at, hard_file, &text);
                if let Some(v) = limit {
                    keep_min(&mut max, v, || source(&at.dir, hard_file, &at.cgroup));
                }
                files.push(reading);
            }
            if l.hierarchy == Hierarchy::V2 {
                if let Some(text) = self.read(&format!("{}/memory.high", at.dir)) {
                    let (limit, reading) = self.memory_meaning(at, "memory.high", &text);
                    if let Some(v) = limit {
                        keep_min(&mut high, v, || source(&at.dir, "memory.high", &at.cgroup));
                    }
                    files.push(reading);
                }
            }
            walk.levels.push(level(at, files));
        }
        // v1: the leaf's hierarchical limit is the minimum over every
        // ancestor, the invisible ones included.
        if let (Hierarchy::V1, Some(leaf)) = (l.hierarchy, l.levels.first()) {
            const KEY: &str = "hierarchical_memory_limit";
            if let Some(text) = self.read(&format!("{}/memory.stat", leaf.dir)) {
                if let Some(v) = limits::stat_value(&text, KEY) {
                    let value = limits::classify_memory(v, self.host.mem_total);
                    if let MemValue::Limit(v) = value {
                        keep_min(&mut max, v, || {
                            format!("{}/memory.stat {KEY} (level {})", leaf.dir, leaf.cgroup)
                        });
                    }
                    if let Some(first) = walk.levels.first_mut() {
                        first.files.push(Reading {
                            file: "memory.stat".into(),
                            content: format!("{KEY} {v}"),
                            meaning: match value {
                                MemValue::Limit(v) => format_bytes(v),
                                MemValue::AboveTotal(_) => "no limit (at or above MemTotal)".into(),
                                MemValue::Unlimited => "no limit".into(),
                            },
                        });
                    }
                }
            }
        }
        (walk, max, high)
    }

    fn cpuset_walk(&mut self, l: Located) -> (Walk, Option<Figure<String>>) {
        let mut walk = self.start("cpuset", &l);
        let Some(leaf) = l.levels.first() else {
            return (walk, None);
        };
        let names: &[&str] = match l.hierarchy {
            Hierarchy::V2 => &["cpuset.cpus.effective"],
            Hierarchy::V1 => &["cpuset.effective_cpus", "cpuset.cpus"],
        };
        let mut files = Vec::new();
        let mut best = None;
        for name in names {
            let Some(text) = self.read(&format!("{}/{name}", leaf.dir)) else {
                continue;
            };
            let list = text.trim().to_string();
            let meaning = match limits::count_cpu_list(&list) {
                Ok(0) => "empty (inherited)".into(),
                Ok(n) => {
                    best = Some(Figure {
                        value: list.clone(),
                        source: source(&leaf.dir, name, &leaf.cgroup),
                    });
                    cpus_text(n as f64)
                }
                Err(why) => format!("ignored: {why}"),
            };
            files.push(Reading {
                file: (*name).into(),
                content: list,
                meaning,
            });
            if best.is_some() {
                break;
            }
        }
        walk.levels.push(level(leaf, files));
        (walk, best)
    }
}

fn level(at: &locate::LevelDir, files: Vec<Reading>) -> Level {
    Level {
        cgroup: at.cgroup.clone(),
        dir: at.dir.clone(),
        files,
    }
}

/// One warning per distinct message, prefixed with the controllers it
/// concerns (`cpu, memory: …`), in the order first seen.
fn merge_notes(notes: Vec<(Option<&'static str>, String)>) -> Vec<String> {
    let mut merged: Vec<(Vec<&'static str>, String)> = Vec::new();
    for (controller, message) in notes {
        let i = match merged.iter().position(|(_, m)| *m == message) {
            Some(i) => i,
            None => {
                merged.push((Vec::new(), message));
                merged.len() - 1
            }
        };
        if let Some(c) = controller {
            if !merged[i].0.contains(&c) {
                merged[i].0.push(c);
            }
        }
    }
    merged
        .into_iter()
        .map(|(cs, m)| {
            if cs.is_empty() {
                m
            } else {
                format!("{}: {m}", cs.join(", "))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_merge_by_message() {
        let w = merge_notes(vec![
            (Some("cpu"), "x".into()),
            (None, "y".into()),
            (Some("memory"), "x".into()),
            (Some("cpu"), "x".into()),
        ]);
        assert_eq!(w, ["cpu, memory: x", "y"]);
    }

    #[test]
    fn cpu_text() {
        assert_eq!(cpus_text(1.5), "1.5 CPUs");
        assert_eq!(cpus_text(1.0), "1 CPU");
        assert_eq!(cpus_text(0.333333), "0.333 CPUs");
    }

    #[test]
    fn live_host_facts_are_sane() {
        let h = HostFacts::read(Path::new("/"));
        assert!(h.online_cpus >= 1);
        if let Some(a) = h.affinity_cpus {
            assert!(a >= 1);
        }
        let missing = HostFacts::read(Path::new("/nonexistent-cinit-root"));
        assert_eq!(missing.mem_total, None);
        assert!(missing.online_cpus >= 1);
    }

    #[test]
    fn empty_root_gives_host_figures_and_a_warning() {
        let host = HostFacts {
            online_cpus: 8,
            affinity_cpus: None,
            mem_total: Some(1 << 34),
        };
        let r = detect(Path::new("/nonexistent-cinit-root"), &host);
        assert_eq!(r.cgroup, "none");
        assert_eq!(r.cpus.value, 8.0);
        assert!(r.memory.is_none());
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    }
}
