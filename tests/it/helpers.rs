//! Shared test setup: real SQLite files in temporary folders.

use std::time::Duration;

use docobo::db::{self, Db, guilds, paid_roles};
use docobo::domain::{Billing, Currency, GuildId, Money, ProviderId, RoleId};

pub const BUSY: Duration = Duration::from_secs(5);

/// A fresh, migrated database in its own temporary folder (deleted on drop).
pub struct TestDb {
    pub db: Db,
    pub dir: tempfile::TempDir,
}

pub fn fresh_db() -> TestDb {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, _) = Db::open(&dir.path().join("docobo.db"), BUSY).expect("open");
    TestDb { db, dir }
}

pub fn guild(n: u64) -> GuildId {
    GuildId::new(n).expect("guild id")
}

pub fn role(n: u64) -> RoleId {
    RoleId::new(n).expect("role id")
}

pub fn provider(name: &str) -> ProviderId {
    ProviderId::parse(name).expect("provider id")
}

pub fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::parse("USD").expect("usd")).expect("money")
}

/// Inserts a guild and a monthly paid role for sale in it.
pub fn seed_guild_with_role(
    conn: &rusqlite::Connection,
    g: GuildId,
    r: RoleId,
) -> paid_roles::PaidRole {
    guilds::insert(
        conn,
        &guilds::Guild {
            id: g,
            name: "Test guild".into(),
            owner_id: None,
            provider: Some(provider("polar")),
            credentials: None,
            webhook_key: format!("key-{g}"),
            log_channel_id: None,
        },
    )
    .expect("guild");
    paid_roles::insert(
        conn,
        &paid_roles::NewPaidRole {
            guild_id: g,
            role_id: r,
            name: "Gold".into(),
            price: usd(499),
            billing: Billing::Monthly,
            product_ref: Some("prod_1".into()),
        },
    )
    .expect("paid role")
}

pub fn open_raw(path: &std::path::Path) -> rusqlite::Connection {
    db::open_connection(path, BUSY).expect("open")
}

/// The shop the durability tests load: guild 4242 selling role 77 through Polar.
pub const LOAD_GUILD: u64 = 4242;
const LOAD_PRODUCT: &str = "prod-load";
const LOAD_SECRET: &str = "polar_whs_load";

/// Sets up [`LOAD_GUILD`]'s Polar shop in `app`; returns where a
/// [`docobo_testkit::load::Load`] sends its deliveries.
pub async fn load_shop(app: &docobo_testkit::app::TestApp) -> docobo_testkit::load::Target {
    let g = guild(LOAD_GUILD);
    let key = app
        .add_guild(
            g,
            "polar",
            &[("webhook_secret", LOAD_SECRET), ("access_token", "x")],
        )
        .await;
    app.add_paid_role(
        g,
        role(77),
        (499, "USD"),
        Billing::Monthly,
        Some(LOAD_PRODUCT),
    )
    .await;
    docobo_testkit::load::Target {
        url: app.url(&format!("/webhooks/polar/{key}")),
        secret: LOAD_SECRET.into(),
        guild: LOAD_GUILD,
        product: LOAD_PRODUCT.into(),
    }
}

/// Warnings and errors logged anywhere in this test process (every test's app, every
/// thread: the database writer logs on its own), kept for [`log_lines`].
static GLOBAL_LOG: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

/// Installs (once) the process-wide subscriber that keeps warnings and errors in
/// [`GLOBAL_LOG`]. tracing caches, for every thread at once, whether anyone wants a log
/// statement: with a process-wide subscriber that wants warnings, a statement first reached
/// on a thread with no subscriber is never cached as unwanted, so per-thread captures see it.
pub fn install_global_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing::subscriber::set_global_default(
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::WARN)
                .with_ansi(false)
                .with_writer(|| GlobalLog)
                .finish(),
        );
    });
}

/// The warning and error lines logged so far by any thread (see [`install_global_log`]).
pub fn log_lines() -> Vec<String> {
    install_global_log();
    let log = GLOBAL_LOG
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    String::from_utf8_lossy(&log)
        .lines()
        .map(str::to_owned)
        .collect()
}

struct GlobalLog;

impl std::io::Write for GlobalLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        GLOBAL_LOG
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `GET /health`: its status and JSON.
pub async fn health(app: &docobo_testkit::app::TestApp) -> (u16, serde_json::Value) {
    let response = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("health");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// The subscription a provider knows by `external_id`, in whichever credential scope made
/// it (tests that do not care which; the app itself always looks in one scope).
pub fn subscription_any_scope(
    conn: &rusqlite::Connection,
    provider: &ProviderId,
    external_id: &str,
) -> Result<Option<db::subscriptions::Subscription>, db::DbError> {
    use rusqlite::OptionalExtension as _;
    let scope: Option<String> = conn
        .query_row(
            "SELECT scope FROM subscriptions WHERE provider = ?1 AND external_id = ?2 ORDER BY id LIMIT 1",
            [provider.as_str(), external_id],
            |r| r.get(0),
        )
        .optional()?;
    let Some(scope) = scope.as_deref().and_then(docobo::domain::Scope::parse) else {
        return Ok(None);
    };
    db::subscriptions::by_external_id(conn, provider, scope, external_id)
}

/// Log lines written on this thread while a test runs (a `tracing` writer). The test
/// runtime has one thread, which the server's tasks share: the capture sees what they log.
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    /// Captures warnings and errors until the guard drops.
    pub fn warnings() -> (Self, tracing::subscriber::DefaultGuard) {
        Self::at(tracing::Level::WARN)
    }

    /// Captures what is logged at `level` and above until the guard drops.
    pub fn at(level: tracing::Level) -> (Self, tracing::subscriber::DefaultGuard) {
        // A process-wide subscriber that wants warnings (see `install_global_log` for why).
        install_global_log();
        let logs = Self::default();
        let writer = logs.clone();
        let guard = tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_max_level(level)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish(),
        );
        (logs, guard)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(
            &self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Waits (up to [`crate::bot::WAIT`]) until the count `sql` selects is `want`.
pub(crate) async fn wait_for_count(app: &crate::app::TestApp, sql: &'static str, want: i64) {
    let deadline = tokio::time::Instant::now() + crate::bot::WAIT;
    loop {
        let got = app.count(sql).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{sql}: {got}, want {want}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
