//! Prometheus metrics (`GET /metrics`), one registry per `App` (no global state).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// A loaded provider's id, or `unknown`: never a name taken from the request.
    pub provider: String,
    /// A fixed name: `applied`, `duplicate`, `ignored`, `stale`, `refused`, `rejected`,
    /// `bad_signature`, `malformed`, `error`, `too_large`, `bad_request`, `slow_body`,
    /// `throttled`, `unknown_provider`, `unknown_key`, and `test` for a verified delivery whose
    /// every event is a test (a provider's test mode, an owner's test purchase).
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    /// A loaded plugin's id (never what a request's path said).
    pub provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    pub provider: String,
    pub call: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    /// An [`crate::alerts::AlertKind`]'s name.
    pub kind: String,
}

/// Docobo's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub webhooks: Family<WebhookLabels, Counter>,
    /// Verified deliveries whose every event was already recorded in their scope.
    pub webhook_replays: Family<ProviderLabels, Counter>,
    pub webhook_ack_seconds: Histogram,
    pub plugin_call_seconds: Family<PluginLabels, Histogram>,
    pub webhook_store_seconds: Histogram,
    pub db_errors: Counter,
    pub rate_limited: Counter,
    /// Every alert raised, sent or summarised (`crate::alerts`).
    pub alerts: Family<AlertLabels, Counter>,
    /// Alerts that reached nobody (no log channel or owner, DMs closed, the webhook refused).
    pub alerts_undelivered: Family<AlertLabels, Counter>,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    // 100 µs … ~3.3 s
    prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 16)
}

impl Metrics {
    #[must_use]
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("docobo");
        let webhooks = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "webhooks",
            "Webhook deliveries by provider and outcome",
            webhooks.clone(),
        );
        let webhook_replays = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "webhook_replays",
            "Verified webhook deliveries that repeated events already recorded (a provider retry, or a replay: see the docobo::security log)",
            webhook_replays.clone(),
        );
        let webhook_ack_seconds = Histogram::new(latency_buckets());
        registry.register(
            "webhook_ack_seconds",
            "Time from receiving a webhook to replying",
            webhook_ack_seconds.clone(),
        );
        let plugin_call_seconds = Family::<PluginLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(latency_buckets())
        });
        registry.register(
            "plugin_call_seconds",
            "Provider plugin call latency, including instantiation",
            plugin_call_seconds.clone(),
        );
        let webhook_store_seconds = Histogram::new(latency_buckets());
        registry.register(
            "webhook_store_seconds",
            "Time to record and apply a verified webhook: waiting for the database writer, the transaction and its commit",
            webhook_store_seconds.clone(),
        );
        let db_errors = Counter::default();
        registry.register(
            "db_errors",
            "Database errors while serving requests",
            db_errors.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "rate_limited",
            "Requests refused by the per-IP rate limit",
            rate_limited.clone(),
        );
        let alerts = Family::<AlertLabels, Counter>::default();
        registry.register(
            "alerts",
            "Alerts raised by kind, including repeats only counted into a summary",
            alerts.clone(),
        );
        let alerts_undelivered = Family::<AlertLabels, Counter>::default();
        registry.register(
            "alerts_undelivered",
            "Alert messages that reached nobody (no log channel or owner, DMs closed, the operator's webhook refused)",
            alerts_undelivered.clone(),
        );
        Arc::new(Self {
            registry,
            webhooks,
            webhook_replays,
            webhook_ack_seconds,
            plugin_call_seconds,
            webhook_store_seconds,
            db_errors,
            rate_limited,
            alerts,
            alerts_undelivered,
        })
    }

    /// Counts a webhook delivery.
    pub fn webhook(&self, provider: &str, outcome: &str) {
        self.webhooks
            .get_or_create(&WebhookLabels {
                provider: provider.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts a delivery that repeated events already recorded. `provider` is a loaded
    /// plugin's id.
    pub fn webhook_replay(&self, provider: &str) {
        self.webhook_replays
            .get_or_create(&ProviderLabels {
                provider: provider.to_owned(),
            })
            .inc();
    }

    /// Records a plugin call's latency.
    pub fn plugin_call(&self, provider: &str, call: &str, seconds: f64) {
        self.plugin_call_seconds
            .get_or_create(&PluginLabels {
                provider: provider.to_owned(),
                call: call.to_owned(),
            })
            .observe(seconds);
    }

    /// Counts an alert of `kind`.
    pub fn alert(&self, kind: &str) {
        self.alerts
            .get_or_create(&AlertLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Counts an alert message that reached nobody.
    pub fn alert_undelivered(&self, kind: &str) {
        self.alerts_undelivered
            .get_or_create(&AlertLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// The `OpenMetrics` text exposition.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
