//! `/admin` (Manage Server): the owner's actions from Discord. This edge only translates:
//! options into an [`AdminCommand`], one call into [`crate::admin`], its answer into a
//! reply (ephemeral) and its log line into the log channel (or the owner's DMs).

use std::fmt::Write as _;

use serenity::all::{
    CommandData, CommandOptionType, CreateAttachment, CreateCommand, CreateCommandOption,
    InteractionContext, Permissions, ResolvedValue, Unresolved,
};

use super::Bot;
use super::error::BotError;
use super::interaction::Actor;
use super::reply::{Ack, Outcome, Reply, View};
use crate::admin::{self, AdminError, Done, MAX_DAYS};
use crate::domain::{GuildId, RoleId, UserId};

/// The largest import file downloaded.
const MAX_FILE_BYTES: u32 = 8 * 1024 * 1024;
/// Room kept in a 2000-character message for the "… more" line.
const LOOKUP_BUDGET: usize = 1850;
/// Where Discord serves attachments.
const CDN: [&str; 2] = [
    "https://cdn.discordapp.com/",
    "https://media.discordapp.net/",
];

/// An `/admin` subcommand, with its options read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum AdminCommand {
    Grant {
        member: UserId,
        tier: RoleId,
        days: Option<u32>,
    },
    Extend {
        member: UserId,
        days: u32,
    },
    Revoke {
        member: UserId,
        reason: Option<String>,
    },
    Lookup {
        member: UserId,
    },
    Forget {
        member: UserId,
    },
    Export,
    /// A file (its URL and size), or the provider's list.
    ImportFile {
        url: String,
        size: u32,
    },
    ImportProvider,
    /// A tier's partial-refund policy: `revoke` ends access, else it is kept.
    Policy {
        tier: RoleId,
        revoke: bool,
    },
    /// What a tier gives (roles, trial role) and what its end does; no edit shows it.
    Tier {
        tier: RoleId,
        edit: admin::tiers::TierEdit,
    },
    /// Stop removing roles in the guild, or start again.
    Pause,
    Resume,
}

/// `/admin`'s definition (registered with the other commands in `ui`).
pub(super) fn definition() -> CreateCommand {
    let member =
        || CreateCommandOption::new(CommandOptionType::User, "member", "The member").required(true);
    let days = |required| {
        CreateCommandOption::new(CommandOptionType::Integer, "days", "Number of days")
            .min_int_value(1)
            .max_int_value(u64::from(MAX_DAYS))
            .required(required)
    };
    let sub = |name: &str, description: &str| {
        CreateCommandOption::new(CommandOptionType::SubCommand, name, description)
    };
    let command = CreateCommand::new("admin")
        .description("Manage members' access (Manage Server)")
        .default_member_permissions(Permissions::MANAGE_GUILD)
        .contexts(vec![InteractionContext::Guild])
        .add_option(
            sub(
                "grant",
                "Give complimentary access to a paid role, for some days or for good",
            )
            .add_sub_option(member())
            .add_sub_option(
                CreateCommandOption::new(CommandOptionType::Role, "tier", "The paid role")
                    .required(true),
            )
            .add_sub_option(days(false)),
        )
        .add_option(
            sub(
                "extend",
                "Add days to a member's complimentary access or pass",
            )
            .add_sub_option(member())
            .add_sub_option(days(true)),
        )
        .add_option(
            sub("revoke", "End a member's access now")
                .add_sub_option(member())
                .add_sub_option(
                    CreateCommandOption::new(
                        CommandOptionType::String,
                        "reason",
                        "Why (kept in the audit trail)",
                    )
                    .max_length(u16::try_from(admin::MAX_REASON).unwrap_or(400)),
                ),
        )
        .add_option(
            sub(
                "lookup",
                "A member's subscriptions, payments and role syncs",
            )
            .add_sub_option(member()),
        )
        .add_option(
            sub(
                "forget",
                "Delete a member's personal data (on their request)",
            )
            .add_sub_option(member()),
        )
        .add_option(sub(
            "export",
            "Download members, tiers and entitlements as a file",
        ))
        .add_option(
            sub(
                "import",
                "Bring members in from an export file, or from the provider",
            )
            .add_sub_option(CreateCommandOption::new(
                CommandOptionType::Attachment,
                "file",
                "A file from /admin export",
            ))
            .add_sub_option(CreateCommandOption::new(
                CommandOptionType::Boolean,
                "from_provider",
                "Import the provider's current subscribers instead",
            )),
        );
    enforcement_options()
        .into_iter()
        .fold(command, CreateCommand::add_option)
        .add_option(tier_option())
}

