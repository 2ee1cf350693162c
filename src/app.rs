//! `App`: wires the pieces together and runs them until shutdown. The only place that
//! spawns and joins long-lived tasks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::accounts::ProviderAccounts;
use crate::alerts::watch::Settings as AlertSettings;
use crate::alerts::{AlertSender, Alerts};
use crate::clock::Clock;
use crate::config::Config;
use crate::db::{Db, OpenOptions, Synchronous};
use crate::discord::{self, Bot, Directory, GatewayStatus, Notifier, RoleManager};
use crate::doctor::Doctor;
use crate::http;
use crate::ingest::Ingest;
use crate::ingest::poll::Poller;
use crate::ingest::watch::DeliveryWatch;
use crate::metrics::Metrics;
use crate::providers::{FetchPolicy, HostOptions, Limits, ProviderHost};
use crate::reminders::Reminders;
use crate::retention::Pruner;
use crate::secrets::CredentialBox;
use crate::services::{Services, SyncTrigger};
use crate::sync::{RoleSync, Sweeper};

/// A built application: database open and migrated, HTTP listener bound.
#[derive(Debug)]
pub struct App {
    config: Config,
    services: Services,
    credentials: CredentialBox,
    discord_http: Arc<serenity::http::Http>,
    gateway: GatewayStatus,
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    /// `/doctor`'s service (it posts test deliveries to `addr`).
    doctor: Doctor,
    /// Held until the app is dropped: `docobo restore` (and a second server) refuse while it is.
    _serving: crate::db::ServerLock,
}

impl App {
    /// Opens the database (running migrations) and binds the HTTP port. With port 0 the OS
    /// picks a free port: read it back with [`App::http_addr`].
    ///
    /// # Errors
    /// The database cannot be opened or migrated, or the port cannot be bound.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Clock::System).await
    }

    /// [`App::build`] with a given clock (tests move a fixed one instead of editing rows).
    ///
    /// # Errors
    /// As [`App::build`].
    pub async fn build_with_clock(config: Config, clock: Clock) -> anyhow::Result<Self> {
        let path = config.database.path.clone();
        let serving = crate::db::ServerLock::acquire(&path, "another `docobo serve`")?;
        let options = OpenOptions {
            busy_timeout: Duration::from_millis(u64::from(config.database.busy_timeout_ms)),
            synchronous: config.database.synchronous,
        };
        if options.synchronous == Synchronous::Normal {
            tracing::warn!(
                "database.synchronous = normal: a power cut can lose payments that were already acknowledged to the provider"
            );
        }
        let (db, report) = tokio::task::spawn_blocking(move || Db::open_with(&path, options))
            .await
            .context("the database task failed")??;
        if !report.applied.is_empty() {
            tracing::info!(applied = ?report.applied, "database migrated");
        }
        let providers = ProviderHost::load(HostOptions {
            clock: clock.clone(),
            ..host_options(&config)
        })
        .await?;
        let credentials =
            CredentialBox::load(config.secrets.key.as_ref(), &config.secrets.key_path)?;
        let logins = Arc::new(crate::web::Logins::new(
            clock.clone(),
            i64::from(config.dashboard.session_hours) * 3_600_000,
            config.dashboard.admin_token_hash,
        ));
        let metrics = Metrics::new();
        let alerts = Alerts::new(
            clock.clone(),
            Arc::clone(&metrics),
            &AlertSettings::from_config(&config.alerts),
        );
        let services = Services {
            db,
            providers,
            accounts: ProviderAccounts::from_config(&config, credentials.clone()),
            sync: SyncTrigger::default(),
            clock,
            metrics,
            alerts,
            grace_ms: config.subscriptions.grace_ms(),
            public_url: config.server.public_url.clone(),
            logins,
            deliveries: DeliveryWatch::new(Duration::from_secs(
                config.server.verify_wait_secs.into(),
            )),
        };
        let discord_http = Arc::new(discord::build_http(&config.discord)?);
        let listener = http::bind(SocketAddr::new(config.server.bind, config.server.port)).await?;
        let addr = listener.local_addr()?;
        let doctor = Doctor::new(services.clone(), addr, config.doctor.test_purchase_minutes)?;
        Ok(Self {
            doctor,
            config,
            services,
            credentials,
            discord_http,
            gateway: GatewayStatus::default(),
            listener,
            addr,
            _serving: serving,
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
        &self.services.db
    }

    /// The loaded provider plugins.
    #[must_use]
    pub fn providers(&self) -> &ProviderHost {
        &self.services.providers
    }

    /// The services every edge shares.
    #[must_use]
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The credential box (encrypts what owners enter in `/setup`).
    #[must_use]
    pub fn credentials(&self) -> &CredentialBox {
        &self.credentials
    }

    /// Runs until `shutdown` is cancelled, then drains every task before returning.
    ///
    /// # Errors
    /// A task failed in a way that stops the service.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let server = &self.config.server;
        let settings = &self.config.subscriptions;
        let services = self.services.clone();
        let roles = RoleManager::new(
            Arc::clone(&self.discord_http),
            Directory::default(),
            self.config.discord.timeout(),
        );
        let notifier = Notifier::new(Arc::clone(&self.discord_http));
        let dashboard = crate::web::Dashboard::new(roles.clone(), notifier.clone());
        let doctor = self.doctor.clone();
        let test_purchases = tokio::spawn(doctor.clone().run(
            Duration::from_secs(u64::from(settings.sweep_interval_secs)),
            shutdown.clone(),
        ));
        let alert_sender = AlertSender::new(
            services.clone(),
            notifier.clone(),
            self.config.alerts.operator_webhook_url.clone(),
        )?;
        let bot = Bot::new(
            services.clone(),
            Arc::clone(&self.discord_http),
            roles.clone(),
            self.gateway.clone(),
            doctor.clone(),
        );
        let gateway = tokio::spawn(discord::run_gateway(
            Arc::clone(&bot),
            self.config.discord.clone(),
            shutdown.clone(),
        ));
        let sync = tokio::spawn(
            RoleSync::new(services.clone(), roles.clone(), notifier.clone()).run(shutdown.clone()),
        );
        let alerts = tokio::spawn(alert_sender.run(shutdown.clone()));
        let sweep = tokio::spawn(Sweeper::new(services.clone(), roles, notifier.clone()).run(
            Duration::from_secs(u64::from(settings.sweep_interval_secs)),
            shutdown.clone(),
        ));
        let reminders = tokio::spawn(
            Reminders::new(services.clone(), notifier.clone(), settings.reminder_hours)
                .run(settings.reminder_every(), shutdown.clone()),
        );
        let poll = tokio::spawn(Poller::new(services.clone()).run(
            Duration::from_secs(u64::from(settings.poll_interval_secs)),
            shutdown.clone(),
        ));
        let prune = tokio::spawn(
            Pruner::new(
                services.db.clone(),
                services.clock.clone(),
                self.config.database.keep_days,
            )
            .run(PRUNE_AFTER_START, PRUNE_EVERY, shutdown.clone()),
        );
        let state = self.http_state(services, shutdown.clone(), dashboard);
        tracing::info!(
            addr = %self.addr,
            database = %self.config.database.path.display(),
            version = env!("CARGO_PKG_VERSION"),
            "listening"
        );
        let limits = http::ConnectionLimits {
            header_timeout: Duration::from_millis(u64::from(server.header_timeout_ms)),
        };
        let server_ended = http::serve(
            self.listener,
            http::service(&state),
            limits,
            shutdown.clone(),
        )
        .await;
        // The server only returns on shutdown (or a fatal error): stop the rest too. They
        // have been stopping since the token fired; what still runs after `TASKS_STOP` (a
        // Discord call nobody answers, say) is abandoned, so that shutdown has a bound.
        shutdown.cancel();
        let stop_by = tokio::time::Instant::now() + TASKS_STOP;
        let bot_ended = finish("Discord", gateway, stop_by).await;
        let sync_ended = finish("role-sync", sync, stop_by).await;
        let sweep_ended = finish("sweep", sweep, stop_by).await;
        let poll_ended = finish("poll", poll, stop_by).await;
        let reminders_ended = finish("reminders", reminders, stop_by).await;
        let prune_ended = finish("pruning", prune, stop_by).await;
        let test_purchases_ended = finish("test purchases", test_purchases, stop_by).await;
        let alerts_ended = finish("alerts", alerts, stop_by).await;
        server_ended?;
        if let Some(ended) = bot_ended? {
            ended?;
        }
        sync_ended?;
        sweep_ended?;
        poll_ended?;
        reminders_ended?;
        prune_ended?;
        test_purchases_ended?;
        alerts_ended?;
        tracing::info!("stopped");
        Ok(())
    }
}

