//! A loopback fake Discord that real serenity 0.12.5 connects to: REST under
//! `http://127.0.0.1:P/api/v10` and a `ws://` gateway, sharing one in-memory model.
//!
//! [`FakeDiscord`] is the handle tests hold: it starts both servers, builds serenity clients
//! pointed at them, pushes gateway events as a user would cause them, and exposes the model,
//! the request log, injected faults and the contract checks.
//!
//! # Layout
//!
//! - `model`: guilds, roles, members, commands, messages; Discord's role-change rules.
//! - `payloads`: the JSON shapes the fake sends, and Discord's error bodies.
//! - `gateway`: the WebSocket server and the session (sequence numbers, RESUME).
//! - `rest`: the HTTP server, request log and routes.
//! - `interactions`: `INTERACTION_CREATE` builders and the callback/webhook routes.
//! - `faults`: per-route fault rules; [`FakeDiscord::set_silent`] makes the whole fake hang.
//! - `schema`: request bodies checked against Discord's `OpenAPI` spec.
//! - `check`: payloads checked against serenity's model types.

mod check;
mod faults;
mod files;
mod gateway;
mod interactions;
mod model;
mod payloads;
mod rest;
mod schema;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;
use serenity::all::{Client, ClientBuilder, GatewayIntents, Http, HttpBuilder, ShardManager};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use check::{PayloadKind, SamplePayload, parse_with_serenity, sample_payloads};
pub use faults::{Fault, FaultRule};
pub use gateway::{GatewayStats, ResumePolicy};
pub use interactions::{EPHEMERAL, InteractionHandle, Reply, ReplyKind, SlashCommand};
pub use model::{
    ADMINISTRATOR, ChannelOverwrite, DEFAULT_EVERYONE, GuildSpec, INTENT_GUILD_MEMBERS,
    INTENT_GUILDS, KICK_MEMBERS, MANAGE_ROLES, MemberSpec, PRIVILEGED_INTENTS, RoleSpec,
    SentMessage,
};
pub use payloads::ApiError;
pub use rest::LoggedRequest;
pub use schema::{OPENAPI_ENV, SchemaViolation, default_openapi_path};

use gateway::GatewayState;
use interactions::Interactions;
use model::Model;

/// Errors from the fake's test-facing API.
#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    #[error("cannot bind a loopback socket: {0}")]
    Bind(#[source] std::io::Error),
    #[error("Discord's OpenAPI spec: {0}")]
    Spec(String),
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    #[error("no gateway session: the bot has not identified yet (or its session was invalidated)")]
    NoSession,
    #[error("unknown guild {0}")]
    UnknownGuild(u64),
    #[error("user {user} is not a member of guild {guild}")]
    UnknownMember { guild: u64, user: u64 },
    #[error("role {role} does not exist in guild {guild}")]
    UnknownRole { guild: u64, role: u64 },
    #[error("unknown interaction (was it dispatched by this fake?)")]
    UnknownInteraction,
    #[error("command /{0} is not registered (global or in the guild)")]
    UnknownCommand(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the serenity client task failed: {0}")]
    ClientTask(String),
}

/// Settings fixed at start.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub token: String,
    pub bot_id: u64,
    pub bot_name: String,
    pub application_id: u64,
    pub heartbeat_interval: Duration,
    pub interaction_deadline: Duration,
    /// Privileged intents "enabled in the Developer Portal".
    pub privileged_intents: u64,
    /// The shard count `GET /gateway/bot` recommends, and the only one IDENTIFY accepts.
    pub shards: u32,
}

/// Everything mutable, behind one lock so a REST role change and its gateway dispatch happen
/// atomically. Never held across an `.await`.
#[derive(Debug)]
pub(crate) struct State {
    pub model: Model,
    pub gateway: GatewayState,
    pub interactions: Interactions,
    pub requests: Vec<LoggedRequest>,
    pub violations: Vec<SchemaViolation>,
    pub faults: Vec<FaultRule>,
    /// `joined_at` of the bot in every guild.
    pub joined_at: String,
    /// The REST server's base URL (attachment URLs point at it).
    pub rest_url: String,
}

/// Shared by the servers and the handle.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Bumped after every change, so waits wake up instead of polling.
    changed: watch::Sender<u64>,
    pub config: Config,
    pub spec: Arc<schema::Spec>,
    pub rest_url: String,
    pub gateway_url: String,
    pub started: Instant,
    /// A Discord that accepts connections and never answers (see [`FakeDiscord::set_silent`]).
    pub silent_rest: AtomicBool,
    pub silent_gateway: AtomicBool,
}

