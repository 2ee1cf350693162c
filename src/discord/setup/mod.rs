//! `/setup`: an admin picks roles, prices and a payment provider, and enters the provider's
//! credentials. Discord shapes the flow (docs/discord.md §4.2): a role select → price modals
//! (at most five inputs each) → a provider select → credential modals → validation with the
//! provider after a deferral → one transaction → the webhook URL to paste at the provider.
//!
//! The conversation is kept in memory per (guild, admin) for 15 minutes; nothing is stored
//! until the last step succeeds. Running `/setup` again starts from the saved configuration:
//! the current roles are pre-selected, prices pre-filled, and secret fields left empty keep
//! their saved value (secrets are never shown back).
//!
//! This module dispatches on the typed id and does the reads and writes; [`session`] holds
//! the steps (pure), [`view`] what is shown, [`verify`] the "Verify now" wait for the first
//! webhook delivery.

mod session;
mod verify;
mod view;

use std::time::Instant;

pub(crate) use session::Sessions;
use session::{Session, Step};

use super::Bot;
use super::custom_id::{InputId, SetupId};
use super::error::BotError;
use super::interaction::{Actor, Picked};
use super::reply::{Ack, Outcome, Reply};
use super::ui;
use crate::db::{guilds, paid_roles};
use crate::domain::{ChannelId, GuildId, RoleId, UserId};
use crate::shop::{self, ShopError};

type Key = (GuildId, UserId);

/// `/setup`: the saved setup and the role picker.
pub(super) async fn command(bot: &Bot, actor: &Actor) -> Outcome<'static> {
    let key = admin(actor)?;
    let (saved, roles) = ui::offer(bot, key.0).await?;
    Ok(Reply::private(view::intro(saved.as_ref(), &roles)))
}

/// The buttons and selects of the `/setup` messages.
pub(super) async fn component<'a>(
    bot: &'a Bot,
    actor: &Actor,
    id: SetupId,
    picked: Picked,
) -> Outcome<'a> {
    let key = admin(actor)?;
    match (id, picked) {
        (SetupId::Roles, Picked::Roles(roles)) => roles_picked(bot, key, &roles).await,
        (SetupId::Provider, Picked::Strings(values)) => {
            let mut session = session(bot, key)?;
            let plugin = values
                .first()
                .and_then(|p| bot.services.providers.plugin(p))
                .ok_or_else(|| BotError::refused(view::PROVIDER_GONE))?;
            let step = session.provider_picked(plugin);
            bot.sessions.put(key, session.clone());
            show(bot, key, session, &step).await
        }
        (SetupId::Log, Picked::Channels(channels)) => {
            log_channel(bot, key, channels.first().copied()).await
        }
        (SetupId::Prices(page), Picked::Button) => {
            let session = session(bot, key)?;
            Ok(Reply::Modal(view::prices_modal(&session, page)))
        }
        (SetupId::Creds(page), Picked::Button) => {
            let session = session(bot, key)?;
            show(bot, key, session, &Step::Credentials { page }).await
        }
        (SetupId::Verify, Picked::Button) => Ok(verify::pressed(bot, key.0)),
        (id, picked) => {
            tracing::warn!(?id, ?picked, "unexpected /setup component");
            Ok(Reply::Nothing)
        }
    }
}

/// The submitted `/setup` modals.
pub(super) async fn modal<'a>(
    bot: &'a Bot,
    actor: &Actor,
    id: SetupId,
    typed: &[(InputId, String)],
) -> Outcome<'a> {
    let key = (actor.in_guild()?, actor.user);
    let mut session = session(bot, key)?;
    let step = match id {
        SetupId::Prices(page) => session.prices_submitted(typed, page),
        SetupId::Creds(page) => {
            let fields = session
                .provider
                .as_deref()
                .and_then(|p| bot.services.providers.plugin(p))
                .map_or(0, |p| p.config_fields.len());
            session.credentials_submitted(typed, page, fields)
        }
        other => {
            tracing::warn!(id = ?other, "unexpected /setup modal");
            return Ok(Reply::Nothing);
        }
    };
    bot.sessions.put(key, session.clone());
    show(bot, key, session, &step).await
}

