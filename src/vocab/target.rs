//! What a `--wait-for` URL names, parsed once at configuration time so a
//! typo stops the start before anything runs (SPEC 6).
//!
//! Invariants of a parsed `Target`: a host is a non-empty name made of
//! letters, digits, `-`, `.` and `_`, or an IP address (IPv6 stored without
//! its brackets); a port is 1..=65535; an HTTP path starts with `/` and is
//! printable ASCII (it goes verbatim into the request line); socket and file
//! paths are absolute.

use std::fmt;
use std::net::Ipv6Addr;
use std::path::PathBuf;

/// What a `--wait-for` URL names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Tcp {
        host: String,
        port: u16,
    },
    Http {
        host: String,
        port: u16,
        path: String,
    },
    Unix(PathBuf),
    File(PathBuf),
}

const FORMS: &str = "tcp://host:port, http://host:port/path, unix:///path or file:///path";

impl Target {
    /// Parses `tcp://host:port`, `http://host[:port][/path][?query]`,
    /// `unix:///path` (or `unix:/path`) and `file:///path` (or `file:/path`).
    /// The scheme is case-insensitive. Errors are whole sentences that quote
    /// the input; the caller adds where it came from.
    pub fn parse(text: &str) -> Result<Target, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err(format!("empty wait-for URL (use {FORMS})"));
        }
        let bad = |why: String| Err(format!("`{t}`: {why}"));

        // `scheme://rest`, or the single-slash forms `unix:/p` and `file:/p`.
        let (scheme, rest) = match t.split_once("://") {
            Some((s, r)) if is_scheme(s) => (s.to_ascii_lowercase(), r),
            _ => match t.split_once(':') {
                Some((s, r))
                    if s.eq_ignore_ascii_case("unix") || s.eq_ignore_ascii_case("file") =>
                {
                    (s.to_ascii_lowercase(), r)
                }
                _ if parse_authority(t, None).is_ok() => {
                    return bad(format!("no scheme (to wait for a port: tcp://{t})"))
                }
                _ => return bad(format!("no scheme (use {FORMS})")),
            },
        };

        match scheme.as_str() {
            "tcp" => {
                // Tolerate the trailing slash people often type; nothing else.
                let auth = rest.strip_suffix('/').unwrap_or(rest);
                if auth.contains(['/', '?', '#']) {
                    return bad("tcp:// takes only host:port, no path".into());
                }
                match parse_authority(auth, None) {
                    Ok((host, port)) => Ok(Target::Tcp { host, port }),
                    Err(why) => bad(why),
                }
            }
            "http" => {
                let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
                let (auth, tail) = rest.split_at(split);
                let (host, port) = match parse_authority(auth, Some(80)) {
                    Ok(hp) => hp,
                    Err(why) => return bad(why),
                };
                // The fragment is the client's business; it is never sent.
                let tail = tail.split_once('#').map_or(tail, |(before, _)| before);
                let path = match tail.chars().next() {
                    None => "/".to_string(),
                    Some('?') => format!("/{tail}"),
                    Some(_) => tail.to_string(),
                };
                if let Some(c) = path.chars().find(|c| !c.is_ascii_graphic()) {
                    return bad(format!(
                        "the path has {c:?}, which cannot go into a request line \
                         (percent-encode it, e.g. a space as %20)"
                    ));
                }
                Ok(Target::Http { host, port, path })
            }
            "https" => bad(
                "https is not supported (the init has no TLS client); probe a plain-HTTP \
                 port with http://, or wait for the port to open with tcp://host:443"
                    .into(),
            ),
            "unix" | "file" => {
                if rest.is_empty() {
                    return bad("the path is empty".into());
                }
                if !rest.starts_with('/') {
                    // `unix://run/x.sock` reads as host `run`: say what was meant.
                    return bad(format!(
                        "the path must be absolute, like {scheme}:///{rest}"
                    ));
                }
                let path = PathBuf::from(rest);
                Ok(if scheme == "unix" {
                    Target::Unix(path)
                } else {
                    Target::File(path)
                })
            }
            other => bad(format!("unknown scheme `{other}` (use {FORMS})")),
        }
    }
}

/// RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// `host:port`, `[v6]:port`, or without the port when a default is given.
fn parse_authority(auth: &str, default_port: Option<u16>) -> Result<(String, u16), String> {
    if auth.is_empty() {
        return Err("the host is empty".into());
    }
    if auth.contains('@') {
        return Err("user names and passwords are not supported".into());
    }
    let (host, port) = if let Some(inner) = auth.strip_prefix('[') {
        let (v6, after) = inner
            .split_once(']')
            .ok_or("an IPv6 address is missing its closing `]`")?;
        if v6.parse::<Ipv6Addr>().is_err() {
            return Err(format!("`{v6}` is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| format!("unexpected `{after}` after the IPv6 address"))?,
            ),
        };
        (v6.to_string(), port)
    } else {
        let (host, port) = match auth.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (auth, None),
        };
        if port.is_some_and(|p| p.contains(':')) {
            return Err("an IPv6 address goes in brackets, like [::1]:5432".into());
        }
        if host.is_empty() {
            return Err("the host is empty".into());
        }
        if let Some(c) = host
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
        {
            return Err(format!("{c:?} cannot be part of a host name"));
        }
        (host.to_string(), port)
    };
    let port = match (port, default_port) {
        (Some(p), _) => parse_port(p)?,
        (None, Some(d)) => d,
        (None, None) => return Err("the port is missing (like host:5432)".into()),
    };
    Ok((host, port))
}

