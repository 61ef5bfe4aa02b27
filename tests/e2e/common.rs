//! Shared helpers for the end-to-end tests: run the real `init` binary as
//! PID 1 of a new PID namespace (`unshare --pid --fork --mount-proc`) or as
//! a plain child, read its output with deadlines, and wait on conditions.
//! No test here sleeps for a fixed time to let something happen. A test
//! that cannot run on this machine calls [`skip`]: never a silent pass.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

pub const INIT: &str = env!("CARGO_BIN_EXE_init");

/// A generous deadline for anything that should happen "promptly".
pub const PROMPT: Duration = Duration::from_secs(20);

pub fn is_root() -> bool {
    // SAFETY-free: /proc says who we are.
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// True when `unshare --pid` works here (it needs root).
pub fn can_unshare() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| {
        Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// For a test that needs PID 1: true when `unshare --pid` works; else the
/// test is skipped (see [`skip`]: a failure where PID 1 is required) and
/// must return.
pub fn require_pid1() -> bool {
    if !can_unshare() {
        skip(
            Need::Pid1,
            "`unshare --pid --fork --mount-proc` is not available (needs root)",
        );
        return false;
    }
    true
}

// ------------------------------------------------------------------ skips
//
// A test that cannot run on this machine (no Docker daemon, no `unshare
// --pid`, no writable cgroups) must not pass as if it had run: libtest and
// nextest know no "skipped at run time" and would report PASS. Such a test
// calls `skip`, which fails it where the run requires the missing thing (CI)
// and otherwise records the skip in a file; `.ci/test` counts those files
// in its closing summary ("N tests skipped: ...").

/// Something a test needs that a machine may lack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// A Docker daemon that answers `docker info`.
    Docker,
    /// `unshare --pid --fork --mount-proc` (root), for PID-1 tests.
    Pid1,
    /// Root and writable v1 `cpu` and `memory` cgroup hierarchies.
    Cgroups,
    /// `docker-compose` (or the `docker compose` plugin).
    Compose,
    /// `strace`, to see which files the init opens.
    Strace,
    /// Python's `prometheus_client` and `promtool` (Debian's prometheus),
    /// to parse the metrics page.
    Prometheus,
}

impl Need {
    pub fn name(self) -> &'static str {
        match self {
            Need::Docker => "docker",
            Need::Pid1 => "pid1",
            Need::Cgroups => "cgroups",
            Need::Compose => "compose",
            Need::Strace => "strace",
            Need::Prometheus => "prometheus",
        }
    }

    /// The variable that turns this skip into a failure; `CINIT_REQUIRE_ALL=1`
    /// (set by `.ci/run`) does it for every need.
    pub fn require_var(self) -> &'static str {
        match self {
            Need::Docker => "CINIT_REQUIRE_DOCKER",
            Need::Pid1 => "CINIT_REQUIRE_PID1",
            Need::Cgroups => "CINIT_REQUIRE_CGROUPS",
            Need::Compose => "CINIT_REQUIRE_COMPOSE",
            Need::Strace => "CINIT_REQUIRE_STRACE",
            Need::Prometheus => "CINIT_REQUIRE_PROMETHEUS",
        }
    }

    /// The variable that requires it, if one is set to 1 in this run.
    pub fn required_by(self) -> Option<&'static str> {
        let on = |v: &str| std::env::var(v).is_ok_and(|x| x == "1");
        ["CINIT_REQUIRE_ALL", self.require_var()]
            .into_iter()
            .find(|v| on(v))
    }
}

