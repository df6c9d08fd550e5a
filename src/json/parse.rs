//! RFC 8259 parsing, strict: no comments, no trailing commas, no lone surrogates, valid UTF-8, and a depth
//! limit so that a hostile body cannot exhaust the stack.

use super::value::{Map, Number, Value, N};
use std::fmt;

/// Deeper nesting than any real request or answer, shallow enough for the worker's stack.
const MAX_DEPTH: u32 = 128;

/// Objects up to this size look for a duplicate key by comparing pairs; larger ones sort their keys.
const PAIRWISE_MAX: usize = 32;

/// What was wrong and where (1-based line and column of the byte where parsing stopped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    msg: &'static str,
    line: usize,
    column: usize,
}

impl Error {
    /// From [`from_slice_unique`]: the text was well-formed but named a key twice.
    pub fn is_duplicate_key(&self) -> bool {
        self.msg == DUPLICATE_KEY
    }
}

const DUPLICATE_KEY: &str = "duplicate key";

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {} column {}",
            self.msg, self.line, self.column
        )
    }
}

impl std::error::Error for Error {}

/// Parses one JSON value; a key given twice in an object keeps its last value.
pub fn from_slice(bytes: &[u8]) -> Result<Value, Error> {
    Parser::new(bytes, false).document::<true>()
}

pub fn from_str(s: &str) -> Result<Value, Error> {
    from_slice(s.as_bytes())
}

/// Like [`from_slice`], but a key given twice in an object is an error: for signed payloads, where two readers
/// must never disagree about what was said.
pub fn from_slice_unique(bytes: &[u8]) -> Result<Value, Error> {
    Parser::new(bytes, true).document::<true>()
}

/// Checks that `bytes` are one well-formed JSON value without building it.
pub fn validate(bytes: &[u8]) -> Result<(), Error> {
    Parser::new(bytes, false).document::<false>().map(drop)
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    depth: u32,
    unique: bool,
}

impl<'a> Parser<'a> {
    fn new(b: &'a [u8], unique: bool) -> Self {
        Parser {
            b,
            i: 0,
            depth: 0,
            unique,
        }
    }

