//! The one secret scrubber: everything the gateway sends back (headers, bodies, stream chunks) passes through
//! it, so that no configured secret reaches a client however a provider reflects it (an error message that quotes
//! the key, a header, an echoed request). Each secret is looked for as it is and in the forms JSON text can carry
//! it in (escaped quotes, backslashes and slashes, `\uXXXX`).

use crate::http::{Body, Response};
use futures_util::StreamExt;
use memchr::memmem::Finder;
use std::rc::Rc;

/// What replaces a secret.
pub const REDACTED: &[u8] = b"[redacted]";

/// Shorter values would be found in ordinary text; secrets this short are refused by no provider, but they
/// are not secrets either.
pub const MIN_SECRET_LEN: usize = 8;

#[derive(Default)]
pub struct Scrubber {
    /// Longest first, so that a form containing another is replaced whole.
    needles: Vec<Finder<'static>>,
}

impl Scrubber {
    pub fn new<S: AsRef<str>>(secrets: impl IntoIterator<Item = S>) -> Self {
        let mut forms: Vec<Vec<u8>> = Vec::new();
        for s in secrets {
            let s = s.as_ref();
            if s.len() < MIN_SECRET_LEN {
                continue;
            }
            forms.push(s.as_bytes().to_vec());
            forms.push(json_escaped(s, false));
            forms.push(json_escaped(s, true));
            forms.push(unicode_escaped(s));
        }
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        forms.dedup();
        Scrubber {
            needles: forms
                .into_iter()
                .map(|f| Finder::new(&f).into_owned())
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `bytes` with every secret replaced; unchanged (not copied) when there is none.
    pub fn bytes(&self, bytes: Vec<u8>) -> Vec<u8> {
        let mut out = bytes;
        for needle in &self.needles {
            if needle.find(&out).is_none() {
                continue;
            }
            let mut next = Vec::with_capacity(out.len());
            let mut rest = &out[..];
            while let Some(i) = needle.find(rest) {
                next.extend_from_slice(&rest[..i]);
                next.extend_from_slice(REDACTED);
                rest = &rest[i + needle.needle().len()..];
            }
            next.extend_from_slice(rest);
            out = next;
        }
        out
    }

    pub fn text(&self, text: &str) -> String {
        let out = self.bytes(text.as_bytes().to_vec());
        // Only whole ASCII-or-UTF-8 needles were replaced by ASCII: still UTF-8.
        String::from_utf8(out).unwrap_or_default()
    }

    /// Scrubs what a response carries: header values, the body, and each chunk of a stream as it passes.
    pub fn response(self: &Rc<Self>, resp: &mut Response) {
        if self.is_empty() {
            return;
        }
        resp.headers.map_values(|v| self.text(v));
        resp.body = match std::mem::replace(&mut resp.body, Body::Empty) {
            Body::Empty => Body::Empty,
            Body::Bytes(b) => Body::Bytes(self.bytes(b)),
            Body::Stream(s) => {
                let me = self.clone();
                Body::Stream(Box::pin(s.map(move |c| c.map(|b| me.bytes(b)))))
            }
        };
    }
}

fn json_escaped(s: &str, slash: bool) -> Vec<u8> {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if slash => out.push_str("\\/"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.into_bytes()
}

/// Every character as `\uXXXX` (lowercase hex), as some encoders write non-alphanumerics.
fn unicode_escaped(s: &str) -> Vec<u8> {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for u in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Headers;
    use futures_executor::block_on;
    use futures_util::stream;

    const AWS: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    #[test]
    fn every_form_of_every_secret_is_replaced() {
        let s = Scrubber::new(["sk-live-0123456789", AWS, "short"]);
        for text in [
            "key sk-live-0123456789 is invalid".to_owned(),
            format!("{{\"k\":\"{AWS}\"}}"),
            format!("{{\"k\":\"{}\"}}", AWS.replace('/', "\\/")),
            format!(
                "{{\"k\":\"{}\"}}",
                AWS.replace('/', "\\u002f").replace('+', "\\u002b")
            ),
            "sk-live-0123456789sk-live-0123456789".to_owned(),
        ] {
            let out = s.text(&text);
            assert!(
                !out.contains("0123456789") && !out.contains("EXAMPLEKEY"),
                "{out}"
            );
            assert!(out.contains("[redacted]"), "{out}");
        }
        assert_eq!(
            s.text("a short note"),
            "a short note",
            "too short to be a secret"
        );
        assert!(Scrubber::new(["tiny"]).is_empty());
    }

    #[test]
    fn responses_are_scrubbed_in_headers_body_and_stream() {
        let s = Rc::new(Scrubber::new(["sk-live-0123456789"]));
        let mut headers = Headers::new();
        headers.insert("x-echo", "sk-live-0123456789");
        let mut r = Response {
            status: 200,
            headers,
            body: Body::Bytes(b"{\"m\":\"sk-live-0123456789\"}".to_vec()),
        };
        s.response(&mut r);
        assert_eq!(r.headers.get("x-echo"), Some("[redacted]"));
        let Body::Bytes(b) = &r.body else { panic!() };
        assert_eq!(b, b"{\"m\":\"[redacted]\"}");
        let chunks = vec![
            Ok(b"data: sk-live-0123456789\n\n".to_vec()),
            Ok(b"data: ok\n\n".to_vec()),
        ];
        let mut r = Response {
            status: 200,
            headers: Headers::new(),
            body: Body::Stream(Box::pin(stream::iter(chunks))),
        };
        s.response(&mut r);
        let out = block_on(r.body.collect()).unwrap();
        assert_eq!(out, b"data: [redacted]\n\ndata: ok\n\n");
    }
}
