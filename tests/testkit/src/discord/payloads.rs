//! The JSON the fake sends: Discord's object shapes (users, roles, members, guilds, messages,
//! commands, interactions, gateway frames) and error bodies, each carrying every field
//! serenity 0.12.5 requires (a dispatch serenity cannot parse is silently dropped).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::model::{Guild, INTENT_GUILD_MEMBERS, Member, Model, Role, User};

/// A Discord error reply: HTTP status plus the JSON error body `{"message", "code"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: i64,
    pub message: String,
    /// Discord's nested `errors` object (for 50035 Invalid Form Body).
    pub errors: Option<Value>,
}

impl ApiError {
    #[must_use]
    pub fn new(status: u16, code: i64, message: &str) -> Self {
        Self {
            status,
            code,
            message: message.to_owned(),
            errors: None,
        }
    }

    /// The JSON body Discord sends with this error.
    #[must_use]
    pub fn body(&self) -> Value {
        let mut body = json!({ "message": self.message, "code": self.code });
        if let Some(errors) = &self.errors {
            body["errors"] = errors.clone();
        }
        body
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(401, 0, "401: Unauthorized")
    }
    pub(crate) fn not_found() -> Self {
        Self::new(404, 0, "404: Not Found")
    }
    pub(crate) fn unknown_application() -> Self {
        Self::new(404, 10002, "Unknown Application")
    }
    pub(crate) fn unknown_guild() -> Self {
        Self::new(404, 10004, "Unknown Guild")
    }
    pub(crate) fn unknown_member() -> Self {
        Self::new(404, 10007, "Unknown Member")
    }
    pub(crate) fn unknown_message() -> Self {
        Self::new(404, 10008, "Unknown Message")
    }
    pub(crate) fn unknown_role() -> Self {
        Self::new(404, 10011, "Unknown Role")
    }
    pub(crate) fn unknown_user() -> Self {
        Self::new(404, 10013, "Unknown User")
    }
    pub(crate) fn unknown_webhook() -> Self {
        Self::new(404, 10015, "Unknown Webhook")
    }
    pub(crate) fn unknown_interaction() -> Self {
        Self::new(404, 10062, "Unknown interaction")
    }
    pub(crate) fn already_acknowledged() -> Self {
        Self::new(400, 40060, "Interaction has already been acknowledged.")
    }
    pub(crate) fn missing_access() -> Self {
        Self::new(403, 50001, "Missing Access")
    }
    pub(crate) fn missing_permissions() -> Self {
        Self::new(403, 50013, "Missing Permissions")
    }
    /// 50035 with one `_errors` entry per message, keyed by a dotted field path.
    pub(crate) fn invalid_form_body(field_errors: &[(String, String)]) -> Self {
        let mut errors = serde_json::Map::new();
        for (field, message) in field_errors {
            let entry = errors
                .entry(if field.is_empty() {
                    "_body".to_owned()
                } else {
                    field.clone()
                })
                .or_insert_with(|| json!({ "_errors": [] }));
            if let Some(list) = entry.get_mut("_errors").and_then(Value::as_array_mut) {
                list.push(json!({ "code": "INVALID_FORM_BODY", "message": message }));
            }
        }
        Self {
            errors: Some(Value::Object(errors)),
            ..Self::new(400, 50035, "Invalid Form Body")
        }
    }
}

/// Now as RFC 3339 with microseconds, the form Discord uses.
#[must_use]
pub fn timestamp_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs(), now.subsec_micros())
}

/// Formats unix seconds (UTC) without a date library (Howard Hinnant's `civil_from_days`).
fn rfc3339(secs: u64, micros: u32) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub(crate) fn user(u: &User) -> Value {
    json!({
        "id": u.id.to_string(),
        "username": u.username,
        "discriminator": "0",
        "global_name": null,
        "avatar": null,
        "bot": u.bot,
        "public_flags": 0,
    })
}

