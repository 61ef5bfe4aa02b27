//! The control socket and the metrics page, served from the init's own
//! event loop (current-thread tokio: no thread, no timer while idle).
//!
//! An accept task per socket hands each connection to a task of its own,
//! which reads the request, passes it to the supervisor as an `Asked`
//! over a channel, and writes the answer. The supervisor's loop answers
//! from its state at once; everything that could wait on a client
//! happens in the connection's task. Each connection is bounded:
//!
//! * in time: `DEADLINE` to send the request (a client that sends
//!   nothing in time is told so), and `DEADLINE` again to take the
//!   answer, then the connection is closed;
//! * in size: a request longer than `protocol::MAX_REQUEST` (an HTTP head
//!   longer than `MAX_HTTP_HEAD`) gets an error;
//! * in number: past `MAX_CONNECTIONS` at once, a new connection is
//!   closed at once (a control client reads a "busy" error).
//!
//! A control peer must be root or the init's own uid (SO_PEERCRED), on
//! top of the socket file's mode 0600.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::protocol::{self, Ask};
use crate::listeners::{self, BindError};
use crate::vocab::{ListenAddr, Peer};

/// To send a whole request, and again to take the answer (an HTTP
/// connection has it once, from accept to the last byte).
pub const DEADLINE: Duration = Duration::from_secs(2);
/// Connections served at once, per socket.
pub const MAX_CONNECTIONS: usize = 16;
/// The longest HTTP request head read.
pub const MAX_HTTP_HEAD: usize = 8192;

/// Every task and every bounded step is one boxed future type, so the
/// runtime's task and timer code is compiled once, not once per future
/// (the binary has a size budget).
type Task<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

