//! The words of the control socket: where it is (`--control`), and what
//! `--scale` asks for.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use super::addr::MAX_UNIX_PATH;
use super::words::MAX_WORKERS_LIMIT;

/// `--control`: where the control socket is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ControlSocket {
    /// `/run/cinit.sock`, else `$XDG_RUNTIME_DIR/cinit.sock` or
    /// `/tmp/cinit.sock` when `/run` is not writable.
    #[default]
    Auto,
    Path(PathBuf),
    /// `--control none`.
    Off,
}

/// The default socket's file name, in each directory tried.
pub const CONTROL_FILE: &str = "cinit.sock";

pub fn parse_control(text: &str) -> Result<ControlSocket, String> {
    let t = text.trim();
    match t {
        "" => Err("the path is empty (use a path, auto or none)".into()),
        "none" | "off" => Ok(ControlSocket::Off),
        "auto" => Ok(ControlSocket::Auto),
        _ if t.len() > MAX_UNIX_PATH => Err(format!(
            "the socket path is {} bytes long; the kernel takes at most {MAX_UNIX_PATH}",
            t.len()
        )),
        _ => Ok(ControlSocket::Path(t.into())),
    }
}

/// What a client asks of a running init through the control socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// `--status`.
    Status,
    /// `--reload`: what HUP does.
    Reload,
    /// `--scale`: what TTIN and TTOU do, by any amount.
    Scale(Scale),
    /// `--stop`: what TERM does.
    Stop,
    /// `--probe ready`.
    Ready,
}

impl Request {
    /// The protocol's name of the command (docs/status.md).
    pub fn name(self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Reload => "reload",
            Request::Scale(_) => "scale",
            Request::Stop => "stop",
            Request::Ready => "ready",
        }
    }

    /// The option that asks for it.
    pub fn option(self) -> &'static str {
        match self {
            Request::Status => "--status",
            Request::Reload => "--reload",
            Request::Scale(_) => "--scale",
            Request::Stop => "--stop",
            Request::Ready => "--probe ready",
        }
    }
}

/// Who sent a control request, from the socket's SO_PEERCRED.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
}

/// `--scale N|+N|-N`: a worker count, or a change of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    To(u32),
    By(i32),
}

impl fmt::Display for Scale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scale::To(n) => write!(f, "{n}"),
            Scale::By(d) => write!(f, "{d:+}"),
        }
    }
}

pub fn parse_scale(text: &str) -> Result<Scale, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "`{text}` is not a worker count or change (use N from 1 to {MAX_WORKERS_LIMIT}, +N or -N)"
        )
    };
    let limit = MAX_WORKERS_LIMIT as i32;
    if let Some(rest) = t.strip_prefix('+') {
        let n: i32 = rest.parse().map_err(|_| bad())?;
        return match n {
            1.. if n <= limit => Ok(Scale::By(n)),
            _ => Err(bad()),
        };
    }
    if let Some(rest) = t.strip_prefix('-') {
        let n: i32 = rest.parse().map_err(|_| bad())?;
        return match n {
            1.. if n <= limit => Ok(Scale::By(-n)),
            _ => Err(bad()),
        };
    }
    match t.parse::<u32>() {
        Ok(n) if (1..=MAX_WORKERS_LIMIT).contains(&n) => Ok(Scale::To(n)),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_takes_a_count_or_a_change() {
        assert_eq!(parse_scale("4"), Ok(Scale::To(4)));
        assert_eq!(parse_scale("+2"), Ok(Scale::By(2)));
        assert_eq!(parse_scale(" -1 "), Ok(Scale::By(-1)));
        for bad in [
            "0", "+0", "-0", "", "+", "x", "1.5", "2000", "+2000", "--1", "+-1",
        ] {
            assert!(parse_scale(bad).is_err(), "{bad}");
        }
        assert_eq!(Scale::By(-3).to_string(), "-3");
        assert_eq!(Scale::By(3).to_string(), "+3");
        assert_eq!(Scale::To(3).to_string(), "3");
    }

    #[test]
    fn control_takes_a_path_auto_or_none() {
        assert_eq!(parse_control("none"), Ok(ControlSocket::Off));
        assert_eq!(parse_control("auto"), Ok(ControlSocket::Auto));
        assert_eq!(
            parse_control("/tmp/x.sock"),
            Ok(ControlSocket::Path("/tmp/x.sock".into()))
        );
        assert!(parse_control("").is_err());
        assert!(parse_control(&format!("/{}", "x".repeat(200))).is_err());
    }
}
