//! Runtime-neutral HTTP types: the core speaks these, the edge glue converts to and from the platform's.

use core::fmt;
use core::pin::Pin;
use futures_util::Stream;

/// A failure while reading a body that had already started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError(pub String);

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Body bytes as they arrive. Not `Send`: Workers isolates are single-threaded.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Vec<u8>, StreamError>>>>;

/// Header list with lower-cased names, in arrival order.
///
/// The one choke point for header values: a header whose name is not an RFC 9110 token, or whose value holds
/// anything but visible ASCII, space and tab (so never CR, LF or NUL), cannot be put in, whatever its source.
/// What leaves the gateway is therefore always a valid header, and the line encoding the edge glue uses
/// ([`Headers::encode_lines`]) cannot be split by a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

/// A header that [`Headers`] refuses to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidHeader(pub String);

pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

pub fn valid_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

impl Headers {
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Appends a header; `name` is lower-cased so lookups are case-insensitive. An invalid header is refused.
    pub fn try_insert(
        &mut self,
        name: &str,
        value: impl Into<String>,
    ) -> Result<(), InvalidHeader> {
        let value = value.into();
        if !valid_name(name) {
            return Err(InvalidHeader(format!("invalid header name {name:?}")));
        }
        if !valid_value(&value) {
            return Err(InvalidHeader(format!("invalid value for header {name}")));
        }
        self.0.push((name.to_ascii_lowercase(), value));
        Ok(())
    }

    /// Appends a header, dropping it if it is invalid: callers whose values come from outside check them first
    /// (a client's model name is refused with a 400 long before it could reach a header).
    pub fn insert(&mut self, name: &str, value: impl Into<String>) {
        let _ = self.try_insert(name, value);
    }

    /// The glue's wire form: "name\nvalue\n" per header. Unambiguous because no name or value can hold `\n`.
    pub fn encode_lines(&self) -> String {
        let mut out = String::new();
        for (n, v) in &self.0 {
            out.push_str(n);
            out.push('\n');
            out.push_str(v);
            out.push('\n');
        }
        out
    }

    /// Reads [`Headers::encode_lines`]'s form; pairs that are not valid headers are dropped.
    pub fn decode_lines<'a>(mut lines: impl Iterator<Item = &'a str>) -> Headers {
        let mut h = Headers::new();
        while let (Some(n), Some(v)) = (lines.next(), lines.next()) {
            h.insert(n, v);
        }
        h
    }

    /// The first value for `name` (which must be given lower-case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Rewrites every value. A rewritten value that could not be sent (CR, LF, NUL) drops the header.
    pub fn map_values(&mut self, mut f: impl FnMut(&str) -> String) {
        let old = std::mem::take(&mut self.0);
        for (n, v) in old {
            let _ = self.try_insert(&n, f(&v));
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

impl<N: AsRef<str>, V: Into<String>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut h = Headers::new();
        for (n, v) in iter {
            h.insert(n.as_ref(), v);
        }
        h
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Options,
    Other,
}

impl Method {
    pub fn parse(s: &str) -> Self {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Options => "OPTIONS",
            Method::Other => "OTHER",
        }
    }
}

/// An inbound request, body fully read (chat requests are small and must be parsed whole).
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// Path without the query string.
    pub path: String,
    pub headers: Headers,
    pub body: Vec<u8>,
    /// Where the runtime says the caller is.
    pub location: Location,
}

pub enum Body {
    Empty,
    Bytes(Vec<u8>),
    Stream(ByteStream),
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Body::Stream(_) => f.write_str("Stream"),
        }
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Headers,
    pub body: Body,
}

impl Response {
    pub fn json(status: u16, body: Vec<u8>) -> Self {
        let mut headers = Headers::new();
        headers.insert("content-type", "application/json");
        Response {
            status,
            headers,
            body: Body::Bytes(body),
        }
    }

    pub fn event_stream(stream: ByteStream) -> Self {
        let mut headers = Headers::new();
        headers.insert("content-type", "text/event-stream; charset=utf-8");
        headers.insert("cache-control", "no-cache");
        Response {
            status: 200,
            headers,
            body: Body::Stream(stream),
        }
    }
}

/// Where the caller is, as the edge runtime reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Location {
    /// The edge data centre (IATA code), e.g. "FRA".
    pub colo: Option<String>,
    pub lat_lon: Option<(f64, f64)>,
}
