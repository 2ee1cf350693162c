//! `/doctor` (Manage Server) and its Test purchase button: the Discord edge of
//! [`crate::doctor`]. It gathers what only Discord knows (roles, the bot's place, the log
//! channel's overwrites, read fresh over REST), calls the service, and renders its report as
//! one ephemeral embed with ✔/✘ per check.

use serenity::all::{
    ButtonStyle, Channel, CreateActionRow, CreateButton, CreateEmbed, PermissionOverwriteType,
};
use serenity::model::id as sid;
use std::fmt::Write as _;

use super::Bot;
use super::custom_id::CustomId;
use super::error::BotError;
use super::interaction::Actor;
use super::notify::truncate;
use super::reply::{Ack, Outcome, Reply, View};
use super::ui::when;
use crate::db::guilds;
use crate::doctor::{
    ChannelFacts, Check, DiscordFacts, Overwrite, OverwriteTarget, Report, TestMode, TestPurchase,
};
use crate::domain::{ChannelId, GuildId, RoleId, UserId};

/// Discord's limit on an embed's description.
const DESCRIPTION_MAX: usize = 4096;

const NEEDS_MANAGE: &str = "/doctor needs the Manage Server permission.";

/// `/doctor`: every check, after an acknowledgement (the provider is asked live).
pub(super) fn command<'a>(bot: &'a Bot, actor: &Actor) -> Outcome<'a> {
    let guild = actor.in_guild()?;
    if !actor.can_manage {
        return Err(BotError::refused(NEEDS_MANAGE));
    }
    Ok(Reply::deferred(
        Ack::Thinking { ephemeral: true },
        async move {
            let facts = facts(bot, guild).await?;
            let report = bot.doctor.examine(guild, &facts).await?;
            Ok(view(&report, bot.doctor.test_minutes()))
        },
    ))
}

/// The Test purchase button: the clicker buys the cheapest role as a test.
pub(super) fn test_purchase<'a>(bot: &'a Bot, actor: &Actor) -> Outcome<'a> {
    let guild = actor.in_guild()?;
    if !actor.can_manage {
        return Err(BotError::refused(NEEDS_MANAGE));
    }
    let (user, username) = (actor.user, actor.username.clone());
    Ok(Reply::deferred(
        Ack::Thinking { ephemeral: true },
        async move {
            match bot.doctor.test_purchase(guild, user, &username).await {
                Ok(done) => Ok(purchased(&done, bot.doctor.test_minutes())),
                Err(e) => Err(BotError::new(
                    format!("No test purchase was made: {e}"),
                    anyhow::anyhow!("test purchase failed: {e}"),
                )),
            }
        },
    ))
}

/// The roles (fresh from Discord) and the log channel's overwrites.
async fn facts(bot: &Bot, guild: GuildId) -> Result<DiscordFacts, BotError> {
    let snapshot = bot.roles.refresh(guild).await.map_err(|e| e.to_string());
    let saved = bot
        .services
        .db
        .read(move |conn| guilds::get(conn, guild))
        .await?;
    let log_channel = match saved.and_then(|g| g.log_channel_id) {
        Some(channel) => Some(channel_facts(bot, channel).await),
        None => None,
    };
    Ok(DiscordFacts {
        snapshot,
        log_channel,
        bot_user: bot.roles.directory().bot_user(),
    })
}

async fn channel_facts(bot: &Bot, channel: ChannelId) -> Result<ChannelFacts, String> {
    let fetched = tokio::time::timeout(
        bot.roles.timeout(),
        bot.http.get_channel(sid::ChannelId::new(channel.get())),
    )
    .await
    .map_err(|_| "Discord did not answer in time".to_owned())?
    .map_err(|e| e.to_string())?;
    let Channel::Guild(found) = fetched else {
        return Err("it is not a server channel".into());
    };
    let overwrites = found
        .permission_overwrites
        .iter()
        .filter_map(|o| {
            let target = match o.kind {
                PermissionOverwriteType::Role(r) => {
                    OverwriteTarget::Role(RoleId::new(r.get()).ok()?)
                }
                PermissionOverwriteType::Member(u) => {
                    OverwriteTarget::Member(UserId::new(u.get()).ok()?)
                }
                _ => return None,
            };
            Some(Overwrite {
                target,
                allow: o.allow.bits(),
                deny: o.deny.bits(),
            })
        })
        .collect();
    Ok(ChannelFacts {
        id: channel,
        overwrites,
    })
}

