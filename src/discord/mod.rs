//! The Discord side: the gateway client (serenity), the slash commands, role management and
//! staff notices.
//!
//! - [`directory`]: guild roles and the bot's place in the hierarchy.
//! - [`roles`]: `RoleManager` (`grant_role` / `revoke_role`) with typed errors.
//! - [`notify`]: log-channel lines and messages to owners.
//! - [`invite`]: the link that adds the bot to a server (scopes and permissions).
//! - `handler`: gateway events, and interactions dispatched to the commands: `setup`,
//!   `member` (`/join`, `/status`, `/help`), `doctor` (`/doctor` and its test purchase),
//!   `admin` (`/admin`).
//! - `interaction`, `custom_id`: what arrives, translated and typed once.
//! - `reply`: the commands' answers as values (`reply::Reply`), and the one adapter that
//!   sends them; `error`: `error::BotError`, what a person is told and what is logged.
//!
//! Non-privileged intents by default (`GUILDS`); `GUILD_MEMBERS` only when configured.
//! Interactions get their first response straight from the handler (a database read at
//! most); calls to payment providers happen after a deferral (`Reply::Deferred`).

mod admin;
mod custom_id;
mod dashboard;
#[doc(hidden)]
pub mod decode;
pub mod directory;
mod doctor;
mod error;
mod handler;
mod interaction;
pub mod invite;
mod member;
pub mod notify;
mod remind;
mod reply;
pub mod roles;
mod setup;
pub mod status;
pub(crate) mod ui;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context as _;
use secrecy::ExposeSecret as _;
use serenity::all::{ClientBuilder, GatewayIntents};
use serenity::gateway::GatewayError;
use serenity::http::{Http, HttpBuilder};
use tokio_util::sync::CancellationToken;

use crate::config::DiscordConfig;
use crate::doctor::Doctor;
use crate::services::Services;

pub use directory::Directory;
pub use notify::Notifier;
pub use remind::{RemindError, ReminderMessage};
pub use roles::{DiscordApiError, Missing, RoleError, RoleManager};
pub use status::{GatewayState, GatewayStatus};

/// Builds serenity's REST client. Every request has a deadline (`discord.timeout_ms`, for
/// connecting and for the whole exchange): serenity sets none, and a Discord that accepts
/// connections and never answers would otherwise hold its caller for good. With `api_url`
/// set (tests), requests go there and the client-side rate limiter is off (it would ignore
/// the override and call discord.com).
///
/// # Errors
/// `discord.token` is not set, or the HTTP client cannot be built.
pub fn build_http(config: &DiscordConfig) -> anyhow::Result<Http> {
    let token = config.bot_token()?.expose_secret();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(config.timeout())
        .timeout(config.timeout());
    let (builder, client) = match &config.api_url {
        Some(url) => (
            HttpBuilder::new(token)
                .proxy(url.clone())
                .ratelimiter_disabled(true),
            client.no_proxy(),
        ),
        None => (HttpBuilder::new(token), client),
    };
    let client = client
        .build()
        .context("building the HTTP client for Discord")?;
    Ok(builder.client(client).build())
}

/// Everything the command handlers need.
#[derive(Debug)]
pub struct Bot {
    pub services: Services,
    pub http: Arc<Http>,
    pub roles: RoleManager,
    pub notifier: Notifier,
    pub gateway: GatewayStatus,
    /// `/doctor`'s checks and test purchases.
    pub doctor: Doctor,
    /// `/setup` conversations in progress, per (guild, admin).
    sessions: setup::Sessions,
    /// The invite link was logged (at the first READY, not at every reconnect or shard).
    invite_logged: AtomicBool,
}

impl Bot {
    #[must_use]
    pub fn new(
        services: Services,
        http: Arc<Http>,
        roles: RoleManager,
        gateway: GatewayStatus,
        doctor: Doctor,
    ) -> Arc<Self> {
        Arc::new(Self {
            doctor,
            services,
            notifier: Notifier::new(Arc::clone(&http)),
            http,
            roles,
            gateway,
            sessions: setup::Sessions::default(),
            invite_logged: AtomicBool::new(false),
        })
    }
}

