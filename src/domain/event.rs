//! A verified provider event, as Docobo's services see it: whatever plugin API version it came
//! through, `providers` converts it into this type at its boundary, parsing the Discord ids
//! once. Nothing here depends on the WIT bindings.

use serde_json::json;

use super::{GuildId, RoleId, SubscriptionStatus, UnixMillis, UserId, ValidationError};

/// What a verified event means for Docobo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A subscription's state changed: apply `status` and `period_end`.
    Subscription,
    /// A one-time payment (an order, or a bank transfer matched by `payment_code`).
    Payment,
    /// A payment was refunded: `refund` says how much and whether in part (a refund
    /// without it, as from a 0.1 plugin, is a full one).
    Refund,
    /// A verified event of a type Docobo does not use: recorded, nothing changes.
    Ignored,
    /// The subscription moved to another product: `product_id` is the new one,
    /// `previous_product_id` the old one (plugin API 0.2).
    PlanChange,
    /// A chargeback: `dispute` says where it stands (plugin API 0.2).
    Dispute,
}

impl EventKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subscription => "subscription",
            Self::Payment => "payment",
            Self::Refund => "refund",
            Self::Ignored => "ignored",
            Self::PlanChange => "plan_change",
            Self::Dispute => "dispute",
        }
    }
}

/// An id a provider's metadata claims (a Discord id from the checkout): the text as sent and
/// what it parsed to. A bad id is kept as an error, so that the event is recorded as rejected
/// with the reason rather than dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim<T> {
    pub raw: String,
    pub id: Result<T, ValidationError>,
}

impl<T> Claim<T> {
    /// Parses `raw` with `parse`.
    pub fn parse(raw: String, parse: impl FnOnce(&str) -> Result<T, ValidationError>) -> Self {
        let id = parse(&raw);
        Self { raw, id }
    }
}

/// An amount a provider says was paid. The currency is the provider's text (compared without
/// regard to case), not a validated [`super::Currency`]: a payment in a currency Docobo does
/// not know is still recorded, and then refused as not matching the price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaidAmount {
    pub minor_units: i64,
    pub currency: String,
}

/// A refund's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// What this refund returned.
    pub amount: PaidAmount,
    /// Less than the whole payment was returned.
    pub partial: bool,
}

/// Where a dispute (chargeback) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisputeStatus {
    /// Opened: the money is held; access is kept.
    Opened,
    /// Decided for the merchant: nothing changes.
    Won,
    /// Decided for the buyer: as a full refund.
    Lost,
}

impl DisputeStatus {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Won => "won",
            Self::Lost => "lost",
        }
    }
}

/// A verified webhook (or polled) event, normalized. Only ids: no names or e-mails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderEvent {
    /// The provider's unique id of this event (for idempotency).
    pub event_id: String,
    /// The provider's own event type, e.g. `subscription.active`, for logs.
    pub event_type: String,
    pub kind: EventKind,
    /// The provider's id of the subscription (or order, for one-time payments).
    pub subscription_id: Option<String>,
    /// Discord ids from the checkout metadata.
    pub guild: Option<Claim<GuildId>>,
    pub user: Option<Claim<UserId>>,
    pub role: Option<Claim<RoleId>>,
    /// The provider's product id, when the role must be found through the product.
    pub product_id: Option<String>,
    /// The payment code found in a bank transfer.
    pub payment_code: Option<String>,
    pub status: Option<SubscriptionStatus>,
    /// End of the paid period.
    pub period_end: Option<UnixMillis>,
    pub amount: Option<PaidAmount>,
    /// When the provider produced this state.
    pub occurred_at: UnixMillis,
    /// The provider's customer id (for its manage page).
    pub customer_id: Option<String>,
    /// For a plan change: the product the subscription left.
    pub previous_product_id: Option<String>,
    /// For a refund: how much, and whether in part.
    pub refund: Option<Refund>,
    /// For a dispute: where it stands.
    pub dispute: Option<DisputeStatus>,
    /// A provider's test mode or sandbox, or an owner's test delivery: kept apart from
    /// real events in counts.
    pub test: bool,
}

