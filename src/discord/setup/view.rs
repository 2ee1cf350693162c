//! What `/setup` shows: its selects, modals and buttons, and its texts.

use std::fmt::Write as _;

use serenity::all::{
    ButtonStyle, ChannelType, CreateActionRow, CreateButton, CreateInputText, CreateModal,
    CreateSelectMenu, CreateSelectMenuKind, CreateSelectMenuOption, InputTextStyle,
};

use super::session::{PAGE, Problem, Session, Step, pages};
use crate::db::guilds::Guild;
use crate::db::paid_roles::PaidRole;
use crate::discord::custom_id::{CustomId, InputId, SetupId};
use crate::discord::directory::Refusal;
use crate::discord::notify::truncate;
use crate::discord::reply::View;
use crate::discord::ui::{parse_price, price_text};
use crate::domain::ChannelId;
use crate::providers::PluginInfo;
use crate::shop::SavedShop;

pub(super) const EXPIRED: &str = "This /setup has expired (15 minutes). Run /setup again.";
pub(super) const NOT_ALLOWED: &str =
    "Only members with the Manage Server permission can set up paid roles.";
pub(super) const PROVIDER_GONE: &str = "That provider is not loaded any more. Run /setup again.";

fn id(step: SetupId) -> String {
    CustomId::Setup(step).to_string()
}

/// `/setup`'s first message: the saved setup (if any), and the role picker.
pub(super) fn intro(saved: Option<&Guild>, roles: &[PaidRole]) -> View {
    let mut text = String::new();
    if let Some(provider) = saved.and_then(|g| g.provider.as_ref())
        && !roles.is_empty()
    {
        let _ = writeln!(text, "**Current setup** (provider: {provider}):");
        for role in roles {
            let _ = writeln!(
                text,
                "- <@&{}>: {}",
                role.role_id,
                price_text(role.price, role.billing)
            );
        }
        text.push_str("\nPick the roles to sell; the roles picked now replace this list.");
    } else {
        text.push_str(
            "**Set up paid roles.** Pick the roles members can buy. Docobo's own role must be above them, with the Manage Roles permission.",
        );
    }
    View::text(text).row(role_select())
}

/// The role picker. Not pre-filled: serenity 0.12.5 sends `default_values` ids as JSON
/// numbers where Discord's schema wants snowflake strings.
pub(super) fn role_select() -> CreateActionRow {
    CreateActionRow::SelectMenu(
        CreateSelectMenu::new(
            id(SetupId::Roles),
            CreateSelectMenuKind::Role {
                default_roles: None,
            },
        )
        .placeholder("Roles to sell")
        .min_values(1)
        .max_values(25),
    )
}

/// The roles picked that Docobo cannot sell, and the picker again.
pub(super) fn cannot_sell(problems: &[Problem]) -> View {
    let lines: Vec<String> = problems
        .iter()
        .map(|(role, refusal)| match refusal {
            Refusal::UnknownRole => format!("- <@&{role}>: this role no longer exists."),
            Refusal::Permission(p) => format!("- <@&{role}>: {p}."),
        })
        .collect();
    View::text(format!(
        "Docobo cannot sell these roles:\n{}\n\nFix that and pick again:",
        lines.join("\n")
    ))
    .row(role_select())
}

/// A page of the price inputs, pre-filled with what was typed or saved.
pub(super) fn prices_modal(session: &Session, page: usize) -> CreateModal {
    let total = pages(session.roles.len());
    let page = page.min(total - 1);
    let inputs = session
        .roles
        .iter()
        .zip(&session.price_inputs)
        .skip(page * PAGE)
        .take(PAGE)
        .map(|((role, name), typed)| {
            let mut input = CreateInputText::new(
                InputTextStyle::Short,
                truncate(&format!("Price of @{name}"), 45),
                InputId::Price(*role).to_string(),
            )
            .placeholder("4.99 USD monthly · 50000 VND 30 days · 20 EUR one-time")
            .required(true)
            .max_length(40);
            if !typed.is_empty() {
                input = input.value(typed.clone());
            }
            CreateActionRow::InputText(input)
        })
        .collect();
    let title = if total > 1 {
        format!("Prices ({}/{total})", page + 1)
    } else {
        "Prices".to_owned()
    };
    CreateModal::new(id(SetupId::Prices(page)), title).components(inputs)
}