/// `/admin tier`: the roles a tier gives besides its own, its trial role, its end policy.
fn tier_option() -> CreateCommandOption {
    let role = |name: &str, description: &str| {
        CreateCommandOption::new(CommandOptionType::Role, name, description)
    };
    CreateCommandOption::new(
        CommandOptionType::SubCommand,
        "tier",
        "What a paid role's tier gives (more roles, a trial role) and what its end does",
    )
    .add_sub_option(role("tier", "The paid role (the tier)").required(true))
    .add_sub_option(role("add_role", "Another role the tier gives"))
    .add_sub_option(role("remove_role", "A role the tier should stop giving"))
    .add_sub_option(role(
        "trial_role",
        "A role given on top while a trial lasts",
    ))
    .add_sub_option(CreateCommandOption::new(
        CommandOptionType::Boolean,
        "no_trial_role",
        "Stop giving a trial role",
    ))
    .add_sub_option(
        CreateCommandOption::new(
            CommandOptionType::String,
            "on_end",
            "When access ends: remove the roles (default) or kick the member",
        )
        .add_string_choice("remove the roles", "remove")
        .add_string_choice("kick the member", "kick"),
    )
}

/// `/admin`'s subcommands about enforcement: the partial-refund policy, pause and resume.
fn enforcement_options() -> [CreateCommandOption; 3] {
    let sub = |name: &str, description: &str| {
        CreateCommandOption::new(CommandOptionType::SubCommand, name, description)
    };
    [
        sub(
            "policy",
            "What a partial refund does to a paid role's access",
        )
        .add_sub_option(
            CreateCommandOption::new(CommandOptionType::Role, "tier", "The paid role")
                .required(true),
        )
        .add_sub_option(
            CreateCommandOption::new(
                CommandOptionType::String,
                "partial_refund",
                "Keep access (default) or end it",
            )
            .add_string_choice("keep access", "keep")
            .add_string_choice("end access", "revoke")
            .required(true),
        ),
        sub(
            "pause",
            "Stop removing roles here until /admin resume (purchases still give them)",
        ),
        sub(
            "resume",
            "Remove roles again when access ends, catching up on what ended while paused",
        ),
    ]
}