/// Only admins set up the shop.
fn admin(actor: &Actor) -> Result<Key, BotError> {
    let guild = actor.in_guild()?;
    if !actor.can_manage {
        return Err(BotError::refused(view::NOT_ALLOWED));
    }
    Ok((guild, actor.user))
}

fn session(bot: &Bot, key: Key) -> Result<Session, BotError> {
    bot.sessions
        .get(key)
        .ok_or_else(|| BotError::refused(view::EXPIRED))
}

/// The reply for the step the session reached.
async fn show<'a>(bot: &'a Bot, key: Key, session: Session, step: &Step) -> Outcome<'a> {
    match step {
        Step::Credentials { page } => {
            let plugin = session
                .provider
                .as_deref()
                .and_then(|p| bot.services.providers.plugin(p))
                .ok_or_else(|| BotError::refused(view::EXPIRED))?;
            let keeps = saved_provider(bot, key.0).await?.as_deref() == Some(plugin.id.as_str());
            Ok(Reply::Modal(view::credentials_modal(plugin, *page, keeps)))
        }
        Step::Save => Ok(save(bot, key, session)),
        _ => Ok(
            view::after_modal(step, &session, bot.services.providers.plugins())
                .map_or(Reply::Nothing, Reply::private),
        ),
    }
}

/// The provider of the guild's saved credentials, if any.
async fn saved_provider(bot: &Bot, guild: GuildId) -> Result<Option<String>, BotError> {
    let saved = bot
        .services
        .db
        .read(move |conn| guilds::get(conn, guild))
        .await?;
    Ok(saved
        .filter(|g| g.credentials.is_some())
        .and_then(|g| g.provider.map(|p| p.to_string())))
}

/// Roles picked: the ones Docobo cannot sell are sent back; else the first page of prices.
async fn roles_picked(bot: &Bot, key: Key, picked: &[RoleId]) -> Outcome<'static> {
    let guild = key.0;
    let snapshot = bot.roles.snapshot(guild).await.map_err(|e| {
        BotError::new(
            format!(
                "Docobo cannot read this server's roles right now ({e}). Try again in a minute."
            ),
            e,
        )
    })?;
    let roles = match session::check_roles(&snapshot, guild, picked) {
        Ok(roles) => roles,
        Err(problems) => return Ok(Reply::Update(view::cannot_sell(&problems))),
    };
    let saved = bot
        .services
        .db
        .read(move |conn| paid_roles::all(conn, guild))
        .await?;
    let session = Session::new(roles, &saved, Instant::now());
    let modal = view::prices_modal(&session, 0);
    bot.sessions.put(key, session);
    Ok(Reply::Modal(modal))
}

async fn log_channel(bot: &Bot, key: Key, channel: Option<ChannelId>) -> Outcome<'static> {
    let (guild, user) = key;
    bot.services
        .db
        .call(move |conn| guilds::set_log_channel(conn, guild, channel))
        .await?;
    tracing::info!(
        guild = guild.get(),
        user = user.get(),
        channel = channel.map(ChannelId::get),
        "log channel set"
    );
    Ok(Reply::Update(view::log_channel_set(channel)))
}

/// The last step: acknowledge (the provider is called), then validate, create products and
/// save through the shop service.
fn save(bot: &Bot, key: Key, session: Session) -> Reply<'_> {
    Reply::deferred(Ack::Thinking { ephemeral: true }, async move {
        let (guild, user) = key;
        let draft = session
            .draft()
            .ok_or_else(|| BotError::refused(view::EXPIRED))?;
        match shop::save(&bot.services, guild, &draft).await {
            Ok(saved) => {
                bot.sessions.end(key);
                tracing::info!(guild = guild.get(), user = user.get(), provider = %saved.provider, roles = saved.roles.len(), "setup saved");
                Ok(view::saved(&saved, bot.services.public_url.as_deref()))
            }
            Err(ShopError::Refused(problem)) => {
                tracing::info!(
                    guild = guild.get(),
                    user = user.get(),
                    outcome = "refused",
                    "setup not saved"
                );
                Ok(view::not_saved(&problem))
            }
            Err(e @ ShopError::Store(_)) => {
                Err(BotError::new(format!("{e}\n\nNothing was saved."), e))
            }
        }
    })
}
