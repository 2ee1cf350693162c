//! Interactions end to end: building the `INTERACTION_CREATE` a user's slash command, component
//! click or modal submit produces, and the REST side of answering it (the initial callback with
//! its 3-second deadline and single use, then edits of `@original` and follow-ups), recorded as
//! [`Reply`] values tests can wait for.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::model::{Guild, Model};
use super::payloads::{self, ApiError, InteractionBase};
use super::{FakeError, Shared, State};

/// `INTERACTION_CREATE` types.
pub(crate) const APPLICATION_COMMAND: u8 = 2;
pub(crate) const MESSAGE_COMPONENT: u8 = 3;
pub(crate) const MODAL_SUBMIT: u8 = 5;

/// Message flag `EPHEMERAL`.
pub const EPHEMERAL: u64 = 1 << 6;

/// An interaction the fake dispatched; pass it to
/// [`FakeDiscord::await_reply`](super::FakeDiscord::await_reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InteractionHandle {
    pub id: u64,
    pub token: String,
    pub guild_id: u64,
    pub user_id: u64,
    /// The gateway sequence number of the `INTERACTION_CREATE`.
    pub seq: u64,
}

/// How the bot answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// Callback type 4: a new message.
    Message,
    /// Callback type 7: the component's message, updated.
    UpdateMessage,
    /// Callback type 9: a modal (`body` is the modal's data).
    Modal,
    /// `PATCH /webhooks/{app}/{token}/messages/@original` (after a defer, or an edit).
    EditOriginal,
    /// `POST /webhooks/{app}/{token}`.
    Followup,
    /// `PATCH /webhooks/{app}/{token}/messages/{id}` of a follow-up.
    EditFollowup,
}

/// One visible answer to an interaction. `body` is the message as Discord would return it
/// (serenity's `Message` shape), or for [`ReplyKind::Modal`] the modal's `data`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub kind: ReplyKind,
    pub body: Value,
}

impl Reply {
    /// The message text (`None` for modals and empty content).
    #[must_use]
    pub fn content(&self) -> Option<&str> {
        self.body
            .get("content")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
    }

    /// Whether only the invoking user sees it (`flags` has `EPHEMERAL`).
    #[must_use]
    pub fn is_ephemeral(&self) -> bool {
        self.body.get("flags").and_then(Value::as_u64).unwrap_or(0) & EPHEMERAL != 0
    }

    /// Every component `custom_id` in the message or modal, depth first.
    #[must_use]
    pub fn custom_ids(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect_components(&self.body, &mut |c| {
            if let Some(id) = c.get("custom_id").and_then(Value::as_str) {
                out.push(id.to_owned());
            }
        });
        out
    }

    /// The component with this `custom_id`.
    #[must_use]
    pub fn component(&self, custom_id: &str) -> Option<&Value> {
        find_component(&self.body, custom_id)
    }

    /// The modal's `custom_id` (for [`ReplyKind::Modal`]).
    #[must_use]
    pub fn modal_id(&self) -> Option<&str> {
        (self.kind == ReplyKind::Modal)
            .then(|| self.body.get("custom_id").and_then(Value::as_str))
            .flatten()
    }
}

fn collect_components<'a>(value: &'a Value, f: &mut impl FnMut(&'a Value)) {
    if let Some(list) = value.get("components").and_then(Value::as_array) {
        for c in list {
            f(c);
            collect_components(c, f);
        }
    }
}

fn find_component<'a>(value: &'a Value, custom_id: &str) -> Option<&'a Value> {
    let mut found = None;
    collect_components(value, &mut |c| {
        if found.is_none() && c.get("custom_id").and_then(Value::as_str) == Some(custom_id) {
            found = Some(c);
        }
    });
    found
}

