//! Webhook deliveries as the payment providers send them, for tests and benches to post.
//!
//! - Polar signs the Standard Webhooks way: `webhook-id`, `webhook-timestamp` (unix seconds)
//!   and `webhook-signature: v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`. Which
//!   key an endpoint signs with depends on its secret: [`PolarKey`].
//! - SePay posts one bank transfer per request with `Authorization: Apikey <key>`:
//!   [`SepayTransfer`] builds the body, [`sepay_request`] the request.
//!
//! Sign the exact bytes you send.
//!
//! ```
//! use docobo_testkit::webhooks::PolarKey;
//!
//! let key = PolarKey::utf8("polar_whs_secret");
//! let delivery = key.delivery("msg_1", 1_767_225_600, b"{}".to_vec());
//! assert!(delivery.signature.starts_with("v1,"));
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

/// The HMAC key a Polar (or any Standard Webhooks) endpoint signs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolarKey(Vec<u8>);

/// A secret or key that cannot be turned into a signing key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("a Standard Webhooks secret starts with `whsec_`")]
    NoPrefix,
    #[error("the part after `whsec_` is not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("not an even number of hex digits: {0:?}")]
    Hex(String),
}

impl PolarKey {
    /// Polar's legacy scheme: the UTF-8 bytes of the whole secret, prefix included (`whsec_`
    /// secrets made before 2026-09-08, and every `polar_whs_` one).
    #[must_use]
    pub fn utf8(secret: &str) -> Self {
        Self(secret.as_bytes().to_vec())
    }

    /// The Standard Webhooks scheme (Polar secrets made from 2026-09-08): the strict base64
    /// decoding of the part after `whsec_`.
    pub fn standard(secret: &str) -> Result<Self, KeyError> {
        let encoded = secret.strip_prefix("whsec_").ok_or(KeyError::NoPrefix)?;
        Ok(Self(
            base64::engine::general_purpose::STANDARD.decode(encoded)?,
        ))
    }

    /// A key given as bytes (a wrong one on purpose, say).
    #[must_use]
    pub fn raw(key: impl Into<Vec<u8>>) -> Self {
        Self(key.into())
    }

    /// A key given in hex (the vectors' `key_hex`).
    pub fn from_hex(hex: &str) -> Result<Self, KeyError> {
        let bad = || KeyError::Hex(hex.to_owned());
        if !hex.len().is_multiple_of(2) {
            return Err(bad());
        }
        (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(bad)
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The key's bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The `webhook-signature` header for `body` sent as message `id` at `timestamp` (unix
    /// seconds): `v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`.
    #[must_use]
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC takes a key of any length.
        let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0) else {
            unreachable!("HMAC-SHA256 accepts every key length")
        };
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        )
    }

    /// `body`, signed as message `id` sent at `timestamp` (unix seconds).
    #[must_use]
    pub fn delivery(&self, id: &str, timestamp: i64, body: Vec<u8>) -> PolarDelivery {
        PolarDelivery {
            id: id.to_owned(),
            timestamp,
            signature: self.sign(id, timestamp, &body),
            body,
        }
    }

    /// `body`, signed as message `id` sent now (a delivery more than five minutes old is
    /// refused as a replay).
    #[must_use]
    pub fn delivery_now(&self, id: &str, body: Vec<u8>) -> PolarDelivery {
        self.delivery(id, unix_now(), body)
    }
}

/// The current time in unix seconds.
fn unix_now() -> i64 {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

/// A signed Polar delivery: the body and the values of its `webhook-*` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolarDelivery {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp`, unix seconds.
    pub timestamp: i64,
    /// `webhook-signature`.
    pub signature: String,
    pub body: Vec<u8>,
}

