//! The one place a URL path segment is built from configuration or a client: every byte outside RFC 3986's
//! unreserved set is percent-encoded, so a model name can never add segments, a query or a fragment.

use percent_encoding::{percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Percent-encodes one path segment (upper-case hex, as AWS SigV4 also requires), so a Bedrock model id such as
/// `anthropic.claude-3-haiku-20240307-v1:0`, or an ARN, which contains `/`, stays one segment.
pub fn segment(s: &str) -> String {
    encode_bytes(s.as_bytes())
}

/// Every byte except RFC 3986's unreserved characters (ALPHA / DIGIT / "-" / "." / "_" / "~").
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes every byte except RFC 3986 unreserved characters.
pub fn encode_bytes(bytes: &[u8]) -> String {
    percent_encode(bytes, NOT_UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn nothing_but_unreserved_survives() {
        assert_eq!(segment("gemini-2.5-flash"), "gemini-2.5-flash");
        assert_eq!(
            segment("../../../v1/models#?alt=json&key=x"),
            "..%2F..%2F..%2Fv1%2Fmodels%23%3Falt%3Djson%26key%3Dx"
        );
        assert_eq!(segment("a:0 é"), "a%3A0%20%C3%A9");
    }
}
