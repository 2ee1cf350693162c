//! The role-sync worker: makes Discord agree with the database (level-triggered, so a
//! missed wake-up, a crash or a restart only delays convergence).
//!
//! - Work is what `subscriptions.next_sync_at` says is due. The webhook path sets it and wakes
//!   the worker; a successful sync schedules the next check at the moment an entitlement
//!   ends, so expiries need no separate timer.
//! - Per holding (member × paid role) the desired state is "some subscription entitles the
//!   member"; the role is granted or revoked when that differs from what was applied.
//! - Failures are typed: a permission problem tells the owner what to fix and is retried
//!   (and again as soon as a role changes at Discord); a member who left is re-granted when
//!   they come back; API errors are retried with exponential backoff and jitter.
//! - A periodic sweep re-checks members at Discord: a paid role removed by hand is put back,
//!   an unpaid one added by hand is reported (and left alone), returning members are
//!   re-granted. The providers' `poll` runs on its own schedule to catch missed webhooks.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt as _;
use serenity::model::id as sid;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::db::guilds::Guild;
use crate::db::subscriptions::{self, Subscription};
use crate::db::{Db, DbError, guilds, members, now_ms, paid_roles};
use crate::discord::roles::classify;
use crate::discord::{Missing, Notifier, RoleError, RoleManager};
use crate::domain::{GuildId, ProviderId, RoleId, SubscriptionStatus, UnixMillis, UserId};
use crate::ingest::{self, Scope};
use crate::providers::{PluginConfig, ProviderHost};
use crate::secrets::CredentialBox;

/// Holdings synced at once (role calls to different members run concurrently).
const CONCURRENCY: usize = 8;
/// Due subscriptions read per batch.
const BATCH: u32 = 256;
/// First retry delay after an API error; doubles per attempt.
const RETRY_BASE: Duration = Duration::from_millis(500);
/// Longest delay between retries.
const RETRY_MAX: Duration = Duration::from_hours(1);
/// Longest delay between passes while the database refuses to record syncs.
const DB_RETRY_MAX: Duration = Duration::from_mins(1);

/// Settings of the worker.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub grace_ms: i64,
    pub sweep_interval: Duration,
    pub poll_interval: Duration,
}

/// The role-sync worker.
#[derive(Debug, Clone)]
pub struct RoleSync {
    db: Db,
    roles: RoleManager,
    http: Arc<serenity::http::Http>,
    notifier: Notifier,
    providers: ProviderHost,
    credentials: CredentialBox,
    operator_credentials: BTreeMap<String, PluginConfig>,
    signal: Arc<Notify>,
    settings: SyncSettings,
    /// Unpaid roles already reported (guild, user, role), so each is reported once a run.
    reported: Arc<Mutex<HashSet<(GuildId, UserId, RoleId)>>>,
    /// Operator-level poll cursors (guild cursors live in `guilds.settings`).
    operator_cursors: Arc<Mutex<BTreeMap<String, String>>>,
}

/// What [`RoleSync::new`] takes.
#[derive(Debug)]
pub struct RoleSyncParts {
    pub db: Db,
    pub roles: RoleManager,
    pub http: Arc<serenity::http::Http>,
    pub providers: ProviderHost,
    pub credentials: CredentialBox,
    pub operator_credentials: BTreeMap<String, PluginConfig>,
    pub signal: Arc<Notify>,
    pub settings: SyncSettings,
}

/// What one pass over the due holdings did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// A full batch was due: more may be due right away.
    pub more: bool,
    /// Holdings whose sync failed on a database error (they stay due).
    pub failed: usize,
}

/// One member × one paid role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Holding {
    guild: GuildId,
    user: UserId,
    paid_role: i64,
}

/// A holding as role sync reads it.
struct Loaded {
    subs: Vec<Subscription>,
    role: Option<paid_roles::PaidRole>,
    guild: Option<Guild>,
    /// Whether the member is in the guild as far as Docobo knows (unknown: yes).
    present: bool,
}

