//! Compact JSON text: no spaces, keys in the map's order, only the escapes JSON requires.

use super::value::{Map, Number, Value, N};

/// What can be written: a value, or an object by itself.
pub trait Text {
    fn write(&self, out: &mut Vec<u8>);
}

impl Text for Value {
    fn write(&self, out: &mut Vec<u8>) {
        write_value(self, out);
    }
}

impl Text for Map {
    fn write(&self, out: &mut Vec<u8>) {
        object::<false>(self, out);
    }
}

pub fn to_vec<T: Text + ?Sized>(v: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    v.write(&mut out);
    out
}

pub fn to_string<T: Text + ?Sized>(v: &T) -> String {
    // Everything written is UTF-8: strings are copied whole or escaped to ASCII.
    String::from_utf8(to_vec(v)).unwrap_or_default()
}

/// The text of `v` with every object's keys in byte order: one text per value whatever order its keys were
/// given in (for hashing).
pub fn to_string_sorted(v: &Value) -> String {
    let mut out = Vec::with_capacity(256);
    value::<true>(v, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends the text of `v` to `out`.
pub fn write_value(v: &Value, out: &mut Vec<u8>) {
    value::<false>(v, out);
}

fn value<const SORTED: bool>(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => number(n, out),
        Value::String(s) => string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                value::<SORTED>(item, out);
            }
            out.push(b']');
        }
        Value::Object(m) => object::<SORTED>(m, out),
    }
}

fn object<const SORTED: bool>(m: &Map, out: &mut Vec<u8>) {
    out.push(b'{');
    let mut member = |i: usize, (k, v): (&String, &Value)| {
        if i > 0 {
            out.push(b',');
        }
        string(k, out);
        out.push(b':');
        value::<SORTED>(v, out);
    };
    if SORTED {
        let entries: Vec<(&String, &Value)> = m.iter().collect();
        let mut order: Vec<u32> = (0..entries.len() as u32).collect();
        super::parse::heap_sort(&mut order, |a, b| {
            entries[a as usize].0 < entries[b as usize].0
        });
        for (i, &at) in order.iter().enumerate() {
            member(i, entries[at as usize]);
        }
    } else {
        for (i, kv) in m.iter().enumerate() {
            member(i, kv);
        }
    }
    out.push(b'}');
}

fn number(n: &Number, out: &mut Vec<u8>) {
    match &n.0 {
        N::U(u) => unsigned(*u, out),
        N::I(i) => {
            if *i < 0 {
                out.push(b'-');
            }
            unsigned(i.unsigned_abs(), out);
        }
        // The shortest text that reads back as the same number.
        N::F(f) => out.extend_from_slice(zmij::Buffer::new().format(*f).as_bytes()),
        N::Text(_, text) => out.extend_from_slice(text.as_bytes()),
    }
}

fn unsigned(mut u: u64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let escape: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(c >> 4) as usize],
                HEX[(c & 15) as usize],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}