/// Reads the subcommand and its options.
pub(super) fn parse(data: &CommandData) -> Result<AdminCommand, BotError> {
    let options = data.options();
    let Some(first) = options.first() else {
        return Err(BotError::refused(
            "Pick a subcommand: /admin grant, extend, revoke, lookup, forget, export, import, policy, pause, resume or tier.",
        ));
    };
    let ResolvedValue::SubCommand(inner) = &first.value else {
        return Err(BotError::refused("Pick a subcommand of /admin."));
    };
    let find = |name: &str| inner.iter().find(|o| o.name == name).map(|o| &o.value);
    let user = || {
        match find("member") {
            Some(ResolvedValue::User(user, _)) => UserId::new(user.id.get()).ok(),
            Some(ResolvedValue::Unresolved(Unresolved::User(id))) => UserId::new(id.get()).ok(),
            _ => None,
        }
        .ok_or_else(|| BotError::refused("Name the member (the `member` option)."))
    };
    let days = |required: bool| match find("days") {
        Some(ResolvedValue::Integer(n)) => u32::try_from(*n)
            .ok()
            .filter(|d| (1..=MAX_DAYS).contains(d))
            .map(Some)
            .ok_or_else(|| BotError::refused(format!("days must be 1 to {MAX_DAYS}."))),
        _ if required => Err(BotError::refused("Give the number of days.")),
        _ => Ok(None),
    };
    let tier = || {
        match find("tier") {
            Some(ResolvedValue::Role(role)) => RoleId::new(role.id.get()).ok(),
            Some(ResolvedValue::Unresolved(Unresolved::RoleId(id))) => RoleId::new(id.get()).ok(),
            _ => None,
        }
        .ok_or_else(|| BotError::refused("Name the paid role (the `tier` option)."))
    };
    Ok(match first.name {
        "grant" => AdminCommand::Grant {
            member: user()?,
            tier: tier()?,
            days: days(false)?,
        },
        "policy" => AdminCommand::Policy {
            tier: tier()?,
            revoke: match find("partial_refund") {
                Some(ResolvedValue::String("revoke")) => true,
                Some(ResolvedValue::String("keep")) => false,
                _ => {
                    return Err(BotError::refused(
                        "Say what a partial refund does: `keep` access or `revoke` it.",
                    ));
                }
            },
        },
        "extend" => AdminCommand::Extend {
            member: user()?,
            days: days(true)?.unwrap_or(1),
        },
        "revoke" => AdminCommand::Revoke {
            member: user()?,
            reason: match find("reason") {
                Some(ResolvedValue::String(r)) => Some((*r).to_owned()),
                _ => None,
            },
        },
        "lookup" => AdminCommand::Lookup { member: user()? },
        "forget" => AdminCommand::Forget { member: user()? },
        "export" => AdminCommand::Export,
        "tier" => AdminCommand::Tier {
            tier: tier()?,
            edit: tier_edit(&find),
        },
        "pause" => AdminCommand::Pause,
        "resume" => AdminCommand::Resume,
        "import" => match (find("file"), find("from_provider")) {
            (Some(ResolvedValue::Attachment(file)), _) => AdminCommand::ImportFile {
                url: file.url.clone(),
                size: file.size,
            },
            (_, Some(ResolvedValue::Boolean(true))) => AdminCommand::ImportProvider,
            _ => {
                return Err(BotError::refused(
                    "Attach a file from /admin export (the `file` option), or set `from_provider` to import the provider's current subscribers.",
                ));
            }
        },
        other => {
            return Err(BotError::refused(format!(
                "/admin has no subcommand {other:?}."
            )));
        }
    })
}

/// `/admin tier`'s optional edits.
fn tier_edit<'a>(find: &impl Fn(&str) -> Option<&'a ResolvedValue<'a>>) -> admin::tiers::TierEdit {
    let role = |name: &str| match find(name) {
        Some(ResolvedValue::Role(role)) => RoleId::new(role.id.get()).ok(),
        Some(ResolvedValue::Unresolved(Unresolved::RoleId(id))) => RoleId::new(id.get()).ok(),
        _ => None,
    };
    let trial_role = match (role("trial_role"), find("no_trial_role")) {
        (Some(r), _) => Some(Some(r)),
        (None, Some(ResolvedValue::Boolean(true))) => Some(None),
        _ => None,
    };
    admin::tiers::TierEdit {
        add_role: role("add_role"),
        remove_role: role("remove_role"),
        trial_role,
        kick: match find("on_end") {
            Some(ResolvedValue::String("kick")) => Some(true),
            Some(ResolvedValue::String("remove")) => Some(false),
            _ => None,
        },
    }
}

