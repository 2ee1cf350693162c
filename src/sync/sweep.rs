//! The drift sweep, in its own task: on a schedule it makes ended periods and failed syncs
//! due, then re-checks every known member at Discord. A paid role removed by hand is put
//! back, an unpaid one added by hand is reported (and left alone), returning members are
//! re-granted. It only marks holdings due and wakes the worker, which makes the changes; so a
//! purchase made during a sweep over thousands of members is granted at once, not after it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::db::subscriptions::{self, Subscription};
use crate::db::{guilds, members, paid_roles};
use crate::discord::{Missing, Notifier, RoleError, RoleManager};
use crate::domain::{GuildId, RoleId, UserId};
use crate::services::Services;

/// The sweeper. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sweeper {
    services: Services,
    roles: RoleManager,
    notifier: Notifier,
    /// Unpaid roles already reported (guild, user, role), so each is reported once a run.
    reported: Arc<Mutex<HashSet<(GuildId, UserId, RoleId)>>>,
}

/// What one member's check decided for one paid role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Paid for but missing (removed by hand, or the member came back): grant again.
    Regrant,
    /// Not paid for and still applied by Docobo: revoke.
    Revoke,
    /// On the member without payment and never given by Docobo: tell the staff, once.
    Report,
    Fine,
}

/// What the sweep knows about one paid role of one member.
#[derive(Debug, Clone, Copy)]
#[allow(clippy::struct_excessive_bools, reason = "four independent facts")]
struct Seen {
    /// A subscription entitles them.
    entitled: bool,
    /// Docobo gave them the role.
    applied: bool,
    /// Discord shows the role on them.
    on_member: bool,
    /// They had left and are back.
    came_back: bool,
}

/// Whether the holding's role-sync state differs from what was read before Discord was
/// asked (a sync was recorded, or something made it due, or a subscription appeared).
fn moved_meanwhile(before: &[Subscription], now: &[&Subscription]) -> bool {
    now.iter().any(|sub| {
        before.iter().find(|b| b.id == sub.id).is_none_or(|b| {
            (b.sync_version, b.role_applied, b.sync_attempts)
                != (sub.sync_version, sub.role_applied, sub.sync_attempts)
        })
    })
}

/// The verdict for one paid role of one member (pure).
fn verdict(seen: Seen) -> Verdict {
    let Seen {
        entitled,
        applied,
        on_member,
        came_back,
    } = seen;
    if entitled && (!on_member || came_back) {
        Verdict::Regrant
    } else if !entitled && on_member && applied {
        Verdict::Revoke
    } else if !entitled && on_member {
        Verdict::Report
    } else {
        Verdict::Fine
    }
}

impl Sweeper {
    #[must_use]
    pub fn new(services: Services, roles: RoleManager, notifier: Notifier) -> Self {
        Self {
            services,
            roles,
            notifier,
            reported: Arc::default(),
        }
    }

