//! /etc/passwd and /etc/group, read directly (no NSS, so `--user` works
//! in an image FROM scratch and in a static binary), and `--user`
//! resolved against them into the `Identity` a child is started with.
//!
//! The files are untrusted text: the parsers take any bytes and never
//! panic (a fuzz target holds them to it). Empty lines, `#` comments and
//! NIS compat lines (`+`, `-`) are skipped, as glibc's files module does;
//! the first entry of a name or id wins. A malformed line is an error only
//! when it is the line that names what is looked up (a line with that
//! name, or with that uid in its uid field; a group line listing the user
//! as a member): a broken entry for someone else cannot stop the init.
//!
//! Semantics, as `docker --user` and gosu (moby's user package) have them:
//! * a name must have an entry; a number need not: without one the gid is
//!   0 unless a group is given, and HOME is `/`;
//! * an entry found (by name or uid) gives gid and home, and the
//!   supplementary groups are the /etc/group lines that list the entry's
//!   name as a member (the primary gid is not added);
//! * a group given (`USER:GROUP`) replaces the gid and leaves no
//!   supplementary group at all;
//! * never root's groups: a child that switches always gets exactly this
//!   list, empty included.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::vocab::{Account, Identity, UserSpec, MAX_ID};

/// The most a user database file may hold: a bigger one is no
/// container's /etc/passwd (or is `/dev/zero` behind a link).
pub const READ_LIMIT: u64 = 16 << 20;

/// The most supplementary groups the kernel takes (NGROUPS_MAX).
pub const MAX_GROUPS: usize = 65536;

/// One file of the database: where it is, and its bytes (`None`: the
/// file does not exist).
#[derive(Clone, Debug)]
pub struct DbFile {
    pub path: PathBuf,
    pub text: Option<Vec<u8>>,
}

/// /etc/passwd and /etc/group as read once.
#[derive(Clone, Debug)]
pub struct Accounts {
    pub passwd: DbFile,
    pub group: DbFile,
}

impl Accounts {
    /// Reads `ROOT/etc/passwd` and `ROOT/etc/group`. A missing file is no
    /// error (numbers need none); one that cannot be read is.
    pub fn read(root: &Path) -> Result<Accounts, String> {
        Ok(Accounts {
            passwd: read_db(&root.join("etc/passwd"))?,
            group: read_db(&root.join("etc/group"))?,
        })
    }

    /// The database from texts, as if at /etc/passwd and /etc/group (tests
    /// and fuzz targets).
    pub fn from_text(passwd: Option<&[u8]>, group: Option<&[u8]>) -> Accounts {
        Accounts {
            passwd: DbFile {
                path: "/etc/passwd".into(),
                text: passwd.map(<[u8]>::to_vec),
            },
            group: DbFile {
                path: "/etc/group".into(),
                text: group.map(<[u8]>::to_vec),
            },
        }
    }
}

fn read_db(path: &Path) -> Result<DbFile, String> {
    let fail = |e: std::io::Error| format!("failed to read {}: {e}", path.display());
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(DbFile {
                path: path.into(),
                text: None,
            })
        }
        Err(e) => return Err(fail(e)),
    };
    // Not a FIFO or a device: reading one could block or never end.
    if !file.metadata().map_err(fail)?.is_file() {
        return Err(format!(
            "failed to read {}: not a regular file",
            path.display()
        ));
    }
    let mut text = Vec::new();
    file.take(READ_LIMIT + 1)
        .read_to_end(&mut text)
        .map_err(fail)?;
    if text.len() as u64 > READ_LIMIT {
        return Err(format!(
            "failed to read {}: larger than {} MiB",
            path.display(),
            READ_LIMIT >> 20
        ));
    }
    Ok(DbFile {
        path: path.into(),
        text: Some(text),
    })
}

/// The init's own effective ids, which decide whether a child can switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
}

impl Credentials {
    pub const ROOT: Credentials = Credentials { uid: 0, gid: 0 };

    pub fn current() -> Credentials {
        Credentials {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        }
    }
}

/// A resolved `--user`, with what deserves a word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub identity: Identity,
    pub warnings: Vec<String>,
}

/// One /etc/passwd entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PwEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// One /etc/group entry (members are not kept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrEntry {
    pub name: String,
    pub gid: u32,
}

/// A malformed line that names what was looked up: its number (from 1)
/// and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Malformed {
    pub line: usize,
    pub why: String,
}

