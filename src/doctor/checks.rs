//! The checks themselves: pure functions from what was read to [`Check`]s.

use crate::db::doctor::{FailedSyncs, LastDelivery};
use crate::db::guilds::Guild;
use crate::discord::directory::{
    ADMINISTRATOR, GuildSnapshot, MANAGE_ROLES, PermissionProblem, Refusal,
};
use crate::domain::{ChannelId, GuildId, RoleId, UserId};
use crate::providers::{LoadFailure, PluginInfo};

use super::Check;

/// `VIEW_CHANNEL`.
pub const VIEW_CHANNEL: u64 = 1 << 10;
/// `SEND_MESSAGES`.
pub const SEND_MESSAGES: u64 = 1 << 11;

/// What the edge learned from Discord for the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscordFacts {
    /// The guild's roles and the bot's, or why they could not be had.
    pub snapshot: Result<GuildSnapshot, String>,
    /// The saved log channel's overwrites (`None`: no log channel saved), or why they could
    /// not be read.
    pub log_channel: Option<Result<ChannelFacts, String>>,
    /// The bot's own user (for a member overwrite naming it).
    pub bot_user: Option<UserId>,
}

/// A channel as far as the bot's permissions in it are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelFacts {
    pub id: ChannelId,
    pub overwrites: Vec<Overwrite>,
}

/// One permission overwrite of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overwrite {
    pub target: OverwriteTarget,
    pub allow: u64,
    pub deny: u64,
}

/// Whom an overwrite applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverwriteTarget {
    Role(RoleId),
    Member(UserId),
}

/// The bot's guild-level permissions: `@everyone`'s and its roles'.
fn guild_permissions(guild: GuildId, snapshot: &GuildSnapshot) -> u64 {
    let everyone = RoleId::new(guild.get())
        .ok()
        .and_then(|r| snapshot.roles.get(&r))
        .map_or(0, |r| r.permissions);
    snapshot
        .bot_roles
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter_map(|r| snapshot.roles.get(r))
        .fold(everyone, |acc, r| acc | r.permissions)
}

/// The bot's permissions in a channel, as Discord computes them: the guild's, then the
/// `@everyone` overwrite, the bot's roles' overwrites together, and its member overwrite
/// (Administrator overrides every overwrite).
#[must_use]
pub fn channel_permissions(
    guild: GuildId,
    snapshot: &GuildSnapshot,
    bot: Option<UserId>,
    overwrites: &[Overwrite],
) -> u64 {
    let mut bits = guild_permissions(guild, snapshot);
    if bits & ADMINISTRATOR != 0 {
        return u64::MAX;
    }
    let bot_roles = snapshot.bot_roles.as_deref().unwrap_or_default();
    let apply = |bits: u64, allow: u64, deny: u64| (bits & !deny) | allow;
    if let Some(o) = overwrites
        .iter()
        .find(|o| matches!(o.target, OverwriteTarget::Role(r) if r.get() == guild.get()))
    {
        bits = apply(bits, o.allow, o.deny);
    }
    let (allow, deny) = overwrites
        .iter()
        .filter(|o| matches!(o.target, OverwriteTarget::Role(r) if bot_roles.contains(&r) && r.get() != guild.get()))
        .fold((0, 0), |(a, d), o| (a | o.allow, d | o.deny));
    bits = apply(bits, allow, deny);
    if let Some(o) = overwrites
        .iter()
        .find(|o| bot.is_some_and(|b| o.target == OverwriteTarget::Member(b)))
    {
        bits = apply(bits, o.allow, o.deny);
    }
    bits
}

