//! The Procfile (Heroku's, foreman's, honcho's): one program per line,
//! `NAME: command`. Blank lines and lines starting with `#` are skipped.
//! A name is letters, digits, `-` and `_`.
//!
//! A command of plain words (quotes and backslashes allowed) is split as a
//! shell would and run directly, so it works in an image without a shell
//! (`FROM scratch`). A command with shell syntax (`$PORT`, `&&`, `|`,
//! `>`, `;`, globs, ...) runs as `/bin/sh -c COMMAND`, as Heroku and
//! foreman run every line; cinit signals the whole process group, so the
//! shell's children get the stop signal too.

use super::words::split_command;
use crate::vocab::valid_program_name;

/// One line of a Procfile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub argv: Vec<String>,
    /// 1-based, for messages.
    pub line: usize,
}

/// Parses the text; `Err` is (line, message).
pub fn parse(text: &str) -> Result<Vec<Entry>, (usize, String)> {
    let mut out: Vec<Entry> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let Some((name, command)) = t.split_once(':') else {
            return Err((
                line,
                format!("`{}` has no name: write `NAME: command`", short(t)),
            ));
        };
        let name = name.trim();
        if !valid_program_name(name) {
            return Err((
                line,
                format!(
                    "`{}` is not a program name (letters, digits, - and _)",
                    short(name)
                ),
            ));
        }
        if out.iter().any(|e| e.name == name) {
            return Err((line, format!("the program `{name}` is named twice")));
        }
        let argv = command_argv(command.trim()).map_err(|m| (line, m))?;
        out.push(Entry {
            name: name.to_string(),
            argv,
            line,
        });
    }
    if out.is_empty() {
        return Err((1, "the Procfile names no program".into()));
    }
    Ok(out)
}

/// The shell's own syntax: a command using any of these needs one.
const SHELL_SYNTAX: &[char] = &[
    '$', '&', '|', ';', '<', '>', '`', '(', ')', '*', '?', '[', '~', '{', '\n',
];

/// A command line as the words to exec: split when it is plain words,
/// `/bin/sh -c COMMAND` when it uses shell syntax.
pub fn command_argv(command: &str) -> Result<Vec<String>, String> {
    let words = split_command(command)?;
    if command.contains(SHELL_SYNTAX) {
        return Ok(vec!["/bin/sh".into(), "-c".into(), command.to_string()]);
    }
    Ok(words)
}

fn short(t: &str) -> String {
    if t.chars().count() > 60 {
        format!("{}...", t.chars().take(60).collect::<String>())
    } else {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_names_and_commands() {
        let p = parse(
            "# the app\nweb: uvicorn app.main:app --fd 3\n\nworker: python3 -m worker 'a b'\nclock:python3 clock.py\n",
        )
        .unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].name, "web");
        assert_eq!(p[0].argv, ["uvicorn", "app.main:app", "--fd", "3"]);
        assert_eq!(p[1].argv, ["python3", "-m", "worker", "a b"]);
        assert_eq!((p[2].name.as_str(), p[2].line), ("clock", 5));
    }

    #[test]
    fn shell_syntax_runs_through_sh() {
        let p = parse("web: gunicorn app:app --bind 0.0.0.0:$PORT\nrelease: a && b\nplain: python3 -m x 'a;b'\n").unwrap();
        assert_eq!(
            p[0].argv,
            ["/bin/sh", "-c", "gunicorn app:app --bind 0.0.0.0:$PORT"]
        );
        assert_eq!(p[1].argv, ["/bin/sh", "-c", "a && b"]);
        // Quoted, a `;` is still the shell's business: sh keeps the quotes.
        assert_eq!(p[2].argv, ["/bin/sh", "-c", "python3 -m x 'a;b'"]);
        assert_eq!(command_argv("x y").unwrap(), ["x", "y"]);
    }

    #[test]
    fn bad_lines_are_named() {
        assert_eq!(parse("web uvicorn app\n").unwrap_err().0, 1);
        assert!(parse("\n: uvicorn\n")
            .unwrap_err()
            .1
            .contains("not a program name"));
        assert!(parse("w b: x\n").is_err());
        assert!(parse("web: a\nweb: b\n").unwrap_err().1.contains("twice"));
        assert!(parse("web:\n").is_err());
        assert!(parse("web: 'unclosed\n").is_err());
        assert!(parse("# nothing\n").is_err());
    }
}
