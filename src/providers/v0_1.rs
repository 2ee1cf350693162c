//! The adapter for plugins built against `wit/provider@0.1.0` (frozen): converts between its
//! generated types and the newest version's, so that the rest of the host sees every plugin
//! as a 0.2.0 one (Zed's extension host does the same, one `since_vX` module per version).
//!
//! What 0.1.0 cannot say comes out empty: no customer id, no refund size (a 0.1 refund is
//! treated as full, as 0.1 hosts did), never `test`, no capabilities (so the host answers
//! `manage-link`, `list-subscribers` and `test-delivery` with `unsupported` without calling
//! the guest). What 0.1.0 cannot receive is mapped to its nearest meaning: `lifetime` is sent
//! as `one-time` (both are paid once and kept), trial days are dropped.

use super::bindings::latest::api as new;
use super::bindings::v0_1::api as old;
use super::bindings::{latest, v0_1};
use super::state::PluginState;

impl v0_1::docobo::provider::types::Host for PluginState {}

/// The 0.1.0 `host` imports are the newest ones with older types.
impl v0_1::docobo::provider::host::Host for PluginState {
    async fn http_fetch(&mut self, req: old::HttpRequest) -> Result<old::HttpResponse, String> {
        let req = new::HttpRequest {
            method: req.method,
            url: req.url,
            headers: req.headers,
            body: req.body,
        };
        latest::docobo::provider::host::Host::http_fetch(self, req)
            .await
            .map(|r| old::HttpResponse {
                status: r.status,
                headers: r.headers,
                body: r.body,
            })
    }

    async fn log(&mut self, level: old::LogLevel, msg: String) {
        PluginState::log(self, log_level(level), msg);
    }

    async fn now(&mut self) -> i64 {
        latest::docobo::provider::host::Host::now(self).await
    }
}

pub(super) fn log_level(level: old::LogLevel) -> new::LogLevel {
    match level {
        old::LogLevel::Debug => new::LogLevel::Debug,
        old::LogLevel::Info => new::LogLevel::Info,
        old::LogLevel::Warn => new::LogLevel::Warn,
        old::LogLevel::Error => new::LogLevel::Error,
    }
}

pub(super) fn plugin_info(info: old::PluginInfo) -> new::PluginInfo {
    new::PluginInfo {
        id: info.id,
        name: info.name,
        version: info.version,
        config_fields: info
            .config_fields
            .into_iter()
            .map(|f| new::ConfigField {
                key: f.key,
                label: f.label,
                help: f.help,
                secret: f.secret,
                required: f.required,
                default_value: f.default_value,
                // 0.1 cannot say: every field counts.
                identifies_account: false,
            })
            .collect(),
        hosts: info.hosts,
        needs_products: info.needs_products,
        supports_poll: info.supports_poll,
        capabilities: new::Capabilities::empty(),
        webhook_events: info.webhook_events,
        webhook_ack: info.webhook_ack,
        // 0.1 cannot say: any currency.
        currencies: Vec::new(),
    }
}

fn money(m: old::Money) -> new::Money {
    new::Money {
        minor_units: m.minor_units,
        currency: m.currency,
    }
}

fn money_to_old(m: &new::Money) -> old::Money {
    old::Money {
        minor_units: m.minor_units,
        currency: m.currency.clone(),
    }
}

fn billing_to_old(b: new::Billing) -> old::Billing {
    match b {
        new::Billing::Monthly => old::Billing::Monthly,
        new::Billing::Yearly => old::Billing::Yearly,
        new::Billing::OneTime | new::Billing::Lifetime => old::Billing::OneTime,
        new::Billing::Days(n) => old::Billing::Days(n),
    }
}

fn status(s: old::SubscriptionStatus) -> new::SubscriptionStatus {
    match s {
        old::SubscriptionStatus::Pending => new::SubscriptionStatus::Pending,
        old::SubscriptionStatus::Active => new::SubscriptionStatus::Active,
        old::SubscriptionStatus::Canceled => new::SubscriptionStatus::Canceled,
        old::SubscriptionStatus::PastDue => new::SubscriptionStatus::PastDue,
        old::SubscriptionStatus::Revoked => new::SubscriptionStatus::Revoked,
        old::SubscriptionStatus::Refunded => new::SubscriptionStatus::Refunded,
    }
}

fn kind(k: old::EventKind) -> new::EventKind {
    match k {
        old::EventKind::Subscription => new::EventKind::Subscription,
        old::EventKind::Payment => new::EventKind::Payment,
        old::EventKind::Refund => new::EventKind::Refund,
        old::EventKind::Ignored => new::EventKind::Ignored,
    }
}