    #[cold]
    fn error(&self, msg: &'static str) -> Error {
        let at = self.i.min(self.b.len());
        let before = &self.b[..at];
        let line = 1 + before.iter().filter(|&&c| c == b'\n').count();
        let column = at
            - before
                .iter()
                .rposition(|&c| c == b'\n')
                .map_or(0, |p| p + 1)
            + 1;
        Error { msg, line, column }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// `BUILD = false` only checks: strings, arrays and objects are not built (the result is null).
    fn document<const BUILD: bool>(mut self) -> Result<Value, Error> {
        let v = self.value::<BUILD>()?;
        self.skip_ws();
        if self.i < self.b.len() {
            return Err(self.error("trailing characters"));
        }
        Ok(v)
    }

    fn value<const BUILD: bool>(&mut self) -> Result<Value, Error> {
        self.skip_ws();
        let Some(c) = self.peek() else {
            return Err(self.error("EOF while parsing a value"));
        };
        match c {
            b'"' => {
                self.i += 1;
                self.string::<BUILD>().map(Value::String)
            }
            b'{' => self.nested(|p| p.object::<BUILD>()),
            b'[' => self.nested(|p| p.array::<BUILD>()),
            b't' => self.literal(b"true", Value::Bool(true)),
            b'f' => self.literal(b"false", Value::Bool(false)),
            b'n' => self.literal(b"null", Value::Null),
            b'-' | b'0'..=b'9' => self.number::<BUILD>(),
            _ => Err(self.error("expected value")),
        }
    }

    fn nested(
        &mut self,
        inner: impl FnOnce(&mut Self) -> Result<Value, Error>,
    ) -> Result<Value, Error> {
        if self.depth == MAX_DEPTH {
            return Err(self.error("recursion limit exceeded"));
        }
        self.depth += 1;
        self.i += 1;
        let v = inner(self);
        self.depth -= 1;
        v
    }

    fn literal(&mut self, word: &[u8], v: Value) -> Result<Value, Error> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(self.error("expected ident"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    fn number<const BUILD: bool>(&mut self) -> Result<Value, Error> {
        let start = self.i;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("invalid number")),
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.i += 1;
            integer = false;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            integer = false;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        if !BUILD {
            return Ok(Value::Null);
        }
        // Only ASCII digits, signs, dots and exponents were accepted above.
        let text = std::str::from_utf8(&self.b[start..self.i]).unwrap_or_default();
        let n = if integer && negative {
            text.parse::<i64>().ok().filter(|&i| i != 0).map(N::I)
        } else if integer {
            text.parse::<u64>().ok().map(N::U)
        } else {
            None
        };
        let n = match n {
            Some(n) => n,
            None => match text.parse::<f64>() {
                Ok(f) if f.is_finite() => N::Text(f, text.into()),
                _ => return Err(self.error("number out of range")),
            },
        };
        Ok(Value::Number(Number(n)))
    }

    /// After the opening quote; up to and including the closing one.
    fn string<const BUILD: bool>(&mut self) -> Result<String, Error> {
        let mut out = String::new();
        loop {
            let start = self.i;
            while let Some(&c) = self.b.get(self.i) {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.i += 1;
            }
            // A run ends at an ASCII byte, so it never splits a UTF-8 sequence.
            let run = std::str::from_utf8(&self.b[start..self.i]).map_err(|e| {
                self.i = start + e.valid_up_to();
                self.error("invalid unicode code point")
            })?;
            if BUILD {
                out.push_str(run);
            }
            match self.peek() {
                None => return Err(self.error("EOF while parsing a string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = self.escape()?;
                    if BUILD {
                        out.push(c);
                    }
                }
                Some(_) => {
                    return Err(self
                        .error("control character (\\u0000-\\u001F) found while parsing a string"))
                }
            }
        }
    }

    /// After a backslash.
    fn escape(&mut self) -> Result<char, Error> {
        let Some(c) = self.peek() else {
            return Err(self.error("EOF while parsing a string"));
        };
        self.i += 1;
        Ok(match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = self.hex4()?;
                let code = match hi {
                    0xD800..=0xDBFF => {
                        if !self.b[self.i..].starts_with(b"\\u") {
                            return Err(self.error("lone leading surrogate in hex escape"));
                        }
                        self.i += 2;
                        let lo = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            return Err(self.error("lone leading surrogate in hex escape"));
                        }
                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                    }
                    0xDC00..=0xDFFF => {
                        return Err(self.error("unexpected end of hex escape"));
                    }
                    c => c,
                };
                char::from_u32(code).ok_or_else(|| self.error("invalid unicode code point"))?
            }
            _ => {
                self.i -= 1;
                return Err(self.error("invalid escape"));
            }
        })
    }