/// How long the gateway may go without a session (from an attempt's start, or from losing
/// the connection) before the attempt is abandoned, in multiples of `discord.timeout_ms`.
const GATEWAY_DEADLINE_FACTOR: u32 = 2;
/// How long a gateway session may take to close on shutdown (or when abandoned).
const GATEWAY_CLOSE: Duration = Duration::from_secs(2);
/// How often the gateway's state is looked at against its deadline.
const GATEWAY_WATCH: Duration = Duration::from_millis(100);

/// Keeps the bot on the gateway until `shutdown`: serenity resumes and reconnects by itself;
/// when its client gives up (network down at boot, Discord unreachable), or has no session
/// within twice `discord.timeout_ms` (a Discord that accepts connections and never answers),
/// a new one is started with backoff. A refusal only a person can fix (bad token, privileged
/// intent not enabled) is reported and ends the bot, while the webhook server keeps accepting
/// payments.
///
/// # Errors
/// The client or its runtime cannot be built.
pub async fn run_gateway(
    bot: Arc<Bot>,
    config: DiscordConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut intents = GatewayIntents::GUILDS;
    if config.guild_members_intent {
        intents |= GatewayIntents::GUILD_MEMBERS;
    }
    let deadline = config.timeout() * GATEWAY_DEADLINE_FACTOR;
    let mut backoff = Duration::from_secs(1);
    loop {
        bot.gateway.set(GatewayState::Connecting);
        let attempt = Attempt::start(Arc::clone(&bot), build_http(&config)?, intents)?;
        let (ended, was_connected) = attempt.watch(&bot.gateway, deadline, &shutdown).await;
        if was_connected {
            // It was up: start the backoff over.
            backoff = Duration::from_secs(1);
        }
        match ended {
            Ended::Shutdown => return Ok(()),
            Ended::Client(Err(serenity::Error::Gateway(GatewayError::InvalidAuthentication))) => {
                bot.gateway.set(GatewayState::Failed);
                tracing::error!(
                    "Discord refused the bot token (close code 4004). Fix: copy the token again from https://discord.com/developers/applications → your app → Bot → Reset Token, into discord.token (or DOCOBO_DISCORD__TOKEN), and restart"
                );
                return Ok(());
            }
            Ended::Client(Err(serenity::Error::Gateway(
                GatewayError::DisallowedGatewayIntents | GatewayError::InvalidGatewayIntents,
            ))) => {
                bot.gateway.set(GatewayState::Failed);
                tracing::error!(
                    "Discord refused the GUILD_MEMBERS intent (close code 4014). Fix: enable \"Server Members Intent\" in the developer portal (your app → Bot → Privileged Gateway Intents), or set discord.guild_members_intent = false, and restart"
                );
                return Ok(());
            }
            Ended::Client(Err(e)) => {
                bot.gateway.set(GatewayState::Reconnecting);
                tracing::warn!(error = %e, retry_in = ?backoff, "the Discord gateway connection ended; reconnecting");
            }
            Ended::Client(Ok(())) => {
                bot.gateway.set(GatewayState::Reconnecting);
                tracing::warn!(retry_in = ?backoff, "the Discord gateway connection closed; reconnecting");
            }
            Ended::Crashed(why) => {
                bot.gateway.set(GatewayState::Reconnecting);
                tracing::error!(retry_in = ?backoff, "{why}; reconnecting");
            }
            Ended::NoSession => {
                bot.gateway.set(GatewayState::Reconnecting);
                tracing::warn!(
                    deadline = ?deadline,
                    retry_in = ?backoff,
                    "the Discord gateway gave no session in time (Discord accepts connections but does not answer, or the network drops them); starting again. If it lasts, check that this machine reaches discord.com, or raise discord.timeout_ms"
                );
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => return Ok(()),
        }
        backoff = (backoff * 2).min(Duration::from_mins(1));
    }
}

/// How a gateway attempt ended.
enum Ended {
    Shutdown,
    /// serenity's client returned.
    Client(serenity::Result<()>),
    /// No session within the deadline.
    NoSession,
    /// serenity's task panicked or was cancelled.
    Crashed(&'static str),
}

/// One serenity client, on a runtime of its own. serenity spawns tasks (the shard queuer and
/// runner, event handlers) that nothing outside can cancel, and a gateway that accepts the
/// connection and never answers the upgrade parks them for good: dropping their runtime is
/// the only way to be rid of them, so an abandoned attempt leaves nothing behind that could
/// connect later beside its successor.
struct Attempt {
    runtime: Option<tokio::runtime::Runtime>,
    task: tokio::task::JoinHandle<serenity::Result<()>>,
    stop: CancellationToken,
}

impl Attempt {
    fn start(bot: Arc<Bot>, http: Http, intents: GatewayIntents) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("docobo-gateway")
            .enable_all()
            .build()
            .context("starting the Discord gateway's runtime")?;
        let stop = CancellationToken::new();
        let task = runtime.spawn(connect(bot, http, intents, stop.clone()));
        Ok(Self {
            runtime: Some(runtime),
            task,
            stop,
        })
    }

    /// Waits for the client to end, `shutdown`, or the deadline to pass without a session;
    /// then closes the session (briefly) and drops the runtime. Also says whether a session
    /// was up at some point.
    async fn watch(
        mut self,
        status: &GatewayStatus,
        deadline: Duration,
        shutdown: &CancellationToken,
    ) -> (Ended, bool) {
        let mut was_connected = false;
        let mut waiting_since = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(GATEWAY_WATCH);
        let ended = loop {
            tokio::select! {
                joined = &mut self.task => break match joined {
                    Ok(result) => Ended::Client(result),
                    Err(e) if e.is_panic() => Ended::Crashed("the Discord client panicked"),
                    Err(_) => Ended::Crashed("the Discord client was cancelled"),
                },
                () = shutdown.cancelled() => break Ended::Shutdown,
                _ = tick.tick() => {
                    if status.get() == GatewayState::Connected {
                        was_connected = true;
                        waiting_since = tokio::time::Instant::now();
                    } else if waiting_since.elapsed() > deadline {
                        break Ended::NoSession;
                    }
                }
            }
        };
        if !matches!(ended, Ended::Client(_)) {
            self.stop.cancel();
            let _ = tokio::time::timeout(GATEWAY_CLOSE, &mut self.task).await;
        }
        (
            ended,
            was_connected || status.get() == GatewayState::Connected,
        )
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Does not wait: whatever is still running (a connect Discord never answers) is
            // dropped with it.
            runtime.shutdown_background();
        }
    }
}