impl PolarDelivery {
    /// Its headers as Polar sends them: see [`polar_headers`].
    #[must_use]
    pub fn headers(&self) -> [(&'static str, String); 4] {
        polar_headers(&self.id, self.timestamp, &self.signature)
    }

    /// A POST of the delivery to `url`.
    pub fn request(&self, client: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
        self.headers()
            .into_iter()
            .fold(client.post(url), |request, (name, value)| {
                request.header(name, value)
            })
            .body(self.body.clone())
    }
}

/// `webhook-id`, `webhook-timestamp`, `webhook-signature` and `content-type:
/// application/json`, with any signature (a vector's, a wrong one).
#[must_use]
pub fn polar_headers(id: &str, timestamp: i64, signature: &str) -> [(&'static str, String); 4] {
    [
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature.to_owned()),
        ("content-type", "application/json".to_owned()),
    ]
}

/// A SePay bank-transfer webhook body: the `sepay-transfer-in.json` fixture (payment code
/// `DCB12345`, 50 000 VND, transaction 123456) with the fields a test cares about replaced.
#[derive(Debug, Clone, PartialEq)]
pub struct SepayTransfer(Value);

impl SepayTransfer {
    /// The fixture as it is.
    ///
    /// # Panics
    /// If `tests/fixtures/webhooks/sepay-transfer-in.json` is missing or is not JSON.
    #[must_use]
    pub fn fixture() -> Self {
        let path = crate::fixtures::webhooks().join("sepay-transfer-in.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        Self(serde_json::from_str(&text).expect("the SePay fixture is JSON"))
    }

    /// SePay's transaction id (`id`), what it deduplicates on.
    #[must_use]
    pub fn id(mut self, id: i64) -> Self {
        self.0["id"] = json!(id);
        self
    }

    /// The amount received (`transferAmount`), in đồng.
    #[must_use]
    pub fn amount(mut self, amount: i64) -> Self {
        self.0["transferAmount"] = json!(amount);
        self
    }

    /// When the bank booked it (`transactionDate`): `YYYY-MM-DD HH:MM:SS`, Vietnam time.
    #[must_use]
    pub fn date(mut self, date: &str) -> Self {
        self.0["transactionDate"] = json!(date);
        self
    }

    /// The payment code SePay found (`code`), also in the transfer's text (`content`).
    #[must_use]
    pub fn code(mut self, code: &str) -> Self {
        self.0["code"] = json!(code);
        self.0["content"] = json!(format!("{code} chuyen tien"));
        self
    }

    /// The body to send.
    ///
    /// # Panics
    /// Never: a JSON value always serializes.
    #[must_use]
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.0).expect("a JSON value serializes")
    }
}