/// A page of the provider's credential fields. With `keeps_saved` (the same provider is
/// saved), an empty secret keeps the saved one.
pub(super) fn credentials_modal(
    plugin: &PluginInfo,
    page: usize,
    keeps_saved: bool,
) -> CreateModal {
    let total = pages(plugin.config_fields.len());
    let page = page.min(total - 1);
    let inputs = plugin
        .config_fields
        .iter()
        .skip(page * PAGE)
        .take(PAGE)
        .map(|field| {
            let placeholder = if field.secret && keeps_saved {
                "Saved. Leave empty to keep it.".to_owned()
            } else {
                field
                    .default_value
                    .clone()
                    .unwrap_or_else(|| truncate(&field.help, 100))
            };
            CreateActionRow::InputText(
                CreateInputText::new(
                    InputTextStyle::Short,
                    truncate(&field.label, 45),
                    InputId::Cred(field.key.clone()).to_string(),
                )
                .placeholder(truncate(&placeholder, 100))
                .required(field.required && !(field.secret && keeps_saved)),
            )
        })
        .collect();
    let title = if total > 1 {
        format!("{} ({}/{total})", truncate(&plugin.name, 30), page + 1)
    } else {
        truncate(&plugin.name, 45)
    };
    CreateModal::new(id(SetupId::Creds(page)), title).components(inputs)
}

fn button(step: SetupId, label: &str) -> CreateActionRow {
    CreateActionRow::Buttons(vec![
        CreateButton::new(id(step))
            .label(label)
            .style(ButtonStyle::Primary),
    ])
}

/// The message after a modal: what to fix, the button to the next page, or the providers.
/// `None` for the steps that are a modal or a save, not a message.
pub(super) fn after_modal<'p>(
    step: &Step,
    session: &Session,
    plugins: impl Iterator<Item = &'p PluginInfo>,
) -> Option<View> {
    Some(match step {
        Step::FixPrices { page, errors } => {
            let lines: Vec<String> = errors
                .iter()
                .map(|(role, e)| format!("- <@&{role}>: {e}"))
                .collect();
            View::text(format!("Some prices need fixing:\n{}", lines.join("\n")))
                .row(button(SetupId::Prices(*page), "Fix the prices"))
        }
        Step::MorePrices { done, total } => {
            View::text(format!("Prices {}/{total} saved.", done + 1))
                .row(button(SetupId::Prices(done + 1), "Next prices"))
        }
        Step::PickProvider => provider_pick(session, plugins),
        Step::WrongCurrency(problem) => View::text(problem.clone())
            .row(button(SetupId::Prices(0), "Fix the prices"))
            .row(provider_select(plugins)),
        Step::MoreCredentials { done, total } => {
            View::text(format!("Credentials {}/{total} noted.", done + 1))
                .row(button(SetupId::Creds(done + 1), "Next fields"))
        }
        Step::Credentials { .. } | Step::Save => return None,
    })
}

/// The prices as understood, and the provider select.
fn provider_pick<'p>(session: &Session, plugins: impl Iterator<Item = &'p PluginInfo>) -> View {
    let summary: Vec<String> = session
        .roles
        .iter()
        .zip(&session.price_inputs)
        .map(|((role, _), typed)| match parse_price(typed) {
            Ok((price, billing)) => format!("- <@&{role}>: {}", price_text(price, billing)),
            Err(_) => format!("- <@&{role}>: ?"),
        })
        .collect();
    View::text(format!(
        "{}\n\nNow pick the payment provider:",
        summary.join("\n")
    ))
    .row(provider_select(plugins))
}

fn provider_select<'p>(plugins: impl Iterator<Item = &'p PluginInfo>) -> CreateActionRow {
    let options: Vec<CreateSelectMenuOption> = plugins
        .map(|p| {
            CreateSelectMenuOption::new(truncate(&p.name, 100), p.id.to_string())
                .description(truncate(&format!("{} v{}", p.id, p.version), 100))
        })
        .collect();
    CreateActionRow::SelectMenu(
        CreateSelectMenu::new(
            id(SetupId::Provider),
            CreateSelectMenuKind::String { options },
        )
        .placeholder("Payment provider"),
    )
}

