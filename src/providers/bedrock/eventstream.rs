//! Incremental decoder for AWS event streams (`application/vnd.amazon.eventstream`), the binary framing of
//! Bedrock's streaming responses.
//!
//! A message is: total length (u32 BE), headers length (u32 BE), CRC32 of those 8 bytes, headers, payload, and a
//! CRC32 of everything before it. Network chunks split messages anywhere, so the decoder buffers partial frames.

use core::fmt;

/// Length of total length + headers length + prelude CRC.
const PRELUDE_LEN: usize = 12;
/// Prelude plus the trailing message CRC: the smallest possible message.
const MIN_MESSAGE_LEN: usize = PRELUDE_LEN + 4;
/// The format's limits; a frame claiming more is corrupt, and buffering it would let one frame exhaust memory.
const MAX_MESSAGE_LEN: usize = 16 * 1024 * 1024;
const MAX_HEADERS_LEN: usize = 128 * 1024;

/// A malformed or corrupted event stream. The stream cannot be resynchronized after one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid event stream: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

/// A header value; the numbers are the wire type tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    /// Types 0 (true) and 1 (false), which carry no value bytes.
    Bool(bool),
    /// Type 2.
    Byte(i8),
    /// Type 3.
    Short(i16),
    /// Type 4.
    Int(i32),
    /// Type 5.
    Long(i64),
    /// Type 6.
    Bytes(Vec<u8>),
    /// Type 7.
    String(String),
    /// Type 8: milliseconds since the Unix epoch.
    Timestamp(i64),
    /// Type 9.
    Uuid([u8; 16]),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub headers: Vec<(String, HeaderValue)>,
    pub payload: Vec<u8>,
}

impl Message {
    /// The value of the first string header called `name`.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|(n, v)| match v {
            HeaderValue::String(s) if n == name => Some(s.as_str()),
            _ => None,
        })
    }
}

/// Turns arbitrarily split chunks of an event stream into whole messages.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Set once the stream is corrupt: framing is lost, so every later push fails the same way.
    failed: Option<DecodeError>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Buffers `bytes` and returns every message they complete, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Message>, DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.buf.extend_from_slice(bytes);
        let mut messages = Vec::new();
        let mut start = 0;
        let result = loop {
            match next_frame(&self.buf[start..]) {
                Ok(Some((message, used))) => {
                    messages.push(message);
                    start += used;
                }
                Ok(None) => break Ok(messages),
                Err(e) => break Err(e),
            }
        };
        // One drain per push rather than per message keeps many small frames in one chunk linear.
        self.buf.drain(..start);
        if let Err(e) = &result {
            self.buf.clear();
            self.failed = Some(e.clone());
        }
        result
    }

    /// True when no partial message is buffered, i.e. the stream may legitimately end here (never after an error).
    pub fn is_idle(&self) -> bool {
        self.buf.is_empty() && self.failed.is_none()
    }
}

/// Decodes the message at the start of `buf`: `None` if more bytes are needed, else the message and its length.
/// The prelude is checked as soon as it is complete, so a corrupt length is rejected before anything is buffered
/// on its account.
fn next_frame(buf: &[u8]) -> Result<Option<(Message, usize)>, DecodeError> {
    let Some(prelude) = buf.get(..PRELUDE_LEN) else {
        return Ok(None);
    };
    let total_len = be_u32(&prelude[0..4]);
    let headers_len = be_u32(&prelude[4..8]);
    let prelude_crc = be_u32(&prelude[8..12]);
    let computed = crc32(&prelude[..8]);
    if computed != prelude_crc {
        return Err(DecodeError(format!(
            "prelude checksum mismatch (frame says {prelude_crc:#010x}, computed {computed:#010x})"
        )));
    }
    let (total_len, headers_len) = frame_lengths(total_len, headers_len)?;
    let Some(frame) = buf.get(..total_len) else {
        return Ok(None);
    };
    let (body, crc_bytes) = frame.split_at(total_len - 4);
    let message_crc = be_u32(crc_bytes);
    let computed = crc32(body);
    if computed != message_crc {
        return Err(DecodeError(format!(
            "message checksum mismatch (frame says {message_crc:#010x}, computed {computed:#010x})"
        )));
    }
    let (header_bytes, payload) = body[PRELUDE_LEN..].split_at(headers_len);
    let message = Message {
        headers: parse_headers(header_bytes)?,
        payload: payload.to_vec(),
    };
    Ok(Some((message, total_len)))
}

