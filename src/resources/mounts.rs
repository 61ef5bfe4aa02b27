//! Parsers for `/proc/self/cgroup` and `/proc/self/mountinfo`, and the
//! cgroup path type both are compared in.
//!
//! Invariants: the parsers never fail as a whole; a line that does not
//! parse is skipped (the kernel's format is stable, so a bad line means a
//! foreign or truncated file, and the rest is still worth reading). Paths
//! are compared component by component, never as strings: `/docker/ab` is
//! not a prefix of `/docker/abc`.

use std::fmt;
use std::io::BufRead;

/// One line of `/proc/self/cgroup`: `ID:CONTROLLERS:PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupLine {
    pub id: u32,
    /// Empty for the v2 line (`0::/path`); `name=systemd` style entries
    /// are kept here and ignored by the lookups.
    pub controllers: Vec<String>,
    /// Relative to the reader's cgroup-namespace root; may contain `:`.
    pub path: String,
}

impl CgroupLine {
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }

    /// The unified (v2) hierarchy's line.
    pub fn is_v2(&self) -> bool {
        self.id == 0 && self.controllers.is_empty()
    }

    /// A v1 hierarchy with at least one real controller (not `name=`).
    pub fn is_v1_controller(&self) -> bool {
        self.controllers.iter().any(|c| !c.starts_with("name="))
    }
}

/// Parses `/proc/self/cgroup`. The path is the third field and keeps every
/// further colon (containerd's `…slice:cri-containerd:<id>`).
pub fn parse_proc_cgroup(text: &str) -> Vec<CgroupLine> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.splitn(3, ':');
            let id = f.next()?.trim().parse().ok()?;
            let controllers = f.next()?;
            let path = f.next()?;
            Some(CgroupLine {
                id,
                controllers: controllers
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(String::from)
                    .collect(),
                path: path.to_string(),
            })
        })
        .collect()
}

/// A cgroup mount from `/proc/self/mountinfo`, escapes decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// The directory of the cgroup tree shown at `mount_point`, in the
    /// reader's cgroup-namespace coordinates (`/`, `/docker/<id>`, `/..`).
    pub root: String,
    pub mount_point: String,
    /// `cgroup` (v1) or `cgroup2`.
    pub fstype: String,
    /// For v1, the controllers are here (`rw,cpu,cpuacct`).
    pub super_opts: String,
}

impl Mount {
    pub fn is_v2(&self) -> bool {
        self.fstype == "cgroup2"
    }

    /// A v1 mount carrying this controller in its super options.
    pub fn has_v1(&self, controller: &str) -> bool {
        self.fstype == "cgroup" && self.super_opts.split(',').any(|o| o == controller)
    }
}

/// The pieces of one mountinfo line that matter here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountLine {
    pub root: String,
    pub mount_point: String,
    pub fstype: String,
    pub source: String,
    pub super_opts: String,
}

/// Parses one line: `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL…] -
/// FSTYPE SOURCE SUPER-OPTS`. There may be any number of optional fields,
/// so the tail starts after the standalone `-`; the super options are the
/// rest of the line (they may contain spaces, as on WSL).
pub fn parse_mountinfo_line(line: &str) -> Option<MountLine> {
    let mut rest = line.trim_end_matches(['\n', '\r']);
    let mut field = || -> Option<&str> {
        let (head, tail) = match rest.split_once(' ') {
            Some(p) => p,
            None if !rest.is_empty() => (rest, ""),
            None => return None,
        };
        rest = tail;
        Some(head)
    };
    let _id = field()?;
    let _parent = field()?;
    let _dev = field()?;
    let root = field()?;
    let mount_point = field()?;
    let _opts = field()?;
    loop {
        if field()? == "-" {
            break;
        }
    }
    let fstype = field()?;
    let source = field().unwrap_or("");
    let super_opts = rest;
    Some(MountLine {
        root: unescape(root),
        mount_point: unescape(mount_point),
        fstype: fstype.to_string(),
        source: source.to_string(),
        super_opts: super_opts.to_string(),
    })
}

/// Reads mountinfo as a stream and keeps the cgroup mounts that are
/// visible: when a later line mounts on the same point, the earlier one is
/// hidden (stacked mounts), whatever the later one's type.
pub fn visible_cgroup_mounts(reader: impl BufRead) -> Vec<Mount> {
    let mut mounts: Vec<Mount> = Vec::new();
    for line in reader.split(b'\n') {
        let Ok(bytes) = line else { break };
        let text = String::from_utf8_lossy(&bytes);
        let Some(m) = parse_mountinfo_line(&text) else {
            continue;
        };
        mounts.retain(|prev| prev.mount_point != m.mount_point);
        if m.fstype == "cgroup" || m.fstype == "cgroup2" {
            mounts.push(Mount {
                root: m.root,
                mount_point: m.mount_point,
                fstype: m.fstype,
                super_opts: m.super_opts,
            });
        }
    }
    mounts
}

/// Decodes the octal escapes mountinfo uses for space, tab, newline and
/// backslash (`\040`, `\011`, `\012`, `\134`). Anything else is kept.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && is_octal_triplet(&b[i + 1..i + 4]) {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_octal_triplet(t: &[u8]) -> bool {
    t.len() == 3 && t.iter().all(|c| (b'0'..=b'7').contains(c))
}

/// A cgroup path in namespace coordinates: `up` leading `..` components
/// (a place above the namespace root), then ordinary names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgPath {
    pub up: usize,
    pub parts: Vec<String>,
}