impl App {
    /// What the HTTP handlers share, from the server settings.
    fn http_state(
        &self,
        services: Services,
        shutdown: CancellationToken,
        dashboard: crate::web::Dashboard,
    ) -> Arc<http::HttpState> {
        let server = &self.config.server;
        Arc::new(http::HttpState {
            ingest: Ingest::new(services.clone()),
            services,
            gateway: self.gateway.clone(),
            started: Instant::now(),
            shutdown,
            backup_dir: self.config.database.backup_dir.clone().unwrap_or_else(|| {
                let db = &self.config.database.path;
                db.parent()
                    .map_or_else(|| "backups".into(), |folder| folder.join("backups"))
            }),
            dashboard,
            protection: http::Protection::new(http::ProtectionSettings {
                per_minute: server.rate_limit_per_minute,
                trusted_proxies: server.trusted_proxies.clone(),
                request_timeout: Duration::from_millis(u64::from(server.request_timeout_ms)),
                body_timeout: Duration::from_millis(u64::from(server.body_timeout_ms)),
                bad_signatures_per_url: server.bad_signatures_per_minute,
                bad_signatures_per_ip: server.bad_signatures_per_ip_per_minute,
                metrics_token: server.metrics_token.clone(),
            }),
        })
    }
}

/// When the first pruning pass runs (not at once: start-up has more urgent work), and how
/// often the next ones do.
const PRUNE_AFTER_START: Duration = Duration::from_mins(1);
const PRUNE_EVERY: Duration = Duration::from_hours(6);

/// How long the tasks may take to stop once the HTTP server has drained (they are told to
/// stop at the same time as the server). With [`http::DRAIN_TIMEOUT`] this bounds shutdown.
pub const TASKS_STOP: Duration = Duration::from_secs(3);

/// Waits for `task` until `by`; past that it is aborted (and logged), and `None` returned.
async fn finish<T>(
    name: &str,
    mut task: tokio::task::JoinHandle<T>,
    by: tokio::time::Instant,
) -> anyhow::Result<Option<T>> {
    if let Ok(joined) = tokio::time::timeout_at(by, &mut task).await {
        return Ok(Some(
            joined.with_context(|| format!("the {name} task failed"))?,
        ));
    }
    task.abort();
    tracing::warn!(
        task = name,
        waited = ?TASKS_STOP,
        "a task did not stop in time; abandoned (its work is picked up at the next start)"
    );
    Ok(None)
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
