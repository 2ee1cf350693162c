//! Stripe's request encoding: `application/x-www-form-urlencoded` with nested keys written
//! in brackets (`metadata[docobo_guild_id]=…`, `line_items[0][price]=…`, `types[]=…`).
//!
//! Keys and values are percent-encoded with the SDK's RFC 3986 encoder (everything but
//! `A–Z a–z 0–9 - . _ ~` becomes `%XX` of its UTF-8 bytes), so brackets travel as
//! `%5B`/`%5D` and a space as `%20`: what a form decoder, Stripe's included, reads back
//! exactly. (`+` for a space is only an alternative spelling; `%20` is never ambiguous.)

use docobo_plugin_sdk::url::encode_component;

/// An ordered list of form fields. Order is kept (Stripe does not need it, but requests
/// stay readable and tests stay exact).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// An empty form.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key=value` (the key as Stripe spells it, brackets included).
    #[must_use]
    pub fn field(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.pairs.push((key.into(), value.into()));
        self
    }

    /// Adds `key=value` when `value` is `Some`.
    #[must_use]
    pub fn field_opt(self, key: impl Into<String>, value: Option<impl Into<String>>) -> Self {
        match value {
            Some(v) => self.field(key, v),
            None => self,
        }
    }

    /// Adds `{prefix}[k]=v` for every pair (Stripe's nested objects, e.g. metadata).
    #[must_use]
    pub fn nested(mut self, prefix: &str, pairs: &[(&str, &str)]) -> Self {
        for (k, v) in pairs {
            self.pairs
                .push((format!("{prefix}[{k}]"), (*v).to_string()));
        }
        self
    }

    /// The fields added so far.
    #[must_use]
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The encoded form: `k1=v1&k2=v2`.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (i, (k, v)) in self.pairs.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.push_str(&encode_component(k));
            out.push('=');
            out.push_str(&encode_component(v));
        }
        out
    }

    /// `path?encoded` (just `path` when the form is empty), for GET requests.
    #[must_use]
    pub fn query(&self, path: &str) -> String {
        if self.pairs.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{}", self.encode())
        }
    }
}

/// Lower-case hex of `bytes`.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Decodes hex (either case); `None` for an odd length or a non-hex character.
#[must_use]
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_nested_keys_and_reserved_characters() {
        let form = Form::new()
            .field("mode", "subscription")
            .field("line_items[0][price]", "price_123")
            .nested("metadata", &[("docobo_guild_id", "1122")])
            .field("product_data[name]", "VIP & Co = 100% é")
            .field("success_url", "https://discord.com/channels/1?a=b&c=d")
            .field_opt("absent", None::<String>)
            .field("types[]", "invoice.paid");
        assert_eq!(
            form.encode(),
            "mode=subscription\
             &line_items%5B0%5D%5Bprice%5D=price_123\
             &metadata%5Bdocobo_guild_id%5D=1122\
             &product_data%5Bname%5D=VIP%20%26%20Co%20%3D%20100%25%20%C3%A9\
             &success_url=https%3A%2F%2Fdiscord.com%2Fchannels%2F1%3Fa%3Db%26c%3Dd\
             &types%5B%5D=invoice.paid"
        );
        assert_eq!(Form::new().query("/v1/balance"), "/v1/balance");
        assert_eq!(
            Form::new().field("limit", "1").query("/v1/events"),
            "/v1/events?limit=1"
        );
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0x00, 0xab, 0xff, 0x10]), "00abff10");
        assert_eq!(unhex("00abFF10"), Some(vec![0x00, 0xab, 0xff, 0x10]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(""), Some(vec![]));
    }
}