impl CgPath {
    /// `None` for what the kernel never writes: a relative path, or `.`/`..`
    /// after an ordinary name.
    pub fn parse(s: &str) -> Option<CgPath> {
        let rest = s.strip_prefix('/')?;
        let mut up = 0;
        let mut parts = Vec::new();
        for c in rest.split('/').filter(|c| !c.is_empty()) {
            match c {
                ".." if parts.is_empty() => up += 1,
                "." | ".." => return None,
                name => parts.push(name.to_string()),
            }
        }
        Some(CgPath { up, parts })
    }

    /// Component-wise prefix, at the same height.
    pub fn is_prefix_of(&self, other: &CgPath) -> bool {
        self.up == other.up
            && self.parts.len() <= other.parts.len()
            && self.parts.iter().zip(&other.parts).all(|(a, b)| a == b)
    }
}

impl fmt::Display for CgPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.up == 0 && self.parts.is_empty() {
            return f.write_str("/");
        }
        for _ in 0..self.up {
            f.write_str("/..")?;
        }
        for p in &self.parts {
            write!(f, "/{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_lines_v1_v2_and_colons() {
        let text = "12:hugetlb:/docker/ID\n6:cpu,cpuacct:/docker/ID\n1:name=systemd:/x\n\
                    0::/system.slice/containerd.service/kubepods-burstable-podUID.slice:cri-containerd:CID\n\
                    garbage\n:::\n";
        let lines = parse_proc_cgroup(text);
        assert_eq!(lines.len(), 4);
        assert!(lines[1].has("cpu") && lines[1].has("cpuacct") && !lines[1].has("cpuset"));
        assert!(lines[1].is_v1_controller());
        assert!(!lines[2].is_v1_controller());
        assert!(lines[3].is_v2());
        assert_eq!(
            lines[3].path,
            "/system.slice/containerd.service/kubepods-burstable-podUID.slice:cri-containerd:CID"
        );
    }

    #[test]
    fn mountinfo_without_optional_fields() {
        let m = parse_mountinfo_line(
            "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu",
        )
        .unwrap();
        assert_eq!(m.root, "/");
        assert_eq!(m.mount_point, "/sys/fs/cgroup/cpu");
        assert_eq!(m.fstype, "cgroup");
        assert_eq!(m.source, "cgroup");
        assert_eq!(m.super_opts, "rw,cpu");
    }

    #[test]
    fn mountinfo_with_many_optional_fields() {
        let m = parse_mountinfo_line(
            "705 700 0:33 /docker/ID /sys/fs/cgroup/cpu,cpuacct ro,nosuid shared:7 master:3 propagate_from:2 - cgroup cgroup rw,cpu,cpuacct",
        )
        .unwrap();
        assert_eq!(m.root, "/docker/ID");
        assert_eq!(m.mount_point, "/sys/fs/cgroup/cpu,cpuacct");
        assert_eq!(m.super_opts, "rw,cpu,cpuacct");
        let mount = Mount {
            root: m.root,
            mount_point: m.mount_point,
            fstype: m.fstype,
            super_opts: m.super_opts,
        };
        assert!(mount.has_v1("cpu") && mount.has_v1("cpuacct") && !mount.has_v1("cpuset"));
    }

    #[test]
    fn mountinfo_escapes_and_spaces_in_super_options() {
        let m = parse_mountinfo_line(
            r"40 31 0:37 /a\134b /sys/fs/cgroup/my\040cg\011x rw - cgroup2 none rw,opt with space",
        )
        .unwrap();
        assert_eq!(m.root, r"/a\b");
        assert_eq!(m.mount_point, "/sys/fs/cgroup/my cg\tx");
        assert_eq!(m.super_opts, "rw,opt with space");
        assert_eq!(unescape(r"\012"), "\n");
        // Not an escape: kept as written.
        assert_eq!(unescape(r"a\09b\"), r"a\09b\");
        assert_eq!(unescape(r"\777"), r"\777");
    }

    #[test]
    fn mountinfo_garbage_is_skipped() {
        for bad in ["", "1 2 3", "1 2 3 / /x rw", "1 2 3 / /x rw shared:1"] {
            assert_eq!(parse_mountinfo_line(bad), None, "{bad:?}");
        }
        // A missing source and super options still parse.
        let m = parse_mountinfo_line("1 2 3 / /x rw - cgroup2").unwrap();
        assert_eq!((m.source.as_str(), m.super_opts.as_str()), ("", ""));
    }

    #[test]
    fn stacked_mounts_the_last_wins() {
        let text = "1 0 0:1 / / rw - ext4 /dev/sda rw\n\
                    32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n\
                    35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                    50 32 0:29 /probe_x /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n\
                    51 35 0:60 / /sys/fs/cgroup/memory rw - tmpfs tmpfs rw\n";
        let m = visible_cgroup_mounts(text.as_bytes());
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].root, "/probe_x");
        assert_eq!(m[0].mount_point, "/sys/fs/cgroup/cpu");
    }

    #[test]
    fn cgroup_paths_compare_by_component() {
        let p = |s| CgPath::parse(s).unwrap();
        assert!(!p("/docker/ab").is_prefix_of(&p("/docker/abc")));
        assert!(p("/docker/ab").is_prefix_of(&p("/docker/ab/c")));
        assert!(p("/docker/ab").is_prefix_of(&p("/docker/ab/")));
        assert!(p("/").is_prefix_of(&p("/a")));
        assert!(!p("/").is_prefix_of(&p("/../a")));
        assert!(p("/..").is_prefix_of(&p("/../a")));
        assert_eq!(p("/../sibling").up, 1);
        assert_eq!(p("/../sibling").to_string(), "/../sibling");
        assert_eq!(p("/").to_string(), "/");
        assert_eq!(CgPath::parse("relative"), None);
        assert_eq!(CgPath::parse("/a/../b"), None);
        assert_eq!(CgPath::parse("/a/./b"), None);
    }
}
