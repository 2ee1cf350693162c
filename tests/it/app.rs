//! `spawn_app`: the real `App` on 127.0.0.1:0 with a real SQLite file in a temp folder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use docobo_testkit::FakeDiscord;

use docobo::db::{Db, guilds, paid_roles};
use docobo::domain::{Billing, Currency, GuildId, Money, ProviderId, RoleId};
use docobo::secrets::CredentialBox;
use docobo::{App, Config};
use tokio_util::sync::CancellationToken;

pub struct TestApp {
    pub addr: SocketAddr,
    /// The fake Discord the bot is connected to.
    _discord: Arc<FakeDiscord>,
    pub db: Db,
    pub credentials: CredentialBox,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// The settings every test app gets; `extra` adds or overrides.
fn settings(dir: &Path, discord: &FakeDiscord, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let path = |p: &str| dir.join(p).display().to_string();
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache");
    let mut env: Vec<(String, String)> = vec![
        ("DOCOBO_DISCORD__TOKEN".into(), discord.token().into()),
        ("DOCOBO_DISCORD__API_URL".into(), discord.rest_url().into()),
        ("DOCOBO_SERVER__BIND".into(), "127.0.0.1".into()),
        ("DOCOBO_SERVER__PORT".into(), "0".into()),
        ("DOCOBO_DATABASE__PATH".into(), path("docobo.db")),
        ("DOCOBO_PLUGINS__DIR".into(), path("plugins")),
        (
            "DOCOBO_PLUGINS__CACHE_DIR".into(),
            cache.display().to_string(),
        ),
        ("DOCOBO_SECRETS__KEY_PATH".into(), path("docobo.key")),
        ("DOCOBO_LOG__FORMAT".into(), "json".into()),
    ];
    for (k, v) in extra {
        env.retain(|(name, _)| name != k);
        env.push(((*k).into(), (*v).into()));
    }
    env
}

impl TestApp {
    /// Starts the app with its data in `dir` (reuse a folder to restart on the same data),
    /// connected to a fake Discord of its own that knows no guilds.
    pub async fn start(dir: &Path, extra: &[(&str, &str)]) -> Self {
        let discord = FakeDiscord::builder().start().await.expect("fake Discord");
        Self::start_with(dir, Arc::new(discord), extra).await
    }

    /// Starts the app connected to `discord`.
    pub async fn start_with(dir: &Path, discord: Arc<FakeDiscord>, extra: &[(&str, &str)]) -> Self {
        let config = Config::load(None, false, settings(dir, &discord, extra)).expect("config");
        let app = App::build(config).await.expect("app builds");
        let addr = app.http_addr();
        let db = app.db().clone();
        let credentials = app.credentials().clone();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Self {
            addr,
            _discord: discord,
            db,
            credentials,
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            shutdown,
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops the app and waits until it has drained.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("join").expect("clean stop");
        }
    }

    /// Registers a guild using `provider` with `config` as its (encrypted) credentials;
    /// returns its webhook key.
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

pub fn fixtures() -> PathBuf {
    docobo_testkit::fixtures::webhooks()
}
