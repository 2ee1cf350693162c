//! "Verify now", under the saved `/setup`: Docobo waits (a deferred reply, edited when done)
//! for the next delivery to the guild's webhook URL and says whether it verified, what was
//! wrong with it, or that nothing came and where to look. The wait is
//! `server.verify_wait_secs`; the deliveries come from the webhook route through
//! [`crate::ingest::watch`].

use std::fmt::Write as _;
use std::time::Duration;

use serenity::all::{ButtonStyle, CreateActionRow, CreateButton};

use crate::db::guilds;
use crate::db::webhook_events::Outcome as EventOutcome;
use crate::discord::Bot;
use crate::discord::custom_id::{CustomId, SetupId};
use crate::discord::error::BotError;
use crate::discord::reply::{Ack, Reply, View};
use crate::domain::GuildId;
use crate::ingest::watch::{Seen, SeenEvent, Watcher};
use crate::providers::PluginInfo;

const NOT_SET_UP: &str = "This server has no payment provider yet: run /setup first.";

/// The "Verify now" button.
pub(super) fn button(label: &str) -> CreateActionRow {
    CreateActionRow::Buttons(vec![
        CreateButton::new(CustomId::Setup(SetupId::Verify).to_string())
            .label(label)
            .style(ButtonStyle::Success),
    ])
}

/// "Verify now" was pressed: watch the guild's deliveries from this moment (before the
/// acknowledgement, so that a delivery sent as soon as it shows is not missed), then wait.
pub(super) fn pressed(bot: &Bot, guild: GuildId) -> Reply<'_> {
    let watcher = bot.services.deliveries.subscribe(guild);
    Reply::deferred(
        Ack::Thinking { ephemeral: true },
        wait_for(bot, guild, watcher),
    )
}

/// The next delivery to the guild's webhook URL, or none within the wait, as the owner reads it.
async fn wait_for(bot: &Bot, guild: GuildId, mut watcher: Watcher) -> Result<View, BotError> {
    let saved = bot
        .services
        .db
        .read(move |conn| guilds::get(conn, guild))
        .await?;
    let Some((plugin, key)) = saved.and_then(|g| {
        let plugin = bot.services.providers.plugin(g.provider?.as_str())?;
        Some((plugin, g.webhook_key))
    }) else {
        return Err(BotError::refused(NOT_SET_UP));
    };
    let url = bot
        .services
        .public_url
        .as_deref()
        .map(|base| format!("{base}/webhooks/{}/{key}", plugin.id));
    let seen = watcher.next().await;
    tracing::info!(
        guild = guild.get(),
        outcome = seen.as_ref().map_or("nothing", outcome_label),
        "verify now"
    );
    let wait = bot.services.deliveries.wait();
    Ok(View::text(text(seen.as_ref(), plugin, url.as_deref(), wait)).row(button("Verify again")))
}

fn outcome_label(seen: &Seen) -> &'static str {
    match seen {
        Seen::Verified(_) => "verified",
        Seen::BadSignature => "bad_signature",
        Seen::Malformed(_) => "malformed",
        Seen::Failed => "failed",
    }
}

/// What the owner reads.
fn text(seen: Option<&Seen>, plugin: &PluginInfo, url: Option<&str>, wait: Duration) -> String {
    let name = &plugin.name;
    match seen {
        Some(Seen::Verified(events)) => verified(events, plugin),
        Some(Seen::BadSignature) => format!(
            "❌ **A delivery arrived, but its signature did not verify.** The secret in /setup does not match the one {name} shows for this webhook. Copy the webhook's secret from {name} again, run /setup and paste it (or, if this server's clock is minutes off, fix the clock). Then press Verify again."
        ),
        Some(Seen::Malformed(why)) => format!(
            "❌ **A delivery arrived and its signature verified, but Docobo could not read it:** {why}. Check the webhook's settings at {name} (its format and content type) against the /setup instructions."
        ),
        Some(Seen::Failed) => format!(
            "❌ **A delivery arrived, but Docobo could not process it** (the operator's log has the cause). {name} will send it again later."
        ),
        None => {
            let within = match wait.as_secs() {
                s if s < 60 => format!("{s} seconds"),
                s => format!("{} minute(s)", s.div_ceil(60)),
            };
            let at = url.map_or_else(
                || "this server's webhook URL".to_owned(),
                |u| format!("`{u}`"),
            );
            format!(
                "⌛ **Nothing arrived** at {at} within {within}. Check that:\n- the webhook URL at {name} is exactly that one;\n- `server.public_url` is the address the internet reaches Docobo at (ask the operator), and the reverse proxy or tunnel in front of Docobo is running;\n- {name} sends a test event (or make a test payment) after you press Verify again."
            )
        }
    }
}

