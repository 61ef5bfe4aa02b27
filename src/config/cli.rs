//! Command-line syntax only, read with the table of settings (`options`):
//! every option as the user typed it, values still strings.
//!
//! The syntax is small and fixed, so it is read here rather than by a
//! general argument library (which cost a tenth of the binary): long
//! options only, `--name VALUE` or `--name=VALUE` for a value, `--name`
//! alone for a switch, `-h`/`--help` and `-V`/`--version`; `--` ends the
//! options, and so does the first word that is not an option: that word
//! and every one after it are the command, verbatim (`init uvicorn app
//! --port 80`: `--port` is uvicorn's). A value option takes the next word
//! whatever it looks like (`--scale -1`). An option not in the table, a
//! missing value, a repeated single-valued option or a value that is not
//! UTF-8 is a usage error (exit 2) with the usage line.
//!
//! The environment is one of the layers (`layers`), read through an
//! injectable `Env`, so tests never see the developer's `CINIT_*`
//! variables, and the help shows each variable from the table.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;

use super::options::{self, Kind, Setting, SETTINGS};

/// What `init --help` shows above the options.
const ABOUT: &str = "A container-aware process manager for PID 1: reaps zombies, forwards \
signals, runs pre-start steps, sizes and supervises workers on a shared socket.";

const USAGE: &str = "Usage: init [OPTIONS] [COMMAND]...";

/// Why the command line was not read: a usage error (exit 2, on stderr),
/// or `--help`/`--version`, whose text goes to stdout with exit 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub text: String,
    pub code: i32,
}

impl Usage {
    fn error(message: &str) -> Usage {
        Usage {
            text: format!("error: {message}\n\n{USAGE}\n\nFor more information, try '--help'.\n"),
            code: 2,
        }
    }

    /// Prints it where it belongs: help and version on stdout, errors on
    /// stderr; a reader that went away is not worth a panic.
    pub fn print(&self) {
        use std::io::Write;
        if self.code == 0 {
            let _ = std::io::stdout().write_all(self.text.as_bytes());
        } else {
            let _ = std::io::stderr().write_all(self.text.as_bytes());
        }
    }
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text.trim_end())
    }
}

/// The parsed command line.
#[derive(Debug, Default)]
pub struct Args {
    /// Each option given, by the setting's key: its values with their
    /// positions among the arguments.
    values: BTreeMap<&'static str, Vec<(String, usize)>>,
    command: Vec<OsString>,
}

/// The setting whose option is `--name`.
fn setting(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.option == Some(name))
}

/// Parses the arguments (the program name first).
pub fn parse<I, T>(args: I) -> Result<Args, Usage>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let mut out = Args::default();
    let mut i = 1;
    while i < args.len() {
        let word = &args[i];
        let bytes = word.as_encoded_bytes();
        if bytes == b"--" {
            out.command = args[i + 1..].to_vec();
            return Ok(out);
        }
        if !bytes.starts_with(b"-") || bytes == b"-" {
            out.command = args[i..].to_vec();
            return Ok(out);
        }
        let Some(text) = word.to_str() else {
            return Err(Usage::error(&format!(
                "invalid UTF-8 in the option `{}`",
                word.to_string_lossy()
            )));
        };
        match text {
            "-h" | "--help" => {
                return Err(Usage {
                    text: help(),
                    code: 0,
                })
            }
            "-V" | "--version" => {
                return Err(Usage {
                    text: format!("init {}\n", env!("CARGO_PKG_VERSION")),
                    code: 0,
                })
            }
            _ => {}
        }
        let unknown = || {
            Usage::error(&format!(
                "unknown option `{text}` (a command that starts with - goes after --)"
            ))
        };
        let Some(long) = text.strip_prefix("--") else {
            return Err(unknown());
        };
        let (name, inline) = match long.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (long, None),
        };
        let s = setting(name).ok_or_else(unknown)?;
        let (value, next) = match (s.kind, inline) {
            (Kind::Switch(_), None) => ("true".to_string(), i + 1),
            (Kind::Switch(_), Some(_)) => {
                return Err(Usage::error(&format!("`--{name}` takes no value")))
            }
            (_, Some(v)) => (v.to_string(), i + 1),
            (_, None) => {
                let Some(v) = args.get(i + 1) else {
                    return Err(Usage::error(&format!(
                        "a value is required for `--{name} <{}>` but none was supplied",
                        s.value
                    )));
                };
                let Some(v) = v.to_str() else {
                    return Err(Usage::error(&format!(
                        "invalid UTF-8 in the value of `--{name}`"
                    )));
                };
                (v.to_string(), i + 2)
            }
        };
        let repeatable = matches!(s.kind, Kind::List { .. } | Kind::Step { .. });
        let entry = out.values.entry(s.key).or_default();
        if !entry.is_empty() && !repeatable {
            return Err(Usage::error(&format!(
                "the option `--{name}` cannot be used more than once"
            )));
        }
        entry.push((value, i));
        i = next;
    }
    Ok(out)
}

