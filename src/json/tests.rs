//! The parser and writer checked against serde_json (a dev-dependency only) on generated input.

use super::*;
use proptest::prelude::*;

fn to_serde(v: &Value) -> serde_json::Value {
    serde_json::from_slice(&to_vec(v)).unwrap()
}

/// Ours and serde_json's trees compared structurally (objects as key sets, numbers by their kind and value).
fn same(a: &Value, b: &serde_json::Value) -> bool {
    match (a, b) {
        (Value::Null, serde_json::Value::Null) => true,
        (Value::Bool(x), serde_json::Value::Bool(y)) => x == y,
        (Value::String(x), serde_json::Value::String(y)) => x == y,
        (Value::Number(x), serde_json::Value::Number(y)) => {
            x.as_u64() == y.as_u64()
                && x.as_i64() == y.as_i64()
                && x.as_f64().map(f64::to_bits) == y.as_f64().map(f64::to_bits)
        }
        (Value::Array(x), serde_json::Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), serde_json::Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => false,
    }
}

fn values() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(|u| json!(u)),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        "[\\x00-\\x1f\"\\\\/a\u{e9}\u{1f600}]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec(("[a-d]{0,2}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Text from JSON's own alphabet, so that most inputs get past the first byte.
fn jsonish() -> impl Strategy<Value = String> {
    "[\\[\\]{}\",: 0-9.eE+\\-truefalsn\\\\/u\u{e9}\\x01]{0,24}"
}

proptest! {
    #[test]
    fn written_values_read_back_the_same_here_and_in_serde_json(v in values()) {
        let text = to_vec(&v);
        prop_assert_eq!(from_slice(&text).unwrap(), v.clone());
        prop_assert!(same(&v, &serde_json::from_slice(&text).unwrap()));
        prop_assert!(validate(&text).is_ok());
    }

    #[test]
    fn serde_json_text_reads_the_same(v in values()) {
        let text = serde_json::to_vec_pretty(&to_serde(&v)).unwrap();
        prop_assert!(same(&from_slice(&text).unwrap(), &serde_json::from_slice(&text).unwrap()));
    }

    #[test]
    fn accepts_exactly_what_serde_json_accepts(s in jsonish()) {
        let theirs = serde_json::from_str::<serde_json::Value>(&s);
        let ours = from_str(&s);
        prop_assert_eq!(ours.is_ok(), theirs.is_ok(), "{:?}: ours {:?}", s, ours);
        prop_assert_eq!(validate(s.as_bytes()).is_ok(), theirs.is_ok());
        if let (Ok(a), Ok(b)) = (ours, theirs) {
            prop_assert!(same(&a, &b));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..64)) {
        let ours = from_slice(&b);
        prop_assert_eq!(ours.is_ok(), serde_json::from_slice::<serde_json::Value>(&b).is_ok());
    }
}

