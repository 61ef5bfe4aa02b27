//! Command-line syntax only, built from the table of settings (`options`):
//! every option as the user typed it, values still strings.
//!
//! clap reads nothing but the arguments: the environment is one of the
//! layers (`layers`), read through an injectable `Env`, so tests never see
//! the developer's `CINIT_*` variables and the help shows each variable
//! from the table.

use std::ffi::OsString;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};

use super::options::{self, Kind, SETTINGS};

/// What `init --help` shows above the options.
const ABOUT: &str = "A container-aware process manager for PID 1: reaps zombies, forwards \
signals, runs pre-start steps, sizes and supervises workers on a shared socket.";

/// The parsed command line.
#[derive(Debug)]
pub struct Args {
    /// `None` when the command line holds no option at all (`init -- cmd`,
    /// `init cmd`): clap is not even built then, which is most of what a
    /// plain start costs in instructions.
    matches: Option<ArgMatches>,
    /// The words of COMMAND when `matches` is `None`.
    words: Vec<OsString>,
}

/// The clap command: one argument per setting that has an option, in the
/// table's order, then COMMAND.
pub fn command() -> Command {
    let mut cmd = Command::new("init")
        .version(env!("CARGO_PKG_VERSION"))
        .about(ABOUT)
        .after_help(options::after_help())
        .max_term_width(100)
        .disable_help_subcommand(true);
    for s in SETTINGS {
        let arg = match (s.option, s.kind) {
            (Some(long), Kind::Switch(_)) => Arg::new(s.key).long(long).action(ArgAction::SetTrue),
            (Some(long), Kind::List { .. } | Kind::Step { .. }) => Arg::new(s.key)
                .long(long)
                .value_name(s.value)
                .action(ArgAction::Append),
            (Some(long), _) => Arg::new(s.key)
                .long(long)
                .value_name(s.value)
                .action(ArgAction::Set),
            (None, Kind::Command) => Arg::new(s.key)
                .value_name(s.value)
                .num_args(1..)
                .action(ArgAction::Append)
                .trailing_var_arg(true)
                .allow_hyphen_values(true)
                .value_parser(clap::value_parser!(OsString)),
            (None, _) => continue,
        };
        cmd = cmd.arg(arg.help(s.help_line()).hide(s.hidden));
    }
    cmd
}

/// Parses the arguments (the program name first); `Err` carries clap's
/// rendered message and the code it wants (0 for --help/--version, 2 for
/// usage errors).
pub fn parse<I, T>(args: I) -> Result<Args, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    // No option at all: everything after the program (and an optional
    // `--`) is the command, as clap would say too.
    match args.get(1).map(|a| a.as_encoded_bytes()) {
        None => {
            return Ok(Args {
                matches: None,
                words: Vec::new(),
            })
        }
        Some(b"--") => {
            return Ok(Args {
                matches: None,
                words: args[2..].to_vec(),
            })
        }
        Some(first) if !first.starts_with(b"-") => {
            return Ok(Args {
                matches: None,
                words: args[1..].to_vec(),
            })
        }
        Some(_) => {}
    }
    let mut cmd = command();
    let matches = cmd.try_get_matches_from_mut(args.iter().cloned())?;
    // clap takes an unknown `--flag` as the first word of COMMAND; a
    // command that starts with `-` must come after `--`.
    if let (Some(mut words), Some(i)) = (
        matches.get_many::<OsString>("command"),
        matches.index_of("command"),
    ) {
        let first = words.next().map(|w| w.to_string_lossy().into_owned());
        let explicit = i > 0 && args.get(i - 1).is_some_and(|a| a == "--");
        if let Some(first) = first.filter(|f| f.starts_with('-') && !explicit) {
            return Err(cmd.error(
                clap::error::ErrorKind::UnknownArgument,
                format!("unknown option `{first}` (a command that starts with - goes after --)"),
            ));
        }
    }
    Ok(Args {
        matches: Some(matches),
        words: Vec::new(),
    })
}

impl Args {
    /// The values of `key` typed on the command line, each with its
    /// position among the arguments; `None` when the option was not given.
    pub fn values(&self, key: &str) -> Option<Vec<(String, usize)>> {
        let matches = self.matches.as_ref()?;
        if matches.value_source(key) != Some(ValueSource::CommandLine) {
            return None;
        }
        if let Ok(Some(true)) = matches.try_get_one::<bool>(key).map(|v| v.copied()) {
            let at = matches.index_of(key).unwrap_or(0);
            return Some(vec![("true".into(), at)]);
        }
        let values = matches.get_many::<String>(key)?;
        let at = matches.indices_of(key)?;
        Some(values.cloned().zip(at).collect())
    }

    /// The words of COMMAND, as given (not necessarily UTF-8).
    pub fn command(&self) -> Vec<OsString> {
        match &self.matches {
            Some(m) => m
                .get_many::<OsString>("command")
                .map(|w| w.cloned().collect())
                .unwrap_or_default(),
            None => self.words.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_valid() {
        command().debug_assert();
    }

    #[test]
    fn without_options_clap_is_not_needed_and_says_the_same() {
        for argv in [
            &["init", "--", "uvicorn", "--port", "80"][..],
            &["init", "uvicorn", "--port", "80"],
            &["init", "--"],
            &["init"],
        ] {
            let fast = parse(argv.iter().copied()).unwrap();
            assert!(fast.matches.is_none());
            let mut cmd = command();
            let m = cmd.try_get_matches_from_mut(argv.iter().copied()).unwrap();
            let slow: Vec<OsString> = m
                .get_many::<OsString>("command")
                .map(|w| w.cloned().collect())
                .unwrap_or_default();
            assert_eq!(fast.command(), slow, "{argv:?}");
            assert!(fast.values("workers").is_none());
        }
    }

    #[test]
    fn dry_run_is_a_plain_switch() {
        let a = parse(["init", "--dry-run", "uvicorn", "app:app"]).unwrap();
        assert!(a.values("dry_run").is_some());
        assert_eq!(a.command(), ["uvicorn", "app:app"].map(OsString::from));
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
}
