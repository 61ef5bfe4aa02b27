//! `--listen` addresses: `host:port`, `[::]:port`, `:port`, a bare port or
//! `unix:/path`. Everything that can be checked without binding is checked
//! here, so a bad address stops the start (and the dry run) before any
//! pre-start step runs.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// More than this many sockets is surely a mistake; it also keeps the fds
/// a worker receives (3, 4, ...) below the numbers the init keeps its own
/// fds at.
pub const MAX_LISTENERS: usize = 32;
/// `sun_path` holds 108 bytes with the terminating NUL.
pub const MAX_UNIX_PATH: usize = 107;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ListenAddr {
    /// `host:port`, `[::]:port`, `:port`, or a bare port; the host may be
    /// a name, resolved when binding.
    Tcp { host: String, port: u16 },
    /// `unix:/path`.
    Unix { path: PathBuf },
}

impl ListenAddr {
    pub fn parse(text: &str) -> Result<ListenAddr, String> {
        let t = text.trim();
        let bad = |why: &str| {
            format!("`{text}` is not a listen address: {why} (use host:port, [::]:port, :port or unix:/path)")
        };
        if let Some(path) = t.strip_prefix("unix:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(bad("the socket path is empty"));
            }
            if path.len() > MAX_UNIX_PATH {
                return Err(bad(&format!(
                    "the socket path is {} bytes long; the kernel takes at most {MAX_UNIX_PATH}",
                    path.len()
                )));
            }
            return Ok(ListenAddr::Unix { path: path.into() });
        }
        let t = t.strip_prefix("tcp://").unwrap_or(t);
        if let Ok(port) = t.parse::<u16>() {
            return Ok(ListenAddr::Tcp {
                host: "0.0.0.0".into(),
                port,
            });
        }
        let (host, port) = if let Some(rest) = t.strip_prefix('[') {
            let (h, p) = rest.split_once("]:").ok_or_else(|| bad("missing ]:port"))?;
            if h.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("not an IPv6 address in brackets"));
            }
            (h.to_string(), p)
        } else {
            let (h, p) = t.rsplit_once(':').ok_or_else(|| bad("missing :port"))?;
            if h.contains(':') {
                return Err(bad("IPv6 addresses go in brackets"));
            }
            (if h.is_empty() { "0.0.0.0" } else { h }.to_string(), p)
        };
        let port = port
            .parse::<u16>()
            .map_err(|_| bad("the port is not a number from 0 to 65535"))?;
        Ok(ListenAddr::Tcp { host, port })
    }

    /// The name a worker sees in LISTEN_FDNAMES: no colons allowed there.
    pub fn fd_name(&self) -> String {
        match self {
            ListenAddr::Tcp { port, .. } => format!("tcp-{port}"),
            ListenAddr::Unix { path } => path
                .file_name()
                .map(|n| n.to_string_lossy().replace(':', "_"))
                .unwrap_or_else(|| "unix".into()),
        }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            ListenAddr::Tcp { host, port } => write!(f, "{host}:{port}"),
            ListenAddr::Unix { path } => write!(f, "unix:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses() {
        assert_eq!(
            ListenAddr::parse("0.0.0.0:8000"),
            Ok(ListenAddr::Tcp {
                host: "0.0.0.0".into(),
                port: 8000
            })
        );
        assert_eq!(
            ListenAddr::parse(":8000"),
            Ok(ListenAddr::Tcp {
                host: "0.0.0.0".into(),
                port: 8000
            })
        );
        assert_eq!(
            ListenAddr::parse("8000"),
            Ok(ListenAddr::Tcp {
                host: "0.0.0.0".into(),
                port: 8000
            })
        );
        assert_eq!(
            ListenAddr::parse("[::]:80"),
            Ok(ListenAddr::Tcp {
                host: "::".into(),
                port: 80
            })
        );
        assert_eq!(
            ListenAddr::parse("unix:/run/app.sock"),
            Ok(ListenAddr::Unix {
                path: "/run/app.sock".into()
            })
        );
        assert_eq!(ListenAddr::parse("[::]:80").unwrap().to_string(), "[::]:80");
        for bad in [
            "",
            "host",
            "host:http",
            ":99999",
            "::1:80",
            "unix:",
            "[zz]:80",
        ] {
            assert!(ListenAddr::parse(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn unix_paths_that_cannot_be_bound_are_refused() {
        let long = format!("unix:/tmp/{}", "a".repeat(MAX_UNIX_PATH));
        let e = ListenAddr::parse(&long).unwrap_err();
        assert!(e.contains("at most 107"), "{e}");
        let fits = format!("unix:/{}", "a".repeat(MAX_UNIX_PATH - 1));
        assert!(ListenAddr::parse(&fits).is_ok());
    }
}