/// Manage Roles, and for each role a tier for sale gives whether the bot can give it.
pub(super) fn permissions(guild: GuildId, roles: &[RoleId], discord: &DiscordFacts) -> Vec<Check> {
    let snapshot = match &discord.snapshot {
        Ok(s) => s,
        Err(why) => {
            return vec![Check::fail(
                "Bot permissions",
                format!("Discord did not say which roles Docobo has: {why}"),
                "check that Docobo is still in the server, then run /doctor again",
            )];
        }
    };
    let bits = guild_permissions(guild, snapshot);
    let manage = bits & (ADMINISTRATOR | MANAGE_ROLES) != 0;
    let mut out = vec![if manage {
        Check::pass("Manage Roles", "Docobo has the Manage Roles permission")
    } else {
        let (detail, fix) = split(&PermissionProblem::MissingManageRoles.to_string());
        Check::fail("Manage Roles", detail, fix)
    }];
    if roles.is_empty() {
        out.push(Check::fail(
            "Roles for sale",
            "no role is for sale",
            "run /setup and pick the roles to sell",
        ));
    }
    for &role in roles {
        let name = format!("Role @{}", snapshot.role_name(role));
        out.push(match snapshot.can_manage(guild, role) {
            Ok(()) => Check::pass(name, "Docobo can give and take it"),
            Err(Refusal::UnknownRole) => Check::fail(
                name,
                "the role no longer exists at Discord",
                "run /setup and pick the roles to sell again",
            ),
            Err(Refusal::Permission(PermissionProblem::MissingManageRoles)) => {
                without_manage_roles(guild, snapshot, role, name)
            }
            Err(Refusal::Permission(problem)) => {
                let (detail, fix) = split(&problem.to_string());
                Check::fail(name, detail, fix)
            }
        });
    }
    out
}

/// A role Docobo cannot give for lack of Manage Roles: whether the hierarchy would stop it
/// too once the permission is there (so the owner fixes both at once).
fn without_manage_roles(
    guild: GuildId,
    snapshot: &GuildSnapshot,
    role: RoleId,
    name: String,
) -> Check {
    let mut granted = snapshot.clone();
    if let Some(everyone) = RoleId::new(guild.get())
        .ok()
        .and_then(|r| granted.roles.get_mut(&r))
    {
        everyone.permissions |= MANAGE_ROLES;
    }
    match granted.can_manage(guild, role) {
        Err(Refusal::Permission(problem)) => {
            let (detail, fix) = split(&problem.to_string());
            Check::fail(
                name,
                format!("{detail}, and Docobo lacks Manage Roles"),
                format!("{fix}; and give Docobo Manage Roles (see above)"),
            )
        }
        _ => Check::fail(
            name,
            "Docobo cannot give it without Manage Roles",
            "give Docobo Manage Roles (see above)",
        ),
    }
}

/// `"what. Fix: how"` → `("what", "how")`.
fn split(text: &str) -> (String, String) {
    match text.split_once(". Fix: ") {
        Some((what, fix)) => (what.to_owned(), fix.to_owned()),
        None => (text.to_owned(), "see the detail".to_owned()),
    }
}

/// The log channel: saved, and the bot can see it and write there.
pub(super) fn log_channel(saved: Option<&Guild>, discord: &DiscordFacts) -> Check {
    const NAME: &str = "Log channel";
    let Some(channel) = saved.and_then(|g| g.log_channel_id) else {
        return Check::fail(
            NAME,
            "none is set: staff are not told about failed role changes or refused payments",
            "run /setup and pick a log channel",
        );
    };
    let facts = match &discord.log_channel {
        Some(Ok(facts)) => facts,
        Some(Err(why)) => {
            return Check::fail(
                NAME,
                format!("<#{channel}> cannot be read: {why}"),
                "give Docobo View Channel there, or pick another log channel in /setup",
            );
        }
        None => {
            return Check::fail(
                NAME,
                format!("<#{channel}> was not looked at"),
                "run /doctor again",
            );
        }
    };
    let (Ok(snapshot), guild) = (&discord.snapshot, saved.map(|g| g.id)) else {
        return Check::fail(
            NAME,
            format!("Docobo's roles are unknown, so its permissions in <#{channel}> are too"),
            "run /doctor again",
        );
    };
    let Some(guild) = guild else {
        return Check::fail(NAME, "the server is not saved", "run /setup");
    };
    let bits = channel_permissions(guild, snapshot, discord.bot_user, &facts.overwrites);
    let missing: Vec<&str> = [
        (VIEW_CHANNEL, "View Channel"),
        (SEND_MESSAGES, "Send Messages"),
    ]
    .into_iter()
    .filter(|(bit, _)| bits & bit == 0)
    .map(|(_, name)| name)
    .collect();
    if missing.is_empty() {
        return Check::pass(NAME, format!("Docobo can write in <#{channel}>"));
    }
    let missing = missing.join(" and ");
    Check::fail(
        NAME,
        format!("Docobo lacks {missing} in <#{channel}>"),
        format!("edit <#{channel}> → Permissions → allow Docobo's role {missing}"),
    )
}

