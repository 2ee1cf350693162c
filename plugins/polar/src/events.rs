//! Turning verified Polar payloads into [`ProviderEvent`]s (`docs/providers.md` §1.4–1.5).
//!
//! Parsing is lenient: unknown fields are ignored, every field Docobo reads is optional
//! except the envelope's `type` and the resource's `id`, and a field of an unexpected type
//! reads as absent. That accepts both the 2026-04 `OpenAPI` shape and the newer SDK shape
//! (`api_version`, `units`, … ).

use docobo_plugin_sdk::time::parse_rfc3339_ms;
use docobo_plugin_sdk::{
    EventKind, Money, ProviderEvent, Refund, SubscriptionStatus, WebhookError,
};
use serde_json::Value;

/// The subscription event types Docobo maps (the rest are recorded as ignored).
/// `subscription.paused`/`resumed` (`docs/providers.md` §1.4): Polar revokes benefits when a
/// pause takes effect and grants them again on resume; the subscription's `status` says
/// which (`paused`, then `active`).
pub const SUBSCRIPTION_EVENTS: [&str; 9] = [
    "subscription.created",
    "subscription.active",
    "subscription.updated",
    "subscription.canceled",
    "subscription.uncanceled",
    "subscription.past_due",
    "subscription.revoked",
    "subscription.paused",
    "subscription.resumed",
];

/// Every event type the plugin reads: what the owner must enable on the Polar endpoint.
pub const WEBHOOK_EVENTS: [&str; 11] = [
    "subscription.created",
    "subscription.active",
    "subscription.updated",
    "subscription.canceled",
    "subscription.uncanceled",
    "subscription.past_due",
    "subscription.revoked",
    "subscription.paused",
    "subscription.resumed",
    "order.paid",
    "order.refunded",
];

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn string_field(v: &Value, key: &str) -> Option<String> {
    str_field(v, key).map(str::to_string)
}

fn time_field(v: &Value, key: &str) -> Option<i64> {
    str_field(v, key).and_then(parse_rfc3339_ms)
}

/// A Discord snowflake from metadata: a string of decimal digits or a JSON integer.
/// Integers are read exactly (`serde_json` keeps them as `u64`); floats, negative numbers
/// and anything else read as absent.
#[must_use]
pub fn discord_id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => {
            let s = s.trim();
            (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.to_string())
                .filter(|s| s.parse::<u64>().is_ok())
        }
        Value::Number(n) => n.as_u64().map(|n| n.to_string()),
        _ => None,
    }
}

fn metadata_id(resource: &Value, key: &str) -> Option<String> {
    resource
        .get("metadata")
        .and_then(|m| m.get(key))
        .and_then(discord_id)
}

fn money(amount: Option<&Value>, currency: Option<&str>) -> Option<Money> {
    let minor_units = amount?.as_i64()?;
    let currency = currency?.trim();
    if currency.is_empty() {
        return None;
    }
    Some(Money {
        minor_units,
        currency: currency.to_ascii_uppercase(),
    })
}

/// Fills the ids Docobo needs from a subscription or order resource.
fn fill_ids(event: &mut ProviderEvent, resource: &Value) {
    event.guild_id = metadata_id(resource, "docobo_guild_id");
    event.role_id = metadata_id(resource, "docobo_role_id");
    event.user_id = metadata_id(resource, "docobo_user_id").or_else(|| {
        resource
            .get("customer")
            .and_then(|c| c.get("external_id"))
            .and_then(discord_id)
    });
    event.product_id = string_field(resource, "product_id");
    event.customer_id = string_field(resource, "customer_id").or_else(|| {
        resource
            .get("customer")
            .and_then(|c| str_field(c, "id"))
            .map(str::to_string)
    });
}

/// When the resource reached this state: `modified_at`, else `created_at`, else the
/// envelope `timestamp`, else `fallback_ms` (the delivery timestamp).
fn occurred_at(resource: &Value, envelope: &Value, fallback_ms: i64) -> i64 {
    time_field(resource, "modified_at")
        .or_else(|| time_field(resource, "created_at"))
        .or_else(|| time_field(envelope, "timestamp"))
        .unwrap_or(fallback_ms)
}

