//! One holding's sync (a member × a paid role): read it, decide what Discord must show,
//! act through [`crate::discord::RoleManager`], record the outcome in one write.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{Holding, RETRY_BASE, RETRY_MAX, RoleSync};
use crate::alerts::{Alert, AlertKind, Target};
use crate::db::guilds::Guild;
use crate::db::subscriptions::{self, Subscription};
use crate::db::tiers::{self, Tier};
use crate::db::{DbError, guilds, members, paid_roles};
use crate::discord::{Missing, RoleError};
use crate::domain::{GuildId, RoleId, SubscriptionStatus, UnixMillis, UserId};

/// A holding as role sync reads it.
struct Loaded {
    subs: Vec<Subscription>,
    role: Option<paid_roles::PaidRole>,
    guild: Option<Guild>,
    /// Whether the member is in the guild as far as Docobo knows (unknown: yes).
    present: bool,
    /// The owner paused enforcement (`/admin pause`): no role is taken away.
    paused: bool,
    /// The member's other holdings in the guild, with their tiers: a role one of them
    /// gives is never taken away by this one (a plan change keeps shared roles on).
    others: Vec<(Subscription, Option<Tier>)>,
    tier: Option<Tier>,
    /// The holding's latest subscription is a test purchase (`/doctor`'s): its end never
    /// kicks the admin who made it.
    latest_is_test: bool,
}

impl Loaded {
    fn read(conn: &rusqlite::Connection, h: Holding) -> Result<Self, DbError> {
        let tiers = tiers::of_guild(conn, h.guild)?;
        // One read of the member's rows: this holding's (oldest first) and the others.
        let (mut subs, others): (Vec<Subscription>, Vec<Subscription>) =
            subscriptions::for_member(conn, h.guild, h.user)?
                .into_iter()
                .partition(|s| s.paid_role_id == h.paid_role);
        subs.reverse();
        let others = others
            .into_iter()
            .map(|s| {
                let tier = tiers.get(&s.paid_role_id).cloned();
                (s, tier)
            })
            .collect();
        Ok(Self {
            subs,
            role: paid_roles::by_id(conn, h.paid_role)?,
            guild: guilds::get(conn, h.guild)?,
            present: members::in_guild(conn, h.guild, h.user)?.unwrap_or(true),
            paused: guilds::enforcement_paused_at(conn, h.guild)?.is_some(),
            others,
            tier: tiers.get(&h.paid_role).cloned(),
            latest_is_test: subscriptions::holding_latest_is_test(
                conn,
                h.guild,
                h.user,
                h.paid_role,
            )?,
        })
    }
}

/// The role changes a holding's sync makes at Discord, decided from what it read.
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    grant: BTreeSet<RoleId>,
    revoke: BTreeSet<RoleId>,
    /// What to record as on the member once the changes are made.
    applied: BTreeSet<RoleId>,
    /// Kick the member after the revokes (the tier's end policy, nothing else keeps them).
    kick: bool,
    /// What the record said was on the member before (kept, less what was taken and plus
    /// what was given, when a change fails midway).
    was: BTreeSet<RoleId>,
}

/// Decides a holding's changes: give what the tier gives (and its trial role while
/// trialing) when the member is entitled; take away what this holding gave and no longer
/// should, except a role another entitled holding of the member gives.
fn plan(
    tier: &Tier,
    subs: &[Subscription],
    others: &[(Subscription, Option<Tier>)],
    (entitled, desired): (bool, bool),
    now: UnixMillis,
    grace: i64,
) -> Result<Plan, DbError> {
    let mut applied = BTreeSet::new();
    for s in subs {
        applied.extend(tiers::applied_roles(
            s.role_applied,
            s.applied_roles.as_deref(),
            tier.role,
        )?);
    }
    let trialing = subs
        .iter()
        .any(|s| s.state.status == SubscriptionStatus::Trialing && s.is_entitled(now, grace));
    let wanted = if desired {
        tier.roles_while(trialing)
    } else {
        BTreeSet::new()
    };
    let mut kept_by_others = BTreeSet::new();
    for (s, other) in others {
        if let Some(other) = other
            && s.is_entitled(now, grace)
        {
            kept_by_others
                .extend(other.roles_while(s.state.status == SubscriptionStatus::Trialing));
        }
    }
    let mut revoke: BTreeSet<RoleId> = if !desired && !applied.is_empty() {
        // Ending: everything the tier gives goes, whatever the record says it gave (the
        // sweep records "on the member" without the list); its trial role only if given.
        applied.union(&tier.roles()).copied().collect()
    } else {
        applied.difference(&wanted).copied().collect()
    };
    revoke.retain(|r| !kept_by_others.contains(r));
    let ending = !desired && !applied.is_empty();
    Ok(Plan {
        grant: wanted.difference(&applied).copied().collect(),
        revoke,
        // Only the end of paying kicks, never a member recorded as away.
        kick: ending && !entitled && tier.kick && kept_by_others.is_empty(),
        applied: wanted,
        was: applied,
    })
}