impl Loaded {
    fn read(conn: &rusqlite::Connection, h: Holding) -> Result<Self, DbError> {
        Ok(Self {
            subs: subscriptions::for_holding(conn, h.guild, h.user, h.paid_role)?,
            role: paid_roles::by_id(conn, h.paid_role)?,
            guild: guilds::get(conn, h.guild)?,
            present: members::in_guild(conn, h.guild, h.user)?.unwrap_or(true),
        })
    }
}

/// What a holding's sync did, to record.
enum Outcome {
    Synced {
        applied: bool,
        next: Option<UnixMillis>,
    },
    MemberLeft,
    Failed {
        retry_at: UnixMillis,
        error: String,
    },
}

impl RoleSync {
    #[must_use]
    pub fn new(parts: RoleSyncParts) -> Self {
        Self {
            notifier: Notifier::new(Arc::clone(&parts.http)),
            db: parts.db,
            roles: parts.roles,
            http: parts.http,
            providers: parts.providers,
            credentials: parts.credentials,
            operator_credentials: parts.operator_credentials,
            signal: parts.signal,
            settings: parts.settings,
            reported: Arc::default(),
            operator_cursors: Arc::default(),
        }
    }

    /// Runs until `shutdown`. Starts with a sweep, so a restart converges at once.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut next_sweep = Instant::now();
        let mut next_poll =
            Instant::now() + Duration::from_secs(5).min(self.settings.poll_interval);
        let mut failed_passes: u32 = 0;
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            if Instant::now() >= next_sweep {
                self.sweep().await;
                next_sweep = Instant::now() + self.settings.sweep_interval;
            }
            if Instant::now() >= next_poll {
                self.poll_all().await;
                next_poll = Instant::now() + self.settings.poll_interval;
            }
            let pass = match self.process_due().await {
                Ok(pass) => pass,
                Err(e) => {
                    tracing::error!(error = %e, "role sync: database error");
                    Pass {
                        more: false,
                        failed: 1,
                    }
                }
            };
            // A holding whose sync could not be recorded is still due; retrying it at once
            // would repeat its Discord calls and log lines in a loop while the database
            // refuses (a full disk). Back off instead, as for Discord's own errors.
            failed_passes = if pass.failed > 0 {
                failed_passes + 1
            } else {
                0
            };
            if pass.more && failed_passes == 0 {
                continue;
            }
            let mut wake = next_sweep.min(next_poll);
            if failed_passes > 0 {
                let retry = backoff(failed_passes - 1, false).min(DB_RETRY_MAX);
                wake = wake.min(Instant::now() + retry);
            } else if let Ok(Some(due)) = self.db.read(subscriptions::next_due_at).await {
                let wait = u64::try_from(due - now_ms()).unwrap_or(0);
                wake = wake.min(Instant::now() + Duration::from_millis(wait));
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.signal.notified() => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Syncs every holding that is due.
    ///
    /// # Errors
    /// The due list could not be read.
    pub async fn process_due(&self) -> Result<Pass, DbError> {
        let now = now_ms();
        let due = self
            .db
            .read(move |conn| subscriptions::due(conn, now, BATCH))
            .await?;
        let full = due.len() == BATCH as usize;
        let mut holdings: Vec<Holding> = due
            .iter()
            .map(|s| Holding {
                guild: s.guild_id,
                user: s.user_id,
                paid_role: s.paid_role_id,
            })
            .collect();
        holdings.sort_unstable();
        holdings.dedup();
        let failed = std::sync::atomic::AtomicUsize::new(0);
        futures_util::stream::iter(holdings)
            .for_each_concurrent(CONCURRENCY, |h| {
                let failed = &failed;
                async move {
                    if let Err(e) = self.sync_holding(h).await {
                        failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::error!(guild = h.guild.get(), user = h.user.get(), error = %e, "role sync failed");
                    }
                }
            })
            .await;
        Ok(Pass {
            more: full,
            failed: failed.into_inner(),
        })
    }

    #[allow(
        clippy::too_many_lines,
        reason = "read, decide, act, record: one holding's sync in order"
    )]
    async fn sync_holding(&self, h: Holding) -> Result<(), DbError> {
        let now = now_ms();
        let grace = self.settings.grace_ms;
        // Read the holding beside the writer. Only if one of its subscriptions has ended is
        // a write needed first: it expires them and reads the holding again.
        let mut loaded = self.db.read(move |conn| Loaded::read(conn, h)).await?;
        if loaded
            .subs
            .iter()
            .any(|s| s.state.expire(now, s.grace_ms(grace)).is_some())
        {
            loaded = self
                .db
                .write(move |tx| {
                    for sub in subscriptions::for_holding(tx, h.guild, h.user, h.paid_role)? {
                        if let Some(expired) = sub.state.expire(now, sub.grace_ms(grace)) {
                            subscriptions::set_state(
                                tx,
                                sub.id,
                                expired,
                                sub.cancel_at_period_end,
                                now,
                            )?;
                        }
                    }
                    Loaded::read(tx, h)
                })
                .await?;
        }
        let Loaded {
            subs,
            role: Some(role),
            guild: Some(guild),
            present,
        } = loaded
        else {
            // The paid role or guild row is gone: nothing to apply.
            self.db
                .write(move |conn| subscriptions::mark_synced(conn, &loaded.subs, false, None))
                .await?;
            return Ok(());
        };
        let entitled = subs.iter().any(|s| s.is_entitled(now, grace));
        let applied = subs.iter().any(|s| s.role_applied);
        let desired = entitled && present;
        let result = if desired && !applied {
            self.roles.grant_role(h.guild, h.user, role.role_id).await
        } else if !desired && applied {
            self.roles.revoke_role(h.guild, h.user, role.role_id).await
        } else {
            Ok(())
        };
        let previous_error = subs.iter().find_map(|s| s.last_sync_error.clone());
        let attempts = subs.iter().map(|s| s.sync_attempts).max().unwrap_or(0);
        let role_id = role.role_id;
        // What to record, and whom to tell first.
        let outcome = match result {
            Ok(()) => {
                if previous_error.is_some() && desired {
                    tracing::info!(
                        guild = h.guild.get(),
                        user = h.user.get(),
                        role = role_id.get(),
                        "role sync recovered"
                    );
                }
                Outcome::Synced {
                    applied: desired,
                    next: next_change(&subs, now, grace),
                }
            }
            Err(RoleError::NotFound(Missing::Member)) => {
                tracing::info!(
                    guild = h.guild.get(),
                    user = h.user.get(),
                    "member left; the role is given again when they come back"
                );
                Outcome::MemberLeft
            }
            Err(error) => {
                let (text, retry, tell_owner) = match &error {
                    RoleError::Permission(problem) => (
                        format!(
                            "Docobo could not {} <@&{role_id}> for <@{}>: {problem}.",
                            if desired { "give" } else { "remove" },
                            h.user
                        ),
                        permission_retry(attempts),
                        true,
                    ),
                    RoleError::NotFound(_) => (
                        format!(
                            "The paid role <@&{role_id}> no longer exists at Discord. Fix: run /setup and pick the roles again."
                        ),
                        Duration::from_hours(1),
                        true,
                    ),
                    RoleError::DiscordApi(e) => (
                        format!("Discord API error: {e}"),
                        backoff(attempts, e.is_rate_limit()),
                        false,
                    ),
                };
                tracing::warn!(guild = h.guild.get(), user = h.user.get(), role = role_id.get(), error = %error, retry_in = ?retry, "role sync failed; will retry");
                // Told before it is recorded: a crash in between tells the owner twice
                // rather than never.
                if tell_owner && previous_error.as_deref() != Some(text.as_str()) {
                    self.notifier
                        .tell_owner(&guild, &format!("⚠️ {text}"))
                        .await;
                }
                Outcome::Failed {
                    retry_at: now + i64::try_from(retry.as_millis()).unwrap_or(i64::MAX / 2),
                    error: text,
                }
            }
        };
        let announced = self.announce(&guild, role_id, &subs, now).await;
        // One write records it all.
        self.db
            .write(move |conn| {
                match outcome {
                    Outcome::Synced { applied, next } => {
                        subscriptions::mark_synced(conn, &subs, applied, next)?;
                    }
                    Outcome::MemberLeft => {
                        // Unless they came back while Discord was being asked (which
                        // moved the versions): then the next sync grants again.
                        if !subscriptions::any_moved(conn, &subs)? {
                            members::set_in_guild(conn, h.guild, h.user, false)?;
                        }
                        subscriptions::mark_synced(conn, &subs, false, None)?;
                    }
                    Outcome::Failed { retry_at, error } => {
                        subscriptions::mark_failed(conn, &subs, &error, Some(retry_at))?;
                    }
                }
                for (id, key) in &announced {
                    subscriptions::set_announced(conn, *id, key)?;
                }
                Ok(())
            })
            .await
    }

    /// Posts one log-channel line per new purchase, renewal, cancellation or ending; returns
    /// what to record as announced (posted before it is recorded: a crash in between repeats
    /// a line rather than losing it).
    async fn announce(
        &self,
        guild: &Guild,
        role: RoleId,
        subs: &[Subscription],
        now: UnixMillis,
    ) -> Vec<(i64, String)> {
        let mut announced = Vec::new();
        for sub in subs {
            let key = format!("{}:{}", sub.state.status, sub.state.period_end.unwrap_or(0));
            if sub.announced.as_deref() == Some(key.as_str()) {
                continue;
            }
            let before = sub
                .announced
                .as_deref()
                .and_then(|a| a.split_once(':'))
                .map(|(s, _)| s.to_owned());
            if let Some(line) = announcement(sub, before.as_deref(), role, now) {
                self.notifier.log_line(guild, &line).await;
            }
            announced.push((sub.id, key));
        }
        announced
    }

    /// Re-checks the hierarchy, ended periods and members' actual roles.
    pub async fn sweep(&self) {
        let now = now_ms();
        match self
            .db
            .call(move |conn| {
                Ok(subscriptions::mark_ended_due(conn, now)?
                    + subscriptions::mark_failed_due(conn, None, now)?)
            })
            .await
        {
            Ok(n) if n > 0 => tracing::debug!(due = n, "sweep: scheduled ended or failed holdings"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "sweep: database error"),
        }
        let members = match self.db.read(subscriptions::members_to_check).await {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "sweep: database error");
                return;
            }
        };
        let mut refreshed = HashSet::new();
        for (guild, user) in members {
            if refreshed.insert(guild)
                && let Err(e) = self.roles.refresh(guild).await
            {
                tracing::warn!(guild = guild.get(), error = %e, "sweep: cannot read the guild's roles");
            }
            if let Err(e) = self.check_member(guild, user).await {
                tracing::warn!(guild = guild.get(), user = user.get(), error = %e, "sweep: member check failed");
            }
        }
        tracing::debug!("sweep done");
    }

    /// Compares one member's roles at Discord with what they paid for.
    #[allow(
        clippy::too_many_lines,
        reason = "one member's comparison, role by role"
    )]
    async fn check_member(&self, guild: GuildId, user: UserId) -> anyhow::Result<()> {
        let fetched = self
            .http
            .get_member(sid::GuildId::new(guild.get()), sid::UserId::new(user.get()))
            .await;
        let now = now_ms();
        let member = match fetched {
            Ok(member) => member,
            Err(e) => {
                if let RoleError::NotFound(Missing::Member) = classify(&e) {
                    self.db
                        .call(move |conn| {
                            if members::set_in_guild(conn, guild, user, false)? {
                                subscriptions::mark_member_due(
                                    conn,
                                    guild,
                                    user,
                                    None,
                                    Some(false),
                                    now,
                                )?;
                            }
                            Ok(())
                        })
                        .await?;
                    return Ok(());
                }
                return Err(e.into());
            }
        };
        let has: HashSet<u64> = member.roles.iter().map(|r| r.get()).collect();
        let grace = self.settings.grace_ms;
        let (came_back, roles, subs, guild_row) = self
            .db
            .call(move |conn| {
                let came_back = members::set_in_guild(conn, guild, user, true)?;
                Ok((
                    came_back,
                    paid_roles::all(conn, guild)?,
                    subscriptions::for_member(conn, guild, user)?,
                    guilds::get(conn, guild)?,
                ))
            })
            .await?;
        let mut wake = false;
        for role in roles {
            let holding: Vec<&Subscription> =
                subs.iter().filter(|s| s.paid_role_id == role.id).collect();
            let entitled = holding.iter().any(|s| s.is_entitled(now, grace));
            let applied = holding.iter().any(|s| s.role_applied);
            let on_member = has.contains(&role.role_id.get());
            if entitled && (!on_member || came_back) {
                // Removed by hand, or the member came back: put it back.
                if !came_back {
                    tracing::info!(
                        guild = guild.get(),
                        user = user.get(),
                        role = role.role_id.get(),
                        "sweep: a paid role was removed by hand; putting it back"
                    );
                }
                let id = role.id;
                self.db
                    .call(move |conn| {
                        subscriptions::mark_member_due(
                            conn,
                            guild,
                            user,
                            Some(id),
                            Some(false),
                            now,
                        )
                    })
                    .await?;
                wake = true;
            } else if !entitled && on_member && applied {
                let id = role.id;
                self.db
                    .call(move |conn| {
                        subscriptions::mark_member_due(conn, guild, user, Some(id), Some(true), now)
                    })
                    .await?;
                wake = true;
            } else if !entitled && on_member && !applied {
                let first = self
                    .reported
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert((guild, user, role.role_id));
                if first {
                    tracing::info!(
                        guild = guild.get(),
                        user = user.get(),
                        role = role.role_id.get(),
                        "sweep: member has a paid role without paying; left alone"
                    );
                    if let Some(g) = &guild_row {
                        let line = format!(
                            "ℹ️ <@{user}> has the paid role <@&{}> without a paid subscription (given by hand?). Docobo leaves it alone.",
                            role.role_id
                        );
                        self.notifier.log_line(g, &line).await;
                    }
                }
            }
        }
        if wake {
            self.signal.notify_one();
        }
        Ok(())
    }

    /// Asks each provider for events whose webhook never arrived.
    pub async fn poll_all(&self) {
        let guilds = match self.db.read(guilds::with_provider).await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(error = %e, "poll: database error");
                return;
            }
        };
        let mut changed = false;
        for guild in guilds {
            let (Some(provider), Some(blob)) = (&guild.provider, &guild.credentials) else {
                continue;
            };
            if !self
                .providers
                .plugin(provider.as_str())
                .is_some_and(|p| p.supports_poll)
            {
                continue;
            }
            let Ok(config) = self.credentials.open(guild.id, blob) else {
                tracing::warn!(
                    guild = guild.id.get(),
                    "poll: cannot open the guild's credentials"
                );
                continue;
            };
            let id = guild.id;
            let cursor = self
                .db
                .read(move |conn| guilds::setting(conn, id, "poll_cursor"))
                .await
                .ok()
                .flatten();
            match self
                .poll_one(provider, &config, cursor, Scope::Guild(id))
                .await
            {
                Ok((next, any)) => {
                    changed |= any;
                    if let Some(next) = next {
                        let _ = self
                            .db
                            .call(move |conn| guilds::set_setting(conn, id, "poll_cursor", &next))
                            .await;
                    }
                }
                Err(e) => {
                    tracing::warn!(guild = id.get(), provider = %provider, error = %e, "poll failed");
                }
            }
        }
        for (provider, config) in &self.operator_credentials {
            let Ok(id) = ProviderId::parse(provider) else {
                continue;
            };
            if !self
                .providers
                .plugin(provider)
                .is_some_and(|p| p.supports_poll)
            {
                continue;
            }
            let cursor = self
                .operator_cursors
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(provider)
                .cloned();
            match self.poll_one(&id, config, cursor, Scope::Operator).await {
                Ok((next, any)) => {
                    changed |= any;
                    if let Some(next) = next {
                        self.operator_cursors
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(provider.clone(), next);
                    }
                }
                Err(e) => tracing::warn!(provider = %provider, error = %e, "poll failed"),
            }
        }
        if changed {
            self.signal.notify_one();
        }
    }

    async fn poll_one(
        &self,
        provider: &ProviderId,
        config: &PluginConfig,
        cursor: Option<String>,
        scope: Scope,
    ) -> anyhow::Result<(Option<String>, bool)> {
        let result = self
            .providers
            .poll(provider.as_str(), config, cursor.as_deref())
            .await?;
        if result.events.is_empty() {
            return Ok((result.next_cursor, false));
        }
        let provider_id = provider.clone();
        let events = result.events;
        let outcomes = self
            .db
            .write(move |conn| ingest::apply_delivery(conn, &provider_id, scope, &events))
            .await?;
        let applied = outcomes.iter().filter(|o| o.changed).count();
        if applied > 0 {
            tracing::info!(provider = %provider, applied, "poll found events a webhook missed");
        }
        Ok((result.next_cursor, applied > 0))
    }
}

