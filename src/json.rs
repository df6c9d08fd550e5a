//! Typed JSON parsing whose errors name the path of the offending value (`messages[1].content: invalid type ...`).

use serde::Deserialize;

/// Why a document did not parse into `T`.
#[derive(Debug)]
pub enum ParseError {
    /// The value at `path` (`.` for the document itself) is malformed or of the wrong type.
    At {
        path: String,
        error: serde_json::Error,
    },
    /// The value parsed, but something other than whitespace follows it.
    Trailing(serde_json::Error),
}

/// `bytes` as a `T`, the path tracked as it is read. Every caller uses this one reader (a slice), so the
/// deserializers exist once per type.
pub fn parse_named<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, ParseError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|e| ParseError::At {
        path: e.path().to_string(),
        error: e.into_inner(),
    })?;
    de.end().map_err(ParseError::Trailing)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Doc {
        items: Vec<Item>,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Item {
        n: u32,
    }

    fn at(r: Result<Doc, ParseError>) -> String {
        match r {
            Err(ParseError::At { path, error }) => format!(
                "{path}: {}",
                crate::error::json_message_without_position(&error)
            ),
            other => panic!("expected a path error, got {other:?}"),
        }
    }

    #[test]
    fn valid_documents_parse() {
        let d: Doc = parse_named(br#"{"items":[{"n":1},{"n":2}]}"#).unwrap();
        assert_eq!(d.items.len(), 2);
    }

    #[test]
    fn a_wrong_type_is_named_by_its_path() {
        assert_eq!(
            at(parse_named(br#"{"items":[{"n":1},{"n":"two"}]}"#)),
            r#"items[1].n: invalid type: string "two", expected u32"#
        );
    }

    #[test]
    fn a_syntax_error_is_named_where_it_stopped() {
        let e = at(parse_named(br#"{"items":[{"n":1},{"n":}]}"#));
        assert!(e.starts_with("items[1].n: expected value"), "{e}");
    }

    #[test]
    fn trailing_characters_are_their_own_error() {
        match parse_named::<Doc>(br#"{"items":[]} x"#) {
            Err(ParseError::Trailing(e)) => {
                assert!(e.to_string().starts_with("trailing characters"), "{e}")
            }
            other => panic!("expected trailing, got {other:?}"),
        }
    }
}