impl Shared {
    pub(crate) fn rest_silent(&self) -> bool {
        self.silent_rest.load(Ordering::Relaxed)
    }

    pub(crate) fn gateway_silent(&self) -> bool {
        self.silent_gateway.load(Ordering::Relaxed)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock (a bug in the fake) must not hide later assertions.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }
}

/// Configures and starts a [`FakeDiscord`].
#[derive(Debug, Clone)]
pub struct FakeDiscordBuilder {
    config: Config,
    guilds: Vec<GuildSpec>,
    openapi: Option<PathBuf>,
    silent: bool,
}

impl FakeDiscordBuilder {
    /// Starts hanging: REST and gateway connections are accepted and never answered (see
    /// [`FakeDiscord::set_silent`]).
    #[must_use]
    pub fn silent(mut self) -> Self {
        self.silent = true;
        self
    }

    /// The bot token the fake accepts (without `Bot `). Default `fake-bot-token`.
    #[must_use]
    pub fn token(mut self, token: &str) -> Self {
        token.clone_into(&mut self.config.token);
        self
    }

    /// The bot user. Default id 1000, name `docobo`.
    #[must_use]
    pub fn bot_user(mut self, id: u64, name: &str) -> Self {
        self.config.bot_id = id;
        name.clone_into(&mut self.config.bot_name);
        self
    }

    /// The application id (READY's `application.id`). Default 1000, like the bot user.
    #[must_use]
    pub fn application_id(mut self, id: u64) -> Self {
        self.config.application_id = id;
        self
    }

    /// A guild the bot is in from the start (in READY, then a `GUILD_CREATE`).
    #[must_use]
    pub fn guild(mut self, guild: GuildSpec) -> Self {
        self.guilds.push(guild);
        self
    }

    /// HELLO's `heartbeat_interval`. Default 41.25 s, as Discord; lower it to exercise
    /// heartbeats.
    #[must_use]
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.config.heartbeat_interval = interval;
        self
    }

    /// How many shards `GET /gateway/bot` recommends (Discord requires sharding past 2 500
    /// guilds). Default 1. With more, each shard's IDENTIFY must carry `[i, n]` with this `n`
    /// (else close 4010, or 4011 without a shard), gets its own session, READY and the
    /// `GUILD_CREATE`s of its guilds (`(guild_id >> 22) % n == i`); the other dispatches
    /// (member and role events, interactions) and the session controls (close, RECONNECT,
    /// RESUME policy) go to shard 0's session.
    #[must_use]
    pub fn shards(mut self, shards: u32) -> Self {
        self.config.shards = shards.max(1);
        self
    }

    /// How long after `INTERACTION_CREATE` the initial response is accepted. Default 3 s.
    #[must_use]
    pub fn interaction_deadline(mut self, deadline: Duration) -> Self {
        self.config.interaction_deadline = deadline;
        self
    }

    /// Privileged intents enabled for the app (others close IDENTIFY with 4014, and member
    /// listing needs `GUILD_MEMBERS`). Default: all enabled.
    #[must_use]
    pub fn privileged_intents(mut self, intents: u64) -> Self {
        self.config.privileged_intents = intents;
        self
    }

    /// Where Discord's `openapi.json` is. Default: [`default_openapi_path`].
    #[must_use]
    pub fn openapi_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.openapi = Some(path.into());
        self
    }

    /// Loads the spec (once per process), binds both servers on `127.0.0.1:0` and starts them.
    pub async fn start(self) -> Result<FakeDiscord, FakeError> {
        let path = self.openapi.unwrap_or_else(default_openapi_path);
        let spec = tokio::task::spawn_blocking(move || schema::load_shared(&path))
            .await
            .map_err(|e| FakeError::Spec(e.to_string()))?
            .map_err(FakeError::Spec)?;
        let rest = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(FakeError::Bind)?;
        let ws = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(FakeError::Bind)?;
        let rest_url = format!("http://{}", rest.local_addr().map_err(FakeError::Bind)?);
        let gateway_url = format!("ws://{}/gateway", ws.local_addr().map_err(FakeError::Bind)?);
        let config = self.config;
        let joined_at = payloads::timestamp_now();
        let mut model = Model::new(config.bot_id, &config.bot_name, config.application_id);
        for guild in &self.guilds {
            model.add_guild(guild, &joined_at);
        }
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                model,
                gateway: GatewayState::new(),
                interactions: Interactions::default(),
                requests: Vec::new(),
                violations: Vec::new(),
                faults: Vec::new(),
                joined_at,
                rest_url: rest_url.clone(),
            }),
            changed,
            config,
            spec,
            rest_url,
            gateway_url,
            started: Instant::now(),
            silent_rest: AtomicBool::new(self.silent),
            silent_gateway: AtomicBool::new(self.silent),
        });
        let tasks = vec![
            tokio::spawn(rest::serve(rest, Arc::clone(&shared))),
            tokio::spawn(gateway::serve(ws, Arc::clone(&shared))),
        ];
        Ok(FakeDiscord { shared, tasks })
    }
}

