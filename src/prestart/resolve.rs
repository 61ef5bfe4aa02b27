//! Host name resolution for the probes, without a thread pool.
//!
//! Why not `tokio::net::lookup_host`: it runs `getaddrinfo` on tokio's
//! blocking pool, and SPEC 10 rules out a pool (it would also linger with
//! idle threads after the lookup). Why not call `getaddrinfo` here: it blocks, for seconds
//! when a DNS server is slow, and the init runs one current-thread runtime
//! that must keep reading signals meanwhile.
//!
//! So each lookup of a name gets one short-lived `std::thread` that calls
//! `getaddrinfo` (std's `ToSocketAddrs`), puts the answer in a shared slot
//! and exits. The awaiting task learns of it through a socket pair: the
//! thread owns one end and simply drops it, the task awaits end-of-file on
//! the other end with tokio's reactor (no `tokio::sync`: that feature is not
//! enabled). IP literals never start a thread.
//!
//! Cancel-safety: dropping the future drops our end and the `Arc`; the
//! thread cannot be interrupted, so it finishes its lookup (bounded by the
//! resolver's own timeouts), writes into a slot no one reads, and exits.
//! The thread inherits the init's signal mask (every catchable signal
//! blocked, see `signals`), so it never steals a signal from the signalfd;
//! std creates the socket pair close-on-exec, so no child inherits it.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, PoisonError};

type Answer = io::Result<Vec<SocketAddr>>;

/// Every address `host` resolves to, with `port`. A fresh lookup each call:
/// the container behind the name may appear (or move) between attempts.
pub(crate) async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let failed = |e: io::Error| format!("failed to resolve `{host}`: {e}");

    let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(failed)?;
    ours.set_nonblocking(true).map_err(failed)?;
    let ours = tokio::net::UnixStream::from_std(ours).map_err(failed)?;

    let slot: Arc<Mutex<Option<Answer>>> = Arc::new(Mutex::new(None));
    let thread_slot = Arc::clone(&slot);
    let name = host.to_string();
    std::thread::Builder::new()
        .name("cinit-resolve".into())
        .spawn(move || {
            let answer = (name.as_str(), port)
                .to_socket_addrs()
                .map(|addrs| addrs.collect());
            *thread_slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(answer);
            // Closing our end is the wake-up: the task sees end-of-file.
            drop(theirs);
        })
        .map_err(failed)?;

    wait_for_eof(&ours).await.map_err(failed)?;
    let answer = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
    match answer {
        Some(Ok(addrs)) if addrs.is_empty() => Err(format!("`{host}` resolved to no address")),
        Some(Ok(addrs)) => Ok(addrs),
        Some(Err(e)) => Err(failed(e)),
        // The thread died before answering (it cannot panic in practice).
        None => Err(format!(
            "failed to resolve `{host}`: the lookup ended without an answer"
        )),
    }
}

/// Waits until the peer closes its end. Nothing is ever written, but any
/// stray byte is read and ignored rather than trusted.
async fn wait_for_eof(stream: &tokio::net::UnixStream) -> io::Result<()> {
    let mut buf = [0u8; 16];
    loop {
        stream.readable().await?;
        match stream.try_read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn ip_literals_need_no_lookup() {
        let addrs = rt().block_on(resolve("::1", 80)).unwrap();
        assert_eq!(addrs, vec!["[::1]:80".parse().unwrap()]);
        let addrs = rt().block_on(resolve("10.0.0.7", 5432)).unwrap();
        assert_eq!(addrs, vec!["10.0.0.7:5432".parse().unwrap()]);
    }

    #[test]
    fn localhost_resolves_to_loopback() {
        let addrs = rt().block_on(resolve("localhost", 8080)).unwrap();
        assert!(!addrs.is_empty());
        for a in addrs {
            assert!(a.ip().is_loopback(), "{a}");
            assert_eq!(a.port(), 8080);
        }
    }

    #[test]
    fn unknown_name_is_an_error() {
        // `.invalid` is reserved (RFC 2606): it never resolves.
        let e = rt().block_on(resolve("cinit-test.invalid", 1)).unwrap_err();
        assert!(e.contains("failed to resolve `cinit-test.invalid`"), "{e}");
    }
}