/// What to look up: a name, or an id in the id field.
#[derive(Clone, Copy, Debug)]
pub enum Key<'a> {
    Name(&'a str),
    Id(u32),
}

impl<'a> Key<'a> {
    fn of(a: &'a Account) -> Key<'a> {
        match a {
            Account::Id(n) => Key::Id(*n),
            Account::Name(n) => Key::Name(n),
        }
    }
}

/// The lines worth reading, numbered from 1.
fn lines(text: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    text.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix(b"\r").unwrap_or(l)))
        .filter(|(_, l)| {
            !(l.iter().all(u8::is_ascii_whitespace)
                || l.first().is_some_and(|b| matches!(b, b'#' | b'+' | b'-')))
        })
}

/// A uid or gid field: decimal digits only, at most `MAX_ID`.
fn parse_id(field: &[u8]) -> Option<u32> {
    if field.is_empty() || field.len() > 20 || !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(field)
        .ok()?
        .parse::<u64>()
        .ok()
        .filter(|&n| n <= u64::from(MAX_ID))
        .map(|n| n as u32)
}

fn utf8(field: &[u8], what: &str) -> Result<String, String> {
    String::from_utf8(field.to_vec()).map_err(|_| format!("its {what} is not UTF-8"))
}

fn names(fields: &[&[u8]], key: Key<'_>, id_field: usize) -> bool {
    match key {
        Key::Name(n) => fields[0] == n.as_bytes(),
        Key::Id(id) => fields.get(id_field).and_then(|f| parse_id(f)) == Some(id),
    }
}

/// The first /etc/passwd entry for `key`. `Err` when the line that names
/// it is malformed.
pub fn find_user(text: &[u8], key: Key<'_>) -> Result<Option<PwEntry>, Malformed> {
    for (line, l) in lines(text) {
        let f: Vec<&[u8]> = l.split(|&b| b == b':').collect();
        if !names(&f, key, 2) {
            continue;
        }
        let entry = (|| {
            if f.len() != 7 {
                return Err(format!(
                    "{} fields (a passwd line has 7: name:password:uid:gid:gecos:home:shell)",
                    f.len()
                ));
            }
            let uid = parse_id(f[2]).ok_or("its uid is not a number from 0 to 4294967294")?;
            let gid = parse_id(f[3]).ok_or("its gid is not a number from 0 to 4294967294")?;
            let home = utf8(f[5], "home")?;
            Ok(PwEntry {
                name: utf8(f[0], "name")?,
                uid,
                gid,
                home: if home.is_empty() { "/".into() } else { home },
            })
        })();
        return entry
            .map(Some)
            .map_err(|why: String| Malformed { line, why });
    }
    Ok(None)
}

/// The first /etc/group entry for `key`. `Err` when the line that names
/// it is malformed.
pub fn find_group(text: &[u8], key: Key<'_>) -> Result<Option<GrEntry>, Malformed> {
    for (line, l) in lines(text) {
        let f: Vec<&[u8]> = l.split(|&b| b == b':').collect();
        if !names(&f, key, 2) {
            continue;
        }
        let entry = (|| {
            if f.len() != 4 {
                return Err(format!(
                    "{} fields (a group line has 4: name:password:gid:members)",
                    f.len()
                ));
            }
            Ok(GrEntry {
                name: utf8(f[0], "name")?,
                gid: parse_id(f[2]).ok_or("its gid is not a number from 0 to 4294967294")?,
            })
        })();
        return entry
            .map(Some)
            .map_err(|why: String| Malformed { line, why });
    }
    Ok(None)
}

/// The gids of the groups that list `user` as a member, in file order,
/// each once. `Err` for a malformed line that lists the user.
pub fn memberships(text: &[u8], user: &str) -> Result<Vec<u32>, Malformed> {
    let mut gids = Vec::new();
    for (line, l) in lines(text) {
        let f: Vec<&[u8]> = l.split(|&b| b == b':').collect();
        let listed = f
            .get(3)
            .is_some_and(|m| m.split(|&b| b == b',').any(|m| m == user.as_bytes()));
        if !listed {
            continue;
        }
        if f.len() != 4 {
            return Err(Malformed {
                line,
                why: format!(
                    "{} fields (a group line has 4: name:password:gid:members)",
                    f.len()
                ),
            });
        }
        let gid = parse_id(f[2]).ok_or_else(|| Malformed {
            line,
            why: "its gid is not a number from 0 to 4294967294".into(),
        })?;
        if !gids.contains(&gid) {
            gids.push(gid);
        }
    }
    Ok(gids)
}