/// Where skips are recorded: `CINIT_TEST_SKIPS` (`.ci/test` sets it), else
/// `<target>/test-skips`, the target directory found from this test
/// binary's own path (`<target>/<profile>/deps/e2e-<hash>`).
pub fn skips_dir() -> std::path::PathBuf {
    if let Some(d) = std::env::var_os("CINIT_TEST_SKIPS").filter(|d| !d.is_empty()) {
        return d.into();
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .nth(3)
        .map(|t| t.join("test-skips"))
        .unwrap_or_else(|| std::env::temp_dir().join("cinit-test-skips"))
}

/// The running test's name: libtest (under cargo test and nextest alike)
/// names the thread of each test after it.
pub fn test_name() -> String {
    std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .unwrap_or("?")
        .to_string()
}

/// The current test (or the part of it that needs `need`) cannot run here:
/// `why` says what is missing. Where the run requires `need`
/// (`CINIT_REQUIRE_ALL=1` or the need's own `CINIT_REQUIRE_…=1`) this
/// panics, so a missing service fails the run instead of passing it.
/// Otherwise it prints `SKIPPED` on stderr and records one line
/// `NEED<TAB>TEST<TAB>WHY` in a file of its own under [`skips_dir`]; the
/// caller then returns (or leaves out the part that needs it).
pub fn skip(need: Need, why: &str) {
    let test = test_name();
    if let Some(var) = need.required_by() {
        panic!(
            "{test} needs {} and this run requires it ({var}=1), but: {why}",
            need.name()
        );
    }
    eprintln!(
        "SKIPPED {test}: {why} (set {}=1 to make this a failure)",
        need.require_var()
    );
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = skips_dir();
    let file = dir.join(format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let line = format!(
        "{}\t{test}\t{}\n",
        need.name(),
        why.replace(['\t', '\n'], " ")
    );
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&file, line)) {
        // The record is what makes the skip visible: losing it is a failure.
        panic!(
            "failed to record the skip of {test} in {}: {e}",
            file.display()
        );
    }
}