/// Runs one serenity client until it ends or `stop`.
async fn connect(
    bot: Arc<Bot>,
    http: Http,
    intents: GatewayIntents,
    stop: CancellationToken,
) -> serenity::Result<()> {
    // serenity asks for the gateway's address while building the client and, when that
    // fails, falls back to discord.com's (even with `api_url` set): ask first, so that a
    // failure is a failed attempt, and give the client the answer. The same answer says how
    // many shards Discord wants (it refuses a single connection past 2 500 guilds).
    let build = async {
        let gateway = http.get_bot_gateway().await.map_err(|e| match &e {
            // `/gateway/bot` needs the token: a 401 is the refusal IDENTIFY would get (4004).
            serenity::Error::Http(h) if h.status_code().map(|s| s.as_u16()) == Some(401) => {
                serenity::Error::Gateway(GatewayError::InvalidAuthentication)
            }
            _ => e,
        })?;
        let client = ClientBuilder::new_with_http(http, intents)
            .event_handler(handler::Handler::new(bot))
            .await?;
        gateway.url.clone_into(&mut *client.ws_url.lock().await);
        Ok::<_, serenity::Error>((client, gateway.shards.max(1)))
    };
    let (mut client, shards) = tokio::select! {
        client = build => client?,
        () = stop.cancelled() => return Ok(()),
    };
    if shards > 1 {
        tracing::info!(
            shards,
            "connecting to the Discord gateway with the shards Discord asks for"
        );
    }
    let manager = Arc::clone(&client.shard_manager);
    // Autosharded: every shard Discord recommends, in this process (serenity's
    // `start_autosharded`, with the count already asked for above).
    let result = tokio::select! {
        result = client.start_shards(shards) => result,
        () = stop.cancelled() => Ok(()),
    };
    manager.shutdown_all().await;
    result
}