/// What a holding's sync did, to record.
enum Outcome {
    Synced {
        applied: BTreeSet<RoleId>,
        next: Option<UnixMillis>,
    },
    MemberLeft,
    Failed {
        retry_at: UnixMillis,
        error: String,
        /// What is on the member after the changes that did succeed.
        on_member: BTreeSet<RoleId>,
    },
}

impl RoleSync {
    #[allow(
        clippy::too_many_lines,
        reason = "read, decide, act, record: one holding's sync in order"
    )]
    pub(super) async fn sync_holding(&self, h: Holding) -> Result<(), DbError> {
        let now = self.services.now();
        let grace = self.services.grace_ms;
        // Read the holding beside the writer. Only if one of its subscriptions has ended is
        // a write needed first: it expires them and reads the holding again.
        let mut loaded = self
            .services
            .db
            .read(move |conn| Loaded::read(conn, h))
            .await?;
        if loaded
            .subs
            .iter()
            .any(|s| s.state.expire(now, s.grace_ms(grace)).is_some())
        {
            loaded = self
                .services
                .db
                .write(move |tx| {
                    crate::subscriptions::expire_holding(
                        tx,
                        h.guild,
                        h.user,
                        h.paid_role,
                        now,
                        grace,
                    )?;
                    Loaded::read(tx, h)
                })
                .await?;
        }
        let Loaded {
            subs,
            role: Some(role),
            guild: Some(guild),
            present,
            paused,
            others,
            tier: Some(tier),
            latest_is_test,
        } = loaded
        else {
            // The paid role or guild row is gone: nothing to apply.
            self.services
                .db
                .write(move |conn| {
                    subscriptions::mark_synced(conn, &loaded.subs, &BTreeSet::new(), None)
                })
                .await?;
            return Ok(());
        };
        let entitled = subs.iter().any(|s| s.is_entitled(now, grace));
        let desired = entitled && present;
        let mut plan = plan(&tier, &subs, &others, (entitled, desired), now, grace)?;
        plan.kick &= !latest_is_test;
        if paused && (!plan.revoke.is_empty() || plan.kick) {
            // Enforcement is paused: the roles stay, and so does the record that they are
            // on the member, so `resume` (which makes the guild due) takes them away then.
            // The change is not announced either: it has not happened yet.
            tracing::info!(
                guild = h.guild.get(),
                user = h.user.get(),
                role = role.role_id.get(),
                "enforcement paused; the role stays until the owner resumes"
            );
            plan.applied.extend(std::mem::take(&mut plan.revoke));
            plan.kick = false;
            if plan.grant.is_empty() {
                let applied = plan.applied;
                return self
                    .services
                    .db
                    .write(move |conn| subscriptions::mark_synced(conn, &subs, &applied, None))
                    .await;
            }
        }
        // Gives first, then takes away: a role the member keeps is never off meanwhile. A
        // role refused or gone does not stop the others; Discord failing, or the member
        // gone, does (every other call would fail the same way).
        let mut result = Ok(());
        let mut role_id = role.role_id;
        let mut on_member = plan.was.clone();
        for (&r, grant) in plan
            .grant
            .iter()
            .map(|r| (r, true))
            .chain(plan.revoke.iter().map(|r| (r, false)))
        {
            let done = if grant {
                self.roles.grant_role(h.guild, h.user, r).await
            } else {
                match self.roles.revoke_role(h.guild, h.user, r).await {
                    // A role deleted at Discord is on nobody.
                    Err(RoleError::NotFound(Missing::Role)) => Ok(()),
                    other => other,
                }
            };
            match done {
                Ok(()) if grant => {
                    on_member.insert(r);
                }
                Ok(()) => {
                    on_member.remove(&r);
                }
                Err(e) => {
                    let stop = matches!(
                        e,
                        RoleError::DiscordApi(_) | RoleError::NotFound(Missing::Member)
                    );
                    if result.is_ok() {
                        role_id = r;
                        result = Err(e);
                    }
                    if stop {
                        break;
                    }
                }
            }
        }
        if result.is_ok() && plan.kick {
            self.kick(h, &tier).await;
        }
        let previous_error = subs.iter().find_map(|s| s.last_sync_error.clone());
        let attempts = subs.iter().map(|s| s.sync_attempts).max().unwrap_or(0);
        // Discord failing or not answering: the log line waits for the next attempt rather
        // than holding this one for another deadline.
        let discord_failing = matches!(result, Err(RoleError::DiscordApi(_)));
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
                    applied: plan.applied,
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
                let retry = match &error {
                    RoleError::Permission(_) => permission_retry(attempts),
                    RoleError::NotFound(_) => Duration::from_hours(1),
                    RoleError::DiscordApi(e) => backoff(attempts, e.is_rate_limit()),
                };
                let text = failure_text(&error, desired, role_id, h.user);
                tracing::warn!(guild = h.guild.get(), user = h.user.get(), role = role_id.get(), error = %error, retry_in = ?retry, "role sync failed; will retry");
                // Told before it is recorded: a crash in between tells the owner twice
                // rather than never. Once per streak of the same failure (its repeats
                // for other members are summarised); Discord's own errors from the second
                // failure in a row, as one alone is retried in a moment; every 429 (the
                // alerts' window keeps that to one message and a summary).
                let first = match &error {
                    RoleError::DiscordApi(e) => e.is_rate_limit() || attempts == 1,
                    _ => previous_error.as_deref() != Some(text.as_str()),
                };
                if first {
                    self.services
                        .alerts
                        .raise(failure_alert(&error, &text, h.guild, h.user));
                }
                Outcome::Failed {
                    retry_at: now + i64::try_from(retry.as_millis()).unwrap_or(i64::MAX / 2),
                    error: text,
                    on_member,
                }
            }
        };
        let announced = if discord_failing {
            Vec::new()
        } else {
            self.notifier
                .announce(&guild, role.role_id, &subs, now)
                .await
        };
        // One write records it all.
        self.services
            .db
            .write(move |conn| {
                match outcome {
                    Outcome::Synced { applied, next } => {
                        subscriptions::mark_synced(conn, &subs, &applied, next)?;
                    }
                    Outcome::MemberLeft => {
                        // Unless they came back while Discord was being asked (which
                        // moved the versions): then the next sync grants again.
                        if !subscriptions::any_moved(conn, &subs)? {
                            members::set_in_guild(conn, h.guild, h.user, false)?;
                        }
                        subscriptions::mark_synced(conn, &subs, &BTreeSet::new(), None)?;
                    }
                    Outcome::Failed {
                        retry_at,
                        error,
                        on_member,
                    } => {
                        subscriptions::mark_failed(conn, &subs, &error, Some(retry_at))?;
                        subscriptions::set_applied(conn, &subs, &on_member)?;
                    }
                }
                for (id, key) in &announced {
                    subscriptions::set_announced(conn, *id, key)?;
                }
                Ok(())
            })
            .await
    }
}