/// Polls `cond` until it holds or the deadline passes.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !cond() {
        if Instant::now() > end {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A running init (directly, or under unshare) with its output streamed
/// line by line.
pub struct Running {
    pub child: Child,
    /// The init's own pid as seen from here.
    pub init_pid: i32,
    stdout: Receiver<String>,
    stderr_lines: Receiver<String>,
    pub stderr_seen: Vec<String>,
    pub stdout_seen: Vec<String>,
    /// The control socket given to this init (`private_control`).
    control: Option<std::path::PathBuf>,
}

/// Gives an init started by a test a control socket of its own
/// (`CINIT_CONTROL`), unless the command sets one: with the default
/// `/run/cinit.sock` shared by the host's /run, every other test's init
/// would check whether that socket is alive by connecting to it, and
/// wake up the init that holds it (a test of idle wake-ups would see
/// them). An explicit `--control` on the command line still wins.
pub fn private_control(cmd: &mut Command) -> Option<std::path::PathBuf> {
    if cmd
        .get_envs()
        .any(|(k, v)| k == "CINIT_CONTROL" && v.is_some())
    {
        return None;
    }
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let p = std::env::temp_dir().join(format!(
        "cinit-test-ctl-{}-{}.sock",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    cmd.env("CINIT_CONTROL", &p);
    Some(p)
}

pub fn lines(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            match line {
                Ok(l) => {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    });
    rx
}

impl Running {
    /// Starts `init ARGS` as PID 1 of a new PID namespace.
    pub fn pid1(args: &[&str]) -> Running {
        let mut cmd = Command::new("unshare");
        cmd.args(["--pid", "--fork", "--kill-child", "--mount-proc", INIT])
            .args(args);
        Running::start(cmd, true)
    }

    /// Starts `init ARGS` as an ordinary child of the test.
    pub fn plain(args: &[&str]) -> Running {
        let mut cmd = Command::new(INIT);
        cmd.args(args);
        Running::start(cmd, false)
    }

    pub fn start(mut cmd: Command, under_unshare: bool) -> Running {
        let control = private_control(&mut cmd);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start init");
        let stdout = lines(child.stdout.take().unwrap());
        let stderr_lines = lines(child.stderr.take().unwrap());
        let init_pid = if under_unshare {
            let p = child.id();
            let mut found = 0;
            // An init that exits at once (a bad command, a refused bind)
            // may be gone before it is seen: then there is no pid to find.
            wait_until("unshare to fork the init", PROMPT, || {
                found = std::fs::read_to_string(format!("/proc/{p}/task/{p}/children"))
                    .ok()
                    .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
                    .unwrap_or(0);
                found != 0 || matches!(child.try_wait(), Ok(Some(_)))
            });
            found
        } else {
            child.id() as i32
        };
        Running {
            child,
            init_pid,
            stdout,
            stderr_lines,
            stderr_seen: Vec::new(),
            stdout_seen: Vec::new(),
            control,
        }
    }

    /// The next stdout line, or a panic after `timeout`.
    pub fn line(&mut self, timeout: Duration) -> String {
        match self.stdout.recv_timeout(timeout) {
            Ok(l) => {
                self.stdout_seen.push(l.clone());
                l
            }
            Err(_) => {
                let stderr = self.drain_stderr();
                panic!(
                    "no stdout line within {timeout:?}; stdout so far {:?}, stderr {stderr:?}",
                    self.stdout_seen
                )
            }
        }
    }

    /// Reads stdout until a line satisfies `pred`.
    pub fn line_matching(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let l = self.line(left.max(Duration::from_millis(1)));
            if pred(&l) {
                return l;
            }
        }
    }

    /// Reads stderr until a line contains `needle`.
    pub fn stderr_line(&mut self, timeout: Duration, needle: &str) -> String {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self
                .stderr_lines
                .recv_timeout(left.max(Duration::from_millis(1)))
            {
                Ok(l) => {
                    self.stderr_seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "no stderr line with {needle:?} within {timeout:?}; stderr so far {:?}",
                    self.stderr_seen
                ),
            }
        }
    }

    pub fn drain_stderr(&mut self) -> Vec<String> {
        while let Ok(l) = self.stderr_lines.try_recv() {
            self.stderr_seen.push(l);
        }
        self.stderr_seen.clone()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY-free: nix::sys::signal::kill needs an enum; use the raw
        // `kill` command for realtime numbers.
        let ok = Command::new("kill")
            .args([format!("-{sig}"), self.init_pid.to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "failed to send signal {sig} to {}", self.init_pid);
    }

    /// Waits for the init to exit; panics (after killing it) past `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let end = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                // Give the reader threads the last lines.
                while let Ok(l) = self.stderr_lines.recv_timeout(Duration::from_millis(200)) {
                    self.stderr_seen.push(l);
                }
                return s;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!(
                    "init did not exit within {timeout:?}; stderr {:?}",
                    self.drain_stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn code(&mut self, timeout: Duration) -> i32 {
        let s = self.wait(timeout);
        s.code()
            .unwrap_or_else(|| panic!("init ended without a code: {s:?}"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // A killed init leaves its socket file.
        if let Some(p) = &self.control {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Runs `init ARGS` to completion and returns (code, stdout, stderr).
pub fn run(args: &[&str], pid1: bool) -> (i32, String, String) {
    let mut cmd = if pid1 {
        let mut c = Command::new("unshare");
        c.args(["--pid", "--fork", "--kill-child", "--mount-proc", INIT]);
        c
    } else {
        Command::new(INIT)
    };
    let control = private_control(&mut cmd);
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run init");
    if let Some(p) = control {
        let _ = std::fs::remove_file(p);
    }
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A temporary directory removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "cinit-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One HTTP/1.0 GET to 127.0.0.1:port with a deadline; returns (status,
/// body) or the error (a refused connection is an error).
pub fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    use std::io::Write;
    use std::net::TcpStream;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.write_all(
        format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)
        .map_err(|e| format!("read: {e}"))?;
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("not HTTP: {buf:?}"))?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// The port from cinit's `listening on 127.0.0.1:PORT` log line.
pub fn listening_port(r: &mut Running) -> u16 {
    let line = r.stderr_line(PROMPT, "listening on ");
    line.split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"))
}

/// A JSON number field from a flat JSON body: `"pid":123`.
pub fn json_field(body: &str, key: &str) -> Option<i64> {
    let pat = format!("\"{key}\":");
    let rest = body.split(&pat).nth(1)?.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Voluntary + involuntary context switches of a process so far.
pub fn context_switches(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("ctxt_switches"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .sum()
}

/// Asserts that `pid` makes no wake-up for 3 s in a row (after start-up
/// settles, within 20 s): tini, with its 1 s `sigtimedwait`, would fail.
/// The rate itself is measured in bench/, not here.
pub fn assert_stays_asleep(pid: i32) {
    let mut last = context_switches(pid);
    let mut stable_since = Instant::now();
    let end = Instant::now() + Duration::from_secs(20);
    while stable_since.elapsed() < Duration::from_secs(3) {
        assert!(Instant::now() < end, "process {pid} kept waking up");
        std::thread::sleep(Duration::from_millis(250));
        let now = context_switches(pid);
        if now != last {
            last = now;
            stable_since = Instant::now();
        }
    }
}

/// `program` with no cinit setting inherited from this process: every
/// `CINIT_*` variable and `WEB_CONCURRENCY` removed, so a developer's shell
/// cannot change what a test sees.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("CINIT_") || k == "WEB_CONCURRENCY" {
            c.env_remove(k);
        }
    }
    c
}

/// Compares `actual` with `tests/snapshots/NAME` (trailing whitespace
/// normalised to one newline); `UPDATE_SNAPSHOTS=1` rewrites the file.
pub fn snapshot(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    let actual = format!("{}\n", actual.trim_end());
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read snapshot {}: {e}; run with UPDATE_SNAPSHOTS=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "snapshot {} differs (UPDATE_SNAPSHOTS=1 rewrites it)\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        );
    }
}

/// A port nothing listens on (bound, then released; another process
/// grabbing it in between is possible but unlikely on a test machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The live affinity mask as the binary reads it from itself (not from a
/// fixture root).
pub fn live_affinity() -> f64 {
    cinit::resources::HostFacts::read(std::path::Path::new("/"))
        .affinity_cpus
        .unwrap_or(1) as f64
}

/// The demo worker binary.
pub const DEMO: &str = env!("CARGO_BIN_EXE_cinit-demo");

/// The children of `pid` (from /proc, its main thread's list).
pub fn children_of(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// True while `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            rest.split_whitespace()
                .next()
                .map(|st| st != "Z" && st != "X")
        })
        .unwrap_or(false)
}

/// Sends signal number `sig` (realtime ones included) to `pid`.
pub fn kill(pid: i32, sig: i32) {
    let ok = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "failed to send signal {sig} to {pid}");
}

/// SIGRTMIN + n as a number (34 + n with glibc and musl alike: the kernel
/// numbers; libc reserves 32 and 33).
pub fn rtmin(n: i32) -> i32 {
    34 + n
}

// ---- live cgroups (v1), created by a test and removed with it --------

/// This process's own directory in the v1 hierarchy of `controller`, found
/// by the detection under test (its walk starts there).
pub fn own_dir(controller: &str) -> Option<std::path::PathBuf> {
    let r = cinit::resources::detect(
        std::path::Path::new("/"),
        &cinit::resources::HostFacts::read(std::path::Path::new("/")),
    );
    let w = r.walks.iter().find(|w| w.controller == controller)?;
    if w.hierarchy != cinit::resources::Hierarchy::V1 {
        return None;
    }
    Some(std::path::PathBuf::from(&w.levels.first()?.dir))
}

/// Why the live tests cannot run here, if they cannot.
pub fn live_cgroups_unavailable() -> Option<String> {
    // The effective uid: the second field of `Uid:` in /proc/self/status.
    let euid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2)?.parse::<u32>().ok()
        });
    if euid != Some(0) {
        return Some("not root".into());
    }
    for c in ["cpu", "memory"] {
        let Some(dir) = own_dir(c) else {
            return Some(format!("no v1 {c} hierarchy found for this process"));
        };
        let probe = dir.join(format!("cinit-probe-{}", std::process::id()));
        if let Err(e) = std::fs::create_dir(&probe) {
            return Some(format!("{} is not writable: {e}", dir.display()));
        }
        let _ = std::fs::remove_dir(&probe);
    }
    None
}

