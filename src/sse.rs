//! Incremental Server-Sent Events parser (the WHATWG event-stream format), fed bytes as they arrive.

/// One dispatched event. `data` lines are joined with "\n", as the format specifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

#[derive(Debug, Default)]
pub struct SseParser {
    /// The current, not yet terminated line.
    line: Vec<u8>,
    /// A line just ended in `\r`: a `\n` that follows belongs to it, even in the next chunk.
    after_cr: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        // An empty chunk must not forget a pending `\r` (the `\n` may still come).
        if bytes.is_empty() {
            return out;
        }
        let mut rest = bytes;
        if self.after_cr {
            self.after_cr = false;
            if let Some(stripped) = rest.strip_prefix(b"\n") {
                rest = stripped;
            }
        }
        while let Some(i) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&rest[..i]);
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, &mut out);
            if rest[i] == b'\r' {
                if rest.get(i + 1) == Some(&b'\n') {
                    rest = &rest[i + 2..];
                } else if i + 1 == rest.len() {
                    self.after_cr = true;
                    rest = &[];
                } else {
                    rest = &rest[i + 1..];
                }
            } else {
                rest = &rest[i + 1..];
            }
        }
        self.line.extend_from_slice(rest);
        out
    }

    /// Nothing partial is buffered: the stream ended on an event boundary.
    pub fn is_idle(&self) -> bool {
        self.line.is_empty() && !self.has_data && self.event.is_none()
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if self.has_data {
                out.push(SseEvent {
                    event: self.event.take(),
                    data: std::mem::take(&mut self.data),
                });
            }
            self.event = None;
            self.has_data = false;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.event = Some(value.into_owned()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: event.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    #[test]
    fn parses_events_with_all_line_endings() {
        let input = "event: a\ndata: 1\n\n: comment\ndata: x\r\ndata:y\r\n\r\ndata: z\r\r";
        let mut p = SseParser::new();
        let got = p.push(input.as_bytes());
        assert_eq!(
            got,
            vec![ev(Some("a"), "1"), ev(None, "x\ny"), ev(None, "z")]
        );
        assert!(p.is_idle());
    }

    #[test]
    fn same_events_at_every_split_point() {
        let input = "event: message_start\r\ndata: {\"a\":1}\r\n\r\ndata: [DONE]\n\n";
        let whole = SseParser::new().push(input.as_bytes());
        for i in 0..=input.len() {
            let mut p = SseParser::new();
            let mut got = p.push(&input.as_bytes()[..i]);
            got.extend(p.push(&input.as_bytes()[i..]));
            assert_eq!(got, whole, "split at {i}");
            assert!(p.is_idle());
        }
    }

    #[test]
    fn partial_event_is_not_idle() {
        let mut p = SseParser::new();
        assert!(p.push(b"data: {\"half\"").is_empty());
        assert!(!p.is_idle());
        assert!(p.push(b"}\n").is_empty());
        assert!(!p.is_idle());
        assert_eq!(p.push(b"\n"), vec![ev(None, "{\"half\"}")]);
    }

    #[test]
    fn invalid_utf8_does_not_panic() {
        let mut p = SseParser::new();
        let got = p.push(b"data: \xff\xfe\n\n");
        assert_eq!(got.len(), 1);
    }
}
