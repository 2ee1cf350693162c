//! The other half of the contract: everything the fake sends must parse with serenity's own
//! model types, because serenity silently drops a dispatch it cannot parse (it becomes
//! `Event::Unknown`). [`parse_with_serenity`] does one check; [`sample_payloads`] produces one
//! instance of every payload shape the fake can send, for a unit test.

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use serenity::http::DiscordJsonError;
use serenity::model::application::{Command, CurrentApplicationInfo};
use serenity::model::channel::{Channel, Message, PrivateChannel};
use serenity::model::event::{Event, GatewayEvent};
use serenity::model::gateway::{BotGateway, Gateway};
use serenity::model::guild::{Member, Role};
use serenity::model::user::CurrentUser;

use super::faults::rate_limit_response;
use super::interactions::{APPLICATION_COMMAND, MESSAGE_COMPONENT, MODAL_SUBMIT};
use super::model::{
    ChannelOverwrite, GuildSpec, INTENT_GUILD_MEMBERS, INTENT_GUILDS, MANAGE_ROLES, MemberSpec,
    Model, RoleSpec,
};
use super::payloads::{self, ApiError, InteractionBase};

/// Which serenity type a payload must deserialize into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// A gateway frame, as `GatewayEvent`; a dispatch must not come out as `Event::Unknown`.
    GatewayFrame,
    CurrentUser,
    /// `GET /oauth2/applications/@me` (`docobo invite` asks it for the application id).
    CurrentApplication,
    Member,
    Members,
    Roles,
    Command,
    Commands,
    Message,
    PrivateChannel,
    /// `GET /channels/{id}`.
    Channel,
    Gateway,
    BotGateway,
    /// A Discord error body (`DiscordJsonError`, which requires `code`).
    Error,
    /// A 429 body: serenity's rate limiter reads `retry_after` as a float.
    RateLimit,
}

impl PayloadKind {
    /// The payload kind of a REST answer, by operation and status.
    #[must_use]
    pub fn of_response(operation_id: &str, status: u16) -> Option<Self> {
        if status == 429 {
            return Some(Self::RateLimit);
        }
        if status >= 400 {
            return Some(Self::Error);
        }
        Some(match operation_id {
            "get_gateway" => Self::Gateway,
            "get_bot_gateway" => Self::BotGateway,
            "get_my_user" => Self::CurrentUser,
            "get_my_oauth2_application" => Self::CurrentApplication,
            "get_guild_member" => Self::Member,
            "list_guild_members" => Self::Members,
            "list_guild_roles" => Self::Roles,
            "create_application_command" | "create_guild_application_command" => Self::Command,
            "bulk_set_application_commands"
            | "bulk_set_guild_application_commands"
            | "list_application_commands"
            | "list_guild_application_commands" => Self::Commands,
            "get_original_webhook_message"
            | "update_original_webhook_message"
            | "execute_webhook"
            | "get_webhook_message"
            | "update_webhook_message"
            | "create_message" => Self::Message,
            "create_dm" => Self::PrivateChannel,
            "get_channel" => Self::Channel,
            _ => return None,
        })
    }
}

fn de<T: DeserializeOwned>(value: &Value) -> Result<T, String> {
    T::deserialize(value).map_err(|e| e.to_string())
}

/// Deserializes `value` as serenity would.
///
/// # Errors
///
/// serenity's error message, or for a dispatch that fell through to `Event::Unknown`, its type.
pub fn parse_with_serenity(kind: PayloadKind, value: &Value) -> Result<(), String> {
    match kind {
        PayloadKind::GatewayFrame => match de::<GatewayEvent>(value)? {
            GatewayEvent::Dispatch(_, Event::Unknown(unknown)) => Err(format!(
                "serenity cannot parse this {} and would drop it silently",
                unknown.kind
            )),
            _ => Ok(()),
        },
        PayloadKind::CurrentUser => de::<CurrentUser>(value).map(drop),
        PayloadKind::CurrentApplication => de::<CurrentApplicationInfo>(value).map(drop),
        PayloadKind::Member => de::<Member>(value).map(drop),
        PayloadKind::Members => de::<Vec<Member>>(value).map(drop),
        PayloadKind::Roles => de::<Vec<Role>>(value).map(drop),
        PayloadKind::Command => de::<Command>(value).map(drop),
        PayloadKind::Commands => de::<Vec<Command>>(value).map(drop),
        PayloadKind::Message => de::<Message>(value).map(drop),
        PayloadKind::PrivateChannel => de::<PrivateChannel>(value).map(drop),
        PayloadKind::Channel => de::<Channel>(value).map(drop),
        PayloadKind::Gateway => de::<Gateway>(value).map(drop),
        PayloadKind::BotGateway => de::<BotGateway>(value).map(drop),
        PayloadKind::Error => de::<DiscordJsonError>(value).map(drop),
        PayloadKind::RateLimit => value
            .get("retry_after")
            .and_then(Value::as_f64)
            .map(drop)
            .ok_or_else(|| "429 body without a numeric retry_after".to_owned()),
    }
}