/// `GET /users/@me` and READY's `user`.
pub(crate) fn current_user(u: &User) -> Value {
    let mut v = user(u);
    v["verified"] = json!(true);
    v["mfa_enabled"] = json!(false);
    v["flags"] = json!(0);
    v
}

/// The bot's application (`GET /oauth2/applications/@me`), with the fields serenity's
/// `CurrentApplicationInfo` requires.
pub(crate) fn current_application(id: u64, bot: &User) -> Value {
    json!({
        "id": id.to_string(),
        "name": bot.username,
        "icon": null,
        "description": "",
        "bot_public": true,
        "bot_require_code_grant": false,
        "verify_key": "0".repeat(64),
        "flags": 0,
        "bot": user(bot),
    })
}

pub(crate) fn role(r: &Role) -> Value {
    json!({
        "id": r.id.to_string(),
        "name": r.name,
        "color": 0,
        "colors": { "primary_color": 0, "secondary_color": null, "tertiary_color": null },
        "hoist": false,
        "icon": null,
        "unicode_emoji": null,
        "position": r.position,
        "permissions": r.permissions.to_string(),
        "managed": r.managed,
        "mentionable": false,
        "flags": 0,
    })
}

pub(crate) fn member(m: &Member) -> Value {
    json!({
        "user": user(&m.user),
        "nick": null,
        "avatar": null,
        "banner": null,
        "roles": m.roles.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "joined_at": m.joined_at,
        "premium_since": null,
        "deaf": false,
        "mute": false,
        "flags": 0,
        "pending": false,
        "communication_disabled_until": null,
    })
}

/// A member as embedded in an interaction: with `permissions`.
pub(crate) fn interaction_member(g: &Guild, m: &Member) -> Value {
    let mut v = member(m);
    v["permissions"] = json!(g.permissions(m.user.id).to_string());
    v
}

pub(crate) fn text_channel(g: &Guild) -> Value {
    let overwrites: Vec<Value> = g
        .overwrites
        .iter()
        .map(|o| {
            json!({
                "id": o.id.to_string(),
                "type": u8::from(o.member),
                "allow": o.allow.to_string(),
                "deny": o.deny.to_string(),
            })
        })
        .collect();
    json!({
        "id": g.channel_id.to_string(),
        "type": 0,
        "guild_id": g.id.to_string(),
        "name": "general",
        "position": 0,
        "permission_overwrites": overwrites,
        "nsfw": false,
        "topic": null,
        "last_message_id": null,
        "parent_id": null,
        "rate_limit_per_user": 0,
        "flags": 0,
    })
}

/// `GUILD_CREATE`'s `d`. Members are all included only with the `GUILD_MEMBERS` intent;
/// otherwise just the bot's own member, as Discord does.
pub(crate) fn guild_create(g: &Guild, bot_id: u64, intents: u64, joined_at: &str) -> Value {
    let members: Vec<Value> = g
        .members
        .values()
        .filter(|m| intents & INTENT_GUILD_MEMBERS != 0 || m.user.id == bot_id)
        .map(member)
        .collect();
    json!({
        "id": g.id.to_string(),
        "name": g.name,
        "icon": null,
        "splash": null,
        "discovery_splash": null,
        "owner_id": g.owner_id.to_string(),
        "afk_channel_id": null,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "roles": g.roles.values().map(role).collect::<Vec<_>>(),
        "emojis": [],
        "features": [],
        "mfa_level": 0,
        "application_id": null,
        "system_channel_id": null,
        "system_channel_flags": 0,
        "rules_channel_id": null,
        "max_members": 500_000,
        "vanity_url_code": null,
        "description": null,
        "banner": null,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": "en-US",
        "public_updates_channel_id": null,
        "nsfw_level": 0,
        "stickers": [],
        "premium_progress_bar_enabled": false,
        "safety_alerts_channel_id": null,
        "joined_at": joined_at,
        "large": false,
        "unavailable": false,
        "member_count": g.members.len(),
        "voice_states": [],
        "members": members,
        "channels": [text_channel(g)],
        "threads": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
    })
}

