//! The header choke point (src/http.rs): whatever bytes a header is built from, it is refused or it survives the
//! glue's line encoding unchanged, so no value can add or split headers.

use meridian::http::Headers;
use proptest::prelude::*;

fn any_text() -> impl Strategy<Value = String> {
    // Characters of every kind, weighted towards the ones that could split a header line.
    let ch = prop_oneof![
        3 => any::<char>(),
        1 => Just('\n'),
        1 => Just('\r'),
        1 => Just('\0'),
        1 => Just(' '),
        1 => Just(':'),
        2 => Just('a'),
    ];
    proptest::collection::vec(ch, 0..12).prop_map(|v| v.into_iter().collect())
}

proptest! {
    #[test]
    fn headers_round_trip_or_are_refused(pairs in proptest::collection::vec((any_text(), any_text()), 0..6)) {
        let mut h = Headers::new();
        let mut kept = Vec::new();
        for (n, v) in &pairs {
            if h.try_insert(n, v.clone()).is_ok() {
                prop_assert!(!v.contains(['\r', '\n', '\0']) && !n.contains(['\r', '\n', '\0', ' ', ':']));
                kept.push((n.to_ascii_lowercase(), v.clone()));
            }
        }
        let encoded = h.encode_lines();
        let decoded = Headers::decode_lines(encoded.split('\n'));
        prop_assert_eq!(&decoded, &h);
        let got: Vec<(String, String)> = decoded.iter().map(|(n, v)| (n.to_owned(), v.to_owned())).collect();
        prop_assert_eq!(got, kept);
    }
}

#[test]
fn the_reported_injection_is_refused() {
    let mut h = Headers::new();
    assert!(h
        .try_insert(
            "x-meridian-deployment",
            "mock-us-east/a\nset-cookie\nsid=attacker; Path=/"
        )
        .is_err());
    assert!(h.try_insert("bad name", "x").is_err());
    assert!(h.try_insert("x", "a\0b").is_err());
    h.insert("x-meridian-deployment", "a\r\nset-cookie: x");
    assert_eq!(h.iter().count(), 0);
}