#[test]
fn numbers_keep_their_kind() {
    let v = from_str(r#"[0, -0, 7, -7, 18446744073709551615, 18446744073709551616, -9223372036854775809, 1.5, 1e2]"#)
        .unwrap();
    let a = v.as_array().unwrap();
    assert_eq!(a[0].as_u64(), Some(0));
    assert!(a[1].as_u64().is_none() && a[1].as_f64() == Some(0.0));
    assert_eq!(a[2].as_u64(), Some(7));
    assert_eq!((a[3].as_u64(), a[3].as_i64()), (None, Some(-7)));
    assert_eq!(a[4].as_u64(), Some(u64::MAX));
    assert_eq!(
        (a[5].as_u64(), a[5].as_f64()),
        (None, Some(18446744073709551616.0))
    );
    assert_eq!(a[6].as_f64(), Some(-9223372036854775809.0));
    assert_eq!((a[7].as_u64(), a[7].as_f64()), (None, Some(1.5)));
    assert_eq!(a[8].as_f64(), Some(100.0));
    // Written back as they came (a float would print `-0.0`, `1.8446744073709552e19`, `100.0`).
    assert_eq!(
        String::from_utf8(to_vec(&v)).unwrap(),
        "[0,-0,7,-7,18446744073709551615,18446744073709551616,-9223372036854775809,1.5,1e2]"
    );
    let long = "[123456789012345678901234567890,1.10,-0.0,2.5E-3]";
    assert_eq!(
        String::from_utf8(to_vec(&from_str(long).unwrap())).unwrap(),
        long
    );
}

#[test]
fn errors_say_what_and_where() {
    let e = |s: &str| from_str(s).unwrap_err().to_string();
    assert_eq!(e(""), "EOF while parsing a value at line 1 column 1");
    assert_eq!(e("{\"a\":1,}"), "trailing comma at line 1 column 8");
    assert_eq!(e("[1,\n 2 x]"), "expected `,` or `]` at line 2 column 4");
    assert_eq!(e("1e400"), "number out of range at line 1 column 6");
    assert_eq!(
        e("\"\\ud800\""),
        "lone leading surrogate in hex escape at line 1 column 8"
    );
    assert_eq!(e("{} {}"), "trailing characters at line 1 column 4");
    assert_eq!(
        e(&"[".repeat(129)),
        "recursion limit exceeded at line 1 column 129"
    );
    assert!(from_str(&("[".repeat(128) + &"]".repeat(128))).is_ok());
}

#[test]
fn a_repeated_key_keeps_its_last_value_or_is_rejected() {
    for n in [3, 40, 200] {
        let mut text = String::from("{");
        for i in 0..n {
            text.push_str(&format!("\"k{}\":{i},", i % (n - 1)));
        }
        text.push_str("\"end\":true}");
        let v = from_str(&text).unwrap();
        let m = v.as_object().unwrap();
        assert_eq!(m.len(), n);
        assert_eq!(v["k0"].as_u64(), Some(n as u64 - 1), "{n} keys");
        assert_eq!(v["k1"].as_u64(), Some(1));
        assert!(from_slice_unique(text.as_bytes()).is_err());
        let distinct = text.replacen("\"k0\":0,", "", 1);
        assert!(from_slice_unique(distinct.as_bytes()).is_ok());
    }
}

#[test]
fn objects_keep_insertion_order_and_compare_as_sets() {
    let a = json!({"b": 1, "a": [true, null, {"c": "x"}]});
    assert_eq!(to_string(&a), r#"{"b":1,"a":[true,null,{"c":"x"}]}"#);
    assert_eq!(a, from_str(r#"{"a":[true,null,{"c":"x"}],"b":1}"#).unwrap());
    assert_ne!(a, json!({"b": 1}));
}

#[test]
fn sorted_text_is_independent_of_key_order() {
    let a = json!({"b": {"z": 1, "y": [{"d": 1, "c": 2}]}, "a": null, "é": 0, "Z": 0});
    let b = json!({"Z": 0, "é": 0, "a": null, "b": {"y": [{"c": 2, "d": 1}], "z": 1}});
    assert_eq!(to_string_sorted(&a), to_string_sorted(&b));
    assert_eq!(
        to_string_sorted(&a),
        r#"{"Z":0,"a":null,"b":{"y":[{"c":2,"d":1}],"z":1},"é":0}"#
    );
}

#[test]
fn strings_escape_only_what_json_requires() {
    let v = json!("q\"\\/\u{1}\u{1f}\n\t é😀");
    assert_eq!(to_string(&v), "\"q\\\"\\\\/\\u0001\\u001f\\n\\t é😀\"");
    assert_eq!(
        from_str(r#""\u00e9\ud83d\ude00\/""#).unwrap(),
        json!("é😀/")
    );
}

#[test]
fn the_macro_takes_expressions_by_reference() {
    let stop = vec!["a".to_owned()];
    let n: Option<u32> = None;
    let key = "k";
    let v = json!({"stop": stop, "n": n, "neg": -2, "f": 0.5, "nested": [{"x": 1}, [], stop.len()], (key): "v",});
    assert_eq!(
        to_string(&v),
        r#"{"stop":["a"],"n":null,"neg":-2,"f":0.5,"nested":[{"x":1},[],1],"k":"v"}"#
    );
    assert_eq!(stop.len(), 1);
    assert_eq!(v.pointer("/nested/0/x"), Some(&json!(1)));
    assert_eq!(v.pointer("/nested/01"), None);
    assert_eq!(json!(f64::NAN), Value::Null);
}

#[test]
fn indexing_missing_keys_reads_null_and_writes_insert() {
    let mut v = Value::Null;
    v["a"] = json!(1);
    v["a"] = json!(2);
    v["b"] = json!([]);
    assert_eq!(to_string(&v), r#"{"a":2,"b":[]}"#);
    assert!(v["zz"].is_null() && v["b"][3].is_null() && v[0].is_null());
}