/// The Docobo status of a Polar subscription, `None` for a state Docobo has no name for
/// (a status Polar adds later): such events are recorded as ignored.
///
/// `active`/`trialing` with `cancel_at_period_end` → canceled (entitled until the period
/// end); `trialing` → trialing (entitled until the trial ends); `paused` → paused (not
/// entitled until resumed: Polar revokes benefits on pause); `canceled`, `unpaid`,
/// `incomplete_expired` or a `subscription.revoked` event → revoked; `past_due` →
/// past-due; `incomplete` → pending.
#[must_use]
pub fn subscription_status(
    event_type: &str,
    status: &str,
    cancel_at_period_end: bool,
) -> Option<SubscriptionStatus> {
    if event_type == "subscription.revoked" {
        return Some(SubscriptionStatus::Revoked);
    }
    match status {
        "active" | "trialing" if cancel_at_period_end => Some(SubscriptionStatus::Canceled),
        "active" => Some(SubscriptionStatus::Active),
        "trialing" => Some(SubscriptionStatus::Trialing),
        "paused" => Some(SubscriptionStatus::Paused),
        "past_due" => Some(SubscriptionStatus::PastDue),
        "incomplete" => Some(SubscriptionStatus::Pending),
        "canceled" | "unpaid" | "incomplete_expired" => Some(SubscriptionStatus::Revoked),
        _ => None,
    }
}

/// Maps one subscription resource. `event_type` is the webhook type (or a poll label).
pub fn subscription_event(
    event_id: String,
    event_type: &str,
    data: &Value,
    envelope: &Value,
    fallback_ms: i64,
) -> Result<ProviderEvent, WebhookError> {
    let id = str_field(data, "id")
        .ok_or_else(|| WebhookError::Malformed("the subscription has no id".into()))?;
    let status = str_field(data, "status")
        .ok_or_else(|| WebhookError::Malformed("the subscription has no status".into()))?;
    let cancel_at_period_end = data
        .get("cancel_at_period_end")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let occurred = occurred_at(data, envelope, fallback_ms);
    let Some(status) = subscription_status(event_type, status, cancel_at_period_end) else {
        let mut event = ProviderEvent::new(event_id, event_type, EventKind::Ignored, occurred);
        event.subscription_id = Some(id.to_string());
        return Ok(event);
    };
    let mut event = ProviderEvent::new(event_id, event_type, EventKind::Subscription, occurred);
    event.subscription_id = Some(id.to_string());
    fill_ids(&mut event, data);
    event.status = Some(status);
    // In a trial the paid period starts at `trial_end`; Polar's current period is the trial
    // too, but `trial_end` is the field that names it.
    event.period_end = if data.get("status").and_then(Value::as_str) == Some("trialing") {
        time_field(data, "trial_end").or_else(|| time_field(data, "current_period_end"))
    } else {
        time_field(data, "current_period_end")
    };
    event.amount = money(data.get("amount"), str_field(data, "currency"));
    Ok(event)
}

pub fn order_event(
    event_id: String,
    event_type: &str,
    data: &Value,
    envelope: &Value,
    fallback_ms: i64,
) -> Result<ProviderEvent, WebhookError> {
    let id = str_field(data, "id")
        .ok_or_else(|| WebhookError::Malformed("the order has no id".into()))?;
    let occurred = occurred_at(data, envelope, fallback_ms);
    let currency = str_field(data, "currency");
    let subscription_id = str_field(data, "subscription_id");
    if event_type == "order.refunded" {
        let mut event = ProviderEvent::new(event_id, event_type, EventKind::Refund, occurred);
        event.subscription_id = Some(subscription_id.unwrap_or(id).to_string());
        fill_ids(&mut event, data);
        event.status = Some(SubscriptionStatus::Refunded);
        event.amount = money(data.get("refunded_amount"), currency);
        // `refunded_amount` is what the order has had refunded so far (Polar sends
        // `order.refunded` per refund, with the order as it then stands). The order's status
        // says whether that is all of it (`refunded`) or part (`partially_refunded`); without
        // a status, less than `total_amount` is a partial refund.
        if let Some(refunded) = event.amount.clone() {
            let partial = match str_field(data, "status") {
                Some("partially_refunded") => true,
                Some("refunded") => false,
                _ => data
                    .get("total_amount")
                    .and_then(Value::as_i64)
                    .is_some_and(|t| refunded.minor_units < t),
            };
            event.refund = Some(Refund {
                amount: refunded,
                partial,
            });
        }
        return Ok(event);
    }
    // order.paid: only one-time purchases are payments; subscription orders are carried by
    // the subscription events.
    let one_time = match str_field(data, "billing_reason") {
        Some(reason) => reason == "purchase",
        None => subscription_id.is_none(),
    };
    let mut event = ProviderEvent::new(
        event_id,
        event_type,
        if one_time {
            EventKind::Payment
        } else {
            EventKind::Ignored
        },
        occurred,
    );
    event.subscription_id = Some(if one_time {
        id.to_string()
    } else {
        subscription_id.unwrap_or(id).to_string()
    });
    if one_time {
        fill_ids(&mut event, data);
        event.status = Some(SubscriptionStatus::Active);
        let amount = data
            .get("total_amount")
            .or_else(|| data.get("net_amount"))
            .or_else(|| data.get("amount"));
        event.amount = money(amount, currency);
    }
    Ok(event)
}

