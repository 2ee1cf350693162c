//! `RoleManager`: gives and takes paid roles at Discord, with typed errors.
//!
//! The hierarchy is checked against the [`Directory`] before Discord is called, so a change
//! that cannot succeed costs no request (and no 403 towards Discord's invalid-request limit).
//! When the snapshot is missing it is fetched over REST; after a 403 it is refreshed, since
//! the owner may have changed roles while the gateway was away.

use std::sync::Arc;
use std::time::Duration;

use serenity::http::{Http, HttpError};
use serenity::model::id as sid;

use super::directory::{Directory, GuildSnapshot, PermissionProblem, Refusal, RoleInfo};
use crate::domain::{GuildId, RoleId, UserId};

/// What was not found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// 10007: the member left the guild.
    Member,
    /// 10011: the role was deleted.
    Role,
}

/// Why a role change failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    /// 50013, or refused before calling Discord: the bot lacks Manage Roles or the role is
    /// not below its top role (the problem says which).
    #[error("permission problem: {0}")]
    Permission(PermissionProblem),
    #[error("{}", match .0 { Missing::Member => "the member is not in the server (10007)", Missing::Role => "the role no longer exists (10011)" })]
    NotFound(Missing),
    /// Anything else from Discord (429, 5xx, timeouts, network): worth retrying.
    #[error("Discord API error: {0}")]
    DiscordApi(DiscordApiError),
}

/// A failed Discord call that may succeed later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscordApiError {
    pub status: Option<u16>,
    pub code: Option<i64>,
    pub message: String,
}

impl DiscordApiError {
    /// Whether Discord asked us to slow down.
    #[must_use]
    pub fn is_rate_limit(&self) -> bool {
        self.status == Some(429)
    }
}