/// When the holding must be looked at again: the earliest future moment an entitlement ends.
fn next_change(subs: &[Subscription], now: UnixMillis, grace_ms: i64) -> Option<UnixMillis> {
    subs.iter()
        .filter_map(|s| match (s.state.status, s.state.period_end) {
            (SubscriptionStatus::Active | SubscriptionStatus::PastDue, Some(end)) => {
                Some(end.saturating_add(s.grace_ms(grace_ms)))
            }
            (SubscriptionStatus::Canceled, Some(end)) => Some(end),
            _ => None,
        })
        .filter(|&t| t > now)
        .min()
}

/// Exponential backoff with jitter (half to full delay); at least 1 s after a 429.
fn backoff(attempts: u32, rate_limited: bool) -> Duration {
    let exp = RETRY_BASE
        .saturating_mul(1 << attempts.min(16))
        .min(RETRY_MAX);
    let jittered = exp.mul_f64(rand::random_range(0.5..=1.0));
    if rate_limited {
        jittered.max(Duration::from_secs(1))
    } else {
        jittered
    }
}

/// Permission problems need a person; retry every few minutes, then hourly (a role change
/// at Discord or the sweep retries sooner).
fn permission_retry(attempts: u32) -> Duration {
    Duration::from_mins(1)
        .saturating_mul(1 << attempts.min(6))
        .min(RETRY_MAX)
}