fn malformed(file: &DbFile, what: &str, m: Malformed) -> String {
    format!(
        "{}:{}: the line for {what} is malformed: {}",
        file.path.display(),
        m.line,
        m.why
    )
}

fn missing(file: &DbFile, what: &str) -> String {
    match file.text {
        Some(_) => format!("no {what} in {}", file.path.display()),
        None => format!(
            "no {what}: {} does not exist (an image FROM scratch has none: give numbers, such as 1000:1000)",
            file.path.display()
        ),
    }
}

/// A group given by name or number: its gid.
fn resolve_group(g: &Account, db: &Accounts) -> Result<u32, String> {
    let what = format!("group `{g}`");
    match (g, &db.group.text) {
        (Account::Id(n), _) => Ok(*n),
        (Account::Name(_), None) => Err(missing(&db.group, &what)),
        (Account::Name(_), Some(text)) => find_group(text, Key::of(g))
            .map_err(|m| malformed(&db.group, &what, m))?
            .map(|e| e.gid)
            .ok_or_else(|| missing(&db.group, &what)),
    }
}

/// `--user USER[:GROUP]` for a child of an init with credentials `init`.
pub fn resolve(spec: &UserSpec, db: &Accounts, init: Credentials) -> Result<Resolved, String> {
    let Some(user) = &spec.user else {
        return Err(format!("`{spec}` names no user"));
    };
    let what = format!("user `{user}`");
    let entry = match &db.passwd.text {
        Some(text) => {
            find_user(text, Key::of(user)).map_err(|m| malformed(&db.passwd, &what, m))?
        }
        None => None,
    };
    let uid = match (user, &entry) {
        (_, Some(e)) => e.uid,
        (Account::Id(n), None) => *n,
        (Account::Name(_), None) => return Err(missing(&db.passwd, &what)),
    };
    let mut warnings = Vec::new();
    let (gid, groups) = match (&spec.group, &entry) {
        (Some(g), _) => (resolve_group(g, db)?, Vec::new()),
        (None, Some(e)) => {
            let groups = match &db.group.text {
                Some(text) => memberships(text, &e.name)
                    .map_err(|m| malformed(&db.group, &format!("a group of `{}`", e.name), m))?,
                None => Vec::new(),
            };
            (e.gid, groups)
        }
        (None, None) => {
            warnings.push(format!(
                "uid {uid} has no entry in {}: its group is 0, as with `docker --user {uid}`; give one to change it (--user {uid}:{uid})",
                db.passwd.path.display()
            ));
            (0, Vec::new())
        }
    };
    if groups.len() > MAX_GROUPS {
        return Err(format!(
            "user `{user}` is a member of {} groups in {}; the kernel takes at most {MAX_GROUPS}",
            groups.len(),
            db.group.path.display()
        ));
    }
    let switch = if init.uid == 0 {
        true
    } else if init.uid == uid {
        if init.gid != gid {
            warnings.push(format!(
                "the init runs as uid {uid} with gid {}, not as root: the children keep gid {} (only root could change it to {gid})",
                init.gid, init.gid
            ));
        }
        false
    } else {
        return Err(format!(
            "the init runs as uid {}, not as root, so it cannot start children as uid {uid} (only root can switch users): \
             run the container as uid {uid} (docker run --user, Kubernetes runAsUser) or leave the init root and keep --user for the children",
            init.uid
        ));
    };
    Ok(Resolved {
        identity: Identity {
            spec: spec.to_string(),
            uid,
            gid,
            groups,
            name: entry.as_ref().map(|e| e.name.clone()),
            home: entry.map(|e| e.home).unwrap_or_else(|| "/".into()),
            switch,
        },
        warnings,
    })
}

