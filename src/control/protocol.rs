//! The control protocol, version 1 (docs/status.md).
//!
//! A client connects, writes one request (a JSON object on one line, at
//! most `MAX_REQUEST` bytes, ended by `\n`), and reads one answer (a JSON
//! object and `\n`), after which the init closes the connection.
//!
//! ```text
//! {"version":1,"command":"status"}             {"version":1,"ok":true,"status":{...}}
//! {"version":1,"command":"status","format":"text"}   ... "text":"..."
//! {"version":1,"command":"ready"}              {"version":1,"ok":true,"ready":false,"phase":"prestart",...}
//! {"version":1,"command":"reload"}             {"version":1,"ok":true,"message":"..."}
//! {"version":1,"command":"scale","to":3}       ... or "by":-1
//! {"version":1,"command":"stop"}
//! anything wrong                               {"version":1,"ok":false,"error":"..."}
//! ```
//!
//! Fields are only ever added within a version; a reader ignores fields
//! it does not know. A request of a later version is answered with an
//! error naming the version this init speaks.

use serde::Serialize;

use super::json;
use crate::status::Status;
use crate::vocab::{valid_program_name, Request, Scale, MAX_WORKERS_LIMIT};

pub const VERSION: u64 = 1;
/// The longest request line accepted.
pub const MAX_REQUEST: usize = 4096;

/// A request, as the protocol carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ask {
    pub request: Request,
    /// For `status`: the text form instead of the document.
    pub text: bool,
    /// For `reload` and `scale`: the program asked about (`--program`).
    pub program: Option<String>,
}

/// The request line a client sends.
pub fn request_line(ask: &Ask) -> String {
    let mut line = format!(
        "{{\"version\":{VERSION},\"command\":\"{}\"",
        ask.request.name()
    );
    if ask.text {
        line.push_str(",\"format\":\"text\"");
    }
    match ask.request {
        Request::Scale(Scale::To(n)) => line.push_str(&format!(",\"to\":{n}")),
        Request::Scale(Scale::By(d)) => line.push_str(&format!(",\"by\":{d}")),
        _ => {}
    }
    // Program names are letters, digits, `-` and `_`: nothing to escape.
    if let Some(p) = &ask.program {
        line.push_str(&format!(",\"program\":\"{p}\""));
    }
    line.push_str("}\n");
    line
}

/// Reads a request line (without its `\n`).
pub fn parse_request(line: &[u8]) -> Result<Ask, String> {
    let bad = |e: String| format!("the request is not a JSON object: {e}");
    let text = std::str::from_utf8(line).map_err(|_| bad("not UTF-8".into()))?;
    let m = json::object(text).map_err(bad)?;
    match m.get("version") {
        None => {}
        Some(v) if v.as_i64() == Some(VERSION as i64) => {}
        Some(_) => {
            return Err(format!(
                "this protocol version is not spoken here (this init speaks version {VERSION})"
            ))
        }
    }
    let command = m.str("command").ok_or("the request has no \"command\"")?;
    let text = match m.get("format") {
        None => false,
        Some(f) => match f.as_str() {
            Some("json") => false,
            Some("text") => true,
            _ => return Err("\"format\" is \"json\" or \"text\"".into()),
        },
    };
    let limit = MAX_WORKERS_LIMIT as i64;
    let request = match command {
        "status" => Request::Status,
        "ready" => Request::Ready,
        "reload" => Request::Reload,
        "stop" => Request::Stop,
        "scale" => match (
            m.get("to").and_then(json::Field::as_i64),
            m.get("by").and_then(json::Field::as_i64),
        ) {
            (Some(n), None) if (1..=limit).contains(&n) => Request::Scale(Scale::To(n as u32)),
            (None, Some(d)) if d != 0 && (-limit..=limit).contains(&d) => {
                Request::Scale(Scale::By(d as i32))
            }
            _ => {
                return Err(format!(
                    "\"scale\" takes \"to\" (1 to {limit}) or \"by\" (a change, not 0)"
                ))
            }
        },
        other => {
            return Err(format!(
                "unknown command {other:?} (status, ready, reload, scale, stop)"
            ))
        }
    };
    let program = match m.get("program") {
        None => None,
        Some(p) => match p.as_str() {
            Some(name) if valid_program_name(name) => Some(name.to_string()),
            _ => return Err("\"program\" is a program's name".into()),
        },
    };
    if program.is_some() && !matches!(request, Request::Reload | Request::Scale(_)) {
        return Err("\"program\" goes with \"reload\" and \"scale\" only".into());
    }
    Ok(Ask {
        request,
        text,
        program,
    })
}