/// `authorization: Apikey <api_key>` and `content-type: application/json`, as SePay sends a
/// webhook whose authentication is "API Key".
#[must_use]
pub fn sepay_headers(api_key: &str) -> [(&'static str, String); 2] {
    [
        ("authorization", format!("Apikey {api_key}")),
        ("content-type", "application/json".to_owned()),
    ]
}

/// A POST of `body` to `url`, authenticated with `api_key` as SePay does ([`sepay_headers`]).
pub fn sepay_request(
    client: &reqwest::Client,
    url: &str,
    api_key: &str,
    body: Vec<u8>,
) -> reqwest::RequestBuilder {
    sepay_headers(api_key)
        .into_iter()
        .fold(client.post(url), |request, (name, value)| {
            request.header(name, value)
        })
        .body(body)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::{PolarKey, SepayTransfer, polar_headers, sepay_headers};

    fn vectors(name: &str) -> Vec<Value> {
        let path = crate::fixtures::webhooks().join(name);
        let text = std::fs::read_to_string(&path).expect("the vectors are in tests/fixtures");
        match serde_json::from_str(&text).expect("vectors are JSON") {
            Value::Array(vectors) => vectors,
            other => panic!("{name}: not an array: {other}"),
        }
    }

    fn text<'a>(vector: &'a Value, field: &str) -> &'a str {
        vector[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} in {vector}"))
    }

    fn flag(vector: &Value, field: &str) -> bool {
        vector[field]
            .as_bool()
            .unwrap_or_else(|| panic!("{field} in {vector}"))
    }

    fn timestamp(vector: &Value) -> i64 {
        vector["timestamp"].as_i64().expect("timestamp")
    }

    /// Docobo's rule: a signature is good if the UTF-8 key or the strict-base64 key of the
    /// secret makes it.
    fn either_key_signs(secret: &str, vector: &Value, body: &str) -> bool {
        let keys = [PolarKey::utf8(secret)]
            .into_iter()
            .chain(PolarKey::standard(secret).ok());
        keys.into_iter().any(|key| {
            key.sign(text(vector, "msg_id"), timestamp(vector), body.as_bytes())
                == text(vector, "expected_signature")
        })
    }

    #[test]
    fn the_official_standard_webhooks_vectors_sign_as_published() {
        let vectors = vectors("standard-webhooks-vectors.json");
        assert_eq!(vectors.len(), 4, "2 valid, 2 must-fail");
        for vector in &vectors {
            let key = PolarKey::standard(text(vector, "secret")).expect("a standard secret");
            let signature = key.sign(
                text(vector, "msg_id"),
                timestamp(vector),
                text(vector, "payload").as_bytes(),
            );
            assert_eq!(
                signature == text(vector, "expected_signature"),
                flag(vector, "expect_valid"),
                "{}: signed {signature}",
                text(vector, "note")
            );
        }
    }

    #[test]
    fn each_polar_scheme_derives_the_published_key_and_signature() {
        let vectors = vectors("polar-vectors.json");
        let schemes: Vec<&Value> = vectors.iter().filter(|v| v["kind"] == "scheme").collect();
        assert_eq!(schemes.len(), 3, "schemes A, B and C");
        for vector in schemes {
            let name = text(vector, "name");
            let secret = text(vector, "secret");
            let key = match text(vector, "key_derivation") {
                "utf8-full-secret" => PolarKey::utf8(secret),
                "base64-after-whsec" => PolarKey::standard(secret).expect("scheme C decodes"),
                other => panic!("{name}: unknown derivation {other}"),
            };
            assert_eq!(
                key,
                PolarKey::from_hex(text(vector, "key_hex")).expect("hex"),
                "{name}: key"
            );
            let delivery = key.delivery(
                text(vector, "msg_id"),
                timestamp(vector),
                text(vector, "body").as_bytes().to_vec(),
            );
            assert_eq!(
                delivery.signature,
                text(vector, "expected_signature"),
                "{name}"
            );
        }
    }

    #[test]
    fn every_polar_vector_verifies_with_the_secrets_keys_exactly_when_it_should() {
        let vectors = vectors("polar-vectors.json");
        assert_eq!(vectors.len(), 12);
        let mut valid = 0;
        for vector in &vectors {
            let name = text(vector, "name");
            let expected = flag(vector, "expect_valid");
            assert_eq!(
                either_key_signs(text(vector, "secret"), vector, text(vector, "body")),
                expected,
                "{name}: {}",
                text(vector, "note")
            );
            // Where the vector names its key, that key makes its signature.
            if let Some(hex) = vector["key_hex"].as_str() {
                let key = PolarKey::from_hex(hex).expect("hex");
                assert_eq!(
                    key.sign(
                        text(vector, "msg_id"),
                        timestamp(vector),
                        text(vector, "body").as_bytes()
                    ),
                    text(vector, "expected_signature"),
                    "{name}: key_hex"
                );
            }
            valid += usize::from(expected);
        }
        assert_eq!(valid, 4, "A, B, C and C signed with its UTF-8 key");
    }

    #[test]
    fn keys_that_cannot_be_derived_are_refused() {
        assert!(PolarKey::standard("polar_whs_abc").is_err(), "no whsec_");
        // A legacy secret is 43 alphanumerics after `whsec_`: not strict base64.
        assert!(PolarKey::standard("whsec_ovyN6cPrTv56AApvzCaJno08SSmGJmgbWilb33N2JuK").is_err());
        assert!(PolarKey::from_hex("abc").is_err());
        assert!(PolarKey::from_hex("zz").is_err());
        assert_eq!(
            PolarKey::from_hex("00ff10").expect("hex").bytes(),
            [0, 255, 16]
        );
    }

    #[test]
    fn a_delivery_carries_what_it_was_signed_with() {
        let key = PolarKey::utf8("whsec_test");
        let delivery = key.delivery("msg_1", 1_767_225_600, b"{\"a\":1}".to_vec());
        assert_eq!(
            delivery.headers(),
            polar_headers("msg_1", 1_767_225_600, &delivery.signature)
        );
        assert_eq!(delivery.headers()[1].1, "1767225600");
        // Another body, id or time signs differently.
        for (id, timestamp, body) in [
            ("msg_2", 1_767_225_600, &b"{\"a\":1}"[..]),
            ("msg_1", 1_767_225_601, &b"{\"a\":1}"[..]),
            ("msg_1", 1_767_225_600, &b"{\"a\":2}"[..]),
        ] {
            assert_ne!(key.sign(id, timestamp, body), delivery.signature);
        }
        let now = key.delivery_now("msg_1", Vec::new()).timestamp;
        assert!(now > 1_767_225_600, "{now}");
    }

    #[test]
    fn a_sepay_transfer_changes_only_the_fields_asked_for() {
        let fixture = SepayTransfer::fixture();
        let body: Value = serde_json::from_slice(&fixture.body()).expect("json");
        assert_eq!(body["code"], "DCB12345");
        let changed: Value = serde_json::from_slice(
            &fixture
                .clone()
                .id(7)
                .amount(10_000)
                .date("2026-11-20 07:00:00")
                .code("DCB99999")
                .body(),
        )
        .expect("json");
        assert_eq!(changed["id"], 7);
        assert_eq!(changed["transferAmount"], 10_000);
        assert_eq!(changed["transactionDate"], "2026-11-20 07:00:00");
        assert_eq!(changed["code"], "DCB99999");
        assert_eq!(changed["content"], "DCB99999 chuyen tien");
        for same in ["gateway", "accountNumber", "transferType", "referenceCode"] {
            assert_eq!(changed[same], body[same], "{same}");
        }
        assert_eq!(sepay_headers("k")[0], ("authorization", "Apikey k".into()));
    }
}
