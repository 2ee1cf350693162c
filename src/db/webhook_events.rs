//! `webhook_events`: every verified delivery, for idempotency and audit.
//!
//! The UNIQUE `(provider, scope, external_event_id)` constraint is the deduplication:
//! inserting a delivery that is already there reports a duplicate instead of failing. Event
//! ids are unique per credential [`Scope`] only: the same id verified with another guild's
//! (or the operator's) credentials is another event, so no guild can pre-claim another's.

use rusqlite::{Connection, params};

use super::DbError;
use crate::domain::{GuildId, ProviderId, Scope};

/// What happened to a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It changed a subscription.
    Applied,
    /// It was older than the last event applied: recorded, nothing moved.
    Stale,
    /// A verified event of a kind Docobo does not use.
    Ignored,
    /// The state machine refused it (e.g. refunded → active).
    Refused,
    /// Verified but unusable (unknown guild, role, or an underpayment).
    Rejected,
}

impl Outcome {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Stale => "stale",
            Self::Ignored => "ignored",
            Self::Refused => "refused",
            Self::Rejected => "rejected",
        }
    }
}

/// A delivery to record. `event` is the normalized event as JSON: ids and amounts only,
/// never the raw body (which carries names and emails).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhookEvent<'a> {
    pub provider: &'a ProviderId,
    /// Whose credentials verified it.
    pub scope: Scope,
    pub external_event_id: &'a str,
    pub guild_id: Option<GuildId>,
    pub subscription_id: Option<i64>,
    pub event_type: &'a str,
    pub event_json: &'a str,
    pub outcome: Outcome,
    pub detail: Option<&'a str>,
    /// From a provider's test mode or an owner's test purchase (kept apart in counts).
    pub test: bool,
}

/// Records a delivery unless it was recorded before.
///
/// Returns the new row id, or `None` for a duplicate.
pub fn insert_if_new(
    conn: &Connection,
    event: &NewWebhookEvent<'_>,
) -> Result<Option<i64>, DbError> {
    let inserted = conn.prepare_cached(
        "INSERT INTO webhook_events
             (provider, external_event_id, guild_id, subscription_id, event_type, event, outcome, detail, scope, test)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (provider, scope, external_event_id) DO NOTHING")?.execute(params![
            event.provider.as_str(),
            event.external_event_id,
            event.guild_id.map(GuildId::as_i64),
            event.subscription_id,
            event.event_type,
            event.event_json,
            event.outcome.as_str(),
            event.detail,
            event.scope.key(),
            event.test,
        ],
    )?;
    Ok((inserted == 1).then(|| conn.last_insert_rowid()))
}

/// Counts recorded deliveries (for tests and health).
pub fn count(conn: &Connection) -> Result<i64, DbError> {
    Ok(conn
        .prepare_cached("SELECT count(*) FROM webhook_events")?
        .query_row([], |r| r.get(0))?)
}

/// Whether this delivery was recorded before in this scope.
pub fn exists(
    conn: &Connection,
    provider: &ProviderId,
    scope: Scope,
    external_event_id: &str,
) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM webhook_events
                            WHERE provider = ?1 AND scope = ?2 AND external_event_id = ?3)",
        )?
        .query_row(
            params![provider.as_str(), scope.key(), external_event_id],
            |r| r.get(0),
        )?)
}

