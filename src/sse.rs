//! Incremental Server-Sent Events parser (the WHATWG event-stream format), fed bytes as they arrive. It refuses
//! what no provider sends and what would let one exhaust the isolate: text that is not UTF-8, and an event larger
//! than [`MAX_EVENT_BYTES`].

/// The largest event (its lines and their terminators) a provider may send. Real events are far smaller; the
/// largest seen carry inline images, well under this.
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

/// One dispatched event. `data` lines are joined with "\n", as the format specifies. `end` is the offset, in
/// the whole stream, just past the blank line that ended it: what a forwarder may pass on once it is checked.
/// (When a chunk ends between the `\r` and `\n` of that line, `end` is before the `\n`, which a reader takes as
/// the end of the same line.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
    pub end: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseError {
    TooLarge,
    NotUtf8,
}

impl core::fmt::Display for SseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SseError::TooLarge => write!(f, "an event larger than {MAX_EVENT_BYTES} bytes"),
            SseError::NotUtf8 => f.write_str("text that is not UTF-8"),
        }
    }
}

impl From<SseError> for crate::error::GatewayError {
    fn from(e: SseError) -> Self {
        crate::error::GatewayError::new(
            crate::error::ErrorCode::UpstreamMalformed,
            format!("provider sent a malformed stream: {e}"),
        )
    }
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
    /// Bytes taken so far, and where the event being read began.
    offset: u64,
    event_start: u64,
    /// Just past the last blank line: everything before it is whole events (or comments).
    boundary: u64,
    failed: Option<SseError>,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// The events completed by `bytes`. After an error the parser stays failed: the stream cannot be trusted.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let r = self.take(bytes);
        if let Err(e) = r {
            self.failed = Some(e);
        }
        r
    }

    /// Just past the last blank line seen: the bytes before it are whole events and comments.
    pub fn boundary(&self) -> u64 {
        self.boundary
    }

    fn take(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut out = Vec::new();
        // An empty chunk must not forget a pending `\r` (the `\n` may still come).
        if bytes.is_empty() {
            return Ok(out);
        }
        let mut rest = bytes;
        if self.after_cr {
            self.after_cr = false;
            if let Some(stripped) = rest.strip_prefix(b"\n") {
                rest = stripped;
                self.offset += 1;
                if self.boundary + 1 == self.offset {
                    self.boundary = self.offset;
                    self.event_start = self.offset;
                }
            }
        }
        while let Some(i) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&rest[..i]);
            let ending = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                2
            } else {
                if rest[i] == b'\r' && i + 1 == rest.len() {
                    self.after_cr = true;
                }
                1
            };
            self.offset += (i + ending) as u64;
            self.check_size()?;
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, &mut out)?;
            rest = &rest[i + ending..];
        }
        self.line.extend_from_slice(rest);
        self.offset += rest.len() as u64;
        self.check_size()?;
        Ok(out)
    }

    fn check_size(&self) -> Result<(), SseError> {
        if self.offset - self.event_start > MAX_EVENT_BYTES as u64 {
            return Err(SseError::TooLarge);
        }
        Ok(())
    }

    /// Nothing partial is buffered: the stream ended on an event boundary.
    pub fn is_idle(&self) -> bool {
        self.line.is_empty() && !self.has_data && self.event.is_none()
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if line.is_empty() {
            if self.has_data {
                out.push(SseEvent {
                    event: self.event.take(),
                    data: std::mem::take(&mut self.data),
                    end: self.offset,
                });
            }
            self.event = None;
            self.has_data = false;
            self.boundary = self.offset;
            self.event_start = self.offset;
            return Ok(());
        }
        let line = core::str::from_utf8(line)
            .map_err(|_| SseError::NotUtf8)?
            .as_bytes();
        if line[0] == b':' {
            return Ok(());
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        // Split at ASCII bytes of a valid line, so both halves are valid too.
        let value = core::str::from_utf8(value).map_err(|_| SseError::NotUtf8)?;
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            b"event" => self.event = Some(value.to_owned()),
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: Option<&str>, data: &str) -> (Option<String>, String) {
        (event.map(str::to_owned), data.to_owned())
    }

    fn fields(events: Vec<SseEvent>) -> Vec<(Option<String>, String)> {
        events.into_iter().map(|e| (e.event, e.data)).collect()
    }

    #[test]
    fn parses_events_with_all_line_endings() {
        let input = "event: a\ndata: 1\n\n: comment\ndata: x\r\ndata:y\r\n\r\ndata: z\r\r";
        let mut p = SseParser::new();
        let got = p.push(input.as_bytes()).unwrap();
        let ends: Vec<u64> = got.iter().map(|e| e.end).collect();
        assert_eq!(
            fields(got),
            vec![ev(Some("a"), "1"), ev(None, "x\ny"), ev(None, "z")]
        );
        assert_eq!(ends, vec![18, 47, 56]);
        assert_eq!(p.boundary(), input.len() as u64);
        assert!(p.is_idle());
    }

    #[test]
    fn same_events_and_ends_at_every_split_point() {
        let input =
            "event: message_start\r\ndata: {\"a\":1}\r\n\r\n: ping\r\n\r\ndata: [DONE]\r\r\n";
        let whole = SseParser::new().push(input.as_bytes()).unwrap();
        for i in 0..=input.len() {
            let mut p = SseParser::new();
            let mut got = p.push(&input.as_bytes()[..i]).unwrap();
            assert!(p.boundary() <= i as u64);
            got.extend(p.push(&input.as_bytes()[i..]).unwrap());
            for (g, w) in got.iter().zip(&whole) {
                let cut_in_crlf = g.end + 1 == w.end && g.end == i as u64;
                assert!(g.end == w.end || cut_in_crlf, "split at {i}: {g:?}");
            }
            assert_eq!(fields(got), fields(whole.clone()), "split at {i}");
            assert_eq!(p.boundary(), input.len() as u64, "split at {i}");
            assert!(p.is_idle());
        }
    }

    #[test]
    fn partial_event_is_not_idle() {
        let mut p = SseParser::new();
        assert!(p.push(b"data: {\"half\"").unwrap().is_empty());
        assert!(!p.is_idle());
        assert!(p.push(b"}\n").unwrap().is_empty());
        assert!(!p.is_idle());
        assert_eq!(p.boundary(), 0);
        assert_eq!(fields(p.push(b"\n").unwrap()), vec![ev(None, "{\"half\"}")]);
    }

    #[test]
    fn invalid_utf8_is_an_error_wherever_it_is() {
        for input in [
            &b"data: \xff\xfe\n\n"[..],
            b": \xc3\n\n",
            b"event: \xed\xa0\x80\ndata: x\n\n",
        ] {
            let mut p = SseParser::new();
            assert_eq!(p.push(input), Err(SseError::NotUtf8), "{input:?}");
            assert_eq!(
                p.push(b"data: ok\n\n"),
                Err(SseError::NotUtf8),
                "stays failed"
            );
        }
        // A character split across chunks is whole once both halves are in.
        let mut p = SseParser::new();
        assert!(p.push(b"data: \xc3").unwrap().is_empty());
        assert_eq!(
            fields(p.push(b"\xa9\n\n").unwrap()),
            vec![ev(None, "\u{e9}")]
        );
    }

    #[test]
    fn an_event_past_the_cap_is_an_error_even_without_a_newline() {
        let mut p = SseParser::new();
        let chunk = vec![b'a'; 64 * 1024];
        let mut fed = 0;
        let err = loop {
            match p.push(&chunk) {
                Ok(_) => fed += chunk.len(),
                Err(e) => break e,
            }
            assert!(fed <= MAX_EVENT_BYTES, "refused by the cap");
        };
        assert_eq!(err, SseError::TooLarge);
        // Events up to the cap are fine, and the count restarts at each event.
        let mut p = SseParser::new();
        let body = "x".repeat(MAX_EVENT_BYTES - 16);
        for _ in 0..3 {
            let got = p.push(format!("data: {body}\n\n").as_bytes()).unwrap();
            assert_eq!(got.len(), 1);
        }
    }
}
