//! The alert sender, in its own task: takes what [`super::Alerts`] queued and sends it. A
//! guild's alerts go to its log channel, else its owner by DM ([`Notifier::tell_owner`]);
//! members get a DM; the operator's go to the log (error level) and, when configured, to a
//! Discord webhook (`alerts.operator_webhook_url`). It closes the windows that are due and
//! sends their summaries, and at shutdown sends the summaries still open (bounded in time).
//!
//! A message that cannot be delivered is logged and dropped: alerts must never hold up the
//! rest.

use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{AlertKind, Outgoing, Target};
use crate::discord::Notifier;
use crate::services::Services;

/// How often the clock is looked at while a summary is pending (windows close on the
/// service clock, which a test moves; a nap this short costs nothing).
const NAP: Duration = Duration::from_secs(1);
/// How long one post to the operator's webhook may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the summaries still open may take to send at shutdown.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// Discord's limit on a message's content, in characters.
const MAX_CONTENT: usize = 2000;

/// The operator's Discord webhook. Its URL holds a token: never logged.
struct OperatorHook {
    url: SecretString,
    client: reqwest::Client,
}

impl std::fmt::Debug for OperatorHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorHook([REDACTED])")
    }
}

/// Sends alerts. Runs until shutdown ([`AlertSender::run`]).
#[derive(Debug)]
pub struct AlertSender {
    services: Services,
    notifier: Notifier,
    operator: Option<OperatorHook>,
}

impl AlertSender {
    /// # Errors
    /// The HTTP client for the operator's webhook cannot be built.
    pub fn new(
        services: Services,
        notifier: Notifier,
        operator_webhook_url: Option<SecretString>,
    ) -> anyhow::Result<Self> {
        let operator = match operator_webhook_url {
            Some(url) => Some(OperatorHook {
                url,
                client: reqwest::Client::builder()
                    .use_rustls_tls()
                    .no_proxy()
                    .timeout(POST_TIMEOUT)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()?,
            }),
            None => None,
        };
        Ok(Self {
            services,
            notifier,
            operator,
        })
    }

    /// Sends what is queued as it comes, and the summaries as their windows close, until
    /// `shutdown`; then the summaries still open, within [`FLUSH_TIMEOUT`].
    pub async fn run(self, shutdown: CancellationToken) {
        let alerts = self.services.alerts.clone();
        loop {
            let nap = if alerts.summaries_pending() {
                NAP
            } else {
                Duration::from_mins(1)
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = alerts.ready() => {}
                () = tokio::time::sleep(nap) => {}
            }
            alerts.close_windows(false);
            let outbox = alerts.take_outbox();
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.send_all(outbox) => {}
            }
        }
        alerts.close_windows(true);
        let outbox = alerts.take_outbox();
        if tokio::time::timeout(FLUSH_TIMEOUT, self.send_all(outbox))
            .await
            .is_err()
        {
            tracing::warn!("alerts: the last summaries could not be sent before shutdown");
        }
    }

    async fn send_all(&self, outbox: Vec<Outgoing>) {
        for message in outbox {
            match message {
                Outgoing::Staff {
                    kind,
                    target: Target::Operator,
                    text,
                } => self.tell_operator(kind, &text).await,
                Outgoing::Staff {
                    kind,
                    target: Target::Guild(guild),
                    text,
                } => {
                    if let Some(row) = self.guild(guild).await {
                        tracing::info!(guild = guild.get(), kind = kind.as_str(), "alert");
                        if !self.notifier.tell_owner(&row, &text).await {
                            self.services.metrics.alert_undelivered(kind.as_str());
                        }
                    }
                }
                Outgoing::Member {
                    guild,
                    member,
                    text,
                } => {
                    if let Some(row) = self.guild(guild).await {
                        self.notifier.tell_member(&row, member, &text).await;
                    }
                }
            }
        }
    }

    async fn guild(&self, guild: crate::domain::GuildId) -> Option<crate::db::guilds::Guild> {
        match self
            .services
            .db
            .read(move |conn| crate::db::guilds::get(conn, guild))
            .await
        {
            Ok(row) => row,
            Err(e) => {
                tracing::warn!(guild = guild.get(), error = %e, "alerts: cannot read the guild");
                None
            }
        }
    }

    /// The log at error level, and the operator's webhook when configured.
    async fn tell_operator(&self, kind: AlertKind, text: &str) {
        tracing::error!(target: "docobo::alert", kind = kind.as_str(), "{text}");
        let Some(hook) = &self.operator else {
            return;
        };
        let body = json!({
            "content": crate::discord::notify::truncate(&format!("**Docobo** {text}"), MAX_CONTENT),
            "allowed_mentions": { "parse": [] },
        });
        let posted = hook
            .client
            .post(hook.url.expose_secret())
            .json(&body)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        if let Err(e) = posted {
            // Without the URL: it holds the webhook's token.
            tracing::warn!(kind = kind.as_str(), error = %e.without_url(), "alerts: the operator's webhook refused the alert");
            self.services.metrics.alert_undelivered(kind.as_str());
        }
    }
}