impl RoleSync {
    /// Kicks a member whose access to `tier` ended (its policy), after their roles went.
    /// A refusal is the owner's to fix and is told once per streak; the roles are gone
    /// either way, and the kick is not retried (a member who rejoins is not kicked again).
    async fn kick(&self, h: Holding, tier: &Tier) {
        // Read again just before: a purchase made while this sync ran keeps the member.
        let (now, grace) = (self.services.now(), self.services.grace_ms);
        let kept = self
            .services
            .db
            .read(move |conn| subscriptions::for_member(conn, h.guild, h.user))
            .await
            .map(|subs| subs.iter().any(|s| s.is_entitled(now, grace)));
        if !matches!(kept, Ok(false)) {
            return;
        }
        if let Err(error) = self.roles.kick_member(h.guild, h.user).await {
            tracing::warn!(guild = h.guild.get(), user = h.user.get(), error = %error, "kick refused");
            let (kind, fix) = match &error {
                RoleError::Permission(_) => (
                    AlertKind::RolePermission,
                    "give the bot the Kick Members permission and move its role above the member's roles, or set the tier back to removing roles with /admin tier on_end:remove.",
                ),
                _ => (
                    AlertKind::RoleDiscordError,
                    "kick them by hand if they should go; Docobo does not retry a kick.",
                ),
            };
            self.services.alerts.raise(
                Alert::new(
                    kind,
                    Target::Guild(h.guild),
                    format!(
                        "Docobo removed the paid roles of <@{}> (their access to <@&{}> ended) but could not kick them: {error}.",
                        h.user, tier.role
                    ),
                    fix,
                )
                .about(format!("<@{}>", h.user)),
            );
        }
    }
}

