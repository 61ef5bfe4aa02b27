//! A worker's resource use, read from /proc when someone asks (a status
//! request, a metrics scrape; the memory guard's sampler): nothing here
//! runs on its own, so an idle init reads nothing.
//!
//! A worker is its whole process tree (found through the `children`
//! lists of its threads, as `readiness::tree` does): gunicorn's master
//! under cinit has its workers as grandchildren, and they are what uses
//! the memory. One walk reads each process's `stat` (CPU time, thread
//! count) and `smaps_rollup` with one reused buffer: a status of 64
//! workers costs a few hundred small reads, no more.
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

/// What a process tree uses: its memory, and its CPU time so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub memory: Memory,
    /// PSS where a process's smaps_rollup could be read, else its RSS,
    /// summed: the figure the memory guard and the status use.
    pub best: u64,
    /// utime + stime of every process of the tree, in clock ticks.
    pub ticks: u64,
    /// How many processes the tree has.
    pub processes: u32,
}

/// Reads /proc files into one buffer: open, read to the end, close, and
/// nothing else (`fs::read_to_string` adds an fstat per file; a status
/// of 64 workers reads a few hundred files).
#[derive(Default)]
pub struct Reader {
    buf: Vec<u8>,
    path: String,
}

impl Reader {
    /// The text of `/proc/{pid}/{name}`, or None.
    fn read(&mut self, pid: i32, name: &str) -> Option<&str> {
        use std::fmt::Write as _;
        use std::io::Read;
        self.path.clear();
        let _ = write!(self.path, "/proc/{pid}/{name}");
        let mut f = std::fs::File::open(&self.path).ok()?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            match f.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
            if self.buf.len() > 1 << 20 {
                break;
            }
        }
        std::str::from_utf8(&self.buf).ok()
    }

    /// The children of `pid`: through its main thread's list when it has
    /// one thread (the common case, one read), else every thread's.
    fn children(&mut self, pid: i32, threads: u32, out: &mut Vec<i32>) {
        let mut list = |r: &mut Reader, tid: i32| {
            if let Some(text) = r.read(pid, &format!("task/{tid}/children")) {
                out.extend(
                    text.split_whitespace()
                        .filter_map(|k| k.parse::<i32>().ok()),
                );
            }
        };
        if threads <= 1 {
            list(self, pid);
            return;
        }
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return;
        };
        let tids: Vec<i32> = tasks
            .flatten()
            .filter_map(|t| t.file_name().to_str()?.parse().ok())
            .collect();
        for tid in tids {
            list(self, tid);
        }
    }

    /// The usage of `pid` and its descendants (at most 4096 processes);
    /// None when `pid` is gone.
    pub fn tree_usage(&mut self, pid: i32) -> Option<Usage> {
        let mut todo = vec![pid];
        let mut total = Usage {
            memory: Memory {
                pss: Some(0),
                rss: 0,
            },
            ..Usage::default()
        };
        let mut i = 0;
        while i < todo.len() && todo.len() < 4096 {
            let p = todo[i];
            i += 1;
            let Some((ticks, threads)) = self.read(p, "stat").and_then(parse_stat) else {
                continue;
            };
            total.processes += 1;
            total.ticks += ticks;
            let m = self.memory(p);
            total.best += m.best();
            total.memory.rss += m.rss;
            total.memory.pss = match (total.memory.pss, m.pss) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
            self.children(p, threads, &mut todo);
        }
        (total.processes > 0).then_some(total)
    }
}