/// Runs an `/admin` subcommand for someone with Manage Server.
pub(super) async fn run<'a>(bot: &'a Bot, actor: &Actor, data: &CommandData) -> Outcome<'a> {
    let guild = actor.in_guild()?;
    if !actor.can_manage {
        return Err(BotError::refused(
            "/admin needs the Manage Server permission. Ask someone who has it.",
        ));
    }
    let command = parse(data)?;
    let who = admin::Actor::discord(actor.user);
    let s = &bot.services;
    let done = match command {
        AdminCommand::Grant { member, tier, days } => {
            admin::grant(s, guild, who, member, tier, days).await
        }
        AdminCommand::Extend { member, days } => admin::extend(s, guild, who, member, days).await,
        AdminCommand::Revoke { member, reason } => {
            admin::revoke(s, guild, who, member, reason).await
        }
        AdminCommand::Policy { tier, revoke } => {
            admin::enforcement::set_partial_refund(s, guild, who, tier, revoke).await
        }
        AdminCommand::Tier { tier, edit } => {
            can_give(bot, guild, [edit.add_role, edit.trial_role.flatten()]).await?;
            let done = admin::tiers::edit(s, guild, who, tier, edit)
                .await
                .map_err(failed)?;
            if !done.log.is_empty() {
                log(bot, guild, &done).await;
            }
            return Ok(Reply::private(done.reply));
        }
        AdminCommand::Pause => admin::enforcement::pause(s, guild, who).await,
        AdminCommand::Resume => admin::enforcement::resume(s, guild, who).await,
        AdminCommand::Lookup { member } => {
            let found = admin::lookup(s, guild, member).await.map_err(failed)?;
            return Ok(Reply::private(lookup_text(&found)));
        }
        AdminCommand::Export => {
            let export = admin::export(s, guild, who).await.map_err(failed)?;
            log(bot, guild, &export.done).await;
            let mut view = View::text(export.done.reply.clone());
            view.files.push(CreateAttachment::bytes(
                export.text.into_bytes(),
                export.file_name,
            ));
            return Ok(Reply::private(view));
        }
        // Slow steps (Discord or the provider): acknowledged first.
        AdminCommand::Forget { member } => {
            return Ok(Reply::deferred(
                Ack::Thinking { ephemeral: true },
                async move {
                    let done = admin::forget(s, &bot.roles, guild, who, member)
                        .await
                        .map_err(failed)?;
                    log(bot, guild, &done).await;
                    Ok(View::text(done.reply))
                },
            ));
        }
        AdminCommand::ImportFile { url, size } => {
            return Ok(Reply::deferred(
                Ack::Thinking { ephemeral: true },
                async move {
                    let text = download(bot, &url, size).await?;
                    let (_, done) = admin::import_file(s, guild, who, &text)
                        .await
                        .map_err(failed)?;
                    log(bot, guild, &done).await;
                    Ok(View::text(done.reply))
                },
            ));
        }
        AdminCommand::ImportProvider => {
            return Ok(Reply::deferred(
                Ack::Thinking { ephemeral: true },
                async move {
                    let (_, done) = admin::import_from_provider(s, guild, who)
                        .await
                        .map_err(failed)?;
                    log(bot, guild, &done).await;
                    Ok(View::text(done.reply))
                },
            ));
        }
    };
    let done = done.map_err(failed)?;
    log(bot, guild, &done).await;
    Ok(Reply::private(done.reply))
}

/// Refuses a role the bot could not give (as `/setup` refuses one for sale), with the fix,
/// before a tier is made to give it.
async fn can_give(
    bot: &Bot,
    guild: GuildId,
    roles: impl IntoIterator<Item = Option<RoleId>>,
) -> Result<(), BotError> {
    use super::directory::Refusal;
    let roles: Vec<RoleId> = roles.into_iter().flatten().collect();
    if roles.is_empty() {
        return Ok(());
    }
    let snapshot = bot.roles.snapshot(guild).await.map_err(|e| {
        BotError::refused(format!(
            "Discord did not say which roles Docobo can give ({e}). Try again in a moment."
        ))
    })?;
    for role in roles {
        match snapshot.can_manage(guild, role) {
            Ok(()) => {}
            Err(Refusal::UnknownRole) => {
                return Err(BotError::refused(format!(
                    "<@&{role}> does not exist at Discord (any more). Fix: pick an existing role."
                )));
            }
            Err(Refusal::Permission(problem)) => {
                return Err(BotError::refused(format!(
                    "Docobo could not give <@&{role}>: {problem}."
                )));
            }
        }
    }
    Ok(())
}