/// What a failed sync records (and compares, to tell each streak once).
fn failure_text(error: &RoleError, desired: bool, role: RoleId, user: UserId) -> String {
    match error {
        RoleError::Permission(problem) => format!(
            "Docobo could not {} <@&{role}> for <@{user}>: {problem}.",
            if desired { "give" } else { "remove" },
        ),
        RoleError::NotFound(_) => format!(
            "The paid role <@&{role}> no longer exists at Discord. Fix: run /setup and pick the roles again (or, for a role a tier gives besides its own, /admin tier remove_role)."
        ),
        RoleError::DiscordApi(e) => format!("Discord API error: {e}"),
    }
}

/// The alert for a failed sync: the owner's to fix, except Discord's own errors (5xx: the
/// staff learn that roles are late; no answer: the operator, as a message would not get
/// through either) and rate limits (the operator's: the bot as a whole is too busy).
fn failure_alert(error: &RoleError, text: &str, guild: GuildId, user: UserId) -> Alert {
    let (cause, fix) = text.trim_end_matches('.').split_once(". Fix: ").map_or(
        (text, "the role is changed by itself once it is fixed."),
        |(c, f)| (c, f),
    );
    match error {
        RoleError::DiscordApi(e) if e.is_rate_limit() => Alert::new(
            AlertKind::DiscordRateLimited,
            Target::Operator,
            format!("Discord rate-limited a role change in guild {guild}: {e}. Role changes are retried with backoff, so they are late."),
            "nothing, if it is rare; if it goes on, the bot makes too many calls (many guilds, or another program with the same bot token): stop that program, or spread the load.",
        ),
        // No answer at all (a timeout, the network): a message through Discord would hang
        // the same way, so the operator hears of it (their webhook, or the log).
        RoleError::DiscordApi(e) if e.status.is_none() => Alert::new(
            AlertKind::RoleDiscordError,
            Target::Operator,
            format!("Discord did not answer a role change in guild {guild} twice in a row ({e})."),
            "check this machine's network and discordstatus.com; Docobo retries with backoff and the roles land when Discord answers.",
        ),
        RoleError::DiscordApi(e) => Alert::new(
            AlertKind::RoleDiscordError,
            Target::Guild(guild),
            format!("Discord failed a role change for <@{user}> twice in a row ({e}). Likely cause: Discord is having trouble."),
            "nothing to do: Docobo retries with backoff and the role lands when Discord answers. If it lasts for hours, see discordstatus.com.",
        )
        .about(format!("<@{user}>")),
        RoleError::Permission(_) | RoleError::NotFound(_) => {
            let kind = if matches!(error, RoleError::Permission(_)) {
                AlertKind::RolePermission
            } else {
                AlertKind::RoleMissing
            };
            Alert::new(kind, Target::Guild(guild), format!("{cause}."), fix)
                .about(format!("<@{user}>"))
        }
    }
}

/// When the holding must be looked at again: the earliest future moment an entitlement ends.
fn next_change(subs: &[Subscription], now: UnixMillis, grace_ms: i64) -> Option<UnixMillis> {
    subs.iter()
        .filter_map(|s| match (s.state.status, s.state.period_end) {
            (SubscriptionStatus::Active | SubscriptionStatus::PastDue, Some(end)) => {
                Some(end.saturating_add(s.grace_ms(grace_ms)))
            }
            (SubscriptionStatus::Canceled | SubscriptionStatus::Trialing, Some(end)) => Some(end),
            _ => None,
        })
        .filter(|&t| t > now)
        .min()
}