fn spawn(task: impl Future<Output = ()> + Send + 'static) {
    tokio::spawn(Box::pin(task) as Task<'static>);
}

/// Runs `step` for at most `limit`; false when the time ran out.
async fn within(limit: Duration, step: Task<'_>) -> bool {
    tokio::time::timeout(limit, step).await.is_ok()
}

/// What a client asked, and where the answer goes.
pub struct Asked {
    pub query: Query,
    pub reply: oneshot::Sender<String>,
}

pub enum Query {
    /// A control request from `by`.
    Control { ask: Ask, by: Peer },
    /// A metrics scrape: the answer is the page.
    Metrics,
}

/// The sockets being served; their files go when this is dropped.
pub struct Served {
    pub asked: mpsc::UnboundedReceiver<Asked>,
    /// Where the control socket is, if there is one.
    pub control: Option<PathBuf>,
    _files: Vec<SocketFile>,
}

/// Binds and serves the control socket (at `control`: `(path, chosen by
/// default)`) and the metrics page (at `metrics`). Must run inside the
/// event loop. A default path that cannot be had (another init holds it,
/// no writable directory) means no control socket, said in the log; a
/// path or a metrics address that was asked for must work.
pub fn start(
    control: Option<(PathBuf, bool)>,
    metrics: Option<&ListenAddr>,
) -> Result<Served, String> {
    // Unbounded, yet bounded: each connection holds at most one request
    // in it, and connections are counted.
    let (tx, rx) = mpsc::unbounded_channel();
    let mut files = Vec::new();
    let mut path = None;
    if let Some((p, default)) = control {
        match bind_control(&p) {
            Ok((listener, file)) => {
                let own_uid = nix::unistd::geteuid().as_raw();
                spawn(accept_control(listener, tx.clone(), own_uid));
                files.push(file);
                path = Some(p);
            }
            Err(BindError::InUse { .. }) if default => crate::log::info(&format!(
                "no control socket: {} belongs to another running init (--control PATH gives this one its own)",
                p.display()
            )),
            // Not asked for: a read-only root file system is no reason
            // for a warning at every start (info is silent in plain mode).
            Err(e) if default => crate::log::info(&format!(
                "no control socket (--control PATH chooses another place): {e}"
            )),
            Err(e) => return Err(format!("failed to open the control socket: {e}")),
        }
    }
    if let Some(addr) = metrics {
        let io = |e: std::io::Error| format!("failed to serve the metrics socket: {e}");
        let bind = |e: BindError| format!("failed to open the metrics socket: {e}");
        let l = listeners::bind_all(std::slice::from_ref(addr), 64, &Default::default())
            .map_err(bind)?
            .pop()
            .expect("one address, one listener");
        // A TCP listener leaves no file behind: one fd is enough.
        let fd = l.try_clone_fd().map_err(io)?;
        let local = l.local.clone();
        drop(l);
        let std = std::net::TcpListener::from(fd);
        std.set_nonblocking(true).map_err(io)?;
        let acceptor = tokio::net::TcpListener::from_std(std).map_err(io)?;
        spawn(accept_metrics(acceptor, tx.clone()));
        crate::log::info(&format!("metrics on http://{local}/metrics"));
    }
    Ok(Served {
        asked: rx,
        control: path,
        _files: files,
    })
}

/// A socket file this init made, removed when the init is done with it,
/// unless the path holds another file by then.
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if m.dev() == self.dev && m.ino() == self.ino {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// The control socket at `path` (one fd, close-on-exec), mode 0600. Before the chmod the file has the
/// umask's mode (0755 with the usual 022: no one else may connect), and
/// the peer check holds anyway. A file left by an earlier run is replaced
/// only when nobody accepts on it (as `--listen` does).
fn bind_control(path: &Path) -> Result<(tokio::net::UnixListener, SocketFile), BindError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let addr = format!("unix:{}", path.display());
    listeners::remove_stale_socket(path).map_err(|()| BindError::InUse {
        addr: addr.clone(),
        path: path.to_path_buf(),
    })?;
    let fail = |e: std::io::Error| BindError::Bind {
        addr: addr.clone(),
        source: e,
    };
    let l = std::os::unix::net::UnixListener::bind(path).map_err(fail)?;
    let m = std::fs::symlink_metadata(path).map_err(fail)?;
    let file = SocketFile {
        path: path.to_path_buf(),
        dev: m.dev(),
        ino: m.ino(),
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    l.set_nonblocking(true).map_err(fail)?;
    let l = tokio::net::UnixListener::from_std(l).map_err(fail)?;
    Ok((l, file))
}

/// Counts a connection while it lives.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(count: &Arc<AtomicUsize>) -> Option<Slot> {
        if count.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
            count.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Slot(count.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// After a failed accept (EMFILE: out of fds), wait a little rather than
/// spin on a socket that stays readable.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

async fn accept_control(
    listener: tokio::net::UnixListener,
    tx: mpsc::UnboundedSender<Asked>,
    uid: u32,
) {
    let count = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(_) => {
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let Some(slot) = Slot::take(&count) else {
            let _ = stream
                .try_write(protocol::error("busy: too many connections; try again").as_bytes());
            continue;
        };
        let tx = tx.clone();
        spawn(async move {
            let _slot = slot;
            control_connection(stream, tx, uid).await;
        });
    }
}

async fn control_connection(
    mut stream: tokio::net::UnixStream,
    tx: mpsc::UnboundedSender<Asked>,
    uid: u32,
) {
    let Ok(cred) = stream.peer_cred() else { return };
    let by = Peer {
        pid: cred.pid().unwrap_or(0),
        uid: cred.uid(),
    };
    // The request is read (bounded) before anything is answered, a
    // refusal included: closing a unix socket with unread data in it
    // resets the connection, and the client would lose the answer.
    let mut line = Err(format!(
        "no complete request within {}s",
        DEADLINE.as_secs()
    ));
    within(
        DEADLINE,
        Box::pin(async {
            line = read_request(&mut stream).await;
        }),
    )
    .await;
    let answer = match line {
        _ if by.uid != 0 && by.uid != uid => protocol::error(&format!(
            "refused: uid {} may not control this init (root or uid {uid} may)",
            by.uid
        )),
        Err(e) => protocol::error(&e),
        Ok(line) => match protocol::parse_request(&line) {
            Err(e) => protocol::error(&e),
            Ok(ask) => match ask_loop(&tx, Query::Control { ask, by }).await {
                Some(a) => a,
                None => return,
            },
        },
    };
    // The answer gets its own deadline: a client that does not read it
    // is dropped. What the client still sends (the rest of a request too
    // long) is read and dropped, for the same reason, up to a bound.
    within(
        DEADLINE,
        Box::pin(async {
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
            let mut sink = [0u8; 4096];
            for _ in 0..16 {
                match stream.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }),
    )
    .await;
}

/// Hands a query to the supervisor and waits for its answer; None when
/// the init is going away.
async fn ask_loop(tx: &mpsc::UnboundedSender<Asked>, query: Query) -> Option<String> {
    let (reply, answer) = oneshot::channel();
    tx.send(Asked { query, reply }).ok()?;
    answer.await.ok()
}

/// One request line; an error for one too long or a connection closed
/// before its end (a line without `\n` at EOF counts).
async fn read_request<R: AsyncRead + Unpin>(r: &mut R) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = r
            .read(&mut chunk)
            .await
            .map_err(|e| format!("failed to read the request: {e}"))?;
        if n == 0 {
            if buf.iter().all(u8::is_ascii_whitespace) {
                return Err("no request".into());
            }
            return Ok(buf);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            buf.truncate(i);
            return Ok(buf);
        }
        if buf.len() > protocol::MAX_REQUEST {
            return Err(format!(
                "the request is longer than {} bytes",
                protocol::MAX_REQUEST
            ));
        }
    }
}

async fn accept_metrics(acceptor: tokio::net::TcpListener, tx: mpsc::UnboundedSender<Asked>) {
    let count = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = match acceptor.accept().await {
            Ok((s, _)) => s,
            Err(_) => {
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        // Past the limit the connection is simply closed.
        let Some(slot) = Slot::take(&count) else {
            continue;
        };
        let tx = tx.clone();
        spawn(async move {
            let _slot = slot;
            within(DEADLINE, Box::pin(http_connection(stream, tx))).await;
        });
    }
}

/// What an HTTP request head asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum HttpAsk {
    /// `GET /metrics`.
    Metrics,
    /// Another path.
    NotFound,
    /// Another method.
    NotAllowed,
    BadRequest,
}

/// Reads the request line of an HTTP head.
pub fn parse_http(head: &[u8]) -> HttpAsk {
    let text = String::from_utf8_lossy(head);
    let line = text.lines().next().unwrap_or("");
    let mut words = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (words.next(), words.next(), words.next())
    else {
        return HttpAsk::BadRequest;
    };
    if words.next().is_some() || !version.starts_with("HTTP/1.") {
        return HttpAsk::BadRequest;
    }
    match (method, target.split('?').next()) {
        ("GET", Some("/metrics")) => HttpAsk::Metrics,
        ("GET", _) => HttpAsk::NotFound,
        _ => HttpAsk::NotAllowed,
    }
}

/// A whole HTTP answer; `status` may carry a header line after it.
fn http_answer(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

async fn http_connection(mut s: tokio::net::TcpStream, tx: mpsc::UnboundedSender<Asked>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let ask = loop {
        let n = match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            break parse_http(&buf);
        }
        if buf.len() > MAX_HTTP_HEAD {
            break HttpAsk::BadRequest;
        }
    };
    let answer = match ask {
        HttpAsk::Metrics => match ask_loop(&tx, Query::Metrics).await {
            Some(page) => http_answer("200 OK", &page),
            None => return,
        },
        HttpAsk::NotFound => http_answer("404 Not Found", "not found: try /metrics\n"),
        HttpAsk::NotAllowed => http_answer(
            "405 Method Not Allowed\r\nAllow: GET",
            "only GET /metrics\n",
        ),
        HttpAsk::BadRequest => http_answer("400 Bad Request", "bad request\n"),
    };
    let _ = s.write_all(answer.as_bytes()).await;
    let _ = s.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_request_lines() {
        let p = |s: &str| parse_http(s.as_bytes());
        assert_eq!(
            p("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            HttpAsk::Metrics
        );
        assert_eq!(p("GET /metrics?x=1 HTTP/1.0\r\n\r\n"), HttpAsk::Metrics);
        assert_eq!(p("GET / HTTP/1.1\r\n\r\n"), HttpAsk::NotFound);
        assert_eq!(p("POST /metrics HTTP/1.1\r\n\r\n"), HttpAsk::NotAllowed);
        assert_eq!(p("HEAD /metrics HTTP/1.1\r\n\r\n"), HttpAsk::NotAllowed);
        assert_eq!(p("GET /metrics\r\n\r\n"), HttpAsk::BadRequest);
        assert_eq!(p("GET /metrics SPDY/3\r\n\r\n"), HttpAsk::BadRequest);
        assert_eq!(p("\u{0}\u{1}"), HttpAsk::BadRequest);
        let a = http_answer("405 Method Not Allowed\r\nAllow: GET", "x\n");
        assert!(a.starts_with("HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\nContent-Type: "));
        assert!(a.ends_with("Content-Length: 2\r\nConnection: close\r\n\r\nx\n"));
    }

    #[test]
    fn the_control_socket_is_private_takes_over_only_a_stale_file_and_goes_away() {
        use std::os::unix::fs::PermissionsExt;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let _in_rt = rt.enter();
        let path = std::env::temp_dir().join(format!("cinit-ctl-{}.sock", std::process::id()));
        // A stale file (nobody listens) is replaced.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let (l, file) = bind_control(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A live one is never taken over.
        match bind_control(&path) {
            Err(BindError::InUse { .. }) => {}
            other => panic!("a live socket was taken over: {:?}", other.map(|_| ())),
        }
        assert!(path.exists());
        drop(l);
        drop(file);
        assert!(!path.exists(), "the socket file goes with the init");
    }

    #[test]
    fn connections_are_counted_and_bounded() {
        let count = Arc::new(AtomicUsize::new(0));
        let held: Vec<Slot> = (0..MAX_CONNECTIONS)
            .map(|_| Slot::take(&count).unwrap())
            .collect();
        assert!(Slot::take(&count).is_none());
        drop(held);
        assert_eq!(count.load(Ordering::Relaxed), 0);
        assert!(Slot::take(&count).is_some());
    }
}
