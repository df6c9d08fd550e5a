//! A tiny raw-TCP HTTP/1.1 client that records when each SSE event arrives.
#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use meridian_mock::{MockConfig, RunningMock};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// One SSE event (`data:` payload) and when it arrived.
#[derive(Debug, Clone)]
pub struct Event {
    /// Since the request was written.
    pub at: Duration,
    /// Index of the socket read that completed this event.
    pub read_no: usize,
    /// The `event:` field, if any.
    pub name: Option<String>,
    pub data: String,
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    /// Lowercased names.
    pub headers: Vec<(String, String)>,
    /// Decoded body (de-chunked).
    pub body: Vec<u8>,
    /// True when the framing finished properly (terminal chunk seen or the
    /// whole content-length received, or EOF for close-delimited bodies).
    pub complete: bool,
    /// Time from writing the request to receiving the full head.
    pub head_at: Duration,
    /// SSE events; blank lines may be `\n\n` or `\r\n\r\n`.
    pub events: Vec<Event>,
    /// After each socket read that carried body bytes: (time since the
    /// request was written, decoded body length so far).
    pub marks: Vec<(Duration, usize)>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// The `data:` payloads parsed as JSON, skipping `[DONE]`.
    pub fn event_json(&self) -> Vec<Value> {
        self.events
            .iter()
            .filter(|e| e.data != "[DONE]")
            .map(|e| serde_json::from_str(&e.data).unwrap_or_else(|_| panic!("bad event {e:?}")))
            .collect()
    }

    /// Content events (chunks whose delta has a non-empty `content` and no role).
    pub fn content_events(&self) -> Vec<(Event, String)> {
        self.events
            .iter()
            .filter_map(|e| {
                let v: Value = serde_json::from_str(&e.data).ok()?;
                let delta = v.get("choices")?.get(0)?.get("delta")?;
                if delta.get("role").is_some() {
                    return None;
                }
                let c = delta.get("content")?.as_str()?;
                Some((e.clone(), c.to_string()))
            })
            .collect()
    }
}

