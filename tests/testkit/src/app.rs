//! [`TestApp`]: the real Docobo [`App`] on `127.0.0.1:0`, with its data (database, credential
//! key, plugins, compile cache) in a temporary folder it owns, its bot connected to a loopback
//! [`FakeDiscord`]. Behind the `app` feature (it depends on the `docobo` crate).
//!
//! Set `TEST_LOG=1` to see the app's log (JSON lines on stderr; `RUST_LOG` picks the level).
//!
//! ```no_run
//! # async fn demo() {
//! use docobo_testkit::app::TestApp;
//!
//! let app = TestApp::builder()
//!     .env("DOCOBO_SERVER__RATE_LIMIT_PER_MINUTE", "0")
//!     .start()
//!     .await;
//! let health = app.client.get(app.url("/health")).send().await;
//! let app = app.restart().await; // the same data, a new process-like start
//! app.stop().await;
//! # }
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once, OnceLock};

use docobo::clock::Clock;
use docobo::config::LogConfig;
use docobo::db::{Db, guilds, paid_roles};
use docobo::domain::{Billing, Currency, GuildId, Money, ProviderId, RoleId};
use docobo::secrets::CredentialBox;
use docobo::services::Services;
use docobo::{App, Config};
use tokio_util::sync::CancellationToken;

use crate::FakeDiscord;

/// The variable that turns the app's log on.
pub const TEST_LOG_ENV: &str = "TEST_LOG";

/// How to start a [`TestApp`]: [`TestApp::builder`].
#[derive(Debug, Default)]
pub struct TestAppBuilder {
    discord: Option<Arc<FakeDiscord>>,
    env: Vec<(String, String)>,
    plugins: Vec<(String, PathBuf)>,
    plugin_cache: Option<PathBuf>,
    clock: Option<Clock>,
}

