//! bench/programs/bindexec.rs: the web program honcho runs in
//! bench/programs.sh. honcho passes no sockets, so each of its web
//! processes binds the port itself: this binds a TCP listener on
//! HOST:PORT with SO_REUSEPORT (so two processes share the port, as
//! cinit's and supervisord's two workers share one socket), puts it on
//! fd 3 and execs the rest of its arguments, e.g.
//!
//!   bindexec 127.0.0.1:8000 cinit-demo serve --fd 3
//!
//! Built by the script with plain rustc (no crates): the few libc calls are
//! declared here. IPv4 only.

use std::net::SocketAddrV4;
use std::os::unix::process::CommandExt;
use std::process::{exit, Command};

#[repr(C)]
struct SockaddrIn {
    family: u16,
    port: [u8; 2],
    addr: [u8; 4],
    zero: [u8; 8],
}

extern "C" {
    fn socket(domain: i32, ty: i32, protocol: i32) -> i32;
    fn setsockopt(fd: i32, level: i32, name: i32, value: *const i32, len: u32) -> i32;
    fn bind(fd: i32, addr: *const SockaddrIn, len: u32) -> i32;
    fn listen(fd: i32, backlog: i32) -> i32;
    fn dup2(old: i32, new: i32) -> i32;
}

const AF_INET: i32 = 2;
const SOCK_STREAM: i32 = 1;
const SOL_SOCKET: i32 = 1;
const SO_REUSEADDR: i32 = 2;
const SO_REUSEPORT: i32 = 15;

fn fail(what: &str) -> ! {
    eprintln!("bindexec: {what}: {}", std::io::Error::last_os_error());
    exit(1)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: bindexec HOST:PORT PROGRAM [ARGS...]");
        exit(2);
    }
    let addr: SocketAddrV4 = args[0].parse().unwrap_or_else(|_| {
        eprintln!("bindexec: {:?} is not an IPv4 HOST:PORT", args[0]);
        exit(2)
    });
    let sa = SockaddrIn {
        family: AF_INET as u16,
        port: addr.port().to_be_bytes(),
        addr: addr.ip().octets(),
        zero: [0; 8],
    };
    let one: i32 = 1;
    // SAFETY: plain libc calls on an fd this process owns, with pointers to
    // live values of the sizes passed.
    unsafe {
        let fd = socket(AF_INET, SOCK_STREAM, 0);
        if fd < 0 {
            fail("socket");
        }
        for opt in [SO_REUSEADDR, SO_REUSEPORT] {
            if setsockopt(fd, SOL_SOCKET, opt, &one, 4) != 0 {
                fail("setsockopt");
            }
        }
        if bind(fd, &sa, std::mem::size_of::<SockaddrIn>() as u32) != 0 {
            fail("bind");
        }
        if listen(fd, 1024) != 0 {
            fail("listen");
        }
        if fd != 3 && dup2(fd, 3) != 3 {
            fail("dup2");
        }
    }
    let err = Command::new(&args[1]).args(&args[2..]).exec();
    eprintln!("bindexec: exec {}: {err}", args[1]);
    exit(127)
}
