//! Running the linux/arm64 build on this x86_64 machine, for the tests of
//! `arm64.rs` and the arm64 image of `docker.rs`: the static aarch64 `init`
//! and `cinit-demo` (`cargo build --target aarch64-unknown-linux-musl`,
//! linked by rust-lld), run by Debian's `qemu-aarch64-static`.
//!
//! qemu-user runs the guest in its own process: under `unshare --pid`, the
//! emulated init IS pid 1 of the namespace, its signals and /proc are the
//! kernel's. Two ways to start it:
//!
//! * binfmt_misc (where the machine allows: root, the file system mounted or
//!   mountable, not globally disabled): the kernel itself hands an aarch64
//!   ELF to the emulator, so `./init` runs as it is and its aarch64
//!   children too; with the F flag this works inside containers, which
//!   `docker run --platform linux/arm64` needs.
//! * else the emulator is called directly (`qemu-aarch64-static ./init`),
//!   and every aarch64 child command is given the same prefix.
//!   `CINIT_TEST_QEMU=direct` forces this way.
//!
//! The registration ([`Binfmt`]) is shared by concurrent test processes
//! (nextest runs each test in its own) through a lock file: each user holds
//! a shared flock for as long as it runs aarch64 code; a process that needs
//! a handler takes the exclusive lock to register one. The last user to
//! leave (the one that then gets the exclusive lock at once) unregisters
//! the entry if the tests made it (`cinit-test-qemu-aarch64`); a handler
//! that was there before (say `qemu-aarch64` from binfmt-support) is never
//! touched. A test killed outright releases its flock with its process;
//! the entry it may leave is taken over and removed by the next run (and
//! by .ci/test's exit trap). Where binfmt_misc was not mounted, the first
//! test mounts it at its usual place and leaves the (then empty) mount, as
//! systemd's automount would: unmounting could drop entries that others
//! registered meanwhile.
//!
//! Known limit of qemu-user 7.2 (Debian bookworm): it refuses
//! `PR_SET_CHILD_SUBREAPER`, so the emulated init is not a subreaper when
//! it is not PID 1. The tests run it as PID 1 (under `unshare` or as a
//! container's entrypoint), as on a real arm64 machine.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::fcntl::{Flock, FlockArg};

use crate::common::{is_root, static_bins, Running};

pub const AARCH64: &str = "aarch64-unknown-linux-musl";
const QEMU: &str = "qemu-aarch64-static";

/// The static aarch64 binaries and how to run them here. Holds the
/// binfmt_misc registration (if any) for as long as it lives.
pub struct Aarch64 {
    pub bins: PathBuf,
    qemu: PathBuf,
    binfmt: Option<Binfmt>,
}

impl Aarch64 {
    /// Builds the binaries (once per process) and sets up the emulation.
    /// A missing emulator is a failure: .ci/test installs it.
    pub fn new() -> Aarch64 {
        let qemu = which(QEMU).unwrap_or_else(|| {
            panic!(
                "{QEMU} is not installed: `apt-get install qemu-user-static` \
                 (.ci/test does it); the arm64 tests need it"
            )
        });
        let bins = static_bins(AARCH64).to_path_buf();
        let elf = std::fs::read(bins.join("init")).expect("read the aarch64 init");
        // e_machine at offset 18: EM_AARCH64 = 183.
        assert_eq!(
            (&elf[..4], u16::from_le_bytes([elf[18], elf[19]])),
            (&b"\x7fELF"[..], 183),
            "{} is not an aarch64 ELF",
            bins.join("init").display()
        );
        let binfmt = if std::env::var("CINIT_TEST_QEMU").is_ok_and(|v| v == "direct") {
            eprintln!("NOTE: CINIT_TEST_QEMU=direct: the emulator is called directly");
            None
        } else {
            match Binfmt::acquire(&qemu) {
                Ok(b) => Some(b),
                Err(why) => {
                    eprintln!(
                        "NOTE: binfmt_misc cannot run aarch64 binaries here ({why}); \
                         the emulator is called directly instead"
                    );
                    None
                }
            }
        };
        Aarch64 { bins, qemu, binfmt }
    }

    /// The binfmt_misc handler in use, if the kernel runs aarch64 binaries
    /// by itself here.
    pub fn binfmt(&self) -> Option<&Binfmt> {
        self.binfmt.as_ref()
    }

    /// The words that run the aarch64 binary `bin` (`init`, `cinit-demo`).
    pub fn argv(&self, bin: &str) -> Vec<String> {
        let path = self.bins.join(bin).to_string_lossy().into_owned();
        match self.binfmt {
            Some(_) => vec![path],
            None => vec![self.qemu.to_string_lossy().into_owned(), path],
        }
    }

    /// `unshare --pid --fork --kill-child --mount-proc INIT ARGS`: the
    /// emulated init as PID 1 of a new PID namespace.
    pub fn pid1_command(&self, args: &[&str]) -> Command {
        let mut c = crate::common::clean_command("unshare");
        c.args(["--pid", "--fork", "--kill-child", "--mount-proc"])
            .args(self.argv("init"))
            .args(args);
        c
    }