/// Where the options of `cmd` are declared: the command, or the subcommand invoked.
fn declared_options(registered: &Value, cmd: &SlashCommand) -> Result<Value, FakeError> {
    let Some(sub) = &cmd.subcommand else {
        return Ok(registered.clone());
    };
    registered
        .get("options")
        .and_then(Value::as_array)
        .and_then(|os| {
            os.iter().find(|o| {
                o.get("name").and_then(Value::as_str) == Some(sub.as_str())
                    && o.get("type").and_then(Value::as_u64) == Some(1)
            })
        })
        .cloned()
        .ok_or_else(|| FakeError::Invalid(format!("/{} has no subcommand {sub:?}", cmd.name)))
}

/// A slash command as a user would type it. Option types come from the registered command.
#[derive(Debug, Clone, PartialEq)]
pub struct SlashCommand {
    pub guild_id: u64,
    pub user_id: u64,
    pub name: String,
    /// The subcommand invoked (`/admin grant`), whose options `options` are.
    pub subcommand: Option<String>,
    /// `(name, value)`; strings, integers, booleans, numbers, role/user ids as strings, or
    /// for an attachment the id [`FakeDiscord::upload`](super::FakeDiscord::upload) gave.
    pub options: Vec<(String, Value)>,
}

impl SlashCommand {
    #[must_use]
    pub fn new(guild_id: u64, user_id: u64, name: &str) -> Self {
        Self {
            guild_id,
            user_id,
            name: name.to_owned(),
            subcommand: None,
            options: Vec::new(),
        }
    }

    /// Invokes a subcommand of the command.
    #[must_use]
    pub fn subcommand(mut self, name: &str) -> Self {
        self.subcommand = Some(name.to_owned());
        self
    }

    #[must_use]
    pub fn option(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.options.push((name.to_owned(), value.into()));
        self
    }
}

#[derive(Debug)]
pub(crate) struct InteractionRec {
    id: u64,
    kind: u8,
    channel_id: u64,
    created: Instant,
    callback: Option<Value>,
    /// Flags a deferred reply (type 5) was created with; they stick to the later edit.
    deferred_flags: u64,
    /// The message `@original` refers to: the reply, or for components the clicked message.
    original: Option<Value>,
    /// Whether the interaction came from a message (components; modals opened by them).
    has_message: bool,
    followups: Vec<Value>,
    pub replies: Vec<Reply>,
}

/// Interactions by token (the path key of every callback and webhook route).
#[derive(Debug, Default)]
pub(crate) struct Interactions {
    by_token: HashMap<String, InteractionRec>,
}

impl Interactions {
    pub(crate) fn replies(&self, token: &str) -> Option<&[Reply]> {
        self.by_token.get(token).map(|r| r.replies.as_slice())
    }
}

/// The outcome of a REST handler: a JSON body with a status, or 204.
#[derive(Debug)]
pub(crate) enum Answer {
    Json(u16, Value),
    NoContent,
}

impl State {
    fn member_for(&self, guild_id: u64, user_id: u64) -> Result<&Guild, FakeError> {
        let guild = self
            .model
            .guilds
            .get(&guild_id)
            .ok_or(FakeError::UnknownGuild(guild_id))?;
        if guild.members.contains_key(&user_id) {
            Ok(guild)
        } else {
            Err(FakeError::UnknownMember {
                guild: guild_id,
                user: user_id,
            })
        }
    }

    /// Records and dispatches an `INTERACTION_CREATE`.
    fn create_interaction(
        &mut self,
        kind: u8,
        guild_id: u64,
        user_id: u64,
        data: Value,
        message: Option<Value>,
    ) -> Result<InteractionHandle, FakeError> {
        self.create_interaction_in(kind, guild_id, user_id, data, message, None)
    }