impl ProviderEvent {
    /// The normalized event as stored in `webhook_events.event_json`: ids, kinds, statuses,
    /// amounts; nothing personal.
    #[must_use]
    pub fn normalized_json(&self) -> String {
        json!({
            "kind": self.kind.as_str(),
            "subscription_id": self.subscription_id,
            "guild_id": raw(self.guild.as_ref()),
            "user_id": raw(self.user.as_ref()),
            "role_id": raw(self.role.as_ref()),
            "product_id": self.product_id,
            "payment_code": self.payment_code,
            "status": self.status.map(SubscriptionStatus::as_str),
            "period_end": self.period_end,
            "amount": self.amount.as_ref().map(|m| json!({"minor_units": m.minor_units, "currency": m.currency})),
            "occurred_at": self.occurred_at,
            "customer_id": self.customer_id,
            "previous_product_id": self.previous_product_id,
            "refund": self.refund.as_ref().map(|r| json!({
                "minor_units": r.amount.minor_units,
                "currency": r.amount.currency,
                "partial": r.partial,
            })),
            "dispute": self.dispute.map(DisputeStatus::as_str),
            "test": self.test,
        })
        .to_string()
    }

    /// Whether the event carries any Docobo checkout metadata at all.
    #[must_use]
    pub fn has_checkout_metadata(&self) -> bool {
        self.guild.is_some() || self.user.is_some() || self.role.is_some()
    }
}

/// The longest provider string stored, in bytes: ids (event, subscription, product). Longer
/// is refused before storage ([`ProviderEvent::check_lengths`]), so a plugin's output, or a
/// signed header it passes through, cannot fill the database.
pub const MAX_ID_BYTES: usize = 255;
/// The longest event type, payment code, claimed Discord id (as sent) or currency stored.
pub const MAX_SHORT_BYTES: usize = 64;

/// `Err` when `value` (the `field`) is longer than `max` bytes.
///
/// # Errors
/// The field, its length and the limit.
pub fn check_length(field: &'static str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.len() <= max {
        return Ok(());
    }
    Err(ValidationError {
        field,
        message: format!(
            "is {} bytes long; at most {max} are accepted. Fix: the provider (or its plugin) must send a shorter {field}",
            value.len()
        ),
    })
}

impl ProviderEvent {
    /// Every string that would be stored is within its limit ([`MAX_ID_BYTES`],
    /// [`MAX_SHORT_BYTES`]). The one length check for plugin output: webhooks and the poll
    /// both call it before anything is written.
    ///
    /// # Errors
    /// The first field that is too long.
    pub fn check_lengths(&self) -> Result<(), ValidationError> {
        check_length("event_id", &self.event_id, MAX_ID_BYTES)?;
        check_length("event_type", &self.event_type, MAX_SHORT_BYTES)?;
        let optional = [
            (
                "subscription_id",
                self.subscription_id.as_deref(),
                MAX_ID_BYTES,
            ),
            ("product_id", self.product_id.as_deref(), MAX_ID_BYTES),
            (
                "previous_product_id",
                self.previous_product_id.as_deref(),
                MAX_ID_BYTES,
            ),
            ("customer_id", self.customer_id.as_deref(), MAX_ID_BYTES),
            (
                "payment_code",
                self.payment_code.as_deref(),
                MAX_SHORT_BYTES,
            ),
            ("guild_id", raw(self.guild.as_ref()), MAX_SHORT_BYTES),
            ("user_id", raw(self.user.as_ref()), MAX_SHORT_BYTES),
            ("role_id", raw(self.role.as_ref()), MAX_SHORT_BYTES),
            (
                "currency",
                self.amount.as_ref().map(|a| a.currency.as_str()),
                MAX_SHORT_BYTES,
            ),
            (
                "refund_currency",
                self.refund.as_ref().map(|r| r.amount.currency.as_str()),
                MAX_SHORT_BYTES,
            ),
        ];
        for (field, value, max) in optional {
            if let Some(value) = value {
                check_length(field, value, max)?;
            }
        }
        Ok(())
    }
}

