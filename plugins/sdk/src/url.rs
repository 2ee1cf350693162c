//! URL helpers.

use std::fmt::Write as _;

/// Percent-encodes `s` for use in a URL query value or path segment: everything except the
/// RFC 3986 unreserved characters (`A–Z a–z 0–9 - . _ ~`) becomes `%XX` (UTF-8 bytes).
#[must_use]
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `base` followed by `?k=v&…`, keys and values percent-encoded (`base` as given).
#[must_use]
pub fn with_query(base: &str, params: &[(&str, &str)]) -> String {
    let mut out = base.to_string();
    for (i, (k, v)) in params.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(&encode_component(k));
        out.push('=');
        out.push_str(&encode_component(v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_reserved_and_non_ascii() {
        assert_eq!(encode_component("DCB12345"), "DCB12345");
        assert_eq!(encode_component("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(
            with_query("https://x/img", &[("acc", "01 2"), ("des", "A+B")]),
            "https://x/img?acc=01%202&des=A%2BB"
        );
    }
}