/// One line per check: `✔ name: detail`, or `✘ name: detail` and its fix.
#[must_use]
pub(crate) fn lines(checks: &[Check]) -> String {
    let mut out = String::new();
    for check in checks {
        let mark = if check.ok { '✔' } else { '✘' };
        let _ = writeln!(out, "{mark} **{}**: {}", check.name, check.detail);
        if let Some(fix) = &check.fix {
            let _ = writeln!(out, "  ↳ Fix: {fix}");
        }
    }
    out
}

fn view(report: &Report, minutes: u32) -> View {
    let failed = report.checks.iter().filter(|c| !c.ok).count();
    let title = if failed == 0 {
        "Every check passed".to_owned()
    } else {
        format!("{failed} check(s) failed")
    };
    let embed = CreateEmbed::new()
        .title(title)
        .description(truncate(&lines(&report.checks), DESCRIPTION_MAX));
    let mut view = View::default();
    view.embeds.push(embed);
    match &report.test_mode {
        TestMode::Unavailable(why) => {
            view.text = truncate(&format!("Test purchase: not available ({why})."), 2000);
        }
        TestMode::Delivery | TestMode::Sandbox => {
            view.text = format!(
                "Test purchase: buy your cheapest role as a test (no real money); it is removed after {minutes} minute(s) and never counted as a sale."
            );
            view = view.row(CreateActionRow::Buttons(vec![
                CreateButton::new(CustomId::DoctorTest.to_string())
                    .label("Test purchase")
                    .style(ButtonStyle::Primary),
            ]));
        }
    }
    view
}

fn purchased(done: &TestPurchase, minutes: u32) -> View {
    match done {
        TestPurchase::Granted { role, until, .. } => View::text(format!(
            "Test purchase made: the test payment went through the provider plugin and Docobo's webhook URL, and <@&{role}> is being given to you. It is taken away again {} (after {minutes} minute(s)). Test purchases are never counted as sales.",
            when(*until)
        )),
        TestPurchase::Checkout { role, url, .. } => View::text(format!(
            "Pay this sandbox checkout (no real money) to get <@&{role}>; it is taken away again {minutes} minute(s) after the payment arrives, and never counted as a sale."
        ))
        .row(CreateActionRow::Buttons(vec![
            CreateButton::new_link(url).label("Open the sandbox checkout"),
        ])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_check_is_one_line_with_its_mark_and_a_failure_its_fix() {
        let report = Report {
            checks: vec![
                Check {
                    name: "Public URL".into(),
                    ok: true,
                    detail: "fine".into(),
                    fix: None,
                },
                Check {
                    name: "Log channel".into(),
                    ok: false,
                    detail: "none".into(),
                    fix: Some("pick one".into()),
                },
            ],
            test_mode: TestMode::Unavailable("no sandbox".into()),
        };
        assert_eq!(
            lines(&report.checks),
            "✔ **Public URL**: fine\n✘ **Log channel**: none\n  ↳ Fix: pick one\n"
        );
        let shown = view(&report, 5);
        assert!(shown.components.is_empty(), "no button without a test mode");
        assert!(shown.text.contains("no sandbox"), "{}", shown.text);
        let long = Report {
            checks: vec![report.checks[1].clone(); 400],
            test_mode: TestMode::Delivery,
        };
        let shown = view(&long, 5);
        assert_eq!(shown.components.len(), 1, "the Test purchase button");
        let embed = serde_json::to_value(&shown.embeds[0]).expect("json");
        let description = embed["description"].as_str().expect("description");
        assert!(description.chars().count() <= DESCRIPTION_MAX);
    }
}
