//! Conversions between the newest plugin API's generated types (`api`, private to
//! `providers`) and Docobo's own. Plugin output is parsed here once (Discord ids included).
//! Older API versions are first converted to the newest by their adapter (`v0_1`), so this
//! is the only place that knows Docobo's types.

use super::bindings::api;
use super::types::{
    Capabilities, Checkout, CheckoutRequest, ConfigField, ManageLinkRequest, Polled, ProductSpec,
    SignedDelivery, Subscriber, SubscriberPage, TestDeliveryRequest,
};
use crate::domain::{
    Billing, Claim, DisputeStatus, EventKind, GuildId, Money, PaidAmount, ProviderEvent, Refund,
    RoleId, SubscriptionStatus, UserId,
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
        // Docobo's one-time roles are kept for good: 0.1.0's `one-time`, which every plugin
        // understands (0.2.0 plugins treat `lifetime` the same way).
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
        api::SubscriptionStatus::Paused => SubscriptionStatus::Paused,
        api::SubscriptionStatus::Trialing => SubscriptionStatus::Trialing,
    }
}

fn paid(m: api::Money) -> PaidAmount {
    PaidAmount {
        minor_units: m.minor_units,
        currency: m.currency,
    }
}

fn dispute(d: api::DisputeStatus) -> DisputeStatus {
    match d {
        api::DisputeStatus::Opened => DisputeStatus::Opened,
        api::DisputeStatus::Won => DisputeStatus::Won,
        api::DisputeStatus::Lost => DisputeStatus::Lost,
    }
}

pub(super) fn capabilities(c: api::Capabilities) -> Capabilities {
    Capabilities {
        manage_link: c.contains(api::Capabilities::MANAGE_LINK),
        list_subscribers: c.contains(api::Capabilities::LIST_SUBSCRIBERS),
        test_delivery: c.contains(api::Capabilities::TEST_DELIVERY),
    }
}

fn kind(kind: api::EventKind) -> EventKind {
    match kind {
        api::EventKind::Subscription => EventKind::Subscription,
        api::EventKind::Payment => EventKind::Payment,
        api::EventKind::Refund => EventKind::Refund,
        api::EventKind::Ignored => EventKind::Ignored,
        api::EventKind::PlanChange => EventKind::PlanChange,
        api::EventKind::Dispute => EventKind::Dispute,
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
        amount: event.amount.map(paid),
        occurred_at: event.occurred_at,
        customer_id: event.customer_id,
        previous_product_id: event.previous_product_id,
        refund: event.refund.map(|r| Refund {
            amount: paid(r.amount),
            partial: r.partial,
        }),
        dispute: event.dispute.map(dispute),
        test: event.test,
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
        trial_days: spec.trial_days,
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
        identifies_account: field.identifies_account,
    }
}

pub(super) fn manage_link_request(request: &ManageLinkRequest) -> api::ManageLinkRequest {
    api::ManageLinkRequest {
        customer_id: request.customer_id.clone(),
        subscription_id: request.subscription_id.clone(),
        guild_id: request.guild.to_string(),
        user_id: request.user.to_string(),
        return_url: request.return_url.clone(),
    }
}

pub(super) fn subscriber_page(page: api::SubscriberPage) -> SubscriberPage {
    SubscriberPage {
        subscribers: page
            .subscribers
            .into_iter()
            .map(|s| Subscriber {
                subscription_id: s.subscription_id,
                customer_id: s.customer_id,
                guild: s.guild_id.map(|raw| Claim::parse(raw, GuildId::parse)),
                user: s.user_id.map(|raw| Claim::parse(raw, UserId::parse)),
                role: s.role_id.map(|raw| Claim::parse(raw, RoleId::parse)),
                product_id: s.product_id,
                status: status(s.status),
                period_end: s.period_end,
                amount: s.amount.map(paid),
                test: s.test,
            })
            .collect(),
        next_cursor: page.next_cursor,
    }
}

pub(super) fn test_delivery_request(request: &TestDeliveryRequest) -> api::TestDeliveryRequest {
    api::TestDeliveryRequest {
        guild_id: request.guild.to_string(),
        user_id: request.user.to_string(),
        role_id: request.role.to_string(),
        product_id: request.product_id.clone(),
        price: money(request.price),
        billing: billing(request.billing),
        nonce: request.nonce,
        payment_code: request.payment_code.clone(),
    }
}

pub(super) fn signed_delivery(delivery: api::SignedDelivery) -> SignedDelivery {
    SignedDelivery {
        headers: delivery
            .headers
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect(),
        body: delivery.body,
    }
}
