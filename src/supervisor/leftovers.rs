//! Stopping what is left once the workers are gone: as PID 1, every other
//! process in the container (`kill(-1)`, which spares the init itself);
//! otherwise every descendant of the init, found by walking the parent
//! links in /proc, so that a subreaper never signals anything outside its
//! own tree.
//!
//! A stopped process does not act on SIGTERM until it is continued, so each
//! stop signal is followed by SIGCONT.

use std::collections::HashMap;

use crate::process::sys;
use crate::vocab::Signal;

pub fn signal_all(signal: Signal, pid1: bool) {
    let targets: Vec<i32> = if pid1 {
        vec![-1]
    } else {
        descendants(std::process::id() as i32)
    };
    for pid in targets {
        sys::kill_raw(pid, signal.raw());
        if signal != Signal::KILL {
            sys::kill_raw(pid, Signal::CONT.raw());
        }
    }
}

/// Every process below `root`, read from /proc/*/stat.
fn descendants(root: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| parse_ppid(&s))
        {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        if let Some(kids) = children.get(&p) {
            for &k in kids {
                out.push(k);
                stack.push(k);
            }
        }
    }
    out
}

/// The 4th field of /proc/PID/stat; the 2nd, the command name, may hold
/// spaces and parentheses, so parse from the last `)`.
fn parse_ppid(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppid_with_odd_names() {
        assert_eq!(parse_ppid("42 (a b) c) S 7 42 42 0"), Some(7));
        assert_eq!(parse_ppid("garbage"), None);
    }
}
