//! The members' commands: `/join` (buy a role), `/status` (my subscriptions), `/help`. Each
//! returns the reply as a value; [`super::reply::send`] sends it.

use std::fmt::Write as _;

use serenity::all::{
    CreateActionRow, CreateButton, CreateEmbed, CreateSelectMenu, CreateSelectMenuKind,
    CreateSelectMenuOption,
};

use super::Bot;
use super::custom_id::CustomId;
use super::error::BotError;
use super::interaction::Actor;
use super::notify::truncate;
use super::reply::{Ack, Outcome, Reply, View};
use super::ui::{self, date, price_text, when};
use crate::checkout::{self, CheckoutError, Offer};
use crate::db::guilds::{self, Guild};
use crate::db::paid_roles::{self, PaidRole};
use crate::db::subscriptions::{self, Subscription};
use crate::domain::{RoleId, SubscriptionStatus, UnixMillis};
use crate::providers::Checkout;

const NOT_FOR_SALE: &str =
    "This server does not sell roles yet. An admin can set that up with /setup.";

/// `/join`: the roles for sale, as a select.
pub(super) async fn join(bot: &Bot, actor: &Actor) -> Outcome<'static> {
    let guild = actor.in_guild()?;
    let (saved, roles) = ui::offer(bot, guild).await?;
    let configured = saved.is_some_and(|g| g.provider.is_some() && g.credentials.is_some());
    if !configured || roles.is_empty() {
        return Ok(Reply::private(NOT_FOR_SALE));
    }
    let tiers = bot
        .services
        .db
        .read(move |conn| crate::db::tiers::of_guild(conn, guild))
        .await?;
    let mut text = "Which role would you like?".to_owned();
    for role in roles.iter().take(25) {
        if let Some(tier) = tiers.get(&role.id).filter(|t| !t.extra.is_empty()) {
            let gives: Vec<String> = tier.roles().iter().map(|r| format!("<@&{r}>")).collect();
            let _ = write!(text, "\n<@&{}> gives {}.", role.role_id, gives.join(", "));
        }
    }
    Ok(Reply::private(View::text(text).row(role_select(&roles))))
}

fn role_select(roles: &[PaidRole]) -> CreateActionRow {
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
    CreateActionRow::SelectMenu(
        CreateSelectMenu::new(
            CustomId::JoinRole.to_string(),
            CreateSelectMenuKind::String { options },
        )
        .placeholder("Pick a role"),
    )
}

/// A role picked in `/join`: a checkout (the provider is called after an acknowledgement,
/// then the message is edited), or "you already have it".
pub(super) async fn role_picked<'a>(bot: &'a Bot, actor: &Actor, values: &[String]) -> Outcome<'a> {
    let guild = actor.in_guild()?;
    let Some(role) = values.first().and_then(|v| RoleId::parse(v).ok()) else {
        return Ok(Reply::Nothing);
    };
    let user = actor.user;
    match checkout::offer(&bot.services, guild, user, role).await? {
        Offer::NotForSale => Ok(Reply::private(NOT_FOR_SALE)),
        Offer::AlreadyHeld { status, period_end } => {
            Ok(Reply::Update(already_held(role, status, period_end)))
        }
        Offer::Buy { guild, paid } => {
            let username = actor.username.clone();
            Ok(Reply::deferred(Ack::Update, async move {
                let started = checkout::start(&bot.services, &guild, &paid, user, &username)
                    .await
                    .map_err(checkout_failed)?;
                Ok(checkout_view(
                    &started.provider_name,
                    &paid,
                    &started.checkout,
                ))
            }))
        }
    }
}

fn already_held(role: RoleId, status: SubscriptionStatus, period_end: Option<UnixMillis>) -> View {
    let until = match period_end {
        Some(end) if status == SubscriptionStatus::Canceled => format!(", until {}", date(end)),
        Some(end) => format!(", paid until {}", date(end)),
        None => String::new(),
    };
    View::text(format!(
        "You already have <@&{role}>{until}. /status shows your subscriptions."
    ))
}

fn checkout_failed(e: CheckoutError) -> BotError {
    let problem = e.user_message();
    BotError::new(
        format!(
            "Sorry, the payment could not be started: {problem}. Try again later, or tell the server's staff."
        ),
        e,
    )
}

