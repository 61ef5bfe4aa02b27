//! Reading the control protocol's JSON: one object, its top-level fields.
//!
//! serde_json writes the answers; reading them (and the requests) takes
//! this instead, because serde_json's reader costs the static binary more
//! than its size budget has left. It reads strict JSON (RFC 8259): a
//! string field is decoded, a number kept as written, and an array or an
//! object inside checked and kept as its text (the client prints the
//! status document as the init wrote it). Nesting deeper than `MAX_DEPTH`
//! is an error, not a stack overflow.

/// How deep arrays and objects may nest.
pub const MAX_DEPTH: usize = 64;

/// A top-level field's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Field<'a> {
    Null,
    Bool(bool),
    /// As written (`3`, `-1.5e3`).
    Num(&'a str),
    Str(String),
    /// An array or an object, as written.
    Raw(&'a str),
}

impl Field<'_> {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Field::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Field::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// An integer written as one (`3`, not `3.0`).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Field::Num(n) => n.parse().ok(),
            _ => None,
        }
    }
}

/// The fields of one JSON object, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Object<'a> {
    pub fields: Vec<(String, Field<'a>)>,
}

impl<'a> Object<'a> {
    /// A field's value (the last, if a name repeats).
    pub fn get(&self, name: &str) -> Option<&Field<'a>> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Field::as_str)
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        self.get(name).and_then(Field::as_bool)
    }
}

/// Reads `text` as one JSON object (whitespace around it allowed).
pub fn object(text: &str) -> Result<Object<'_>, String> {
    let mut p = Parser { s: text, at: 0 };
    p.ws();
    if p.peek() != Some(b'{') {
        return Err("not a JSON object".into());
    }
    p.at += 1;
    let mut o = Object::default();
    p.ws();
    if p.peek() == Some(b'}') {
        p.at += 1;
    } else {
        loop {
            p.ws();
            let key = p.string()?;
            p.ws();
            p.expect(b':')?;
            p.ws();
            let value = p.field()?;
            o.fields.push((key, value));
            p.ws();
            match p.next() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => return Err(p.error("`,` or `}`")),
            }
        }
    }
    p.ws();
    if p.at != text.len() {
        return Err(p.error("the end"));
    }
    Ok(o)
}