impl Reader {
    /// The usage of each tree rooted at `roots`, from one pass over
    /// /proc: every process's `stat` gives its parent and CPU time, and
    /// only the trees' members have their `smaps_rollup` read. In a
    /// container (as PID 1) /proc holds little more than the workers, so
    /// this reads far less than a walk of each tree's `children` lists;
    /// on a host (not PID 1) it reads every process's `stat`, a few
    /// milliseconds for a thousand.
    pub fn usage_by_scan(&mut self, roots: &[i32]) -> Vec<Option<Usage>> {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return roots.iter().map(|&r| self.tree_usage(r)).collect();
        };
        let pids: Vec<i32> = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        // (pid, parent, ticks): a list, searched in place. As PID 1 it
        // holds the container's processes, a few dozen.
        let mut procs: Vec<(i32, i32, u64)> = Vec::with_capacity(pids.len());
        for p in pids {
            if let Some((parent, ticks)) = self.read(p, "stat").and_then(parse_parent_ticks) {
                procs.push((p, parent, ticks));
            }
        }
        roots
            .iter()
            .map(|&root| {
                procs.iter().find(|x| x.0 == root)?;
                let mut todo = vec![root];
                let mut total = Usage {
                    memory: Memory {
                        pss: Some(0),
                        rss: 0,
                    },
                    ..Usage::default()
                };
                let mut i = 0;
                while i < todo.len() && todo.len() < 4096 {
                    let p = todo[i];
                    i += 1;
                    let Some(&(_, _, ticks)) = procs.iter().find(|x| x.0 == p) else {
                        continue;
                    };
                    total.processes += 1;
                    total.ticks += ticks;
                    let m = self.memory(p);
                    total.best += m.best();
                    total.memory.rss += m.rss;
                    total.memory.pss = match (total.memory.pss, m.pss) {
                        (Some(a), Some(b)) => Some(a + b),
                        _ => None,
                    };
                    todo.extend(procs.iter().filter(|x| x.1 == p).map(|x| x.0));
                }
                Some(total)
            })
            .collect()
    }

    /// One process's memory: smaps_rollup, else VmRSS.
    fn memory(&mut self, pid: i32) -> Memory {
        if let Some(m) = self.read(pid, "smaps_rollup").and_then(parse_smaps_rollup) {
            return m;
        }
        Memory {
            pss: None,
            rss: self
                .read(pid, "status")
                .and_then(|t| kib_field(t, "VmRSS:"))
                .unwrap_or(0),
        }
    }
}

/// The parent (field 4) and utime + stime of a `/proc/PID/stat` text.
fn parse_parent_ticks(stat: &str) -> Option<(i32, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let parent = rest.split_whitespace().nth(1)?.parse().ok()?;
    Some((parent, parse_stat(stat)?.0))
}

/// The memory of `pid` and its descendants; None when `pid` is gone.
pub fn tree_memory(pid: i32) -> Option<Memory> {
    Reader::default().tree_usage(pid).map(|u| u.memory)
}

/// CPU time (user + system, clock ticks) of `pid` and its descendants;
/// None when `pid` is gone.
pub fn tree_cpu_ticks(pid: i32) -> Option<u64> {
    Reader::default().tree_usage(pid).map(|u| u.ticks)
}

/// One process's memory; None when it is gone.
pub fn process_memory(pid: i32) -> Option<Memory> {
    let mut r = Reader::default();
    r.read(pid, "stat")?;
    Some(r.memory(pid))
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

/// CPU time (user + system, clock ticks) of one process.
pub fn cpu_ticks(pid: i32) -> Option<u64> {
    parse_stat_ticks(Reader::default().read(pid, "stat")?)
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` text. The
/// command name may hold spaces and parentheses: fields count from the
/// last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    parse_stat(stat).map(|(ticks, _)| ticks)
}

/// utime + stime (fields 14, 15) and num_threads (field 20).
fn parse_stat(stat: &str) -> Option<(u64, u32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let threads: u32 = fields.nth(4)?.parse().ok()?;
    Some((utime + stime, threads))
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
    fn stat_gives_cpu_ticks_and_threads_past_an_odd_name() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1234 0 0";
        assert_eq!(parse_stat(stat), Some((300, 3)));
        assert_eq!(parse_stat_ticks(stat), Some(300));
        assert_eq!(parse_stat_ticks("42 (x) S 1"), None);
    }

    #[test]
    fn a_tree_counts_its_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let me = std::process::id() as i32;
        let mut r = Reader::default();
        let with = r.tree_usage(me).unwrap();
        let alone = r.tree_usage(child.id() as i32).unwrap();
        assert_eq!(alone.processes, 1);
        assert!(with.processes >= 2, "{with:?}");
        assert!(with.memory.rss > alone.memory.rss);
        let scanned = r.usage_by_scan(&[me, child.id() as i32, -5]);
        assert_eq!(scanned[1].map(|u| u.processes), Some(1));
        assert!(scanned[0].unwrap().processes >= 2);
        assert_eq!(scanned[2], None);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(r.tree_usage(child.id() as i32), None);
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
