//! Words about words: splitting a command string like a shell, the
//! nearest known name to a misspelt one, and quoting a value in a message
//! without echoing megabytes of it.

/// Splits "CMD ARGS" into words the way a shell would for plain words,
/// single and double quotes and backslashes; no expansion of any kind.
pub fn split_command(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unclosed ' in `{text}`")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unclosed \" in `{text}`")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unclosed \" in `{text}`")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(format!("trailing \\ in `{text}`")),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err("the command is empty".into());
    }
    Ok(words)
}

/// The candidate closest to `name` by edit distance, when it is close
/// enough to be a likely typo (at most 2 edits, fewer for short names).
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = if name.len() <= 4 { 1 } else { 2 };
    candidates
        .into_iter()
        .map(|c| (distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over bytes, case-insensitive (names are ASCII).
fn distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The longest quoted value a message shows in full.
const QUOTE_MAX: usize = 60;

/// `message` with every `` `quoted` `` value longer than `QUOTE_MAX` cut to
/// its start and its length: a 300-digit number or a 100 MB string must
/// not fill the screen.
pub fn shorten(message: String) -> String {
    let parts: Vec<&str> = message.split('`').collect();
    if !parts.iter().skip(1).step_by(2).any(|q| q.len() > QUOTE_MAX) {
        return message;
    }
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push('`');
        }
        // Odd parts are inside backquotes (a trailing unpaired one is not).
        if i % 2 == 1 && i + 1 < parts.len() && part.len() > QUOTE_MAX {
            let mut end = QUOTE_MAX - 20;
            while !part.is_char_boundary(end) {
                end -= 1;
            }
            out.push_str(&format!("{}... ({} bytes)", &part[..end], part.len()));
        } else {
            out.push_str(part);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_command_quotes() {
        assert_eq!(
            split_command("a 'b c' \"d \\\"e\"").unwrap(),
            ["a", "b c", "d \"e"]
        );
        assert_eq!(split_command("a\\ b").unwrap(), ["a b"]);
        assert!(split_command("'open").is_err());
        assert!(split_command("   ").is_err());
    }

    #[test]
    fn nearest_names() {
        let known = ["CINIT_WORKERS", "CINIT_LISTEN", "CINIT_GRACEFUL_TIMEOUT"];
        assert_eq!(nearest("CINIT_WORKER", known), Some("CINIT_WORKERS"));
        assert_eq!(nearest("CINIT_LISTN", known), Some("CINIT_LISTEN"));
        assert_eq!(nearest("cinit_workers", known), Some("CINIT_WORKERS"));
        assert_eq!(nearest("CINIT_COLOUR", known), None);
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = "9".repeat(300);
        let m = shorten(format!("`{long}` is not a duration (use `30s`)"));
        assert!(m.len() < 100, "{m}");
        assert!(
            m.contains("99... (300 bytes)` is not a duration (use `30s`)"),
            "{m}"
        );
        assert_eq!(shorten("`5x` is bad".into()), "`5x` is bad");
        let unpaired = format!("`{long}");
        assert_eq!(shorten(unpaired.clone()), unpaired);
    }
}