/// Exponential backoff with jitter (half to full delay); at least 1 s after a 429.
pub(super) fn backoff(attempts: u32, rate_limited: bool) -> Duration {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_check_is_when_an_entitlement_ends() {
        use SubscriptionStatus::{Active, Canceled, Expired};
        let (now, grace) = (1_000, 100);
        // Card subscriptions get the grace period, passes do not; the earliest end wins.
        assert_eq!(
            next_change(
                &[Subscription::example(Active, Some(5_000), None)],
                now,
                grace
            ),
            Some(5_100)
        );
        assert_eq!(
            next_change(
                &[Subscription::example(Active, Some(5_000), Some("DCB1"))],
                now,
                grace
            ),
            Some(5_000)
        );
        assert_eq!(
            next_change(
                &[
                    Subscription::example(Active, Some(5_000), None),
                    Subscription::example(Canceled, Some(3_000), None)
                ],
                now,
                grace
            ),
            Some(3_000)
        );
        // Nothing ends: no check scheduled (one-time purchases, ended ones).
        assert_eq!(
            next_change(
                &[
                    Subscription::example(Active, None, None),
                    Subscription::example(Expired, Some(500), None)
                ],
                now,
                grace
            ),
            None
        );
    }

    fn tier(paid_role: i64, own: u64, extra: &[u64]) -> Tier {
        Tier {
            paid_role,
            role: RoleId::new(own).expect("id"),
            extra: extra.iter().map(|r| RoleId::new(*r).expect("id")).collect(),
            trial_role: None,
            kick: true,
        }
    }

    fn roles(ids: &[u64]) -> BTreeSet<RoleId> {
        ids.iter().map(|r| RoleId::new(*r).expect("id")).collect()
    }

    #[test]
    fn a_plan_gives_what_is_missing_and_never_takes_what_another_tier_gives() {
        use SubscriptionStatus::{Active, Expired};
        let (now, grace) = (1_000, 0);
        let gold = tier(1, 10, &[30]);
        let silver = tier(2, 20, &[30]);
        // The old tier ended (its roles 10 and 30 on the member); the new one is entitled
        // and not applied yet: 10 goes, 30 stays (silver gives it), nobody is kicked.
        let mut ended = Subscription::example(Expired, Some(500), None);
        ended.role_applied = true;
        ended.applied_roles = Some("10,30".into());
        let mut new = Subscription::example(Active, Some(5_000), None);
        new.paid_role_id = 2;
        let others = vec![(new.clone(), Some(silver.clone()))];
        let p = plan(&gold, &[ended], &others, (false, false), now, grace).expect("plan");
        assert_eq!(p.revoke, roles(&[10]));
        assert!(
            p.grant.is_empty() && p.applied.is_empty() && !p.kick,
            "{p:?}"
        );
        // The new tier gives all of its roles (30 again is harmless: Discord keeps it on).
        let p = plan(&silver, &[new], &[], (true, true), now, grace).expect("plan");
        assert_eq!(p.grant, roles(&[20, 30]));
        assert!(p.revoke.is_empty());
        assert_eq!(p.applied, roles(&[20, 30]));
    }

    #[test]
    fn an_ending_with_nothing_else_kicks_and_an_old_row_means_its_own_role() {
        use SubscriptionStatus::Expired;
        let gold = tier(1, 10, &[30]);
        // A row from before V12: applied, no list: its own role (and the tier's others).
        let mut old = Subscription::example(Expired, Some(500), None);
        old.role_applied = true;
        let p = plan(&gold, &[old], &[], (false, false), 1_000, 0).expect("plan");
        assert_eq!(p.revoke, roles(&[10, 30]));
        assert!(p.kick);
        // Never applied: nothing to take away, nobody to kick.
        let never = Subscription::example(Expired, Some(500), None);
        let p = plan(&gold, &[never], &[], (false, false), 1_000, 0).expect("plan");
        assert_eq!(p, Plan::default());
        // Paying but recorded as away (left, or a late event): roles go, no kick.
        let mut away = Subscription::example(SubscriptionStatus::Active, Some(5_000), None);
        away.role_applied = true;
        let p = plan(&gold, &[away], &[], (true, false), 1_000, 0).expect("plan");
        assert!(!p.kick && !p.revoke.is_empty(), "{p:?}");
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
