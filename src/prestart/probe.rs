//! One attempt at a target: does it answer now?
//!
//! * tcp: a connection is accepted;
//! * http: a small HTTP/1.1 client sends `GET` and reads the status line;
//!   2xx is up, anything else is an error naming the status;
//! * unix: a connection to the socket is accepted;
//! * file: the path exists.
//!
//! Names are resolved again on every attempt (`resolve`), and every address
//! is tried in the order the resolver returns them. An attempt is bounded
//! as a whole by its timeout; dropping it drops the sockets.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::resolve::resolve;
use crate::vocab::format_duration;
use crate::vocab::{url_host, WaitTarget as Target};

/// Upper bound on the response head read while looking for the status line
/// (interim 1xx responses included): a misbehaving peer cannot make us
/// buffer without end.
const MAX_HEAD: u64 = 16 * 1024;

/// One attempt: Ok when the target answers as required, within
/// `attempt_timeout`.
pub async fn probe(target: &Target, attempt_timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(attempt_timeout, attempt(target)).await {
        Ok(result) => result,
        Err(_) => Err(no_answer(attempt_timeout)),
    }
}

pub(super) fn no_answer(attempt_timeout: Duration) -> String {
    format!("no answer within {}", format_duration(attempt_timeout))
}

/// One attempt without a bound: `wait_for` applies its own, to know when
/// an attempt was cut short by the overall deadline.
pub(super) async fn attempt(target: &Target) -> Result<(), String> {
    match target {
        Target::Tcp { host, port } => connect(host, *port).await.map(drop),
        Target::Http { host, port, path } => {
            let stream = connect(host, *port).await?;
            http_get(stream, host, *port, path).await
        }
        Target::Unix(path) => tokio::net::UnixStream::connect(path)
            .await
            .map(drop)
            .map_err(|e| format!("failed to connect to {}: {e}", path.display())),
        // A stat: a blocking call, but one on a local path that returns at
        // once; tokio's `fs` would only move it to the thread pool we avoid.
        Target::File(path) => match path.try_exists() {
            Ok(true) => Ok(()),
            Ok(false) => Err(format!("{} does not exist", path.display())),
            Err(e) => Err(format!("failed to look at {}: {e}", path.display())),
        },
    }
}

/// Connects to the first address of `host` that accepts.
async fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    let addrs = resolve(host, port).await?;
    let mut errors = Vec::new();
    for addr in &addrs {
        // A `SocketAddr` is connected to directly: no lookup, no pool.
        match TcpStream::connect(*addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => errors.push(connect_error(host, port, addr, &e)),
        }
    }
    Err(errors.join("; "))
}

fn connect_error(host: &str, port: u16, addr: &SocketAddr, e: &io::Error) -> String {
    let name = format!("{}:{port}", url_host(host));
    if name == addr.to_string() {
        format!("failed to connect to {name}: {e}")
    } else {
        format!("failed to connect to {name} ({addr}): {e}")
    }
}

async fn http_get(mut stream: TcpStream, host: &str, port: u16, path: &str) -> Result<(), String> {
    let url = format!("http://{}:{port}{path}", url_host(host));
    let authority = match port {
        80 => url_host(host),
        _ => format!("{}:{port}", url_host(host)),
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: cinit\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("failed to send the request to {url}: {e}"))?;

    let mut head = BufReader::new(stream.take(MAX_HEAD));
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = head
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| format!("failed to read the answer of {url}: {e}"))?;
        if n == 0 {
            return Err(format!("{url} closed the connection without an answer"));
        }
        if !line.ends_with(b"\n") {
            return Err(format!("{url} sent a response head too long to be HTTP"));
        }
        let (code, reason) = parse_status_line(&line).map_err(|e| format!("{url}: {e}"))?;
        match code {
            200..=299 => return Ok(()),
            // Interim answers (100 Continue, 103 Early Hints): skip their
            // header block and read the final status line.
            100..=199 => loop {
                line.clear();
                let n = head
                    .read_until(b'\n', &mut line)
                    .await
                    .map_err(|e| format!("failed to read the answer of {url}: {e}"))?;
                if n == 0 || !line.ends_with(b"\n") {
                    return Err(format!("{url} sent a truncated interim response"));
                }
                if line == b"\r\n" || line == b"\n" {
                    break;
                }
            },
            _ if reason.is_empty() => return Err(format!("{url} answered HTTP {code}")),
            _ => return Err(format!("{url} answered HTTP {code} {reason}")),
        }
    }
}

/// `HTTP/1.1 503 Service Unavailable\r\n` -> (503, "Service Unavailable").
/// The reason is cleaned for the log: printable, at most 80 characters.
fn parse_status_line(line: &[u8]) -> Result<(u16, String), String> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches(['\r', '\n']);
    let not_http = || {
        let shown: String = text.chars().take(40).collect();
        format!("not an HTTP status line: {shown:?}")
    };
    let rest = text
        .strip_prefix("HTTP/")
        .and_then(|r| r.split_once(' '))
        .map(|(_version, r)| r)
        .ok_or_else(not_http)?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_http());
    }
    let code: u16 = code.parse().map_err(|_| not_http())?;
    if code < 100 {
        return Err(not_http());
    }
    let reason: String = reason
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(80)
        .collect();
    Ok((code, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let ok = |l: &str| parse_status_line(l.as_bytes()).unwrap();
        assert_eq!(ok("HTTP/1.1 200 OK\r\n"), (200, "OK".into()));
        assert_eq!(ok("HTTP/1.0 204\r\n"), (204, "".into()));
        assert_eq!(
            ok("HTTP/1.1 503 Service Unavailable\n"),
            (503, "Service Unavailable".into())
        );
        assert_eq!(ok("HTTP/1.1 500 a\u{1b}[31mb\r\n"), (500, "a[31mb".into()));
        for bad in [
            "",
            "\r\n",
            "SSH-2.0-OpenSSH\r\n",
            "HTTP/1.1\r\n",
            "HTTP/1.1 20 OK\r\n",
            "HTTP/1.1 2000 OK\r\n",
            "HTTP/1.1 099 x\r\n",
            "HTTP/1.1 -12 x\r\n",
            "http/1.1 200 OK\r\n",
        ] {
            let e = parse_status_line(bad.as_bytes()).unwrap_err();
            assert!(e.contains("not an HTTP status line"), "{bad:?}: {e}");
        }
    }
}
