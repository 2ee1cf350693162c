//! Turning verified Stripe event objects into [`ProviderEvent`]s.
//!
//! The input is a Stripe `event` (`id`, `object: "event"`, `api_version`, `created`,
//! `data.object`, `data.previous_attributes`, `livemode`, `type`), as a webhook delivers it
//! and as `GET /v1/events` lists it. Parsing is lenient: unknown fields are ignored and a
//! field of an unexpected type reads as absent, so both the pre-2025 shapes and the
//! `2025-03-31.basil` ones are read (`current_period_end` moved from the subscription to
//! its items; `invoice.subscription` moved to `invoice.parent.subscription_details`;
//! `charge.invoice` was removed).
//!
//! Ids Docobo matches on:
//!
//! * a subscription is its Stripe subscription id (`sub_…`);
//! * a one-time purchase is its `PaymentIntent` id (`pi_…`): the checkout session, the
//!   charge and a dispute all name it, so a refund or dispute finds the purchase;
//! * the "product" of a role is the Stripe **Price** id (`price_…`) `create-product`
//!   returns: a checkout needs a price, and a subscription's items name their price.
//!
//! A refund or dispute of a *subscription* payment names only the charge and its
//! `PaymentIntent`; which subscription it paid is asked of Stripe through a
//! [`SubscriptionLookup`] (one or two API calls, see `api::HostLookup`).

use docobo_plugin_sdk::{
    DisputeStatus, EventKind, Money, ProviderEvent, Refund, SubscriptionStatus,
};
use serde_json::Value;

/// Every event type the plugin reads: what the owner enables on the Stripe endpoint, and
/// what `poll` asks `/v1/events` for.
pub const WEBHOOK_EVENTS: [&str; 12] = [
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "invoice.paid",
    "invoice.payment_failed",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.closed",
];

/// Metadata keys the checkout writes (and every later object carries).
pub const META_GUILD: &str = "docobo_guild_id";
/// See [`META_GUILD`].
pub const META_USER: &str = "docobo_user_id";
/// See [`META_GUILD`].
pub const META_ROLE: &str = "docobo_role_id";
/// The price bought, on checkout sessions (they do not list their line items in events).
pub const META_PRICE: &str = "docobo_price_id";
/// Free-trial days, on the price `create-product` makes (read back by `create-checkout`).
pub const META_TRIAL_DAYS: &str = "docobo_trial_days";

/// Why an event could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapError {
    /// The event is not understood (verified, but malformed).
    Malformed(String),
    /// Asking Stripe which subscription a charge paid failed (retry later).
    Lookup(String),
    /// The configuration does not allow the lookup (no secret key).
    Misconfigured(String),
}

/// Asks Stripe which subscription a payment belongs to.
pub trait SubscriptionLookup {
    /// The subscription an invoice bills, if any.
    fn subscription_of_invoice(&self, invoice_id: &str) -> Result<Option<String>, MapError>;
    /// The subscription whose invoice a `PaymentIntent` paid, if any (none: a one-time
    /// purchase).
    fn subscription_of_payment_intent(&self, pi: &str) -> Result<Option<String>, MapError>;
}

/// A lookup that is never needed (tests of events that name their subscription), or that
/// answers "no subscription" for everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLookup;

impl SubscriptionLookup for NoLookup {
    fn subscription_of_invoice(&self, _: &str) -> Result<Option<String>, MapError> {
        Ok(None)
    }
    fn subscription_of_payment_intent(&self, _: &str) -> Result<Option<String>, MapError> {
        Ok(None)
    }
}

pub(crate) fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// An id field that may be a string or an expanded object with an `id`.
pub(crate) fn id_field(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        obj @ Value::Object(_) => str_field(obj, "id").map(str::to_string),
        _ => None,
    }
}

/// Unix seconds → milliseconds.
fn secs_field(v: &Value, key: &str) -> Option<i64> {
    v.get(key)?.as_i64()?.checked_mul(1000)
}

/// A Discord snowflake from metadata: decimal digits (Stripe metadata values are strings).
#[must_use]
pub fn discord_id(v: &Value) -> Option<String> {
    let s = v.as_str()?.trim();
    (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.to_string())
        .filter(|s| s.parse::<u64>().is_ok())
}

