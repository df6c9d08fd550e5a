//! Prompt caching as Anthropic and Bedrock document it: the prompt up to a mark (Anthropic's `cache_control` on a
//! block, Bedrock's `cachePoint` block) is written to the region's cache the first time it is seen and read from
//! it afterwards; usage says how much of the prompt was written or read, apart from the rest. The prompt is walked
//! in the providers' caching order: tools, system, messages. Words stand for tokens, as in every count of the
//! mock; only text blocks have words, other blocks count as content of the prefix but as no words.

use serde_json::Value;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use crate::content::word_count;

/// The prefixes a region has cached, by hash. Cleared by `/_mock/reset`.
#[derive(Default)]
pub(crate) struct PromptCache(Mutex<HashSet<u64>>);

/// How the prompt's words divide.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Words neither written to nor read from the cache.
    pub uncached: u64,
    pub write: u64,
    pub read: u64,
    /// Whether the prompt carried any mark (then the provider reports the cache fields).
    pub marked: bool,
}

/// A prompt being walked: what came so far, and the marks met.
#[derive(Default)]
pub(crate) struct Walk {
    hasher: DefaultHasher,
    words: u64,
    /// The last mark: the prefix's hash and its words.
    mark: Option<(u64, u64)>,
}

impl Walk {
    /// A content block: its text counts as words, anything else only as content of the prefix.
    pub fn block(&mut self, block: &Value, text: Option<&str>) {
        match text {
            Some(t) => {
                t.hash(&mut self.hasher);
                self.words += word_count(t);
            }
            None => {
                let mut b = block.clone();
                if let Some(o) = b.as_object_mut() {
                    o.remove("cache_control");
                }
                b.to_string().hash(&mut self.hasher);
            }
        }
    }

    /// Words of the whole prompt walked so far.
    pub fn words(&self) -> u64 {
        self.words
    }

    /// The prompt so far is a prefix to cache.
    pub fn mark(&mut self) {
        self.mark = Some((self.hasher.finish(), self.words));
    }
}

impl PromptCache {
    /// Divides a walked prompt's words, writing its marked prefix if it is new.
    pub fn account(&self, walk: &Walk) -> Counts {
        let Some((hash, words)) = walk.mark else {
            return Counts {
                uncached: walk.words,
                ..Counts::default()
            };
        };
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let hit = !seen.insert(hash);
        Counts {
            uncached: walk.words - words,
            write: if hit { 0 } else { words },
            read: if hit { words } else { 0 },
            marked: true,
        }
    }

    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn walk(marked: bool, question: &str) -> Walk {
        let mut w = Walk::default();
        let doc = json!({"type": "text", "text": "a long shared document"});
        w.block(&doc, Some("a long shared document"));
        if marked {
            w.mark();
        }
        w.block(&json!({}), Some(question));
        w
    }

    #[test]
    fn a_marked_prefix_is_written_once_then_read() {
        let c = PromptCache::default();
        assert_eq!(
            c.account(&walk(true, "first question")),
            Counts {
                uncached: 2,
                write: 4,
                read: 0,
                marked: true
            }
        );
        assert_eq!(
            c.account(&walk(true, "another one here")),
            Counts {
                uncached: 3,
                write: 0,
                read: 4,
                marked: true
            }
        );
        assert_eq!(
            c.account(&walk(false, "x")),
            Counts {
                uncached: 5,
                write: 0,
                read: 0,
                marked: false
            }
        );
        c.clear();
        assert_eq!(c.account(&walk(true, "x")).write, 4);
    }
}
