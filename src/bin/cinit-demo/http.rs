//! The little HTTP/1.1 the demo speaks, without I/O: parse a request head,
//! decide the answer. One request per connection (`Connection: close`), so
//! there is no pipelining or keep-alive state to get wrong.
//!
//! Routes: `/healthz` answers `ok`; every other path answers a JSON object
//! naming the process, so a client can see which worker served it. A
//! `delay=MS` query parameter (at most 60000) holds the body back for MS
//! milliseconds after the status line and headers went out: a client that
//! has read the headers knows its request is in flight.

use std::time::Duration;

/// A request head larger than this is refused (431).
pub const MAX_HEAD: usize = 16 * 1024;
/// A request body larger than this is refused (413).
pub const MAX_BODY: usize = 1024 * 1024;
const MAX_DELAY_MS: u64 = 60_000;

/// What the worker tells about itself in every JSON answer.
#[derive(Clone, Debug)]
pub struct Ident {
    pub pid: u32,
    /// `CINIT_WORKER_ID`, when set and a number.
    pub worker: Option<u64>,
    /// `CINIT_WORKERS`, when set and a number.
    pub workers: Option<u64>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request target as sent: path and query.
    pub target: String,
    pub content_length: usize,
    /// Length of the head, the blank line included; the body starts there.
    pub head_len: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// No blank line yet: read more.
    Incomplete,
    Complete(Request),
    /// Answer this error and close.
    Bad(Response),
}

#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// Whether to send the body (not for HEAD).
    pub send_body: bool,
    /// Hold the body back this long after the head.
    pub delay: Duration,
}

impl Response {
    fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{body}\n"),
            send_body: true,
            delay: Duration::ZERO,
        }
    }

    /// Status line and headers.
    pub fn head(&self) -> String {
        format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        )
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Unknown",
    }
}

/// Parses the head at the start of `buf`, if it is all there.
pub fn parse_head(buf: &[u8]) -> Head {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Head::Bad(Response::text(431, "request head too large"))
        } else {
            Head::Incomplete
        };
    };
    if end > MAX_HEAD {
        return Head::Bad(Response::text(431, "request head too large"));
    }
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let mut words = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Head::Bad(Response::text(400, "malformed request line"));
    };
    if method.is_empty() || !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return Head::Bad(Response::text(400, "malformed request line"));
    }
    let mut content_length = 0;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Head::Bad(Response::text(400, "malformed header"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            match value.parse::<usize>() {
                Ok(n) if n <= MAX_BODY => content_length = n,
                Ok(_) => return Head::Bad(Response::text(413, "request body too large")),
                Err(_) => return Head::Bad(Response::text(400, "bad Content-Length")),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && !value.eq_ignore_ascii_case("identity")
        {
            return Head::Bad(Response::text(411, "send a Content-Length"));
        }
    }
    Head::Complete(Request {
        method: method.to_string(),
        target: target.to_string(),
        content_length,
        head_len: end + 4,
    })
}

/// The answer to a complete request.
pub fn respond(req: &Request, me: &Ident) -> Response {
    let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
    let mut delay = Duration::ZERO;
    for pair in query.split('&') {
        if let Some(ms) = pair.strip_prefix("delay=") {
            match ms.parse::<u64>() {
                Ok(ms) if ms <= MAX_DELAY_MS => delay = Duration::from_millis(ms),
                _ => return Response::text(400, "delay must be 0 to 60000 (milliseconds)"),
            }
        }
    }
    let mut resp = if path == "/healthz" {
        Response::text(200, "ok")
    } else {
        let num = |n: Option<u64>| n.map_or("null".to_string(), |n| n.to_string());
        let body = format!(
            "{{\"pid\":{},\"worker\":{},\"workers\":{},\"path\":{}}}\n",
            me.pid,
            num(me.worker),
            num(me.workers),
            serde_json::Value::from(req.target.as_str())
        );
        Response {
            status: 200,
            content_type: "application/json",
            body,
            send_body: true,
            delay: Duration::ZERO,
        }
    };
    resp.delay = delay;
    resp.send_body = req.method != "HEAD";
    resp
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Ident {
        Ident {
            pid: 42,
            worker: Some(1),
            workers: None,
        }
    }

    fn complete(raw: &str) -> Request {
        match parse_head(raw.as_bytes()) {
            Head::Complete(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_a_get_and_answers_json() {
        let req = complete("GET /items/5?q=a%22b HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(req.target, "/items/5?q=a%22b");
        let resp = respond(&req, &me());
        assert_eq!(resp.status, 200);
        let v: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
        assert_eq!(v["pid"], 42);
        assert_eq!(v["worker"], 1);
        assert!(v["workers"].is_null());
        assert_eq!(v["path"], "/items/5?q=a%22b");
        assert!(resp
            .head()
            .contains(&format!("Content-Length: {}\r\n", resp.body.len())));
    }

    #[test]
    fn healthz_head_and_delay() {
        let resp = respond(&complete("GET /healthz HTTP/1.0\r\n\r\n"), &me());
        assert_eq!(resp.body, "ok\n");
        let resp = respond(&complete("HEAD /healthz?delay=20 HTTP/1.1\r\n\r\n"), &me());
        assert!(!resp.send_body);
        assert_eq!(resp.delay, Duration::from_millis(20));
        let resp = respond(&complete("GET /?delay=99999999 HTTP/1.1\r\n\r\n"), &me());
        assert_eq!(resp.status, 400);
    }

    #[test]
    fn incomplete_bad_and_bodies() {
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\n"), Head::Incomplete);
        let bad = |raw: &str| match parse_head(raw.as_bytes()) {
            Head::Bad(r) => r.status,
            other => panic!("{other:?}"),
        };
        assert_eq!(bad("GET /\r\n\r\n"), 400);
        assert_eq!(bad("GET x HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(
            bad("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            411
        );
        assert_eq!(
            bad("POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n"),
            413
        );
        assert_eq!(bad(&"x".repeat(MAX_HEAD + 1)), 431);
        let req = complete("POST / HTTP/1.1\r\ncontent-length: 3\r\n\r\nabc");
        assert_eq!((req.content_length, req.head_len), (3, 38));
    }
}