/// `--socket-owner USER`, `USER:GROUP` or `:GROUP`, as chown takes it: the
/// uid and gid to give the socket file (`None`: unchanged).
pub fn resolve_owner(
    spec: &UserSpec,
    db: &Accounts,
    init: Credentials,
) -> Result<(Option<u32>, Option<u32>), String> {
    let uid = match &spec.user {
        None => None,
        Some(u) => {
            let what = format!("user `{u}`");
            let entry = match &db.passwd.text {
                Some(text) => {
                    find_user(text, Key::of(u)).map_err(|m| malformed(&db.passwd, &what, m))?
                }
                None => None,
            };
            Some(match (u, entry) {
                (_, Some(e)) => e.uid,
                (Account::Id(n), None) => *n,
                (Account::Name(_), None) => return Err(missing(&db.passwd, &what)),
            })
        }
    };
    if let Some(uid) = uid.filter(|&u| init.uid != 0 && u != init.uid) {
        return Err(format!(
            "the init runs as uid {}, not as root, so it cannot give the socket to uid {uid} (only root can): leave out the user, or run the init as root",
            init.uid
        ));
    }
    let gid = spec
        .group
        .as_ref()
        .map(|g| resolve_group(g, db))
        .transpose()?;
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::parse_user;

    const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/bash\n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        # a comment\n\
        \n\
        app:x:10001:10001:The app:/home/app:/bin/sh\n\
        nohome:x:10002:10002:::/bin/sh\n\
        app:x:20000:20000::/elsewhere:/bin/sh\n\
        broken:x:abc:1::/:\n\
        short:x:10003\n\
        +nis\n";
    const GROUP: &[u8] = b"root:x:0:\n\
        adm:x:4:app,daemon\n\
        app:x:10001:\n\
        www-data:x:33:app\n\
        adm2:x:4:app\n\
        badgid:x:nan:daemon\n\
        web:x:8080:\n\
        badweb:x:1:2:3\n";

    fn db() -> Accounts {
        Accounts::from_text(Some(PASSWD), Some(GROUP))
    }

    fn ok(spec: &str) -> Identity {
        resolve(&parse_user(spec).unwrap(), &db(), Credentials::ROOT)
            .unwrap()
            .identity
    }

    fn err(spec: &str, init: Credentials) -> String {
        resolve(&parse_user(spec).unwrap(), &db(), init).unwrap_err()
    }

    #[test]
    fn a_name_gives_its_ids_home_and_memberships() {
        let id = ok("app");
        assert_eq!((id.uid, id.gid), (10001, 10001));
        // adm and adm2 share gid 4: listed once; the primary gid is not
        // added.
        assert_eq!(id.groups, [4, 33]);
        assert_eq!(id.home, "/home/app");
        assert_eq!(id.name.as_deref(), Some("app"));
        assert!(id.switch);
        assert_eq!(id.describe(), "app (uid 10001, gid 10001, groups 4,33)");
        // The first entry wins.
        assert_eq!(ok("20000").name.as_deref(), Some("app"));
        assert_eq!(ok("20000").uid, 20000);
        assert_eq!(ok("nohome").home, "/");
    }

    #[test]
    fn a_group_given_replaces_gid_and_memberships() {
        let id = ok("app:www-data");
        assert_eq!((id.uid, id.gid), (10001, 33));
        assert!(id.groups.is_empty());
        let id = ok("app:5000");
        assert_eq!((id.gid, id.groups.len()), (5000, 0));
    }

    #[test]
    fn a_number_without_entry_gets_gid_0_and_no_groups() {
        let r = resolve(&parse_user("1000").unwrap(), &db(), Credentials::ROOT).unwrap();
        assert_eq!((r.identity.uid, r.identity.gid), (1000, 0));
        assert!(r.identity.groups.is_empty());
        assert_eq!(r.identity.home, "/");
        assert_eq!(r.identity.name, None);
        assert!(r.warnings[0].contains("its group is 0"), "{:?}", r.warnings);
        let r = resolve(&parse_user("1000:1000").unwrap(), &db(), Credentials::ROOT).unwrap();
        assert_eq!(r.identity.gid, 1000);
        assert!(r.warnings.is_empty());
        // A number with an entry is that entry.
        assert_eq!(ok("10001").groups, [4, 33]);
        // FROM scratch: no files at all; numbers still work.
        let empty = Accounts::from_text(None, None);
        let r = resolve(&parse_user("1000:1000").unwrap(), &empty, Credentials::ROOT).unwrap();
        assert_eq!((r.identity.uid, r.identity.gid), (1000, 1000));
    }

    #[test]
    fn bad_input_is_named() {
        let e = err("nobody-here", Credentials::ROOT);
        assert_eq!(e, "no user `nobody-here` in /etc/passwd");
        let e = err("app:nogroup", Credentials::ROOT);
        assert_eq!(e, "no group `nogroup` in /etc/group");
        let e = err("short", Credentials::ROOT);
        assert!(
            e.starts_with("/etc/passwd:9: the line for user `short` is malformed: 3 fields"),
            "{e}"
        );
        let e = err("broken", Credentials::ROOT);
        assert!(
            e.contains("/etc/passwd:8:") && e.contains("uid is not a number"),
            "{e}"
        );
        let e = err("app:badweb", Credentials::ROOT);
        assert!(e.starts_with("/etc/group:8:"), "{e}");
        // daemon is listed by a malformed group line: its memberships
        // cannot be known.
        let e = err("daemon", Credentials::ROOT);
        assert!(
            e.starts_with("/etc/group:6: the line for a group of `daemon`"),
            "{e}"
        );
        let scratch = Accounts::from_text(None, None);
        let e = resolve(&parse_user("app").unwrap(), &scratch, Credentials::ROOT).unwrap_err();
        assert!(
            e.contains("/etc/passwd does not exist") && e.contains("1000:1000"),
            "{e}"
        );
        let e = resolve(&parse_user("1:web").unwrap(), &scratch, Credentials::ROOT).unwrap_err();
        assert!(e.contains("/etc/group does not exist"), "{e}");
    }

    #[test]
    fn an_unprivileged_init_keeps_its_own_user_only() {
        let me = Credentials {
            uid: 10001,
            gid: 10001,
        };
        let r = resolve(&parse_user("app").unwrap(), &db(), me).unwrap();
        assert!(!r.identity.switch);
        assert!(r.warnings.is_empty());
        let r = resolve(
            &parse_user("app").unwrap(),
            &db(),
            Credentials { uid: 10001, gid: 0 },
        )
        .unwrap();
        assert!(r.warnings[0].contains("keep gid 0"), "{:?}", r.warnings);
        let e = err("daemon:1", me);
        assert!(
            e.contains("runs as uid 10001, not as root") && e.contains("uid 1"),
            "{e}"
        );
    }

    #[test]
    fn owners() {
        let own =
            |s: &str, init| resolve_owner(&crate::vocab::parse_owner(s).unwrap(), &db(), init);
        assert_eq!(own("app", Credentials::ROOT), Ok((Some(10001), None)));
        assert_eq!(
            own("app:www-data", Credentials::ROOT),
            Ok((Some(10001), Some(33)))
        );
        assert_eq!(own(":www-data", Credentials::ROOT), Ok((None, Some(33))));
        assert_eq!(own("5:6", Credentials::ROOT), Ok((Some(5), Some(6))));
        let me = Credentials {
            uid: 10001,
            gid: 10001,
        };
        assert_eq!(own(":33", me), Ok((None, Some(33))));
        assert!(own("0", me).unwrap_err().contains("cannot give the socket"));
        assert!(own("ghost", Credentials::ROOT).is_err());
    }

    #[test]
    fn odd_bytes_never_panic() {
        for text in [
            &b""[..],
            b":",
            b"::::::",
            b"\xff\xfe:x:1:1::\xff:",
            b"app:x:99999999999999999999999999:1::/:",
            b"app:x:4294967295:1::/:",
            b"\n\n\r\n:::\r",
            b"app",
        ] {
            let db = Accounts::from_text(Some(text), Some(text));
            for spec in ["app", "1", "app:app", "0:0"] {
                let _ = resolve(&parse_user(spec).unwrap(), &db, Credentials::ROOT);
            }
        }
        // uid -1 is nobody's.
        let db = Accounts::from_text(Some(b"app:x:4294967295:1::/:\n"), None);
        assert!(resolve(&parse_user("app").unwrap(), &db, Credentials::ROOT).is_err());
    }

    #[test]
    fn reads_files_and_refuses_non_files() {
        let dir = std::env::temp_dir().join(format!("cinit-users-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        let a = Accounts::read(&dir).unwrap();
        assert!(a.passwd.text.is_none() && a.group.text.is_none());
        std::fs::write(dir.join("etc/passwd"), PASSWD).unwrap();
        std::fs::create_dir_all(dir.join("etc/group")).unwrap();
        let e = Accounts::read(&dir).unwrap_err();
        assert!(
            e.contains("etc/group") && e.contains("not a regular file"),
            "{e}"
        );
        std::fs::remove_dir(dir.join("etc/group")).unwrap();
        let a = Accounts::read(&dir).unwrap();
        assert_eq!(a.passwd.text.as_deref(), Some(PASSWD));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