/// Maps a verified delivery. `event_id` is the `webhook-id` header; `delivered_ms` the
/// `webhook-timestamp` in milliseconds (last fallback for `occurred-at`).
pub fn map_webhook(
    event_id: &str,
    body: &[u8],
    delivered_ms: i64,
) -> Result<Vec<ProviderEvent>, WebhookError> {
    let envelope: Value = serde_json::from_slice(body)
        .map_err(|e| WebhookError::Malformed(format!("the body is not JSON: {e}")))?;
    let event_type = str_field(&envelope, "type")
        .ok_or_else(|| WebhookError::Malformed("the body has no `type`".into()))?;
    let data = envelope.get("data").filter(|d| d.is_object());
    let event = match (event_type, data) {
        (t, Some(data)) if SUBSCRIPTION_EVENTS.contains(&t) => {
            subscription_event(event_id.to_string(), t, data, &envelope, delivered_ms)?
        }
        (t @ ("order.paid" | "order.refunded"), Some(data)) => {
            order_event(event_id.to_string(), t, data, &envelope, delivered_ms)?
        }
        (t, None)
            if SUBSCRIPTION_EVENTS.contains(&t) || t == "order.paid" || t == "order.refunded" =>
        {
            return Err(WebhookError::Malformed(format!(
                "`{t}` has no `data` object"
            )));
        }
        (t, _) => {
            let at = time_field(&envelope, "timestamp").unwrap_or(delivered_ms);
            ProviderEvent::new(event_id, t, EventKind::Ignored, at)
        }
    };
    Ok(vec![event])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(body: &Value) -> ProviderEvent {
        let mut events = map_webhook("wh_1", body.to_string().as_bytes(), 42).unwrap();
        assert_eq!(events.len(), 1);
        events.remove(0)
    }

    fn sub(event_type: &str, status: &str, cancel: bool) -> Value {
        json!({
            "type": event_type,
            "data": {"id": "sub_1", "status": status, "cancel_at_period_end": cancel,
                     "modified_at": "2026-01-01T00:00:00Z"}
        })
    }

    #[test]
    fn status_table() {
        use SubscriptionStatus as S;
        let cases = [
            ("subscription.active", "active", false, Some(S::Active)),
            ("subscription.updated", "trialing", false, Some(S::Trialing)),
            ("subscription.updated", "trialing", true, Some(S::Canceled)),
            ("subscription.paused", "paused", false, Some(S::Paused)),
            ("subscription.resumed", "active", false, Some(S::Active)),
            ("subscription.canceled", "active", true, Some(S::Canceled)),
            ("subscription.uncanceled", "active", false, Some(S::Active)),
            ("subscription.canceled", "canceled", false, Some(S::Revoked)),
            ("subscription.updated", "unpaid", false, Some(S::Revoked)),
            ("subscription.revoked", "canceled", true, Some(S::Revoked)),
            ("subscription.revoked", "active", false, Some(S::Revoked)),
            ("subscription.past_due", "past_due", false, Some(S::PastDue)),
            (
                "subscription.created",
                "incomplete",
                false,
                Some(S::Pending),
            ),
            (
                "subscription.updated",
                "incomplete_expired",
                false,
                Some(S::Revoked),
            ),
        ];
        for (t, status, cancel, want) in cases {
            let e = one(&sub(t, status, cancel));
            assert_eq!(e.status, want, "{t} {status} {cancel}");
            assert_eq!(e.kind, EventKind::Subscription, "{t}");
            assert_eq!(e.subscription_id.as_deref(), Some("sub_1"));
            assert_eq!(e.occurred_at, 1_767_225_600_000);
        }
    }

    #[test]
    fn an_unknown_status_is_ignored() {
        let e = one(&sub("subscription.updated", "hibernating", false));
        assert_eq!(e.kind, EventKind::Ignored);
        assert_eq!(e.status, None);
    }

    #[test]
    fn other_types_are_ignored() {
        for t in [
            "subscription.cycled",
            "checkout.updated",
            "benefit_grant.created",
            "order.created",
        ] {
            let e =
                one(&json!({"type": t, "timestamp": "2026-01-01T00:00:00Z", "data": {"id": "x"}}));
            assert_eq!(e.kind, EventKind::Ignored, "{t}");
            assert_eq!(e.event_id, "wh_1");
            assert_eq!(e.event_type, t);
        }
    }

    #[test]
    fn junk_is_malformed() {
        for body in [
            "not json".to_string(),
            "[]".into(),
            json!({"data": {}}).to_string(),
            json!({"type": "subscription.active"}).to_string(),
            json!({"type": "subscription.active", "data": {"status": "active"}}).to_string(),
            json!({"type": "subscription.active", "data": {"id": "s"}}).to_string(),
            json!({"type": "order.paid", "data": {"billing_reason": "purchase"}}).to_string(),
        ] {
            assert!(
                matches!(
                    map_webhook("id", body.as_bytes(), 0),
                    Err(WebhookError::Malformed(_))
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn discord_ids_as_strings_or_integers() {
        assert_eq!(
            discord_id(&json!("112233445566778899")).as_deref(),
            Some("112233445566778899")
        );
        // Above 2^53: must not lose precision.
        assert_eq!(
            discord_id(&json!(18_446_744_073_709_551_615u64)).as_deref(),
            Some("18446744073709551615")
        );
        let parsed: Value = serde_json::from_str(r#"{"v": 1234567890123456789}"#).unwrap();
        assert_eq!(
            discord_id(&parsed["v"]).as_deref(),
            Some("1234567890123456789")
        );
        for bad in [
            json!(1.5),
            json!(-3),
            json!("12a"),
            json!(""),
            json!(true),
            json!("99999999999999999999"),
        ] {
            assert_eq!(discord_id(&bad), None, "{bad}");
        }
    }

    #[test]
    fn metadata_and_customer_fallback() {
        let e = one(&json!({
            "type": "subscription.active",
            "data": {"id": "s", "status": "active", "metadata": {"docobo_guild_id": 1, "docobo_role_id": "3"},
                     "customer": {"external_id": "2"}, "amount": 999, "currency": "eur"}
        }));
        assert_eq!(e.guild_id.as_deref(), Some("1"));
        assert_eq!(e.user_id.as_deref(), Some("2"));
        assert_eq!(e.role_id.as_deref(), Some("3"));
        assert_eq!(
            e.amount,
            Some(Money {
                minor_units: 999,
                currency: "EUR".into()
            })
        );
        // No timestamps at all: the delivery time.
        assert_eq!(e.occurred_at, 42);
    }

    #[test]
    fn order_kinds() {
        let paid = |reason: Option<&str>, sub: Option<&str>| {
            one(
                &json!({"type": "order.paid", "data": {"id": "ord", "billing_reason": reason,
                "subscription_id": sub, "total_amount": 1500, "currency": "usd",
                "created_at": "2026-01-01T00:00:00Z"}}),
            )
        };
        let e = paid(Some("purchase"), None);
        assert_eq!(e.kind, EventKind::Payment);
        assert_eq!(e.subscription_id.as_deref(), Some("ord"));
        assert_eq!(e.status, Some(SubscriptionStatus::Active));
        assert_eq!(e.occurred_at, 1_767_225_600_000);
        for reason in [
            "subscription_create",
            "subscription_cycle",
            "subscription_update",
        ] {
            let e = paid(Some(reason), Some("sub_9"));
            assert_eq!(e.kind, EventKind::Ignored, "{reason}");
            assert_eq!(e.status, None);
        }
        assert_eq!(paid(None, None).kind, EventKind::Payment);
        assert_eq!(paid(None, Some("sub_9")).kind, EventKind::Ignored);

        let refund = |sub: Option<&str>| {
            one(
                &json!({"type": "order.refunded", "data": {"id": "ord", "subscription_id": sub,
                "refunded_amount": 700, "currency": "usd"}}),
            )
        };
        let e = refund(None);
        assert_eq!(e.kind, EventKind::Refund);
        assert_eq!(e.status, Some(SubscriptionStatus::Refunded));
        assert_eq!(e.subscription_id.as_deref(), Some("ord"));
        assert_eq!(
            e.amount,
            Some(Money {
                minor_units: 700,
                currency: "USD".into()
            })
        );
        assert_eq!(
            refund(Some("sub_9")).subscription_id.as_deref(),
            Some("sub_9")
        );
    }

    /// The shipped `subscription.active` fixture (docs/providers.md §1.5), changed as Polar
    /// changes it for the event under test.
    fn fixture(event_type: &str, edit: impl FnOnce(&mut Value)) -> ProviderEvent {
        let mut v: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/webhooks/polar-subscription-active.json"
        ))
        .unwrap();
        v["type"] = json!(event_type);
        edit(&mut v["data"]);
        one(&v)
    }

    #[test]
    fn pause_and_resume_map_to_paused_then_active() {
        let paused = fixture("subscription.paused", |d| {
            d["status"] = json!("paused");
            d["paused_at"] = json!("2026-09-20T08:00:00Z");
            d["resumes_at"] = json!("2026-10-20T08:00:00Z");
            d["modified_at"] = json!("2026-09-20T08:00:00Z");
        });
        assert_eq!(paused.kind, EventKind::Subscription);
        assert_eq!(paused.status, Some(SubscriptionStatus::Paused));
        assert_eq!(
            paused.customer_id.as_deref(),
            Some("992fae2a-2a17-4b7a-8d9e-e287cf90131b")
        );
        let resumed = fixture("subscription.resumed", |d| {
            d["status"] = json!("active");
            d["modified_at"] = json!("2026-10-20T08:00:00Z");
        });
        assert_eq!(resumed.status, Some(SubscriptionStatus::Active));
        assert!(resumed.occurred_at > paused.occurred_at);
    }

    #[test]
    fn a_trial_runs_until_trial_end() {
        let e = fixture("subscription.created", |d| {
            d["status"] = json!("trialing");
            d["trial_start"] = json!("2026-09-15T10:20:58Z");
            d["trial_end"] = json!("2026-09-22T10:20:58Z");
        });
        assert_eq!(e.status, Some(SubscriptionStatus::Trialing));
        assert_eq!(
            e.period_end,
            docobo_plugin_sdk::time::parse_rfc3339_ms("2026-09-22T10:20:58Z")
        );
    }

    #[test]
    fn events_carry_the_customer_id_and_no_test_flag_by_themselves() {
        let e = fixture("subscription.active", |_| {});
        assert_eq!(
            e.customer_id.as_deref(),
            Some("992fae2a-2a17-4b7a-8d9e-e287cf90131b")
        );
        assert!(!e.test);
        // Without `customer_id`, the embedded customer's id.
        let e = fixture("subscription.active", |d| {
            d.as_object_mut().unwrap().remove("customer_id");
        });
        assert_eq!(
            e.customer_id.as_deref(),
            Some("992fae2a-2a17-4b7a-8d9e-e287cf90131b")
        );
    }

    #[test]
    fn order_refunds_say_how_much_and_whether_in_part() {
        let mut order: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/webhooks/polar-order-paid.json"
        ))
        .unwrap();
        order["type"] = json!("order.refunded");
        order["data"]["status"] = json!("partially_refunded");
        order["data"]["refunded_amount"] = json!(500);
        let partial = one(&order);
        assert_eq!(partial.kind, EventKind::Refund);
        let refund = partial.refund.expect("refund");
        assert_eq!(refund.amount.minor_units, 500);
        assert_eq!(refund.amount.currency, "USD");
        assert!(refund.partial);
        order["data"]["status"] = json!("refunded");
        order["data"]["refunded_amount"] = json!(1500);
        let full = one(&order).refund.expect("refund");
        assert_eq!(full.amount.minor_units, 1500);
        assert!(!full.partial);
        // Without a status, the amounts decide.
        order["data"].as_object_mut().unwrap().remove("status");
        order["data"]["refunded_amount"] = json!(300);
        assert!(one(&order).refund.expect("refund").partial);
    }
}