    fn hex4(&mut self) -> Result<u32, Error> {
        let mut v = 0;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(c @ b'0'..=b'9') => c - b'0',
                Some(c @ b'a'..=b'f') => c - b'a' + 10,
                Some(c @ b'A'..=b'F') => c - b'A' + 10,
                Some(_) => return Err(self.error("invalid escape")),
                None => return Err(self.error("EOF while parsing a string")),
            };
            v = v << 4 | u32::from(d);
            self.i += 1;
        }
        Ok(v)
    }

    /// After `[`.
    fn array<const BUILD: bool>(&mut self) -> Result<Value, Error> {
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(Value::Array(items));
        }
        loop {
            let v = self.value::<BUILD>()?;
            if BUILD {
                items.push(v);
            }
            if self.closed(b']', "EOF while parsing a list", "expected `,` or `]`")? {
                return Ok(if BUILD {
                    Value::Array(items)
                } else {
                    Value::Null
                });
            }
        }
    }

    /// After a member of an array or object: true past its `close`, false past a comma that another member
    /// follows.
    fn closed(&mut self, close: u8, eof: &'static str, other: &'static str) -> Result<bool, Error> {
        self.skip_ws();
        match self.peek() {
            Some(b',') => {
                self.i += 1;
                self.skip_ws();
                if self.peek() == Some(close) {
                    return Err(self.error("trailing comma"));
                }
                Ok(false)
            }
            Some(c) if c == close => {
                self.i += 1;
                Ok(true)
            }
            None => Err(self.error(eof)),
            Some(_) => Err(self.error(other)),
        }
    }

    /// Steps over `byte`, or says why not.
    fn expect(&mut self, byte: u8, eof: &'static str, other: &'static str) -> Result<(), Error> {
        match self.peek() {
            Some(c) if c == byte => {
                self.i += 1;
                Ok(())
            }
            None => Err(self.error(eof)),
            Some(_) => Err(self.error(other)),
        }
    }

    /// After `{`.
    fn object<const BUILD: bool>(&mut self) -> Result<Value, Error> {
        let mut entries = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(Value::Object(Map::new()));
        }
        const EOF: &str = "EOF while parsing an object";
        loop {
            self.expect(b'"', EOF, "key must be a string")?;
            let key = self.string::<BUILD>()?;
            self.skip_ws();
            self.expect(b':', EOF, "expected `:`")?;
            let v = self.value::<BUILD>()?;
            if BUILD {
                entries.push((key, v));
            }
            if self.closed(b'}', EOF, "expected `,` or `}`")? {
                break;
            }
        }
        if !BUILD {
            return Ok(Value::Null);
        }
        let mut map = Map::from_entries(entries);
        if remove_duplicates(map.entries_mut(), self.unique) {
            self.i -= 1;
            return Err(self.error(DUPLICATE_KEY));
        }
        Ok(Value::Object(map))
    }
}

/// Keeps the last of each key (in its place). With `reject`, leaves the entries alone and says whether a key
/// was duplicated (without, always false).
fn remove_duplicates(entries: &mut Vec<(String, Value)>, reject: bool) -> bool {
    let n = entries.len();
    if n < 2 {
        return false;
    }
    // The common case, a small object without repeats, costs no allocation.
    if n <= PAIRWISE_MAX && !(1..n).any(|j| (0..j).any(|i| entries[i].0 == entries[j].0)) {
        return false;
    }
    let mut shadowed = vec![false; n];
    let mut any = false;
    if n <= PAIRWISE_MAX {
        for j in 1..n {
            for i in 0..j {
                if !shadowed[i] && entries[i].0 == entries[j].0 {
                    shadowed[i] = true;
                    any = true;
                }
            }
        }
    } else {
        // Sorted by (key, position), equal keys are adjacent and all but the last are shadowed.
        let mut order: Vec<u32> = (0..n as u32).collect();
        heap_sort(&mut order, |a, b| {
            (&entries[a as usize].0, a) < (&entries[b as usize].0, b)
        });
        for w in order.windows(2) {
            if entries[w[0] as usize].0 == entries[w[1] as usize].0 {
                shadowed[w[0] as usize] = true;
                any = true;
            }
        }
    }
    if any && reject {
        return true;
    }
    if any {
        let mut i = 0;
        entries.retain(|_| {
            i += 1;
            !shadowed[i - 1]
        });
    }
    false
}

/// O(n log n) without the standard sort's per-type code size (one instance for both users).
pub(super) fn heap_sort(v: &mut [u32], less: impl Fn(u32, u32) -> bool) {
    let sift = |v: &mut [u32], mut root: usize, end: usize| loop {
        let mut child = 2 * root + 1;
        if child >= end {
            break;
        }
        if child + 1 < end && less(v[child], v[child + 1]) {
            child += 1;
        }
        if !less(v[root], v[child]) {
            break;
        }
        v.swap(root, child);
        root = child;
    };
    for start in (0..v.len() / 2).rev() {
        sift(v, start, v.len());
    }
    for end in (1..v.len()).rev() {
        v.swap(0, end);
        sift(v, 0, end);
    }
}