impl std::fmt::Display for DiscordApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.status, self.code) {
            (Some(s), Some(c)) if c > 0 => write!(f, "HTTP {s} (code {c}): {}", self.message),
            (Some(s), _) => write!(f, "HTTP {s}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// The reason Discord shows in the audit log.
const GRANT_REASON: &str = "Docobo: paid role purchased";
const REVOKE_REASON: &str = "Docobo: paid role ended";
const KICK_REASON: &str = "Docobo: paid access ended (the tier kicks when access ends)";

/// Gives and takes roles.
#[derive(Debug, Clone)]
pub struct RoleManager {
    http: Arc<Http>,
    directory: Directory,
    /// How long one Discord call may take before it counts as failed (`discord.timeout_ms`).
    /// The HTTP client has the same limit per request; this one also bounds the client's own
    /// waits (its rate limiter), so a role sync never waits longer on one call.
    timeout: Duration,
}

impl RoleManager {
    #[must_use]
    pub fn new(http: Arc<Http>, directory: Directory, timeout: Duration) -> Self {
        Self {
            http,
            directory,
            timeout,
        }
    }

    /// One Discord call, bounded by the deadline: no answer in time is a [`DiscordApiError`]
    /// (retried with backoff like any other).
    async fn call<T>(
        &self,
        call: impl Future<Output = serenity::Result<T>>,
    ) -> Result<T, RoleError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(serenity::Error::Http(HttpError::Request(e)))) if e.is_timeout() => {
                Err(self.no_answer())
            }
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(self.no_answer()),
        }
    }

    fn no_answer(&self) -> RoleError {
        RoleError::DiscordApi(DiscordApiError {
            status: None,
            code: None,
            message: format!(
                "Discord did not answer within {} ms (discord.timeout_ms)",
                self.timeout.as_millis()
            ),
        })
    }

    /// How long one Discord call may take (`discord.timeout_ms`).
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    #[must_use]
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Gives `role` to `user`.
    ///
    /// # Errors
    /// [`RoleError`], with the cause.
    pub async fn grant_role(
        &self,
        guild: GuildId,
        user: UserId,
        role: RoleId,
    ) -> Result<(), RoleError> {
        self.change(guild, user, role, true).await
    }

    /// Takes `role` from `user`.
    ///
    /// # Errors
    /// [`RoleError`], with the cause.
    pub async fn revoke_role(
        &self,
        guild: GuildId,
        user: UserId,
        role: RoleId,
    ) -> Result<(), RoleError> {
        self.change(guild, user, role, false).await
    }

    async fn change(
        &self,
        guild: GuildId,
        user: UserId,
        role: RoleId,
        grant: bool,
    ) -> Result<(), RoleError> {
        let snapshot = self.snapshot(guild).await?;
        match snapshot.can_manage(guild, role) {
            Ok(()) => {}
            Err(Refusal::UnknownRole) => return Err(RoleError::NotFound(Missing::Role)),
            Err(Refusal::Permission(p)) => return Err(RoleError::Permission(p)),
        }
        let (g, u, r) = (
            sid::GuildId::new(guild.get()),
            sid::UserId::new(user.get()),
            sid::RoleId::new(role.get()),
        );
        let call = async {
            if grant {
                self.http.add_member_role(g, u, r, Some(GRANT_REASON)).await
            } else {
                self.http
                    .remove_member_role(g, u, r, Some(REVOKE_REASON))
                    .await
            }
        };
        let error = match self.call(call).await {
            Ok(()) => {
                tracing::info!(
                    guild = guild.get(),
                    user = user.get(),
                    role = role.get(),
                    action = if grant { "grant" } else { "revoke" },
                    "role changed"
                );
                return Ok(());
            }
            Err(e) => e,
        };
        if let RoleError::Permission(_) = &error {
            // Our snapshot disagreed with Discord: refresh it and say what it shows now.
            if let Ok(fresh) = self.refresh(guild).await
                && let Err(Refusal::Permission(p)) = fresh.can_manage(guild, role)
            {
                return Err(RoleError::Permission(p));
            }
        }
        Err(error)
    }

    /// Kicks `user` out of `guild` (a tier whose end policy is `kick`). A member already gone
    /// is no error.
    ///
    /// # Errors
    /// [`RoleError`], with the cause (the bot needs Kick Members, above the member's roles).
    pub async fn kick_member(&self, guild: GuildId, user: UserId) -> Result<(), RoleError> {
        let call = self.http.kick_member(
            sid::GuildId::new(guild.get()),
            sid::UserId::new(user.get()),
            Some(KICK_REASON),
        );
        match self.call(call).await {
            Ok(()) | Err(RoleError::NotFound(Missing::Member)) => {
                tracing::info!(
                    guild = guild.get(),
                    user = user.get(),
                    "member kicked: paid access ended"
                );
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The roles `user` has in `guild` at Discord, as the sweep compares them.
    ///
    /// # Errors
    /// [`RoleError::NotFound`] with [`Missing::Member`] when the member left; the rest as
    /// for a role change.
    pub async fn member_roles(
        &self,
        guild: GuildId,
        user: UserId,
    ) -> Result<std::collections::HashSet<RoleId>, RoleError> {
        let member = self
            .call(
                self.http
                    .get_member(sid::GuildId::new(guild.get()), sid::UserId::new(user.get())),
            )
            .await?;
        Ok(member
            .roles
            .iter()
            .filter_map(|r| RoleId::new(r.get()).ok())
            .collect())
    }

    /// The guild's snapshot, fetched over REST when the gateway has not delivered it.
    ///
    /// # Errors
    /// The REST calls failed.
    pub async fn snapshot(&self, guild: GuildId) -> Result<GuildSnapshot, RoleError> {
        match self.directory.guild(guild) {
            Some(s) if s.bot_roles.is_some() => Ok(s),
            _ => self.refresh(guild).await,
        }
    }

    /// Re-reads the guild's roles and the bot's own roles from Discord.
    ///
    /// # Errors
    /// The REST calls failed.
    pub async fn refresh(&self, guild: GuildId) -> Result<GuildSnapshot, RoleError> {
        let g = sid::GuildId::new(guild.get());
        let roles = self.call(self.http.get_guild_roles(g)).await?;
        let bot = if let Some(bot) = self.directory.bot_user() {
            bot
        } else {
            let me = self.call(self.http.get_current_user()).await?;
            let bot = UserId::new(me.id.get()).map_err(|e| {
                RoleError::DiscordApi(DiscordApiError {
                    status: None,
                    code: None,
                    message: e.to_string(),
                })
            })?;
            self.directory.set_bot_user(bot);
            bot
        };
        let member = self
            .call(self.http.get_member(g, sid::UserId::new(bot.get())))
            .await?;
        let mut snapshot = self.directory.guild(guild).unwrap_or_default();
        snapshot.roles = roles
            .iter()
            .filter_map(|r| Some((RoleId::new(r.id.get()).ok()?, role_info(r))))
            .collect();
        snapshot.bot_roles = Some(
            member
                .roles
                .iter()
                .filter_map(|r| RoleId::new(r.get()).ok())
                .collect(),
        );
        self.directory.put_guild(guild, snapshot.clone());
        Ok(snapshot)
    }
}

/// The role fields the hierarchy check needs.
#[must_use]
pub fn role_info(role: &serenity::model::guild::Role) -> RoleInfo {
    RoleInfo {
        name: role.name.clone(),
        position: role.position,
        permissions: role.permissions.bits(),
        managed: role.managed,
    }
}

/// Maps a serenity error to a [`RoleError`].
#[must_use]
pub fn classify(error: &serenity::Error) -> RoleError {
    if let serenity::Error::Http(HttpError::UnsuccessfulRequest(response)) = error {
        let status = response.status_code.as_u16();
        let code = response.error.code;
        match (status, code) {
            (_, 10007) => return RoleError::NotFound(Missing::Member),
            (_, 10011) => return RoleError::NotFound(Missing::Role),
            // Which of the two causes is found by re-reading the hierarchy.
            (403, 50013) => return RoleError::Permission(PermissionProblem::MissingManageRoles),
            _ => {}
        }
        return RoleError::DiscordApi(DiscordApiError {
            status: Some(status),
            code: Some(code as i64),
            message: response.error.message.clone(),
        });
    }
    RoleError::DiscordApi(DiscordApiError {
        status: None,
        code: None,
        message: error.to_string(),
    })
}
