//! The members' commands: `/join` (buy a role), `/status` (my subscriptions), `/help`.

use serenity::all::{
    CommandInteraction, ComponentInteraction, ComponentInteractionDataKind, CreateActionRow,
    CreateButton, CreateEmbed, CreateInteractionResponse, CreateInteractionResponseMessage,
    CreateSelectMenu, CreateSelectMenuKind, CreateSelectMenuOption, EditInteractionResponse,
};
use serenity::builder::Builder as _;
use std::fmt::Write as _;

use super::Bot;
use super::notify::truncate;
use super::setup::report_internal_error;
use super::ui::{self, actor, can_manage_guild, date, price_text, private, respond, tell, when};
use crate::checkout::{self, Offer};
use crate::db::guilds::{self, Guild};
use crate::db::paid_roles::{self, PaidRole};
use crate::db::subscriptions::{self, Subscription};
use crate::domain::SubscriptionStatus;
use crate::providers::Checkout;

const NOT_FOR_SALE: &str =
    "This server does not sell roles yet. An admin can set that up with /setup.";

/// `/join`: the roles for sale, as a select.
pub(super) async fn join(bot: &Bot, command: &CommandInteraction) {
    let Some((guild, user)) = actor(command.guild_id, &command.user) else {
        return ui::guild_only(bot, command).await;
    };
    tracing::info!(
        guild = guild.get(),
        user = user.get(),
        command = "join",
        "interaction"
    );
    let found = ui::offer(bot, guild).await;
    let (saved, roles) = match found {
        Ok(found) => found,
        Err(e) => return report_internal_error(bot, command.id, &command.token, &e).await,
    };
    let configured = saved.is_some_and(|g| g.provider.is_some() && g.credentials.is_some());
    if !configured || roles.is_empty() {
        tell(bot, command.id, &command.token, NOT_FOR_SALE).await;
        return;
    }
    let options = roles
        .iter()
        .take(25)
        .map(|r| {
            CreateSelectMenuOption::new(
                truncate(
                    &format!("{} — {}", r.name, price_text(r.price, r.billing)),
                    100,
                ),
                r.role_id.to_string(),
            )
        })
        .collect();
    let message =
        private("Which role would you like?").components(vec![CreateActionRow::SelectMenu(
            CreateSelectMenu::new("join:role", CreateSelectMenuKind::String { options })
                .placeholder("Pick a role"),
        )]);
    respond(
        bot,
        command.id,
        &command.token,
        CreateInteractionResponse::Message(message),
    )
    .await;
}

/// A role picked in `/join`: a checkout, or "you already have it".
pub(super) async fn component(bot: &Bot, component: &ComponentInteraction) {
    let Some((guild, user)) = actor(component.guild_id, &component.user) else {
        return;
    };
    let (id, token) = (component.id, component.token.as_str());
    let ComponentInteractionDataKind::StringSelect { values } = &component.data.kind else {
        return;
    };
    let Some(role) = values
        .first()
        .and_then(|v| crate::domain::RoleId::parse(v).ok())
    else {
        return;
    };
    tracing::info!(
        guild = guild.get(),
        user = user.get(),
        custom_id = "join:role",
        role = role.get(),
        "interaction"
    );
    let username = component.user.name.clone();
    let (saved, paid) = match checkout::offer(&bot.services, guild, user, role).await {
        Ok(Offer::Buy { guild, paid }) => (guild, paid),
        Ok(Offer::NotForSale) => {
            tell(bot, id, token, NOT_FOR_SALE).await;
            return;
        }
        Ok(Offer::AlreadyHeld { status, period_end }) => {
            let until = match period_end {
                Some(end) if status == SubscriptionStatus::Canceled => {
                    format!(", until {}", date(end))
                }
                Some(end) => format!(", paid until {}", date(end)),
                None => String::new(),
            };
            let text =
                format!("You already have <@&{role}>{until}. /status shows your subscriptions.");
            let update = CreateInteractionResponseMessage::new()
                .content(text)
                .components(vec![]);
            respond(
                bot,
                id,
                token,
                CreateInteractionResponse::UpdateMessage(update),
            )
            .await;
            return;
        }
        Err(e) => return report_internal_error(bot, id, token, &e).await,
    };
    // The provider is called: acknowledge first, then edit the message.
    if !respond(bot, id, token, CreateInteractionResponse::Acknowledge).await {
        return;
    }
    let edit = match checkout::start(&bot.services, &saved, &paid, user, &username).await {
        Ok(started) => render(&started.provider_name, &paid, &started.checkout),
        Err(e) => {
            let problem = e.user_message();
            tracing::warn!(guild = guild.get(), user = user.get(), problem = %problem, error = %e, "checkout failed");
            EditInteractionResponse::new()
                .content(format!("Sorry, the payment could not be started: {problem}. Try again later, or tell the server's staff."))
                .components(vec![])
        }
    };
    if let Err(e) = edit.execute(&bot.http, token).await {
        tracing::warn!(interaction = id.get(), error = %e, "cannot show the checkout");
    }
}

