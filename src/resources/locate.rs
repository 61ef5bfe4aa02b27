//! Finding a controller's cgroup directory and the walk above it.
//!
//! The directory is `mount point + (cgroup path − mount root)`, never a
//! hard-coded `/sys/fs/cgroup/<path>`. The walk goes from that directory up
//! to and including the mount point: a limit on any visible ancestor is
//! enforced too, and a manager that moved itself into a leaf finds the
//! container's limit on the mount root.
//!
//! Two cases cannot be resolved exactly and say so instead of guessing:
//! a mount root above the namespace root (`/..`, a cgroup namespace entered
//! without remounting: only the mount root, an ancestor, is read), and a
//! cgroup that is not below the mount root (moved out of the namespace:
//! nothing is read, since the mount root is not an ancestor).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::mounts::{CgPath, CgroupLine, Mount};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Hierarchy {
    V1,
    V2,
}

/// How well the process's own cgroup directory was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    /// Not found: nothing was read.
    Unresolvable,
    /// Only an ancestor (the mount root) could be read.
    Partial,
    /// The directory and every ancestor up to the mount root.
    Exact,
}

/// A directory on the walk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelDir {
    /// The cgroup in namespace coordinates (`/docker/abc`, `/`, `/..`).
    pub cgroup: String,
    /// The directory as seen from the root (`/sys/fs/cgroup/cpu/docker/abc`).
    pub dir: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    pub hierarchy: Hierarchy,
    /// The path as written in `/proc/self/cgroup`.
    pub cgroup: String,
    pub mount: Mount,
    pub resolution: Resolution,
    /// Leaf first, mount root last; empty when unresolvable.
    pub levels: Vec<LevelDir>,
    /// Why the resolution is not exact, for the warnings.
    pub problem: Option<String>,
}

/// `root` joined with an absolute path as the process sees it.
pub fn under(root: &Path, abs: &str) -> PathBuf {
    root.join(abs.trim_start_matches('/'))
}

/// Finds `controller`: a v1 hierarchy that lists it wins (hybrid hosts
/// show a `0::` line as well); otherwise the unified hierarchy, if its
/// mount root offers the controller. `Err` says why nothing was found.
pub fn locate(
    root: &Path,
    controller: &str,
    lines: &[CgroupLine],
    mounts: &[Mount],
) -> Result<Located, String> {
    let (hierarchy, line) = if let Some(l) = lines.iter().find(|l| l.has(controller)) {
        (Hierarchy::V1, l)
    } else if let Some(l) = lines.iter().find(|l| l.is_v2()) {
        (Hierarchy::V2, l)
    } else {
        return Err(format!(
            "no line of /proc/self/cgroup names the {controller} controller or the unified hierarchy"
        ));
    };
    let best = mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| match hierarchy {
            Hierarchy::V1 => m.has_v1(controller),
            Hierarchy::V2 => m.is_v2(),
        })
        .map(|(i, m)| {
            let (resolution, levels, problem) = resolve(root, m, &line.path);
            let conventional = m.mount_point.starts_with("/sys/fs/cgroup");
            ((resolution, conventional, i), (m, levels, problem))
        })
        // Stacked mounts were dropped already; among several visible
        // mounts of one hierarchy, prefer the one that resolves, then the
        // conventional place, then the later line.
        .max_by(|a, b| a.0.cmp(&b.0));
    let Some(((resolution, _, _), (mount, levels, problem))) = best else {
        return Err(match hierarchy {
            Hierarchy::V1 => format!(
                "no {controller} cgroup hierarchy is mounted (cgroup {})",
                line.path
            ),
            Hierarchy::V2 => format!("no cgroup2 hierarchy is mounted (cgroup {})", line.path),
        });
    };
    if hierarchy == Hierarchy::V2 {
        // A cgroup has a subset of its parent's controllers, so when the
        // mount root lacks it, no level below can have it.
        let file = format!(
            "{}/cgroup.controllers",
            mount.mount_point.trim_end_matches('/')
        );
        if let Ok(text) = std::fs::read_to_string(under(root, &file)) {
            if !text.split_whitespace().any(|c| c == controller) {
                return Err(format!(
                    "the {controller} controller is not enabled in the cgroup2 hierarchy at {} \
                     (cgroup.controllers: {})",
                    mount.mount_point,
                    text.trim()
                ));
            }
        }
    }
    Ok(Located {
        hierarchy,
        cgroup: line.path.clone(),
        mount: mount.clone(),
        resolution,
        levels,
        problem,
    })
}

fn join_dir(mount_point: &str, rel: &[String]) -> String {
    if rel.is_empty() {
        return mount_point.to_string();
    }
    format!("{}/{}", mount_point.trim_end_matches('/'), rel.join("/"))
}