    /// As [`Self::create_interaction`]; with `dm`, in the bot's DM channel with the user, as
    /// Discord sends it there: no `guild_id` or `member`, the `user` instead, and the
    /// bot-DM context. `guild_id` only says where to find the user.
    fn create_interaction_in(
        &mut self,
        kind: u8,
        guild_id: u64,
        user_id: u64,
        data: Value,
        message: Option<Value>,
        dm: Option<u64>,
    ) -> Result<InteractionHandle, FakeError> {
        let id = self.model.next_id();
        let token = format!("fake-token-{id}");
        let guild = self.member_for(guild_id, user_id)?;
        let member = guild
            .members
            .get(&user_id)
            .ok_or(FakeError::UnknownMember {
                guild: guild_id,
                user: user_id,
            })?;
        let base = InteractionBase {
            id,
            kind,
            token: &token,
            application_id: self.model.application_id,
            guild,
            member,
            bot_id: self.model.bot.id,
        };
        let mut payload = payloads::interaction(&base, data);
        if let Some(m) = &message {
            payload["message"] = m.clone();
        }
        let mut channel_id = guild.channel_id;
        if let (Some(dm), Some(fields)) = (dm, payload.as_object_mut()) {
            for field in ["guild_id", "guild", "guild_locale"] {
                fields.remove(field);
            }
            if let Some(user) = fields
                .remove("member")
                .and_then(|mut m| m.get_mut("user").map(Value::take))
            {
                fields.insert("user".into(), user);
            }
            fields.insert("channel_id".into(), json!(dm.to_string()));
            fields.insert("channel".into(), json!({ "id": dm.to_string(), "type": 1 }));
            fields.insert("context".into(), json!(1));
            channel_id = dm;
        }
        let seq = self.dispatch("INTERACTION_CREATE", payload)?;
        self.interactions.by_token.insert(
            token.clone(),
            InteractionRec {
                id,
                kind,
                channel_id,
                created: Instant::now(),
                callback: None,
                deferred_flags: 0,
                has_message: message.is_some(),
                original: message,
                followups: Vec::new(),
                replies: Vec::new(),
            },
        );
        Ok(InteractionHandle {
            id,
            token,
            guild_id,
            user_id,
            seq,
        })
    }

    /// The registered command (guild first, then global) a user can invoke by this name.
    pub(crate) fn find_command(&self, guild_id: u64, name: &str) -> Option<&Value> {
        [Some(guild_id), None]
            .iter()
            .filter_map(|scope| self.model.commands.get(scope))
            .flatten()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
    }

    pub(crate) fn slash_command(
        &mut self,
        cmd: &SlashCommand,
    ) -> Result<InteractionHandle, FakeError> {
        let registered = self
            .find_command(cmd.guild_id, &cmd.name)
            .cloned()
            .ok_or_else(|| FakeError::UnknownCommand(cmd.name.clone()))?;
        let guild = self.member_for(cmd.guild_id, cmd.user_id)?;
        let mut options = Vec::new();
        let mut resolved_roles = Map::new();
        let mut resolved_users = Map::new();
        let mut resolved_members = Map::new();
        let mut resolved_attachments = Map::new();
        let declared_in = declared_options(&registered, cmd)?;
        for (name, value) in &cmd.options {
            let declared = declared_in
                .get("options")
                .and_then(Value::as_array)
                .and_then(|os| {
                    os.iter()
                        .find(|o| o.get("name").and_then(Value::as_str) == Some(name))
                })
                .ok_or_else(|| {
                    FakeError::Invalid(format!("/{} has no option {name:?}", cmd.name))
                })?;
            let kind = declared.get("type").and_then(Value::as_u64).unwrap_or(3);
            let id = value
                .as_str()
                .and_then(|s| s.parse::<u64>().ok())
                .or_else(|| value.as_u64());
            match (kind, id) {
                (8, Some(role)) => {
                    let r = guild
                        .roles
                        .get(&role)
                        .ok_or_else(|| FakeError::Invalid(format!("unknown role {role}")))?;
                    resolved_roles.insert(role.to_string(), payloads::role(r));
                }
                (6, Some(user)) => {
                    let m = guild.members.get(&user).ok_or(FakeError::UnknownMember {
                        guild: guild.id,
                        user,
                    })?;
                    resolved_users.insert(user.to_string(), payloads::user(&m.user));
                    let mut partial = payloads::interaction_member(guild, m);
                    if let Some(o) = partial.as_object_mut() {
                        o.remove("user");
                    }
                    resolved_members.insert(user.to_string(), partial);
                }
                (11, Some(file)) => {
                    let upload = self.model.uploads.get(&file).ok_or_else(|| {
                        FakeError::Invalid(format!("no upload {file}: FakeDiscord::upload first"))
                    })?;
                    resolved_attachments.insert(
                        file.to_string(),
                        super::files::attachment(file, upload, &self.rest_url),
                    );
                }
                _ => {}
            }
            let value = match (kind, id) {
                (6..=9 | 11, Some(id)) => json!(id.to_string()),
                _ => value.clone(),
            };
            options.push(json!({ "name": name, "type": kind, "value": value }));
        }
        let mut data = json!({
            "id": registered.get("id").cloned().unwrap_or(Value::Null),
            "name": cmd.name,
            "type": registered.get("type").cloned().unwrap_or(json!(1)),
            "guild_id": cmd.guild_id.to_string(),
            "options": match &cmd.subcommand {
                Some(sub) => json!([{ "name": sub, "type": 1, "options": options }]),
                None => Value::Array(options),
            },
        });
        let mut resolved = Map::new();
        for (key, map) in [
            ("roles", resolved_roles),
            ("users", resolved_users),
            ("members", resolved_members),
            ("attachments", resolved_attachments),
        ] {
            if !map.is_empty() {
                resolved.insert(key.to_owned(), Value::Object(map));
            }
        }
        if !resolved.is_empty() {
            data["resolved"] = Value::Object(resolved);
        }
        self.create_interaction(APPLICATION_COMMAND, cmd.guild_id, cmd.user_id, data, None)
    }