fn verified(events: &[SeenEvent], plugin: &PluginInfo) -> String {
    let name = &plugin.name;
    let mut text = format!(
        "✅ **Verified.** A delivery from {name} reached this server's webhook URL and its signature checked out."
    );
    if events.is_empty() {
        text.push_str(" It carried no event Docobo acts on.");
        return text;
    }
    text.push('\n');
    let mut unused = false;
    for event in events {
        let kind = &event.event_type;
        let what = match event.outcome {
            None => "already received before".to_owned(),
            Some(EventOutcome::Ignored) => {
                unused = true;
                "an event type Docobo does not use".to_owned()
            }
            Some(o) => match &event.detail {
                Some(detail) => format!("{}: {detail}", o.as_str()),
                None => o.as_str().to_owned(),
            },
        };
        let _ = writeln!(text, "- `{kind}`: {what}");
    }
    if unused && !plugin.webhook_events.is_empty() {
        let _ = write!(
            text,
            "Docobo acts on these events; make sure they are enabled at {name}: {}",
            plugin.webhook_events.join(", ")
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{CacheOutcome, Capabilities, PluginSource};

    fn plugin() -> PluginInfo {
        PluginInfo {
            id: crate::domain::ProviderId::parse("polar").expect("id"),
            name: "Polar".into(),
            version: "1.0.0".into(),
            api_version: "0.2.0".into(),
            config_fields: vec![],
            hosts: vec![],
            allowed_hosts: vec![],
            needs_products: true,
            supports_poll: false,
            capabilities: Capabilities::default(),
            webhook_events: vec!["subscription.active".into()],
            webhook_ack: None,
            currencies: vec![],
            source: PluginSource::Builtin,
            cache: CacheOutcome::Compiled,
        }
    }

    #[test]
    fn each_outcome_says_what_happened_and_what_to_do() {
        let wait = Duration::from_mins(10);
        let ok = Seen::Verified(vec![
            SeenEvent {
                event_type: "subscription.active".into(),
                outcome: Some(EventOutcome::Applied),
                detail: None,
            },
            SeenEvent {
                event_type: "checkout.created".into(),
                outcome: Some(EventOutcome::Ignored),
                detail: None,
            },
        ]);
        let text = text(Some(&ok), &plugin(), None, wait);
        assert!(text.contains("✅ **Verified.**"), "{text}");
        assert!(text.contains("`subscription.active`: applied"), "{text}");
        assert!(text.contains("`checkout.created`: an event type Docobo does not use"));
        assert!(
            text.contains("enabled at Polar: subscription.active"),
            "{text}"
        );
        let bad = super::text(Some(&Seen::BadSignature), &plugin(), None, wait);
        assert!(
            bad.contains("The secret in /setup does not match the one Polar shows"),
            "{bad}"
        );
        let none = super::text(
            None,
            &plugin(),
            Some("https://d.example/webhooks/polar/k"),
            wait,
        );
        assert!(none.contains("within 10 minute(s)"), "{none}");
        assert!(
            none.contains("`https://d.example/webhooks/polar/k`"),
            "{none}"
        );
        assert!(none.contains("server.public_url"), "{none}");
    }
}
