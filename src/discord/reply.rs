//! Replies as values, and the one adapter that sends them with serenity.
//!
//! The commands decide *what* to answer (a [`Reply`], or a [`BotError`]); [`send`] answers the
//! interaction: the first response within Discord's 3 seconds, then, for a
//! [`Reply::Deferred`], the slow step and an edit of that response. Errors are rendered (and
//! their cause logged, once) here.

use std::fmt;
use std::future::Future;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use serenity::all::{
    CreateActionRow, CreateAttachment, CreateEmbed, CreateInteractionResponse,
    CreateInteractionResponseMessage, CreateModal, EditInteractionResponse, InteractionId,
};
use serenity::builder::Builder as _;

use super::Bot;
use super::error::BotError;
use super::interaction::Actor;
use super::notify::truncate;
use crate::domain::{GuildId, UserId};

/// Discord's limit on a message's content.
const CONTENT_MAX: usize = 2000;

/// What a message shows. In an update or an edit it replaces the message: an empty
/// `components` removes the buttons and selects.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct View {
    /// Cut to Discord's 2000 characters when sent.
    pub text: String,
    pub components: Vec<CreateActionRow>,
    pub embeds: Vec<CreateEmbed>,
    /// Files sent with the message (as a multipart request).
    pub files: Vec<CreateAttachment>,
}

impl View {
    pub(crate) fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }

    /// Adds a row of components.
    #[must_use]
    pub(crate) fn row(mut self, row: CreateActionRow) -> Self {
        self.components.push(row);
        self
    }
}

/// How a slow reply is acknowledged before its step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ack {
    /// "Docobo is thinking…" (callback 5): the edit becomes a new message.
    Thinking { ephemeral: bool },
    /// Nothing visible (callback 6): the edit replaces the component's message.
    Update,
}

/// The slow step of a [`Reply::Deferred`]: what the acknowledged response becomes.
pub(crate) type Later<'a> = BoxFuture<'a, Result<View, BotError>>;

/// The answer to an interaction.
pub(crate) enum Reply<'a> {
    /// A new message (callback 4).
    Message { view: View, ephemeral: bool },
    /// The component's message, replaced (callback 7).
    Update(View),
    /// A modal (callback 9).
    Modal(CreateModal),
    /// Acknowledge now, then run `then` (a provider call) and edit the response with it.
    Deferred { ack: Ack, then: Later<'a> },
    /// No answer (an input Docobo never asks for).
    Nothing,
}

/// What a command decided: a reply, or an error to render.
pub(crate) type Outcome<'a> = Result<Reply<'a>, BotError>;

impl<'a> Reply<'a> {
    /// A message only the user sees.
    pub(crate) fn private(view: impl Into<View>) -> Self {
        Self::Message {
            view: view.into(),
            ephemeral: true,
        }
    }

    pub(crate) fn deferred(
        ack: Ack,
        then: impl Future<Output = Result<View, BotError>> + Send + 'a,
    ) -> Self {
        Self::Deferred {
            ack,
            then: then.boxed(),
        }
    }
}

impl From<&str> for View {
    fn from(text: &str) -> Self {
        Self::text(text)
    }
}

impl From<String> for View {
    fn from(text: String) -> Self {
        Self::text(text)
    }
}

impl fmt::Debug for Reply<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Message { view, ephemeral } => f
                .debug_struct("Message")
                .field("view", view)
                .field("ephemeral", ephemeral)
                .finish(),
            Self::Update(view) => f.debug_tuple("Update").field(view).finish(),
            Self::Modal(modal) => f.debug_tuple("Modal").field(modal).finish(),
            Self::Deferred { ack, .. } => f
                .debug_struct("Deferred")
                .field("ack", ack)
                .finish_non_exhaustive(),
            Self::Nothing => f.write_str("Nothing"),
        }
    }
}

/// The interaction being answered.
#[derive(Debug, Clone, Copy)]
pub(super) struct Target<'a> {
    id: InteractionId,
    token: &'a str,
    /// For the log.
    guild: Option<GuildId>,
    user: UserId,
}

impl<'a> Target<'a> {
    pub(super) fn new(id: InteractionId, token: &'a str, actor: &Actor) -> Self {
        Self {
            id,
            token,
            guild: actor.guild,
            user: actor.user,
        }
    }
}