fn metadata_id(metadata: Option<&Value>, key: &str) -> Option<String> {
    metadata.and_then(|m| m.get(key)).and_then(discord_id)
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

/// Fills the Discord ids from a metadata object.
fn fill_ids(event: &mut ProviderEvent, metadata: Option<&Value>) {
    event.guild_id = metadata_id(metadata, META_GUILD);
    event.user_id = metadata_id(metadata, META_USER);
    event.role_id = metadata_id(metadata, META_ROLE);
}

/// The parts of the envelope every event carries.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    /// `evt_…`: the idempotency key.
    pub id: &'a str,
    /// e.g. `invoice.paid`.
    pub event_type: &'a str,
    /// `created`, in milliseconds.
    pub occurred_at: i64,
    /// `livemode: false`.
    pub test: bool,
    /// `data.object`.
    pub object: Option<&'a Value>,
    /// `data.previous_attributes` (`*.updated` events).
    pub previous: Option<&'a Value>,
}

impl<'a> Envelope<'a> {
    /// Reads an event object; `fallback_ms` (the signature's `t`) stands in for a missing
    /// `created`.
    pub fn read(event: &'a Value, fallback_ms: i64) -> Result<Self, MapError> {
        if !event.is_object() {
            return Err(MapError::Malformed("the body is not a JSON object".into()));
        }
        let id = str_field(event, "id")
            .ok_or_else(|| MapError::Malformed("the event has no `id`".into()))?;
        let event_type = str_field(event, "type")
            .ok_or_else(|| MapError::Malformed("the event has no `type`".into()))?;
        let data = event.get("data");
        Ok(Self {
            id,
            event_type,
            occurred_at: secs_field(event, "created").unwrap_or(fallback_ms),
            // Absent livemode reads as live: only an explicit `false` is test mode.
            test: event.get("livemode").and_then(Value::as_bool) == Some(false),
            object: data.and_then(|d| d.get("object")).filter(|o| o.is_object()),
            previous: data
                .and_then(|d| d.get("previous_attributes"))
                .filter(|o| o.is_object()),
        })
    }

    fn event(&self, kind: EventKind) -> ProviderEvent {
        let mut e = ProviderEvent::new(self.id, self.event_type, kind, self.occurred_at);
        e.test = self.test;
        e
    }

    fn object(&self) -> Result<&'a Value, MapError> {
        self.object.ok_or_else(|| {
            MapError::Malformed(format!("`{}` has no `data.object`", self.event_type))
        })
    }
}

/// The Docobo status of a Stripe subscription status; `None` for one Docobo has no name
/// for (a status Stripe adds later).
///
/// `active`/`trialing` with `cancel_at_period_end` (or a `cancel_at` date) → canceled
/// (entitled until then); `trialing` → trialing; `past_due` → past-due; `canceled`,
/// `unpaid`, `incomplete_expired` → revoked; `incomplete` → pending; `paused` → paused.
#[must_use]
pub fn subscription_status(status: &str, cancel_scheduled: bool) -> Option<SubscriptionStatus> {
    use SubscriptionStatus as S;
    match status {
        "active" | "trialing" if cancel_scheduled => Some(S::Canceled),
        "active" => Some(S::Active),
        "trialing" => Some(S::Trialing),
        "past_due" => Some(S::PastDue),
        "canceled" | "unpaid" | "incomplete_expired" => Some(S::Revoked),
        "incomplete" => Some(S::Pending),
        "paused" => Some(S::Paused),
        _ => None,
    }
}

fn first_item(sub: &Value) -> Option<&Value> {
    sub.get("items")?.get("data")?.as_array()?.first()
}

/// The price id of a subscription (or of `previous_attributes`): `items.data[0].price.id`,
/// else the legacy `plan.id`.
#[must_use]
pub fn subscription_price(sub: &Value) -> Option<String> {
    first_item(sub)
        .and_then(|item| id_field(item, "price").or_else(|| id_field(item, "plan")))
        .or_else(|| id_field(sub, "plan"))
}

/// The end of the paid period: the subscription's `current_period_end` (API versions
/// before 2025-03-31), else the latest `items.data[].current_period_end`, else `trial_end`;
/// in milliseconds.
#[must_use]
pub fn subscription_period_end(sub: &Value) -> Option<i64> {
    secs_field(sub, "current_period_end")
        .or_else(|| {
            sub.get("items")?
                .get("data")?
                .as_array()?
                .iter()
                .filter_map(|item| secs_field(item, "current_period_end"))
                .max()
        })
        .or_else(|| secs_field(sub, "trial_end"))
}

fn subscription_amount(sub: &Value) -> Option<Money> {
    let item = first_item(sub)?;
    let price = item.get("price").filter(|p| p.is_object())?;
    let quantity = item.get("quantity").and_then(Value::as_i64).unwrap_or(1);
    let unit = price.get("unit_amount")?.as_i64()?;
    money(
        Some(&Value::from(unit.checked_mul(quantity)?)),
        str_field(price, "currency"),
    )
}