/// One named payload the fake can send.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplePayload {
    pub name: &'static str,
    pub kind: PayloadKind,
    pub value: Value,
}

/// One instance of every payload shape the fake sends (gateway frames, REST bodies, errors),
/// built by the same functions the fake uses.
#[must_use]
#[allow(clippy::too_many_lines)]
pub fn sample_payloads() -> Vec<SamplePayload> {
    const GUILD: u64 = 2000;
    const ROLE: u64 = 3000;
    const USER: u64 = 4000;
    let joined = payloads::timestamp_now();
    let mut model = Model::new(1000, "docobo", 1000);
    model.add_guild(
        &GuildSpec::new(GUILD, "Sample")
            .role(RoleSpec::new(ROLE, "Supporter", 1, 0))
            .role(RoleSpec::new(3001, "Docobo", 2, MANAGE_ROLES).managed())
            .member(MemberSpec::new(USER, "buyer").roles(&[ROLE]))
            .bot_roles(&[3001])
            .overwrite(ChannelOverwrite::role(GUILD, 0, 1 << 11))
            .overwrite(ChannelOverwrite::member(1000, 1 << 11, 0)),
        &joined,
    );
    let mut out = Vec::new();
    let mut push = |name, kind, value| out.push(SamplePayload { name, kind, value });
    let Some(guild) = model.guilds.get(&GUILD) else {
        return Vec::new();
    };
    let Some(member) = guild.members.get(&USER) else {
        return Vec::new();
    };
    let frame = |event: &str, d: Value| payloads::dispatch_frame(7, event, d);

    push("HELLO", PayloadKind::GatewayFrame, payloads::hello(41_250));
    push(
        "GET /channels/{id}",
        PayloadKind::Channel,
        payloads::text_channel(guild),
    );
    push(
        "HEARTBEAT_ACK",
        PayloadKind::GatewayFrame,
        payloads::heartbeat_ack(),
    );
    push(
        "INVALID_SESSION",
        PayloadKind::GatewayFrame,
        payloads::invalid_session(false),
    );
    push(
        "RECONNECT",
        PayloadKind::GatewayFrame,
        payloads::reconnect(),
    );
    push(
        "READY",
        PayloadKind::GatewayFrame,
        frame(
            "READY",
            payloads::ready(
                &model,
                &[GUILD],
                "s",
                "ws://127.0.0.1:1/gateway",
                &json!([0, 1]),
            ),
        ),
    );
    push(
        "RESUMED",
        PayloadKind::GatewayFrame,
        frame("RESUMED", json!({ "_trace": [] })),
    );
    push(
        "GUILD_CREATE (GUILDS)",
        PayloadKind::GatewayFrame,
        frame(
            "GUILD_CREATE",
            payloads::guild_create(guild, 1000, INTENT_GUILDS, &joined),
        ),
    );
    push(
        "GUILD_CREATE (GUILDS | GUILD_MEMBERS)",
        PayloadKind::GatewayFrame,
        frame(
            "GUILD_CREATE",
            payloads::guild_create(guild, 1000, INTENT_GUILDS | INTENT_GUILD_MEMBERS, &joined),
        ),
    );
    push(
        "GUILD_MEMBER_ADD",
        PayloadKind::GatewayFrame,
        frame("GUILD_MEMBER_ADD", payloads::member_add(GUILD, member)),
    );
    push(
        "GUILD_MEMBER_UPDATE",
        PayloadKind::GatewayFrame,
        frame(
            "GUILD_MEMBER_UPDATE",
            payloads::member_update(GUILD, member),
        ),
    );
    push(
        "GUILD_MEMBER_REMOVE",
        PayloadKind::GatewayFrame,
        frame(
            "GUILD_MEMBER_REMOVE",
            payloads::member_remove(GUILD, &member.user),
        ),
    );

    let base = |kind| InteractionBase {
        id: 5000,
        kind,
        token: "fake-token-5000",
        application_id: 1000,
        guild,
        member,
        bot_id: 1000,
    };
    let role = guild
        .roles
        .get(&ROLE)
        .map(payloads::role)
        .unwrap_or_default();
    let components = json!([
        { "type": 1, "components": [
            { "type": 2, "style": 1, "custom_id": "buy", "label": "Buy" }
        ]},
        { "type": 1, "components": [
            { "type": 6, "custom_id": "setup:roles", "min_values": 1, "max_values": 5 }
        ]},
        { "type": 1, "components": [
            { "type": 3, "custom_id": "provider", "options": [
                { "label": "Polar", "value": "polar" }
            ]}
        ]}
    ]);
    let reply = payloads::message(
        6000,
        guild.channel_id,
        &model.bot,
        &json!({ "content": "Pick roles", "flags": 64, "components": components }),
        payloads::MESSAGE_CHAT_INPUT_COMMAND,
        Some(1000),
    );
    push(
        "INTERACTION_CREATE slash command",
        PayloadKind::GatewayFrame,
        frame(
            "INTERACTION_CREATE",
            payloads::interaction(
                &base(APPLICATION_COMMAND),
                json!({
                    "id": "7000", "name": "setup", "type": 1, "guild_id": GUILD.to_string(),
                    "options": [
                        { "name": "price", "type": 4, "value": 5 },
                        { "name": "role", "type": 8, "value": ROLE.to_string() }
                    ],
                    "resolved": { "roles": { ROLE.to_string(): role.clone() } }
                }),
            ),
        ),
    );
    let with_message = |mut v: Value| {
        v["message"] = reply.clone();
        v
    };
    push(
        "INTERACTION_CREATE button",
        PayloadKind::GatewayFrame,
        frame(
            "INTERACTION_CREATE",
            with_message(payloads::interaction(
                &base(MESSAGE_COMPONENT),
                json!({ "custom_id": "buy", "component_type": 2 }),
            )),
        ),
    );
    push(
        "INTERACTION_CREATE role select",
        PayloadKind::GatewayFrame,
        frame(
            "INTERACTION_CREATE",
            with_message(payloads::interaction(
                &base(MESSAGE_COMPONENT),
                json!({
                    "custom_id": "setup:roles", "component_type": 6,
                    "values": [ROLE.to_string()],
                    "resolved": { "roles": { ROLE.to_string(): role } }
                }),
            )),
        ),
    );
    push(
        "INTERACTION_CREATE string select",
        PayloadKind::GatewayFrame,
        frame(
            "INTERACTION_CREATE",
            with_message(payloads::interaction(
                &base(MESSAGE_COMPONENT),
                json!({ "custom_id": "provider", "component_type": 3, "values": ["polar"] }),
            )),
        ),
    );
    let modal_data = json!({
        "custom_id": "prices",
        "components": [{ "type": 1, "components": [
            { "type": 4, "custom_id": "price:3000", "value": "5.00" }
        ]}]
    });
    push(
        "INTERACTION_CREATE modal submit",
        PayloadKind::GatewayFrame,
        frame(
            "INTERACTION_CREATE",
            payloads::interaction(&base(MODAL_SUBMIT), modal_data.clone()),
        ),
    );
    push(
        "INTERACTION_CREATE modal submit from a message",
        PayloadKind::GatewayFrame,
        frame(
            "INTERACTION_CREATE",
            with_message(payloads::interaction(&base(MODAL_SUBMIT), modal_data)),
        ),
    );

    push(
        "GET /users/@me",
        PayloadKind::CurrentUser,
        payloads::current_user(&model.bot),
    );
    push(
        "GET /oauth2/applications/@me",
        PayloadKind::CurrentApplication,
        payloads::current_application(model.application_id, &model.bot),
    );
    push("GET member", PayloadKind::Member, payloads::member(member));
    push(
        "GET members",
        PayloadKind::Members,
        Value::Array(guild.members.values().map(payloads::member).collect()),
    );
    push(
        "GET roles",
        PayloadKind::Roles,
        Value::Array(guild.roles.values().map(payloads::role).collect()),
    );
    let command_body = json!({
        "name": "setup", "description": "Set up paid roles", "type": 1,
        "default_member_permissions": "32",
        "options": [{ "type": 4, "name": "price", "description": "Price", "required": true }]
    });
    let command = payloads::command(&command_body, 7000, 7001, 1000, Some(GUILD));
    push("command", PayloadKind::Command, command.clone());
    push("commands", PayloadKind::Commands, json!([command]));
    push(
        "interaction reply message",
        PayloadKind::Message,
        reply.clone(),
    );
    let mut edited = reply;
    payloads::edit_message(
        &mut edited,
        &json!({ "content": "Saved", "components": [] }),
    );
    push("edited message", PayloadKind::Message, edited);
    push(
        "DM message",
        PayloadKind::Message,
        payloads::message(
            6001,
            6002,
            &model.bot,
            &json!({ "content": "Thanks!" }),
            payloads::MESSAGE_DEFAULT,
            None,
        ),
    );
    push(
        "DM channel",
        PayloadKind::PrivateChannel,
        payloads::dm_channel(6002, &member.user),
    );
    push(
        "GET /gateway",
        PayloadKind::Gateway,
        json!({ "url": "ws://127.0.0.1:1/gateway" }),
    );
    push(
        "GET /gateway/bot",
        PayloadKind::BotGateway,
        json!({
            "url": "ws://127.0.0.1:1/gateway", "shards": 1,
            "session_start_limit": {
                "total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1
            }
        }),
    );
    for (name, error) in [
        ("401", ApiError::unauthorized()),
        ("10007", ApiError::unknown_member()),
        ("10011", ApiError::unknown_role()),
        ("10062", ApiError::unknown_interaction()),
        ("40060", ApiError::already_acknowledged()),
        ("50013", ApiError::missing_permissions()),
        (
            "50035",
            ApiError::invalid_form_body(&[("content".into(), "Must be 2000 or fewer".into())]),
        ),
    ] {
        push(name, PayloadKind::Error, error.body());
    }
    push(
        "429",
        PayloadKind::RateLimit,
        rate_limit_response(1.5, false).2,
    );
    out
}
