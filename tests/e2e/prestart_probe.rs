//! The wait-for probes against real servers on 127.0.0.1 ephemeral ports,
//! unix sockets and files made here. Each test runs on a current-thread
//! runtime, like the init; the servers run on plain threads. Where a server
//! must appear "later", it is started from the wait's first progress report
//! (a condition), not after a fixed sleep.

use crate::common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use cinit::prestart::{probe, wait_for, Progress, Target};

fn temp_path(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("cinit-prestart-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn tcp(host: &str, port: u16) -> Target {
    Target::Tcp {
        host: host.into(),
        port,
    }
}

fn http(port: u16, path: &str) -> Target {
    Target::Http {
        host: "127.0.0.1".into(),
        port,
        path: path.into(),
    }
}

/// Reads one request head (up to the blank line) or gives up after 5 s.
fn read_request(conn: &mut TcpStream) -> String {
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// An HTTP server: the n-th connection (from 0) gets `answer(n)`, written
/// raw. Returns its port, the request heads seen, and the count of
/// connections. The thread lives until the test process ends.
fn http_server(
    answer: impl Fn(usize) -> &'static str + Send + 'static,
) -> (u16, Arc<Mutex<Vec<String>>>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let (seen, n) = (Arc::clone(&requests), Arc::clone(&count));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let head = read_request(&mut conn);
            seen.lock().unwrap().push(head);
            let i = n.fetch_add(1, Ordering::SeqCst);
            let _ = conn.write_all(answer(i).as_bytes());
        }
    });
    (port, requests, count)
}

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
const UNAVAILABLE: &str =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const ERROR: &str =
    "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\noops";

#[tokio::test]
async fn tcp_listener_that_appears_after_the_wait_began() {
    let port = free_port();
    let (first_failure, go) = mpsc::channel::<()>();
    let (accepted_tx, accepted) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        // Only once the wait has seen the port closed.
        if go.recv_timeout(Duration::from_secs(10)).is_err() {
            return;
        }
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        if listener.accept().is_ok() {
            let _ = accepted_tx.send(());
        }
    });

    let mut reports: Vec<Progress> = Vec::new();
    let result = wait_for(&tcp("127.0.0.1", port), Duration::from_secs(10), &mut |p| {
        reports.push(p.clone());
        let _ = first_failure.send(());
    })
    .await;

    result.unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].attempt, 1);
    assert!(reports[0].last_error.contains("refused"), "{reports:?}");
    accepted.recv_timeout(Duration::from_secs(5)).unwrap();
}

#[tokio::test]
async fn http_503_twice_then_200() {
    let (port, requests, count) = http_server(|n| if n < 2 { UNAVAILABLE } else { OK });
    let mut reports: Vec<Progress> = Vec::new();
    let took = wait_for(
        &http(port, "/health?deep=1"),
        Duration::from_secs(10),
        &mut |p| reports.push(p.clone()),
    )
    .await
    .unwrap();

    assert!(count.load(Ordering::SeqCst) >= 3);
    // Two failures 100 ms apart: only the first is reported.
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(
        reports[0]
            .last_error
            .contains("HTTP 503 Service Unavailable"),
        "{reports:?}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");

    let first = requests.lock().unwrap()[0].clone();
    assert!(
        first.starts_with("GET /health?deep=1 HTTP/1.1\r\n"),
        "{first:?}"
    );
    assert!(
        first.contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")),
        "{first:?}"
    );
    assert!(first.contains("\r\nUser-Agent: cinit\r\n"), "{first:?}");
    assert!(first.contains("\r\nConnection: close\r\n"), "{first:?}");
}

#[tokio::test]
async fn http_500_times_out_with_the_status() {
    let (port, _, count) = http_server(|_| ERROR);
    let started = Instant::now();
    let mut reports = 0;
    let err = wait_for(&http(port, "/"), Duration::from_secs(1), &mut |_| {
        reports += 1
    })
    .await
    .unwrap_err();
    let took = started.elapsed();

    assert!(err.contains("HTTP 500 Internal Server Error"), "{err}");
    assert!(err.contains("did not answer within 1"), "{err}");
    assert!(err.contains(&format!("http://127.0.0.1:{port}/")), "{err}");
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(count.load(Ordering::SeqCst) >= 3);
    assert_eq!(reports, 1);
}