/// An answer: `version` and `ok`, and the fields its request has.
#[derive(Debug, Default, Serialize)]
pub struct Answer<'a> {
    pub version: u64,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'a Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_workers: Option<u32>,
}

impl<'a> Answer<'a> {
    pub fn ok() -> Answer<'a> {
        Answer {
            version: VERSION,
            ok: true,
            ..Answer::default()
        }
    }

    /// The answer as sent: one line.
    pub fn line(&self) -> String {
        let mut s = serde_json::to_string(self)
            .unwrap_or_else(|e| error(&format!("failed to encode the answer: {e}")));
        if !s.ends_with('\n') {
            s.push('\n');
        }
        s
    }
}

/// A failed answer.
pub fn error(message: &str) -> String {
    Answer {
        version: VERSION,
        error: Some(message),
        ..Answer::default()
    }
    .line()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(r: Request, text: bool) {
        let ask = Ask {
            request: r,
            text,
            program: None,
        };
        let line = request_line(&ask);
        assert!(line.ends_with('\n') && line.len() < MAX_REQUEST);
        assert_eq!(parse_request(line.trim_end().as_bytes()), Ok(ask), "{line}");
    }

    #[test]
    fn every_request_survives_the_wire() {
        round(Request::Status, false);
        round(Request::Status, true);
        round(Request::Ready, false);
        round(Request::Reload, false);
        round(Request::Stop, false);
        round(Request::Scale(Scale::To(3)), false);
        round(Request::Scale(Scale::By(-2)), false);
        for r in [Request::Reload, Request::Scale(Scale::By(1))] {
            let ask = Ask {
                request: r,
                text: false,
                program: Some("queue-2".into()),
            };
            let line = request_line(&ask);
            assert_eq!(parse_request(line.trim_end().as_bytes()), Ok(ask), "{line}");
        }
    }

    #[test]
    fn a_program_must_be_a_name_and_go_with_reload_or_scale() {
        let e = |s: &str| parse_request(s.as_bytes()).unwrap_err();
        assert!(e(r#"{"command":"reload","program":"a b"}"#).contains("a program's name"));
        assert!(e(r#"{"command":"reload","program":7}"#).contains("a program's name"));
        assert!(e(r#"{"command":"status","program":"web"}"#).contains("reload"));
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let e = |s: &str| parse_request(s.as_bytes()).unwrap_err();
        assert!(e("").contains("not a JSON object"));
        assert!(e("[1]").contains("not a JSON object"));
        assert!(e("{\"version\":2,\"command\":\"status\"}").contains("speaks version 1"));
        assert!(e("{\"version\":\"1\",\"command\":\"status\"}").contains("speaks version 1"));
        assert!(e("{\"version\":1.0,\"command\":\"status\"}").contains("speaks version 1"));
        assert!(e("{\"command\":\"status\"} trailing").contains("not a JSON object"));
        assert!(e("{}").contains("no \"command\""));
        assert!(e("{\"command\":\"rm -rf\"}").contains("unknown command"));
        assert!(e("{\"command\":\"scale\"}").contains("\"to\""));
        assert!(e("{\"command\":\"scale\",\"to\":0}").contains("\"to\""));
        assert!(e("{\"command\":\"scale\",\"by\":0}").contains("\"by\""));
        assert!(e("{\"command\":\"scale\",\"to\":2,\"by\":1}").contains("\"to\""));
        assert!(e("{\"command\":\"scale\",\"to\":99999999999}").contains("\"to\""));
        assert!(e("{\"command\":\"status\",\"format\":\"xml\"}").contains("format"));
        // No version: version 1.
        assert!(parse_request(b"{\"command\":\"ready\"}").is_ok());
    }

    #[test]
    fn answers_are_one_json_line() {
        let a = error("no \"x\"\nhere");
        assert_eq!(a.matches('\n').count(), 1);
        let v = json::object(a.trim_end()).unwrap();
        assert_eq!(v.bool("ok"), Some(false));
        assert_eq!(v.get("version").and_then(json::Field::as_i64), Some(1));
        assert_eq!(v.str("error"), Some("no \"x\"\nhere"));
        let a = Answer {
            message: Some("fine"),
            ..Answer::ok()
        }
        .line();
        assert_eq!(a.matches('\n').count(), 1);
        let v = json::object(a.trim_end()).unwrap();
        assert_eq!((v.bool("ok"), v.str("message")), (Some(true), Some("fine")));
        assert!(v.get("status").is_none(), "absent fields are left out: {a}");
    }
}
