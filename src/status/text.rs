//! The status for people: a header, one table row per worker (like
//! `pm2 list`), the sockets, the limits.

use std::fmt::Write as _;
use std::time::Duration;

use super::{Exit, Program, Slot, Status, Worker};
use crate::vocab::{format_bytes, format_number, format_uptime};

fn uptime(s: f64) -> String {
    format_uptime(Duration::from_secs_f64(s.max(0.0)))
}

fn or_dash(v: Option<String>) -> String {
    v.unwrap_or_else(|| "-".into())
}

/// `3 (crash 2, reload 1)`, or `0`.
fn restarts(s: &Slot) -> String {
    let total = s.restarts.total();
    let parts: Vec<String> = s
        .restarts
        .pairs()
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(why, n)| format!("{why} {n}"))
        .collect();
    if parts.is_empty() {
        total.to_string()
    } else {
        format!("{total} ({})", parts.join(", "))
    }
}

/// `code 1 (crash)`, `SIGKILL (oom)`.
pub fn exit(e: &Exit) -> String {
    let how = match (&e.code, &e.signal) {
        (Some(c), _) => format!("code {c}"),
        (None, Some(s)) => format!("SIG{s}"),
        (None, None) => "?".into(),
    };
    match e.reason {
        Some(r) => format!("{how} ({r})"),
        None => how,
    }
}

fn label(p: &Program, slot: u32, tag: &str) -> String {
    let base = if p.name.is_empty() {
        slot.to_string()
    } else {
        format!("{}.{slot}", p.name)
    };
    if tag.is_empty() {
        base
    } else {
        format!("{base} {tag}")
    }
}

fn worker_row(
    p: &Program,
    s: &Slot,
    w: Option<&Worker>,
    tag: &str,
    state: &str,
    plain: bool,
) -> Vec<String> {
    let slot = if plain {
        "child".to_string()
    } else {
        label(p, s.slot, tag)
    };
    // The details the JSON has as fields: why a worker is being stopped,
    // when a slot without one starts again.
    let state = match (w.and_then(|w| w.failing), s.restart_in_s) {
        (Some(why), _) if state == "stopping" => format!("stopping ({why})"),
        (None, Some(t)) if w.is_none() => format!("{state} ({}s)", format_number(t)),
        _ => state.to_string(),
    };
    vec![
        slot,
        or_dash(w.map(|w| w.pid.to_string())),
        state,
        match w {
            Some(w) if w.ready => "yes".into(),
            Some(_) => "no".into(),
            None => "-".into(),
        },
        or_dash(w.map(|w| uptime(w.uptime_s))),
        if tag.is_empty() {
            restarts(s)
        } else {
            "-".into()
        },
        if tag.is_empty() {
            or_dash(s.last_exit.as_ref().map(exit))
        } else {
            "-".into()
        },
        or_dash(w.and_then(|w| w.memory_bytes).map(format_bytes)),
        or_dash(w.and_then(|w| w.cpu_percent).map(|c| format!("{:.1}%", c))),
        or_dash(w.and_then(|w| w.status.clone())),
    ]
}

fn table(rows: &[Vec<String>]) -> String {
    let mut width = vec![0; rows.iter().map(Vec::len).max().unwrap_or(0)];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let mut o = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                let _ = write!(line, "{c:<w$}  ", w = width[i]);
            }
        }
        let _ = writeln!(o, "{}", line.trim_end());
    }
    o
}

/// The whole status as text.
pub fn render(s: &Status) -> String {
    let mut o = String::new();
    let plain = s.mode == "plain";
    let ready: u32 = s.programs.iter().map(|p| p.ready).sum();
    let slots: u32 = s.programs.iter().map(|p| p.workers).sum();
    let _ = write!(
        o,
        "cinit (pid {})  {}  up {}",
        s.pid,
        s.phase.as_str(),
        uptime(s.uptime)
    );
    if let Some(step) = &s.step {
        let _ = write!(o, "  pre-start step {step}");
    }
    let _ = writeln!(
        o,
        "  {}",
        if s.ready {
            format!("ready ({ready}/{slots})")
        } else {
            format!("not ready ({ready}/{slots})")
        }
    );
    for p in &s.programs {
        let name = if p.name.is_empty() {
            String::new()
        } else {
            format!("{} ", p.name)
        };
        if !plain {
            let _ = writeln!(
                o,
                "{name}workers {} ({}; at most {}){}",
                p.workers,
                p.source,
                p.max_workers,
                if p.rolling {
                    ", rolling restart under way"
                } else {
                    ""
                }
            );
        }
    }
    let _ = writeln!(o);
    let mut rows = vec![[
        "SLOT",
        "PID",
        "STATE",
        "READY",
        "UPTIME",
        "RESTARTS",
        "LAST EXIT",
        "MEMORY",
        "CPU",
        "STATUS",
    ]
    .map(String::from)
    .to_vec()];
    for p in &s.programs {
        for sl in &p.slots {
            rows.push(worker_row(
                p,
                sl,
                sl.worker.as_ref(),
                "",
                sl.state.as_str(),
                plain,
            ));
            if let Some(r) = &sl.replacement {
                let state = if r.ready { "ready" } else { "starting" };
                rows.push(worker_row(p, sl, Some(r), "new", state, plain));
            }
        }
        for r in &p.retiring {
            let mut row = vec![
                label(p, r.slot, "old"),
                r.pid.to_string(),
                "retiring".into(),
            ];
            row.extend(std::iter::repeat_n("-".to_string(), 7));
            rows.push(row);
        }
    }
    if rows.len() == 1 {
        let _ = writeln!(o, "no worker has started yet");
    } else {
        o.push_str(&table(&rows));
    }
    if !s.listeners.is_empty() {
        let _ = writeln!(o);
        let mut rows = vec![["LISTEN", "FD", "ACCEPT QUEUE"].map(String::from).to_vec()];
        for l in &s.listeners {
            rows.push(vec![
                l.address.clone(),
                l.fd.to_string(),
                match (l.accept_queue, l.accept_queue_max) {
                    (Some(q), Some(m)) => format!("{q} of {m}"),
                    (Some(q), None) => q.to_string(),
                    _ => "-".into(),
                },
            ]);
        }
        o.push_str(&table(&rows));
    }
    if let Some(l) = &s.limits {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "cpus    {}  from {}",
            format_number(l.cpus),
            l.cpus_source
        );
        match (&l.memory_bytes, &l.memory_source) {
            (Some(m), Some(src)) => {
                let _ = writeln!(o, "memory  {}  from {src}", format_bytes(*m));
            }
            _ => {
                let _ = writeln!(o, "memory  no limit");
            }
        }
        if let Some(z) = &l.sizing {
            let _ = writeln!(
                o,
                "sizing  {} worker(s) for these limits, limited by {}",
                z.count, z.limited_by
            );
        }
    }
    o.trim_end().to_string()
}