enum Framing {
    Chunked,
    Length(usize),
    UntilEof,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The first SSE event boundary: (offset, length of the blank-line marker).
fn event_end(hay: &[u8]) -> Option<(usize, usize)> {
    let lf = find(hay, b"\n\n").map(|p| (p, 2));
    let crlf = find(hay, b"\r\n\r\n").map(|p| (p, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

struct Dechunker {
    raw: Vec<u8>,
    done: bool,
}

impl Dechunker {
    /// Moves every complete chunk from `raw` to `out`.
    fn feed(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        loop {
            if self.done {
                return Ok(());
            }
            let Some(line_end) = find(&self.raw, b"\r\n") else {
                return Ok(());
            };
            let line = std::str::from_utf8(&self.raw[..line_end])
                .map_err(|_| io::Error::other("bad chunk size line"))?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| io::Error::other(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                self.done = true;
                return Ok(());
            }
            let need = line_end + 2 + size + 2;
            if self.raw.len() < need {
                return Ok(());
            }
            out.extend_from_slice(&self.raw[line_end + 2..line_end + 2 + size]);
            self.raw.drain(..need);
        }
    }
}

/// Sends one request on `stream` and reads the response until its framing
/// completes (or EOF / a read error).
pub async fn request_on(
    stream: &mut TcpStream,
    method: &str,
    path: &str,
    body: Option<&str>,
    extra_headers: &[(&str, &str)],
) -> io::Result<Resp> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n");
    for (n, v) in extra_headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    let t0 = Instant::now();
    stream.write_all(req.as_bytes()).await?;

    let mut head_buf = Vec::new();
    let mut resp: Option<(Resp, Framing)> = None;
    let mut dechunker = Dechunker {
        raw: Vec::new(),
        done: false,
    };
    let mut scanned = 0usize;
    let mut buf = vec![0u8; 16 * 1024];
    let mut read_no = 0usize;
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(n) => n,
            Err(e) if resp.is_some() => {
                let _ = e;
                0
            }
            Err(e) => return Err(e),
        };
        let at = t0.elapsed();
        if n == 0 {
            let (mut r, framing) = resp
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no response head"))?;
            r.complete = matches!(framing, Framing::UntilEof);
            return Ok(r);
        }
        read_no += 1;
        let mut fresh = &buf[..n];
        if resp.is_none() {
            head_buf.extend_from_slice(fresh);
            let Some(end) = find(&head_buf, b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&head_buf[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or("");
            let status = status_line
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| io::Error::other(format!("bad status line {status_line:?}")))?;
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let get = |name: &str| {
                headers
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            };
            let framing = if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
                Framing::Chunked
            } else if let Some(len) = get("content-length").and_then(|v| v.parse().ok()) {
                Framing::Length(len)
            } else {
                Framing::UntilEof
            };
            let rest = head_buf[end + 4..].to_vec();
            resp = Some((
                Resp {
                    status,
                    headers,
                    body: Vec::new(),
                    complete: false,
                    head_at: at,
                    events: Vec::new(),
                    marks: Vec::new(),
                },
                framing,
            ));
            head_buf = rest;
            fresh = &head_buf;
        }
        let (r, framing) = resp.as_mut().expect("head parsed");
        match framing {
            Framing::Chunked => {
                dechunker.raw.extend_from_slice(fresh);
                dechunker.feed(&mut r.body)?;
            }
            _ => r.body.extend_from_slice(fresh),
        }
        if r.marks.last().map(|m| m.1) != Some(r.body.len()) {
            r.marks.push((at, r.body.len()));
        }
        // Collect complete SSE events.
        while let Some((pos, len)) = event_end(&r.body[scanned..]) {
            let ev = String::from_utf8_lossy(&r.body[scanned..scanned + pos]).into_owned();
            scanned += pos + len;
            let field = |name: &str| -> Vec<String> {
                ev.lines()
                    .filter_map(|l| l.strip_prefix(name))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d).to_string())
                    .collect()
            };
            let data = field("data:");
            if !data.is_empty() {
                r.events.push(Event {
                    at,
                    read_no,
                    name: field("event:").pop(),
                    data: data.join("\n"),
                });
            }
        }
        let finished = match framing {
            Framing::Chunked => dechunker.done,
            Framing::Length(len) => r.body.len() >= *len,
            Framing::UntilEof => false,
        };
        if finished {
            let (mut r, _) = resp.expect("head parsed");
            r.complete = true;
            return Ok(r);
        }
    }
}

/// Opens a fresh connection and sends one request.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    extra_headers: &[(&str, &str)],
) -> io::Result<Resp> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    request_on(&mut stream, method, path, body, extra_headers).await
}

/// Same as [`request`] with a generous safety timeout so a bug cannot hang
/// the test suite.
pub async fn send(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Resp {
    tokio::time::timeout(
        Duration::from_secs(20),
        request(addr, method, path, body, &[]),
    )
    .await
    .expect("request timed out")
    .expect("request failed")
}

/// [`request`] with extra headers and the safety timeout.
pub async fn post(
    mock: &RunningMock,
    region: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Resp {
    let addr = mock.region_addr(region).expect("region exists");
    tokio::time::timeout(
        Duration::from_secs(20),
        request(addr, "POST", path, Some(body), headers),
    )
    .await
    .expect("request timed out")
    .expect("request failed")
}

pub async fn chat(mock: &RunningMock, region: &str, body: &str) -> Resp {
    let addr = mock.region_addr(region).expect("region exists");
    send(addr, "POST", "/v1/chat/completions", Some(body)).await
}

pub fn user_body(text: &str, stream: bool) -> String {
    serde_json::json!({
        "model": "gpt-test",
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    })
    .to_string()
}

pub async fn control(mock: &RunningMock, method: &str, path: &str, body: Option<&str>) -> Resp {
    send(mock.control_addr(), method, path, body).await
}

pub async fn set_knobs(mock: &RunningMock, region: &str, knobs: Value) -> Value {
    let r = control(
        mock,
        "POST",
        &format!("/_mock/regions/{region}"),
        Some(&knobs.to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "set knobs failed: {}", r.text());
    r.json()
}

pub async fn start(json: &str) -> RunningMock {
    let config = MockConfig::from_json_str(json).expect("valid config");
    meridian_mock::start(config).await.expect("mock starts")
}