/// The running fake. Dropping it stops both servers; it panics on drop if schema violations
/// were recorded and never asserted or taken (so a bad request body cannot go unnoticed).
#[derive(Debug)]
pub struct FakeDiscord {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if std::thread::panicking() {
            return;
        }
        let violations = std::mem::take(&mut self.shared.lock().violations);
        assert!(
            violations.is_empty(),
            "the fake Discord saw request bodies that break Discord's OpenAPI schema:\n{}",
            list(&violations)
        );
    }
}

fn list(violations: &[SchemaViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("  - {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl FakeDiscord {
    /// A builder with the defaults (token `fake-bot-token`, bot and application id 1000).
    #[must_use]
    pub fn builder() -> FakeDiscordBuilder {
        FakeDiscordBuilder {
            config: Config {
                token: "fake-bot-token".to_owned(),
                bot_id: 1000,
                bot_name: "docobo".to_owned(),
                application_id: 1000,
                heartbeat_interval: Duration::from_millis(41_250),
                interaction_deadline: Duration::from_secs(3),
                privileged_intents: PRIVILEGED_INTENTS,
                shards: 1,
            },
            guilds: Vec::new(),
            openapi: None,
            silent: false,
        }
    }

    /// The value for serenity's `HttpBuilder::proxy`: `http://127.0.0.1:P` (serenity keeps
    /// `/api/v10`).
    #[must_use]
    pub fn rest_url(&self) -> &str {
        &self.shared.rest_url
    }

    /// `http://127.0.0.1:P/api/v10`, for plain HTTP clients.
    #[must_use]
    pub fn api_base(&self) -> String {
        format!("{}/api/v10", self.shared.rest_url)
    }

    /// `ws://127.0.0.1:Q/gateway`, what `GET /gateway` returns.
    #[must_use]
    pub fn gateway_url(&self) -> &str {
        &self.shared.gateway_url
    }

    #[must_use]
    pub fn token(&self) -> &str {
        &self.shared.config.token
    }

    #[must_use]
    pub fn bot_user_id(&self) -> u64 {
        self.shared.config.bot_id
    }

    #[must_use]
    pub fn application_id(&self) -> u64 {
        self.shared.config.application_id
    }

    // ---- serenity clients -------------------------------------------------------------

    /// A serenity `Http` for the fake's token: the proxy set to [`FakeDiscord::rest_url`], the
    /// rate limiter disabled (it would ignore the proxy), a reqwest client without environment
    /// proxies, and the application id preset (a client would otherwise learn it from READY).
    pub fn http(&self) -> Result<Http, FakeError> {
        self.http_with_token(self.token())
    }

    /// Like [`FakeDiscord::http`] with another token (e.g. a wrong one, for 401/4004).
    pub fn http_with_token(&self, token: &str) -> Result<Http, FakeError> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(FakeError::HttpClient)?;
        Ok(HttpBuilder::new(token)
            .application_id(self.application_id().into())
            .proxy(self.rest_url())
            .ratelimiter_disabled(true)
            .client(client)
            .build())
    }

    /// `ClientBuilder::new_with_http(self.http()?, intents)`; add handlers, then `.await` it.
    /// Do not call `ClientBuilder::token` on it: that replaces the `Http` and loses the proxy.
    pub fn client_builder(&self, intents: GatewayIntents) -> Result<ClientBuilder, FakeError> {
        Ok(ClientBuilder::new_with_http(self.http()?, intents))
    }

    // ---- gateway ----------------------------------------------------------------------

    /// Pushes a raw dispatch with the session's next sequence number; returns it.
    pub fn dispatch(&self, event: &str, data: Value) -> Result<u64, FakeError> {
        let seq = self.shared.lock().dispatch(event, data);
        self.shared.notify();
        seq
    }

    #[must_use]
    pub fn gateway_stats(&self) -> GatewayStats {
        self.shared.lock().gateway.stats.clone()
    }

    /// Waits until a gateway socket is identified or resumed (READY and the `GUILD_CREATE`s have
    /// been queued to it).
    pub async fn wait_for_ready(&self, timeout: Duration) -> Result<GatewayStats, FakeError> {
        self.wait_for_gateway("a live gateway session", timeout, |s| s.live)
            .await
    }

    /// Waits until the gateway counters satisfy `check`.
    pub async fn wait_for_gateway(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&GatewayStats) -> bool,
    ) -> Result<GatewayStats, FakeError> {
        self.wait_until(what, timeout, |state| {
            let stats = &state.gateway.stats;
            check(stats).then(|| stats.clone())
        })
        .await
    }

    /// Drops the live socket without a close frame (serenity then RESUMEs).
    #[must_use]
    pub fn drop_gateway(&self) -> bool {
        self.shared.lock().gateway.close_current(None, "")
    }

    /// Closes the live socket with a close code (e.g. 4004, 4014, 4000).
    #[must_use]
    pub fn close_gateway(&self, code: u16, reason: &str) -> bool {
        self.shared.lock().gateway.close_current(Some(code), reason)
    }

    /// Answers the next valid IDENTIFY with this close code instead of READY.
    pub fn close_next_identify(&self, code: u16, reason: &str) {
        self.shared.lock().gateway.close_next_identify = Some((code, reason.to_owned()));
    }

    /// Sends op 7 RECONNECT to the live socket.
    #[must_use]
    pub fn request_reconnect(&self) -> bool {
        self.shared
            .lock()
            .gateway
            .send_control(payloads::reconnect())
    }

    /// Sends op 9 `INVALID_SESSION` `false` and forgets the session (the bot must IDENTIFY).
    #[must_use]
    pub fn invalidate_session(&self) -> bool {
        let mut state = self.shared.lock();
        state.gateway.session = None;
        state.gateway.send_control(payloads::invalid_session(false))
    }

    pub fn set_resume_policy(&self, policy: ResumePolicy) {
        self.shared.lock().gateway.resume_policy = policy;
    }

    /// Whether heartbeats are acknowledged (off: serenity sees a zombie connection and reconnects).
    pub fn set_heartbeat_acks(&self, ack: bool) {
        self.shared.lock().gateway.ack_heartbeats = ack;
    }

    /// Every frame the fake sent, in order.
    #[must_use]
    pub fn sent_gateway_frames(&self) -> Vec<Value> {
        self.shared.lock().gateway.sent.clone()
    }

    /// Every frame the bot sent (tokens redacted).
    #[must_use]
    pub fn received_gateway_frames(&self) -> Vec<Value> {
        self.shared.lock().gateway.received.clone()
    }

    // ---- events a user or Discord causes ----------------------------------------------

    /// A user joins: the model gains the member; `GUILD_MEMBER_ADD` is dispatched if the session
    /// subscribed to `GUILD_MEMBERS`. Returns the sequence number, or `None` if not delivered.
    pub fn member_join(&self, guild_id: u64, member: MemberSpec) -> Result<Option<u64>, FakeError> {
        let mut state = self.shared.lock();
        let joined_at = payloads::timestamp_now();
        let guild = state
            .model
            .guilds
            .get_mut(&guild_id)
            .ok_or(FakeError::UnknownGuild(guild_id))?;
        let m = model::Member {
            user: model::User {
                id: member.user_id,
                username: member.username,
                bot: false,
            },
            roles: member.roles,
            joined_at,
        };
        let data = payloads::member_add(guild_id, &m);
        guild.members.insert(m.user.id, m);
        let seq = state.dispatch_if(INTENT_GUILD_MEMBERS, "GUILD_MEMBER_ADD", data);
        drop(state);
        self.shared.notify();
        seq
    }

    /// A user leaves: removed from the model; `GUILD_MEMBER_REMOVE` as for [`Self::member_join`].
    pub fn member_leave(&self, guild_id: u64, user_id: u64) -> Result<Option<u64>, FakeError> {
        let mut state = self.shared.lock();
        let guild = state
            .model
            .guilds
            .get_mut(&guild_id)
            .ok_or(FakeError::UnknownGuild(guild_id))?;
        let member = guild
            .members
            .remove(&user_id)
            .ok_or(FakeError::UnknownMember {
                guild: guild_id,
                user: user_id,
            })?;
        let data = payloads::member_remove(guild_id, &member.user);
        let seq = state.dispatch_if(INTENT_GUILD_MEMBERS, "GUILD_MEMBER_REMOVE", data);
        drop(state);
        self.shared.notify();
        seq
    }

    /// An admin drags a role to `position` (Server Settings → Roles): the model changes and
    /// `GUILD_ROLE_UPDATE` is dispatched (if the session has `GUILDS`).
    pub fn move_role(
        &self,
        guild_id: u64,
        role_id: u64,
        position: u16,
    ) -> Result<Option<u64>, FakeError> {
        let mut state = self.shared.lock();
        let guild = state
            .model
            .guilds
            .get_mut(&guild_id)
            .ok_or(FakeError::UnknownGuild(guild_id))?;
        let role = guild
            .roles
            .get_mut(&role_id)
            .ok_or(FakeError::UnknownRole {
                guild: guild_id,
                role: role_id,
            })?;
        role.position = position;
        let data =
            serde_json::json!({ "guild_id": guild_id.to_string(), "role": payloads::role(role) });
        let seq = state.dispatch_if(INTENT_GUILDS, "GUILD_ROLE_UPDATE", data);
        drop(state);
        self.shared.notify();
        seq
    }

    /// The bot is added to a new guild: `GUILD_CREATE` (if the session has `GUILDS`).
    pub fn join_guild(&self, guild: &GuildSpec) -> Result<Option<u64>, FakeError> {
        let mut state = self.shared.lock();
        let joined_at = payloads::timestamp_now();
        state.model.add_guild(guild, &joined_at);
        // Without a session the guild simply shows up in the next READY.
        let Some(intents) = state.gateway.session.as_ref().map(|s| s.intents) else {
            return Ok(None);
        };
        let data = state
            .model
            .guilds
            .get(&guild.id)
            .map(|g| payloads::guild_create(g, state.model.bot.id, intents, &joined_at))
            .ok_or(FakeError::UnknownGuild(guild.id))?;
        let seq = state.dispatch_if(INTENT_GUILDS, "GUILD_CREATE", data);
        drop(state);
        self.shared.notify();
        seq
    }

    // ---- interactions -----------------------------------------------------------------

    /// Dispatches the `INTERACTION_CREATE` for a user running a registered slash command.
    /// A file a user attaches to a command (an `Attachment` option takes the returned id);
    /// the bot downloads it from the URL Discord's CDN would give.
    pub fn upload(&self, filename: &str, bytes: impl Into<Vec<u8>>) -> u64 {
        let mut state = self.shared.lock();
        let id = state.model.next_id();
        state.model.uploads.insert(
            id,
            files::Upload {
                filename: filename.to_owned(),
                bytes: bytes.into(),
            },
        );
        id
    }

    /// The bytes of a file a message carries (its attachment object, as in a [`Reply`]'s
    /// `attachments`).
    #[must_use]
    pub fn attachment_bytes(&self, attachment: &Value) -> Option<Vec<u8>> {
        let id: u64 = attachment.get("id")?.as_str()?.parse().ok()?;
        self.shared
            .lock()
            .model
            .uploads
            .get(&id)
            .map(|u| u.bytes.clone())
    }

    pub fn slash_command(&self, command: &SlashCommand) -> Result<InteractionHandle, FakeError> {
        let handle = self.shared.lock().slash_command(command);
        self.shared.notify();
        handle
    }

    /// Waits for the command to be registered, runs it, and waits for the bot's first visible
    /// reply.
    pub async fn run_slash_command(
        &self,
        command: &SlashCommand,
        timeout: Duration,
    ) -> Result<Reply, FakeError> {
        let started = Instant::now();
        self.wait_for_command(Some(command.guild_id), &command.name, timeout)
            .await?;
        let handle = self.slash_command(command)?;
        self.await_reply(&handle, timeout.saturating_sub(started.elapsed()))
            .await
    }

    /// A user clicks a button or picks select values on a message the bot sent (`on`). The
    /// component type comes from the message; role selects get `resolved.roles`.
    pub fn click_component(
        &self,
        guild_id: u64,
        user_id: u64,
        on: &Reply,
        custom_id: &str,
        values: &[&str],
    ) -> Result<InteractionHandle, FakeError> {
        let handle = self
            .shared
            .lock()
            .click_component(guild_id, user_id, on, custom_id, values);
        self.shared.notify();
        handle
    }

    /// A user clicks a button on a message the bot sent them by DM (`on`, from
    /// [`Self::sent_messages`]); `guild_id` is a guild the user is in (where the fake finds
    /// them), not part of the interaction.
    pub fn click_dm_button(
        &self,
        guild_id: u64,
        user_id: u64,
        on: &SentMessage,
        custom_id: &str,
    ) -> Result<InteractionHandle, FakeError> {
        let handle = self
            .shared
            .lock()
            .click_dm_button(guild_id, user_id, &on.message, custom_id);
        self.shared.notify();
        handle
    }

    /// A user fills in and submits a modal the bot opened. Inputs not listed are sent empty
    /// (an error if they are `required`, as Discord's client would refuse).
    pub fn submit_modal(
        &self,
        guild_id: u64,
        user_id: u64,
        modal: &Reply,
        fields: &[(&str, &str)],
    ) -> Result<InteractionHandle, FakeError> {
        let handle = self
            .shared
            .lock()
            .submit_modal(guild_id, user_id, modal, fields);
        self.shared.notify();
        handle
    }

    /// Waits for the bot's first visible answer: a message (type 4, or the edit/follow-up after
    /// a defer), an updated message (type 7) or a modal (type 9).
    pub async fn await_reply(
        &self,
        handle: &InteractionHandle,
        timeout: Duration,
    ) -> Result<Reply, FakeError> {
        let mut replies = self.await_replies(handle, 1, timeout).await?;
        replies.truncate(1);
        replies.pop().ok_or(FakeError::UnknownInteraction)
    }

    /// Waits until the interaction has at least `count` visible answers; returns them all.
    pub async fn await_replies(
        &self,
        handle: &InteractionHandle,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<Reply>, FakeError> {
        let what = format!("{count} bot repl(y/ies) to interaction {}", handle.id);
        self.wait_until(&what, timeout, |state| {
            state
                .interactions
                .replies(&handle.token)
                .filter(|r| r.len() >= count)
                .map(<[Reply]>::to_vec)
        })
        .await
    }

    /// The answers so far.
    #[must_use]
    pub fn replies(&self, handle: &InteractionHandle) -> Vec<Reply> {
        self.shared
            .lock()
            .interactions
            .replies(&handle.token)
            .map(<[Reply]>::to_vec)
            .unwrap_or_default()
    }

    /// Waits for a command to be registered (in the guild, or globally with `None`; a guild
    /// lookup also finds global commands).
    pub async fn wait_for_command(
        &self,
        guild_id: Option<u64>,
        name: &str,
        timeout: Duration,
    ) -> Result<Value, FakeError> {
        self.wait_until(
            &format!("command /{name} to be registered"),
            timeout,
            |state| match guild_id {
                Some(g) => state.find_command(g, name).cloned(),
                None => state
                    .model
                    .commands
                    .get(&None)
                    .and_then(|cs| cs.iter().find(|c| c["name"] == name))
                    .cloned(),
            },
        )
        .await
    }

    /// Registered commands (as the fake returned them), global under `None`.
    #[must_use]
    pub fn commands(&self, guild_id: Option<u64>) -> Vec<Value> {
        self.shared
            .lock()
            .model
            .commands
            .get(&guild_id)
            .cloned()
            .unwrap_or_default()
    }

    // ---- the model --------------------------------------------------------------------

    /// The member's role ids (without `@everyone`), or `None` if not a member.
    #[must_use]
    pub fn member_roles(&self, guild_id: u64, user_id: u64) -> Option<Vec<u64>> {
        self.shared
            .lock()
            .model
            .guilds
            .get(&guild_id)
            .and_then(|g| g.members.get(&user_id))
            .map(|m| m.roles.clone())
    }

    /// Waits until the member has (`true`) or lacks (`false`) the role.
    pub async fn wait_for_member_role(
        &self,
        guild_id: u64,
        user_id: u64,
        role_id: u64,
        has: bool,
        timeout: Duration,
    ) -> Result<(), FakeError> {
        let what = format!(
            "member {user_id} of guild {guild_id} to {} role {role_id}",
            if has { "have" } else { "lose" }
        );
        self.wait_until(&what, timeout, |state| {
            let roles = &state
                .model
                .guilds
                .get(&guild_id)?
                .members
                .get(&user_id)?
                .roles;
            (roles.contains(&role_id) == has).then_some(())
        })
        .await
    }

    /// Makes DMs to this user fail with 50007 (or work again).
    pub fn set_dms_closed(&self, user_id: u64, closed: bool) {
        let mut state = self.shared.lock();
        if closed {
            state.model.dms_closed.insert(user_id);
        } else {
            state.model.dms_closed.remove(&user_id);
        }
    }

    /// Creates an incoming webhook (as a server admin does in Integrations → Webhooks) and
    /// returns its URL, `{api_base}/webhooks/{id}/{token}`: what an operator puts in
    /// `alerts.operator_webhook_url`. What is posted to it: [`Self::webhook_executions`].
    #[must_use]
    pub fn incoming_webhook(&self, id: u64, token: &str) -> String {
        self.shared
            .lock()
            .model
            .incoming_webhooks
            .insert((id, token.to_owned()), Vec::new());
        format!("{}/webhooks/{id}/{token}", self.api_base())
    }

    /// The bodies posted to the incoming webhook `id`, in order.
    #[must_use]
    pub fn webhook_executions(&self, id: u64) -> Vec<Value> {
        self.shared
            .lock()
            .model
            .incoming_webhooks
            .iter()
            .filter(|((hook, _), _)| *hook == id)
            .flat_map(|(_, bodies)| bodies.clone())
            .collect()
    }

    /// Messages the bot created with `POST /channels/{id}/messages`.
    #[must_use]
    pub fn sent_messages(&self) -> Vec<SentMessage> {
        self.shared.lock().model.messages.clone()
    }

    /// Waits for the bot to DM this user; returns the first such message.
    pub async fn wait_for_dm(
        &self,
        user_id: u64,
        timeout: Duration,
    ) -> Result<SentMessage, FakeError> {
        self.wait_until(&format!("a DM to {user_id}"), timeout, |state| {
            state
                .model
                .messages
                .iter()
                .find(|m| m.recipient_id == Some(user_id))
                .cloned()
        })
        .await
    }

    // ---- request log and faults -------------------------------------------------------

    /// Every REST request so far, in the order answered.
    #[must_use]
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.lock().requests.clone()
    }

    /// How many requests so far match `method` (or `*`) and a path pattern (see
    /// [`FaultRule`]). Unlike [`Self::requests`] it copies nothing, so it is cheap to poll
    /// while the bot is busy (a benchmark waiting for tens of thousands of role changes).
    #[must_use]
    pub fn count_requests(&self, method: &str, path_pattern: &str) -> usize {
        let matcher = FaultRule::new(method, path_pattern, Fault::Delay(Duration::ZERO));
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| matcher.matches(&r.method, &r.path))
            .count()
    }

    /// Waits for a request matching `method` (or `*`) and a path pattern (see [`FaultRule`]).
    pub async fn wait_for_request(
        &self,
        method: &str,
        path_pattern: &str,
        timeout: Duration,
    ) -> Result<LoggedRequest, FakeError> {
        let matcher = FaultRule::new(method, path_pattern, Fault::Delay(Duration::ZERO));
        self.wait_until(&format!("{method} {path_pattern}"), timeout, |state| {
            state
                .requests
                .iter()
                .find(|r| matcher.matches(&r.method, &r.path))
                .cloned()
        })
        .await
    }

    /// A Discord that accepts and never answers (both [`Self::set_rest_silent`] and
    /// [`Self::set_gateway_silent`]); `false` makes it answer again.
    pub fn set_silent(&self, silent: bool) {
        self.set_rest_silent(silent);
        self.set_gateway_silent(silent);
    }

    /// While on, every REST request is read and logged (with `status: None`) and then never
    /// answered, even after this is turned off: the client must give up on it. Requests that
    /// arrive after it is off are answered as usual.
    pub fn set_rest_silent(&self, silent: bool) {
        self.shared.silent_rest.store(silent, Ordering::Relaxed);
        self.shared.notify();
    }

    /// While on, new gateway connections are accepted at TCP level and the WebSocket upgrade
    /// is never answered (counted in [`GatewayStats::silent_connections`]); a live socket stops
    /// sending (HELLO, ACKs, dispatches) and ignores what it receives, so serenity sees a zombie
    /// connection and reconnects into the silence.
    pub fn set_gateway_silent(&self, silent: bool) {
        self.shared.silent_gateway.store(silent, Ordering::Relaxed);
        self.shared.notify();
    }

    /// REST requests that were never answered because the fake was silent.
    #[must_use]
    pub fn unanswered_requests(&self, method: &str, path_pattern: &str) -> usize {
        let matcher = FaultRule::new(method, path_pattern, Fault::Delay(Duration::ZERO));
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.silenced && matcher.matches(&r.method, &r.path))
            .count()
    }

    /// Adds a fault rule; rules are tried in the order added.
    pub fn inject_fault(&self, rule: FaultRule) {
        self.shared.lock().faults.push(rule);
    }

    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    // ---- contract checks --------------------------------------------------------------

    /// Request bodies that broke Discord's `OpenAPI` schema so far (each was answered 400/50035).
    #[must_use]
    pub fn schema_violations(&self) -> Vec<SchemaViolation> {
        self.shared.lock().violations.clone()
    }

    /// Returns and clears the violations (for tests that expect some).
    #[must_use]
    pub fn take_schema_violations(&self) -> Vec<SchemaViolation> {
        std::mem::take(&mut self.shared.lock().violations)
    }

    /// Panics, listing each schema error, if any request body broke Discord's schema.
    ///
    /// # Panics
    ///
    /// When there are violations.
    pub fn assert_no_schema_violations(&self) {
        let violations = self.take_schema_violations();
        assert!(
            violations.is_empty(),
            "request bodies that break Discord's OpenAPI schema:\n{}",
            list(&violations)
        );
    }

    /// Everything the fake sent so far (gateway frames and REST answers) that serenity's model
    /// types reject, one line each.
    #[must_use]
    pub fn payload_failures(&self) -> Vec<String> {
        let state = self.shared.lock();
        let frames = state.gateway.sent.iter().filter_map(|frame| {
            parse_with_serenity(PayloadKind::GatewayFrame, frame)
                .err()
                .map(|e| format!("gateway frame {frame}: {e}"))
        });
        let answers = state.requests.iter().filter_map(|r| {
            let body = r.response.as_ref()?;
            let kind = PayloadKind::of_response(r.operation_id.as_deref()?, r.status?)?;
            parse_with_serenity(kind, body)
                .err()
                .map(|e| format!("{} {} answer {body}: {e}", r.method, r.path))
        });
        frames.chain(answers).collect()
    }

    /// Panics if serenity cannot parse something the fake sent.
    ///
    /// # Panics
    ///
    /// When [`FakeDiscord::payload_failures`] is not empty.
    pub fn assert_payloads_parse(&self) {
        let failures = self.payload_failures();
        assert!(
            failures.is_empty(),
            "serenity cannot parse what the fake sent:\n  - {}",
            failures.join("\n  - ")
        );
    }

    // ---- waiting ----------------------------------------------------------------------

    /// Re-evaluates `check` after every change of the fake's state until it yields a value or
    /// the timeout passes.
    async fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&State) -> Option<T>,
    ) -> Result<T, FakeError> {
        let mut changes = self.shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            changes.borrow_and_update();
            if let Some(found) = check(&self.shared.lock()) {
                return Ok(found);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => {
                    return Err(FakeError::Timeout {
                        what: what.to_owned(),
                        after: timeout,
                    });
                }
            }
        }
    }
}

