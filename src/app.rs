//! `App`: wires the pieces together and runs them until shutdown. The only place that
//! spawns and joins long-lived tasks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::db::Db;
use crate::discord::{self, Bot, BotParts, Directory, GatewayStatus};
use crate::http;
use crate::metrics::Metrics;
use crate::providers::{FetchPolicy, HostOptions, Limits, PluginConfig, ProviderHost};
use crate::secrets::CredentialBox;
use crate::sync::{RoleSync, RoleSyncParts, SyncSettings};

/// A built application: database open and migrated, HTTP listener bound.
#[derive(Debug)]
pub struct App {
    config: Config,
    db: Db,
    providers: ProviderHost,
    credentials: CredentialBox,
    metrics: Arc<Metrics>,
    role_sync: Arc<tokio::sync::Notify>,
    discord_http: Arc<serenity::http::Http>,
    gateway: GatewayStatus,
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
}

impl App {
    /// Opens the database (running migrations) and binds the HTTP port. With port 0 the OS
    /// picks a free port: read it back with [`App::http_addr`].
    ///
    /// # Errors
    /// The database cannot be opened or migrated, or the port cannot be bound.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let path = config.database.path.clone();
        let busy = Duration::from_millis(u64::from(config.database.busy_timeout_ms));
        let (db, report) = tokio::task::spawn_blocking(move || Db::open(&path, busy))
            .await
            .context("the database task failed")??;
        if !report.applied.is_empty() {
            tracing::info!(applied = ?report.applied, "database migrated");
        }
        let providers = ProviderHost::load(host_options(&config)).await?;
        let credentials =
            CredentialBox::load(config.secrets.key.as_ref(), &config.secrets.key_path)?;
        let discord_http = Arc::new(discord::build_http(&config.discord)?);
        let listener = http::bind(SocketAddr::new(config.server.bind, config.server.port)).await?;
        let addr = listener.local_addr()?;
        Ok(Self {
            config,
            db,
            providers,
            credentials,
            metrics: Metrics::new(),
            role_sync: Arc::new(tokio::sync::Notify::new()),
            discord_http,
            gateway: GatewayStatus::default(),
            listener,
            addr,
        })
    }

    /// The address the HTTP server listens on.
    #[must_use]
    pub fn http_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The database handle.
    #[must_use]
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The loaded provider plugins.
    #[must_use]
    pub fn providers(&self) -> &ProviderHost {
        &self.providers
    }

    /// The credential box (encrypts what owners enter in `/setup`).
    #[must_use]
    pub fn credentials(&self) -> &CredentialBox {
        &self.credentials
    }

    /// Notified whenever a delivery changed a subscription (the role-sync worker waits on it).
    #[must_use]
    pub fn role_sync_signal(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.role_sync)
    }

    /// Runs until `shutdown` is cancelled, then drains every task before returning.
    ///
    /// # Errors
    /// A task failed in a way that stops the service.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let server = &self.config.server;
        let grace_ms = self.config.subscriptions.grace_ms();
        let directory = Directory::default();
        let bot = Bot::new(BotParts {
            db: self.db.clone(),
            providers: self.providers.clone(),
            credentials: self.credentials.clone(),
            http: Arc::clone(&self.discord_http),
            public_url: server.public_url.clone(),
            grace_ms,
            role_sync: Arc::clone(&self.role_sync),
            gateway: self.gateway.clone(),
            directory,
        });
        let worker = RoleSync::new(RoleSyncParts {
            db: self.db.clone(),
            roles: bot.roles.clone(),
            http: Arc::clone(&self.discord_http),
            providers: self.providers.clone(),
            credentials: self.credentials.clone(),
            operator_credentials: operator_credentials(&self.config),
            signal: Arc::clone(&self.role_sync),
            settings: SyncSettings {
                grace_ms,
                sweep_interval: Duration::from_secs(u64::from(
                    self.config.subscriptions.sweep_interval_secs,
                )),
                poll_interval: Duration::from_secs(u64::from(
                    self.config.subscriptions.poll_interval_secs,
                )),
            },
        });
        let gateway = tokio::spawn(discord::run_gateway(
            Arc::clone(&bot),
            self.config.discord.clone(),
            shutdown.clone(),
        ));
        let sync = tokio::spawn(worker.run(shutdown.clone()));
        let state = Arc::new(http::HttpState {
            db: self.db.clone(),
            providers: self.providers.clone(),
            metrics: Arc::clone(&self.metrics),
            credentials: self.credentials.clone(),
            operator_credentials: operator_credentials(&self.config),
            role_sync: Arc::clone(&self.role_sync),
            gateway: self.gateway.clone(),
            started: Instant::now(),
            protection: http::Protection::new(
                server.rate_limit_per_minute,
                server.trusted_proxies.clone(),
                Duration::from_millis(u64::from(server.request_timeout_ms)),
            ),
            keys: http::KeyCache::default(),
        });
        tracing::info!(
            addr = %self.addr,
            database = %self.config.database.path.display(),
            version = env!("CARGO_PKG_VERSION"),
            "listening"
        );
        let server_ended =
            http::serve(self.listener, http::service(&state), shutdown.clone()).await;
        // The server only returns on shutdown (or a fatal error): stop the rest too.
        shutdown.cancel();
        let (bot_ended, sync_ended) = tokio::join!(gateway, sync);
        server_ended?;
        bot_ended.context("the Discord task failed")??;
        sync_ended.context("the role-sync task failed")?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The plugin host settings from the configuration.
#[must_use]
pub fn host_options(config: &Config) -> HostOptions {
    let plugins = &config.plugins;
    HostOptions {
        plugins_dir: Some(plugins.dir.clone()),
        cache_dir: Some(plugins.cache_dir.clone()),
        fetch: FetchPolicy {
            allowed_hosts: plugins.allowed_hosts.clone(),
            allow_loopback_http: plugins.allow_loopback_http,
        },
        limits: Limits {
            memory_bytes: (plugins.memory_limit_mb as usize) << 20,
            deadline: Duration::from_millis(u64::from(plugins.cpu_deadline_ms)),
            call_timeout: Duration::from_millis(u64::from(plugins.call_timeout_ms)),
            ..Limits::default()
        },
        builtins: true,
        ..HostOptions::default()
    }
}

fn operator_credentials(config: &Config) -> std::collections::BTreeMap<String, PluginConfig> {
    use secrecy::ExposeSecret as _;
    config
        .providers
        .iter()
        .map(|(id, fields)| {
            let config = fields
                .iter()
                .map(|(k, v)| (k.clone(), v.expose_secret().to_owned()))
                .collect();
            (id.clone(), config)
        })
        .collect()
}