    /// Starts the init as PID 1 with its output streamed.
    pub fn pid1(&self, args: &[&str]) -> Running {
        Running::start(self.pid1_command(args), true)
    }

    /// Runs the init as PID 1 to its end: (code, stdout, stderr).
    pub fn run_pid1(&self, args: &[&str]) -> (i32, String, String) {
        let out = self
            .pid1_command(args)
            .stdin(Stdio::null())
            .output()
            .expect("run unshare");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

// ------------------------------------------------------------ binfmt_misc

const BINFMT: &str = "/proc/sys/fs/binfmt_misc";
/// The name of the entry the tests register (and only ever remove).
const OURS: &str = "cinit-test-qemu-aarch64";
/// An aarch64 ELF executable: the magic and mask of every qemu-aarch64
/// registration (Debian's /usr/lib/binfmt.d/qemu-aarch64.conf).
const MAGIC: &str = "7f454c460201010000000000000000000200b700";
const MASK: &str = "ffffffffffffff00fffffffffffffffffeffffff";
/// Root's; shared by every test process and every checkout on the machine.
const LOCK: &str = "/run/cinit-test-binfmt-aarch64.lock";

/// A binfmt_misc handler for aarch64 ELF files, in use: a shared flock on
/// [`LOCK`] held until drop.
pub struct Binfmt {
    lock: Option<Flock<File>>,
    /// The entry's name in /proc/sys/fs/binfmt_misc.
    pub name: String,
    /// Registered with the F flag: the emulator was opened at registration,
    /// so it runs in containers and other mount namespaces too.
    pub fix_binary: bool,
}

impl Binfmt {
    /// Finds an enabled aarch64 handler or registers one for `qemu`; Err
    /// says why the machine does not allow it.
    pub fn acquire(qemu: &Path) -> Result<Binfmt, String> {
        if !is_root() {
            return Err("not root".into());
        }
        if !Path::new(BINFMT).join("register").exists() {
            let mounted = Command::new("mount")
                .args(["-t", "binfmt_misc", "binfmt_misc", BINFMT])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !mounted {
                return Err(format!("{BINFMT} is not mounted and cannot be"));
            }
        }
        let status = std::fs::read_to_string(Path::new(BINFMT).join("status"))
            .map_err(|e| format!("read {BINFMT}/status: {e}"))?;
        if status.trim() != "enabled" {
            return Err("binfmt_misc is disabled on this machine".into());
        }
        for _ in 0..10 {
            let ex = lock(FlockArg::LockExclusive)?;
            if handler().is_none() {
                // P: keep argv[0]; F: open the emulator now, so that it
                // runs in any mount namespace (containers).
                let line = format!(
                    ":{OURS}:M::{}:{}:{}:PF",
                    escape(MAGIC),
                    escape(MASK),
                    qemu.display()
                );
                std::fs::write(Path::new(BINFMT).join("register"), line)
                    .map_err(|e| format!("register {OURS}: {e}"))?;
            }
            let file = ex
                .unlock()
                .map_err(|(_, e)| format!("unlock {LOCK}: {e}"))?;
            // Between the two locks the last user of an entry we made may
            // have removed it: hold the shared lock, then look again.
            let shared = Flock::lock(file, FlockArg::LockShared)
                .map_err(|(_, e)| format!("lock {LOCK}: {e}"))?;
            if let Some((name, fix_binary)) = handler() {
                return Ok(Binfmt {
                    lock: Some(shared),
                    name,
                    fix_binary,
                });
            }
        }
        Err(format!("{OURS} kept disappearing under its lock"))
    }
}

impl Drop for Binfmt {
    fn drop(&mut self) {
        let Some(shared) = self.lock.take() else {
            return;
        };
        drop(shared);
        // Whoever gets the exclusive lock at once is the last user.
        let Ok(file) = File::options().read(true).write(true).open(LOCK) else {
            return;
        };
        if let Ok(_last) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            let ours = Path::new(BINFMT).join(OURS);
            if ours.exists() {
                if let Err(e) = std::fs::write(&ours, "-1") {
                    eprintln!("WARNING: failed to unregister {}: {e}", ours.display());
                }
            }
        }
    }
}

fn lock(arg: FlockArg) -> Result<Flock<File>, String> {
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(LOCK)
        .map_err(|e| format!("open {LOCK}: {e}"))?;
    Flock::lock(file, arg).map_err(|(_, e)| format!("lock {LOCK}: {e}"))
}

/// The enabled entry that runs aarch64 ELF files, if any: (name, F flag).
fn handler() -> Option<(String, bool)> {
    let entries = std::fs::read_dir(BINFMT).ok()?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "register" || name == "status" {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(str::trim)
                .unwrap_or_default()
                .to_string()
        };
        let enabled = text.lines().next() == Some("enabled");
        if enabled && field("magic ") == MAGIC {
            return Some((name, field("flags:").contains('F')));
        }
    }
    None
}

/// `7f45...` as the `\x7f\x45...` that binfmt_misc's register file reads.
fn escape(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|b| format!("\\x{}", std::str::from_utf8(b).unwrap()))
        .collect()
}