fn failed(e: AdminError) -> BotError {
    match e {
        AdminError::Refused(text) | AdminError::Provider(text) => BotError::refused(text),
        AdminError::Db(e) => BotError::internal(e),
    }
}

/// Posts the action's line in the log channel (or to the owner by DM).
async fn log(bot: &Bot, guild: GuildId, done: &Done) {
    match bot
        .services
        .db
        .read(move |conn| crate::db::guilds::get(conn, guild))
        .await
    {
        Ok(Some(saved)) => {
            bot.notifier.tell_owner(&saved, &done.log).await;
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(guild = guild.get(), error = %e, "cannot read the guild to log an admin action");
        }
    }
}

/// The history, newest first, cut to one message with a count of what is left out.
fn lookup_text(found: &admin::Lookup) -> String {
    if found.entries.is_empty() {
        return format!(
            "Docobo holds nothing about <@{}> in this server.",
            found.member
        );
    }
    let mut text = format!("**<@{}>: newest first**", found.member);
    let mut shown = 0;
    for entry in &found.entries {
        let line = format!("\n<t:{}:f> {}", entry.at.div_euclid(1000), entry.text);
        if text.chars().count() + line.chars().count() > LOOKUP_BUDGET {
            break;
        }
        text.push_str(&line);
        shown += 1;
    }
    let left = found.entries.len() - shown;
    if left > 0 {
        let _ = write!(
            text,
            "\n… and {left} older entr{} not shown.",
            if left == 1 { "y" } else { "ies" }
        );
    }
    text
}

/// Downloads an attachment from Discord's CDN (or, in tests, the fake Discord).
async fn download(bot: &Bot, url: &str, size: u32) -> Result<String, BotError> {
    let from_fake = bot
        .http
        .proxy
        .as_deref()
        .is_some_and(|p| url.starts_with(p.trim_end_matches('/')));
    if !(CDN.iter().any(|c| url.starts_with(c)) || from_fake) {
        return Err(BotError::refused(
            "That attachment is not on Discord's CDN.",
        ));
    }
    if size > MAX_FILE_BYTES {
        return Err(BotError::refused(format!(
            "The file is larger than {} MiB; split it.",
            MAX_FILE_BYTES >> 20
        )));
    }
    let mut client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(20));
    if from_fake {
        client = client.no_proxy();
    }
    let body = async {
        let client = client.build()?;
        client
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await
    }
    .await
    .map_err(|e| {
        BotError::new(
            "The file could not be downloaded from Discord; try again.",
            e,
        )
    })?;
    if body.len() > MAX_FILE_BYTES as usize {
        return Err(BotError::refused("The file is too large; split it."));
    }
    String::from_utf8(body.to_vec()).map_err(|_| {
        BotError::refused("The file is not UTF-8 text: attach the .jsonl file /admin export made.")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_history_is_cut_with_a_count_of_what_is_left_out() {
        let found = admin::Lookup {
            member: UserId::new(5).expect("user"),
            entries: (0..200)
                .map(|i| admin::lookup::Entry {
                    at: 1_000_000 - i,
                    text: format!("entry number {i} with some words"),
                })
                .collect(),
        };
        let text = lookup_text(&found);
        assert!(text.chars().count() <= 2000, "{}", text.len());
        let shown = text.matches("entry number").count();
        assert!(shown > 10, "{text}");
        assert!(
            text.ends_with(&format!("… and {} older entries not shown.", 200 - shown)),
            "{text}"
        );
        assert!(
            text.find("entry number 0 ").unwrap_or(usize::MAX)
                < text.find("entry number 1 ").unwrap_or(0)
        );
    }
}
