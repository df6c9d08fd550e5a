//! AWS event-stream (`application/vnd.amazon.eventstream`) frame encoding.
//!
//! A frame is: total length (u32 BE), headers length (u32 BE), prelude CRC
//! (CRC32 of the first 8 bytes, u32 BE), headers, payload, message CRC
//! (CRC32 of everything before it, u32 BE). A header is: name length (u8),
//! name, value type (u8; 7 = string), value length (u16 BE), value.

/// CRC-32 (IEEE 802.3 / zlib: reflected polynomial 0xEDB88320, initial
/// value and final XOR 0xFFFFFFFF) lookup table.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    c ^ 0xFFFF_FFFF
}

const STRING_TYPE: u8 = 7;

/// One `:message-type: event` frame with `:event-type: <event_type>`,
/// `:content-type: application/json` and the given payload.
pub(crate) fn event_frame(event_type: &str, payload: &[u8]) -> Vec<u8> {
    let headers: [(&str, &str); 3] = [
        (":event-type", event_type),
        (":content-type", "application/json"),
        (":message-type", "event"),
    ];
    let headers_len: usize = headers
        .iter()
        .map(|(n, v)| 1 + n.len() + 1 + 2 + v.len())
        .sum();
    let total = 12 + headers_len + payload.len() + 4;
    let mut buf = Vec::with_capacity(total);
    buf.extend_from_slice(&(total as u32).to_be_bytes());
    buf.extend_from_slice(&(headers_len as u32).to_be_bytes());
    let prelude_crc = crc32(&buf);
    buf.extend_from_slice(&prelude_crc.to_be_bytes());
    for (name, value) in headers {
        buf.push(name.len() as u8);
        buf.extend_from_slice(name.as_bytes());
        buf.push(STRING_TYPE);
        buf.extend_from_slice(&(value.len() as u16).to_be_bytes());
        buf.extend_from_slice(value.as_bytes());
    }
    buf.extend_from_slice(payload);
    let message_crc = crc32(&buf);
    buf.extend_from_slice(&message_crc.to_be_bytes());
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_values() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }

    #[test]
    fn frame_layout() {
        let f = event_frame("messageStop", br#"{"stopReason":"end_turn"}"#);
        let total = u32::from_be_bytes(f[0..4].try_into().unwrap()) as usize;
        let hlen = u32::from_be_bytes(f[4..8].try_into().unwrap()) as usize;
        assert_eq!(total, f.len());
        assert_eq!(
            u32::from_be_bytes(f[8..12].try_into().unwrap()),
            crc32(&f[..8])
        );
        assert_eq!(
            u32::from_be_bytes(f[total - 4..].try_into().unwrap()),
            crc32(&f[..total - 4])
        );
        assert_eq!(&f[12 + hlen..total - 4], br#"{"stopReason":"end_turn"}"#);
        assert_eq!(f[12], 11);
        assert_eq!(&f[13..24], b":event-type");
        assert_eq!(f[24], 7);
    }
}