/// Status of a subscription object, with the scheduled-cancel rule applied.
#[must_use]
pub fn subscription_object_status(sub: &Value) -> Option<SubscriptionStatus> {
    let cancel_scheduled = sub.get("cancel_at_period_end").and_then(Value::as_bool) == Some(true)
        || sub.get("cancel_at").and_then(Value::as_i64).is_some();
    subscription_status(str_field(sub, "status")?, cancel_scheduled)
}

fn subscription_event(env: &Envelope<'_>) -> Result<ProviderEvent, MapError> {
    let sub = env.object()?;
    let id = str_field(sub, "id")
        .ok_or_else(|| MapError::Malformed("the subscription has no id".into()))?;
    let status = if env.event_type == "customer.subscription.deleted" {
        Some(SubscriptionStatus::Revoked)
    } else {
        subscription_object_status(sub)
    };
    let Some(status) = status else {
        let mut e = env.event(EventKind::Ignored);
        e.subscription_id = Some(id.to_string());
        return Ok(e);
    };
    let price = subscription_price(sub);
    let previous_price = env
        .previous
        .filter(|p| p.get("items").is_some())
        .and_then(subscription_price);
    let plan_changed = matches!((&previous_price, &price), (Some(old), Some(new)) if old != new);
    let mut e = env.event(if plan_changed {
        EventKind::PlanChange
    } else {
        EventKind::Subscription
    });
    e.subscription_id = Some(id.to_string());
    fill_ids(&mut e, sub.get("metadata"));
    e.customer_id = id_field(sub, "customer");
    e.product_id = price;
    if plan_changed {
        e.previous_product_id = previous_price;
    }
    e.status = Some(status);
    e.period_end = subscription_period_end(sub);
    // A cancellation at a set date ends the entitlement then, if earlier.
    if status == SubscriptionStatus::Canceled
        && let Some(cancel_at) = secs_field(sub, "cancel_at")
    {
        e.period_end = Some(e.period_end.map_or(cancel_at, |end| end.min(cancel_at)));
    }
    e.amount = subscription_amount(sub);
    Ok(e)
}

fn checkout_event(env: &Envelope<'_>) -> Result<ProviderEvent, MapError> {
    let session = env.object()?;
    let session_id = str_field(session, "id")
        .ok_or_else(|| MapError::Malformed("the checkout session has no id".into()))?;
    let payment_status = str_field(session, "payment_status").unwrap_or("");
    let metadata = session.get("metadata");
    let (kind, subscription_id, status) = match str_field(session, "mode") {
        Some("payment") => {
            // Delayed methods (bank debits) complete unpaid; the money comes with
            // `checkout.session.async_payment_succeeded`.
            if !matches!(payment_status, "paid" | "no_payment_required") {
                let mut e = env.event(EventKind::Ignored);
                e.subscription_id = id_field(session, "payment_intent");
                return Ok(e);
            }
            let purchase =
                id_field(session, "payment_intent").unwrap_or_else(|| session_id.to_string());
            (EventKind::Payment, purchase, SubscriptionStatus::Active)
        }
        Some("subscription") => {
            let sub = id_field(session, "subscription").ok_or_else(|| {
                MapError::Malformed("the subscription checkout names no subscription".into())
            })?;
            let status = match payment_status {
                "paid" => SubscriptionStatus::Active,
                // A free trial: nothing is charged until it ends.
                "no_payment_required" => SubscriptionStatus::Trialing,
                _ => SubscriptionStatus::Pending,
            };
            (EventKind::Subscription, sub, status)
        }
        // `setup` sessions (saving a card) buy nothing.
        _ => return Ok(env.event(EventKind::Ignored)),
    };
    let mut e = env.event(kind);
    e.subscription_id = Some(subscription_id);
    fill_ids(&mut e, metadata);
    e.product_id = metadata
        .and_then(|m| m.get(META_PRICE))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    e.customer_id = id_field(session, "customer");
    e.status = Some(status);
    e.amount = money(session.get("amount_total"), str_field(session, "currency"));
    Ok(e)
}

/// The subscription an invoice bills: `subscription` (before 2025-03-31), else
/// `parent.subscription_details.subscription`.
#[must_use]
pub fn invoice_subscription(invoice: &Value) -> Option<String> {
    id_field(invoice, "subscription").or_else(|| {
        invoice
            .get("parent")
            .and_then(|p| p.get("subscription_details"))
            .and_then(|d| id_field(d, "subscription"))
    })
}

