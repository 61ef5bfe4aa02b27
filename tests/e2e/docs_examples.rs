//! The shell examples of README.md and docs/*.md are run, and the output
//! they quote is compared with what really comes out, so a changed log
//! line, option or exit code shows up as a failing test instead of a doc
//! that quietly went wrong.
//!
//! # Marking an example
//!
//! Only blocks whose info string has the word `test` are run (GitHub
//! highlights by the first word and ignores the rest):
//!
//! * ```` ```sh test ````: run with `sh` to its end (60 s at most); its
//!   stdout and stderr together must match the ```` ```text ```` block that
//!   directly follows it (only blank lines between), if there is one.
//!   `exit=N` after `test` expects the block to end with status N (default
//!   0).
//! * ```` ```sh test background ````: started and left running (a server)
//!   while the document's next blocks run. The ```` ```text ```` block
//!   right after it must appear in its output (below) before anything else
//!   runs. A later block must stop it (`kill -TERM "$(pgrep -nx init)"`); by
//!   the end of the document it must have exited, with status 0 or the
//!   block's `exit=N`.
//! * ```` ```text log ```` anywhere after a background block: these lines
//!   must appear next in the background block's output, in this order;
//!   other lines may come between them (the workers' own output
//!   interleaves), and each may end a line that another process began (a
//!   process that writes a line in pieces, as Rust's unbuffered `eprintln!`
//!   does, can leave a fragment in front of the init's line, which the init
//!   writes at once). The harness waits for them (60 s at most).
//! * ```` ```toml test file=NAME ```` (any language): written to NAME in
//!   the examples' working directory before the next block runs.
//!
//! In an expected line, `<pid>`, `<n>` and `<port>` stand for a number and
//! `...` for any text; a line that is only `...` stands for any number of
//! lines (in a ```` ```text ```` block after a plain `sh test` block, which
//! must otherwise match line for line).
//!
//! # Where the examples run
//!
//! Each document runs in a namespace of its own (`unshare --net --pid
//! --fork --mount-proc`, one holder process that each block joins with
//! `nsenter`): fixed ports such as 8000 are free there, `pgrep -nx init`
//! finds only the document's own init, `/run` (where the control socket
//! goes) is a tmpfs of its own, and nothing outlives the test. The
//! working directory mirrors the repository (`tests/`, `examples/`, ...
//! are links), with `target/release/` and `target/debug/` holding the
//! `init` and `cinit-demo` under test, which also come first in `PATH`. No
//! `CINIT_*` variable is inherited. Without `unshare` (not root) the
//! examples are skipped through `common::skip` (a failure in CI).

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// How long one block may run, or one expected log may take to appear.
const BLOCK_DEADLINE: Duration = Duration::from_secs(60);

// ------------------------------------------------------------- Markdown

/// A fenced block of a Markdown file.
#[derive(Debug, Clone)]
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    lang: String,
    /// The words of the info string after the language.
    attrs: Vec<String>,
    body: String,
    /// Only blank lines separate it from the previous block.
    follows_previous: bool,
}

impl Block {
    fn has(&self, attr: &str) -> bool {
        self.attrs.iter().any(|a| a == attr)
    }

    fn value(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find_map(|a| a.strip_prefix(key)?.strip_prefix('='))
    }
}

/// Every fenced block (``` or ~~~, up to 3 spaces of indentation) in order.
fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<(String, Block)> = None;
    let mut gap_only_blank = false;
    for (i, raw) in markdown.lines().enumerate() {
        let trimmed = raw.trim_start();
        let indent = raw.len() - trimmed.len();
        let fence: String = trimmed
            .chars()
            .take_while(|&c| c == '`' || c == '~')
            .collect();
        let is_fence = indent <= 3
            && fence.len() >= 3
            && fence.chars().all(|c| c == fence.chars().next().unwrap());
        if let Some((ref f, ref mut b)) = open {
            if is_fence && fence.starts_with(f.as_str()) && trimmed[fence.len()..].trim().is_empty()
            {
                out.push(b.clone());
                open = None;
                gap_only_blank = true;
            } else {
                b.body.push_str(raw);
                b.body.push('\n');
            }
            continue;
        }
        if is_fence {
            let mut words = trimmed[fence.len()..].split_whitespace();
            let lang = words.next().unwrap_or("").to_string();
            let b = Block {
                line: i + 1,
                lang,
                attrs: words.map(String::from).collect(),
                body: String::new(),
                follows_previous: gap_only_blank && !out.is_empty(),
            };
            open = Some((fence, b));
        } else if !raw.trim().is_empty() {
            gap_only_blank = false;
        }
    }
    out
}