    pub(crate) fn click_component(
        &mut self,
        guild_id: u64,
        user_id: u64,
        on: &Reply,
        custom_id: &str,
        values: &[&str],
    ) -> Result<InteractionHandle, FakeError> {
        if on.kind == ReplyKind::Modal {
            return Err(FakeError::Invalid(
                "components of a modal are submitted, not clicked".into(),
            ));
        }
        let component = on.component(custom_id).ok_or_else(|| {
            FakeError::Invalid(format!("the message has no component {custom_id:?}"))
        })?;
        let component_type = component.get("type").and_then(Value::as_u64).unwrap_or(0);
        let guild = self.member_for(guild_id, user_id)?;
        let mut data = json!({ "custom_id": custom_id, "component_type": component_type });
        if component_type != 2 {
            data["values"] = json!(values);
            let ids = values.iter().filter_map(|v| v.parse::<u64>().ok());
            match component_type {
                6 => {
                    let mut roles = Map::new();
                    for id in ids {
                        let role = guild
                            .roles
                            .get(&id)
                            .ok_or_else(|| FakeError::Invalid(format!("unknown role {id}")))?;
                        roles.insert(id.to_string(), payloads::role(role));
                    }
                    data["resolved"] = json!({ "roles": roles });
                }
                5 => {
                    let mut users = Map::new();
                    for id in ids {
                        let m = guild.members.get(&id).ok_or(FakeError::UnknownMember {
                            guild: guild_id,
                            user: id,
                        })?;
                        users.insert(id.to_string(), payloads::user(&m.user));
                    }
                    data["resolved"] = json!({ "users": users });
                }
                _ => {}
            }
        }
        self.create_interaction(
            MESSAGE_COMPONENT,
            guild_id,
            user_id,
            data,
            Some(on.body.clone()),
        )
    }