impl Args {
    /// The values of `key` typed on the command line, each with its
    /// position among the arguments; `None` when the option was not given.
    pub fn values(&self, key: &str) -> Option<Vec<(String, usize)>> {
        self.values.get(key).cloned()
    }

    /// The words of COMMAND, as given (not necessarily UTF-8).
    pub fn command(&self) -> Vec<OsString> {
        self.command.clone()
    }
}

/// `init --help`: the options in the table's order, each with its value,
/// help line, default and variable, then what applies to all.
pub fn help() -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{ABOUT}\n\n{USAGE}\n");
    let command = SETTINGS.iter().find(|s| matches!(s.kind, Kind::Command));
    if let Some(c) = command {
        let _ = writeln!(o, "Arguments:\n  [COMMAND]...\n          {}\n", c.help);
    }
    let _ = writeln!(o, "Options:");
    for s in SETTINGS.iter().filter(|s| !s.hidden) {
        let Some(long) = s.option else { continue };
        match s.kind {
            Kind::Switch(_) => {
                let _ = writeln!(o, "      --{long}");
            }
            _ => {
                let _ = writeln!(o, "      --{long} <{}>", s.value);
            }
        }
        let _ = writeln!(o, "          {}", s.help_line());
    }
    let _ = writeln!(o, "  -h, --help\n          Print help");
    let _ = writeln!(o, "  -V, --version\n          Print version\n");
    let _ = writeln!(o, "{}", options::after_help());
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(a: &Args) -> Vec<String> {
        a.command()
            .iter()
            .map(|w| w.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_first_word_that_is_no_option_starts_the_command() {
        let a = parse(["init", "--workers", "2", "uvicorn", "--port", "80"]).unwrap();
        assert_eq!(a.values("workers").unwrap()[0].0, "2");
        assert_eq!(words(&a), ["uvicorn", "--port", "80"]);
        let a = parse(["init", "--", "-weird", "x"]).unwrap();
        assert_eq!(words(&a), ["-weird", "x"]);
        let a = parse(["init", "--workers=3", "--dry-run", "--", "x"]).unwrap();
        assert_eq!(a.values("workers").unwrap()[0].0, "3");
        assert_eq!(a.values("dry_run").unwrap()[0].0, "true");
        assert!(parse(["init"]).unwrap().command().is_empty());
    }

    #[test]
    fn dry_run_is_a_plain_switch() {
        let a = parse(["init", "--dry-run", "uvicorn", "app:app"]).unwrap();
        assert!(a.values("dry_run").is_some());
        assert_eq!(words(&a), ["uvicorn", "app:app"]);
        assert_eq!(parse(["init", "--dry-run=yes", "x"]).unwrap_err().code, 2);
    }

    #[test]
    fn list_values_keep_their_positions() {
        let a = parse([
            "init",
            "--prestart",
            "a",
            "--wait-for",
            "tcp://x:1",
            "--prestart",
            "b",
        ])
        .unwrap();
        let p = a.values("prestart").unwrap();
        let w = a.values("wait_for").unwrap();
        assert_eq!(p[0].0, "a");
        assert!(p[0].1 < w[0].1 && w[0].1 < p[1].1);
        assert!(a.values("listen").is_none());
    }

    #[test]
    fn usage_errors_exit_2_and_help_and_version_exit_0() {
        for bad in [
            &["init", "--no-such", "x"][..],
            &["init", "-x", "y"],
            &["init", "--workers"],
            &["init", "--workers", "1", "--workers", "2", "x"],
        ] {
            let e = parse(bad.iter().copied()).unwrap_err();
            assert_eq!(e.code, 2, "{bad:?}");
            assert!(e.text.contains("Usage: init"), "{}", e.text);
        }
        assert!(parse(["init", "--bogus", "x"])
            .unwrap_err()
            .text
            .contains("a command that starts with - goes after --"));
        let h = parse(["init", "--help"]).unwrap_err();
        assert_eq!(h.code, 0);
        assert!(h.text.contains("--graceful-timeout <DURATION>"));
        assert_eq!(
            parse(["init", "-V"]).unwrap_err().text,
            format!("init {}\n", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn a_value_option_takes_the_next_word_whatever_it_is() {
        let a = parse(["init", "--signal-map", "-1:0", "--", "x"]);
        assert_eq!(a.unwrap().values("signal_map").unwrap()[0].0, "-1:0");
    }
}
