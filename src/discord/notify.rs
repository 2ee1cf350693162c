//! Messages to a guild's staff: a line in the log channel for each purchase, renewal,
//! cancellation, expiry and failure; problems the owner must fix go to the log channel, or
//! by direct message to the owner when no log channel is set.
//!
//! Messages never ping anyone (no allowed mentions) and never carry credentials. A message
//! that cannot be delivered is logged and dropped: it must not hold up role changes.

use std::sync::Arc;

use serenity::builder::{CreateAllowedMentions, CreateMessage};
use serenity::http::Http;
use serenity::model::id as sid;

use crate::db::guilds::Guild;

/// Sends staff notices.
#[derive(Debug, Clone)]
pub struct Notifier {
    http: Arc<Http>,
}

impl Notifier {
    #[must_use]
    pub fn new(http: Arc<Http>) -> Self {
        Self { http }
    }

    /// A line in the guild's log channel, if it has one. Returns whether it was sent.
    pub async fn log_line(&self, guild: &Guild, text: &str) -> bool {
        let Some(channel) = guild.log_channel_id else {
            return false;
        };
        self.send(sid::ChannelId::new(channel.get()), text, guild)
            .await
    }

    /// A problem the owner must fix: in the log channel, else by DM to the owner.
    pub async fn tell_owner(&self, guild: &Guild, text: &str) -> bool {
        if self.log_line(guild, text).await {
            return true;
        }
        let Some(owner) = guild.owner_id else {
            tracing::warn!(
                guild = guild.id.get(),
                "no log channel and no known owner to tell: {text}"
            );
            return false;
        };
        let dm = match sid::UserId::new(owner.get())
            .create_dm_channel(&self.http)
            .await
        {
            Ok(dm) => dm,
            Err(e) => {
                tracing::warn!(guild = guild.id.get(), error = %e, "cannot open a DM to the owner");
                return false;
            }
        };
        let text = format!("**{}**: {text}", guild.name);
        self.send(dm.id, &text, guild).await
    }

    async fn send(&self, channel: sid::ChannelId, text: &str, guild: &Guild) -> bool {
        let message = CreateMessage::new()
            .content(truncate(text, 2000))
            .allowed_mentions(CreateAllowedMentions::new());
        match channel.send_message(&self.http, message).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(
                    guild = guild.id.get(),
                    channel = channel.get(),
                    error = %e,
                    "cannot post a notice"
                );
                false
            }
        }
    }
}

/// At most `max` characters (Discord's limits count characters), with `…` when cut.
#[must_use]
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    #[test]
    fn truncate_counts_characters_not_bytes() {
        assert_eq!(super::truncate("héllo", 5), "héllo");
        assert_eq!(super::truncate("héllo wörld", 5), "héll…");
        assert_eq!(super::truncate("héllo wörld", 5).chars().count(), 5);
    }
}