/// Groups created by one test, removed on drop (children first).
pub struct Groups {
    /// In creation order: parents before children.
    dirs: Vec<std::path::PathBuf>,
}

impl Groups {
    pub fn new() -> Groups {
        Groups { dirs: Vec::new() }
    }

    /// Creates `parent/name-<pid>-<n>` and remembers it.
    pub fn create(&mut self, parent: &std::path::Path, name: &str) -> std::path::PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = parent.join(format!(
            "cinit-test-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        self.dirs.push(dir.clone());
        dir
    }
}

pub fn cgroup_write(dir: &std::path::Path, file: &str, value: &str) {
    let p = dir.join(file);
    std::fs::write(&p, value).unwrap_or_else(|e| panic!("write {value} to {}: {e}", p.display()));
}

impl Drop for Groups {
    fn drop(&mut self) {
        for dir in self.dirs.iter().rev() {
            // The processes of a failed test may still be inside: move them
            // to the hierarchy's directory of this process.
            let home = if dir.starts_with("/sys/fs/cgroup/memory") {
                own_dir("memory")
            } else {
                own_dir("cpu")
            };
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                if let (Ok(procs), Some(home)) = (
                    std::fs::read_to_string(dir.join("cgroup.procs")),
                    home.as_ref(),
                ) {
                    for pid in procs.split_whitespace() {
                        let _ = std::fs::write(home.join("cgroup.procs"), pid);
                    }
                }
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if Instant::now() > deadline => {
                        eprintln!("could not remove {}: {e}", dir.display());
                        break;
                    }
                    // An exiting task leaves the group asynchronously.
                    Err(_) => std::thread::yield_now(),
                }
            }
        }
    }
}