struct Parser<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn error(&self, wanted: &str) -> String {
        format!("bad JSON at byte {}: expected {wanted}", self.at)
    }

    fn expect(&mut self, b: u8) -> Result<(), String> {
        if self.next() == Some(b) {
            Ok(())
        } else {
            Err(self.error(&format!("`{}`", b as char)))
        }
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn field(&mut self) -> Result<Field<'a>, String> {
        let start = self.at;
        Ok(match self.peek() {
            Some(b'"') => Field::Str(self.string()?),
            Some(b'{' | b'[') => {
                self.skip(0)?;
                Field::Raw(&self.s[start..self.at])
            }
            Some(b't') => {
                self.word("true")?;
                Field::Bool(true)
            }
            Some(b'f') => {
                self.word("false")?;
                Field::Bool(false)
            }
            Some(b'n') => {
                self.word("null")?;
                Field::Null
            }
            _ => {
                self.number()?;
                Field::Num(&self.s[start..self.at])
            }
        })
    }

    /// Checks any value, nested `depth` deep.
    fn skip(&mut self, depth: usize) -> Result<(), String> {
        if depth >= MAX_DEPTH {
            return Err(format!("JSON nested deeper than {MAX_DEPTH}"));
        }
        let (close, object) = match self.peek() {
            Some(b'{') => (b'}', true),
            Some(b'[') => (b']', false),
            _ => return self.field().map(drop),
        };
        self.at += 1;
        self.ws();
        if self.peek() == Some(close) {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if object {
                self.string()?;
                self.ws();
                self.expect(b':')?;
                self.ws();
            }
            self.skip(depth + 1)?;
            self.ws();
            match self.next() {
                Some(b',') => continue,
                Some(c) if c == close => return Ok(()),
                _ => return Err(self.error(if object { "`,` or `}`" } else { "`,` or `]`" })),
            }
        }
    }

    fn word(&mut self, w: &str) -> Result<(), String> {
        if self.s[self.at..].starts_with(w) {
            self.at += w.len();
            Ok(())
        } else {
            Err(self.error("a value"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        self.at - start
    }

    fn number(&mut self) -> Result<(), String> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let int_start = self.at;
        let n = self.digits();
        if n == 0 || (n > 1 && self.s.as_bytes()[int_start] == b'0') {
            return Err(self.error("a value"));
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return Err(self.error("a digit"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("a digit"));
            }
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self
            .s
            .get(self.at..self.at + 4)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.error("four hex digits"))?;
        self.at += 4;
        u32::from_str_radix(h, 16).map_err(|_| self.error("four hex digits"))
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            // Copy the run up to the next quote, backslash or control
            // character as it is (the text is UTF-8 already).
            let rest = &self.s[self.at..];
            let run = rest
                .bytes()
                .position(|b| b == b'"' || b == b'\\' || b < 0x20)
                .ok_or_else(|| self.error("the end of the string"))?;
            out.push_str(&rest[..run]);
            self.at += run;
            match self.next() {
                Some(b'"') => return Ok(out),
                Some(b'\\') => {}
                _ => return Err(self.error("no control character in a string")),
            }
            let c = match self.next() {
                Some(b'"') => '"',
                Some(b'\\') => '\\',
                Some(b'/') => '/',
                Some(b'b') => '\u{8}',
                Some(b'f') => '\u{c}',
                Some(b'n') => '\n',
                Some(b'r') => '\r',
                Some(b't') => '\t',
                Some(b'u') => {
                    let hi = self.hex4()?;
                    let code = if (0xD800..0xDC00).contains(&hi) {
                        // A surrogate pair, or a lone half (replaced).
                        if self.s[self.at..].starts_with("\\u") {
                            self.at += 2;
                            let lo = self.hex4()?;
                            if (0xDC00..0xE000).contains(&lo) {
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                0xFFFD
                            }
                        } else {
                            0xFFFD
                        }
                    } else {
                        hi
                    };
                    char::from_u32(code).unwrap_or('\u{FFFD}')
                }
                _ => return Err(self.error("an escape")),
            };
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_of_an_object() {
        let o = object(
            " {\"a\":1,\"b\":\"x\\\"y\\u00e9\\ud83d\\ude00\",\"c\":true,\"d\":null,\
             \"e\":{\"f\":[1,2,{\"g\":[]}]},\"h\":-1.5e3,\"a\":2} \n",
        )
        .unwrap();
        assert_eq!(o.get("a"), Some(&Field::Num("2")), "the last wins");
        assert_eq!(o.str("b"), Some("x\"yé😀"));
        assert_eq!(o.bool("c"), Some(true));
        assert_eq!(o.get("d"), Some(&Field::Null));
        assert_eq!(o.get("e"), Some(&Field::Raw("{\"f\":[1,2,{\"g\":[]}]}")));
        assert_eq!(o.get("h"), Some(&Field::Num("-1.5e3")));
        assert_eq!(o.get("h").unwrap().as_i64(), None);
        assert_eq!(object("{}").unwrap().fields.len(), 0);
    }

    #[test]
    fn refuses_what_is_not_strict_json() {
        for bad in [
            "",
            "[]",
            "1",
            "\"x\"",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{a:1}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":.5}",
            "{\"a\":1e}",
            "{\"a\":tru}",
            "{\"a\":\"\n\"}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\u12\"}",
            "{\"a\":[1,]}",
            "{\"a\":[1 2]}",
            "{\"a\":1} x",
            "{\"a\":1}{",
            "{\"a\":\"open",
        ] {
            assert!(object(bad).is_err(), "{bad:?} was taken");
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(object(&deep).unwrap_err().contains("nested deeper"));
        let ok = format!("{{\"a\":{}{}}}", "[".repeat(60), "]".repeat(60));
        assert!(object(&ok).is_ok());
    }

    #[test]
    fn never_panics_on_garbage() {
        // A cheap fuzz: every prefix and many byte flips of a real answer.
        let answer = "{\"version\":1,\"ok\":true,\"status\":{\"a\":[1,{\"b\":\"c\\u0041\"}],\"d\":-2.5e-3},\"message\":\"x\"}";
        for i in 0..answer.len() {
            let _ = object(&answer[..i]);
        }
        let bytes = answer.as_bytes();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut b = bytes.to_vec();
            let i = (seed % b.len() as u64) as usize;
            b[i] = (seed >> 32) as u8;
            if let Ok(t) = std::str::from_utf8(&b) {
                let _ = object(t);
            }
        }
    }
}
