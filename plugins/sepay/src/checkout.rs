//! Bank-transfer checkouts: a payment code, a VietQR image from qr.sepay.vn
//! (`docs/providers.md` §3.5) and human instructions.

use std::fmt::Write as _;

use docobo_plugin_sdk::url::with_query;
use docobo_plugin_sdk::{Checkout, CheckoutRequest, ProviderError};

use crate::Settings;
use crate::transfer::{CODE_ALPHABET, CODE_LEN};

/// The QR image endpoint.
pub const QR_URL: &str = "https://qr.sepay.vn/img";
/// How long a checkout stays valid.
pub const CHECKOUT_TTL_MS: i64 = 24 * 3_600_000;

/// splitmix64: spreads the host's nonce so that close nonces give unrelated codes.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The payment code for `nonce`: `prefix` (upper case) + [`CODE_LEN`] characters from
/// [`CODE_ALPHABET`]. Deterministic: the same nonce always gives the same code.
#[must_use]
pub fn payment_code(prefix: &str, nonce: u64) -> String {
    let mut n = mix(nonce);
    let base = CODE_ALPHABET.len() as u64;
    let mut code = prefix.to_ascii_uppercase();
    for _ in 0..CODE_LEN {
        // `n % base` < 31, a valid index.
        let i = usize::try_from(n % base).unwrap_or(0);
        code.push(char::from(CODE_ALPHABET[i]));
        n /= base;
    }
    code
}

/// `1234567` → `1,234,567`.
fn group_thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Builds the checkout at host time `now_ms`.
pub fn create(
    settings: &Settings<'_>,
    request: &CheckoutRequest,
    now_ms: i64,
) -> Result<Checkout, ProviderError> {
    if !request.price.currency.eq_ignore_ascii_case("VND") {
        return Err(ProviderError::Misconfigured(format!(
            "SePay takes bank transfers in VND only, not {}",
            request.price.currency
        )));
    }
    let amount = request.price.minor_units;
    if amount <= 0 {
        return Err(ProviderError::Misconfigured(
            "the price must be more than zero".into(),
        ));
    }
    let code = payment_code(settings.prefix, request.nonce);
    let amount_text = amount.to_string();
    let qr = with_query(
        QR_URL,
        &[
            ("acc", settings.account_number),
            ("bank", settings.bank),
            ("amount", &amount_text),
            ("des", &code),
        ],
    );
    let mut instructions = format!(
        "Transfer exactly {} VND\nBank: {}\nAccount number: {}\n",
        group_thousands(amount),
        settings.bank,
        settings.account_number
    );
    if let Some(name) = settings.account_name {
        let _ = writeln!(instructions, "Account name: {name}");
    }
    let _ = write!(
        instructions,
        "Transfer content: {code}\n\nScan the QR code with your banking app, or type the \
         details above. The content must contain {code}: the role is granted automatically \
         when the transfer arrives.\nThe code is valid for {} hours, and only for exactly \
         {} VND: a transfer made later, or of another amount, grants nothing (run /join again \
         for a new window).",
        CHECKOUT_TTL_MS / 3_600_000,
        group_thousands(amount)
    );
    Ok(Checkout {
        url: None,
        qr_image_url: Some(qr),
        instructions: Some(instructions),
        payment_code: Some(code),
        expires_at: Some(now_ms.saturating_add(CHECKOUT_TTL_MS)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_deterministic_and_unambiguous() {
        let a = payment_code("DCB", 42);
        assert_eq!(a, payment_code("dcb", 42));
        assert_eq!(a.len(), 3 + CODE_LEN);
        assert!(a.starts_with("DCB"));
        assert!(a[3..].bytes().all(|b| CODE_ALPHABET.contains(&b)));
        for ambiguous in ['0', 'O', '1', 'I', 'L'] {
            assert!(!CODE_ALPHABET.contains(&(ambiguous as u8)));
        }
        // Neighbouring nonces give different codes.
        let codes: HashSet<String> = (0..10_000).map(|n| payment_code("DCB", n)).collect();
        assert_eq!(codes.len(), 10_000);
        assert_ne!(payment_code("DCB", 0), payment_code("DCB", u64::MAX));
    }

    #[test]
    fn thousands() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(50_000), "50,000");
        assert_eq!(group_thousands(1_234_567), "1,234,567");
    }
}
