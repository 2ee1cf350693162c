//! Bank transactions, from a webhook (`docs/providers.md` §3.1) or the transactions API
//! (§3.7), normalized to one [`Transfer`] and then to a [`ProviderEvent`].

use docobo_plugin_sdk::time::parse_local_datetime_ms;
use docobo_plugin_sdk::{EventKind, Money, ProviderEvent, SubscriptionStatus, WebhookError};
use serde_json::Value;

/// SePay's `transactionDate` is Vietnam local time (UTC+7) without a zone.
pub const VIETNAM_OFFSET_MINUTES: i32 = 7 * 60;

/// Characters of a generated payment code after the prefix: no 0/O, 1/I/L.
pub const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// Length of a generated payment code after the prefix.
pub const CODE_LEN: usize = 8;

/// One bank transaction, every documented field kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Transfer {
    /// SePay's transaction id (the dedup key), as a decimal string.
    pub id: String,
    /// Bank brand, e.g. `MBBank`.
    pub gateway: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS`, Vietnam time.
    pub transaction_date: Option<String>,
    /// The merchant's account number.
    pub account_number: Option<String>,
    /// Virtual account, if any.
    pub sub_account: Option<String>,
    /// The payment code SePay recognised, if any.
    pub code: Option<String>,
    /// The transfer memo.
    pub content: String,
    /// True for money in.
    pub incoming: bool,
    /// Amount in VND.
    pub amount: i64,
    /// Balance after the transaction (0 when the bank does not report it).
    pub accumulated: Option<i64>,
    /// The bank's reference (FT…).
    pub reference_code: Option<String>,
    /// Full bank notification text.
    pub description: Option<String>,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A whole VND amount given as an integer, a float with no fraction, or a decimal string
/// such as `"18067000.00"`.
fn vnd(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            // Only whole amounts; VND has no minor unit. Bounded well inside i64.
            #[allow(clippy::cast_possible_truncation)]
            (f.fract() == 0.0 && f.abs() < 1e15).then_some(f as i64)
        }),
        Value::String(s) => {
            let s = s.trim();
            let (int, frac) = s.split_once('.').unwrap_or((s, ""));
            if !frac.bytes().all(|b| b == b'0') {
                return None;
            }
            int.parse().ok()
        }
        _ => None,
    }
}

/// A transaction id given as a JSON integer or a string of digits.
fn id(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Number(n) => n.as_u64().map(|n| n.to_string()),
        Value::String(s) => {
            let s = s.trim();
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.to_string())
        }
        _ => None,
    }
}

impl Transfer {
    /// Reads a webhook body (camelCase fields).
    pub fn from_webhook(body: &[u8]) -> Result<Self, WebhookError> {
        let v: Value = serde_json::from_slice(body).map_err(|_| {
            WebhookError::Malformed(
                "the body is not JSON (set the SePay webhook's content type to application/json)"
                    .into(),
            )
        })?;
        let id = id(v.get("id"))
            .ok_or_else(|| WebhookError::Malformed("the transaction has no numeric `id`".into()))?;
        let incoming = match v.get("transferType").and_then(Value::as_str) {
            Some(t) if t.eq_ignore_ascii_case("in") => true,
            Some(t) if t.eq_ignore_ascii_case("out") => false,
            _ => {
                return Err(WebhookError::Malformed(
                    "`transferType` is neither `in` nor `out`".into(),
                ));
            }
        };
        let amount = vnd(v.get("transferAmount")).ok_or_else(|| {
            WebhookError::Malformed("`transferAmount` is not a whole number".into())
        })?;
        Ok(Self {
            id,
            gateway: text(&v, "gateway"),
            transaction_date: text(&v, "transactionDate"),
            account_number: text(&v, "accountNumber"),
            sub_account: text(&v, "subAccount"),
            code: text(&v, "code"),
            content: text(&v, "content").unwrap_or_default(),
            incoming,
            amount,
            accumulated: vnd(v.get("accumulated")),
            reference_code: text(&v, "referenceCode"),
            description: text(&v, "description"),
        })
    }

    /// Reads one item of the v1 transactions list (`snake_case` fields, amounts as decimal
    /// strings). `None` when it has no id or no amount.
    #[must_use]
    pub fn from_api(v: &Value) -> Option<Self> {
        let amount_in = vnd(v.get("amount_in")).unwrap_or(0);
        let amount_out = vnd(v.get("amount_out")).unwrap_or(0);
        let incoming = amount_in > 0;
        Some(Self {
            id: id(v.get("id"))?,
            gateway: text(v, "bank_brand_name"),
            transaction_date: text(v, "transaction_date"),
            account_number: text(v, "account_number"),
            sub_account: text(v, "sub_account"),
            code: text(v, "code"),
            content: text(v, "transaction_content").unwrap_or_default(),
            incoming,
            amount: if incoming { amount_in } else { amount_out },
            accumulated: vnd(v.get("accumulated")),
            reference_code: text(v, "reference_number"),
            description: None,
        })
    }
}

fn same_account(a: &str, b: &str) -> bool {
    let norm = |s: &str| -> String { s.chars().filter(|c| !c.is_whitespace()).collect() };
    norm(a).eq_ignore_ascii_case(&norm(b))
}

/// Finds a Docobo payment code: SePay's `code` when it starts with `prefix`, else the first
/// `prefix` (case-insensitive, at the start of a word) in `content` followed by at least
/// [`CODE_LEN`] letters or digits, of which the first [`CODE_LEN`] are taken. Upper case.
#[must_use]
pub fn find_payment_code(code: Option<&str>, content: &str, prefix: &str) -> Option<String> {
    let prefix_upper = prefix.to_ascii_uppercase();
    if let Some(code) = code.map(str::trim)
        && code.len() > prefix.len()
        && code.to_ascii_uppercase().starts_with(&prefix_upper)
        && code.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Some(code.to_ascii_uppercase());
    }
    let upper = content.to_ascii_uppercase();
    let bytes = upper.as_bytes();
    let mut from = 0;
    while let Some(pos) = upper.get(from..).and_then(|s| s.find(&prefix_upper)) {
        let start = from + pos;
        from = start + 1;
        if start > 0 && bytes[start - 1].is_ascii_alphanumeric() {
            continue;
        }
        let suffix = &bytes[start + prefix_upper.len()..];
        let run = suffix
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        if run >= CODE_LEN {
            let code = &upper[start..start + prefix_upper.len() + CODE_LEN];
            return Some(code.to_string());
        }
    }
    None
}

/// What the plugin checks a transfer against.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The configured account number.
    pub account_number: &'a str,
    /// The payment-code prefix.
    pub prefix: &'a str,
}

/// Normalizes a transfer: money in, to the configured account (or one of its virtual
/// accounts), with a recognisable payment code → a `payment` event (status active, amount
/// in VND); anything else → `ignored`. The event id is the SePay transaction id, so a
/// webhook and a poll of the same transfer dedupe. `fallback_ms` is used when the
/// transaction date cannot be read.
#[must_use]
pub fn to_event(t: &Transfer, expect: Expect<'_>, fallback_ms: i64) -> ProviderEvent {
    let occurred = t
        .transaction_date
        .as_deref()
        .and_then(|d| parse_local_datetime_ms(d, VIETNAM_OFFSET_MINUTES))
        .unwrap_or(fallback_ms);
    let event_type = if t.incoming {
        "transfer.in"
    } else {
        "transfer.out"
    };
    let mut event = ProviderEvent::new(t.id.clone(), event_type, EventKind::Ignored, occurred);
    event.amount = Some(Money {
        minor_units: t.amount,
        currency: "VND".into(),
    });
    let to_us = [t.account_number.as_deref(), t.sub_account.as_deref()]
        .into_iter()
        .flatten()
        .any(|a| same_account(a, expect.account_number));
    if !t.incoming || !to_us || t.amount <= 0 {
        return event;
    }
    if let Some(code) = find_payment_code(t.code.as_deref(), &t.content, expect.prefix) {
        event.kind = EventKind::Payment;
        event.status = Some(SubscriptionStatus::Active);
        event.payment_code = Some(code);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EXPECT: Expect<'static> = Expect {
        account_number: "0359123456",
        prefix: "DCB",
    };

    #[test]
    fn code_from_sepay_or_content() {
        assert_eq!(
            find_payment_code(Some("DCB12345"), "", "DCB").as_deref(),
            Some("DCB12345")
        );
        assert_eq!(
            find_payment_code(Some("dcb7k3m"), "", "DCB").as_deref(),
            Some("DCB7K3M")
        );
        // Another shop's code: look in the content instead.
        assert_eq!(
            find_payment_code(Some("DH123"), "DH123 dcb7K3M9PQR", "DCB").as_deref(),
            Some("DCB7K3M9PQR")
        );
        assert_eq!(
            find_payment_code(None, "chuyen tien DCB7K3M9PQRX9 cam on", "dcb").as_deref(),
            Some("DCB7K3M9PQR")
        );
        assert_eq!(
            find_payment_code(None, "NGUYEN VAN A-DCB7K3M9PQR-CHUYEN", "DCB").as_deref(),
            Some("DCB7K3M9PQR")
        );
        // Not at a word start, too short, or absent.
        assert_eq!(find_payment_code(None, "XDCB7K3M9PQR", "DCB"), None);
        assert_eq!(find_payment_code(None, "DCB7K3 M9PQR", "DCB"), None);
        assert_eq!(find_payment_code(None, "chuyen tien", "DCB"), None);
        assert_eq!(find_payment_code(Some(""), "", "DCB"), None);
        assert_eq!(find_payment_code(Some("DCB"), "", "DCB"), None);
        // A later occurrence still counts.
        assert_eq!(
            find_payment_code(None, "DCB no DCBABCDEFGH", "DCB").as_deref(),
            Some("DCBABCDEFGH")
        );
    }

    #[test]
    fn amounts_and_ids() {
        assert_eq!(vnd(Some(&json!(50000))), Some(50000));
        assert_eq!(vnd(Some(&json!(50000.0))), Some(50000));
        assert_eq!(vnd(Some(&json!("18067000.00"))), Some(18_067_000));
        assert_eq!(vnd(Some(&json!("18067000"))), Some(18_067_000));
        assert_eq!(vnd(Some(&json!("1.50"))), None);
        assert_eq!(vnd(Some(&json!(1.5))), None);
        assert_eq!(vnd(Some(&json!(null))), None);
        assert_eq!(id(Some(&json!(123_456))), Some("123456".into()));
        assert_eq!(id(Some(&json!("49682"))), Some("49682".into()));
        assert_eq!(id(Some(&json!("4a"))), None);
        assert_eq!(id(Some(&json!(-1))), None);
    }

    fn transfer() -> Transfer {
        Transfer {
            id: "1".into(),
            transaction_date: Some("2026-01-01 07:00:00".into()),
            account_number: Some("0359123456".into()),
            content: "DCB7K3M9PQR".into(),
            incoming: true,
            amount: 50_000,
            ..Transfer::default()
        }
    }

    #[test]
    fn only_incoming_to_our_account_with_a_code_pays() {
        let e = to_event(&transfer(), EXPECT, 9);
        assert_eq!(e.kind, EventKind::Payment);
        assert_eq!(e.occurred_at, 1_767_225_600_000);
        assert_eq!(e.payment_code.as_deref(), Some("DCB7K3M9PQR"));

        let mut out = transfer();
        out.incoming = false;
        let e = to_event(&out, EXPECT, 9);
        assert_eq!(
            (e.kind, e.event_type.as_str()),
            (EventKind::Ignored, "transfer.out")
        );
        assert_eq!(e.payment_code, None);
        assert_eq!(e.status, None);

        let mut other = transfer();
        other.account_number = Some("999".into());
        assert_eq!(to_event(&other, EXPECT, 9).kind, EventKind::Ignored);
        other.sub_account = Some("0359 123 456".into());
        assert_eq!(to_event(&other, EXPECT, 9).kind, EventKind::Payment);

        let mut no_code = transfer();
        no_code.content = "chuyen tien".into();
        assert_eq!(to_event(&no_code, EXPECT, 9).kind, EventKind::Ignored);

        let mut bad_date = transfer();
        bad_date.transaction_date = Some("01/01/2026".into());
        assert_eq!(to_event(&bad_date, EXPECT, 9).occurred_at, 9);
    }

    #[test]
    fn webhook_junk_is_malformed() {
        for body in [
            "id=1&transferType=in".to_string(),
            json!({"transferType": "in", "transferAmount": 1}).to_string(),
            json!({"id": 1, "transferType": "sideways", "transferAmount": 1}).to_string(),
            json!({"id": 1, "transferType": "in", "transferAmount": "lots"}).to_string(),
        ] {
            assert!(
                matches!(
                    Transfer::from_webhook(body.as_bytes()),
                    Err(WebhookError::Malformed(_))
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn api_item() {
        let item = json!({"id": "49682", "bank_brand_name": "Vietcombank", "account_number": "0071000888888",
            "transaction_date": "2023-05-05 19:59:48", "amount_out": "0.00", "amount_in": "18067000.00",
            "accumulated": "1200541768.00", "transaction_content": "DCBABCDEFGH chuyen tien",
            "reference_number": "677760.050523.080001", "code": null, "sub_account": "VCB0011ABC004",
            "bank_account_id": "19"});
        let t = Transfer::from_api(&item).unwrap();
        assert_eq!(t.id, "49682");
        assert!(t.incoming);
        assert_eq!(t.amount, 18_067_000);
        assert_eq!(t.accumulated, Some(1_200_541_768));
        assert_eq!(t.sub_account.as_deref(), Some("VCB0011ABC004"));
        assert_eq!(t.code, None);
        let out = json!({"id": "5", "amount_out": "100.00", "amount_in": "0.00"});
        let t = Transfer::from_api(&out).unwrap();
        assert!(!t.incoming);
        assert_eq!(t.amount, 100);
        assert_eq!(Transfer::from_api(&json!({"amount_in": "1"})), None);
    }
}
