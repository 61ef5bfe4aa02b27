//! Benchmark figures name what produced them: every script under `bench/`
//! prints the header of `bench/header.sh` (command, commit, date, machine,
//! binary, peers), the scripts that time cinit measure the shipped binary
//! (`bash .ci/release`), and every benchmark table of the docs is quoted
//! with such a header. The benchmarks themselves are not run here (they
//! take minutes and measure time); their shape is checked.

use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Checks a quoted header: the lines bench_header prints, in order.
fn check_header(doc: &str, line: usize, header: &[&str]) {
    let keys: Vec<&str> = header
        .iter()
        .map(|l| l.split(':').next().unwrap_or(""))
        .collect();
    assert_eq!(
        keys,
        ["command", "commit", "date", "machine", "cinit", "peers"],
        "{doc}:{line}: the header must have bench_header's lines: {header:#?}"
    );
    let command = header[0].trim_start_matches("command:").trim();
    let script = command
        .split_whitespace()
        .find(|w| w.starts_with("bench/"))
        .unwrap_or_else(|| panic!("{doc}:{line}: no bench/ script in {command:?}"));
    assert!(
        repo().join(script).is_file(),
        "{doc}:{line}: {script} does not exist"
    );
    let commit = header[1]
        .trim_start_matches("commit:")
        .split_whitespace()
        .next()
        .unwrap_or("");
    let hash = commit.strip_suffix("-dirty").unwrap_or(commit);
    assert!(
        hash.len() >= 7 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        "{doc}:{line}: {commit:?} is not a commit"
    );
}

/// Every table at the top level of `text` (from the first heading that
/// contains `section` to the next heading of that level or above) has a
/// ```text block with a bench header since the previous table.
fn tables_have_headers(doc: &str, section: &str) -> usize {
    let text = read(doc);
    let mut in_section = false;
    let mut section_level = 0;
    let mut header_since_table: Option<Vec<String>> = None;
    let mut in_table = false;
    let mut fence: Option<(usize, Vec<String>)> = None;
    let mut tables = 0;
    for (i, l) in text.lines().enumerate() {
        if let Some((start, body)) = fence.as_mut() {
            if l.starts_with("```") {
                if body.first().is_some_and(|f| f.starts_with("command:")) {
                    let refs: Vec<&str> = body.iter().map(String::as_str).collect();
                    check_header(doc, *start, &refs);
                    header_since_table = Some(body.clone());
                }
                fence = None;
            } else {
                body.push(l.to_string());
            }
            continue;
        }
        if l.starts_with("```") {
            fence = Some((i + 1, Vec::new()));
            continue;
        }
        if l.starts_with('#') {
            let level = l.chars().take_while(|&c| c == '#').count();
            if l.contains(section) {
                in_section = true;
                section_level = level;
            } else if in_section && level <= section_level {
                in_section = false;
            }
            continue;
        }
        let row = l.starts_with('|');
        if row && !in_table && in_section {
            assert!(
                header_since_table.take().is_some(),
                "{doc}:{}: a benchmark table without the header its script printed \
                 (a ```text block with command:, commit:, ... above it)",
                i + 1
            );
            tables += 1;
        }
        in_table = row;
    }
    tables
}

#[test]
fn every_benchmark_table_is_quoted_with_its_header() {
    assert_eq!(
        tables_have_headers("docs/benchmarks.md", "# Benchmarks"),
        5,
        "the PID-1, the workers, the reload, the status and the programs table"
    );
    assert_eq!(
        tables_have_headers("docs/sizing.md", "What other tools report"),
        1,
        "the bench/cpu-views.sh table"
    );
    assert_eq!(
        tables_have_headers("docs/memory.md", "Measured: `bench/memory.sh`"),
        1,
        "the bench/memory.sh table"
    );
}

#[test]
fn every_bench_script_prints_the_header_and_times_the_shipped_binary() {
    let mut scripts = 0;
    for e in std::fs::read_dir(repo().join("bench")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".sh") || name == "header.sh" {
            continue;
        }
        scripts += 1;
        let text = read(&format!("bench/{name}"));
        assert!(
            text.contains("header.sh") && text.contains("bench_header "),
            "bench/{name} does not print bench/header.sh's header"
        );
        if name == "cpu-views.sh" {
            // CPU counts and worker counts, not timings: any build will do.
            continue;
        }
        assert!(
            text.contains("bash .ci/release"),
            "bench/{name} must measure the shipped binary that `bash .ci/release` builds"
        );
        assert!(
            !text
                .lines()
                .any(|l| !l.trim_start().starts_with('#') && l.contains("cargo build")),
            "bench/{name} builds something else than the shipped binary"
        );
    }
    assert_eq!(
        scripts, 7,
        "pid1.sh, workers.sh, cpu-views.sh, memory.sh, reload-timeline.sh, status.sh, programs.sh"
    );
}

fn git(args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo())
        .args(args)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_header_names_this_commit_and_the_binary() {
    let out = Command::new("sh")
        .arg("-c")
        .arg(". bench/header.sh; bench_header 'sh bench/cpu-views.sh' 'N=1' \"$0\" 'peer 1.0'")
        .arg(crate::common::INIT)
        .current_dir(repo())
        .env("BENCH_ROOT", repo())
        .output()
        .expect("run sh");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    check_header("bench_header", 0, &lines);
    let mut commit = git(&["rev-parse", "--short", "HEAD"]);
    if !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty() {
        commit.push_str("-dirty");
    }
    assert_eq!(lines[0], "command:  sh bench/cpu-views.sh   (N=1)");
    assert_eq!(lines[1], format!("commit:   {commit}"));
    let size = std::fs::metadata(crate::common::INIT).unwrap().len();
    assert!(
        lines[4].starts_with(&format!("cinit:    {}, {size} bytes", crate::common::INIT)),
        "{}",
        lines[4]
    );
    assert_eq!(lines[5], "peers:    peer 1.0");
}
