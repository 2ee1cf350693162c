//! Shared pieces of the commands: their definitions, replies, formatting and parsing.

use serenity::all::{
    CommandInteraction, CreateCommand, CreateInteractionResponse, CreateInteractionResponseMessage,
    InteractionContext, InteractionId, Member, Permissions,
};
use serenity::builder::Builder as _;

use super::Bot;
use super::directory::{ADMINISTRATOR, MANAGE_GUILD};
use crate::domain::{Billing, GuildId, Money, UserId};

/// The global slash commands.
#[must_use]
pub fn commands() -> Vec<CreateCommand> {
    vec![
        CreateCommand::new("setup")
            .description("Sell roles: pick roles, prices and a payment provider (Manage Server)")
            .default_member_permissions(Permissions::MANAGE_GUILD)
            .contexts(vec![InteractionContext::Guild]),
        CreateCommand::new("join")
            .description("Buy a paid role in this server")
            .contexts(vec![InteractionContext::Guild]),
        CreateCommand::new("status")
            .description("Your paid roles here: status, renewal or end date")
            .contexts(vec![InteractionContext::Guild]),
        CreateCommand::new("help")
            .description("What this bot does and how to use it")
            .contexts(vec![InteractionContext::Guild]),
    ]
}

/// A message only the user sees.
pub fn private(content: impl Into<String>) -> CreateInteractionResponseMessage {
    CreateInteractionResponseMessage::new()
        .content(content)
        .ephemeral(true)
}

/// Sends an interaction's response; a failure (late, already answered) is logged.
pub async fn respond(
    bot: &Bot,
    id: InteractionId,
    token: &str,
    response: CreateInteractionResponse,
) -> bool {
    match response.execute(&bot.http, (id, token)).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(interaction = id.get(), error = %e, "cannot answer the interaction");
            false
        }
    }
}

/// Answers with a message only the user sees.
pub async fn tell(bot: &Bot, id: InteractionId, token: &str, text: impl Into<String>) {
    respond(
        bot,
        id,
        token,
        CreateInteractionResponse::Message(private(text)),
    )
    .await;
}

/// The guild's saved settings and the roles it sells (what `/setup` and `/join` start from).
pub async fn offer(
    bot: &Bot,
    guild: GuildId,
) -> Result<
    (
        Option<crate::db::guilds::Guild>,
        Vec<crate::db::paid_roles::PaidRole>,
    ),
    crate::db::DbError,
> {
    bot.services
        .db
        .read(move |conn| {
            Ok((
                crate::db::guilds::get(conn, guild)?,
                crate::db::paid_roles::for_sale(conn, guild)?,
            ))
        })
        .await
}

/// The guild and user behind an interaction (`None` outside a guild).
#[must_use]
pub fn actor(
    guild: Option<serenity::all::GuildId>,
    user: &serenity::all::User,
) -> Option<(GuildId, UserId)> {
    Some((
        GuildId::new(guild?.get()).ok()?,
        UserId::new(user.id.get()).ok()?,
    ))
}

/// Whether the member may configure the bot (Manage Server or Administrator), from the
/// permissions Discord computed for the interaction.
#[must_use]
pub fn can_manage_guild(member: Option<&Member>) -> bool {
    member
        .and_then(|m| m.permissions)
        .is_some_and(|p| p.bits() & (MANAGE_GUILD | ADMINISTRATOR) != 0)
}

/// `4.99 USD / month`.
#[must_use]
pub fn price_text(price: Money, billing: Billing) -> String {
    match billing {
        Billing::Monthly => format!("{price} / month"),
        Billing::Yearly => format!("{price} / year"),
        Billing::OneTime => format!("{price} once"),
        Billing::Days(n) => format!("{price} / {n} days"),
    }
}

/// The text an owner types for a price, e.g. `4.99 USD monthly` (what the modal pre-fills).
#[must_use]
pub fn price_input(price: Money, billing: Billing) -> String {
    format!("{price} {billing}")
}

pub use crate::shop::parse_price;

/// A Discord timestamp that each reader sees in their own time zone, e.g. "in 3 days".
#[must_use]
pub fn when(unix_ms: i64) -> String {
    format!("<t:{}:R>", unix_ms.div_euclid(1000))
}

/// A Discord date, e.g. "March 5, 2027".
#[must_use]
pub fn date(unix_ms: i64) -> String {
    format!("<t:{}:D>", unix_ms.div_euclid(1000))
}

/// Refuses a command used outside a server.
pub async fn guild_only(bot: &Bot, command: &CommandInteraction) {
    respond(
        bot,
        command.id,
        &command.token,
        CreateInteractionResponse::Message(private("This command works inside a server.")),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_parse_in_the_currencys_units_with_billing() {
        let (price, billing) = parse_price("4.99 USD monthly").expect("valid");
        assert_eq!(
            (price.minor_units(), price.currency().as_str()),
            (499, "USD")
        );
        assert_eq!(billing, Billing::Monthly);
        let (price, billing) = parse_price(" 50000 vnd 30 days ").expect("valid");
        assert_eq!(
            (price.minor_units(), price.currency().as_str()),
            (50_000, "VND")
        );
        assert_eq!(billing.to_db(), "days:30");
        let (_, billing) = parse_price("10 EUR").expect("valid");
        assert_eq!(billing, Billing::Monthly);
        assert_eq!(
            parse_price("20 EUR one-time").expect("valid").1,
            Billing::OneTime
        );
        // What the modal pre-fills parses back to the same thing.
        let (price, billing) = parse_price("4.99 USD yearly").expect("valid");
        assert_eq!(
            parse_price(&price_input(price, billing)),
            Ok((price, billing))
        );
    }

    #[test]
    fn bad_prices_say_what_to_write() {
        for (input, hint) in [
            ("4.99", "e.g. 4.99 USD monthly"),
            ("4.999 USD", "USD"),
            ("5 DOLLARS", "DOLLARS"),
            ("5 USD weekly", "billing"),
            ("0 USD", "more than zero"),
            ("-3 USD", "-3"),
        ] {
            let err = parse_price(input).expect_err(input);
            assert!(err.contains(hint), "{input}: {err}");
        }
    }
}