/// One step of a document's examples, in order.
#[derive(Debug)]
enum Step {
    File {
        at: usize,
        name: String,
        content: String,
    },
    Run {
        at: usize,
        script: String,
        background: bool,
        exit: i32,
        /// The block after it: exact output (foreground) or lines that must
        /// appear (background).
        expect: Option<String>,
    },
    Log {
        at: usize,
        expect: String,
    },
}

fn steps(markdown: &str) -> Result<Vec<Step>, String> {
    let bs = blocks(markdown);
    let mut steps = Vec::new();
    let mut i = 0;
    while i < bs.len() {
        let b = &bs[i];
        i += 1;
        if b.lang == "text" && b.has("log") {
            steps.push(Step::Log {
                at: b.line,
                expect: b.body.clone(),
            });
            continue;
        }
        if !b.has("test") {
            continue;
        }
        if let Some(name) = b.value("file") {
            if name.starts_with('/') || name.split('/').any(|c| c == "..") {
                return Err(format!(
                    "line {}: file={name} must stay in the working directory",
                    b.line
                ));
            }
            steps.push(Step::File {
                at: b.line,
                name: name.to_string(),
                content: b.body.clone(),
            });
            continue;
        }
        if !matches!(b.lang.as_str(), "sh" | "bash" | "shell") {
            return Err(format!(
                "line {}: a `test` block must be sh (or have file=NAME), not {:?}",
                b.line, b.lang
            ));
        }
        let exit = match b.value("exit") {
            Some(v) => v
                .parse()
                .map_err(|_| format!("line {}: exit={v} is not a number", b.line))?,
            None => 0,
        };
        let expect = match bs.get(i) {
            Some(n) if n.follows_previous && n.lang == "text" && !n.has("log") => {
                i += 1;
                Some(n.body.clone())
            }
            _ => None,
        };
        steps.push(Step::Run {
            at: b.line,
            script: b.body.clone(),
            background: b.has("background"),
            exit,
            expect,
        });
    }
    Ok(steps)
}

// ------------------------------------------------------------- matching

/// Does `line` match the expected `pat` (`<pid>`, `<n>`, `<port>`: digits;
/// `...`: any text)?
fn line_matches(pat: &str, line: &str) -> bool {
    const DIGITS: [&str; 3] = ["<pid>", "<n>", "<port>"];
    if pat.is_empty() {
        return line.is_empty();
    }
    if let Some(rest) = pat.strip_prefix("...") {
        return (0..=line.len())
            .filter(|&k| line.is_char_boundary(k))
            .any(|k| line_matches(rest, &line[k..]));
    }
    for d in DIGITS {
        if let Some(rest) = pat.strip_prefix(d) {
            let n = line.bytes().take_while(u8::is_ascii_digit).count();
            return (1..=n).rev().any(|k| line_matches(rest, &line[k..]));
        }
    }
    let c = pat.chars().next().unwrap();
    line.starts_with(c) && line_matches(&pat[c.len_utf8()..], &line[c.len_utf8()..])
}

fn lines_of(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text.lines().map(|l| l.trim_end().to_string()).collect();
    while v.last().is_some_and(|l| l.is_empty()) {
        v.pop();
    }
    v
}

/// The whole output against the expected lines; a `...` line stands for
/// any number of lines.
fn output_matches(pat: &[String], out: &[String]) -> bool {
    match pat.split_first() {
        None => out.is_empty(),
        Some((p, rest)) if p == "..." => (0..=out.len()).any(|k| output_matches(rest, &out[k..])),
        Some((p, rest)) => {
            !out.is_empty() && line_matches(p, &out[0]) && output_matches(rest, &out[1..])
        }
    }
}