fn parse_port(p: &str) -> Result<u16, String> {
    if p.is_empty() {
        return Err("the port is empty".into());
    }
    if !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{p}` is not a port number"));
    }
    match p.parse::<u16>() {
        Ok(0) => Err("port 0 cannot be connected to".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("port {p} is out of range (1-65535)")),
    }
}

/// `host` as it goes into a URL or a `Host` header: IPv6 in brackets.
pub fn url_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp { host, port } => write!(f, "tcp://{}:{port}", url_host(host)),
            Target::Http { host, port, path } => {
                write!(f, "http://{}:{port}{path}", url_host(host))
            }
            Target::Unix(p) => write!(f, "unix://{}", p.display()),
            Target::File(p) => write!(f, "file://{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Target {
        Target::Tcp {
            host: host.into(),
            port,
        }
    }

    fn http(host: &str, port: u16, path: &str) -> Target {
        Target::Http {
            host: host.into(),
            port,
            path: path.into(),
        }
    }

    #[test]
    fn good_urls() {
        let cases = [
            ("tcp://127.0.0.1:5432", tcp("127.0.0.1", 5432)),
            ("tcp://db:5432", tcp("db", 5432)),
            ("  tcp://db:5432/ ", tcp("db", 5432)),
            ("TCP://my_db-1.internal:1", tcp("my_db-1.internal", 1)),
            ("tcp://[::1]:65535", tcp("::1", 65535)),
            ("http://web", http("web", 80, "/")),
            ("http://web:8000", http("web", 8000, "/")),
            ("http://web:8000/healthz", http("web", 8000, "/healthz")),
            (
                "http://web/a/b?x=1&y=%20",
                http("web", 80, "/a/b?x=1&y=%20"),
            ),
            ("http://web?ready", http("web", 80, "/?ready")),
            ("http://web:81/p#frag", http("web", 81, "/p")),
            ("http://[fe80::1]/", http("fe80::1", 80, "/")),
            ("http://[::1]:8080/h", http("::1", 8080, "/h")),
            ("unix:///run/db.sock", Target::Unix("/run/db.sock".into())),
            ("unix:/run/db.sock", Target::Unix("/run/db.sock".into())),
            ("file:///tmp/ready", Target::File("/tmp/ready".into())),
            ("file:/tmp/ready", Target::File("/tmp/ready".into())),
        ];
        for (text, want) in cases {
            assert_eq!(Target::parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_urls_say_why() {
        let cases = [
            ("", "empty"),
            ("   ", "empty"),
            ("db:5432", "no scheme"),
            ("db:5432", "tcp://db:5432"),
            ("localhost", "no scheme"),
            ("ftp://x:21", "unknown scheme `ftp`"),
            ("tcp4://x:1", "unknown scheme"),
            ("https://api/health", "https is not supported"),
            ("tcp://", "host is empty"),
            ("tcp://:5432", "host is empty"),
            ("http://:80/", "host is empty"),
            ("tcp://db", "port is missing"),
            ("tcp://db:", "port is empty"),
            ("tcp://db:abc", "`abc` is not a port number"),
            ("tcp://db:+1", "not a port number"),
            ("tcp://db:0", "port 0"),
            ("tcp://db:65536", "out of range"),
            ("tcp://db:99999999999999999999", "out of range"),
            ("tcp://db:5432/x", "no path"),
            ("tcp://::1:5432", "brackets"),
            ("tcp://[::1:5432", "closing"),
            ("tcp://[nope]:1", "not an IPv6"),
            ("tcp://[::1]x", "unexpected"),
            ("tcp://[::1]", "port is missing"),
            ("tcp://user@db:1", "not supported"),
            ("tcp://d b:1", "host name"),
            ("http://web/a b", "percent-encode"),
            ("http://web/é", "percent-encode"),
            ("unix://run/db.sock", "unix:///run/db.sock"),
            ("unix://", "empty"),
            ("file://tmp/ready", "must be absolute"),
            ("unix:relative", "unix:///relative"),
            ("://x", "no scheme"),
        ];
        for (text, want) in cases {
            match Target::parse(text) {
                Ok(t) => panic!("`{text}` parsed as {t:?}"),
                Err(e) => assert!(e.contains(want), "`{text}`: {e:?} lacks {want:?}"),
            }
        }
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "tcp://db:5432",
            "tcp://[::1]:5432",
            "http://web:8000/h?x=1",
            "http://[::1]:80/",
            "unix:///run/db.sock",
            "file:///tmp/ready",
        ] {
            let t = Target::parse(text).unwrap();
            assert_eq!(t.to_string(), text);
            assert_eq!(Target::parse(&t.to_string()), Ok(t));
        }
    }
}