fn invoice_metadata(invoice: &Value) -> Option<&Value> {
    invoice
        .get("subscription_details")
        .or_else(|| {
            invoice
                .get("parent")
                .and_then(|p| p.get("subscription_details"))
        })
        .and_then(|d| d.get("metadata"))
}

fn invoice_lines(invoice: &Value) -> impl Iterator<Item = &Value> {
    invoice
        .get("lines")
        .and_then(|l| l.get("data"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The price of an invoice's first line: `price.id` (older) or
/// `pricing.price_details.price` (2025-03-31 and later).
fn invoice_price(invoice: &Value) -> Option<String> {
    let line = invoice_lines(invoice).next()?;
    id_field(line, "price").or_else(|| {
        line.get("pricing")
            .and_then(|p| p.get("price_details"))
            .and_then(|d| id_field(d, "price"))
    })
}

fn invoice_event(env: &Envelope<'_>) -> Result<ProviderEvent, MapError> {
    let invoice = env.object()?;
    str_field(invoice, "id").ok_or_else(|| MapError::Malformed("the invoice has no id".into()))?;
    let Some(sub) = invoice_subscription(invoice) else {
        // An invoice outside a subscription was not sold by Docobo.
        return Ok(env.event(EventKind::Ignored));
    };
    let first_invoice = str_field(invoice, "billing_reason") == Some("subscription_create");
    let paid = env.event_type == "invoice.paid";
    // The first invoice is carried by the subscription and checkout events: a free trial's
    // $0 invoice must not turn a trialing subscription into an active one, and a failed
    // first payment leaves the subscription `incomplete` (pending), not past due.
    let zero = invoice.get("amount_paid").and_then(Value::as_i64) == Some(0);
    if first_invoice && (!paid || zero) {
        let mut e = env.event(EventKind::Ignored);
        e.subscription_id = Some(sub);
        return Ok(e);
    }
    let mut e = env.event(EventKind::Subscription);
    e.subscription_id = Some(sub);
    fill_ids(&mut e, invoice_metadata(invoice));
    e.customer_id = id_field(invoice, "customer");
    e.product_id = invoice_price(invoice);
    let currency = str_field(invoice, "currency");
    if paid {
        e.status = Some(SubscriptionStatus::Active);
        // The new period is what the lines bill (the invoice's own period_end is the end
        // of the usage period just past).
        e.period_end = invoice_lines(invoice)
            .filter_map(|line| line.get("period").and_then(|p| secs_field(p, "end")))
            .max();
        e.amount = money(invoice.get("amount_paid"), currency);
    } else {
        e.status = Some(SubscriptionStatus::PastDue);
        e.amount = money(invoice.get("amount_due"), currency);
    }
    Ok(e)
}

/// Which purchase a payment (charge or dispute) belongs to: a subscription id, or the
/// `PaymentIntent` id of a one-time purchase.
fn purchase_of(
    lookup: &dyn SubscriptionLookup,
    object: &Value,
    pi: Option<&str>,
    invoice: Option<&str>,
    ours_one_time: bool,
    fallback: &str,
) -> Result<String, MapError> {
    if let Some(invoice) = invoice
        && let Some(sub) = lookup.subscription_of_invoice(invoice)?
    {
        return Ok(sub);
    }
    let Some(pi) = pi else {
        return Ok(id_field(object, "charge").unwrap_or_else(|| fallback.to_string()));
    };
    if invoice.is_some() || ours_one_time {
        // An invoice without a subscription, or a charge carrying Docobo's checkout
        // metadata (copied from `payment_intent_data[metadata]`): a one-time purchase.
        return Ok(pi.to_string());
    }
    Ok(lookup
        .subscription_of_payment_intent(pi)?
        .unwrap_or_else(|| pi.to_string()))
}

fn refund_event(
    env: &Envelope<'_>,
    lookup: &dyn SubscriptionLookup,
) -> Result<ProviderEvent, MapError> {
    let charge = env.object()?;
    let charge_id = str_field(charge, "id")
        .ok_or_else(|| MapError::Malformed("the charge has no id".into()))?;
    let amount = charge.get("amount").and_then(Value::as_i64);
    let refunded = charge
        .get("amount_refunded")
        .and_then(Value::as_i64)
        .ok_or_else(|| MapError::Malformed("the charge has no amount_refunded".into()))?;
    // amount_refunded is the running total; this event refunded what it added.
    let before = env
        .previous
        .and_then(|p| p.get("amount_refunded"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let this_refund = if before > 0 && before <= refunded {
        refunded - before
    } else {
        refunded
    };
    let partial = amount.is_some_and(|a| refunded < a);
    let metadata = charge.get("metadata");
    let ours = metadata_id(metadata, META_GUILD).is_some();
    let pi = id_field(charge, "payment_intent");
    let invoice = id_field(charge, "invoice");
    let purchase = purchase_of(
        lookup,
        charge,
        pi.as_deref(),
        invoice.as_deref(),
        ours,
        charge_id,
    )?;
    let mut e = env.event(EventKind::Refund);
    e.subscription_id = Some(purchase);
    fill_ids(&mut e, metadata);
    e.customer_id = id_field(charge, "customer");
    // A partial refund leaves the decision to the host's policy; a full one ends access.
    e.status = (!partial).then_some(SubscriptionStatus::Refunded);
    let currency = str_field(charge, "currency");
    e.amount = money(Some(&Value::from(this_refund)), currency);
    e.refund =
        money(Some(&Value::from(this_refund)), currency).map(|amount| Refund { amount, partial });
    Ok(e)
}

fn dispute_event(
    env: &Envelope<'_>,
    lookup: &dyn SubscriptionLookup,
) -> Result<ProviderEvent, MapError> {
    let dispute = env.object()?;
    let dispute_id = str_field(dispute, "id")
        .ok_or_else(|| MapError::Malformed("the dispute has no id".into()))?;
    let outcome = if env.event_type == "charge.dispute.created" {
        Some(DisputeStatus::Opened)
    } else {
        match str_field(dispute, "status") {
            // `warning_closed`: an inquiry closed without turning into a chargeback; the
            // money stays, as for a won dispute.
            Some("won" | "warning_closed") => Some(DisputeStatus::Won),
            Some("lost") => Some(DisputeStatus::Lost),
            _ => None,
        }
    };
    let Some(outcome) = outcome else {
        return Ok(env.event(EventKind::Ignored));
    };
    let pi = id_field(dispute, "payment_intent");
    let purchase = purchase_of(lookup, dispute, pi.as_deref(), None, false, dispute_id)?;
    let mut e = env.event(EventKind::Dispute);
    e.subscription_id = Some(purchase);
    fill_ids(&mut e, dispute.get("metadata"));
    e.dispute = Some(outcome);
    e.amount = money(dispute.get("amount"), str_field(dispute, "currency"));
    Ok(e)
}

/// Maps one verified event object. `fallback_ms` stands in for a missing `created`.
pub fn map_event(
    lookup: &dyn SubscriptionLookup,
    event: &Value,
    fallback_ms: i64,
) -> Result<ProviderEvent, MapError> {
    let env = Envelope::read(event, fallback_ms)?;
    match env.event_type {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            checkout_event(&env)
        }
        t if t.starts_with("customer.subscription.") && WEBHOOK_EVENTS.contains(&t) => {
            subscription_event(&env)
        }
        "invoice.paid" | "invoice.payment_failed" => invoice_event(&env),
        "charge.refunded" => refund_event(&env, lookup),
        "charge.dispute.created" | "charge.dispute.closed" => dispute_event(&env, lookup),
        _ => Ok(env.event(EventKind::Ignored)),
    }
}

/// Maps a verified webhook body.
pub fn map_body(
    lookup: &dyn SubscriptionLookup,
    body: &[u8],
    fallback_ms: i64,
) -> Result<ProviderEvent, MapError> {
    let event: Value = serde_json::from_slice(body)
        .map_err(|e| MapError::Malformed(format!("the body is not JSON: {e}")))?;
    map_event(lookup, &event, fallback_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        use SubscriptionStatus as S;
        let cases = [
            ("active", false, Some(S::Active)),
            ("active", true, Some(S::Canceled)),
            ("trialing", false, Some(S::Trialing)),
            ("trialing", true, Some(S::Canceled)),
            ("past_due", false, Some(S::PastDue)),
            ("canceled", false, Some(S::Revoked)),
            ("unpaid", false, Some(S::Revoked)),
            ("incomplete", false, Some(S::Pending)),
            ("incomplete_expired", false, Some(S::Revoked)),
            ("paused", false, Some(S::Paused)),
            ("hibernating", false, None),
        ];
        for (status, cancel, want) in cases {
            assert_eq!(
                subscription_status(status, cancel),
                want,
                "{status} {cancel}"
            );
        }
    }

    #[test]
    fn discord_ids() {
        assert_eq!(
            discord_id(&Value::from("112233445566778899")).as_deref(),
            Some("112233445566778899")
        );
        for bad in ["", "12a", "-1", "99999999999999999999"] {
            assert_eq!(discord_id(&Value::from(bad)), None, "{bad}");
        }
        assert_eq!(discord_id(&Value::from(5)), None);
    }
}
