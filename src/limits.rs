//! Hard limits on request bodies, checked before and after parsing so that one request cannot make the worker
//! parse, hold or forward unbounded input.

use crate::error::{ErrorCode, GatewayError};
use core::fmt;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Most entries in `messages`.
    pub max_messages: usize,
    /// Largest `max_tokens` / `max_completion_tokens` a client may ask for.
    pub max_tokens: u32,
    /// Deepest nesting of JSON arrays and objects.
    pub max_json_depth: usize,
    /// Longest single JSON string (value or object key), in bytes once unescaped.
    pub max_string_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 4 * 1024 * 1024,
            max_messages: 2048,
            max_tokens: 131_072,
            max_json_depth: 64,
            max_string_bytes: 2 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitError {
    BodyTooLarge { limit: usize },
    TooDeep { limit: usize },
    InvalidUtf8,
    TooManyMessages { limit: usize },
    MaxTokensTooLarge { limit: u32 },
    StringTooLong { limit: usize },
}

impl LimitError {
    /// 413 for an oversized body, 400 for everything else.
    pub fn status(&self) -> u16 {
        match self {
            LimitError::BodyTooLarge { .. } => 413,
            _ => 400,
        }
    }

    /// A machine-readable code for error bodies.
    pub fn code(&self) -> ErrorCode {
        match self {
            LimitError::BodyTooLarge { .. } => ErrorCode::RequestTooLarge,
            LimitError::TooDeep { .. } => ErrorCode::JsonTooDeep,
            LimitError::InvalidUtf8 => ErrorCode::InvalidUtf8,
            LimitError::TooManyMessages { .. } => ErrorCode::TooManyMessages,
            LimitError::MaxTokensTooLarge { .. } => ErrorCode::MaxTokensTooLarge,
            LimitError::StringTooLong { .. } => ErrorCode::StringTooLong,
        }
    }
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitError::BodyTooLarge { limit } => {
                write!(f, "request body is larger than the limit of {limit} bytes")
            }
            LimitError::TooDeep { limit } => write!(
                f,
                "request body nests JSON arrays and objects deeper than the limit of {limit} levels"
            ),
            LimitError::InvalidUtf8 => f.write_str("request body is not valid UTF-8"),
            LimitError::TooManyMessages { limit } => {
                write!(f, "`messages` has more than the limit of {limit} entries")
            }
            LimitError::MaxTokensTooLarge { limit } => write!(
                f,
                "requested maximum output tokens exceed the limit of {limit}"
            ),
            LimitError::StringTooLong { limit } => write!(
                f,
                "request contains a string longer than the limit of {limit} bytes"
            ),
        }
    }
}

impl std::error::Error for LimitError {}

impl From<LimitError> for GatewayError {
    /// An invalid-request error with [`LimitError::status`] and [`LimitError::code`].
    fn from(e: LimitError) -> Self {
        GatewayError::new(e.code(), e.to_string()).with_status(e.status())
    }
}