/// The shop is saved: what it sells, the webhook URL and "Verify now" (without
/// `server.public_url`: how to get one), and the log channel select.
pub(super) fn saved(saved: &SavedShop, public_url: Option<&str>) -> View {
    let view = View::text(saved_text(saved, public_url));
    let view = if public_url.is_some() {
        view.row(super::verify::button("Verify now"))
    } else {
        view
    };
    view.row(log_channel_select())
}

/// Where providers must send webhooks: the URL, or (no `server.public_url`) what the
/// operator must set; a warning when the URL is plain http to another machine.
fn webhook_url_text(name: &str, path: &str, public_url: Option<&str>) -> String {
    let Some(base) = public_url else {
        return format!(
            "**No webhook URL yet:** the operator has not set `server.public_url`, the https address at which {name} reaches this Docobo. They must set it (the `public_url` key under `[server]` in docobo.toml, or the environment variable `DOCOBO_SERVER__PUBLIC_URL`, e.g. `https://docobo.example.org`) and restart Docobo. Then run /setup again: it shows the URL to paste at {name}. Until then, {name} cannot tell Docobo about payments."
        );
    };
    let mut text = format!("**Webhook URL** to paste at {name}:\n`{base}{path}`");
    if plain_http_elsewhere(base) {
        let _ = write!(
            text,
            "\n⚠️ `server.public_url` is plain http: payment providers send webhooks to https addresses only. Ask the operator to put Docobo behind https (a reverse proxy or a tunnel) and set `server.public_url` to that https address."
        );
    }
    text
}

/// `http://` to anything but this machine (a local test is fine).
fn plain_http_elsewhere(base: &str) -> bool {
    let Some(rest) = base.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    !loopback
}

/// The provider or a price was refused: why, and a way back to the credentials.
pub(super) fn not_saved(problem: &str) -> View {
    View::text(format!("{problem}\n\nNothing was saved."))
        .row(button(SetupId::Creds(0), "Enter the credentials again"))
}

fn saved_text(saved: &SavedShop, public_url: Option<&str>) -> String {
    let name = &saved.provider_name;
    let mut message = format!("✅ **Saved.** {name} sells:\n");
    for role in &saved.roles {
        let _ = writeln!(
            message,
            "- <@&{}>: {}",
            role.role_id,
            price_text(role.price, role.billing)
        );
    }
    let _ = writeln!(
        message,
        "\n{}",
        webhook_url_text(name, &saved.webhook_path, public_url)
    );
    if !saved.webhook_events.is_empty() {
        let _ = writeln!(
            message,
            "Enable these events: {}",
            saved.webhook_events.join(", ")
        );
    }
    if public_url.is_some() {
        let _ = writeln!(
            message,
            "Then press **Verify now** and send a test event from {name} (or make a test payment): Docobo waits for it and tells you whether it verified."
        );
    }
    message.push_str("\nMembers can now use /join. Optional: pick a channel for Docobo's log.");
    message
}

fn log_channel_select() -> CreateActionRow {
    CreateActionRow::SelectMenu(
        CreateSelectMenu::new(
            id(SetupId::Log),
            CreateSelectMenuKind::Channel {
                channel_types: Some(vec![ChannelType::Text]),
                default_channels: None,
            },
        )
        .placeholder("Optional: a channel for Docobo's log")
        .min_values(0)
        .max_values(1),
    )
}

