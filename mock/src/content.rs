//! Dialect-independent, deterministic reply generation.
//!
//! Everything here is specified in README.md so that tests written in other
//! languages can predict the mock's output exactly.

/// The fixed `created` timestamp of every response.
pub const CREATED: u64 = 1_700_000_000;

/// Word list used by the `reply_words` knob (32 words, index 0..=31).
pub const WORDS: [&str; 32] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "amber", "cobalt", "ember", "harbor",
    "meadow", "summit",
];

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const LCG_MUL: u64 = 6_364_136_223_846_793_005;
const LCG_ADD: u64 = 1_442_695_040_888_963_407;

/// FNV-1a, 64-bit.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The `n` deterministic words for a given seed:
/// `state = seed; repeat n times: state = state * LCG_MUL + LCG_ADD (mod 2^64);
/// word = WORDS[(state >> 33) % 32]`.
pub fn seeded_words(seed: u64, n: usize) -> Vec<&'static str> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(LCG_MUL).wrapping_add(LCG_ADD);
            WORDS[((state >> 33) % WORDS.len() as u64) as usize]
        })
        .collect()
}

/// Splits a reply into stream pieces: split on single spaces; the first
/// piece is the first word and every following piece is `" " + word`, so the
/// concatenation of the pieces is exactly `text`.
pub fn pieces_of(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, word) in text.split(' ').enumerate() {
        if i == 0 {
            out.push(word.to_string());
        } else {
            let mut p = String::with_capacity(word.len() + 1);
            p.push(' ');
            p.push_str(word);
            out.push(p);
        }
    }
    out
}

/// The pieces of the reply: echo mode (`reply_words` unset) or seeded words.
pub fn reply_pieces(user_text: &str, reply_words: Option<u32>, seed: u64) -> Vec<String> {
    match reply_words {
        None => {
            if user_text.is_empty() {
                vec!["Echo:".to_string()]
            } else {
                let mut reply = String::with_capacity(user_text.len() + 6);
                reply.push_str("Echo: ");
                reply.push_str(user_text);
                pieces_of(&reply)
            }
        }
        Some(n) => seeded_words(seed, n as usize)
            .into_iter()
            .enumerate()
            .map(|(i, w)| {
                if i == 0 {
                    w.to_string()
                } else {
                    format!(" {w}")
                }
            })
            .collect(),
    }
}

/// Number of whitespace-separated words in `text`.
pub fn word_count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// Output tokens reported for a tool-call reply (one per argument fragment).
pub const TOOL_CALL_TOKENS: u64 = 3;

/// A tool-call reply: see README "Tool calls".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub name: String,
    pub query: String,
    /// Compact JSON text of the arguments: `{"query":"…"}`.
    pub arguments: String,
}

impl ToolCall {
    /// The arguments text split into three non-empty fragments, cut at
    /// characters `n/3` and `2n/3` (n = number of characters).
    pub fn fragments(&self) -> [&str; 3] {
        let s = self.arguments.as_str();
        let n = s.chars().count();
        let byte_at = |c: usize| s.char_indices().nth(c).map_or(s.len(), |(b, _)| b);
        let (a, b) = (byte_at(n / 3), byte_at(2 * n / 3));
        [&s[..a], &s[a..b], &s[b..]]
    }
}

/// The tool-call rule: when `tools` is non-empty, the conversation ends with
/// a user message and the last user text starts with `"call "`, the reply
/// calls a tool. The word after `"call "` picks a declared tool by name (the
/// query is then the text after that word and one space); otherwise the
/// first tool is called and the query is everything after `"call "`.
pub fn tool_call(user_text: &str, ends_with_user: bool, tools: &[&str]) -> Option<ToolCall> {
    let first = *tools.first()?;
    if !ends_with_user {
        return None;
    }
    let rest = user_text.strip_prefix("call ")?;
    let (word, after) = rest.split_once(' ').unwrap_or((rest, ""));
    let (name, query) = match tools.iter().find(|t| **t == word) {
        Some(t) => (*t, after),
        None => (first, rest),
    };
    let arguments = serde_json::json!({ "query": query }).to_string();
    Some(ToolCall {
        name: name.to_string(),
        query: query.to_string(),
        arguments,
    })
}

