//! The TOML configuration file: read with care (a regular file of at most
//! `MAX_SIZE` bytes; a FIFO or `/dev/zero` is refused without blocking),
//! parsed into toml's spanned document tree, checked for unknown keys, and
//! kept with the position of every value, array elements included, so a
//! bad value is reported with its file, line and column.
//!
//! Numbers stay as the text the user wrote (`DeInteger`/`DeFloat` keep
//! it): `graceful_timeout = 1e300` goes through the same capped parser as
//! `"1e300"` on the command line, and nothing overflows on the way.

use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::options;
use super::words::nearest;
use super::ConfigError;

/// The largest file read: a configuration is a few hundred bytes; more
/// than this is a wrong path or an attack on the init's memory.
pub const MAX_SIZE: u64 = 1 << 20;

/// The text of the file at `path`, refused when it is not a regular file
/// or is larger than `MAX_SIZE`.
pub fn read(path: &Path, what: &'static str) -> Result<String, ConfigError> {
    let fail = |reason: String| ConfigError::ReadFile {
        what,
        path: path.to_path_buf(),
        reason,
    };
    // O_NONBLOCK: opening a FIFO without a writer would block forever;
    // the check below refuses it once open. Regular files ignore the flag.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| fail(e.to_string()))?;
    let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    if meta.len() > MAX_SIZE {
        return Err(fail(format!(
            "{} bytes, more than the {MAX_SIZE} a configuration file may have",
            meta.len()
        )));
    }
    // The file may grow between the check and the read: read one byte
    // more than allowed to notice.
    let mut bytes = Vec::new();
    file.take(MAX_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > MAX_SIZE {
        return Err(fail(format!(
            "more than the {MAX_SIZE} bytes a configuration file may have"
        )));
    }
    String::from_utf8(bytes).map_err(|_| fail("stream did not contain valid UTF-8".into()))
}

/// A parsed file: its top-level keys with their values and positions.
pub struct File<'t> {
    pub path: PathBuf,
    text: &'t str,
    table: DeTable<'t>,
}

/// Where a value stands in the file: its byte range, for messages.
pub type Span = Range<usize>;

impl<'t> File<'t> {
    /// Parses `text`; a syntax error or an unknown key is an error that
    /// points at it.
    pub fn parse(path: &Path, text: &'t str) -> Result<File<'t>, ConfigError> {
        let table = match DeTable::parse(text) {
            Ok(t) => t.into_inner(),
            Err(e) => {
                let (line, column) = line_col(text, e.span().map_or(0, |s| s.start));
                return Err(ConfigError::FileSyntax {
                    path: path.to_path_buf(),
                    line,
                    column,
                    message: e.message().trim().to_string(),
                });
            }
        };
        let file = File {
            path: path.to_path_buf(),
            text,
            table,
        };
        // The first unknown key in the file's order, not the table's.
        let mut unknown: Vec<&Spanned<_>> = file
            .table
            .keys()
            .filter(|k| !options::toml_keys().any(|known| known == k.get_ref().as_ref()))
            .collect();
        unknown.sort_by_key(|k| k.span().start);
        if let Some(key) = unknown.first() {
            let name: &str = key.get_ref();
            let hint = match nearest(name, options::toml_keys()) {
                Some(near) => format!(" (did you mean `{near}`?)"),
                None => String::new(),
            };
            return Err(file.error(
                key.span(),
                name,
                format!(
                    "unknown key{hint} (known keys: {})",
                    options::toml_keys().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        Ok(file)
    }

    /// The value of a top-level key.
    pub fn get(&self, key: &str) -> Option<&Spanned<DeValue<'t>>> {
        self.table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| v)
    }

    /// The error for the value at `span` of `key`.
    pub fn error(&self, span: Span, key: &str, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_col(self.text, span.start);
        ConfigError::FileValue {
            path: self.path.clone(),
            line,
            column,
            key: key.to_string(),
            message: super::words::shorten(message.into()),
        }
    }
}

/// A TOML scalar as the text a user would type for it: strings as they
/// are, numbers as written, booleans as `true`/`false`. `None` for arrays,
/// tables and datetimes.
pub fn scalar_text(value: &DeValue<'_>) -> Option<String> {
    match value {
        DeValue::String(s) => Some(s.to_string()),
        DeValue::Integer(i) if i.radix() == 10 => Some(i.as_str().to_string()),
        // 0x, 0o, 0b: the number, or the literal when it is too large (the
        // setting's parser then says what is wrong with it).
        DeValue::Integer(i) => Some(
            u128::from_str_radix(i.as_str(), i.radix())
                .map_or_else(|_| i.to_string(), |n| n.to_string()),
        ),
        DeValue::Float(f) => Some(f.as_str().to_string()),
        DeValue::Boolean(b) => Some(b.to_string()),
        DeValue::Datetime(_) | DeValue::Array(_) | DeValue::Table(_) => None,
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(text: &str) -> String {
        match File::parse(Path::new("c.toml"), text) {
            Ok(_) => panic!("{text:?} parsed"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn unknown_keys_are_named_with_a_suggestion() {
        let e = parse_err("workers = 2\n  workerz = 3\n");
        assert!(
            e.starts_with("c.toml:2:3: key `workerz`: unknown key (did you mean `workers`?)"),
            "{e}"
        );
        let e = parse_err("[programz.web]\ncommand = \"x\"\n");
        assert!(
            e.contains("key `programz`: unknown key (did you mean `programs`?)"),
            "{e}"
        );
    }

    #[test]
    fn syntax_errors_point_at_the_fault() {
        assert!(parse_err("workers = [1, 2\n").starts_with("c.toml:1:"));
        assert!(parse_err("workers = 1\nworkers = 2\n").starts_with("c.toml:2:"));
        let deep = format!("x = {}{}", "[".repeat(5000), "]".repeat(5000));
        assert!(parse_err(&deep).starts_with("c.toml:1:"));
    }

    #[test]
    fn numbers_keep_their_text() {
        let f = File::parse(
            Path::new("c.toml"),
            "graceful_timeout = 18446744073709551615\nshutdown_delay = 1e300\nbacklog = 0x10\n\
             min_uptime = 1_000\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let text = |k| scalar_text(f.get(k).unwrap().get_ref());
        assert_eq!(
            text("graceful_timeout").as_deref(),
            Some("18446744073709551615")
        );
        assert_eq!(text("shutdown_delay").as_deref(), Some("1e300"));
        assert_eq!(text("backlog").as_deref(), Some("16"));
        assert_eq!(text("min_uptime").as_deref(), Some("1000"));
    }

    #[test]
    fn only_small_regular_files_are_read() {
        let e = read(Path::new("/dev/zero"), "config file")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let e = read(Path::new("/tmp"), "config file")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }
}