impl TestAppBuilder {
    /// Runs the app on `clock` (default: the system clock). A [`Clock::fixed`] one lets a test
    /// move time ([`TestApp::advance`]) instead of editing rows.
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Connects the bot to `discord` (default: a fake Discord of its own that knows no
    /// guilds).
    #[must_use]
    pub fn discord(mut self, discord: Arc<FakeDiscord>) -> Self {
        self.discord = Some(discord);
        self
    }

    /// Sets a `DOCOBO_…` setting, over the test defaults and any earlier value.
    #[must_use]
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets each of `settings` (see [`TestAppBuilder::env`]).
    #[must_use]
    pub fn envs(self, settings: &[(&str, &str)]) -> Self {
        settings
            .iter()
            .fold(self, |builder, (name, value)| builder.env(name, value))
    }

    /// Installs the component at `source` as plugin `file_name` (`test.wasm`) before the app
    /// starts.
    #[must_use]
    pub fn plugin(mut self, file_name: &str, source: impl Into<PathBuf>) -> Self {
        self.plugins.push((file_name.to_owned(), source.into()));
        self
    }

    /// Keeps compiled plugins in `dir` rather than in the app's own folder: share one across
    /// a test run so that each component is compiled once.
    #[must_use]
    pub fn plugin_cache(mut self, dir: impl Into<PathBuf>) -> Self {
        self.plugin_cache = Some(dir.into());
        self
    }

    /// Creates the app's folder, builds the app and runs it until [`TestApp::stop`] (or drop).
    ///
    /// # Panics
    /// If the folder, the fake Discord, the configuration or the app cannot be made.
    pub async fn start(self) -> TestApp {
        let dir = tempfile::tempdir().expect("a temporary folder for the app");
        if !self.plugins.is_empty() {
            let plugins = dir.path().join("plugins");
            std::fs::create_dir_all(&plugins).expect("the plugins folder");
            for (name, source) in &self.plugins {
                std::fs::copy(source, plugins.join(name))
                    .unwrap_or_else(|e| panic!("installing {}: {e}", source.display()));
            }
        }
        let discord = match self.discord {
            Some(discord) => discord,
            None => Arc::new(FakeDiscord::builder().start().await.expect("fake Discord")),
        };
        let mut env = defaults(dir.path(), &discord, self.plugin_cache.as_deref());
        for (name, value) in self.env {
            env.retain(|(n, _)| *n != name);
            env.push((name, value));
        }
        let clock = self.clock.unwrap_or_default();
        TestApp::run(Setup {
            dir,
            discord,
            env,
            clock,
        })
        .await
    }
}

/// The settings every test app gets.
fn defaults(dir: &Path, discord: &FakeDiscord, cache: Option<&Path>) -> Vec<(String, String)> {
    let path = |p: &Path| p.display().to_string();
    let cache = cache.map_or_else(|| dir.join("plugin-cache"), Path::to_path_buf);
    vec![
        ("DOCOBO_DISCORD__TOKEN".into(), discord.token().into()),
        ("DOCOBO_DISCORD__API_URL".into(), discord.rest_url().into()),
        ("DOCOBO_SERVER__BIND".into(), "127.0.0.1".into()),
        ("DOCOBO_SERVER__PORT".into(), "0".into()),
        ("DOCOBO_DATABASE__PATH".into(), path(&dir.join("docobo.db"))),
        ("DOCOBO_PLUGINS__DIR".into(), path(&dir.join("plugins"))),
        ("DOCOBO_PLUGINS__CACHE_DIR".into(), path(&cache)),
        (
            "DOCOBO_SECRETS__KEY_PATH".into(),
            path(&dir.join("docobo.key")),
        ),
        ("DOCOBO_LOG__FORMAT".into(), "json".into()),
    ]
}

/// With `TEST_LOG=1`, installs (once per process) a subscriber writing the app's JSON log
/// lines to stderr, at `log.level` or `RUST_LOG`.
fn install_log(config: &LogConfig) {
    static CONFIG: OnceLock<LogConfig> = OnceLock::new();
    static INSTALL: Once = Once::new();
    if std::env::var_os(TEST_LOG_ENV).is_none_or(|v| v != "1") {
        return;
    }
    INSTALL.call_once(|| {
        let config = CONFIG.get_or_init(|| config.clone());
        match docobo::telemetry::json_subscriber(config, std::io::stderr) {
            // Another global subscriber (a test's own capture) may already be installed.
            Ok(subscriber) => {
                let _ = tracing::subscriber::set_global_default(subscriber);
            }
            Err(e) => eprintln!("{TEST_LOG_ENV}=1: no log: {e}"),
        }
    });
}

/// What starting the app again needs.
#[derive(Debug)]
struct Setup {
    /// Held, not read: the folder is deleted when this drops.
    #[expect(dead_code, reason = "owned for its drop")]
    dir: tempfile::TempDir,
    /// Held, not read: the bot's Discord must outlive the app (and a restart).
    #[expect(dead_code, reason = "owned so that it outlives the app")]
    discord: Arc<FakeDiscord>,
    env: Vec<(String, String)>,
    clock: Clock,
}

/// A running app. Dropping it cancels it; [`TestApp::stop`] also waits until it has drained.
#[derive(Debug)]
pub struct TestApp {
    /// The HTTP server's address.
    pub addr: SocketAddr,
    pub db: Db,
    /// Seals guild credentials as `/setup` does.
    pub credentials: CredentialBox,
    /// A client that never uses a proxy.
    pub client: reqwest::Client,
    /// What the app's edges share (its clock, its role-sync trigger, …).
    pub services: Services,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// `None` only once stopped.
    setup: Option<Setup>,
}

/// A stopped app's folder and settings: [`StoppedApp::start`] runs it again on the same data.
/// Dropping it deletes the folder.
#[derive(Debug)]
pub struct StoppedApp(Setup);

impl StoppedApp {
    /// Starts the app again: same folder (database, key file), settings and fake Discord.
    pub async fn start(self) -> TestApp {
        TestApp::run(self.0).await
    }
}

impl TestApp {
    /// How to start one: fake Discord, settings, plugins, compile cache.
    #[must_use]
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    async fn run(setup: Setup) -> Self {
        let config = Config::load(None, false, setup.env.clone()).expect("config");
        install_log(&config.log);
        let app = App::build_with_clock(config, setup.clock.clone())
            .await
            .expect("app builds");
        let services = app.services().clone();
        let addr = app.http_addr();
        let db = app.db().clone();
        let credentials = app.credentials().clone();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Self {
            addr,
            db,
            credentials,
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            services,
            shutdown,
            task: Some(task),
            setup: Some(setup),
        }
    }

