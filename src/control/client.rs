//! The init as a client of a running init: `init --status [--json]`,
//! `--reload`, `--scale N|+N|-N`, `--stop`, `--probe ready`.
//!
//! Exit codes (the README's table and docs/status.md):
//! * 0: done, or (`--probe ready`) ready;
//! * 1: refused (another uid, a command that cannot be done now), an
//!   error answer, or not ready;
//! * 2: usage (a bad option; from the configuration, before this runs);
//! * 3: no init answers: no control socket, nobody listening on it, or no
//!   answer within `TIMEOUT`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use super::protocol::{self, Ask};
use crate::vocab::{ControlSocket, Request};

pub const OK: i32 = 0;
pub const REFUSED: i32 = 1;
pub const NO_INIT: i32 = 3;

/// How long the client waits for the connection and the answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The longest answer read (a status of 1024 workers is far below).
const MAX_ANSWER: u64 = 16 << 20;

/// Asks the running init, prints what it says, and returns the exit code.
pub fn run(request: Request, program: Option<String>, json: bool, setting: &ControlSocket) -> i32 {
    let ask = Ask {
        request,
        text: request == Request::Status && !json,
        program,
    };
    let answer = match exchange(&ask, setting) {
        Ok(a) => a,
        Err((code, message)) => {
            crate::log::error(&message);
            return code;
        }
    };
    let v = match super::json::object(&answer) {
        Ok(v) => v,
        Err(e) => {
            crate::log::error(&format!("the init's answer is not JSON ({e})"));
            return REFUSED;
        }
    };
    if v.bool("ok") != Some(true) {
        if json {
            print(answer.trim_end());
        }
        crate::log::error(v.str("error").unwrap_or("refused"));
        return REFUSED;
    }
    match request {
        // The document as the init wrote it: one line, its fields in
        // their order (`| python3 -m json.tool` pretty-prints it).
        Request::Status if json => match v.get("status") {
            Some(super::json::Field::Raw(doc)) => print(doc),
            _ => print(answer.trim_end()),
        },
        Request::Status => print(v.str("text").unwrap_or("")),
        _ if json => print(answer.trim_end()),
        _ => {
            if let Some(m) = v.str("message").filter(|m| !m.is_empty()) {
                print(m);
            }
        }
    }
    match request {
        Request::Ready if v.bool("ready") != Some(true) => REFUSED,
        _ => OK,
    }
}

/// Writes a line to stdout; a reader that went away is no error.
fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

/// Connects, sends the request, reads the answer: `Err((exit code,
/// message))`.
fn exchange(ask: &Ask, setting: &ControlSocket) -> Result<String, (i32, String)> {
    let mut stream = connect(setting)?;
    let line = protocol::request_line(ask);
    let io = |e: std::io::Error| {
        let code = if e.kind() == std::io::ErrorKind::WouldBlock
            || e.kind() == std::io::ErrorKind::TimedOut
        {
            NO_INIT
        } else {
            REFUSED
        };
        (code, format!("failed to talk to the init: {e}"))
    };
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    // A write the init cut short (it refused before reading all of it)
    // still leaves its answer to read.
    let written = stream.write_all(line.as_bytes());
    let mut answer = String::new();
    stream
        .take(MAX_ANSWER)
        .read_to_string(&mut answer)
        .map_err(io)?;
    if answer.trim().is_empty() {
        written.map_err(io)?;
        return Err((
            NO_INIT,
            "the init closed the connection without an answer".into(),
        ));
    }
    Ok(answer)
}

/// The first socket that accepts a connection, in the order the init
/// would have chosen.
fn connect(setting: &ControlSocket) -> Result<UnixStream, (i32, String)> {
    let paths = super::client_paths(setting);
    let mut tried: Vec<String> = Vec::new();
    let mut denied: Option<PathBuf> = None;
    for p in &paths {
        match UnixStream::connect(p) {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                denied.get_or_insert(p.clone());
            }
            Err(e) => tried.push(format!("{} ({e})", p.display())),
        }
    }
    if let Some(p) = denied {
        return Err((
            REFUSED,
            format!(
                "permission denied on {}: the control socket is for root and the init's own user",
                p.display()
            ),
        ));
    }
    Err((
        NO_INIT,
        format!("no init answers here: {}", tried.join(", ")),
    ))
}