/// Sends `outcome` as the answer to `to`.
pub(super) async fn send(bot: &Bot, to: &Target<'_>, outcome: Outcome<'_>) {
    let response = match outcome {
        Ok(Reply::Nothing) => return,
        Ok(Reply::Message { view, ephemeral }) => {
            CreateInteractionResponse::Message(message(view, ephemeral))
        }
        Ok(Reply::Update(view)) => CreateInteractionResponse::UpdateMessage(update(view)),
        Ok(Reply::Modal(modal)) => CreateInteractionResponse::Modal(modal),
        Ok(Reply::Deferred { ack, then }) => {
            if !respond(bot, to, acknowledge(ack)).await {
                return;
            }
            let view = then.await.unwrap_or_else(|e| render(to, e));
            if let Err(e) = edit(view).execute(&bot.http, to.token).await {
                tracing::warn!(interaction = to.id.get(), error = %e, "cannot edit the interaction's response");
            }
            return;
        }
        Err(e) => CreateInteractionResponse::Message(message(render(to, e), true)),
    };
    respond(bot, to, response).await;
}

/// The error as the person sees it; its cause is logged here, once.
fn render(to: &Target<'_>, error: BotError) -> View {
    let (interaction, guild, user) = (to.id.get(), to.guild.map(GuildId::get), to.user.get());
    if let Some(cause) = &error.cause {
        let cause = format!("{cause:#}");
        tracing::error!(interaction, guild, user, told = %error.user, error = %cause, "interaction failed");
    } else {
        tracing::info!(interaction, guild, user, outcome = "refused", "interaction");
    }
    View::text(error.user)
}

/// Sends an interaction's first response; a failure (late, already answered) is logged.
async fn respond(bot: &Bot, to: &Target<'_>, response: CreateInteractionResponse) -> bool {
    match response.execute(&bot.http, (to.id, to.token)).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(interaction = to.id.get(), error = %e, "cannot answer the interaction");
            false
        }
    }
}

fn acknowledge(ack: Ack) -> CreateInteractionResponse {
    match ack {
        Ack::Thinking { ephemeral } => CreateInteractionResponse::Defer(
            CreateInteractionResponseMessage::new().ephemeral(ephemeral),
        ),
        Ack::Update => CreateInteractionResponse::Acknowledge,
    }
}

fn message(view: View, ephemeral: bool) -> CreateInteractionResponseMessage {
    let mut message = CreateInteractionResponseMessage::new();
    if ephemeral {
        message = message.ephemeral(true);
    }
    if !view.text.is_empty() {
        message = message.content(truncate(&view.text, CONTENT_MAX));
    }
    if !view.components.is_empty() {
        message = message.components(view.components);
    }
    if !view.embeds.is_empty() {
        message = message.embeds(view.embeds);
    }
    if !view.files.is_empty() {
        message = message.add_files(view.files);
    }
    message
}

fn update(view: View) -> CreateInteractionResponseMessage {
    CreateInteractionResponseMessage::new()
        .content(truncate(&view.text, CONTENT_MAX))
        .components(view.components)
        .embeds(view.embeds)
}

fn edit(view: View) -> EditInteractionResponse {
    view.files.into_iter().fold(
        EditInteractionResponse::new()
            .content(truncate(&view.text, CONTENT_MAX))
            .components(view.components)
            .embeds(view.embeds),
        EditInteractionResponse::new_attachment,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn wire(value: &impl serde::Serialize) -> Value {
        serde_json::to_value(value).expect("json")
    }

    #[test]
    fn a_private_message_is_ephemeral_and_cut_to_discords_limit() {
        let Reply::Message { view, ephemeral } = Reply::private("x".repeat(2500)) else {
            panic!("a message");
        };
        let sent = wire(&message(view, ephemeral));
        assert_eq!(sent["flags"], json!(64));
        assert_eq!(
            sent["content"].as_str().map(|c| c.chars().count()),
            Some(2000)
        );
        assert!(sent.get("components").is_none(), "{sent}");
    }

    #[test]
    fn an_update_or_edit_replaces_the_components() {
        let sent = wire(&update(View::text("done")));
        assert_eq!(sent["content"], json!("done"));
        assert_eq!(sent["components"], json!([]));
        let sent = wire(&edit(View::text("done")));
        assert_eq!(sent["components"], json!([]));
    }

    #[test]
    fn acknowledgements_match_the_callback_types() {
        assert_eq!(wire(&acknowledge(Ack::Update))["type"], json!(6));
        let thinking = wire(&acknowledge(Ack::Thinking { ephemeral: true }));
        assert_eq!(thinking["type"], json!(5));
        assert_eq!(thinking["data"]["flags"], json!(64));
    }
}
