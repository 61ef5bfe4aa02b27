//! The worker-count decision for `--workers auto` (SPEC section 4): a pure
//! function of the detected resources and the sizing settings.
//!
//! ```text
//! cpu bound    = floor(cpus × workers_per_cpu + extra_workers)
//! memory bound = floor((memory − reserve) / worker_memory), only with a known limit
//! count        = clamp(min(cpu bound, memory bound), min_workers, max_workers)
//! ```
//!
//! The CPU figure stays fractional (1.5 CPUs gives floor(4.0) = 4, not
//! 2 × 1 + 1 or 2 × 2 + 1). `--cpus`/`--memory` replace the detected
//! figures, and the source says so. Invariants: never panics, whatever the
//! settings (NaN, zero worker memory, min above max); `formula` shows the
//! real inputs so the dry run explains the number. docs/sizing.md has the
//! reasons behind the defaults.

use crate::vocab::format_number as num;
use std::fmt::Write as _;

use serde::Serialize;

use crate::resources::{Figure, Resources};
use crate::vocab::format_bytes;

#[derive(Clone, Debug)]
pub struct SizingInput {
    pub workers_per_cpu: f64,
    pub extra_workers: f64,
    pub worker_memory: u64,
    pub memory_reserve: u64,
    pub min_workers: u32,
    pub max_workers: u32,
    /// `--cpus`: replaces the detected CPUs.
    pub cpus_override: Option<f64>,
    /// `--memory`: replaces the detected memory limit.
    pub memory_override: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Sizing {
    pub count: u32,
    /// The CPUs used: detected, or the `--cpus` override.
    pub cpus: Figure<f64>,
    /// The memory limit used: detected, the `--memory` override, or `None`
    /// (no memory bound).
    pub memory: Option<Figure<u64>>,
    pub cpu_bound: u32,
    pub memory_bound: Option<u32>,
    /// The formula with its inputs, one line per step, as printed by the
    /// dry run.
    pub formula: String,
    /// "cpu", "memory", "min_workers" or "max_workers". A tie between the
    /// CPU and memory bounds is "cpu".
    pub limited_by: String,
}

pub fn decide(input: &SizingInput, res: &Resources) -> Sizing {
    let cpus = match input.cpus_override {
        Some(v) => Figure {
            value: v,
            source: format!(
                "--cpus override; detected {} from {}",
                num(res.cpus.value),
                res.cpus.source
            ),
        },
        None => res.cpus.clone(),
    };
    let memory = match input.memory_override {
        Some(v) => Some(Figure {
            value: v,
            source: format!(
                "--memory override; detected {}",
                match &res.memory {
                    Some(m) => format!("{} from {}", format_bytes(m.value), m.source),
                    None => "no limit".into(),
                }
            ),
        }),
        None => res.memory.clone(),
    };

    let mut formula = String::new();
    let extra = if input.extra_workers < 0.0 {
        format!("− {}", num(-input.extra_workers))
    } else {
        format!("+ {}", num(input.extra_workers))
    };
    let cpu_bound = floor_u32(cpus.value * input.workers_per_cpu + input.extra_workers);
    let _ = writeln!(
        formula,
        "cpu bound    floor({} × {} {extra}) = {cpu_bound}",
        num(cpus.value),
        num(input.workers_per_cpu)
    );

    let memory_bound = match &memory {
        None => {
            let _ = writeln!(formula, "memory bound none (no memory limit known)");
            None
        }
        Some(_) if input.worker_memory == 0 => {
            let _ = writeln!(formula, "memory bound none (worker memory is 0)");
            None
        }
        Some(m) => {
            let usable = m.value.saturating_sub(input.memory_reserve);
            let bound = u32::try_from(usable / input.worker_memory).unwrap_or(u32::MAX);
            let _ = writeln!(
                formula,
                "memory bound floor(({} − {}) / {}) = {bound}{}",
                format_bytes(m.value),
                format_bytes(input.memory_reserve),
                format_bytes(input.worker_memory),
                if input.memory_reserve > m.value {
                    " (the reserve exceeds the memory)"
                } else {
                    ""
                }
            );
            Some(bound)
        }
    };

    let raw = memory_bound.map_or(cpu_bound, |m| m.min(cpu_bound));
    // Not `clamp`: it panics when min > max; here min wins.
    let count = raw.min(input.max_workers).max(input.min_workers);
    let inner = match memory_bound {
        Some(m) => format!("min({cpu_bound}, {m})"),
        None => cpu_bound.to_string(),
    };
    let _ = write!(
        formula,
        "count        clamp({inner}, {}, {}) = {count}",
        input.min_workers, input.max_workers
    );
    let limited_by = if count > raw {
        "min_workers"
    } else if count < raw {
        "max_workers"
    } else if memory_bound.is_some_and(|m| m < cpu_bound) {
        "memory"
    } else {
        "cpu"
    };
    Sizing {
        count,
        cpus,
        memory,
        cpu_bound,
        memory_bound,
        formula,
        limited_by: limited_by.into(),
    }
}

/// floor(v) as a worker count: NaN and negatives are 0, huge values
/// saturate.
fn floor_u32(v: f64) -> u32 {
    let f = v.floor();
    if f.is_nan() || f <= 0.0 {
        0
    } else if f >= u32::MAX as f64 {
        u32::MAX
    } else {
        f as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::HostFacts;

    /// The defaults of the table of settings.
    fn input() -> SizingInput {
        let d = crate::config::Config::defaults();
        SizingInput {
            workers_per_cpu: d.workers_per_cpu,
            extra_workers: d.extra_workers,
            worker_memory: d.worker_memory,
            memory_reserve: d.memory_reserve,
            min_workers: d.min_workers,
            max_workers: d.max_workers,
            cpus_override: None,
            memory_override: None,
        }
    }

    fn res(cpus: f64, memory: Option<u64>) -> Resources {
        let host = HostFacts {
            online_cpus: 8,
            affinity_cpus: Some(8),
            mem_total: Some(16 << 30),
        };
        let mut r = crate::resources::detect(std::path::Path::new("/nonexistent"), &host);
        r.cpus = Figure {
            value: cpus,
            source: "test cpus".into(),
        };
        r.memory = memory.map(|value| Figure {
            value,
            source: "test memory".into(),
        });
        r
    }

    #[test]
    fn docker_cpus_1_5_memory_512m() {
        let s = decide(&input(), &res(1.5, Some(512 << 20)));
        assert_eq!((s.cpu_bound, s.memory_bound, s.count), (4, Some(2), 2));
        assert_eq!(s.limited_by, "memory");
        assert_eq!(
            s.formula,
            "cpu bound    floor(1.5 × 2 + 1) = 4\n\
             memory bound floor((512 MiB − 0 B) / 256 MiB) = 2\n\
             count        clamp(min(4, 2), 1, 64) = 2"
        );
    }

    #[test]
    fn no_memory_limit_means_no_memory_bound() {
        let s = decide(&input(), &res(8.0, None));
        assert_eq!((s.cpu_bound, s.memory_bound, s.count), (17, None, 17));
        assert_eq!(s.limited_by, "cpu");
        assert_eq!(
            s.formula,
            "cpu bound    floor(8 × 2 + 1) = 17\n\
             memory bound none (no memory limit known)\n\
             count        clamp(17, 1, 64) = 17"
        );
    }

    #[test]
    fn half_a_cpu() {
        let s = decide(&input(), &res(0.5, None));
        assert_eq!(s.count, 2);
    }

    #[test]
    fn clamped_by_min_and_max() {
        let s = decide(&input(), &res(64.0, None));
        assert_eq!((s.cpu_bound, s.count), (129, 64));
        assert_eq!(s.limited_by, "max_workers");
        let s = decide(&input(), &res(2.0, Some(100 << 20)));
        assert_eq!((s.memory_bound, s.count), (Some(0), 1));
        assert_eq!(s.limited_by, "min_workers");
    }

    #[test]
    fn reserve_is_taken_first() {
        let mut i = input();
        i.memory_reserve = 64 << 20;
        let s = decide(&i, &res(1.5, Some(512 << 20)));
        assert_eq!((s.memory_bound, s.count), (Some(1), 1));
        assert!(s
            .formula
            .contains("floor((512 MiB − 64 MiB) / 256 MiB) = 1"));
        i.memory_reserve = 1 << 30;
        let s = decide(&i, &res(1.5, Some(512 << 20)));
        assert_eq!(s.memory_bound, Some(0));
        assert!(s.formula.contains("the reserve exceeds the memory"));
    }

    #[test]
    fn overrides_replace_and_say_so() {
        let mut i = input();
        i.cpus_override = Some(4.0);
        i.memory_override = Some(1 << 30);
        let s = decide(&i, &res(1.5, None));
        assert_eq!((s.cpu_bound, s.memory_bound, s.count), (9, Some(4), 4));
        assert_eq!(
            s.cpus.source,
            "--cpus override; detected 1.5 from test cpus"
        );
        assert_eq!(
            s.memory.as_ref().unwrap().source,
            "--memory override; detected no limit"
        );
        let s = decide(&i, &res(1.5, Some(512 << 20)));
        assert_eq!(
            s.memory.unwrap().source,
            "--memory override; detected 512 MiB from test memory"
        );
    }

    #[test]
    fn tie_is_cpu() {
        let s = decide(&input(), &res(0.5, Some(512 << 20)));
        assert_eq!(
            (s.cpu_bound, s.memory_bound, s.limited_by.as_str()),
            (2, Some(2), "cpu")
        );
    }

    #[test]
    fn hostile_settings_do_not_panic() {
        let mut i = input();
        i.worker_memory = 0;
        i.extra_workers = -3.0;
        i.min_workers = 10;
        i.max_workers = 5;
        let s = decide(&i, &res(1.0, Some(1 << 30)));
        assert_eq!((s.cpu_bound, s.memory_bound, s.count), (0, None, 10));
        assert!(s.formula.contains("floor(1 × 2 − 3) = 0"));
        assert!(s.formula.contains("worker memory is 0"));
        i.workers_per_cpu = f64::NAN;
        assert_eq!(decide(&i, &res(1.0, None)).cpu_bound, 0);
        i.workers_per_cpu = f64::INFINITY;
        assert_eq!(decide(&i, &res(1.0, None)).cpu_bound, u32::MAX);
        let mut i = input();
        i.worker_memory = 1;
        assert_eq!(
            decide(&i, &res(1.0, Some(u64::MAX >> 2))).memory_bound,
            Some(u32::MAX)
        );
    }
}
