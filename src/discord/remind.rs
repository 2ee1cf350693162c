//! The reminder's direct message ([`crate::reminders`]) and its buttons: "Stop reminders"
//! and, in the answer, "Turn reminders back on".

use serenity::all::{CreateActionRow, CreateButton, CreateMessage, Nonce};
use serenity::builder::CreateAllowedMentions;
use serenity::model::id as sid;

use super::Bot;
use super::custom_id::CustomId;
use super::interaction::Actor;
use super::notify::{Notifier, truncate};
use super::reply::{Outcome, Reply, View};
use super::ui::price_text;
use crate::checkout::Started;
use crate::db::guilds::Guild;
use crate::db::paid_roles::PaidRole;
use crate::db::reminders::{self, Kind};
use crate::domain::{GuildId, UnixMillis, UserId};

/// What one reminder says.
#[derive(Debug, Clone)]
pub struct ReminderMessage {
    pub kind: Kind,
    pub guild: Guild,
    pub paid: PaidRole,
    /// When the access ends (for a failed payment: when its grace period does).
    pub ends_at: UnixMillis,
    /// A pass's renewal: the checkout `/join` would show (its QR code, code and amount).
    pub renewal: Option<Started>,
    /// The provider's page to resume the subscription or fix the card.
    pub manage_url: Option<String>,
}

/// Why a reminder did not go out.
#[derive(Debug, thiserror::Error)]
pub enum RemindError {
    /// The member does not accept direct messages from the bot (Discord's 50007): retrying
    /// does not help.
    #[error("the member's direct messages are closed")]
    Closed,
    #[error("{0}")]
    Failed(String),
}

/// Discord's "Cannot send messages to this user".
const CANNOT_MESSAGE_USER: isize = 50_007;

impl Notifier {
    /// Sends a reminder to `user` by direct message, with `nonce` enforced: a second send of
    /// the same reminder within Discord's window is dropped by Discord.
    ///
    /// # Errors
    /// See [`RemindError`].
    pub async fn remind(
        &self,
        user: UserId,
        message: &ReminderMessage,
        nonce: &str,
    ) -> Result<(), RemindError> {
        let failed = |e: serenity::Error| {
            if let serenity::Error::Http(serenity::http::HttpError::UnsuccessfulRequest(r)) = &e
                && r.error.code == CANNOT_MESSAGE_USER
            {
                return RemindError::Closed;
            }
            RemindError::Failed(e.to_string())
        };
        let dm = sid::UserId::new(user.get())
            .create_dm_channel(&self.http)
            .await
            .map_err(failed)?;
        let view = view(message);
        let create = CreateMessage::new()
            .content(truncate(&view.text, 2000))
            .embeds(view.embeds)
            .components(view.components)
            .allowed_mentions(CreateAllowedMentions::new())
            .nonce(Nonce::String(nonce.to_owned()))
            .enforce_nonce(true);
        dm.id
            .send_message(&self.http, create)
            .await
            .map(|_| ())
            .map_err(failed)
    }
}

/// The reminder as a message.
fn view(m: &ReminderMessage) -> View {
    let server = if m.guild.name.is_empty() {
        "this server".to_owned()
    } else {
        format!("**{}**", m.guild.name)
    };
    let role = &m.paid.name;
    let ends = format!("<t:{0}:R> (<t:{0}:f>)", m.ends_at.div_euclid(1000));
    let mut view = View::default();
    let mut text = match m.kind {
        Kind::PassEnding => match &m.renewal {
            Some(started) => {
                let renew = super::member::checkout_view(
                    &started.provider_name,
                    &m.paid,
                    &started.checkout,
                );
                view.embeds = renew.embeds;
                view.components = renew.components;
                format!(
                    "⏰ Your **{role}** pass on {server} ends {ends}. To keep it, pay {} again: {}",
                    price_text(m.paid.price, m.paid.billing),
                    if started.checkout.payment_code.is_some() {
                        "the transfer below extends your pass from its current end, not from today."
                    } else {
                        "use the button below."
                    }
                )
            }
            None => format!(
                "⏰ Your **{role}** pass on {server} ends {ends}. To keep it, run /join in the server and pay again: a transfer extends your pass from its current end."
            ),
        },
        Kind::Ending => format!(
            "⏰ Your **{role}** subscription on {server} was cancelled and ends {ends}. {}",
            if m.manage_url.is_some() {
                "To keep it, resume it on the payment page below."
            } else {
                "To keep it, resume it with the payment provider, or run /join in the server after it ends."
            }
        ),
        Kind::PastDue => format!(
            "⚠️ The last payment for your **{role}** subscription on {server} failed. Fix your card before {ends} to keep the role{}",
            if m.manage_url.is_some() {
                ": use the button below."
            } else {
                " (with the payment provider, or ask the server's staff)."
            }
        ),
    };
    text.push_str(
        "\n-# You get this because you hold a paid role there; you can stop these reminders below.",
    );
    view.text = text;
    let mut buttons = Vec::new();
    if let Some(url) = &m.manage_url {
        let label = if m.kind == Kind::PastDue {
            "Fix my payment"
        } else {
            "Resume my subscription"
        };
        buttons.push(CreateButton::new_link(url.clone()).label(label));
    }
    buttons.push(toggle(m.guild.id, false));
    view.components.push(CreateActionRow::Buttons(buttons));
    view
}

/// The button that turns a member's reminders for `guild` on or off.
fn toggle(guild: GuildId, on: bool) -> CreateButton {
    CreateButton::new(CustomId::Reminders { guild, on }.to_string()).label(if on {
        "Turn reminders back on"
    } else {
        "Stop reminders"
    })
}

/// A reminder's button was pressed: the member's choice for that guild.
pub(super) async fn set_wanted(
    bot: &Bot,
    actor: &Actor,
    guild: GuildId,
    on: bool,
) -> Outcome<'static> {
    let user = actor.user;
    let known = bot
        .services
        .db
        .write(move |conn| reminders::set_wanted(conn, guild, user, on))
        .await?;
    if !known {
        return Ok(Reply::private(
            "Docobo has no paid role of yours on that server: there is nothing to remind you of.",
        ));
    }
    tracing::info!(
        guild = guild.get(),
        user = user.get(),
        on,
        "member set reminders"
    );
    let text = if on {
        "Reminders are on again: you get a message before a paid role of yours on that server ends."
    } else {
        "Reminders stopped: Docobo will not message you before a paid role of yours on that server ends. Your roles are not affected."
    };
    Ok(Reply::private(
        View::text(text).row(CreateActionRow::Buttons(vec![toggle(guild, !on)])),
    ))
}
