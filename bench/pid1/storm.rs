//! Orphan-storm child for bench/pid1.sh, built there with plain `rustc`
//! (no dependencies): a small process forks much faster than python3.
//!
//!   storm storm N        fork N children that _exit(0) at once; print
//!                        "<pid ns link> <CLOCK_MONOTONIC ns>" and _exit(0)
//!                        without waiting for them
//!   storm reap N SECS    fork a middle process that forks N children that
//!                        _exit(0) at once and then exits itself, so that the
//!                        N become orphans of PID 1 while we stay alive; wait
//!                        for the middle one, then poll /proc (our namespace's)
//!                        until only PID 1 and we are left, or SECS pass;
//!                        print "<ms taken> <processes left>"
use std::io::Write;

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

extern "C" {
    fn fork() -> i32;
    fn _exit(code: i32) -> !;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

const CLOCK_MONOTONIC: i32 = 1;

fn mono_ns() -> i64 {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: ts is a valid, writable timespec.
    unsafe { clock_gettime(CLOCK_MONOTONIC, &mut ts) };
    ts.sec * 1_000_000_000 + ts.nsec
}

fn spawn_exiting(n: u32) {
    for _ in 0..n {
        // SAFETY: the child only calls _exit, which is async-signal-safe.
        match unsafe { fork() } {
            0 => unsafe { _exit(0) },
            -1 => {
                eprintln!("storm: fork failed: {}", std::io::Error::last_os_error());
                unsafe { _exit(1) }
            }
            _ => {}
        }
    }
}

fn others(me: u32) -> usize {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|&p| p != 1 && p != me)
                .count()
        })
        .unwrap_or(0)
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let n: u32 = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let mut out = std::io::stdout();
    match a.get(1).map(String::as_str) {
        Some("storm") => {
            spawn_exiting(n);
            let ns = std::fs::read_link("/proc/self/ns/pid").unwrap_or_default();
            let _ = writeln!(out, "{} {}", ns.display(), mono_ns());
            let _ = out.flush();
            // SAFETY: ends the process without waiting for the children.
            unsafe { _exit(0) }
        }
        Some("reap") => {
            let secs: f64 = a.get(3).and_then(|s| s.parse().ok()).unwrap_or(20.0);
            // SAFETY: the middle child forks and calls _exit only.
            let mid = unsafe { fork() };
            if mid == 0 {
                spawn_exiting(n);
                unsafe { _exit(0) }
            }
            let mut st = 0;
            // SAFETY: st is a valid out-pointer.
            unsafe { waitpid(mid, &mut st, 0) };
            let me = std::process::id();
            let t0 = mono_ns();
            let deadline = t0 + (secs * 1e9) as i64;
            let left = loop {
                let left = others(me);
                if left == 0 || mono_ns() > deadline {
                    break left;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            };
            let _ = writeln!(out, "{} {}", (mono_ns() - t0) / 1_000_000, left);
        }
        _ => {
            eprintln!("usage: storm storm N | storm reap N SECS");
            std::process::exit(2);
        }
    }
}