/// Cheap checks on the raw body before it is parsed: size, nesting depth of arrays and objects (outside strings,
/// by a linear scan without recursion or allocation), then UTF-8 validity.
///
/// The depth scan does not validate JSON; unbalanced closers are ignored and left to the parser.
pub fn check_body(body: &[u8], limits: &Limits) -> Result<(), LimitError> {
    if body.len() > limits.max_body_bytes {
        return Err(LimitError::BodyTooLarge {
            limit: limits.max_body_bytes,
        });
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limits.max_json_depth {
                    return Err(LimitError::TooDeep {
                        limit: limits.max_json_depth,
                    });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    // Multi-byte UTF-8 sequences contain no ASCII bytes, so the scan above is right even before this check.
    if core::str::from_utf8(body).is_err() {
        return Err(LimitError::InvalidUtf8);
    }
    Ok(())
}

/// `messages` may have at most `max_messages` entries.
pub fn check_message_count(count: usize, limits: &Limits) -> Result<(), LimitError> {
    if count > limits.max_messages {
        return Err(LimitError::TooManyMessages {
            limit: limits.max_messages,
        });
    }
    Ok(())
}

/// A maximum-output-tokens field, as its JSON text. Fractional or out-of-range numbers are rejected here only if
/// too large; a value that is not a number is the parser's business.
pub fn check_max_tokens_text(json: &str, limits: &Limits) -> Result<(), LimitError> {
    let Ok(n) = serde_json::from_slice::<serde_json::Number>(json.as_bytes()) else {
        return Ok(());
    };
    match n.as_u64() {
        Some(u) => check_max_tokens(u, limits),
        None if n.as_f64().is_some_and(|f| f > f64::from(limits.max_tokens)) => {
            Err(LimitError::MaxTokensTooLarge {
                limit: limits.max_tokens,
            })
        }
        None => Ok(()),
    }
}

/// A requested maximum of output tokens, already read as an integer.
pub fn check_max_tokens(n: u64, limits: &Limits) -> Result<(), LimitError> {
    if n > u64::from(limits.max_tokens) {
        return Err(LimitError::MaxTokensTooLarge {
            limit: limits.max_tokens,
        });
    }
    Ok(())
}

/// No string (value or key) in the JSON text `body` may be longer than `max_strings_bytes` once decoded. The
/// escaped text of a string is never shorter than the string, so when no string's text is over the limit, none
/// is, and nothing needs parsing; otherwise the strings are decoded and measured exactly.
pub fn check_strings_in(body: &[u8], limits: &Limits) -> Result<(), LimitError> {
    let mut longest = 0usize;
    let mut start = None;
    let mut escaped = false;
    for (i, &b) in body.iter().enumerate() {
        match start {
            Some(s) => {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    longest = longest.max(i - s);
                    start = None;
                }
            }
            None if b == b'"' => start = Some(i + 1),
            None => {}
        }
    }
    if longest <= limits.max_string_bytes {
        return Ok(());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => check_strings(core::iter::once(&v), limits),
        // Not JSON: the parser reports it.
        Err(_) => Ok(()),
    }
}

/// The longest string (value or key) under `roots`. Iterative: a parsed value may still be deep, and recursion
/// is not needed to visit it.
fn check_strings<'a>(
    roots: impl Iterator<Item = &'a Value>,
    limits: &Limits,
) -> Result<(), LimitError> {
    let err = LimitError::StringTooLong {
        limit: limits.max_string_bytes,
    };
    let too_long = |s: &str| s.len() > limits.max_string_bytes;
    let mut stack: Vec<&Value> = roots.collect();
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) if too_long(s) => return Err(err),
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => {
                for (k, item) in map {
                    if too_long(k) {
                        return Err(err);
                    }
                    stack.push(item);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_are_measured_decoded_and_only_parsed_when_their_text_is_long() {
        let l = Limits {
            max_string_bytes: 4,
            ..Limits::default()
        };
        assert_eq!(
            check_strings_in(br#"{"abcd":"wxyz","k":["1234"]}"#, &l),
            Ok(())
        );
        let err = Err(LimitError::StringTooLong { limit: 4 });
        assert_eq!(check_strings_in(br#"{"k":"wxyz5"}"#, &l), err);
        assert_eq!(check_strings_in(br#"{"abcde":1}"#, &l), err);
        assert_eq!(check_strings_in(br#"{"k":[{"x":"12345"}]}"#, &l), err);
        // Escaped text longer than the limit whose string is not: exact after decoding.
        assert_eq!(check_strings_in(br#"{"k":"\u0041\u0042"}"#, &l), Ok(()));
        assert_eq!(check_strings_in(br#"{"k":"a\"b\\cd"}"#, &l), err);
        // A quote inside a string does not end it.
        assert_eq!(check_strings_in(br#"{"k":"\"\"\"\"\""}"#, &l), err);
    }

    #[test]
    fn max_tokens_text_is_checked_as_a_number() {
        let l = Limits {
            max_tokens: 100,
            ..Limits::default()
        };
        assert_eq!(check_max_tokens_text("100", &l), Ok(()));
        assert_eq!(check_max_tokens_text("\"999\"", &l), Ok(()));
        let err = Err(LimitError::MaxTokensTooLarge { limit: 100 });
        assert_eq!(check_max_tokens_text("101", &l), err);
        assert_eq!(check_max_tokens_text("1e9", &l), err);
        assert_eq!(check_max_tokens_text("100000000000000000000000", &l), err);
    }

    fn small() -> Limits {
        Limits {
            max_body_bytes: 100,
            max_messages: 2,
            max_tokens: 1000,
            max_json_depth: 3,
            max_string_bytes: 24,
        }
    }

    #[test]
    fn defaults() {
        let l = Limits::default();
        assert_eq!(l.max_body_bytes, 4_194_304);
        assert_eq!(l.max_messages, 2048);
        assert_eq!(l.max_tokens, 131_072);
        assert_eq!(l.max_json_depth, 64);
        assert_eq!(l.max_string_bytes, 2_097_152);
    }

    #[test]
    fn body_size() {
        let l = small();
        assert_eq!(check_body(&[b' '; 100], &l), Ok(()));
        let e = check_body(&[b' '; 101], &l).unwrap_err();
        assert_eq!(e, LimitError::BodyTooLarge { limit: 100 });
        assert_eq!(e.status(), 413);
        assert_eq!(
            e.to_string(),
            "request body is larger than the limit of 100 bytes"
        );
        let g = GatewayError::from(e);
        assert_eq!((g.status, g.code.as_str()), (413, "request_too_large"));
        // Size is checked before anything else.
        assert_eq!(
            check_body(&[b'['; 101], &l),
            Err(LimitError::BodyTooLarge { limit: 100 })
        );
    }

    #[test]
    fn depth_counts_containers_outside_strings() {
        let l = small();
        for ok in [
            &br#"{"a":[{"b":1}]}"#[..],
            br#"[[["x"]],[[1]],{"a":{"b":1}}]"#,
            br#"{"s":"[[[[[{{{{{"}"#,
            br#"{"s":"\"[[[[[\\"}"#,
            br#"{"s":"\\","t":[[1]]}"#,
            br#"]]]]]]{"a":1}"#,
            b"",
        ] {
            assert_eq!(
                check_body(ok, &l),
                Ok(()),
                "{}",
                String::from_utf8_lossy(ok)
            );
        }
        for deep in [
            &br#"{"a":[{"b":[1]}]}"#[..],
            b"[[[[",
            br#"{"s":"\\"}[[[["#,
            br#"{"s":"\"", "t":[[[1]]]}"#,
            br#"["]", [[[ ]]]]"#,
        ] {
            let e = check_body(deep, &l).unwrap_err();
            assert_eq!(
                e,
                LimitError::TooDeep { limit: 3 },
                "{}",
                String::from_utf8_lossy(deep)
            );
            assert_eq!(e.status(), 400);
        }
    }

    #[test]
    fn deep_nesting_is_rejected_quickly_without_recursion() {
        let l = Limits::default();
        let mut body = vec![b'['; 100_000];
        body.extend(vec![b']'; 100_000]);
        let start = std::time::Instant::now();
        assert_eq!(
            check_body(&body, &l),
            Err(LimitError::TooDeep { limit: 64 })
        );
        let mut objects = b"{\"a\":".repeat(100_000);
        objects.extend(vec![b'}'; 100_000]);
        assert_eq!(
            check_body(&objects, &l),
            Err(LimitError::TooDeep { limit: 64 })
        );
        // The scan itself does not recurse: with no depth limit, 100k levels complete.
        let unlimited = Limits {
            max_json_depth: usize::MAX,
            ..l
        };
        assert_eq!(check_body(&body, &unlimited), Ok(()));
        // Brackets inside a huge string do not count.
        let mut in_string = b"{\"s\":\"".to_vec();
        in_string.extend(vec![b'['; 100_000]);
        in_string.extend(b"\"}");
        assert_eq!(check_body(&in_string, &l), Ok(()));
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn invalid_utf8() {
        let l = Limits::default();
        for bad in [
            &b"{\"a\":\"\xff\"}"[..],
            b"{\"a\":\"\xc3\"}",
            b"\xed\xa0\x80",
            b"{\"a\":\"\xf0\x9f\x99\"}",
        ] {
            let e = check_body(bad, &l).unwrap_err();
            assert_eq!(e, LimitError::InvalidUtf8);
            assert_eq!(e.status(), 400);
        }
        assert_eq!(check_body("{\"a\":\"日本🙂\"}".as_bytes(), &l), Ok(()));
    }

    #[test]
    fn message_count() {
        let l = small();
        assert_eq!(check_message_count(2, &l), Ok(()));
        assert_eq!(
            check_message_count(3, &l),
            Err(LimitError::TooManyMessages { limit: 2 })
        );
    }

    #[test]
    fn max_tokens() {
        let l = small();
        assert_eq!(check_max_tokens(1000, &l), Ok(()));
        assert_eq!(
            check_max_tokens(1001, &l),
            Err(LimitError::MaxTokensTooLarge { limit: 1000 })
        );
        for ok in ["1000", "0", "-5", "999.5", "\"9999\"", "null", "[]"] {
            assert_eq!(check_max_tokens_text(ok, &l), Ok(()), "{ok}");
        }
        for bad in ["1001", "5000", "1e12", &u64::MAX.to_string()] {
            let e = check_max_tokens_text(bad, &l).unwrap_err();
            assert_eq!(e, LimitError::MaxTokensTooLarge { limit: 1000 }, "{bad}");
            assert_eq!(e.status(), 400);
        }
    }

    #[test]
    fn longest_string() {
        let l = small();
        let ok = "x".repeat(24);
        let long = "x".repeat(25);
        let text = |v: Value| v.to_string();
        assert_eq!(
            check_strings_in(text(json!({"messages": [{"content": ok}]})).as_bytes(), &l),
            Ok(())
        );
        for bad in [
            json!({"messages": [{"content": long}]}),
            json!({"messages": [{"content": [{"text": [[[long]]]}]}]}),
            json!({ long.clone(): 1 }),
            json!(long),
        ] {
            assert_eq!(
                check_strings_in(text(bad.clone()).as_bytes(), &l),
                Err(LimitError::StringTooLong { limit: 24 }),
                "{bad}"
            );
        }
        // Bytes, not characters: nine 3-byte characters are 27 bytes.
        assert_eq!(
            check_strings_in(text(json!({"a": "日".repeat(9)})).as_bytes(), &l),
            Err(LimitError::StringTooLong { limit: 24 })
        );
        let e = LimitError::StringTooLong { limit: 24 };
        assert_eq!(e.status(), 400);
        assert_eq!(GatewayError::from(e).status, 400);
    }
}