/// The walk for the cgroup `path` under `mount`.
fn resolve(root: &Path, mount: &Mount, path: &str) -> (Resolution, Vec<LevelDir>, Option<String>) {
    let unresolvable = |why: String| (Resolution::Unresolvable, Vec::new(), Some(why));
    let Some(cg) = CgPath::parse(path) else {
        return unresolvable(format!("the cgroup path `{path}` is not an absolute path"));
    };
    let Some(mroot) = CgPath::parse(&mount.root) else {
        return unresolvable(format!(
            "the mount root `{}` of {} is not an absolute path",
            mount.root, mount.mount_point
        ));
    };
    if mroot.is_prefix_of(&cg) {
        let rel = &cg.parts[mroot.parts.len()..];
        let levels: Vec<LevelDir> = (0..=rel.len())
            .rev()
            .map(|i| {
                let mut at = mroot.clone();
                at.parts.extend(rel[..i].iter().cloned());
                LevelDir {
                    cgroup: at.to_string(),
                    dir: join_dir(&mount.mount_point, &rel[..i]),
                }
            })
            .collect();
        // A missing directory means a migration race or a foreign layout:
        // its ancestors are not known to be ours.
        if !under(root, &levels[0].dir).is_dir() {
            return unresolvable(format!(
                "the directory {} of cgroup {path} does not exist; its limits cannot be read",
                levels[0].dir
            ));
        }
        (Resolution::Exact, levels, None)
    } else if mroot.parts.is_empty() && mroot.up > cg.up {
        // The mount shows a tree whose top lies above our namespace root,
        // so the mount root is an ancestor, but the names between are
        // unknown.
        let level = LevelDir {
            cgroup: mroot.to_string(),
            dir: mount.mount_point.clone(),
        };
        let why = format!(
            "{} shows the cgroup tree from {} (a cgroup namespace entered without remounting \
             cgroupfs); cgroup {path} below it cannot be identified, so only that ancestor \
             was read",
            mount.mount_point, mount.root
        );
        (Resolution::Partial, vec![level], Some(why))
    } else {
        unresolvable(format!(
            "cgroup {path} is not below the mount root {} of {} (moved out of its cgroup \
             namespace?); its limits cannot be read",
            mount.root, mount.mount_point
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::mounts::parse_proc_cgroup;

    fn mount(root: &str, point: &str, fstype: &str, opts: &str) -> Mount {
        Mount {
            root: root.into(),
            mount_point: point.into(),
            fstype: fstype.into(),
            super_opts: opts.into(),
        }
    }

    /// A fake root holding the given directories.
    fn tree(dirs: &[&str]) -> tempdir::Dir {
        let d = tempdir::Dir::new();
        for dir in dirs {
            std::fs::create_dir_all(under(d.path(), dir)).unwrap();
        }
        d
    }

    mod tempdir {
        use std::path::{Path, PathBuf};
        use std::sync::atomic::{AtomicUsize, Ordering};

        pub struct Dir(PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                static N: AtomicUsize = AtomicUsize::new(0);
                let p = std::env::temp_dir().join(format!(
                    "cinit-locate-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
            pub fn path(&self) -> &Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn walk_from_leaf_to_mount_root() {
        let t = tree(&["/sys/fs/cgroup/cpu/system.slice/app.service"]);
        let lines = parse_proc_cgroup("1:cpu:/system.slice/app.service\n0::/\n");
        let mounts = [mount("/", "/sys/fs/cgroup/cpu", "cgroup", "rw,cpu")];
        let l = locate(t.path(), "cpu", &lines, &mounts).unwrap();
        assert_eq!(l.hierarchy, Hierarchy::V1);
        assert_eq!(l.resolution, Resolution::Exact);
        let got: Vec<_> = l.levels.iter().map(|l| (&*l.cgroup, &*l.dir)).collect();
        assert_eq!(
            got,
            [
                (
                    "/system.slice/app.service",
                    "/sys/fs/cgroup/cpu/system.slice/app.service"
                ),
                ("/system.slice", "/sys/fs/cgroup/cpu/system.slice"),
                ("/", "/sys/fs/cgroup/cpu"),
            ]
        );
    }

    #[test]
    fn bind_mounted_container_root_is_stripped() {
        let t = tree(&["/sys/fs/cgroup/memory"]);
        let lines = parse_proc_cgroup("4:memory:/docker/abc\n");
        let mounts = [mount(
            "/docker/abc",
            "/sys/fs/cgroup/memory",
            "cgroup",
            "rw,memory",
        )];
        let l = locate(t.path(), "memory", &lines, &mounts).unwrap();
        assert_eq!(l.resolution, Resolution::Exact);
        assert_eq!(
            l.levels,
            [LevelDir {
                cgroup: "/docker/abc".into(),
                dir: "/sys/fs/cgroup/memory".into()
            }]
        );
    }

    #[test]
    fn prefix_is_by_component_not_by_string() {
        let t = tree(&["/sys/fs/cgroup/memory"]);
        let lines = parse_proc_cgroup("4:memory:/docker/abc\n");
        let mounts = [mount(
            "/docker/ab",
            "/sys/fs/cgroup/memory",
            "cgroup",
            "rw,memory",
        )];
        let l = locate(t.path(), "memory", &lines, &mounts).unwrap();
        assert_eq!(l.resolution, Resolution::Unresolvable);
        assert!(l.levels.is_empty());
    }

    #[test]
    fn v1_line_wins_over_the_unified_line() {
        let t = tree(&["/sys/fs/cgroup/cpu/x", "/sys/fs/cgroup/unified"]);
        let lines = parse_proc_cgroup("1:cpu:/x\n0::/\n");
        let mounts = [
            mount("/", "/sys/fs/cgroup/cpu", "cgroup", "rw,cpu"),
            mount("/", "/sys/fs/cgroup/unified", "cgroup2", "rw"),
        ];
        let l = locate(t.path(), "cpu", &lines, &mounts).unwrap();
        assert_eq!(l.hierarchy, Hierarchy::V1);
        assert_eq!(l.levels[0].dir, "/sys/fs/cgroup/cpu/x");
        // No v1 line for memory: the unified hierarchy, if it offers it.
        std::fs::write(
            under(t.path(), "/sys/fs/cgroup/unified/cgroup.controllers"),
            "hugetlb\n",
        )
        .unwrap();
        let e = locate(t.path(), "memory", &lines, &mounts).unwrap_err();
        assert!(e.contains("not enabled"), "{e}");
    }

    #[test]
    fn ns_root_above_and_moved_out() {
        let t = tree(&["/sys/fs/cgroup"]);
        let mounts = [mount("/..", "/sys/fs/cgroup", "cgroup2", "rw")];
        let l = locate(t.path(), "cpu", &parse_proc_cgroup("0::/\n"), &mounts).unwrap();
        assert_eq!(l.resolution, Resolution::Partial);
        assert_eq!(l.levels.len(), 1);
        assert_eq!(l.levels[0].cgroup, "/..");

        // Same height, so `/../sibling` under a `/..` mount is exact.
        std::fs::create_dir_all(under(t.path(), "/sys/fs/cgroup/sibling")).unwrap();
        let l = locate(
            t.path(),
            "cpu",
            &parse_proc_cgroup("0::/../sibling\n"),
            &mounts,
        )
        .unwrap();
        assert_eq!(l.resolution, Resolution::Exact);
        assert_eq!(l.levels[0].dir, "/sys/fs/cgroup/sibling");

        let mounts = [mount("/", "/sys/fs/cgroup", "cgroup2", "rw")];
        let l = locate(
            t.path(),
            "cpu",
            &parse_proc_cgroup("0::/../sibling\n"),
            &mounts,
        )
        .unwrap();
        assert_eq!(l.resolution, Resolution::Unresolvable);
        assert!(l.problem.unwrap().contains("not below the mount root"));
    }

    #[test]
    fn missing_directory_is_unresolvable() {
        let t = tree(&["/sys/fs/cgroup"]);
        let mounts = [mount("/", "/sys/fs/cgroup", "cgroup2", "rw")];
        let l = locate(t.path(), "cpu", &parse_proc_cgroup("0::/gone\n"), &mounts).unwrap();
        assert_eq!(l.resolution, Resolution::Unresolvable);
    }

    #[test]
    fn the_resolving_mount_is_preferred() {
        let t = tree(&["/sys/fs/cgroup/cpu", "/elsewhere/x"]);
        let lines = parse_proc_cgroup("1:cpu:/x\n");
        let mounts = [
            mount("/", "/elsewhere", "cgroup", "rw,cpu"),
            mount("/y", "/sys/fs/cgroup/cpu", "cgroup", "rw,cpu"),
        ];
        let l = locate(t.path(), "cpu", &lines, &mounts).unwrap();
        assert_eq!(l.levels[0].dir, "/elsewhere/x");
    }

    #[test]
    fn nothing_to_find() {
        let t = tree(&[]);
        assert!(locate(t.path(), "cpu", &[], &[]).is_err());
        let lines = parse_proc_cgroup("1:cpu:/x\n");
        assert!(locate(t.path(), "cpu", &lines, &[]).is_err());
    }
}
