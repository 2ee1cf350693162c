//! Rust-friendly helpers on the generated WIT types.

use crate::{
    Capabilities, Checkout, ConfigField, EventKind, HttpRequest, HttpResponse, PluginInfo,
    PollResult, ProviderEvent,
};

/// The value of configuration field `key`, trimmed; `None` when absent or blank.
///
/// The first pair with that key wins.
#[must_use]
pub fn config_get<'a>(config: &'a [(String, String)], key: &str) -> Option<&'a str> {
    config
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// The value of configuration field `key`, or `default` when absent or blank.
#[must_use]
pub fn config_or<'a>(config: &'a [(String, String)], key: &str, default: &'a str) -> &'a str {
    config_get(config, key).unwrap_or(default)
}

/// The value of a required configuration field, or an error message naming the field
/// (never its value), ready for `ProviderError::Misconfigured` or `WebhookError::Misconfigured`.
pub fn config_require<'a>(config: &'a [(String, String)], key: &str) -> Result<&'a str, String> {
    config_get(config, key).ok_or_else(|| format!("the setting `{key}` is missing"))
}

/// The value of header `name` (matched case-insensitively), trimmed. The first one wins.
#[must_use]
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// Every value of header `name` (matched case-insensitively), trimmed, in the order sent:
/// the host passes each line of a header sent on several lines as its own entry.
pub fn header_values<'a>(
    headers: &'a [(String, String)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// Constant-time equality of two byte strings (the length is not hidden).
/// Use it to compare API keys and signatures.
#[must_use]
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

impl ConfigField {
    /// A plain, optional text field without a default.
    pub fn new(key: impl Into<String>, label: impl Into<String>, help: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            label: label.into(),
            help: help.into(),
            secret: false,
            required: false,
            default_value: None,
            identifies_account: false,
        }
    }

    /// Marks the field as one that says which account at the provider the credentials reach
    /// (a token, an environment): when it changes, `/setup` creates the products again.
    #[must_use]
    pub fn identifies_account(mut self) -> Self {
        self.identifies_account = true;
        self
    }

    /// Marks the field secret: stored encrypted, never echoed or logged.
    #[must_use]
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// Marks the field required.
    #[must_use]
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Sets the value used when the field is absent.
    #[must_use]
    pub fn default_value(mut self, value: impl Into<String>) -> Self {
        self.default_value = Some(value.into());
        self
    }
}

impl PluginInfo {
    /// A plugin with no fields and no hosts, `needs_products` and `supports_poll` false,
    /// no optional calls, no webhook events, no webhook ack, and any currency.
    pub fn new(id: impl Into<String>, name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            version: version.into(),
            config_fields: Vec::new(),
            hosts: Vec::new(),
            needs_products: false,
            supports_poll: false,
            capabilities: Capabilities::empty(),
            webhook_events: Vec::new(),
            webhook_ack: None,
            currencies: Vec::new(),
        }
    }

    /// Adds a currency the provider takes (ISO 4217, e.g. `VND`). With none, any currency.
    #[must_use]
    pub fn currency(mut self, code: impl Into<String>) -> Self {
        self.currencies.push(code.into());
        self
    }

    /// Adds a configuration field.
    #[must_use]
    pub fn field(mut self, field: ConfigField) -> Self {
        self.config_fields.push(field);
        self
    }

    /// Adds a host name the plugin may reach through `http_fetch`.
    #[must_use]
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.hosts.push(host.into());
        self
    }

    /// Sets `needs_products`.
    #[must_use]
    pub fn needs_products(mut self, yes: bool) -> Self {
        self.needs_products = yes;
        self
    }

    /// Sets `supports_poll`.
    #[must_use]
    pub fn supports_poll(mut self, yes: bool) -> Self {
        self.supports_poll = yes;
        self
    }

    /// Declares optional calls this plugin implements (added to those declared before).
    #[must_use]
    pub fn capability(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = self.capabilities | capabilities;
        self
    }

    /// Adds a provider event name the owner must enable for the webhook.
    #[must_use]
    pub fn webhook_event(mut self, name: impl Into<String>) -> Self {
        self.webhook_events.push(name.into());
        self
    }

    /// Sets the JSON body of the success reply to a webhook.
    #[must_use]
    pub fn webhook_ack(mut self, body: impl Into<String>) -> Self {
        self.webhook_ack = Some(body.into());
        self
    }
}

impl ProviderEvent {
    /// An event with every optional field empty.
    pub fn new(
        event_id: impl Into<String>,
        event_type: impl Into<String>,
        kind: EventKind,
        occurred_at: i64,
    ) -> Self {
        Self {
            event_id: event_id.into(),
            event_type: event_type.into(),
            kind,
            subscription_id: None,
            guild_id: None,
            user_id: None,
            role_id: None,
            product_id: None,
            payment_code: None,
            status: None,
            period_end: None,
            amount: None,
            occurred_at,
            customer_id: None,
            previous_product_id: None,
            refund: None,
            dispute: None,
            test: false,
        }
    }
}

// The type is generated by wit-bindgen, so it cannot take a derive here.
#[allow(clippy::derivable_impls)]
impl Default for Checkout {
    fn default() -> Self {
        Self {
            url: None,
            qr_image_url: None,
            instructions: None,
            payment_code: None,
            expires_at: None,
        }
    }
}

// The type is generated by wit-bindgen, so it cannot take a derive here.
#[allow(clippy::derivable_impls)]
impl Default for PollResult {
    fn default() -> Self {
        Self {
            events: Vec::new(),
            next_cursor: None,
        }
    }
}

impl HttpRequest {
    /// A request with no headers and no body.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// A `POST` request.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds `Authorization: Bearer <token>`.
    #[must_use]
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// Sets a JSON body and `content-type: application/json`.
    #[must_use]
    pub fn json(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self.header("content-type", "application/json")
    }
}

impl HttpResponse {
    /// True for a 2xx status.
    #[must_use]
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The value of response header `name` (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as text (invalid UTF-8 replaced), cut to at most `max` bytes on a character
    /// boundary: for error messages.
    #[must_use]
    pub fn text_snippet(&self, max: usize) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let mut end = text.len().min(max);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text[..end].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn config_get_trims_and_treats_blank_as_absent() {
        let c = pairs(&[("a", "  x "), ("b", "   "), ("a", "second")]);
        assert_eq!(config_get(&c, "a"), Some("x"));
        assert_eq!(config_get(&c, "b"), None);
        assert_eq!(config_get(&c, "c"), None);
        assert_eq!(config_or(&c, "b", "dflt"), "dflt");
        let err = config_require(&c, "b").unwrap_err();
        assert!(err.contains("`b`"), "{err}");
    }

    #[test]
    fn header_is_case_insensitive() {
        let h = pairs(&[("Webhook-Id", " abc ")]);
        assert_eq!(header(&h, "webhook-id"), Some("abc"));
        assert_eq!(header(&h, "WEBHOOK-ID"), Some("abc"));
        assert_eq!(header(&h, "webhook-timestamp"), None);
    }

    #[test]
    fn ct_eq_compares_content_and_length() {
        assert!(ct_eq(b"secret", b"secret"));
        assert!(!ct_eq(b"secret", b"secreT"));
        assert!(!ct_eq(b"secret", b"secret2"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn text_snippet_cuts_on_char_boundary() {
        let r = HttpResponse {
            status: 500,
            headers: Vec::new(),
            body: "ééé".as_bytes().to_vec(),
        };
        assert_eq!(r.text_snippet(3), "é");
        assert!(!r.is_success());
    }
}
