//! What a member's page shows beside [`crate::admin::lookup`]'s history, read from the store
//! (no HTTP or template types), and the admin service's Discord markup (`<@id>`, `<@&id>`,
//! `<t:…>`) made readable on the web.

use std::collections::{BTreeMap, HashMap};

use rusqlite::OptionalExtension as _;

use crate::db::{DbError, guilds, paid_roles, subscriptions};
use crate::domain::{GuildId, UserId};
use crate::services::Services;

/// A member's page, apart from the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub guild_name: String,
    /// Their Discord username as last seen (none once forgotten, or never seen).
    pub username: Option<String>,
    /// Whether the member is in the server, as far as Docobo knows (`None`: unknown).
    pub in_guild: Option<bool>,
    /// The paid roles the guild sells or sold: (Discord role id, name), for the grant form.
    pub tiers: Vec<(u64, String)>,
    /// The role-sync state of each paid role the member has a subscription to.
    pub roles: Vec<RoleSync>,
    /// Names for [`Names::plain`].
    pub names: Names,
}

/// One paid role of a member, as role sync sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSync {
    pub role: String,
    /// Whether a subscription entitles them to it now.
    pub entitled: bool,
    /// Whether the role is on them at Discord, as far as Docobo knows.
    pub given: bool,
    /// In words: in sync, waiting, or failing (with the last error).
    pub state: String,
}

/// The member's page data, or `None` for a guild Docobo does not know.
///
/// # Errors
/// The store cannot be read.
pub async fn member(
    services: &Services,
    guild: GuildId,
    user: UserId,
) -> Result<Option<MemberView>, DbError> {
    let now = services.now();
    let grace = services.grace_ms;
    services
        .db
        .read_slow(move |conn| {
            let Some(saved) = guilds::get(conn, guild)? else {
                return Ok(None);
            };
            let member: Option<(Option<String>, bool)> = conn
                .prepare_cached(
                    "SELECT username, in_guild FROM members WHERE guild_id = ?1 AND user_id = ?2",
                )?
                .query_row(rusqlite::params![guild.as_i64(), user.as_i64()], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            let paid = paid_roles::all(conn, guild)?;
            let name_of = |r: &paid_roles::PaidRole| {
                if r.name.is_empty() {
                    format!("role {}", r.role_id.get())
                } else {
                    r.name.clone()
                }
            };
            let mut names = Names::default();
            names
                .roles
                .extend(paid.iter().map(|r| (r.role_id.get(), name_of(r))));
            let (username, in_guild) = member.map_or((None, None), |(u, g)| (u, Some(g)));
            if let Some(name) = &username {
                names.users.insert(user.get(), name.clone());
            }
            let mut per_role: BTreeMap<i64, Vec<subscriptions::Subscription>> = BTreeMap::new();
            for sub in subscriptions::for_member(conn, guild, user)? {
                per_role.entry(sub.paid_role_id).or_default().push(sub);
            }
            let roles = paid
                .iter()
                .filter_map(|r| {
                    let subs = per_role.get(&r.id)?;
                    Some(role_sync(name_of(r), subs, now, grace))
                })
                .collect();
            Ok(Some(MemberView {
                guild_name: saved.name,
                username,
                in_guild,
                tiers: paid.iter().map(|r| (r.role_id.get(), name_of(r))).collect(),
                roles,
                names,
            }))
        })
        .await
}

/// A holding's role-sync state, from its subscriptions.
fn role_sync(role: String, subs: &[subscriptions::Subscription], now: i64, grace: i64) -> RoleSync {
    let entitled = subs.iter().any(|s| s.is_entitled(now, grace));
    let given = subs.iter().any(|s| s.role_applied);
    let failing = subs
        .iter()
        .filter(|s| s.sync_attempts > 0)
        .max_by_key(|s| s.sync_attempts)
        .and_then(|s| Some((s.last_sync_error.as_deref()?, s.sync_attempts)));
    let state = match (entitled, given, failing) {
        (true, true, _) => "in sync: given".to_owned(),
        (false, false, _) => "in sync: not given".to_owned(),
        (want, _, Some((error, tries))) => format!(
            "failing: to be {}; last try failed ({tries} tries): {error}",
            if want { "given" } else { "removed" }
        ),
        (true, false, None) => "waiting: to be given within seconds".to_owned(),
        (false, true, None) => "waiting: to be removed within seconds".to_owned(),
    };
    RoleSync {
        role,
        entitled,
        given,
        state,
    }
}

/// Names for the ids in the admin service's texts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    /// Discord role id → name.
    pub roles: HashMap<u64, String>,
    /// Discord user id → username.
    pub users: HashMap<u64, String>,
}