/// The static release `init` and `cinit-demo` for a Rust `target`
/// (`x86_64-unknown-linux-musl`, `aarch64-unknown-linux-musl`), built once
/// per test process into `<target dir>/static`; the directory holding
/// them. A missing rustup target is a failure that names the command
/// which installs it (`.ci/test` does).
pub fn static_bins(target: &'static str) -> &'static std::path::Path {
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::{Mutex, OnceLock};
    type Built = Result<PathBuf, String>;
    static BUILT: OnceLock<Mutex<HashMap<&'static str, &'static Built>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let result: &'static Built = built
        .entry(target)
        .or_insert_with(|| Box::leak(Box::new(build_static(target))));
    match result {
        Ok(dir) => dir,
        Err(e) => panic!("{e}"),
    }
}

fn build_static(target: &str) -> Result<std::path::PathBuf, String> {
    // This test runs as <target dir>/<profile>/deps/e2e-<hash>; the static
    // build gets its own target dir beside the profiles so that it never
    // waits on the lock of a `cargo test` that runs us. (.ci/test builds
    // the same beforehand, and .ci/run measures it with .ci/release.)
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let target_dir = exe
        .ancestors()
        .nth(3)
        .ok_or("cannot place the static build")?;
    let dir = target_dir.join("static");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let started = Instant::now();
    let out = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            target,
            "--bins",
        ])
        .env("CARGO_TARGET_DIR", &dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("failed to run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "failed to build the static binaries for {target} (is the target installed? \
             `rustup target add {target}`; .ci/test does it):\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    eprintln!(
        "static binaries for {target} ready in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(dir.join(target).join("release"))
}

/// An exclusive flock on `path` (created if missing), held until drop:
/// serialises tests of every checkout on the machine that share something
/// outside their own process (cached Docker images, binfmt_misc).
pub fn exclusive_lock(path: &str) -> nix::fcntl::Flock<std::fs::File> {
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap_or_else(|e| panic!("open {path}: {e}"));
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .unwrap_or_else(|(_, e)| panic!("lock {path}: {e}"))
}

/// The host pid of the init's child whose pid in the init's PID
/// namespace is `ns_pid` (the workers report their own, namespaced pid).
pub fn host_pid(init: i32, ns_pid: i64) -> i64 {
    let kids =
        std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap_or_default();
    kids.split_whitespace()
        .filter_map(|k| k.parse::<i64>().ok())
        .find(|k| {
            std::fs::read_to_string(format!("/proc/{k}/status"))
                .ok()
                .and_then(|s| {
                    s.lines().find(|l| l.starts_with("NSpid:")).and_then(|l| {
                        l.split_whitespace()
                            .last()
                            .and_then(|p| p.parse::<i64>().ok())
                    })
                })
                == Some(ns_pid)
        })
        .unwrap_or_else(|| panic!("no child of {init} has pid {ns_pid} in its namespace"))
}