fn render(provider_name: &str, paid: &PaidRole, checkout: &Checkout) -> EditInteractionResponse {
    let price = price_text(paid.price, paid.billing);
    let mut edit = EditInteractionResponse::new().components(vec![]);
    if let Some(qr) = &checkout.qr_image_url {
        let mut embed = CreateEmbed::new()
            .title(truncate(
                &format!("Pay for @{} by bank transfer", paid.name),
                256,
            ))
            .image(qr.clone())
            .field("Amount", paid.price.to_string(), true);
        if let Some(code) = &checkout.payment_code {
            embed = embed.field("Transfer content (payment code)", format!("`{code}`"), true);
        }
        if let Some(text) = &checkout.instructions {
            embed = embed.description(truncate(text, 4000));
        }
        if let Some(expires) = checkout.expires_at {
            embed = embed.field("Valid until", date(expires), false);
        }
        edit = edit
            .content(format!("Scan the QR code in your banking app ({price}). The role arrives within a minute of the transfer."))
            .embed(embed);
    }
    if let Some(url) = &checkout.url {
        edit = edit
            .content(format!("<@&{}> costs {price}. Pay with {provider_name}; the role arrives as soon as the payment is confirmed.", paid.role_id))
            .components(vec![CreateActionRow::Buttons(vec![
                CreateButton::new_link(url.clone()).label(truncate(&format!("Pay with {provider_name}"), 80)),
            ])]);
    }
    if checkout.url.is_none() && checkout.qr_image_url.is_none() {
        edit = edit.content(
            checkout
                .instructions
                .clone()
                .unwrap_or_else(|| "The provider gave no payment instructions.".into()),
        );
    }
    edit
}

/// `/status`: the member's subscriptions here.
pub(super) async fn status(bot: &Bot, command: &CommandInteraction) {
    let Some((guild, user)) = actor(command.guild_id, &command.user) else {
        return ui::guild_only(bot, command).await;
    };
    tracing::info!(
        guild = guild.get(),
        user = user.get(),
        command = "status",
        "interaction"
    );
    let found = bot
        .services
        .db
        .read(move |conn| {
            let subs = subscriptions::for_member(conn, guild, user)?;
            let mut rows = Vec::with_capacity(subs.len());
            for sub in subs {
                if let Some(role) = paid_roles::by_id(conn, sub.paid_role_id)? {
                    rows.push((sub, role));
                }
            }
            Ok((rows, guilds::get(conn, guild)?))
        })
        .await;
    let (rows, saved) = match found {
        Ok(found) => found,
        Err(e) => return report_internal_error(bot, command.id, &command.token, &e).await,
    };
    let now = bot.services.now();
    let lines: Vec<String> = rows
        .iter()
        .filter(|(sub, _)| {
            sub.state.status != SubscriptionStatus::Pending || sub.payment_code.is_some()
        })
        .take(20)
        .map(|(sub, role)| {
            format!(
                "- <@&{}>: {}",
                role.role_id,
                describe(sub, now, bot.services.grace_ms)
            )
        })
        .collect();
    let mut text = if lines.is_empty() {
        "You have no paid roles here. /join shows what is for sale.".to_owned()
    } else {
        format!("**Your paid roles**\n{}", lines.join("\n"))
    };
    let with_provider = |g: &Guild| {
        rows.iter()
            .any(|(s, _)| Some(&s.provider) == g.provider.as_ref())
    };
    if let Some(url) = saved
        .filter(with_provider)
        .and_then(|g| manage_url(bot, &g))
    {
        let _ = write!(text, "\n\nManage or cancel your subscription: {url}");
    }
    tell(bot, command.id, &command.token, truncate(&text, 2000)).await;
}

/// The page where members manage their subscription, if the owner gave one in `/setup`
/// (a plugin's `manage_url` field; wit/README.md). Only https links are shown.
fn manage_url(bot: &Bot, guild: &Guild) -> Option<String> {
    let (_, config) = bot.services.accounts.for_guild(guild).ok()??;
    config
        .into_iter()
        .find(|(k, _)| k == "manage_url")
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| v.starts_with("https://") && !v.contains(char::is_whitespace))
}

fn describe(sub: &Subscription, now: i64, grace_ms: i64) -> String {
    let end = sub.state.period_end;
    match (sub.state.status, end) {
        (SubscriptionStatus::Pending, _) => match &sub.payment_code {
            Some(code) => format!("waiting for your transfer with the code `{code}`"),
            None => "waiting for the payment".into(),
        },
        (SubscriptionStatus::Active, None) => "active, for good".into(),
        (SubscriptionStatus::Active, Some(end)) if sub.payment_code.is_some() => {
            format!("active, pass ends {}", when(end))
        }
        (SubscriptionStatus::Active, Some(end)) => format!("active, renews {}", when(end)),
        (SubscriptionStatus::Canceled, Some(end)) if end > now => {
            format!("cancelled, ends {}", when(end))
        }
        (SubscriptionStatus::PastDue, Some(end)) if sub.is_entitled(now, grace_ms) => {
            format!(
                "payment failed: update your payment method; the role stays until {}",
                when(end + grace_ms)
            )
        }
        (SubscriptionStatus::Revoked, _) => "ended".into(),
        (SubscriptionStatus::Refunded, _) => "refunded".into(),
        _ => "expired".into(),
    }
}

/// `/help`.
pub(super) async fn help(bot: &Bot, command: &CommandInteraction) {
    tracing::info!(
        guild = command.guild_id.map(serenity::all::GuildId::get),
        user = command.user.id.get(),
        command = "help",
        "interaction"
    );
    let mut text = String::from(
        "**Docobo sells roles in this server.**\n\
         - /join: pick a role and pay; the role is given as soon as the payment is confirmed.\n\
         - /status: your paid roles, and when they renew or end.\n\
         A cancelled subscription keeps its role until the paid period ends; a refund removes it.",
    );
    if can_manage_guild(command.member.as_deref()) {
        text.push_str(
            "\n\n**For admins**\n\
             - /setup: pick the roles to sell, their prices and the payment provider, and enter its credentials. Run it again to change anything.\n\
             - Docobo's role must be above the roles it sells and have Manage Roles.\n\
             - Pick a log channel at the end of /setup to see purchases, renewals and problems.",
        );
    }
    tell(bot, command.id, &command.token, text).await;
}