/// The provider's customer id of a subscription, from the newest delivery about it that
/// carried one (providers send it with their events; Docobo keeps it only there).
///
/// # Errors
/// A database error.
pub fn customer_of(conn: &Connection, subscription: i64) -> Result<Option<String>, DbError> {
    use rusqlite::OptionalExtension as _;
    Ok(conn
        .prepare_cached(
            "SELECT json_extract(event, '$.customer_id') FROM webhook_events
             WHERE subscription_id = ?1 AND json_extract(event, '$.customer_id') IS NOT NULL
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row([subscription], |row| row.get(0))
        .optional()?)
}

#[cfg(test)]
mod tests {
    use refinery::Target;
    use rusqlite::Connection;

    use crate::db::{open_connection, subscriptions};
    use crate::domain::{GuildId, ProviderId, Scope};

    /// A database at V5: guild 1 on its own Polar credentials, guild 2 with none (an
    /// operator-level purchase, and a `/join` bank-transfer checkout), and events of each,
    /// one without a guild.
    fn v5_database(dir: &std::path::Path) -> Connection {
        let mut conn =
            open_connection(&dir.join("v5.db"), std::time::Duration::from_secs(5)).expect("open");
        super::super::embedded::migrations::runner()
            .set_target(Target::Version(5))
            .run(&mut conn)
            .expect("migrate to V5");
        conn.execute_batch(
            "INSERT INTO guilds (guild_id, webhook_key, provider, credentials) VALUES
                 (1, 'k1', 'polar', x'00'), (2, 'k2', NULL, NULL);
             INSERT INTO paid_roles (id, guild_id, role_id, price_minor, currency, billing) VALUES
                 (1, 1, 10, 499, 'USD', 'monthly'), (2, 2, 20, 50000, 'VND', 'days:30');
             INSERT INTO members (guild_id, user_id) VALUES (1, 100), (2, 200);
             INSERT INTO subscriptions (id, guild_id, user_id, paid_role_id, provider, external_id,
                                        status, payment_code, next_sync_at, sync_version) VALUES
                 (7, 1, 100, 1, 'polar', 'sub-own', 'active', NULL, 123, 4),
                 (8, 2, 200, 2, 'polar', 'sub-op', 'active', NULL, NULL, 0),
                 (9, 2, 200, 2, 'sepay', NULL, 'pending', 'DCB12345', NULL, 0);
             INSERT INTO webhook_events (id, provider, external_event_id, guild_id,
                                         subscription_id, event_type, event, outcome) VALUES
                 (1, 'polar', 'msg-1', 1, 7, 'subscription.active', '{}', 'applied'),
                 (2, 'polar', 'msg-2', 2, 8, 'subscription.active', '{}', 'applied'),
                 (3, 'polar', 'msg-3', 1, NULL, 'checkout.created', '{}', 'ignored'),
                 (4, 'sepay', '5001', NULL, NULL, 'transfer', '{}', 'rejected');",
        )
        .expect("V5 rows");
        conn
    }

    #[test]
    fn v6_moves_every_row_to_the_scope_it_came_from_and_keeps_the_links() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = v5_database(dir.path());
        crate::db::migrate(&mut conn).expect("migrate to V6");
        let scopes: Vec<(i64, String)> = conn
            .prepare("SELECT id, scope FROM subscriptions ORDER BY id")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(
            scopes,
            [
                (7, "1".to_owned()),
                (8, "operator".to_owned()),
                (9, "2".to_owned())
            ]
        );
        let events: Vec<(i64, String, Option<i64>)> = conn
            .prepare("SELECT id, scope, subscription_id FROM webhook_events ORDER BY id")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(
            events,
            [
                (1, "1".to_owned(), Some(7)),
                (2, "operator".to_owned(), Some(8)),
                (3, "1".to_owned(), None),
                (4, "operator".to_owned(), None)
            ]
        );
        // The rest of each row came along, and the lookups find it in its scope only.
        let polar = ProviderId::parse("polar").expect("provider");
        let g1 = GuildId::new(1).expect("guild");
        let own = subscriptions::by_external_id(&conn, &polar, Scope::Guild(g1), "sub-own")
            .expect("read")
            .expect("in guild 1's scope");
        assert_eq!((own.id, own.sync_version), (7, 4));
        assert!(
            subscriptions::by_external_id(&conn, &polar, Scope::Operator, "sub-own")
                .expect("read")
                .is_none()
        );
        assert!(
            super::exists(&conn, &polar, Scope::Guild(g1), "msg-1").expect("read")
                && !super::exists(&conn, &polar, Scope::Operator, "msg-1").expect("read")
        );
        // Nothing is left of the old tables, and every foreign key holds.
        let leftovers: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name LIKE '%_v5'",
                [],
                |r| r.get(0),
            )
            .expect("schema");
        assert_eq!(leftovers, 0);
        let broken: i64 = conn
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .expect("check");
        assert_eq!(broken, 0);
        // A guild-scoped subscription cannot name another guild.
        let wrong = conn.execute(
            "INSERT INTO subscriptions (guild_id, user_id, paid_role_id, provider, scope, external_id, status)
             VALUES (1, 100, 1, 'polar', '2', 'sub-x', 'active')",
            [],
        );
        assert!(wrong.is_err());
    }
}
