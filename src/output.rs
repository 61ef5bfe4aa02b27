//! The children's output, line by line, with a prefix (`--log-prefix`):
//! `web.0 | INFO: Application startup complete.`
//!
//! With the prefix on, each child writes its stdout and stderr into pipes
//! the init reads; every complete line is written out whole, prefixed,
//! on the init's own stdout or stderr, the same stream the child used.
//! The init is then the only writer of those streams, so lines can never
//! interleave mid-line, however long they are. Without the prefix the
//! children keep the container's stdout and stderr (no copy at all).
//!
//! A `Lines` buffer holds what a pipe gave that is not yet a whole line:
//! a line longer than `MAX_LINE` is cut there (and its rest follows on a
//! line of its own, marked as a continuation); what is left when the pipe
//! closes is written with a newline.

/// The longest line kept whole.
pub const MAX_LINE: usize = 16 * 1024;

/// The bytes of one child stream that are not yet a whole line.
#[derive(Debug, Default)]
pub struct Lines {
    partial: Vec<u8>,
    /// The line in progress was cut at `MAX_LINE`: what follows is its
    /// continuation.
    continued: bool,
}

impl Lines {
    /// Takes `bytes` read from the pipe and returns the complete lines,
    /// each prefixed and ending with a newline.
    pub fn push(&mut self, prefix: &str, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) if self.partial.len() + i <= MAX_LINE => {
                    self.partial.extend_from_slice(&rest[..i]);
                    self.emit(prefix, &mut out);
                    self.continued = false;
                    rest = &rest[i + 1..];
                }
                _ => {
                    let room = MAX_LINE - self.partial.len();
                    let take = rest.len().min(room);
                    self.partial.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    if self.partial.len() >= MAX_LINE {
                        self.emit(prefix, &mut out);
                        self.continued = true;
                    }
                }
            }
        }
        out
    }

    /// The pipe closed: what is left, as a last line.
    pub fn finish(&mut self, prefix: &str) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.partial.is_empty() {
            self.emit(prefix, &mut out);
        }
        self.continued = false;
        out
    }

    fn emit(&mut self, prefix: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(if self.continued { b" + " } else { b" | " });
        out.append(&mut self.partial);
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_lines_come_out_prefixed_and_parts_wait() {
        let mut l = Lines::default();
        assert_eq!(l.push("web.0", b"hel"), b"");
        assert_eq!(l.push("web.0", b"lo\nwor"), b"web.0 | hello\n");
        assert_eq!(l.push("web.0", b"ld\n\nx"), b"web.0 | world\nweb.0 | \n");
        assert_eq!(l.finish("web.0"), b"web.0 | x\n");
        assert_eq!(l.finish("web.0"), b"");
    }

    #[test]
    fn a_line_too_long_is_cut_and_marked() {
        let mut l = Lines::default();
        let long = vec![b'a'; MAX_LINE + 10];
        let out = l.push("q.1", &long);
        assert_eq!(out.len(), "q.1 | ".len() + MAX_LINE + 1);
        assert!(out.starts_with(b"q.1 | aaa"));
        let out = l.push("q.1", b"bb\nc\n");
        assert_eq!(
            out,
            [
                b"q.1 + ".to_vec(),
                vec![b'a'; 10],
                b"bb\nq.1 | c\n".to_vec()
            ]
            .concat()
        );
    }
}