/// The text a claim was sent as.
fn raw<T>(claim: Option<&Claim<T>>) -> Option<&str> {
    claim.map(|c| c.raw.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_keep_the_text_and_the_parse_result() {
        let good = Claim::parse("42".to_owned(), GuildId::parse);
        assert_eq!(good.id, Ok(GuildId::new(42).expect("id")));
        let bad = Claim::parse("x1".to_owned(), GuildId::parse);
        assert_eq!(bad.raw, "x1");
        assert!(bad.id.is_err());
    }

    type Set = fn(&mut ProviderEvent, String);

    #[test]
    fn every_stored_string_has_a_length_limit() {
        let ok = ProviderEvent {
            event_id: "e".repeat(MAX_ID_BYTES),
            event_type: "t".into(),
            kind: EventKind::Ignored,
            subscription_id: None,
            guild: None,
            user: None,
            role: None,
            product_id: None,
            payment_code: None,
            status: None,
            period_end: None,
            amount: None,
            occurred_at: 0,
            customer_id: None,
            previous_product_id: None,
            refund: None,
            dispute: None,
            test: false,
        };
        assert_eq!(ok.check_lengths(), Ok(()));
        let long = "x".repeat(200_000);
        let cases: [(&str, Set); 12] = [
            ("event_id", |e, v| e.event_id = v),
            ("event_type", |e, v| e.event_type = v),
            ("subscription_id", |e, v| e.subscription_id = Some(v)),
            ("product_id", |e, v| e.product_id = Some(v)),
            ("previous_product_id", |e, v| {
                e.previous_product_id = Some(v);
            }),
            ("customer_id", |e, v| e.customer_id = Some(v)),
            ("refund_currency", |e, v| {
                e.refund = Some(Refund {
                    amount: PaidAmount {
                        minor_units: 1,
                        currency: v,
                    },
                    partial: true,
                });
            }),
            ("payment_code", |e, v| e.payment_code = Some(v)),
            ("guild_id", |e, v| {
                e.guild = Some(Claim::parse(v, GuildId::parse));
            }),
            ("user_id", |e, v| {
                e.user = Some(Claim::parse(v, UserId::parse));
            }),
            ("role_id", |e, v| {
                e.role = Some(Claim::parse(v, RoleId::parse));
            }),
            ("currency", |e, v| {
                e.amount = Some(PaidAmount {
                    minor_units: 1,
                    currency: v,
                });
            }),
        ];
        for (field, set) in cases {
            let mut event = ok.clone();
            set(&mut event, long.clone());
            let error = event.check_lengths().expect_err(field);
            assert_eq!(error.field, field);
            assert!(error.message.contains("200000 bytes"), "{error}");
        }
    }

    #[test]
    fn the_stored_json_names_ids_as_sent_and_no_more() {
        let event = ProviderEvent {
            event_id: "e1".into(),
            event_type: "subscription.active".into(),
            kind: EventKind::Subscription,
            subscription_id: Some("sub_1".into()),
            guild: Some(Claim::parse("10".into(), GuildId::parse)),
            user: None,
            role: Some(Claim::parse("bad".into(), RoleId::parse)),
            product_id: None,
            payment_code: None,
            status: Some(SubscriptionStatus::Active),
            period_end: Some(5),
            amount: Some(PaidAmount {
                minor_units: 499,
                currency: "USD".into(),
            }),
            occurred_at: 3,
            customer_id: Some("cus_1".into()),
            previous_product_id: None,
            refund: None,
            dispute: Some(DisputeStatus::Opened),
            test: true,
        };
        let stored: serde_json::Value =
            serde_json::from_str(&event.normalized_json()).expect("json");
        assert_eq!(stored["kind"], "subscription");
        assert_eq!(stored["guild_id"], "10");
        assert_eq!(stored["role_id"], "bad");
        assert!(stored["user_id"].is_null());
        assert_eq!(stored["status"], "active");
        assert_eq!(stored["amount"]["minor_units"], 499);
        assert_eq!(stored["customer_id"], "cus_1");
        assert_eq!(stored["dispute"], "opened");
        assert_eq!(stored["test"], true);
        assert_eq!(stored.as_object().map(serde_json::Map::len), Some(16));
    }
}