fn announcement(
    sub: &Subscription,
    before: Option<&str>,
    role: RoleId,
    now: UnixMillis,
) -> Option<String> {
    let who = format!("<@{}>", sub.user_id);
    let end = sub
        .state
        .period_end
        .map(crate::discord::ui::date)
        .unwrap_or_default();
    let was = |s: &str| before == Some(s);
    Some(match sub.state.status {
        SubscriptionStatus::Pending => return None,
        SubscriptionStatus::Active if was("active") => format!(
            "🔁 {who} renewed <@&{role}>{}",
            if end.is_empty() {
                String::new()
            } else {
                format!(", paid until {end}")
            }
        ),
        SubscriptionStatus::Active if was("canceled") || was("past_due") => {
            format!("▶️ {who}'s <@&{role}> is active again")
        }
        SubscriptionStatus::Active => format!(
            "🎉 {who} bought <@&{role}>{}",
            if end.is_empty() {
                String::new()
            } else {
                format!(", paid until {end}")
            }
        ),
        SubscriptionStatus::Canceled if sub.state.period_end.is_some_and(|e| e > now) => {
            format!("⏸️ {who} cancelled <@&{role}>; it stays until {end}")
        }
        SubscriptionStatus::Canceled | SubscriptionStatus::Expired => {
            format!("⌛ {who}'s <@&{role}> ended; role removed")
        }
        SubscriptionStatus::PastDue => format!(
            "⚠️ {who}'s payment for <@&{role}> failed; the role stays during the grace period"
        ),
        SubscriptionStatus::Revoked => format!("⛔ {who}'s <@&{role}> was revoked; role removed"),
        SubscriptionStatus::Refunded => format!("💸 {who}'s <@&{role}> was refunded; role removed"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(
        status: SubscriptionStatus,
        period_end: Option<i64>,
        code: Option<&str>,
    ) -> Subscription {
        Subscription {
            id: 1,
            guild_id: GuildId::new(10).expect("guild"),
            user_id: UserId::new(20).expect("user"),
            paid_role_id: 1,
            provider: ProviderId::parse("polar").expect("provider"),
            external_id: None,
            state: crate::domain::SubscriptionState {
                status,
                period_end,
                last_event_at: None,
            },
            cancel_at_period_end: false,
            payment_code: code.map(str::to_owned),
            role_applied: false,
            sync_attempts: 0,
            last_sync_error: None,
            announced: None,
            sync_version: 0,
        }
    }

    #[test]
    fn the_next_check_is_when_an_entitlement_ends() {
        use SubscriptionStatus::{Active, Canceled, Expired};
        let (now, grace) = (1_000, 100);
        // Card subscriptions get the grace period, passes do not; the earliest end wins.
        assert_eq!(
            next_change(&[sub(Active, Some(5_000), None)], now, grace),
            Some(5_100)
        );
        assert_eq!(
            next_change(&[sub(Active, Some(5_000), Some("DCB1"))], now, grace),
            Some(5_000)
        );
        assert_eq!(
            next_change(
                &[
                    sub(Active, Some(5_000), None),
                    sub(Canceled, Some(3_000), None)
                ],
                now,
                grace
            ),
            Some(3_000)
        );
        // Nothing ends: no check scheduled (one-time purchases, ended ones).
        assert_eq!(
            next_change(
                &[sub(Active, None, None), sub(Expired, Some(500), None)],
                now,
                grace
            ),
            None
        );
    }

    #[test]
    fn each_change_is_announced_in_words() {
        use SubscriptionStatus::{Active, Canceled, Expired, Pending, Refunded};
        let role = RoleId::new(30).expect("role");
        let say = |s: Subscription, before: Option<&str>| announcement(&s, before, role, 1_000);
        assert!(say(sub(Active, Some(9_000), None), None).is_some_and(|l| l.contains("bought")));
        assert!(
            say(sub(Active, Some(9_000), None), Some("active"))
                .is_some_and(|l| l.contains("renewed"))
        );
        assert!(
            say(sub(Active, None, None), Some("canceled"))
                .is_some_and(|l| l.contains("active again"))
        );
        assert!(
            say(sub(Canceled, Some(9_000), None), Some("active"))
                .is_some_and(|l| l.contains("stays until"))
        );
        assert!(
            say(sub(Expired, Some(900), None), Some("canceled"))
                .is_some_and(|l| l.contains("ended"))
        );
        assert!(
            say(sub(Refunded, None, None), Some("active")).is_some_and(|l| l.contains("refunded"))
        );
        assert_eq!(say(sub(Pending, None, Some("DCB1")), None), None);
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        for attempts in 0..20 {
            let d = backoff(attempts, false);
            let full = RETRY_BASE
                .saturating_mul(1 << attempts.min(16))
                .min(RETRY_MAX);
            assert!(d <= full && d >= full / 2, "{attempts}: {d:?}");
        }
        assert!(backoff(0, true) >= Duration::from_secs(1));
        assert!(permission_retry(30) <= RETRY_MAX);
    }
}
