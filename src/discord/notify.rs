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
use crate::db::subscriptions::Subscription;
use crate::domain::{RoleId, SubscriptionStatus, UnixMillis};

/// Sends staff notices.
#[derive(Debug, Clone)]
pub struct Notifier {
    pub(super) http: Arc<Http>,
}

impl Notifier {
    #[must_use]
    pub fn new(http: Arc<Http>) -> Self {
        Self { http }
    }

    /// Posts one log-channel line per new purchase, renewal, cancellation or ending; returns
    /// what to record as announced (posted before it is recorded: a crash in between repeats
    /// a line rather than losing it).
    pub async fn announce(
        &self,
        guild: &Guild,
        role: RoleId,
        subs: &[Subscription],
        now: UnixMillis,
    ) -> Vec<(i64, String)> {
        let mut announced = Vec::new();
        for sub in subs {
            let key = format!("{}:{}", sub.state.status, sub.state.period_end.unwrap_or(0));
            if sub.announced.as_deref() == Some(key.as_str()) {
                continue;
            }
            let before = sub
                .announced
                .as_deref()
                .and_then(|a| a.split_once(':'))
                .map(|(s, _)| s.to_owned());
            if let Some(line) = announcement(sub, before.as_deref(), role, now) {
                self.log_line(guild, &line).await;
            }
            announced.push((sub.id, key));
        }
        announced
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
        self.direct(guild, owner.get(), text).await
    }

    /// A direct message to a member about their own payment, naming the server. Returns
    /// whether it was sent (a member who closed their DMs is not told: logged).
    pub async fn tell_member(
        &self,
        guild: &Guild,
        member: crate::domain::UserId,
        text: &str,
    ) -> bool {
        self.direct(guild, member.get(), text).await
    }

    /// A direct message to `user`, naming the server when its name is known (a guild seen
    /// only in READY has none yet).
    async fn direct(&self, guild: &Guild, user: u64, text: &str) -> bool {
        let dm = match sid::UserId::new(user).create_dm_channel(&self.http).await {
            Ok(dm) => dm,
            Err(e) => {
                tracing::warn!(guild = guild.id.get(), error = %e, "cannot open a DM");
                return false;
            }
        };
        let text = if guild.name.is_empty() {
            text.to_owned()
        } else {
            format!("**{}**: {text}", guild.name)
        };
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

/// The log-channel line for a subscription's new state (`before`: the status last
/// announced), or `None` when there is nothing to say.
fn announcement(
    sub: &Subscription,
    before: Option<&str>,
    role: RoleId,
    now: UnixMillis,
) -> Option<String> {
    let who = format!("<@{}>", sub.user_id);
    let end = sub
        .state
        .period_end
        .map(super::ui::date)
        .unwrap_or_default();
    let was = |s: &str| before == Some(s);
    Some(match sub.state.status {
        SubscriptionStatus::Pending => return None,
        SubscriptionStatus::Active if was("active") => format!(
            "🔁 {who} renewed <@&{role}>{}",
            if end.is_empty() {
                String::new()
            } else {
                format!(", paid until {end}")
            }
        ),
        SubscriptionStatus::Active if was("canceled") || was("past_due") || was("paused") => {
            format!("▶️ {who}'s <@&{role}> is active again")
        }
        SubscriptionStatus::Active => format!(
            "🎉 {who} bought <@&{role}>{}",
            if end.is_empty() {
                String::new()
            } else {
                format!(", paid until {end}")
            }
        ),
        SubscriptionStatus::Canceled if sub.state.period_end.is_some_and(|e| e > now) => {
            format!("⏸️ {who} cancelled <@&{role}>; it stays until {end}")
        }
        SubscriptionStatus::Canceled | SubscriptionStatus::Expired => {
            format!("⌛ {who}'s <@&{role}> ended; role removed")
        }
        SubscriptionStatus::PastDue => format!(
            "⚠️ {who}'s payment for <@&{role}> failed; the role stays during the grace period"
        ),
        SubscriptionStatus::Revoked => format!("⛔ {who}'s <@&{role}> was revoked; role removed"),
        SubscriptionStatus::Refunded => format!("💸 {who}'s <@&{role}> was refunded; role removed"),
        SubscriptionStatus::Paused => {
            format!("⏸️ {who} paused <@&{role}>; role removed until it resumes")
        }
        SubscriptionStatus::Trialing => format!(
            "🧪 {who} started a trial of <@&{role}>{}",
            if end.is_empty() {
                String::new()
            } else {
                format!(", until {end}")
            }
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_change_is_announced_in_words() {
        use SubscriptionStatus::{Active, Canceled, Expired, Pending, Refunded};
        let role = RoleId::new(30).expect("role");
        let say = |s: Subscription, before: Option<&str>| announcement(&s, before, role, 1_000);
        let sub = Subscription::example;
        assert!(say(sub(Active, Some(9_000), None), None).is_some_and(|l| l.contains("bought")));
        assert!(
            say(sub(Active, Some(9_000), None), Some("active"))
                .is_some_and(|l| l.contains("renewed"))
        );
        assert!(
            say(sub(Active, None, None), Some("canceled"))
                .is_some_and(|l| l.contains("active again"))
        );
        assert!(
            say(sub(Canceled, Some(9_000), None), Some("active"))
                .is_some_and(|l| l.contains("stays until"))
        );
        assert!(
            say(sub(Expired, Some(900), None), Some("canceled"))
                .is_some_and(|l| l.contains("ended"))
        );
        assert!(
            say(sub(Refunded, None, None), Some("active")).is_some_and(|l| l.contains("refunded"))
        );
        assert_eq!(say(sub(Pending, None, Some("DCB1")), None), None);
        assert!(
            say(
                sub(SubscriptionStatus::Paused, Some(9_000), None),
                Some("active")
            )
            .is_some_and(|l| l.contains("paused") && l.contains("removed"))
        );
        assert!(
            say(sub(Active, Some(9_000), None), Some("paused"))
                .is_some_and(|l| l.contains("active again"))
        );
        assert!(
            say(sub(SubscriptionStatus::Trialing, Some(9_000), None), None)
                .is_some_and(|l| l.contains("trial"))
        );
    }

    #[test]
    fn truncate_counts_characters_not_bytes() {
        assert_eq!(super::truncate("héllo", 5), "héllo");
        assert_eq!(super::truncate("héllo wörld", 5), "héll…");
        assert_eq!(super::truncate("héllo wörld", 5).chars().count(), 5);
    }
}
