//! The link that adds the bot to a server: the scopes and the permissions Docobo
//! uses, for the application Discord says the token belongs to.
//!
//! The permissions are what the code does, and nothing more:
//! - **Manage Roles**: grant and revoke the paid roles (`roles.rs`).
//! - **View Channel** and **Send Messages**: post to the log channel picked in `/setup`
//!   (`notify.rs`; plain text, no embeds or files, so neither Embed Links nor Attach Files).
//!
//! Replies to `/setup`, `/join`, `/status` and `/help` (embeds and the QR code included) are
//! interaction responses, which Discord sends as webhooks: they need no channel permission.
//! Direct messages to an owner need none either.

use serenity::all::Permissions;

use super::build_http;
use crate::config::DiscordConfig;

/// `bot` adds the bot user; `applications.commands` lets it register its slash commands.
pub const SCOPES: &str = "bot applications.commands";

/// What the bot needs in a server (see the module docs for why each).
pub const PERMISSIONS: Permissions = Permissions::MANAGE_ROLES
    .union(Permissions::VIEW_CHANNEL)
    .union(Permissions::SEND_MESSAGES);

/// The link that adds the application `application` (its id, from READY or
/// `GET /oauth2/applications/@me`) to a server with [`SCOPES`] and [`PERMISSIONS`]. Always
/// discord.com: it is opened in a browser.
#[must_use]
pub fn url(application: u64) -> String {
    format!(
        "https://discord.com/oauth2/authorize?client_id={application}&scope={}&permissions={}",
        SCOPES.replace(' ', "%20"),
        PERMISSIONS.bits()
    )
}

/// The permissions by name, as Discord shows them (`Manage Roles, …`).
#[must_use]
pub fn permission_names() -> String {
    PERMISSIONS.get_permission_names().join(", ")
}

/// Asks Discord which application the token belongs to (`GET /oauth2/applications/@me`,
/// through `discord.api_url` when set) and returns its [`url`].
///
/// # Errors
/// No token, Discord refused it, or Discord could not be asked; the error says what to do.
pub async fn fetch_url(config: &DiscordConfig) -> anyhow::Result<String> {
    let http = build_http(config)?;
    let application = http
        .get_current_application_info()
        .await
        .map_err(|e| match &e {
            serenity::Error::Http(h) if h.status_code().map(|s| s.as_u16()) == Some(401) => {
                anyhow::anyhow!(
                    "Discord refused the bot token (401 Unauthorized). Fix: copy the token again from https://discord.com/developers/applications → your app → Bot → Reset Token, into discord.token (or DOCOBO_DISCORD__TOKEN)"
                )
            }
            _ => anyhow::anyhow!(
                "cannot ask Discord which application the token belongs to: {e}. Fix: check that this machine reaches discord.com"
            ),
        })?;
    Ok(url(application.id.get()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_has_both_scopes_and_exactly_the_permissions_used() {
        // Manage Roles (1 << 28), View Channel (1 << 10), Send Messages (1 << 11).
        assert_eq!(PERMISSIONS.bits(), (1 << 28) | (1 << 10) | (1 << 11));
        assert_eq!(PERMISSIONS.bits(), 268_438_528);
        assert_eq!(
            url(123_456_789_012_345_678),
            "https://discord.com/oauth2/authorize?client_id=123456789012345678&scope=bot%20applications.commands&permissions=268438528"
        );
        assert_eq!(
            permission_names(),
            "View Channel, Send Messages, Manage Roles"
        );
    }
}