    /// A user clicks a button of a message the bot sent them by DM (`on`).
    pub(crate) fn click_dm_button(
        &mut self,
        guild_id: u64,
        user_id: u64,
        on: &Value,
        custom_id: &str,
    ) -> Result<InteractionHandle, FakeError> {
        let found = on
            .get("components")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|row| row.get("components").and_then(Value::as_array))
            .flatten()
            .any(|c| c.get("custom_id").and_then(Value::as_str) == Some(custom_id));
        if !found {
            return Err(FakeError::Invalid(format!(
                "the message has no button {custom_id:?}"
            )));
        }
        let dm = self.model.dm_channel(user_id);
        let data = json!({ "custom_id": custom_id, "component_type": 2 });
        self.create_interaction_in(
            MESSAGE_COMPONENT,
            guild_id,
            user_id,
            data,
            Some(on.clone()),
            Some(dm),
        )
    }

    pub(crate) fn submit_modal(
        &mut self,
        guild_id: u64,
        user_id: u64,
        modal: &Reply,
        fields: &[(&str, &str)],
    ) -> Result<InteractionHandle, FakeError> {
        let custom_id = modal
            .modal_id()
            .ok_or_else(|| FakeError::Invalid("that reply is not a modal".into()))?;
        for (field, _) in fields {
            if modal.component(field).is_none() {
                return Err(FakeError::Invalid(format!(
                    "the modal has no input {field:?}"
                )));
            }
        }
        let mut rows = Vec::new();
        for row in modal
            .body
            .get("components")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mut inputs = Vec::new();
            for input in row
                .get("components")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let id = input
                    .get("custom_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let value = fields
                    .iter()
                    .find(|(f, _)| *f == id)
                    .map_or("", |(_, v)| *v);
                let required = input
                    .get("required")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                if required && value.is_empty() {
                    return Err(FakeError::Invalid(format!(
                        "input {id:?} is required: Discord would not let the user submit"
                    )));
                }
                inputs.push(json!({ "type": 4, "custom_id": id, "value": value }));
            }
            rows.push(json!({ "type": 1, "components": inputs }));
        }
        let data = json!({ "custom_id": custom_id, "components": rows });
        // A modal opened from a component carries that message along.
        let message = self
            .interactions
            .by_token
            .values()
            .find(|r| r.replies.iter().any(|reply| reply == modal))
            .and_then(|r| r.has_message.then(|| r.original.clone()).flatten());
        self.create_interaction(MODAL_SUBMIT, guild_id, user_id, data, message)
    }

    /// `POST /interactions/{id}/{token}/callback`.
    pub(crate) fn interaction_callback(
        &mut self,
        shared: &Shared,
        id: u64,
        token: &str,
        body: &Value,
    ) -> Result<Answer, ApiError> {
        let model: &mut Model = &mut self.model;
        let rec = self
            .interactions
            .by_token
            .get_mut(token)
            .filter(|r| r.id == id)
            .ok_or_else(ApiError::unknown_interaction)?;
        if rec.callback.is_some() {
            return Err(ApiError::already_acknowledged());
        }
        if rec.created.elapsed() > shared.config.interaction_deadline {
            return Err(ApiError::unknown_interaction());
        }
        let kind = body.get("type").and_then(Value::as_u64).unwrap_or(0);
        let allowed: &[u64] = match rec.kind {
            APPLICATION_COMMAND => &[4, 5, 9],
            MESSAGE_COMPONENT => &[4, 5, 6, 7, 9],
            MODAL_SUBMIT if rec.has_message => &[4, 5, 6, 7],
            MODAL_SUBMIT => &[4, 5],
            _ => &[],
        };
        if !allowed.contains(&kind) {
            return Err(ApiError::invalid_form_body(&[(
                "type".into(),
                format!(
                    "Interaction callback type {kind} is not valid for interaction type {}",
                    rec.kind
                ),
            )]));
        }
        let data = body.get("data").cloned().unwrap_or_else(|| json!({}));
        match kind {
            4 => {
                let message_kind = if rec.kind == APPLICATION_COMMAND {
                    payloads::MESSAGE_CHAT_INPUT_COMMAND
                } else {
                    payloads::MESSAGE_DEFAULT
                };
                let msg = payloads::message(
                    model.next_id(),
                    rec.channel_id,
                    &model.bot,
                    &data,
                    message_kind,
                    Some(model.application_id),
                );
                rec.original = Some(msg.clone());
                rec.replies.push(Reply {
                    kind: ReplyKind::Message,
                    body: msg,
                });
            }
            5 => {
                rec.deferred_flags = data.get("flags").and_then(Value::as_u64).unwrap_or(0);
                rec.original = None;
            }
            7 => {
                if let Some(msg) = rec.original.as_mut() {
                    payloads::edit_message(msg, &data);
                    rec.replies.push(Reply {
                        kind: ReplyKind::UpdateMessage,
                        body: msg.clone(),
                    });
                }
            }
            9 => rec.replies.push(Reply {
                kind: ReplyKind::Modal,
                body: data,
            }),
            // 6: deferred update, nothing visible yet.
            _ => {}
        }
        rec.callback = Some(body.clone());
        Ok(Answer::NoContent)
    }

    fn webhook(&mut self, application: u64, token: &str) -> Result<&mut InteractionRec, ApiError> {
        if application != self.model.application_id {
            return Err(ApiError::unknown_webhook());
        }
        self.interactions
            .by_token
            .get_mut(token)
            .filter(|r| r.callback.is_some())
            .ok_or_else(ApiError::unknown_webhook)
    }

    /// `GET`/`PATCH`/`DELETE /webhooks/{app}/{token}/messages/@original`.
    pub(crate) fn original_message(
        &mut self,
        method: &str,
        application: u64,
        token: &str,
        body: &Value,
    ) -> Result<Answer, ApiError> {
        let next_id = self.model.next_id();
        let bot = self.model.bot.clone();
        let app = self.model.application_id;
        let rec = self.webhook(application, token)?;
        match method {
            "GET" => rec
                .original
                .clone()
                .map(|m| Answer::Json(200, m))
                .ok_or_else(ApiError::unknown_message),
            "DELETE" => rec
                .original
                .take()
                .map(|_| Answer::NoContent)
                .ok_or_else(ApiError::unknown_message),
            _ => {
                let msg = if let Some(msg) = rec.original.as_mut() {
                    payloads::edit_message(msg, body);
                    msg.clone()
                } else {
                    let mut body = body.clone();
                    body["flags"] = json!(rec.deferred_flags);
                    let kind = if rec.kind == APPLICATION_COMMAND {
                        payloads::MESSAGE_CHAT_INPUT_COMMAND
                    } else {
                        payloads::MESSAGE_DEFAULT
                    };
                    let msg =
                        payloads::message(next_id, rec.channel_id, &bot, &body, kind, Some(app));
                    rec.original = Some(msg.clone());
                    msg
                };
                rec.replies.push(Reply {
                    kind: ReplyKind::EditOriginal,
                    body: msg.clone(),
                });
                Ok(Answer::Json(200, msg))
            }
        }
    }

    /// `POST /webhooks/{app}/{token}`: a follow-up message.
    pub(crate) fn followup(
        &mut self,
        application: u64,
        token: &str,
        body: &Value,
    ) -> Result<Answer, ApiError> {
        let next_id = self.model.next_id();
        let bot = self.model.bot.clone();
        let app = self.model.application_id;
        let rec = self.webhook(application, token)?;
        let msg = payloads::message(
            next_id,
            rec.channel_id,
            &bot,
            body,
            payloads::MESSAGE_DEFAULT,
            Some(app),
        );
        rec.followups.push(msg.clone());
        rec.replies.push(Reply {
            kind: ReplyKind::Followup,
            body: msg.clone(),
        });
        Ok(Answer::Json(200, msg))
    }

    /// `GET`/`PATCH`/`DELETE /webhooks/{app}/{token}/messages/{id}` of a follow-up.
    pub(crate) fn followup_message(
        &mut self,
        method: &str,
        application: u64,
        token: &str,
        message_id: &str,
        body: &Value,
    ) -> Result<Answer, ApiError> {
        let rec = self.webhook(application, token)?;
        let index = rec
            .followups
            .iter()
            .position(|m| m.get("id").and_then(Value::as_str) == Some(message_id))
            .ok_or_else(ApiError::unknown_message)?;
        match method {
            "GET" => Ok(Answer::Json(200, rec.followups[index].clone())),
            "DELETE" => {
                rec.followups.remove(index);
                Ok(Answer::NoContent)
            }
            _ => {
                let msg = &mut rec.followups[index];
                payloads::edit_message(msg, body);
                let msg = msg.clone();
                rec.replies.push(Reply {
                    kind: ReplyKind::EditFollowup,
                    body: msg.clone(),
                });
                Ok(Answer::Json(200, msg))
            }
        }
    }
}
