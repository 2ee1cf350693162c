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