/// What the mock answers, computed once per request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Text pieces; `truncated` when the token limit cut the reply.
    Text {
        pieces: Vec<String>,
        truncated: bool,
    },
    Tool(ToolCall),
}

impl Reply {
    /// Applies the tool-call rule, then the text rules (echo or
    /// `reply_words`, truncated to `limit` pieces).
    pub fn build(
        user_text: &str,
        ends_with_user: bool,
        tools: &[&str],
        reply_words: Option<u32>,
        limit: Option<u64>,
    ) -> Reply {
        if let Some(call) = tool_call(user_text, ends_with_user, tools) {
            return Reply::Tool(call);
        }
        let seed = fnv1a64(user_text.as_bytes());
        let mut pieces = reply_pieces(user_text, reply_words, seed);
        let mut truncated = false;
        if let Some(limit) = limit {
            if limit < pieces.len() as u64 {
                pieces.truncate(limit as usize);
                truncated = true;
            }
        }
        Reply::Text { pieces, truncated }
    }

    pub fn output_tokens(&self) -> u64 {
        match self {
            Reply::Text { pieces, .. } => pieces.len() as u64,
            Reply::Tool(_) => TOOL_CALL_TOKENS,
        }
    }
}

/// The model's reasoning, when a request asks for it (Anthropic `thinking`, Bedrock's
/// `additionalModelRequestFields.thinking`, Gemini's `thinkingConfig.includeThoughts`): its text, and the
/// signature Anthropic-family providers attach to it.
pub fn reasoning(user_text: &str) -> (String, String) {
    (
        format!("Reasoning about: {user_text}"),
        format!("mock-signature-{}", seed_hex(user_text)),
    )
}

/// `seed` as 16 lowercase hex digits, the suffix of every response id.
pub fn seed_hex(user_text: &str) -> String {
    format!("{:016x}", fnv1a64(user_text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_values() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn pieces_concatenate_to_text() {
        for t in ["Echo: hi", "Echo: a  b ", "Echo:", "x"] {
            assert_eq!(pieces_of(t).concat(), t);
        }
        assert_eq!(
            pieces_of("Echo: hello world"),
            vec!["Echo:", " hello", " world"]
        );
        assert_eq!(reply_pieces("", None, 0), vec!["Echo:"]);
    }

    #[test]
    fn seeded_words_are_deterministic() {
        let a = seeded_words(42, 10);
        assert_eq!(a, seeded_words(42, 10));
        assert_eq!(a.len(), 10);
        assert_ne!(seeded_words(43, 10), a);
        let p = reply_pieces("ignored", Some(3), 42);
        assert_eq!(p.len(), 3);
        assert!(!p[0].starts_with(' ') && p[1].starts_with(' '));
    }

    #[test]
    fn tool_call_rule() {
        let tools = ["search", "get_weather"];
        let c = tool_call("call get_weather Paris", true, &tools).unwrap();
        assert_eq!(
            (c.name.as_str(), c.query.as_str()),
            ("get_weather", "Paris")
        );
        assert_eq!(c.arguments, r#"{"query":"Paris"}"#);
        let c = tool_call("call Paris now", true, &tools).unwrap();
        assert_eq!((c.name.as_str(), c.query.as_str()), ("search", "Paris now"));
        let c = tool_call("call search", true, &tools).unwrap();
        assert_eq!((c.name.as_str(), c.query.as_str()), ("search", ""));
        assert!(tool_call("call x", true, &[]).is_none());
        assert!(tool_call("call x", false, &tools).is_none());
        assert!(tool_call("recall x", true, &tools).is_none());
        assert!(tool_call("call", true, &tools).is_none());
        for q in ["", "Paris", "Zürich ☀ \"quoted\""] {
            let c = tool_call(&format!("call {q}"), true, &tools).unwrap();
            let f = c.fragments();
            assert_eq!(f.concat(), c.arguments);
            assert!(f.iter().all(|x| !x.is_empty()), "{f:?}");
        }
        let c = tool_call("call Paris", true, &tools).unwrap();
        // 17 chars: cut at 5 and 11.
        assert_eq!(c.fragments(), ["{\"que", "ry\":\"P", "aris\"}"]);
    }
}
