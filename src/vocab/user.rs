//! Who a child runs as: `--user USER[:GROUP]` as typed (`UserSpec`, names
//! or numbers), the owner of a unix socket (`--socket-owner`, chown's
//! `USER`, `USER:GROUP`, `:GROUP`), a socket's mode, and the resolved
//! `Identity` a child is started with.
//!
//! Only the syntax is checked here; names are looked up in /etc/passwd
//! and /etc/group by `users`, once, before anything runs.

use std::fmt;

use serde::Serialize;

/// The largest uid or gid a process can have: `(uid_t)-1` means "leave
/// unchanged" to setresuid and chown, so it names nobody.
pub const MAX_ID: u32 = u32::MAX - 1;

/// A user or group as typed: a number is taken as an id, anything else
/// as a name (as `docker --user` does: an all-digit name is an id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Account {
    Id(u32),
    Name(String),
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Account::Id(n) => write!(f, "{n}"),
            Account::Name(n) => f.write_str(n),
        }
    }
}

/// `USER[:GROUP]`, or for a socket owner also `:GROUP`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserSpec {
    /// `None` only in an owner's `:GROUP`.
    pub user: Option<Account>,
    pub group: Option<Account>,
}

impl fmt::Display for UserSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "{u}")?;
        }
        if let Some(g) = &self.group {
            write!(f, ":{g}")?;
        }
        Ok(())
    }
}

/// One name or number. `what` is "user" or "group", for the message.
fn account(text: &str, what: &str, whole: &str) -> Result<Account, String> {
    if text.is_empty() {
        return Err(format!(
            "`{whole}` has an empty {what} (use USER[:GROUP], names or numbers)"
        ));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u64>() {
            Ok(n) if n <= u64::from(MAX_ID) => Ok(Account::Id(n as u32)),
            _ => Err(format!(
                "{what} id `{text}` does not fit: ids go from 0 to {MAX_ID}"
            )),
        };
    }
    // What /etc/passwd and /etc/group cannot hold, or a shell would split.
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || *c == ',')
    {
        return Err(format!("`{whole}`: a {what} name cannot hold {c:?}"));
    }
    Ok(Account::Name(text.to_string()))
}

/// `--user USER[:GROUP]`: each a name or a number.
pub fn parse_user(text: &str) -> Result<UserSpec, String> {
    let t = text.trim();
    let (user, group) = match t.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (t, None),
    };
    if group.is_some_and(|g| g.contains(':')) {
        return Err(format!("`{text}` has more than one `:` (use USER[:GROUP])"));
    }
    Ok(UserSpec {
        user: Some(account(user, "user", text)?),
        group: group.map(|g| account(g, "group", text)).transpose()?,
    })
}

/// `--socket-owner`: as chown takes it, `USER`, `USER:GROUP` or `:GROUP`.
pub fn parse_owner(text: &str) -> Result<UserSpec, String> {
    let t = text.trim();
    match t.strip_prefix(':') {
        Some(group) if !group.contains(':') => Ok(UserSpec {
            user: None,
            group: Some(account(group, "group", text)?),
        }),
        Some(_) => Err(format!(
            "`{text}` has more than one `:` (use USER, USER:GROUP or :GROUP)"
        )),
        None => parse_user(text),
    }
}

/// `--socket-mode`: octal permission bits, `660`, `0660` or `0o660`.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    let bad =
        || format!("`{text}` is not a file mode (use octal permission bits such as 660 or 0600)");
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return Err(bad());
    }
    let mode = u32::from_str_radix(digits, 8).map_err(|_| bad())?;
    if mode > 0o777 {
        return Err(format!(
            "`{text}`: a socket takes only permission bits (at most 777): setuid, setgid and sticky bits mean nothing there"
        ));
    }
    Ok(mode)
}

/// `0660`.
pub fn format_mode(mode: u32) -> String {
    format!("{mode:04o}")
}

/// The mode and owner given to unix socket files (`None`: as made).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SocketPerms {
    #[serde(serialize_with = "mode_text")]
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl SocketPerms {
    pub fn is_default(&self) -> bool {
        *self == SocketPerms::default()
    }
}

fn mode_text<S: serde::Serializer>(m: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
    match m {
        Some(m) => s.serialize_str(&format_mode(*m)),
        None => s.serialize_none(),
    }
}

/// Who a child runs as, resolved from /etc/passwd and /etc/group (or
/// from numbers alone) before anything runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// `USER[:GROUP]` as given.
    pub spec: String,
    pub uid: u32,
    pub gid: u32,
    /// The supplementary groups: the user's memberships in /etc/group
    /// when the user was found there and no group was given, else none.
    pub groups: Vec<u32>,
    /// The name of the user's /etc/passwd entry; `None` for a number
    /// without one.
    pub name: Option<String>,
    /// `HOME` for the child: the entry's home, `/` without one.
    pub home: String,
    /// Whether the child switches to it. False when the init is not root
    /// and already runs as this uid: the child keeps the init's
    /// credentials (nobody but root could change them).
    pub switch: bool,
}

impl Identity {
    /// `app (uid 10001, gid 10001, groups 27,100)`, or for a number
    /// without a name `uid 4242 (gid 0, no supplementary groups)`.
    pub fn describe(&self) -> String {
        let groups = if self.groups.is_empty() {
            "no supplementary groups".to_string()
        } else {
            format!(
                "groups {}",
                self.groups
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        match &self.name {
            Some(n) => format!("{n} (uid {}, gid {}, {groups})", self.uid, self.gid),
            None => format!("uid {} (gid {}, {groups})", self.uid, self.gid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_groups() {
        assert_eq!(
            parse_user("app"),
            Ok(UserSpec {
                user: Some(Account::Name("app".into())),
                group: None
            })
        );
        assert_eq!(
            parse_user("1000:1000"),
            Ok(UserSpec {
                user: Some(Account::Id(1000)),
                group: Some(Account::Id(1000))
            })
        );
        assert_eq!(
            parse_user("app:www-data").unwrap().group,
            Some(Account::Name("www-data".into()))
        );
        assert_eq!(
            parse_user("4294967294").unwrap().user,
            Some(Account::Id(MAX_ID))
        );
        for bad in [
            "",
            ":",
            "app:",
            ":grp",
            "a:b:c",
            "a b",
            "a,b",
            "4294967295",
            "99999999999999999999999",
        ] {
            assert!(parse_user(bad).is_err(), "{bad:?} should fail");
        }
        let e = parse_user("4294967295").unwrap_err();
        assert!(e.contains("does not fit"), "{e}");
        assert_eq!(parse_user("1000:0").unwrap().to_string(), "1000:0");
    }

    #[test]
    fn owners_take_a_group_alone() {
        assert_eq!(
            parse_owner(":www-data"),
            Ok(UserSpec {
                user: None,
                group: Some(Account::Name("www-data".into()))
            })
        );
        assert_eq!(parse_owner(":www-data").unwrap().to_string(), ":www-data");
        assert!(parse_owner("::x").is_err());
        assert!(parse_owner(":").is_err());
        assert!(parse_owner("0:0").is_ok());
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("660"), Ok(0o660));
        assert_eq!(parse_mode("0600"), Ok(0o600));
        assert_eq!(parse_mode("0o777"), Ok(0o777));
        assert_eq!(format_mode(0o660), "0660");
        for bad in ["", "8", "rw-rw----", "4755", "07777", "0o", "-1", "11111"] {
            assert!(parse_mode(bad).is_err(), "{bad:?} should fail");
        }
    }
}