/// `server.public_url`: set, and https (providers refuse plain http webhooks).
pub(super) fn public_url(url: Option<&str>) -> Check {
    const NAME: &str = "Public URL";
    match url {
        None => Check::fail(
            NAME,
            "server.public_url is not set: providers have no webhook URL to call",
            "ask the operator to set server.public_url (e.g. https://docobo.example.org) and restart",
        ),
        Some(url) if !url.starts_with("https://") => Check::fail(
            NAME,
            format!("{url} is not https: providers refuse to send webhooks there"),
            "ask the operator to serve Docobo over https (a reverse proxy) and set server.public_url to the https address",
        ),
        Some(url) => Check::pass(NAME, format!("providers reach Docobo at {url}")),
    }
}

/// The newest delivery and what became of it.
pub(super) fn last_delivery(
    last: Option<&LastDelivery>,
    saved: Option<&Guild>,
    public_url: Option<&str>,
) -> Check {
    const NAME: &str = "Last delivery";
    let webhook = saved.and_then(|g| {
        let provider = g.provider.as_ref()?;
        Some(format!(
            "{}/webhooks/{provider}/{}",
            public_url.unwrap_or("<public_url>"),
            g.webhook_key
        ))
    });
    let Some(last) = last else {
        return Check::fail(
            NAME,
            "no payment notification has arrived from the provider yet",
            webhook.map_or_else(
                || "run /setup first".to_owned(),
                |url| {
                    format!(
                        "at the provider, add the webhook URL {url}, or use the test purchase below"
                    )
                },
            ),
        );
    };
    let test = if last.test { " (test)" } else { "" };
    let what = format!(
        "{} {}{test} at <t:{}:f>: {}",
        last.provider,
        last.event_type,
        last.received_at.div_euclid(1000),
        last.outcome
    );
    match last.outcome.as_str() {
        "refused" | "rejected" => Check::fail(
            NAME,
            match &last.detail {
                Some(detail) => format!("{what} ({detail})"),
                None => what,
            },
            "see why above: settle it with the member, or fix the role or price in /setup",
        ),
        _ => Check::pass(NAME, what),
    }
}

/// Role changes that failed and wait for a retry.
pub(super) fn failed_syncs(failed: &FailedSyncs) -> Check {
    const NAME: &str = "Role syncs";
    if failed.count == 0 {
        return Check::pass(NAME, "no role change is waiting for a retry");
    }
    let last = failed
        .last_error
        .as_deref()
        .map(|e| format!("; the last error: {e}"))
        .unwrap_or_default();
    Check::fail(
        NAME,
        format!(
            "{} role change(s) failed and wait for a retry{last}",
            failed.count
        ),
        "fix what the checks above name; Docobo retries as soon as roles change",
    )
}