/// The checkout: a link button, or a QR code with the transfer's payment code.
pub(super) fn checkout_view(provider_name: &str, paid: &PaidRole, checkout: &Checkout) -> View {
    let price = price_text(paid.price, paid.billing);
    let mut view = View::default();
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
        view.text = format!(
            "Scan the QR code in your banking app ({price}). The role arrives within a minute of the transfer."
        );
        view.embeds.push(embed);
    }
    if let Some(url) = &checkout.url {
        view.text = format!(
            "<@&{}> costs {price}. Pay with {provider_name}; the role arrives as soon as the payment is confirmed.",
            paid.role_id
        );
        view.components = vec![CreateActionRow::Buttons(vec![
            CreateButton::new_link(url.clone())
                .label(truncate(&format!("Pay with {provider_name}"), 80)),
        ])];
    }
    if checkout.url.is_none() && checkout.qr_image_url.is_none() {
        view.text = checkout
            .instructions
            .clone()
            .unwrap_or_else(|| "The provider gave no payment instructions.".into());
    }
    view
}

/// `/status`: the member's subscriptions here.
pub(super) async fn status(bot: &Bot, actor: &Actor) -> Outcome<'static> {
    let guild = actor.in_guild()?;
    let user = actor.user;
    let (rows, saved) = bot
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
        .await?;
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
    Ok(Reply::private(text))
}

/// The page where members manage their subscription, if the owner gave one in `/setup`
/// (a plugin's `manage_url` field; wit/README.md). Only https links are shown.
fn manage_url(bot: &Bot, guild: &Guild) -> Option<String> {
    let (_, config) = bot.services.accounts.for_guild(guild).ok()??;
    crate::accounts::owner_manage_url(&config)
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
pub(super) fn help(actor: &Actor) -> Reply<'static> {
    let mut text = String::from(
        "**Docobo sells roles in this server.**\n\
         - /join: pick a role and pay; the role is given as soon as the payment is confirmed.\n\
         - /status: your paid roles, and when they renew or end.\n\
         A cancelled subscription keeps its role until the paid period ends; a refund removes it.",
    );
    if actor.can_manage {
        text.push_str(
            "\n\n**For admins**\n\
             - /setup: pick the roles to sell, their prices and the payment provider, and enter its credentials. Run it again to change anything.\n\
             - Docobo's role must be above the roles it sells and have Manage Roles.\n\
             - Pick a log channel at the end of /setup to see purchases, renewals and problems.\n\
             - /dashboard: a one-time link to this server's web dashboard.",
        );
    }
    Reply::private(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Billing, Currency, GuildId, Money, UserId};
    use serde_json::{Value, json};

    fn paid() -> PaidRole {
        PaidRole {
            id: 1,
            guild_id: GuildId::new(1).expect("guild"),
            role_id: RoleId::new(7).expect("role"),
            name: "Gold".into(),
            price: Money::new(50_000, Currency::parse("VND").expect("VND")).expect("price"),
            billing: Billing::Monthly,
            product_ref: None,
        }
    }

    fn wire(value: &impl serde::Serialize) -> Value {
        serde_json::to_value(value).expect("json")
    }

    #[test]
    fn a_card_checkout_is_a_link_button() {
        let checkout = Checkout {
            url: Some("https://pay.example/co_1".into()),
            qr_image_url: None,
            instructions: None,
            payment_code: None,
            expires_at: None,
        };
        let view = checkout_view("Polar", &paid(), &checkout);
        assert!(view.text.contains("Pay with Polar"), "{}", view.text);
        let button = &wire(&view.components)[0]["components"][0];
        assert_eq!(button["url"], json!("https://pay.example/co_1"));
        assert!(view.embeds.is_empty());
    }

    #[test]
    fn a_bank_transfer_is_a_qr_code_with_the_payment_code() {
        let checkout = Checkout {
            url: None,
            qr_image_url: Some("https://qr.example/1.png".into()),
            instructions: None,
            payment_code: Some("DCB1".into()),
            expires_at: None,
        };
        let view = checkout_view("SePay", &paid(), &checkout);
        assert!(view.text.starts_with("Scan the QR code"), "{}", view.text);
        assert!(view.components.is_empty());
        let embed = wire(&view.embeds[0]);
        assert_eq!(embed["image"]["url"], json!("https://qr.example/1.png"));
        assert_eq!(embed["fields"][1]["value"], json!("`DCB1`"));
    }

    #[test]
    fn help_shows_the_admin_part_to_admins_only() {
        let mut actor = Actor {
            guild: None,
            user: UserId::new(2).expect("user"),
            username: "u".into(),
            can_manage: false,
        };
        let text = |actor: &Actor| match help(actor) {
            Reply::Message { view, ephemeral } => {
                assert!(ephemeral);
                view.text
            }
            other => panic!("{other:?}"),
        };
        assert!(!text(&actor).contains("For admins"));
        actor.can_manage = true;
        assert!(text(&actor).contains("For admins"));
    }
}