pub(crate) fn ready(
    model: &Model,
    guild_ids: &[u64],
    session_id: &str,
    resume_url: &str,
    shard: &Value,
) -> Value {
    json!({
        "v": 10,
        "user": current_user(&model.bot),
        "guilds": guild_ids
            .iter()
            .map(|id| json!({ "id": id.to_string(), "unavailable": true }))
            .collect::<Vec<_>>(),
        "session_id": session_id,
        "session_type": "normal",
        "resume_gateway_url": resume_url,
        "shard": shard,
        "application": { "id": model.application_id.to_string(), "flags": 0 },
        "private_channels": [],
        "relationships": [],
        "user_settings": {},
        "presences": [],
        "geo_ordered_rtc_regions": [],
        "guild_join_requests": [],
    })
}

/// `GUILD_MEMBER_ADD`'s `d`: a member plus `guild_id`.
pub(crate) fn member_add(guild_id: u64, m: &Member) -> Value {
    let mut v = member(m);
    v["guild_id"] = json!(guild_id.to_string());
    v
}

/// `GUILD_MEMBER_UPDATE`'s `d`.
pub(crate) fn member_update(guild_id: u64, m: &Member) -> Value {
    member_add(guild_id, m)
}

pub(crate) fn member_remove(guild_id: u64, u: &User) -> Value {
    json!({ "guild_id": guild_id.to_string(), "user": user(u) })
}

/// Message `type` for a reply to a slash command (`CHAT_INPUT_COMMAND`).
pub(crate) const MESSAGE_CHAT_INPUT_COMMAND: u8 = 20;
/// Message `type` for an ordinary message.
pub(crate) const MESSAGE_DEFAULT: u8 = 0;

/// The attachments of files sent with a body (those the fake stored: they have a `url`).
fn sent_attachments(body: &Value) -> Option<Value> {
    let list: Vec<Value> = body
        .get("attachments")?
        .as_array()?
        .iter()
        .filter(|a| a.get("url").is_some())
        .cloned()
        .collect();
    (!list.is_empty()).then_some(Value::Array(list))
}

/// A message as Discord returns it, from a create/edit body (`content`, `embeds`,
/// `components`, `flags`).
pub(crate) fn message(
    id: u64,
    channel_id: u64,
    author: &User,
    body: &Value,
    kind: u8,
    application_id: Option<u64>,
) -> Value {
    let mut v = json!({
        "id": id.to_string(),
        "channel_id": channel_id.to_string(),
        "author": user(author),
        "content": body.get("content").and_then(Value::as_str).unwrap_or_default(),
        "timestamp": timestamp_now(),
        "edited_timestamp": null,
        "tts": body.get("tts").and_then(Value::as_bool).unwrap_or(false),
        "mention_everyone": false,
        "mentions": [],
        "mention_roles": [],
        "attachments": sent_attachments(body).unwrap_or_else(|| json!([])),
        "embeds": body.get("embeds").filter(|e| e.is_array()).cloned().unwrap_or_else(|| json!([])),
        "pinned": false,
        "type": kind,
        "flags": body.get("flags").and_then(Value::as_u64).unwrap_or(0),
        "components": body
            .get("components")
            .filter(|c| c.is_array())
            .cloned()
            .unwrap_or_else(|| json!([])),
    });
    if let Some(app) = application_id {
        v["application_id"] = json!(app.to_string());
        v["webhook_id"] = json!(app.to_string());
    }
    v
}

/// Applies an edit body (`PATCH …/messages/…`) to a stored message.
pub(crate) fn edit_message(message: &mut Value, body: &Value) {
    for field in ["content", "embeds", "components", "flags"] {
        if let Some(value) = body.get(field).filter(|v| !v.is_null()) {
            message[field] = value.clone();
        }
    }
    if let Some(attachments) = sent_attachments(body) {
        message["attachments"] = attachments;
    }
    message["edited_timestamp"] = json!(timestamp_now());
}