    /// Moves the app's fixed clock forward by `ms` and wakes role sync and the alert sender
    /// (whose summaries are due by that clock), as the passing of that much time would (no
    /// effect on the system clock).
    pub fn advance(&self, ms: i64) {
        self.services.clock.advance(ms);
        self.services.sync.wake();
        self.services.alerts.wake();
    }

    /// `http://{addr}{path}`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops the app and waits until it has drained; the data stays until the returned
    /// [`StoppedApp`] is dropped.
    ///
    /// # Panics
    /// If the app failed or does not stop cleanly.
    pub async fn stop(mut self) -> StoppedApp {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("join").expect("clean stop");
        }
        StoppedApp(self.setup.take().expect("a running app"))
    }

    /// Stops the app and starts it again on the same data.
    pub async fn restart(self) -> Self {
        self.stop().await.start().await
    }

    /// Registers a guild using `provider` with `config` as its (encrypted) credentials;
    /// returns its webhook key. A guild the bot already saw keeps its key.
    ///
    /// # Panics
    /// If `provider` is not a provider id or the database refuses.
    pub async fn add_guild(
        &self,
        guild: GuildId,
        provider: &str,
        config: &[(&str, &str)],
    ) -> String {
        // The key stays the one the guild was first given.
        let key = format!("key{guild}");
        let config: Vec<(String, String)> = config
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        let sealed = self.credentials.seal(guild, &config);
        let provider = ProviderId::parse(provider).expect("provider");
        let webhook_key = key.clone();
        self.db
            .call(move |conn| {
                if guilds::get(conn, guild)?.is_some() {
                    // Already there (the bot saw it at GUILD_CREATE): keep its key.
                    return guilds::set_provider(conn, guild, &provider, &sealed);
                }
                guilds::insert(
                    conn,
                    &guilds::Guild {
                        id: guild,
                        name: "Test".into(),
                        owner_id: None,
                        provider: Some(provider),
                        credentials: Some(sealed),
                        webhook_key,
                        log_channel_id: None,
                    },
                )
            })
            .await
            .expect("guild");
        self.db
            .read(move |conn| guilds::get(conn, guild))
            .await
            .expect("read")
            .map_or(key, |g| g.webhook_key)
    }

    /// A guild selling `role` as a 30-day pass for 50 000 VND through SePay (account
    /// 0359123456 at `MBBank`, webhooks authenticated with `api_key`). Returns the guild's
    /// webhook path and the paid role's row id.
    ///
    /// # Panics
    /// If the database refuses.
    pub async fn add_sepay_pass(
        &self,
        guild: GuildId,
        role: RoleId,
        api_key: &str,
    ) -> (String, i64) {
        let key = self
            .add_guild(
                guild,
                "sepay",
                &[
                    ("webhook_api_key", api_key),
                    ("account_number", "0359123456"),
                    ("bank", "MBBank"),
                ],
            )
            .await;
        let paid_role = self
            .add_paid_role(
                guild,
                role,
                (50_000, "VND"),
                Billing::parse("30d").expect("billing"),
                None,
            )
            .await;
        (format!("/webhooks/sepay/{key}"), paid_role)
    }

    /// Puts `role` on sale in `guild` at `price` (minor units, currency code); returns the
    /// paid role's id.
    ///
    /// # Panics
    /// If the price is not valid or the database refuses.
    pub async fn add_paid_role(
        &self,
        guild: GuildId,
        role: RoleId,
        price: (i64, &str),
        billing: Billing,
        product: Option<&str>,
    ) -> i64 {
        let currency = Currency::parse(price.1).expect("currency");
        let new = paid_roles::NewPaidRole {
            guild_id: guild,
            role_id: role,
            name: "Paid".into(),
            price: Money::new(price.0, currency).expect("money"),
            billing,
            product_ref: product.map(str::to_owned),
        };
        self.db
            .call(move |conn| paid_roles::insert(conn, &new))
            .await
            .expect("paid role")
            .id
    }

    /// The single integer `sql` selects (`SELECT count(*) FROM …`).
    ///
    /// # Panics
    /// If the query fails.
    pub async fn count(&self, sql: &'static str) -> i64 {
        self.db
            .call(move |conn| Ok(conn.query_row(sql, [], |r| r.get(0))?))
            .await
            .expect("count")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