#[tokio::test]
async fn http_odd_answers() {
    // An interim 100 Continue before the final 204 is skipped.
    let (port, _, _) =
        http_server(|_| "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n");
    probe(&http(port, "/"), Duration::from_secs(5))
        .await
        .unwrap();

    let (port, _, _) = http_server(|_| "SSH-2.0-OpenSSH_9.6\r\n");
    let err = probe(&http(port, "/"), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(err.contains("not an HTTP status line"), "{err}");

    let (port, _, _) = http_server(|_| "");
    let err = probe(&http(port, "/"), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(err.contains("without an answer"), "{err}");

    let (port, _, _) = http_server(|_| "HTTP/1.0 302 Found\r\nLocation: /login\r\n\r\n");
    let err = probe(&http(port, "/"), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(err.contains("HTTP 302 Found"), "{err}");
}

#[tokio::test]
async fn a_silent_server_is_cut_by_the_attempt_timeout() {
    // Accepts, reads the request, never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    let started = Instant::now();
    let err = probe(&http(port, "/"), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(err.contains("no answer within 300ms"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn unix_socket() {
    let path = temp_path("sock");
    let target = Target::parse(&format!("unix://{}", path.display())).unwrap();

    let err = probe(&target, Duration::from_secs(1)).await.unwrap_err();
    assert!(err.contains(&path.display().to_string()), "{err}");

    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    probe(&target, Duration::from_secs(1)).await.unwrap();

    // The socket file stays behind a dead server: connecting is refused.
    drop(listener);
    let err = probe(&target, Duration::from_secs(1)).await.unwrap_err();
    assert!(err.contains("refused"), "{err}");
    std::fs::remove_file(&path).unwrap();
}

#[tokio::test]
async fn file_that_appears_after_the_wait_began() {
    let path = temp_path("ready");
    let target = Target::parse(&format!("file://{}", path.display())).unwrap();
    let mut reports: Vec<Progress> = Vec::new();
    let created = path.clone();
    wait_for(&target, Duration::from_secs(10), &mut |p| {
        reports.push(p.clone());
        std::fs::write(&created, b"").unwrap();
    })
    .await
    .unwrap();
    assert_eq!(reports.len(), 1);
    assert!(
        reports[0].last_error.contains("does not exist"),
        "{reports:?}"
    );
    std::fs::remove_file(&path).unwrap();
}

#[tokio::test]
async fn names_are_resolved() {
    // `localhost` may resolve to ::1 first, where nothing listens: every
    // address is tried.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    wait_for(
        &tcp("localhost", port),
        Duration::from_secs(10),
        &mut |_| {},
    )
    .await
    .unwrap();

    let (port, _, _) = http_server(|_| OK);
    let target = Target::parse(&format!("http://localhost:{port}/")).unwrap();
    probe(&target, Duration::from_secs(5)).await.unwrap();

    // A reserved name that never resolves; a slow DNS server may make the
    // attempt time out instead.
    let err = probe(&tcp("cinit-test.invalid", 80), Duration::from_secs(3))
        .await
        .unwrap_err();
    assert!(
        err.contains("failed to resolve `cinit-test.invalid`") || err.contains("no answer"),
        "{err}"
    );
}

#[tokio::test]
async fn nothing_listening_times_out() {
    let port = free_port();
    let started = Instant::now();
    let mut reports = 0;
    let err = wait_for(&tcp("127.0.0.1", port), Duration::from_secs(1), &mut |_| {
        reports += 1
    })
    .await
    .unwrap_err();
    let took = started.elapsed();
    assert!(
        err.starts_with(&format!("tcp://127.0.0.1:{port} did not answer within 1")),
        "{err}"
    );
    assert!(err.contains("refused"), "{err}");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(reports, 1);
}

#[tokio::test]
async fn dropping_the_wait_stops_it() {
    let port = free_port();
    let target = tcp("127.0.0.1", port);
    let started = Instant::now();
    let mut reports = 0;
    let mut count = |_: &Progress| reports += 1;
    tokio::select! {
        r = wait_for(&target, Duration::from_secs(60), &mut count) => {
            panic!("the wait ended first: {r:?}")
        }
        () = tokio::time::sleep(Duration::from_millis(300)) => {}
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(reports, 1);
}

#[test]
fn parse_errors_are_messages() {
    for (text, want) in [
        ("db:5432", "tcp://db:5432"),
        ("https://api:443/health", "https is not supported"),
        ("tcp://:5432", "host is empty"),
        ("tcp://db:70000", "out of range"),
        ("tcp://db", "port is missing"),
        ("redis://cache:6379", "unknown scheme `redis`"),
        ("unix://run/db.sock", "unix:///run/db.sock"),
    ] {
        let err = Target::parse(text).unwrap_err();
        assert!(err.contains(want), "{text}: {err}");
        assert!(err.contains(text), "{text}: {err}");
    }
    assert_eq!(
        Target::parse("http://[::1]:8000").unwrap(),
        Target::Http {
            host: "::1".into(),
            port: 8000,
            path: "/".into()
        }
    );
}
