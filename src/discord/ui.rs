//! Shared pieces of the commands: their definitions, formatting and parsing.

use serenity::all::{CreateCommand, InteractionContext, Member, Permissions};

use super::Bot;
use super::directory::{ADMINISTRATOR, MANAGE_GUILD};
use crate::db::DbError;
use crate::db::guilds::{self, Guild};
use crate::db::paid_roles::{self, PaidRole};
use crate::domain::{Billing, GuildId, Money};

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
        CreateCommand::new("dashboard")
            .description("A one-time link to this server's web dashboard (Manage Server)")
            .default_member_permissions(Permissions::MANAGE_GUILD)
            .contexts(vec![InteractionContext::Guild]),
        CreateCommand::new("doctor")
            .description("Check everything a sale needs, and make a test purchase (Manage Server)")
            .default_member_permissions(Permissions::MANAGE_GUILD)
            .contexts(vec![InteractionContext::Guild]),
        CreateCommand::new("help")
            .description("What this bot does and how to use it")
            .contexts(vec![InteractionContext::Guild]),
        super::admin::definition(),
    ]
}

/// The guild's saved settings and the roles it sells (what `/setup` and `/join` start from).
pub async fn offer(bot: &Bot, guild: GuildId) -> Result<(Option<Guild>, Vec<PaidRole>), DbError> {
    bot.services
        .db
        .read(move |conn| {
            Ok((
                guilds::get(conn, guild)?,
                paid_roles::for_sale(conn, guild)?,
            ))
        })
        .await
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