pub(crate) fn dm_channel(channel_id: u64, recipient: &User) -> Value {
    json!({
        "id": channel_id.to_string(),
        "type": 1,
        "last_message_id": null,
        "flags": 0,
        "recipients": [user(recipient)],
    })
}

/// A registered command as Discord returns it.
pub(crate) fn command(
    body: &Value,
    id: u64,
    version: u64,
    application_id: u64,
    guild_id: Option<u64>,
) -> Value {
    let mut v = json!({
        "id": id.to_string(),
        "application_id": application_id.to_string(),
        "version": version.to_string(),
        "type": body.get("type").and_then(Value::as_u64).unwrap_or(1),
        "name": body.get("name").cloned().unwrap_or(Value::Null),
        "name_localizations": null,
        "description": body.get("description").and_then(Value::as_str).unwrap_or_default(),
        "description_localizations": null,
        "default_member_permissions": body
            .get("default_member_permissions")
            .filter(|p| !p.is_null())
            .map_or(Value::Null, |p| match p {
                Value::Number(n) => json!(n.to_string()),
                other => other.clone(),
            }),
        "nsfw": body.get("nsfw").and_then(Value::as_bool).unwrap_or(false),
        "integration_types": [0],
        "contexts": null,
    });
    if let Some(options) = body.get("options").filter(|o| o.is_array()) {
        v["options"] = options.clone();
    }
    if let Some(g) = guild_id {
        v["guild_id"] = json!(g.to_string());
    }
    v
}

/// The fields every interaction shares (types 2, 3 and 5).
pub(crate) struct InteractionBase<'a> {
    pub id: u64,
    pub kind: u8,
    pub token: &'a str,
    pub application_id: u64,
    pub guild: &'a Guild,
    pub member: &'a Member,
    pub bot_id: u64,
}

pub(crate) fn interaction(base: &InteractionBase<'_>, data: Value) -> Value {
    let g = base.guild;
    let mut v = json!({
        "id": base.id.to_string(),
        "application_id": base.application_id.to_string(),
        "type": base.kind,
        "guild_id": g.id.to_string(),
        "guild": { "id": g.id.to_string(), "locale": "en-US", "features": [] },
        "channel_id": g.channel_id.to_string(),
        "channel": {
            "id": g.channel_id.to_string(),
            "type": 0,
            "name": "general",
            "guild_id": g.id.to_string(),
            "permissions": g.permissions(base.member.user.id).to_string(),
        },
        "member": interaction_member(g, base.member),
        "token": base.token,
        "version": 1,
        "app_permissions": g.permissions(base.bot_id).to_string(),
        "locale": "en-US",
        "guild_locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": { "0": g.id.to_string() },
        "context": 0,
        "attachment_size_limit": 10_485_760,
    });
    v["data"] = data;
    v
}

/// A gateway dispatch frame (op 0).
pub(crate) fn dispatch_frame(seq: u64, event: &str, data: Value) -> Value {
    let mut frame = json!({ "op": 0, "s": seq, "t": event });
    frame["d"] = data;
    frame
}

pub(crate) fn hello(heartbeat_interval_ms: u64) -> Value {
    json!({ "op": 10, "s": null, "t": null, "d": { "heartbeat_interval": heartbeat_interval_ms } })
}

pub(crate) fn heartbeat_ack() -> Value {
    json!({ "op": 11, "s": null, "t": null, "d": null })
}

pub(crate) fn invalid_session(resumable: bool) -> Value {
    json!({ "op": 9, "s": null, "t": null, "d": resumable })
}

pub(crate) fn reconnect() -> Value {
    json!({ "op": 7, "s": null, "t": null, "d": null })
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn formats_unix_time_as_rfc3339() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000+00:00");
        assert_eq!(
            rfc3339(1_767_225_600, 5),
            "2026-01-01T00:00:00.000005+00:00"
        );
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000000+00:00");
    }
}
