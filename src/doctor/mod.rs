//! The doctor service: every reason a guild's buyers could pay and get no role, checked at
//! once (`/doctor` today, the dashboard later), and the owner's test purchase.
//!
//! [`Doctor::examine`] returns a [`Report`]: one [`Check`] per fact (✔ or ✘, what was found,
//! and for a ✘ the fix). What only Discord knows (the roles, the bot's place among them, the
//! log channel's overwrites) comes in as [`DiscordFacts`], gathered by the edge from the
//! directory and Discord's REST API; everything else (the saved shop, the provider asked
//! live, `public_url`, the deliveries, the failed role syncs, the plugins) is read here.
//!
//! [`Doctor::test_purchase`] (in `purchase`) buys the owner's cheapest role through the
//! real path: a checkout, then the provider plugin's signed test delivery posted to Docobo's
//! own webhook URL (the real server, the real verification), or for a provider in its
//! sandbox the sandbox checkout's link. The subscription is `test` (kept out of every count)
//! and ends after `doctor.test_purchase_minutes`.

mod checks;
mod purchase;

use std::net::SocketAddr;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use checks::{ChannelFacts, DiscordFacts, Overwrite, OverwriteTarget, channel_permissions};
pub use purchase::{TestPurchase, TestPurchaseError};

use crate::db::{self, DbError, guilds, paid_roles};
use crate::domain::GuildId;
use crate::providers::PluginInfo;
use crate::services::Services;

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// For a failed check: what to do.
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// How the guild's provider can make a test purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestMode {
    /// The plugin signs a test delivery (`test-delivery`).
    Delivery,
    /// The connection is a sandbox (`environment = sandbox`): a checkout there is a test.
    Sandbox,
    /// Neither; why.
    Unavailable(String),
}

/// Every check for one guild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub checks: Vec<Check>,
    pub test_mode: TestMode,
}

impl Report {
    /// Whether every check passed.
    #[must_use]
    pub fn healthy(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

/// The doctor service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Doctor {
    services: Services,
    /// Docobo's own HTTP server, where test deliveries are posted (`http://127.0.0.1:port`).
    webhook_base: String,
    /// How long a test purchase's role stays (`doctor.test_purchase_minutes`).
    test_minutes: u32,
    /// Posts test deliveries; never through a proxy (it is Docobo calling itself).
    client: reqwest::Client,
}

/// How long posting a test delivery to the own server may take.
const POST_TIMEOUT: Duration = Duration::from_secs(15);

impl Doctor {
    /// `server`: the address Docobo's HTTP server is bound to (an unspecified address is
    /// reached on loopback).
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(services: Services, server: SocketAddr, test_minutes: u32) -> anyhow::Result<Self> {
        let mut own = server;
        if own.ip().is_unspecified() {
            own.set_ip(if own.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(POST_TIMEOUT)
            .build()?;
        Ok(Self {
            services,
            webhook_base: format!("http://{own}"),
            test_minutes,
            client,
        })
    }

    /// How long a test purchase's role stays, in minutes.
    #[must_use]
    pub fn test_minutes(&self) -> u32 {
        self.test_minutes
    }

    /// Runs every check for `guild`.
    ///
    /// # Errors
    /// A database error (the provider's own failures are failed checks, not errors).
    pub async fn examine(&self, guild: GuildId, discord: &DiscordFacts) -> Result<Report, DbError> {
        let (saved, roles, last, failed) = self
            .services
            .db
            .read(move |conn| {
                // Every role a tier for sale gives (its own first), and its trial role.
                let tiers = db::tiers::of_guild(conn, guild)?;
                let mut roles = Vec::new();
                for paid in paid_roles::for_sale(conn, guild)? {
                    roles.push(paid.role_id);
                    if let Some(tier) = tiers.get(&paid.id) {
                        roles.extend(tier.extra.iter().copied());
                        roles.extend(tier.trial_role);
                    }
                }
                let mut seen = std::collections::HashSet::new();
                roles.retain(|r| seen.insert(*r));
                Ok((
                    guilds::get(conn, guild)?,
                    roles,
                    db::doctor::last_delivery(conn, guild)?,
                    db::doctor::failed_syncs(conn, guild)?,
                ))
            })
            .await?;
        let mut report = Vec::new();
        report.extend(checks::permissions(guild, &roles, discord));
        report.push(checks::log_channel(saved.as_ref(), discord));
        let (credentials, plugin, test_mode) = self.provider(saved.as_ref()).await;
        report.push(credentials);
        report.push(checks::public_url(self.services.public_url.as_deref()));
        report.push(checks::last_delivery(
            last.as_ref(),
            saved.as_ref(),
            self.services.public_url.as_deref(),
        ));
        report.push(checks::failed_syncs(&failed));
        report.extend(checks::plugins(
            plugin.as_ref(),
            self.services.providers.failures(),
        ));
        Ok(Report {
            checks: report,
            test_mode,
        })
    }

    /// The credentials check (asked live), the guild's plugin, and its test mode.
    async fn provider(
        &self,
        saved: Option<&guilds::Guild>,
    ) -> (Check, Option<PluginInfo>, TestMode) {
        const NAME: &str = "Provider credentials";
        let setup = "run /setup and pick a payment provider";
        let Some(saved) = saved.filter(|g| g.provider.is_some()) else {
            return (
                Check::fail(NAME, "no payment provider is connected", setup),
                None,
                TestMode::Unavailable("no payment provider is connected".into()),
            );
        };
        let opened = match self.services.accounts.for_guild(saved) {
            Ok(Some(opened)) => opened,
            Ok(None) => {
                return (
                    Check::fail(NAME, "no credentials are saved", setup),
                    None,
                    TestMode::Unavailable("no credentials are saved".into()),
                );
            }
            Err(_) => {
                return (
                    Check::fail(
                        NAME,
                        "the saved credentials cannot be opened (the encryption key changed)",
                        "run /setup and enter the provider's credentials again",
                    ),
                    None,
                    TestMode::Unavailable("the credentials cannot be opened".into()),
                );
            }
        };
        let (provider, config) = opened;
        let Some(plugin) = self.services.providers.plugin(provider.as_str()).cloned() else {
            let why = format!("the {provider} plugin is not loaded");
            return (
                Check::fail(
                    NAME,
                    why.clone(),
                    "ask the operator to install the plugin (docobo plugin list), or pick another provider in /setup",
                ),
                None,
                TestMode::Unavailable(why),
            );
        };
        let check = match self
            .services
            .providers
            .validate_credentials(provider.as_str(), &config)
            .await
        {
            Ok(()) => Check::pass(NAME, format!("{} accepted them just now", plugin.name)),
            Err(e) => Check::fail(
                NAME,
                format!("{} did not accept them: {e}", plugin.name),
                "check the credentials (and that the provider is up), then enter them again in /setup",
            ),
        };
        let mode = purchase::test_mode(&plugin, &config);
        (check, Some(plugin), mode)
    }

    /// Ends owners' test purchases whose time is up (a sandbox checkout paid since, or one a
    /// crash interrupted), every `every`, until `shutdown`.
    pub async fn run(self, every: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let (minutes, now) = (self.test_minutes, self.services.now());
            match self
                .services
                .db
                .write(move |conn| db::doctor::end_test_purchases(conn, minutes, now, None))
                .await
            {
                Ok(0) => {}
                Ok(ended) => {
                    tracing::info!(ended, "test purchases given their end");
                    self.services.sync.wake();
                }
                Err(e) => tracing::warn!(error = %e, "cannot end test purchases"),
            }
        }
    }
}
