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
    Delete,
    Options,
    Other,
}

impl Method {
    pub fn parse(s: &str) -> Self {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Delete => "DELETE",
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
    /// The query string without its `?` (empty when there is none); only the admin endpoints read one.
    pub query: String,
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

impl Location {
    /// From `request.cf`'s colo, latitude and longitude as text, checked: any client can reach a worker without
    /// `cf` (local runtimes, some test setups), and a colo becomes part of a KV key.
    pub fn from_fields(colo: &str, lat: &str, lon: &str) -> Location {
        let number = |s: &str| s.trim().parse::<f64>().ok().filter(|x| x.is_finite());
        Location {
            colo: Some(colo)
                .filter(|c| {
                    !c.is_empty() && c.len() <= 8 && c.bytes().all(|b| b.is_ascii_alphanumeric())
                })
                .map(str::to_owned),
            lat_lon: match (number(lat), number(lon)) {
                (Some(a), Some(b)) if a.abs() <= 90.0 && b.abs() <= 180.0 => Some((a, b)),
                _ => None,
            },
        }
    }
}

/// The query string of a URL, without `?` and fragment (empty when there is none).
pub fn query_of(url: &str) -> &str {
    let Some((_, q)) = url.split_once('?') else {
        return "";
    };
    q.split('#').next().unwrap_or("")
}

/// The path of an absolute URL without its query string or fragment (the runtime hands over absolute URLs; a
/// URL parser would do more work for the same answer).
pub fn path_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[after_scheme..];
    match rest.find(['/', '?', '#']) {
        Some(i) if rest.as_bytes()[i] == b'/' => rest[i..].split(['?', '#']).next().unwrap_or("/"),
        _ => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_of_drops_scheme_host_query_and_fragment() {
        assert_eq!(
            path_of("https://gw.example/v1/chat/completions?x=1"),
            "/v1/chat/completions"
        );
        assert_eq!(path_of("http://127.0.0.1:8787/healthz#top"), "/healthz");
        assert_eq!(path_of("https://gw.example"), "/");
        assert_eq!(path_of("https://gw.example?x=/y"), "/");
        assert_eq!(path_of("https://gw.example/"), "/");
    }

    #[test]
    fn location_fields_are_checked() {
        let l = Location::from_fields("FRA", "50.1", "8.7");
        assert_eq!(l.colo.as_deref(), Some("FRA"));
        assert_eq!(l.lat_lon, Some((50.1, 8.7)));
        let bad = Location::from_fields("FRA/../x", "NaN", "200");
        assert_eq!(bad, Location::default());
        assert_eq!(Location::from_fields("", "91", "0").lat_lon, None);
        assert_eq!(Location::from_fields("LHR", "", "").lat_lon, None);
    }
}
