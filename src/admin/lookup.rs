//! `lookup @member` (everything Docobo holds about a member, newest first) and
//! `forget @member` (delete it, keeping only anonymous financial totals).

use std::fmt::Write as _;

use serde_json::json;

use super::{Actor, AdminError, Done};
use crate::db::admin::{self as rows, ForgottenMember};
use crate::discord::{Missing, RoleError, RoleManager};
use crate::domain::{GuildId, RoleId, UnixMillis, UserId};
use crate::services::Services;

/// A member's history, newest first: each entry is a moment and what happened then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub member: UserId,
    pub entries: Vec<Entry>,
}

/// One line of a member's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub at: UnixMillis,
    pub text: String,
}

/// `lookup @member`: every subscription (with its role-sync result), payment and state
/// change recorded about the member, newest first. Read only (not an audited change).
///
/// # Errors
/// A database error.
pub async fn lookup(
    services: &Services,
    guild: GuildId,
    member: UserId,
) -> Result<Lookup, AdminError> {
    let (subs, events) = services
        .db
        .read(move |conn| rows::history(conn, guild, member))
        .await?;
    let mut entries: Vec<Entry> = subs
        .iter()
        .map(|s| Entry {
            at: s.updated_at.max(s.created_at),
            text: format!(
                "subscription #{} <@&{}> via {}{}: {}{}; role {}{}",
                s.id,
                s.role_id,
                s.provider,
                s.external_id
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default(),
                s.status,
                s.period_end
                    .map(|e| format!(" until <t:{}:D>", e.div_euclid(1000)))
                    .unwrap_or_default(),
                if s.role_applied { "given" } else { "not given" },
                s.last_sync_error
                    .as_deref()
                    .map(|e| format!(", last sync failed ({} tries): {e}", s.sync_attempts))
                    .unwrap_or_default(),
            ),
        })
        .collect();
    entries.extend(events.iter().map(|e| Entry {
        at: e.received_at,
        text: format!(
            "{} {} → {}{}{}",
            e.provider,
            e.event_type,
            e.outcome,
            e.subscription_id
                .map(|s| format!(" (subscription #{s})"))
                .unwrap_or_default(),
            e.detail
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        ),
    }));
    entries.sort_by_key(|e| std::cmp::Reverse(e.at));
    Ok(Lookup { member, entries })
}

/// `forget @member`: takes their paid roles away at Discord, then deletes their personal
/// data in this guild ([`rows::forget_member`]): what stays is anonymous (amounts,
/// currencies, dates, statuses). A role Discord would not let go is named in the reply, to
/// remove by hand; the data is deleted all the same.
///
/// # Errors
/// [`AdminError::Refused`] when Docobo holds nothing about the member.
pub async fn forget(
    services: &Services,
    roles: &RoleManager,
    guild: GuildId,
    actor: Actor,
    member: UserId,
) -> Result<Done, AdminError> {
    let (known, held) = services
        .db
        .read(move |conn| {
            let (subs, _) = rows::history(conn, guild, member)?;
            let member_row = crate::db::members::in_guild(conn, guild, member)?.is_some();
            let mut held: Vec<RoleId> = subs
                .iter()
                .filter(|s| s.role_applied)
                .filter_map(|s| RoleId::from_i64(s.role_id).ok())
                .collect();
            held.sort_unstable();
            held.dedup();
            Ok((member_row || !subs.is_empty(), held))
        })
        .await?;
    if !known {
        return Err(AdminError::Refused(format!(
            "Docobo holds no data about <@{member}> in this server: nothing to forget."
        )));
    }
    let mut kept = Vec::new();
    for role in &held {
        match roles.revoke_role(guild, member, *role).await {
            Ok(()) | Err(RoleError::NotFound(Missing::Member | Missing::Role)) => {}
            Err(e) => kept.push(format!("<@&{role}> ({e})")),
        }
    }
    let forgotten: ForgottenMember = services
        .db
        .write(move |conn| {
            let forgotten = rows::forget_member(conn, guild, member)?;
            // No trace of whom: the record says who acted and how much was deleted.
            super::audit(
                conn,
                guild,
                actor,
                "forget",
                None,
                None,
                &json!({
                    "subscriptions": forgotten.subscriptions,
                    "events_anonymised": forgotten.events_anonymised,
                }),
                &format!("{actor} deleted a member's personal data"),
            )?;
            Ok(forgotten)
        })
        .await?;
    let mut reply = format!(
        "Deleted <@{member}>'s personal data here: {} subscription(s) and their username; {} payment record(s) kept without anything that identifies them (amounts and dates only, for your totals).",
        forgotten.subscriptions, forgotten.events_anonymised
    );
    if kept.is_empty() {
        if !held.is_empty() {
            reply.push_str(" Their paid roles were removed.");
        }
    } else {
        let _ = write!(
            reply,
            "\n⚠️ Discord would not let Docobo remove {}: remove it by hand.",
            kept.join(", ")
        );
    }
    reply.push_str(
        " A card subscription at the provider is not cancelled by this: cancel it there, and ask the provider to delete the customer if they want that too.",
    );
    Ok(Done {
        reply,
        log: format!(
            "🧹 {actor} deleted a member's personal data at their request ({} subscription(s); {} payment record(s) anonymised)",
            forgotten.subscriptions, forgotten.events_anonymised
        ),
    })
}