/// Validates the prelude's lengths against the format's bounds and each other.
fn frame_lengths(total_len: u32, headers_len: u32) -> Result<(usize, usize), DecodeError> {
    let total = usize::try_from(total_len).unwrap_or(usize::MAX);
    let headers = usize::try_from(headers_len).unwrap_or(usize::MAX);
    if total < MIN_MESSAGE_LEN {
        return Err(DecodeError(format!(
            "message length {total} is below the minimum of {MIN_MESSAGE_LEN}"
        )));
    }
    if total > MAX_MESSAGE_LEN {
        return Err(DecodeError(format!(
            "message length {total} exceeds the maximum of {MAX_MESSAGE_LEN}"
        )));
    }
    if headers > MAX_HEADERS_LEN || headers > total - MIN_MESSAGE_LEN {
        return Err(DecodeError(format!(
            "headers length {headers} does not fit a message of {total} bytes"
        )));
    }
    Ok((total, headers))
}

/// Reads big-endian integers and byte runs off a slice, failing instead of reading past its end.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.bytes.len() {
            return Err(DecodeError(format!(
                "header runs past the end of the headers section ({n} bytes wanted, {} left)",
                self.bytes.len()
            )));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16_len_prefixed(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = u16::from_be_bytes(self.array()?);
        self.take(usize::from(len))
    }
}

fn parse_headers(bytes: &[u8]) -> Result<Vec<(String, HeaderValue)>, DecodeError> {
    let mut reader = Reader { bytes };
    let mut headers = Vec::new();
    while !reader.bytes.is_empty() {
        let name_len = reader.u8()?;
        let name = utf8(reader.take(usize::from(name_len))?, "header name")?;
        let value = header_value(&mut reader, &name)?;
        headers.push((name, value));
    }
    Ok(headers)
}

fn header_value(reader: &mut Reader<'_>, name: &str) -> Result<HeaderValue, DecodeError> {
    Ok(match reader.u8()? {
        0 => HeaderValue::Bool(true),
        1 => HeaderValue::Bool(false),
        2 => HeaderValue::Byte(i8::from_be_bytes(reader.array()?)),
        3 => HeaderValue::Short(i16::from_be_bytes(reader.array()?)),
        4 => HeaderValue::Int(i32::from_be_bytes(reader.array()?)),
        5 => HeaderValue::Long(i64::from_be_bytes(reader.array()?)),
        6 => HeaderValue::Bytes(reader.u16_len_prefixed()?.to_vec()),
        7 => HeaderValue::String(utf8(reader.u16_len_prefixed()?, name)?),
        8 => HeaderValue::Timestamp(i64::from_be_bytes(reader.array()?)),
        9 => HeaderValue::Uuid(reader.array()?),
        other => {
            return Err(DecodeError(format!(
                "header {name:?} has unknown value type {other}"
            )))
        }
    })
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, DecodeError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| DecodeError(format!("{what:?} is not valid UTF-8")))
}

/// Encodes one message with string headers. Names longer than 255 bytes and values longer than 65535 bytes are
/// truncated: the format cannot carry them (event streams are decoded here; this serves tests and fixtures).
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut header_bytes = Vec::new();
    for (name, value) in headers {
        let name = &name.as_bytes()[..name.len().min(usize::from(u8::MAX))];
        let value = &value.as_bytes()[..value.len().min(usize::from(u16::MAX))];
        header_bytes.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        header_bytes.extend_from_slice(name);
        header_bytes.push(7);
        header_bytes
            .extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_be_bytes());
        header_bytes.extend_from_slice(value);
    }
    let total = MIN_MESSAGE_LEN + header_bytes.len() + payload.len();
    let mut out = Vec::with_capacity(total);
    // Lengths beyond u32 cannot be framed at all; saturating yields a frame every decoder rejects.
    out.extend_from_slice(&u32::try_from(total).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(
        &u32::try_from(header_bytes.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(&crc32(&out).to_be_bytes());
    out.extend_from_slice(&header_bytes);
    out.extend_from_slice(payload);
    out.extend_from_slice(&crc32(&out).to_be_bytes());
    out
}

fn be_u32(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(word)
}

/// CRC-32 as in zlib, gzip and PNG (reflected polynomial 0xEDB88320), which event streams use.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc = CRC_TABLE[usize::from((crc as u8) ^ b)] ^ (crc >> 8);
    }
    !crc
}

static CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    //! Wire vectors are AWS's event-stream codec test vectors, `packages/eventstream-codec/src/TestVectors.fixture.ts`
    //! in aws/aws-sdk-js-v3 (the same cases as aws-c-event-stream's and smithy-rs's test data).

    use super::*;

    const FOO_BAR: &[u8] = b"{'foo':'bar'}";

    const EMPTY_MESSAGE: [u8; 16] = [0, 0, 0, 16, 0, 0, 0, 0, 5, 194, 72, 235, 125, 152, 200, 255];

    const PAYLOAD_NO_HEADERS: [u8; 29] = [
        0, 0, 0, 29, 0, 0, 0, 0, 253, 82, 140, 90, 123, 39, 102, 111, 111, 39, 58, 39, 98, 97, 114,
        39, 125, 195, 101, 57, 54,
    ];

    const PAYLOAD_ONE_STR_HEADER: [u8; 61] = [
        0, 0, 0, 61, 0, 0, 0, 32, 7, 253, 131, 150, 12, 99, 111, 110, 116, 101, 110, 116, 45, 116,
        121, 112, 101, 7, 0, 16, 97, 112, 112, 108, 105, 99, 97, 116, 105, 111, 110, 47, 106, 115,
        111, 110, 123, 39, 102, 111, 111, 39, 58, 39, 98, 97, 114, 39, 125, 141, 156, 8, 177,
    ];

    const INT32_HEADER: [u8; 45] = [
        0, 0, 0, 45, 0, 0, 0, 16, 65, 196, 36, 184, 10, 101, 118, 101, 110, 116, 45, 116, 121, 112,
        101, 4, 0, 0, 160, 12, 123, 39, 102, 111, 111, 39, 58, 39, 98, 97, 114, 39, 125, 54, 244,
        128, 160,
    ];

    const ALL_HEADERS: [u8; 204] = [
        0, 0, 0, 204, 0, 0, 0, 175, 15, 174, 100, 202, 10, 101, 118, 101, 110, 116, 45, 116, 121,
        112, 101, 4, 0, 0, 160, 12, 12, 99, 111, 110, 116, 101, 110, 116, 45, 116, 121, 112, 101,
        7, 0, 16, 97, 112, 112, 108, 105, 99, 97, 116, 105, 111, 110, 47, 106, 115, 111, 110, 10,
        98, 111, 111, 108, 32, 102, 97, 108, 115, 101, 1, 9, 98, 111, 111, 108, 32, 116, 114, 117,
        101, 0, 4, 98, 121, 116, 101, 2, 207, 8, 98, 121, 116, 101, 32, 98, 117, 102, 6, 0, 20, 73,
        39, 109, 32, 97, 32, 108, 105, 116, 116, 108, 101, 32, 116, 101, 97, 112, 111, 116, 33, 9,
        116, 105, 109, 101, 115, 116, 97, 109, 112, 8, 0, 0, 0, 0, 0, 132, 95, 237, 5, 105, 110,
        116, 49, 54, 3, 0, 42, 5, 105, 110, 116, 54, 52, 5, 0, 0, 0, 0, 2, 135, 87, 178, 4, 117,
        117, 105, 100, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 123, 39, 102, 111,
        111, 39, 58, 39, 98, 97, 114, 39, 125, 171, 165, 241, 12,
    ];

    fn decode_all(bytes: &[u8]) -> Result<Vec<Message>, DecodeError> {
        let mut decoder = Decoder::new();
        let messages = decoder.push(bytes)?;
        assert!(decoder.is_idle());
        Ok(messages)
    }

    fn one(bytes: &[u8]) -> Message {
        let mut messages = decode_all(bytes).unwrap();
        assert_eq!(messages.len(), 1);
        messages.remove(0)
    }

    #[test]
    fn crc32_check_value() {
        // The standard CRC-32 check value, and the published empty message's prelude CRC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(&EMPTY_MESSAGE[..8]), 0x05C2_48EB);
    }

    #[test]
    fn decodes_published_vectors() {
        assert_eq!(
            one(&EMPTY_MESSAGE),
            Message {
                headers: vec![],
                payload: vec![]
            }
        );
        assert_eq!(
            one(&PAYLOAD_NO_HEADERS),
            Message {
                headers: vec![],
                payload: FOO_BAR.to_vec()
            }
        );
        let m = one(&PAYLOAD_ONE_STR_HEADER);
        assert_eq!(m.header_str("content-type"), Some("application/json"));
        assert_eq!(m.payload, FOO_BAR);
        assert_eq!(
            one(&INT32_HEADER).headers,
            vec![("event-type".to_owned(), HeaderValue::Int(40972))]
        );
    }

    #[test]
    fn decodes_every_header_type() {
        let m = one(&ALL_HEADERS);
        let expected: Vec<(String, HeaderValue)> = vec![
            ("event-type".into(), HeaderValue::Int(40972)),
            (
                "content-type".into(),
                HeaderValue::String("application/json".into()),
            ),
            ("bool false".into(), HeaderValue::Bool(false)),
            ("bool true".into(), HeaderValue::Bool(true)),
            ("byte".into(), HeaderValue::Byte(-49)),
            (
                "byte buf".into(),
                HeaderValue::Bytes(b"I'm a little teapot!".to_vec()),
            ),
            ("timestamp".into(), HeaderValue::Timestamp(8_675_309)),
            ("int16".into(), HeaderValue::Short(42)),
            ("int64".into(), HeaderValue::Long(42_424_242)),
            (
                "uuid".into(),
                HeaderValue::Uuid([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]),
            ),
        ];
        assert_eq!(m.headers, expected);
        assert_eq!(m.payload, FOO_BAR);
        // Only string headers answer `header_str`.
        assert_eq!(m.header_str("event-type"), None);
    }

    #[test]
    fn encode_reproduces_published_vectors() {
        assert_eq!(encode(&[], b""), EMPTY_MESSAGE);
        assert_eq!(encode(&[], FOO_BAR), PAYLOAD_NO_HEADERS);
        assert_eq!(
            encode(&[("content-type", "application/json")], FOO_BAR),
            PAYLOAD_ONE_STR_HEADER
        );
    }

    #[test]
    fn rejects_published_corrupted_vectors() {
        // corrupted_length, corrupted_header_len: the prelude no longer matches its CRC.
        let mut corrupted_length = PAYLOAD_ONE_STR_HEADER;
        corrupted_length[3] = 62;
        let mut corrupted_header_len = PAYLOAD_ONE_STR_HEADER;
        corrupted_header_len[7] = 33;
        // corrupted_headers, corrupted_payload: the body no longer matches the message CRC.
        let mut corrupted_headers = PAYLOAD_ONE_STR_HEADER;
        corrupted_headers[45] = 97;
        let mut corrupted_payload = PAYLOAD_NO_HEADERS;
        corrupted_payload[12] = 91;
        for (bytes, why) in [
            (&corrupted_length[..], "prelude checksum"),
            (&corrupted_header_len[..], "prelude checksum"),
            (&corrupted_headers[..], "message checksum"),
            (&corrupted_payload[..], "message checksum"),
        ] {
            let e = decode_all(bytes).unwrap_err();
            assert!(e.0.contains(why), "{e}");
        }
    }

    /// String headers and a payload, as `encode` takes them.
    type Parts<'a> = (&'a [(&'a str, &'a str)], &'a [u8]);

    #[test]
    fn round_trips() {
        let cases: [Parts<'_>; 3] = [
            (&[], b""),
            (
                &[(":event-type", "chunk"), (":message-type", "event")],
                b"{}",
            ),
            (&[("ünïcode", "välue"), ("empty", "")], &[0, 255, 1, 254]),
        ];
        for (headers, payload) in cases {
            let m = one(&encode(headers, payload));
            let expected: Vec<(String, HeaderValue)> = headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), HeaderValue::String((*v).to_owned())))
                .collect();
            assert_eq!(m.headers, expected);
            assert_eq!(m.payload, payload);
        }
    }

    #[test]
    fn decodes_frames_split_at_every_boundary() {
        let mut stream = encode(&[(":event-type", "a")], b"first");
        stream.extend_from_slice(&ALL_HEADERS);
        stream.extend_from_slice(&encode(&[], b""));
        let expected = decode_all(&stream).unwrap();
        assert_eq!(expected.len(), 3);
        for cut in 0..=stream.len() {
            let mut decoder = Decoder::new();
            let mut got = decoder.push(&stream[..cut]).unwrap();
            got.extend(decoder.push(&stream[cut..]).unwrap());
            assert_eq!(got, expected, "split at {cut}");
            assert!(decoder.is_idle());
        }
    }

    #[test]
    fn decodes_byte_by_byte() {
        let mut decoder = Decoder::new();
        let mut got = Vec::new();
        for (i, b) in ALL_HEADERS.iter().enumerate() {
            got.extend(decoder.push(&[*b]).unwrap());
            assert_eq!(decoder.is_idle(), i + 1 == ALL_HEADERS.len());
        }
        assert_eq!(got, vec![one(&ALL_HEADERS)]);
    }

    /// A frame with a valid prelude CRC for the given lengths, and no body.
    fn prelude(total_len: u32, headers_len: u32) -> Vec<u8> {
        let mut out = total_len.to_be_bytes().to_vec();
        out.extend_from_slice(&headers_len.to_be_bytes());
        out.extend_from_slice(&crc32(&out).to_be_bytes());
        out
    }

    #[test]
    fn rejects_impossible_lengths_from_the_prelude_alone() {
        for (total, headers, why) in [
            (15, 0, "below the minimum"),
            (0, 0, "below the minimum"),
            (16 * 1024 * 1024 + 1, 0, "exceeds the maximum"),
            (u32::MAX, 0, "exceeds the maximum"),
            (100, 85, "does not fit"),
            (1000, u32::MAX, "does not fit"),
            (1_000_000, 200_000, "does not fit"),
        ] {
            let e = Decoder::new().push(&prelude(total, headers)).unwrap_err();
            assert!(e.0.contains(why), "{total}/{headers}: {e}");
        }
        // The largest legal frame only waits for more bytes.
        let mut decoder = Decoder::new();
        assert!(decoder
            .push(&prelude(16 * 1024 * 1024, 0))
            .unwrap()
            .is_empty());
        assert!(!decoder.is_idle());
    }

    #[test]
    fn rejects_malformed_headers_with_valid_checksums() {
        // Each body is framed with correct CRCs, so only header parsing can catch it.
        let frame = |headers: &[u8]| {
            let mut out = prelude(
                u32::try_from(MIN_MESSAGE_LEN + headers.len()).unwrap(),
                u32::try_from(headers.len()).unwrap(),
            );
            out.extend_from_slice(headers);
            out.extend_from_slice(&crc32(&out).to_be_bytes());
            out
        };
        for (headers, why) in [
            (&b"\x01a\x0a"[..], "unknown value type 10"),
            (&b"\x05ab"[..], "runs past"),
            (&b"\x01a\x07\x00\x05abc"[..], "runs past"),
            (&b"\x01a\x04\x00\x00"[..], "runs past"),
            (&b"\x01a\x07\x00\x01\xff"[..], "not valid UTF-8"),
            (&b"\x01\xff\x00"[..], "not valid UTF-8"),
        ] {
            let e = Decoder::new().push(&frame(headers)).unwrap_err();
            assert!(e.0.contains(why), "{headers:?}: {e}");
        }
    }

    #[test]
    fn stays_failed_after_corruption() {
        let mut decoder = Decoder::new();
        let mut bad = EMPTY_MESSAGE;
        bad[15] ^= 1;
        assert!(decoder.push(&bad).is_err());
        assert!(decoder.push(&EMPTY_MESSAGE).is_err());
        assert!(!decoder.is_idle());
    }
}
