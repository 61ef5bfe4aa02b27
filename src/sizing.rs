//! The worker-count decision for `--workers auto` (SPEC section 4): a pure
//! function of the detected resources and the sizing settings. (Stub.)

use serde::Serialize;

use crate::resources::{Figure, Resources};

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
    pub cpus: Figure<f64>,
    pub memory: Option<Figure<u64>>,
    pub cpu_bound: u32,
    pub memory_bound: Option<u32>,
    /// The formula with its inputs, as printed by the dry run.
    pub formula: String,
    /// "cpu", "memory", "min_workers" or "max_workers".
    pub limited_by: String,
}

pub fn decide(input: &SizingInput, res: &Resources) -> Sizing {
    let cpus = input
        .cpus_override
        .map(|v| Figure {
            value: v,
            source: "--cpus".into(),
        })
        .unwrap_or_else(|| res.cpus.clone());
    let cpu_bound = (cpus.value * input.workers_per_cpu + input.extra_workers).floor() as u32;
    let count = cpu_bound.clamp(input.min_workers, input.max_workers);
    Sizing {
        count,
        cpus,
        memory: None,
        cpu_bound,
        memory_bound: None,
        formula: String::new(),
        limited_by: "cpu".into(),
    }
}