pub(super) fn event(e: old::ProviderEvent) -> new::ProviderEvent {
    new::ProviderEvent {
        event_id: e.event_id,
        event_type: e.event_type,
        kind: kind(e.kind),
        subscription_id: e.subscription_id,
        guild_id: e.guild_id,
        user_id: e.user_id,
        role_id: e.role_id,
        product_id: e.product_id,
        payment_code: e.payment_code,
        status: e.status.map(status),
        period_end: e.period_end,
        amount: e.amount.map(money),
        occurred_at: e.occurred_at,
        customer_id: None,
        previous_product_id: None,
        // 0.1.0 has no refund size: its refunds are full ones, as 0.1 hosts treated them.
        refund: None,
        dispute: None,
        test: false,
    }
}

pub(super) fn events(events: Vec<old::ProviderEvent>) -> Vec<new::ProviderEvent> {
    events.into_iter().map(event).collect()
}

pub(super) fn polled(result: old::PollResult) -> new::PollResult {
    new::PollResult {
        events: events(result.events),
        next_cursor: result.next_cursor,
    }
}

pub(super) fn checkout(c: old::Checkout) -> new::Checkout {
    new::Checkout {
        url: c.url,
        qr_image_url: c.qr_image_url,
        instructions: c.instructions,
        payment_code: c.payment_code,
        expires_at: c.expires_at,
    }
}

pub(super) fn product_spec(spec: &new::ProductSpec) -> old::ProductSpec {
    // 0.1.0 has no trials: a 0.1 plugin's products start paid.
    old::ProductSpec {
        guild_id: spec.guild_id.clone(),
        role_id: spec.role_id.clone(),
        name: spec.name.clone(),
        price: money_to_old(&spec.price),
        billing: billing_to_old(spec.billing),
    }
}

pub(super) fn checkout_request(request: &new::CheckoutRequest) -> old::CheckoutRequest {
    old::CheckoutRequest {
        guild_id: request.guild_id.clone(),
        user_id: request.user_id.clone(),
        role_id: request.role_id.clone(),
        product_id: request.product_id.clone(),
        price: money_to_old(&request.price),
        billing: billing_to_old(request.billing),
        success_url: request.success_url.clone(),
        nonce: request.nonce,
    }
}

pub(super) fn webhook_error(e: old::WebhookError) -> new::WebhookError {
    match e {
        old::WebhookError::BadSignature(m) => new::WebhookError::BadSignature(m),
        old::WebhookError::StaleTimestamp(m) => new::WebhookError::StaleTimestamp(m),
        old::WebhookError::Malformed(m) => new::WebhookError::Malformed(m),
        old::WebhookError::Misconfigured(m) => new::WebhookError::Misconfigured(m),
    }
}

pub(super) fn provider_error(e: old::ProviderError) -> new::ProviderError {
    match e {
        old::ProviderError::InvalidCredentials(m) => new::ProviderError::InvalidCredentials(m),
        old::ProviderError::Misconfigured(m) => new::ProviderError::Misconfigured(m),
        old::ProviderError::Upstream(m) => new::ProviderError::Upstream(m),
        old::ProviderError::Unsupported(m) => new::ProviderError::Unsupported(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_event_gains_empty_new_fields() {
        let e = event(old::ProviderEvent {
            event_id: "e".into(),
            event_type: "order.refunded".into(),
            kind: old::EventKind::Refund,
            subscription_id: Some("o".into()),
            guild_id: None,
            user_id: None,
            role_id: None,
            product_id: Some("p".into()),
            payment_code: None,
            status: Some(old::SubscriptionStatus::Refunded),
            period_end: Some(9),
            amount: Some(old::Money {
                minor_units: 5,
                currency: "USD".into(),
            }),
            occurred_at: 3,
        });
        assert_eq!(e.kind, new::EventKind::Refund);
        assert_eq!(e.status, Some(new::SubscriptionStatus::Refunded));
        assert_eq!(e.amount.as_ref().map(|m| m.minor_units), Some(5));
        assert!(e.refund.is_none() && e.dispute.is_none() && e.customer_id.is_none());
        assert!(!e.test);
    }

    #[test]
    fn lifetime_is_sent_to_old_plugins_as_one_time() {
        assert!(matches!(
            billing_to_old(new::Billing::Lifetime),
            old::Billing::OneTime
        ));
        assert!(matches!(
            billing_to_old(new::Billing::Days(7)),
            old::Billing::Days(7)
        ));
    }
}
