//! The small in-isolate tier in front of KV: recent entries without a KV read, bounded in count and bytes
//! (isolate memory is 128 MB and never shrinks).

use super::answer::Entry;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

const MAX_ENTRIES: usize = 256;
const MAX_BYTES: usize = 8 * 1024 * 1024;

#[derive(Default)]
pub struct Memory {
    entries: HashMap<String, (Rc<Entry>, u64, usize)>,
    /// Least recently inserted first.
    order: VecDeque<String>,
    bytes: usize,
}

impl Memory {
    pub fn get(&self, key: &str, now_ms: u64) -> Option<Rc<Entry>> {
        self.entries
            .get(key)
            .filter(|(_, expires, _)| *expires > now_ms)
            .map(|(e, _, _)| e.clone())
    }

    pub fn insert(&mut self, key: String, entry: Rc<Entry>, size: usize, expires_ms: u64) {
        if size > MAX_BYTES / 8 {
            return;
        }
        if let Some((_, _, old)) = self.entries.remove(&key) {
            self.bytes -= old;
            self.order.retain(|k| k != &key);
        }
        while self.entries.len() >= MAX_ENTRIES || self.bytes + size > MAX_BYTES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some((_, _, s)) = self.entries.remove(&oldest) {
                self.bytes -= s;
            }
        }
        self.bytes += size;
        self.order.push_back(key.clone());
        self.entries.insert(key, (entry, expires_ms, size));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{ChatResponse, FinishReason, Usage};

    fn e() -> Rc<Entry> {
        Rc::new(Entry {
            answer: ChatResponse {
                id: String::new(),
                model: String::new(),
                content: vec![],
                finish: FinishReason::Stop,
                usage: Some(Usage::default()),
            },
            deployment: String::new(),
            created_ms: 0,
        })
    }

    #[test]
    fn expires_and_stays_bounded() {
        let mut m = Memory::default();
        m.insert("a".into(), e(), 10, 100);
        assert!(m.get("a", 99).is_some());
        assert!(m.get("a", 100).is_none());
        for i in 0..1000 {
            m.insert(format!("k{i}"), e(), 10, 1000);
        }
        assert!(m.entries.len() <= MAX_ENTRIES);
        assert!(m.get("k999", 0).is_some() && m.get("k0", 0).is_none());
        m.insert("big".into(), e(), MAX_BYTES, 1000);
        assert!(m.get("big", 0).is_none(), "oversized entries are not kept");
    }
}