/// The expected lines, in order, among `out` (other lines may come
/// between, and another process's fragment before each): the index just
/// past the last one, or None.
fn appear_in_order(pat: &[String], out: &[String]) -> Option<usize> {
    let mut at = 0;
    for p in pat.iter().filter(|p| p.as_str() != "...") {
        let ends_a_line = format!("...{p}");
        let k = out[at..]
            .iter()
            .position(|l| line_matches(&ends_a_line, l))?;
        at += k + 1;
    }
    Some(at)
}

// ------------------------------------------------------------- running

/// The examples' working directory: the repository's top-level entries as
/// links, and `target/{release,debug}/{init,cinit-demo}` as the binaries
/// under test.
fn workdir() -> TempDir {
    let dir = TempDir::new("docs-examples");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for e in std::fs::read_dir(repo).unwrap().flatten() {
        let name = e.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        std::os::unix::fs::symlink(e.path(), dir.0.join(&name)).unwrap();
    }
    for profile in ["release", "debug"] {
        let bin = dir.0.join("target").join(profile);
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(INIT, bin.join("init")).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_cinit-demo"), bin.join("cinit-demo"))
            .unwrap();
    }
    dir
}

/// A network, pid and mount namespace held open by a `sleep` as its PID 1.
struct Namespace {
    holder: Child,
    /// The holder's pid as seen from here, for `nsenter -t`.
    pid: i32,
}