/// A serenity `Client` running in a task, so a test can stop it and see how it ended.
#[derive(Debug)]
pub struct RunningClient {
    pub shard_manager: Arc<ShardManager>,
    pub http: Arc<Http>,
    pub cache: Arc<serenity::cache::Cache>,
    task: Option<JoinHandle<Result<(), serenity::Error>>>,
}

impl RunningClient {
    /// Spawns `client.start()` (one shard, as Docobo runs).
    #[must_use]
    pub fn spawn(mut client: Client) -> Self {
        let shard_manager = Arc::clone(&client.shard_manager);
        let http = Arc::clone(&client.http);
        let cache = Arc::clone(&client.cache);
        let task = tokio::spawn(async move { client.start().await });
        Self {
            shard_manager,
            http,
            cache,
            task: Some(task),
        }
    }

    /// Waits for `client.start()` to return by itself (e.g. after close code 4004).
    pub async fn finished(&mut self, timeout: Duration) -> Result<serenity::Result<()>, FakeError> {
        let task = self
            .task
            .as_mut()
            .ok_or_else(|| FakeError::ClientTask("already finished".into()))?;
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(result)) => {
                self.task = None;
                Ok(result)
            }
            Ok(Err(join)) => {
                self.task = None;
                Err(FakeError::ClientTask(join.to_string()))
            }
            Err(_) => Err(FakeError::Timeout {
                what: "the serenity client to stop".into(),
                after: timeout,
            }),
        }
    }

    /// `shard_manager.shutdown_all()`, then waits for the client task to end.
    pub async fn shutdown(mut self, timeout: Duration) -> Result<(), FakeError> {
        tokio::time::timeout(timeout, self.shard_manager.shutdown_all())
            .await
            .map_err(|_| FakeError::Timeout {
                what: "shard_manager.shutdown_all()".into(),
                after: timeout,
            })?;
        if self.task.is_some() {
            self.finished(timeout)
                .await?
                .map_err(|e| FakeError::ClientTask(e.to_string()))?;
        }
        Ok(())
    }
}

impl Drop for RunningClient {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
