//! The SePay user API (v1, `https://my.sepay.vn/userapi/…`, `docs/providers.md` §3.7):
//! token validation and transaction polling.

use std::fmt::Write as _;

use docobo_plugin_sdk::time::format_rfc3339_ms;
use docobo_plugin_sdk::url::encode_component;
use docobo_plugin_sdk::{Host, HttpRequest, LogLevel, PollResult, ProviderError};
use serde_json::Value;

use crate::Settings;
use crate::transfer::{self, Transfer, VIETNAM_OFFSET_MINUTES};

/// Transactions fetched per poll. The list has no pagination; if a poll returns this many,
/// the next one continues after the highest id seen.
pub const POLL_LIMIT: u32 = 500;
/// How far back the first poll looks.
pub const FIRST_POLL_LOOKBACK_MS: i64 = 3 * 86_400_000;

fn list_request(settings: &Settings<'_>, token: &str, query: &str) -> HttpRequest {
    HttpRequest::get(format!(
        "{}/userapi/transactions/list?{query}",
        settings.api_url
    ))
    .bearer(token)
    .header("accept", "application/json")
    .header("content-type", "application/json")
}

fn send<H: Host>(host: &H, req: &HttpRequest) -> Result<Value, ProviderError> {
    let resp = host
        .http_fetch(req)
        .map_err(|e| ProviderError::Upstream(format!("SePay could not be reached: {e}")))?;
    let body: Option<Value> = serde_json::from_slice(&resp.body).ok();
    // v1 also reports the status inside the body.
    let inner = body
        .as_ref()
        .and_then(|b| b.get("status"))
        .and_then(Value::as_u64);
    if resp.status == 401 || resp.status == 403 || matches!(inner, Some(401 | 403)) {
        return Err(ProviderError::InvalidCredentials(
            "SePay rejected the API token (401)".into(),
        ));
    }
    if resp.status == 429 {
        return Err(ProviderError::Upstream(
            "SePay rate limit reached (429); try again later".into(),
        ));
    }
    if !resp.is_success() {
        return Err(ProviderError::Upstream(format!(
            "SePay answered {}: {}",
            resp.status,
            resp.text_snippet(300)
        )));
    }
    body.ok_or_else(|| {
        ProviderError::Upstream("SePay answered with a body that is not JSON".into())
    })
}

/// Checks the configuration, and the API token with a one-transaction list when set.
pub fn validate_credentials<H: Host>(
    host: &H,
    settings: &Settings<'_>,
) -> Result<(), ProviderError> {
    let Some(token) = settings.api_token else {
        return Ok(());
    };
    send(host, &list_request(settings, token, "limit=1"))?;
    Ok(())
}

/// `YYYY-MM-DD` in Vietnam time.
fn vietnam_date(ms: i64) -> String {
    let local = ms + i64::from(VIETNAM_OFFSET_MINUTES) * 60_000;
    format_rfc3339_ms(local)[..10].to_string()
}

/// Lists transactions of the configured account after the cursor (the highest SePay
/// transaction id already seen; none: the last three days) and normalizes them like the
/// webhook. Only payments are returned; event ids are the transaction ids, so a webhook
/// and a poll of the same transfer dedupe.
pub fn poll<H: Host>(
    host: &H,
    settings: &Settings<'_>,
    cursor: Option<&str>,
) -> Result<PollResult, ProviderError> {
    let Some(token) = settings.api_token else {
        return Err(ProviderError::Unsupported(
            "polling SePay needs the api_token setting".into(),
        ));
    };
    let now = host.now_ms();
    let last_id: Option<u64> = cursor.and_then(|c| c.trim().parse().ok());
    let mut query = format!(
        "account_number={}&limit={POLL_LIMIT}",
        encode_component(settings.account_number)
    );
    if let Some(id) = last_id {
        // `since_id` is inclusive.
        let _ = write!(query, "&since_id={}", id.saturating_add(1));
    } else {
        let since = vietnam_date(now - FIRST_POLL_LOOKBACK_MS);
        let _ = write!(query, "&transaction_date_min={since}");
    }
    let resp = send(host, &list_request(settings, token, &query))?;
    let items = resp
        .get("transactions")
        .and_then(Value::as_array)
        .ok_or_else(|| ProviderError::Upstream("SePay's answer has no `transactions`".into()))?;
    if items.len() >= POLL_LIMIT as usize {
        host.log(
            LogLevel::Warn,
            "sepay poll: the transaction list was full; the next poll continues",
        );
    }
    let mut max_id = last_id;
    let mut events = Vec::new();
    for item in items {
        let Some(t) = Transfer::from_api(item) else {
            continue;
        };
        let Ok(n) = t.id.parse::<u64>() else { continue };
        if last_id.is_some_and(|last| n <= last) {
            continue;
        }
        max_id = Some(max_id.map_or(n, |m| m.max(n)));
        let event = transfer::to_event(&t, settings.expect(), now);
        if event.kind != docobo_plugin_sdk::EventKind::Ignored {
            events.push(event);
        }
    }
    events.sort_by_key(|e| e.occurred_at);
    Ok(PollResult {
        events,
        next_cursor: max_id.map(|id| id.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vietnam_dates() {
        // 2026-01-01T16:59:59Z is 23:59:59 in Vietnam; one second later it is the 2nd.
        assert_eq!(vietnam_date(1_767_286_799_000), "2026-01-01");
        assert_eq!(vietnam_date(1_767_286_800_000), "2026-01-02");
    }
}
