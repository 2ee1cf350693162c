//! Conversions between the plugin API's generated types (`api`, private to `providers`) and
//! Docobo's own. Plugin output is parsed here once (Discord ids included), so a new API
//! version needs new conversions and nothing outside this module.

use super::bindings::api;
use super::types::{Checkout, CheckoutRequest, ConfigField, Polled, ProductSpec};
use crate::domain::{
    Billing, Claim, EventKind, GuildId, Money, PaidAmount, ProviderEvent, RoleId,
    SubscriptionStatus, UserId,
};

/// A price as plugins see it.
pub(super) fn money(money: Money) -> api::Money {
    api::Money {
        minor_units: money.minor_units(),
        currency: money.currency().as_str().to_owned(),
    }
}

/// A billing period as plugins see it.
pub(super) fn billing(billing: Billing) -> api::Billing {
    match billing {
        Billing::Monthly => api::Billing::Monthly,
        Billing::Yearly => api::Billing::Yearly,
        Billing::OneTime => api::Billing::OneTime,
        Billing::Days(n) => api::Billing::Days(n.get()),
    }
}

pub(super) fn status(status: api::SubscriptionStatus) -> SubscriptionStatus {
    match status {
        api::SubscriptionStatus::Pending => SubscriptionStatus::Pending,
        api::SubscriptionStatus::Active => SubscriptionStatus::Active,
        api::SubscriptionStatus::Canceled => SubscriptionStatus::Canceled,
        api::SubscriptionStatus::PastDue => SubscriptionStatus::PastDue,
        api::SubscriptionStatus::Revoked => SubscriptionStatus::Revoked,
        api::SubscriptionStatus::Refunded => SubscriptionStatus::Refunded,
    }
}

fn kind(kind: api::EventKind) -> EventKind {
    match kind {
        api::EventKind::Subscription => EventKind::Subscription,
        api::EventKind::Payment => EventKind::Payment,
        api::EventKind::Refund => EventKind::Refund,
        api::EventKind::Ignored => EventKind::Ignored,
    }
}

/// A plugin's event as Docobo's services see it.
pub(super) fn event(event: api::ProviderEvent) -> ProviderEvent {
    ProviderEvent {
        event_id: event.event_id,
        event_type: event.event_type,
        kind: kind(event.kind),
        subscription_id: event.subscription_id,
        guild: event.guild_id.map(|raw| Claim::parse(raw, GuildId::parse)),
        user: event.user_id.map(|raw| Claim::parse(raw, UserId::parse)),
        role: event.role_id.map(|raw| Claim::parse(raw, RoleId::parse)),
        product_id: event.product_id,
        payment_code: event.payment_code,
        status: event.status.map(status),
        period_end: event.period_end,
        amount: event.amount.map(|m| PaidAmount {
            minor_units: m.minor_units,
            currency: m.currency,
        }),
        occurred_at: event.occurred_at,
    }
}

pub(super) fn events(events: Vec<api::ProviderEvent>) -> Vec<ProviderEvent> {
    events.into_iter().map(event).collect()
}

pub(super) fn polled(result: api::PollResult) -> Polled {
    Polled {
        events: events(result.events),
        next_cursor: result.next_cursor,
    }
}

pub(super) fn product_spec(spec: &ProductSpec) -> api::ProductSpec {
    api::ProductSpec {
        guild_id: spec.guild.to_string(),
        role_id: spec.role.to_string(),
        name: spec.name.clone(),
        price: money(spec.price),
        billing: billing(spec.billing),
    }
}

pub(super) fn checkout_request(request: &CheckoutRequest) -> api::CheckoutRequest {
    api::CheckoutRequest {
        guild_id: request.guild.to_string(),
        user_id: request.user.to_string(),
        role_id: request.role.to_string(),
        product_id: request.product_id.clone(),
        price: money(request.price),
        billing: billing(request.billing),
        success_url: request.success_url.clone(),
        nonce: request.nonce,
    }
}

pub(super) fn checkout(checkout: api::Checkout) -> Checkout {
    Checkout {
        url: checkout.url,
        qr_image_url: checkout.qr_image_url,
        instructions: checkout.instructions,
        payment_code: checkout.payment_code,
        expires_at: checkout.expires_at,
    }
}

pub(super) fn config_field(field: api::ConfigField) -> ConfigField {
    ConfigField {
        key: field.key,
        label: field.label,
        help: field.help,
        secret: field.secret,
        required: field.required,
        default_value: field.default_value,
    }
}