/// The guild's provider plugin, and plugin files that did not load.
pub(super) fn plugins(plugin: Option<&PluginInfo>, failures: &[LoadFailure]) -> Vec<Check> {
    let mut out = Vec::new();
    if let Some(p) = plugin {
        let capabilities = p.capabilities.names();
        out.push(Check::pass(
            format!("Plugin {}", p.id),
            format!(
                "{} {} loaded (API {}, {}){}",
                p.name,
                p.version,
                p.api_version,
                p.source,
                if capabilities.is_empty() {
                    String::new()
                } else {
                    format!(", offers {}", capabilities.join(", "))
                }
            ),
        ));
    }
    for failure in failures {
        out.push(Check::fail(
            "Plugin load",
            format!("{} did not load: {}", failure.source, failure.error),
            "ask the operator to replace or remove the file (docobo plugin inspect FILE says why)",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::discord::directory::RoleInfo;

    const GUILD: u64 = 100;

    fn id<M>(v: u64) -> crate::domain::Id<M> {
        crate::domain::Id::new(v).expect("id")
    }

    /// @everyone (View + Send), Docobo's role 2 (Manage Roles), the bot holding role 2.
    fn snapshot() -> GuildSnapshot {
        let role = |name: &str, position, permissions| RoleInfo {
            name: name.into(),
            position,
            permissions,
            managed: false,
        };
        let mut roles = HashMap::new();
        roles.insert(
            id(GUILD),
            role("@everyone", 0, VIEW_CHANNEL | SEND_MESSAGES),
        );
        roles.insert(id(2), role("Docobo", 2, MANAGE_ROLES));
        GuildSnapshot {
            name: "Shop".into(),
            owner_id: None,
            roles,
            bot_roles: Some(vec![id(2)]),
        }
    }

    fn overwrite(target: OverwriteTarget, allow: u64, deny: u64) -> Overwrite {
        Overwrite {
            target,
            allow,
            deny,
        }
    }

    #[test]
    fn channel_overwrites_apply_in_discords_order() {
        let s = snapshot();
        let guild = id(GUILD);
        let bot = Some(id(9));
        let everyone = OverwriteTarget::Role(id(GUILD));
        let bots_role = OverwriteTarget::Role(id(2));
        let both = VIEW_CHANNEL | SEND_MESSAGES;
        assert_eq!(channel_permissions(guild, &s, bot, &[]) & both, both);
        // @everyone denied Send: the bot's role allowing it wins; its member overwrite
        // denying it wins over both.
        let deny_all = overwrite(everyone, 0, SEND_MESSAGES);
        assert_eq!(
            channel_permissions(guild, &s, bot, &[deny_all]) & both,
            VIEW_CHANNEL
        );
        let role_allows = overwrite(bots_role, SEND_MESSAGES, 0);
        assert_eq!(
            channel_permissions(guild, &s, bot, &[deny_all, role_allows]) & both,
            both
        );
        let member_denies = overwrite(OverwriteTarget::Member(id(9)), 0, SEND_MESSAGES);
        assert_eq!(
            channel_permissions(guild, &s, bot, &[deny_all, role_allows, member_denies]) & both,
            VIEW_CHANNEL
        );
        // Another member's overwrite does not apply; Administrator ignores overwrites.
        let other = overwrite(OverwriteTarget::Member(id(8)), 0, VIEW_CHANNEL);
        assert_eq!(channel_permissions(guild, &s, bot, &[other]) & both, both);
        let mut admin = snapshot();
        admin.roles.get_mut(&id(2)).expect("role").permissions = ADMINISTRATOR;
        let hide = overwrite(everyone, 0, both);
        assert_eq!(
            channel_permissions(guild, &admin, bot, &[hide]) & both,
            both
        );
    }

    #[test]
    fn the_public_url_must_be_set_and_https() {
        assert!(!public_url(None).ok);
        let http = public_url(Some("http://docobo.example.org"));
        assert!(!http.ok && http.detail.contains("not https"), "{http:?}");
        assert!(http.fix.is_some());
        assert!(public_url(Some("https://docobo.example.org")).ok);
    }

    #[test]
    fn a_failed_check_splits_the_problem_from_its_fix() {
        let (what, fix) = split(&PermissionProblem::MissingManageRoles.to_string());
        assert_eq!(what, "Docobo lacks the Manage Roles permission");
        assert!(fix.starts_with("Server Settings"), "{fix}");
    }
}
