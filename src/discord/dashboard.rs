//! `/dashboard`: a one-time login link to the web dashboard, for this server only.

use super::Bot;
use super::error::BotError;
use super::interaction::Actor;
use super::reply::{Outcome, Reply};
use crate::web::auth::LINK_TTL_MS;

/// Replies (ephemerally) with a login link: signed, single use, valid for
/// [`LINK_TTL_MS`], opening a session that sees this guild only.
pub(super) fn link(bot: &Bot, actor: &Actor) -> Outcome<'static> {
    let guild = actor.in_guild()?;
    if !actor.can_manage {
        return Err(BotError::refused(
            "Only members with Manage Server can open this server's dashboard.",
        ));
    }
    let Some(base) = bot.services.public_url.as_deref() else {
        return Err(BotError::refused(
            "The dashboard is served at Docobo's public address, which is not set: ask the operator to set server.public_url (DOCOBO_SERVER__PUBLIC_URL) to the https address providers reach.",
        ));
    };
    let token = bot.services.logins.mint_link(guild, actor.user);
    Ok(Reply::private(format!(
        "Your dashboard login link for this server. It works once, for {} minutes; do not share it.\n{base}/dashboard/login?link={token}",
        LINK_TTL_MS / 60_000
    )))
}
