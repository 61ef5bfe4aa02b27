//! The status as a Prometheus text page (`GET /metrics`, format 0.0.4).
//!
//! Every name starts with `cinit_` and says its unit (`_seconds`,
//! `_bytes`, `_total` for counters). Series that are counts by a fixed
//! set of values (phases, states, reasons) are all present, zeros
//! included, so a query never sees a series appear from nothing. Worker
//! series are labelled by program and slot (not by pid: a restart would
//! start a new series), and exist while the slot has a worker.

use std::fmt::Write as _;

use super::{Phase, SlotState, Status};

/// A label value, escaped as the format says (`\\`, `\"`, `\n`).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Page(String);

impl Page {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", esc(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// The page for `status`.
pub fn render(s: &Status) -> String {
    let mut m = Page(String::new());
    let b = |v: bool| if v { 1.0 } else { 0.0 };

    m.family(
        "cinit_start_time_seconds",
        "gauge",
        "Unix time of the start.",
    );
    m.sample("cinit_start_time_seconds", &[], s.started_at_s);
    m.family("cinit_uptime_seconds", "gauge", "Seconds since the start.");
    m.sample("cinit_uptime_seconds", &[], s.uptime);
    m.family("cinit_phase", "gauge", "1 for the phase now.");
    for p in Phase::ALL {
        m.sample("cinit_phase", &[("phase", p.as_str())], b(s.phase == p));
    }
    m.family("cinit_ready", "gauge", "1 when init --probe ready passes.");
    m.sample("cinit_ready", &[], b(s.ready));

    m.family(
        "cinit_workers",
        "gauge",
        "Worker slots by state; retiring: old workers.",
    );
    for p in &s.programs {
        for st in SlotState::ALL {
            let n = p.slots.iter().filter(|sl| sl.state == st).count();
            m.sample(
                "cinit_workers",
                &[("program", &p.name), ("state", st.as_str())],
                n as f64,
            );
        }
        m.sample(
            "cinit_workers",
            &[("program", &p.name), ("state", "retiring")],
            p.retiring.len() as f64,
        );
    }
    m.family("cinit_workers_desired", "gauge", "The worker count now.");
    for p in &s.programs {
        m.sample(
            "cinit_workers_desired",
            &[("program", &p.name)],
            p.workers as f64,
        );
    }
    m.family("cinit_workers_max", "gauge", "--max-workers.");
    for p in &s.programs {
        m.sample(
            "cinit_workers_max",
            &[("program", &p.name)],
            p.max_workers as f64,
        );
    }
    m.family("cinit_workers_ready", "gauge", "Slots with a ready worker.");
    for p in &s.programs {
        m.sample(
            "cinit_workers_ready",
            &[("program", &p.name)],
            p.ready as f64,
        );
    }
    m.family("cinit_restarts_total", "counter", "Restarts by reason.");
    for p in &s.programs {
        for (why, n) in p.restarts.pairs() {
            m.sample(
                "cinit_restarts_total",
                &[("program", &p.name), ("reason", why)],
                n as f64,
            );
        }
    }

    let workers: Vec<_> = s
        .programs
        .iter()
        .flat_map(|p| {
            p.slots
                .iter()
                .filter_map(move |sl| sl.worker.as_ref().map(|w| (p, sl.slot.to_string(), w)))
        })
        .collect();
    let labels = |p: &super::Program, slot: &str| -> Vec<(&'static str, String)> {
        vec![("program", p.name.clone()), ("slot", slot.to_string())]
    };
    type Get = fn(&super::Worker) -> Option<f64>;
    let families: [(&str, &str, &str, Get); 6] = [
        ("cinit_worker_pid", "gauge", "The worker's pid.", |w| {
            Some(w.pid as f64)
        }),
        ("cinit_worker_ready", "gauge", "1 when it is ready.", |w| {
            Some(if w.ready { 1.0 } else { 0.0 })
        }),
        (
            "cinit_worker_uptime_seconds",
            "gauge",
            "Seconds since its start.",
            |w| Some(w.uptime_s),
        ),
        (
            "cinit_worker_memory_bytes",
            "gauge",
            "PSS of its process tree (RSS where unreadable).",
            |w| w.memory_bytes.map(|v| v as f64),
        ),
        (
            "cinit_worker_rss_bytes",
            "gauge",
            "RSS of its process tree.",
            |w| w.rss_bytes.map(|v| v as f64),
        ),
        (
            "cinit_worker_cpu_seconds_total",
            "counter",
            "CPU time of its process tree.",
            |w| w.cpu_s,
        ),
    ];
    for (name, kind, help, get) in families {
        m.family(name, kind, help);
        for (p, slot, w) in &workers {
            if let Some(v) = get(w) {
                let l = labels(p, slot);
                let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
                m.sample(name, &l, v);
            }
        }
    }

    m.family(
        "cinit_listener_accept_queue",
        "gauge",
        "Connections waiting to be accepted.",
    );
    for l in &s.listeners {
        if let Some(q) = l.accept_queue {
            m.sample(
                "cinit_listener_accept_queue",
                &[("address", &l.address)],
                q as f64,
            );
        }
    }
    m.family("cinit_listener_accept_queue_max", "gauge", "The backlog.");
    for l in &s.listeners {
        if let Some(q) = l.accept_queue_max {
            m.sample(
                "cinit_listener_accept_queue_max",
                &[("address", &l.address)],
                q as f64,
            );
        }
    }
    if let Some(l) = &s.limits {
        m.family("cinit_limit_cpus", "gauge", "CPUs the container may use.");
        m.sample("cinit_limit_cpus", &[], l.cpus);
        if let Some(mem) = l.memory_bytes {
            m.family(
                "cinit_limit_memory_bytes",
                "gauge",
                "The container's memory limit.",
            );
            m.sample("cinit_limit_memory_bytes", &[], mem as f64);
        }
    }
    m.0
}