    /// Sweeps at start (a restart converges at once) and then every `interval`, until
    /// `shutdown`.
    pub async fn run(self, interval: Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.sweep() => {}
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// Re-checks ended periods, failed syncs, the hierarchy and members' actual roles.
    pub async fn sweep(&self) {
        let services = &self.services;
        let now = services.now();
        match services
            .db
            .call(move |conn| {
                Ok(subscriptions::mark_ended_due(conn, now)?
                    + subscriptions::mark_failed_due(conn, None, now)?)
            })
            .await
        {
            Ok(n) if n > 0 => {
                tracing::debug!(due = n, "sweep: scheduled ended or failed holdings");
                services.sync.wake();
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "sweep: database error"),
        }
        let members = match services.db.read(subscriptions::members_to_check).await {
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
        match services.db.read(subscriptions::renewing_by_provider).await {
            Ok(active) => services.alerts.check_silence(&active),
            Err(e) => tracing::error!(error = %e, "sweep: database error"),
        }
        tracing::debug!("sweep done");
    }

    /// Compares one member's roles at Discord with what they paid for; one write at most.
    ///
    /// The worker may change one of the member's holdings while Discord is asked (it runs
    /// beside the sweep): a holding whose role-sync state moved between the read before the
    /// call and the write after it is left alone, since the Discord answer may predate the
    /// change. The next sweep looks at it again.
    async fn check_member(&self, guild: GuildId, user: UserId) -> anyhow::Result<()> {
        let services = &self.services;
        let before = services
            .db
            .read(move |conn| subscriptions::for_member(conn, guild, user))
            .await?;
        let fetched = self.roles.member_roles(guild, user).await;
        let now = services.now();
        let has = match fetched {
            Ok(has) => has,
            Err(RoleError::NotFound(Missing::Member)) => {
                let due = services
                    .db
                    .write(move |conn| {
                        if !members::set_in_guild(conn, guild, user, false)? {
                            return Ok(0);
                        }
                        subscriptions::mark_member_due(conn, guild, user, None, Some(false), now)
                    })
                    .await?;
                if due > 0 {
                    services.sync.wake();
                }
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let grace = services.grace_ms;
        // One transaction: whether they came back, and every paid role's verdict marked due.
        let (reports, guild_row, wake) = services
            .db
            .write(move |conn| judge_member(conn, (guild, user), &has, &before, (now, grace)))
            .await?;
        if wake {
            services.sync.wake();
        }
        for role in reports {
            self.report_unpaid(guild, user, role, guild_row.as_ref())
                .await;
        }
        Ok(())
    }

    /// Tells the staff, once a run, that a member has a paid role nobody paid for.
    async fn report_unpaid(
        &self,
        guild: GuildId,
        user: UserId,
        role: RoleId,
        guild_row: Option<&guilds::Guild>,
    ) {
        let first = self
            .reported
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((guild, user, role));
        if !first {
            return;
        }
        tracing::info!(
            guild = guild.get(),
            user = user.get(),
            role = role.get(),
            "sweep: member has a paid role without paying; left alone"
        );
        if let Some(g) = guild_row {
            let line = format!(
                "ℹ️ <@{user}> has the paid role <@&{role}> without a paid subscription (given by hand?). Docobo leaves it alone."
            );
            self.notifier.log_line(g, &line).await;
        }
    }
}

/// The sweep's verdicts on one member, in one transaction: whether they came back, and
/// each paid role marked due (or reported) as what Discord shows requires. Returns the roles
/// to report, the guild, and whether anything was made due.
fn judge_member(
    conn: &rusqlite::Connection,
    (guild, user): (GuildId, UserId),
    has: &HashSet<RoleId>,
    before: &[Subscription],
    (now, grace): (crate::domain::UnixMillis, i64),
) -> Result<(Vec<RoleId>, Option<guilds::Guild>, bool), crate::db::DbError> {
    let came_back = members::set_in_guild(conn, guild, user, true)?;
    let subs = subscriptions::for_member(conn, guild, user)?;
    let mut reports = Vec::new();
    let mut wake = false;
    let tiers = crate::db::tiers::of_guild(conn, guild)?;
    // Roles the member's entitled tiers give: never "unpaid", never revoked.
    let kept: std::collections::BTreeSet<RoleId> = subs
        .iter()
        .filter(|s| s.is_entitled(now, grace))
        .filter_map(|s| tiers.get(&s.paid_role_id))
        .flat_map(crate::db::tiers::Tier::roles)
        .collect();
    for role in paid_roles::all(conn, guild)? {
        let holding: Vec<&Subscription> =
            subs.iter().filter(|s| s.paid_role_id == role.id).collect();
        if moved_meanwhile(before, &holding) {
            continue;
        }
        let entitled = holding.iter().any(|s| s.is_entitled(now, grace));
        // A paying member must show every role of the tier; one who is not
        // is judged by the tier's own role (the one nobody else sells).
        let on_member = match tiers.get(&role.id) {
            Some(tier) if entitled => tier.roles().iter().all(|r| has.contains(r)),
            _ => has.contains(&role.role_id) && !kept.contains(&role.role_id),
        };
        let seen = Seen {
            entitled,
            applied: holding.iter().any(|s| s.role_applied),
            on_member,
            came_back,
        };
        let desired_applied = match verdict(seen) {
            Verdict::Regrant => {
                // Only a role Docobo had given can have been removed by hand.
                if seen.applied && !came_back {
                    tracing::info!(
                        guild = guild.get(),
                        user = user.get(),
                        role = role.role_id.get(),
                        "sweep: a paid role was removed by hand; putting it back"
                    );
                }
                // What is on the member stays recorded (a role given and
                // still there is not lost track of); the rest is given again.
                let present: std::collections::BTreeSet<RoleId> = tiers
                    .get(&role.id)
                    .map(|t| t.roles().into_iter().filter(|r| has.contains(r)).collect())
                    .unwrap_or_default();
                let rows: Vec<Subscription> = holding.iter().map(|s| (*s).clone()).collect();
                subscriptions::set_applied(conn, &rows, &present)?;
                subscriptions::mark_member_due(conn, guild, user, Some(role.id), None, now)?;
                wake = true;
                continue;
            }
            Verdict::Revoke => true,
            Verdict::Report => {
                reports.push(role.role_id);
                continue;
            }
            Verdict::Fine => continue,
        };
        subscriptions::mark_member_due(
            conn,
            guild,
            user,
            Some(role.id),
            Some(desired_applied),
            now,
        )?;
        wake = true;
    }
    Ok((reports, guilds::get(conn, guild)?, wake))
}

#[cfg(test)]
mod tests {
    use super::{Seen, Verdict, moved_meanwhile, verdict};
    use crate::db::subscriptions::Subscription;
    use crate::domain::SubscriptionStatus;

    #[allow(clippy::fn_params_excessive_bools, reason = "a truth table")]
    fn v(entitled: bool, applied: bool, on_member: bool, came_back: bool) -> Verdict {
        verdict(Seen {
            entitled,
            applied,
            on_member,
            came_back,
        })
    }

    #[test]
    fn the_sweep_puts_back_what_was_paid_for_and_only_reports_what_was_not() {
        // entitled, applied, on the member, came back
        assert_eq!(v(true, true, false, false), Verdict::Regrant);
        assert_eq!(v(true, true, true, true), Verdict::Regrant);
        assert_eq!(v(true, true, true, false), Verdict::Fine);
        assert_eq!(v(false, true, true, false), Verdict::Revoke);
        assert_eq!(v(false, false, true, false), Verdict::Report);
        assert_eq!(v(false, false, false, false), Verdict::Fine);
    }

    #[test]
    fn a_holding_the_worker_touched_while_discord_was_asked_is_left_alone() {
        let read = Subscription::example(SubscriptionStatus::Revoked, None, None);
        let mut revoked = read.clone();
        assert!(!moved_meanwhile(std::slice::from_ref(&read), &[&revoked]));
        revoked.role_applied = !read.role_applied;
        assert!(
            moved_meanwhile(std::slice::from_ref(&read), &[&revoked]),
            "a sync was recorded"
        );
        let mut due = read.clone();
        due.sync_version += 1;
        assert!(
            moved_meanwhile(std::slice::from_ref(&read), &[&due]),
            "made due again"
        );
        let mut new = read.clone();
        new.id = 2;
        assert!(
            moved_meanwhile(&[read], &[&new]),
            "a subscription that appeared"
        );
    }
}