impl Namespace {
    fn new() -> Namespace {
        let mut holder = Command::new("unshare")
            .args([
                "--net",
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc",
                "sh",
                "-c",
                // A /run of its own: the documents' inits put their
                // control socket there (/run/cinit.sock), and another
                // document's (or test's) init must not hold it.
                "ip link set lo up && mount -t tmpfs -o mode=0755 tmpfs /run && exec sleep infinity",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start unshare");
        let u = holder.id();
        let mut pid = 0;
        wait_until("the namespace's holder to run", PROMPT, || {
            if let Ok(Some(s)) = holder.try_wait() {
                panic!("unshare --net --pid failed: {s}");
            }
            pid = std::fs::read_to_string(format!("/proc/{u}/task/{u}/children"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok())
                .unwrap_or(0);
            pid != 0
                && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "sleep")
        });
        Namespace { holder, pid }
    }

    /// `sh -c SCRIPT` inside, in `dir`, stdout and stderr on one pipe.
    fn command(&self, dir: &Path, script: &str) -> Command {
        let bins = dir.join("target/release");
        let path = format!(
            "{}:{}",
            bins.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = clean_command("nsenter");
        c.arg("-t")
            .arg(self.pid.to_string())
            .args(["--net", "--pid", "--mount"])
            .arg(format!("--wd={}", dir.display()))
            .args(["sh", "-c", &format!("exec 2>&1\n{script}")])
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        c
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // unshare --kill-child: its death SIGKILLs the namespace's PID 1,
        // and with it every process of the namespace.
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

struct Background {
    at: usize,
    exit: i32,
    child: Child,
    out: Receiver<String>,
    seen: Vec<String>,
    /// Lines already matched by an expected block.
    cursor: usize,
}

impl Background {
    fn drain(&mut self) {
        while let Ok(l) = self.out.try_recv() {
            self.seen.push(l.trim_end().to_string());
        }
    }

    /// Waits until the expected lines appear, in order, after the cursor.
    fn expect(&mut self, what: &str, expect: &str, deadline: Duration) -> Result<(), String> {
        let pat = lines_of(expect);
        let end = Instant::now() + deadline;
        loop {
            self.drain();
            if let Some(k) = appear_in_order(&pat, &self.seen[self.cursor..]) {
                self.cursor += k;
                return Ok(());
            }
            let exited = matches!(self.child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > end {
                std::thread::sleep(Duration::from_millis(100));
                self.drain();
                if let Some(k) = appear_in_order(&pat, &self.seen[self.cursor..]) {
                    self.cursor += k;
                    return Ok(());
                }
                return Err(format!(
                    "{what}: the lines\n{}\ndid not appear in this order in the output of the \
                     background block at line {}{}; its output after the last match:\n{}",
                    pat.join("\n"),
                    self.at,
                    if exited { " (which has exited)" } else { "" },
                    self.seen[self.cursor..].join("\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Runs the examples of one document (its text, named `name` in messages),
/// each block within `deadline`; returns how many blocks ran.
fn run_document(name: &str, markdown: &str, deadline: Duration) -> Result<usize, String> {
    let steps = steps(markdown).map_err(|e| format!("{name}: {e}"))?;
    let runs = steps
        .iter()
        .filter(|s| matches!(s, Step::Run { .. }))
        .count();
    if runs == 0 {
        return Ok(0);
    }
    let dir = workdir();
    let ns = Namespace::new();
    let mut background: Option<Background> = None;
    for step in steps {
        match step {
            Step::File {
                at,
                name: f,
                content,
            } => {
                let p = dir.0.join(&f);
                std::fs::write(&p, content)
                    .map_err(|e| format!("{name}:{at}: write {}: {e}", p.display()))?;
            }
            Step::Log { at, expect } => {
                let bg = background.as_mut().ok_or_else(|| {
                    format!("{name}:{at}: a `text log` block with no background block running")
                })?;
                bg.expect(&format!("{name}:{at}"), &expect, deadline)?;
            }
            Step::Run {
                at,
                script,
                background: true,
                exit,
                expect,
            } => {
                if let Some(bg) = &background {
                    return Err(format!(
                        "{name}:{at}: a second background block while the one at line {} runs",
                        bg.at
                    ));
                }
                let mut child = ns
                    .command(&dir.0, &script)
                    .spawn()
                    .map_err(|e| format!("{name}:{at}: nsenter: {e}"))?;
                let out = lines(child.stdout.take().unwrap());
                let mut bg = Background {
                    at,
                    exit,
                    child,
                    out,
                    seen: Vec::new(),
                    cursor: 0,
                };
                if let Some(e) = expect {
                    bg.expect(&format!("{name}:{at}"), &e, deadline)?;
                }
                background = Some(bg);
            }
            Step::Run {
                at,
                script,
                background: false,
                exit,
                expect,
            } => {
                let (code, out) = run_block(&ns, &dir.0, &script, deadline)
                    .map_err(|e| format!("{name}:{at}: {e}"))?;
                let out = lines_of(&out);
                if code != Some(exit) {
                    return Err(format!(
                        "{name}:{at}: the block ended with status {code:?}, not {exit}:\n{script}\n\
                         output:\n{}",
                        out.join("\n")
                    ));
                }
                if let Some(e) = expect {
                    let pat = lines_of(&e);
                    if !output_matches(&pat, &out) {
                        return Err(format!(
                            "{name}:{at}: the output of\n{script}\ndoes not match the document.\n\
                             --- expected\n{}\n--- actual\n{}",
                            pat.join("\n"),
                            out.join("\n")
                        ));
                    }
                }
            }
        }
    }
    if let Some(mut bg) = background {
        let end = Instant::now() + deadline;
        let status = loop {
            if let Some(s) = bg.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > end {
                bg.drain();
                return Err(format!(
                    "{name}: the background block at line {} still runs at the end of the \
                     document (a document stops what it starts); its output:\n{}",
                    bg.at,
                    bg.seen.join("\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if status.code() != Some(bg.exit) {
            bg.drain();
            return Err(format!(
                "{name}: the background block at line {} ended with {status}, not {}; output:\n{}",
                bg.at,
                bg.exit,
                bg.seen.join("\n")
            ));
        }
    }
    Ok(runs)
}

/// One foreground block: (exit code, output).
fn run_block(
    ns: &Namespace,
    dir: &Path,
    script: &str,
    deadline: Duration,
) -> Result<(Option<i32>, String), String> {
    let mut child = ns
        .command(dir, script)
        .spawn()
        .map_err(|e| format!("nsenter: {e}"))?;
    let out = lines(child.stdout.take().unwrap());
    let end = Instant::now() + deadline;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            let seen: Vec<String> = out.try_iter().collect();
            return Err(format!(
                "still running after {deadline:?}:\n{script}\noutput so far:\n{}",
                seen.join("\n")
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // Every line up to EOF; a process the block left running in the
    // background may hold the pipe open: then up to the deadline.
    let mut text = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match out.recv_timeout(left) {
            Ok(l) => text.push(l),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "its output stayed open after it ended (a process left running?):\n{script}"
                ))
            }
        }
    }
    Ok((status.code(), text.join("\n")))
}

// ------------------------------------------------------------- the documents

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Runs the examples of `rel` (relative to the repository); a document
/// listed here must have at least one.
fn check(rel: &str) {
    if !require_namespaces() {
        return;
    }
    let text = std::fs::read_to_string(repo_file(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    match run_document(rel, &text, BLOCK_DEADLINE) {
        Ok(0) => panic!("{rel} has no ```sh test block: take it off the list in docs_examples.rs"),
        Ok(_) => {}
        Err(e) => panic!("{e}"),
    }
}

fn require_namespaces() -> bool {
    let ok = Command::new("unshare")
        .args(["--net", "--pid", "--fork", "--mount-proc", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip(
            Need::Pid1,
            "`unshare --net --pid --fork --mount-proc` is not available (needs root): \
             the documents' examples did not run",
        );
    }
    ok
}

/// The documents with examples marked `test`; `every_marked_document_is_run`
/// keeps the list complete.
const DOCUMENTS: &[&str] = &[
    "README.md",
    "docs/deploying.md",
    "docs/memory.md",
    "docs/plan.md",
    "docs/prestart.md",
    "docs/programs.md",
    "docs/sizing.md",
    "docs/status.md",
    "docs/workers.md",
];

#[test]
fn readme() {
    check("README.md");
}

#[test]
fn deploying() {
    check("docs/deploying.md");
}

#[test]
fn memory() {
    check("docs/memory.md");
}

#[test]
fn plan() {
    check("docs/plan.md");
}

#[test]
fn programs() {
    check("docs/programs.md");
}

#[test]
fn prestart() {
    check("docs/prestart.md");
}

#[test]
fn sizing() {
    check("docs/sizing.md");
}

#[test]
fn status() {
    check("docs/status.md");
}

#[test]
fn workers() {
    check("docs/workers.md");
}

/// Every Markdown file of the repository with a block marked `test` is
/// one of DOCUMENTS, and each of those has a test above.
#[test]
fn every_marked_document_is_run() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let name = e.file_name();
            if name == "target" || name == ".git" {
                continue;
            }
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    walk(root, &mut files);
    let mut marked: Vec<String> = files
        .iter()
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            blocks(&text).iter().any(|b| b.has("test"))
        })
        .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
        .collect();
    marked.sort();
    assert_eq!(marked, DOCUMENTS, "documents with ```sh test blocks");
    let me = std::fs::read_to_string(repo_file("tests/e2e/docs_examples.rs")).unwrap();
    for d in DOCUMENTS {
        assert!(
            me.contains(&format!("    check(\"{d}\");")),
            "no #[test] calls check(\"{d}\")"
        );
    }
}

// ------------------------------------------------------------- the harness

#[test]
fn line_patterns() {
    assert!(line_matches(
        "worker 0 started (pid <pid>)",
        "worker 0 started (pid 12)"
    ));
    assert!(!line_matches(
        "worker 0 started (pid <pid>)",
        "worker 0 started (pid )"
    ));
    assert!(!line_matches(
        "worker 0 started (pid <pid>)",
        "worker 1 started (pid 12)"
    ));
    assert!(line_matches(
        "exited after ...; restarting",
        "exited after 1.2s; restarting"
    ));
    assert!(line_matches("...", ""));
    assert!(line_matches("a ... c", "a b c"));
    assert!(!line_matches("a ... c", "a b d"));
    assert!(line_matches("× <n> − ...", "× 2 − 0 B"));
    assert!(
        line_matches("<id> stays", "<id> stays"),
        "other <words> are text"
    );
}

#[test]
fn output_patterns() {
    let l = |s: &str| lines_of(s);
    assert!(output_matches(&l("a\n...\nd"), &l("a\nb\nc\nd")));
    assert!(output_matches(&l("a\n...\nd"), &l("a\nd")));
    assert!(!output_matches(&l("a\nd"), &l("a\nb\nd")), "exact");
    assert!(!output_matches(&l("a\nb"), &l("a\nb\nc")), "nothing extra");
    assert!(output_matches(&l("...\nc\n..."), &l("a\nb\nc\nd")));
    assert_eq!(appear_in_order(&l("b\nd"), &l("a\nb\nc\nd\ne")), Some(4));
    assert_eq!(appear_in_order(&l("d\nb"), &l("a\nb\nc\nd")), None);
    assert_eq!(
        appear_in_order(&l("cinit: x <n>"), &l("demo: half cinit: x 2\nother half")),
        Some(1),
        "a line may end one that another process began"
    );
    assert_eq!(
        appear_in_order(&l("cinit: x"), &l("cinit: x and more")),
        None
    );
}

#[test]
fn markdown_blocks_and_steps() {
    let md = "text\n\n```sh test exit=3\nfalse\n```\n\n```text\nout\n```\n\n\
              prose\n\n```text\nnot an expectation\n```\n\n\
              ```toml test file=a.toml\nk = 1\n```\n\
              ```sh test background\nserver\n```\n```text\nready\n```\n\
              words\n\n```text log\nlater\n```\n  ```sh\nplain\n  ```\n";
    let s = steps(md).unwrap();
    assert_eq!(s.len(), 4, "{s:#?}");
    assert!(
        matches!(&s[0], Step::Run { at: 3, exit: 3, background: false, expect: Some(e), .. } if e == "out\n")
    );
    assert!(
        matches!(&s[1], Step::File { name, content, .. } if name == "a.toml" && content == "k = 1\n")
    );
    assert!(matches!(&s[2], Step::Run { background: true, expect: Some(e), .. } if e == "ready\n"));
    assert!(matches!(&s[3], Step::Log { expect, .. } if expect == "later\n"));
    assert!(steps("```python test\nx\n```\n").is_err());
}

/// The harness fails a document whose quoted output, exit code or log is
/// wrong, and one that leaves its server running.
const SHORT: Duration = Duration::from_secs(5);

#[test]
fn a_wrong_example_fails() {
    if !require_namespaces() {
        return;
    }
    let ok = "```sh test\necho hello; echo pid $$\n```\n```text\nhello\npid <pid>\n```\n";
    assert_eq!(run_document("ok.md", ok, SHORT), Ok(1));

    let wrong_output = "```sh test\necho hello\n```\n```text\nhullo\n```\n";
    let e = run_document("w.md", wrong_output, SHORT).unwrap_err();
    assert!(e.contains("does not match") && e.contains("hullo"), "{e}");

    let wrong_code = "```sh test\ninit -- sh -c 'exit 3'\n```\n";
    let e = run_document("c.md", wrong_code, SHORT).unwrap_err();
    assert!(e.contains("status Some(3), not 0"), "{e}");
    assert_eq!(
        run_document(
            "c.md",
            "```sh test exit=3\ninit -- sh -c 'exit 3'\n```\n",
            SHORT
        ),
        Ok(1)
    );

    let server = "```sh test background\ninit --workers 1 --listen 127.0.0.1:8000 -- cinit-demo serve\n```\n\
                  ```text\ncinit: listening on 127.0.0.1:8000 (fd 3 in workers)\n```\n";
    let e = run_document("s.md", &format!("{server}```sh test\ntrue\n```\n"), SHORT);
    assert!(e.unwrap_err().contains("still runs at the end"));

    let stopped = format!(
        "{server}```sh test\nkill -TERM \"$(pgrep -nx init)\"\n```\n```text log\ncinit: worker 0 ... exited ...\ncinit: exiting with code 0\n```\n"
    );
    assert_eq!(run_document("t.md", &stopped, SHORT), Ok(2));
    let never = format!("{server}```text log\ncinit: no such line\n```\n");
    assert!(run_document("n.md", &never, SHORT).is_err());
}
