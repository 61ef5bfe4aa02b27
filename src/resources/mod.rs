//! Resource detection: the CPUs and memory this process may really use,
//! read from cgroup v1/v2 files and the affinity mask under an injectable
//! root directory. (Stub: the detection is being written.)

use std::path::Path;

use serde::Serialize;

/// Facts about the host that do not come from files under the root:
/// injected so tests can fake them.
#[derive(Clone, Debug, Serialize)]
pub struct HostFacts {
    /// CPUs online on the host (`num_cpus::get_physical` is not used).
    pub online_cpus: usize,
    /// CPUs in this process's affinity mask (`sched_getaffinity`).
    pub affinity_cpus: Option<usize>,
    /// MemTotal from /proc/meminfo, in bytes.
    pub mem_total: Option<u64>,
}

impl HostFacts {
    /// The live facts of this process, with /proc read under `root`.
    pub fn read(_root: &Path) -> HostFacts {
        HostFacts {
            online_cpus: num_cpus::get(),
            affinity_cpus: None,
            mem_total: None,
        }
    }
}

/// A number and the place it was read from (file and cgroup level).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Figure<T> {
    pub value: T,
    pub source: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Resources {
    /// "v1", "v2", "hybrid" or "none".
    pub cgroup: String,
    /// Effective CPUs: the smallest of the quota walk and the affinity mask.
    pub cpus: Figure<f64>,
    /// Effective memory limit; `None` when no limit is set.
    pub memory: Option<Figure<u64>>,
    pub host: HostFacts,
    /// What could not be resolved; never fatal.
    pub warnings: Vec<String>,
}

pub fn detect(_root: &Path, host: &HostFacts) -> Resources {
    Resources {
        cgroup: "none".into(),
        cpus: Figure {
            value: host.affinity_cpus.unwrap_or(host.online_cpus) as f64,
            source: "host".into(),
        },
        memory: None,
        host: host.clone(),
        warnings: Vec::new(),
    }
}
