//! The Discord side: the gateway client (serenity), the slash commands, role management and
//! staff notices.
//!
//! - [`directory`]: guild roles and the bot's place in the hierarchy.
//! - [`roles`]: `RoleManager` (`grant_role` / `revoke_role`) with typed errors.
//! - [`notify`]: log-channel lines and messages to owners.
//! - `handler`: gateway events, and interactions dispatched to the commands: `setup`,
//!   `member` (`/join`, `/status`, `/help`).
//! - `interaction`, `custom_id`: what arrives, translated and typed once.
//! - `reply`: the commands' answers as values (`reply::Reply`), and the one adapter that
//!   sends them; `error`: `error::BotError`, what a person is told and what is logged.
//!
//! Non-privileged intents by default (`GUILDS`); `GUILD_MEMBERS` only when configured.
//! Interactions get their first response straight from the handler (a database read at
//! most); calls to payment providers happen after a deferral (`Reply::Deferred`).

mod custom_id;
pub mod directory;
mod error;
mod handler;
mod interaction;
mod member;
pub mod notify;
mod reply;
pub mod roles;
mod setup;
pub mod status;
pub(crate) mod ui;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use secrecy::ExposeSecret as _;
use serenity::all::{ClientBuilder, GatewayIntents};
use serenity::gateway::GatewayError;
use serenity::http::{Http, HttpBuilder};
use tokio_util::sync::CancellationToken;

use crate::config::DiscordConfig;
use crate::services::Services;

pub use directory::Directory;
pub use notify::Notifier;
pub use roles::{DiscordApiError, Missing, RoleError, RoleManager};
pub use status::{GatewayState, GatewayStatus};

/// Builds serenity's REST client. With `api_url` set (tests), requests go there and the
/// client-side rate limiter is off (it would ignore the override and call discord.com).
///
/// # Errors
/// The HTTP client cannot be built.
pub fn build_http(config: &DiscordConfig) -> anyhow::Result<Http> {
    let token = config.token.expose_secret();
    let builder = HttpBuilder::new(token);
    let builder = match &config.api_url {
        Some(url) => builder
            .proxy(url.clone())
            .ratelimiter_disabled(true)
            .client(
                reqwest::Client::builder()
                    .no_proxy()
                    .build()
                    .context("building the HTTP client for Discord")?,
            ),
        None => builder,
    };
    Ok(builder.build())
}

/// Everything the command handlers need.
#[derive(Debug)]
pub struct Bot {
    pub services: Services,
    pub http: Arc<Http>,
    pub roles: RoleManager,
    pub notifier: Notifier,
    pub gateway: GatewayStatus,
    /// `/setup` conversations in progress, per (guild, admin).
    sessions: setup::Sessions,
}

impl Bot {
    #[must_use]
    pub fn new(
        services: Services,
        http: Arc<Http>,
        roles: RoleManager,
        gateway: GatewayStatus,
    ) -> Arc<Self> {
        Arc::new(Self {
            services,
            notifier: Notifier::new(Arc::clone(&http)),
            http,
            roles,
            gateway,
            sessions: setup::Sessions::default(),
        })
    }
}

/// Keeps the bot on the gateway until `shutdown`: serenity resumes and reconnects by itself;
/// when its client gives up (network down at boot, Discord unreachable) a new one is started
/// with backoff. A refusal only a person can fix (bad token, privileged intent not enabled)
/// is reported and ends the bot, while the webhook server keeps accepting payments.
///
/// # Errors
/// The client cannot be built.
pub async fn run_gateway(
    bot: Arc<Bot>,
    config: DiscordConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut intents = GatewayIntents::GUILDS;
    if config.guild_members_intent {
        intents |= GatewayIntents::GUILD_MEMBERS;
    }
    let mut backoff = Duration::from_secs(1);
    loop {
        bot.gateway.set(GatewayState::Connecting);
        let mut client = ClientBuilder::new_with_http(build_http(&config)?, intents)
            .event_handler(handler::Handler::new(Arc::clone(&bot)))
            .await
            .context("building the Discord client")?;
        let manager = Arc::clone(&client.shard_manager);
        let result = tokio::select! {
            result = client.start() => result,
            () = shutdown.cancelled() => {
                manager.shutdown_all().await;
                return Ok(());
            }
        };
        manager.shutdown_all().await;
        if bot.gateway.get() == GatewayState::Connected {
            // It was up: start the backoff over.
            backoff = Duration::from_secs(1);
        }
        match result {
            Err(serenity::Error::Gateway(GatewayError::InvalidAuthentication)) => {
                bot.gateway.set(GatewayState::Failed);
                tracing::error!(
                    "Discord refused the bot token (close code 4004). Fix: copy the token again from https://discord.com/developers/applications → your app → Bot → Reset Token, into discord.token (or DOCOBO_DISCORD__TOKEN), and restart"
                );
                return Ok(());
            }
            Err(serenity::Error::Gateway(
                GatewayError::DisallowedGatewayIntents | GatewayError::InvalidGatewayIntents,
            )) => {
                bot.gateway.set(GatewayState::Failed);
                tracing::error!(
                    "Discord refused the GUILD_MEMBERS intent (close code 4014). Fix: enable \"Server Members Intent\" in the developer portal (your app → Bot → Privileged Gateway Intents), or set discord.guild_members_intent = false, and restart"
                );
                return Ok(());
            }
            Err(e) => {
                bot.gateway.set(GatewayState::Reconnecting);
                tracing::warn!(error = %e, retry_in = ?backoff, "the Discord gateway connection ended; reconnecting");
            }
            Ok(()) => {
                bot.gateway.set(GatewayState::Reconnecting);
                tracing::warn!(retry_in = ?backoff, "the Discord gateway connection closed; reconnecting");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => return Ok(()),
        }
        backoff = (backoff * 2).min(Duration::from_mins(1));
    }
}
