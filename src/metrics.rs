//! Prometheus metrics (`GET /metrics`), one registry per `App` (no global state).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
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

/// A tier (a guild's paid role), or `other` for those past [`MAX_SERIES`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TierLabels {
    pub guild: String,
    pub role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CurrencyLabels {
    /// An ISO 4217 code as recorded, or `other` past [`MAX_SERIES`].
    pub currency: String,
}

/// The most series a shop figure has: the largest tiers (or currencies) get their own, the
/// rest are summed under `other`, so that many small guilds cannot grow `/metrics`.
pub const MAX_SERIES: usize = 50;

/// How long the shop's figures are kept between scrapes while the store does not change.
pub const SHOP_FRESH: std::time::Duration = std::time::Duration::from_secs(30);

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
    /// Members entitled now, per tier.
    pub shop_members: Family<TierLabels, Gauge>,
    /// Members whose access ended in the last 30 days, per tier (churn).
    pub shop_ended_30d: Family<TierLabels, Gauge>,
    /// This UTC month's revenue, in minor units, per currency (refunds taken off).
    pub shop_revenue_month: Family<CurrencyLabels, Gauge>,
    /// When the shop's figures were last counted, and the store's change counter then.
    shop_counted: std::sync::Mutex<Option<(std::time::Instant, u64)>>,
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
        let shop_members = Family::<TierLabels, Gauge>::default();
        registry.register(
            "shop_members",
            "Members entitled now per tier (guild and paid role; the largest 50, the rest as other)",
            shop_members.clone(),
        );
        let shop_ended_30d = Family::<TierLabels, Gauge>::default();
        registry.register(
            "shop_ended_30d",
            "Members whose access ended in the last 30 days per tier (churn)",
            shop_ended_30d.clone(),
        );
        let shop_revenue_month = Family::<CurrencyLabels, Gauge>::default();
        registry.register(
            "shop_revenue_month_minor_units",
            "This UTC month's revenue per currency, in minor units, refunds taken off",
            shop_revenue_month.clone(),
        );
        Arc::new(Self {
            registry,
            shop_members,
            shop_ended_30d,
            shop_revenue_month,
            shop_counted: std::sync::Mutex::new(None),
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

    /// Whether the shop's figures must be counted again: never counted, the store changed
    /// since (`generation`, [`crate::db::Db::generation`]), or older than [`SHOP_FRESH`]
    /// (ends pass with time alone).
    #[must_use]
    pub fn shop_stale(&self, generation: u64) -> bool {
        self.shop_counted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_none_or(|(at, seen)| seen != generation || at.elapsed() >= SHOP_FRESH)
    }

    /// Replaces the shop's figures with these counts, made at store `generation`.
    pub fn set_shop(&self, figures: &crate::db::revenue::ShopFigures, generation: u64) {
        self.shop_members.clear();
        self.shop_ended_30d.clear();
        self.shop_revenue_month.clear();
        for (i, tier) in figures.tiers.iter().enumerate() {
            let labels = if i < MAX_SERIES {
                TierLabels {
                    guild: tier.guild.to_string(),
                    role: tier.role.to_string(),
                }
            } else {
                TierLabels {
                    guild: "other".into(),
                    role: "other".into(),
                }
            };
            self.shop_members
                .get_or_create(&labels)
                .inc_by(tier.members);
            self.shop_ended_30d
                .get_or_create(&labels)
                .inc_by(tier.ended_30d);
        }
        for (i, (currency, minor)) in figures.revenue.iter().enumerate() {
            let currency = if i < MAX_SERIES {
                currency.clone()
            } else {
                "other".into()
            };
            self.shop_revenue_month
                .get_or_create(&CurrencyLabels { currency })
                .inc_by(*minor);
        }
        *self
            .shop_counted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((std::time::Instant::now(), generation));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::revenue::{ShopFigures, TierFigures};

    #[test]
    fn past_fifty_tiers_or_currencies_the_rest_are_summed_as_other() {
        let metrics = Metrics::new();
        let figures = ShopFigures {
            tiers: (0..60)
                .map(|i| TierFigures {
                    guild: 1000 + i,
                    role: 7,
                    members: 100 - i,
                    ended_30d: 1,
                })
                .collect(),
            revenue: (0..55).map(|i| (format!("C{i:02}"), 10)).collect(),
        };
        metrics.set_shop(&figures, 1);
        let text = metrics.render();
        let members: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("docobo_shop_members{"))
            .collect();
        assert_eq!(members.len(), MAX_SERIES + 1, "{text}");
        // The ten smallest tiers (members 50 down to 41) are summed.
        assert!(
            text.contains("docobo_shop_members{guild=\"other\",role=\"other\"} 455"),
            "{text}"
        );
        assert!(text.contains("docobo_shop_ended_30d{guild=\"other\",role=\"other\"} 10"));
        assert!(text.contains("docobo_shop_revenue_month_minor_units{currency=\"other\"} 50"));
        assert!(!metrics.shop_stale(1));
        assert!(metrics.shop_stale(2), "a change to the store counts again");
    }
}