/// The log channel is set (or cleared).
pub(super) fn log_channel_set(channel: Option<ChannelId>) -> View {
    View::text(match channel {
        Some(c) => format!(
            "Docobo will post purchases, renewals, cancellations, expiries and problems in <#{c}>. Make sure it can send messages there."
        ),
        None => "No log channel: problems will be sent to the server owner by DM.".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::paid_roles::NewPaidRole;
    use crate::domain::{Billing, Currency, GuildId, Money, ProviderId, RoleId};
    use serde_json::{Value, json};

    fn wire(value: &impl serde::Serialize) -> Value {
        serde_json::to_value(value).expect("json")
    }

    fn role(n: u64) -> RoleId {
        RoleId::new(n).expect("role")
    }

    #[test]
    fn price_modals_carry_the_typed_ids_and_five_inputs_a_page() {
        let roles = (1..=6).map(|i| (role(i), format!("R{i}"))).collect();
        let session = Session::new(roles, &[], std::time::Instant::now());
        let first = wire(&prices_modal(&session, 0));
        assert_eq!(first["custom_id"], json!("setup:prices:0"));
        assert_eq!(first["title"], json!("Prices (1/2)"));
        assert_eq!(first["components"].as_array().map(Vec::len), Some(5));
        assert_eq!(
            first["components"][0]["components"][0]["custom_id"],
            json!("price:1")
        );
        let last = wire(&prices_modal(&session, 9));
        assert_eq!(last["custom_id"], json!("setup:prices:1"), "clamped");
    }

    #[test]
    fn the_steps_after_a_modal_have_their_buttons() {
        let session = Session::new(vec![(role(1), "R".into())], &[], std::time::Instant::now());
        let buttons = |step: Step| {
            let view = after_modal(&step, &session, std::iter::empty()).expect("a message");
            wire(&view.components)[0]["components"][0]["custom_id"].clone()
        };
        let fix = Step::FixPrices {
            page: 2,
            errors: vec![],
        };
        assert_eq!(buttons(fix), json!("setup:prices:2"));
        assert_eq!(
            buttons(Step::MorePrices { done: 0, total: 2 }),
            json!("setup:prices:1")
        );
        assert_eq!(
            buttons(Step::MoreCredentials { done: 1, total: 3 }),
            json!("setup:creds:2")
        );
        let pick = after_modal(&Step::PickProvider, &session, std::iter::empty()).expect("pick");
        assert_eq!(
            wire(&pick.components)[0]["components"][0]["custom_id"],
            json!("setup:provider")
        );
        assert!(after_modal(&Step::Save, &session, std::iter::empty()).is_none());
    }

    #[test]
    fn the_saved_message_has_the_webhook_url_and_the_events() {
        let shop = SavedShop {
            provider: ProviderId::parse("polar").expect("id"),
            provider_name: "Polar".into(),
            roles: vec![NewPaidRole {
                guild_id: GuildId::new(1).expect("guild"),
                role_id: role(7),
                name: "Gold".into(),
                price: Money::new(499, Currency::parse("USD").expect("USD")).expect("price"),
                billing: Billing::Monthly,
                product_ref: None,
            }],
            webhook_path: "/webhooks/polar/k".into(),
            webhook_events: vec!["order.paid".into()],
        };
        let view = saved(&shop, Some("https://d.example"));
        assert!(
            view.text.contains("`https://d.example/webhooks/polar/k`"),
            "{}",
            view.text
        );
        assert!(
            view.text.contains("- <@&7>: 4.99 USD / month"),
            "{}",
            view.text
        );
        assert!(view.text.contains("Enable these events: order.paid"));
        assert_eq!(
            wire(&view.components)[1]["components"][0]["custom_id"],
            json!("setup:log")
        );
        assert_eq!(
            wire(&view.components)[0]["components"][0]["custom_id"],
            json!("setup:verify")
        );
        assert!(!view.text.contains("plain http"), "{}", view.text);
        let unset = saved(&shop, None);
        assert!(
            unset.text.contains("DOCOBO_SERVER__PUBLIC_URL"),
            "{}",
            unset.text
        );
        assert!(!unset.text.contains("/webhooks/polar/k"), "{}", unset.text);
        assert_eq!(unset.components.len(), 1, "no Verify now without a URL");
        for (base, warned) in [
            ("http://pay.example.org", true),
            ("http://203.0.113.9:3000", true),
            ("http://127.0.0.1:3000", false),
            ("http://localhost", false),
            ("http://[::1]:80", false),
            ("https://pay.example.org", false),
        ] {
            let text = saved(&shop, Some(base)).text;
            assert_eq!(text.contains("plain http"), warned, "{base}: {text}");
        }
    }
}