impl Names {
    /// `text` with Discord's markup made readable: `<@&id>` → `@Role`, `<@id>` → `@name
    /// (id)` or `user id`, `<t:secs:…>` → a UTC date (`D`/`d`) or date and time; the rest as is.
    #[must_use]
    pub fn plain(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find('<') {
            out.push_str(&rest[..start]);
            let tail = &rest[start..];
            let tag = tail
                .find('>')
                .and_then(|end| Some((self.tag(&tail[1..end])?, end)));
            if let Some((readable, end)) = tag {
                out.push_str(&readable);
                rest = &tail[end + 1..];
            } else {
                out.push('<');
                rest = &tail[1..];
            }
        }
        out.push_str(rest);
        out
    }

    /// The readable form of one tag's inside (`@&123`, `@123`, `t:1700000000:D`).
    fn tag(&self, inner: &str) -> Option<String> {
        let id = |s: &str| {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        };
        if let Some(role) = inner.strip_prefix("@&") {
            let role = id(role)?;
            return Some(
                self.roles
                    .get(&role)
                    .map_or_else(|| format!("role {role}"), |name| format!("@{name}")),
            );
        }
        if let Some(user) = inner.strip_prefix('@') {
            let user = id(user)?;
            return Some(self.users.get(&user).map_or_else(
                || format!("user {user}"),
                |name| format!("@{name} ({user})"),
            ));
        }
        let time = inner.strip_prefix("t:")?;
        let (secs, style) = time.split_once(':').unwrap_or((time, "f"));
        let secs = id(secs).and_then(|s| i64::try_from(s).ok())?;
        let at = jiff::Timestamp::from_second(secs).ok()?;
        Some(if matches!(style, "D" | "d") {
            at.strftime("%Y-%m-%d").to_string()
        } else {
            at.strftime("%Y-%m-%d %H:%M UTC").to_string()
        })
    }
}

/// A moment as the page shows it: `YYYY-MM-DD HH:MM UTC`, and as `datetime` wants it.
#[must_use]
pub fn when(unix_ms: i64) -> (String, String) {
    jiff::Timestamp::from_millisecond(unix_ms).map_or_else(
        |_| (String::new(), String::new()),
        |t| {
            (
                t.strftime("%Y-%m-%d %H:%M UTC").to_string(),
                t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discord_markup_reads_as_names_and_dates() {
        let mut names = Names::default();
        names.roles.insert(3000, "Supporter".into());
        names.users.insert(42, "fan".into());
        assert_eq!(
            names.plain("<@7> granted <@42> complimentary <@&3000> until <t:1767225600:D>."),
            "user 7 granted @fan (42) complimentary @Supporter until 2026-01-01."
        );
        assert_eq!(
            names.plain("<@&9> at <t:1767225600>"),
            "role 9 at 2026-01-01 00:00 UTC"
        );
        // Anything else stays as it was, angle brackets and all.
        for text in [
            "a < b > c",
            "<@x>",
            "<@&>",
            "<t:abc:D>",
            "<",
            "tail <@42",
            "<<@42>>",
        ] {
            let expected = text.replace("<@42>", "@fan (42)");
            assert_eq!(names.plain(text), expected, "{text}");
        }
    }
}
