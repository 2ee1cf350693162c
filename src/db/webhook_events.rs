//! `webhook_events`: every verified delivery, for idempotency and audit.
//!
//! The UNIQUE `(provider, external_event_id)` constraint is the deduplication: inserting a
//! delivery that is already there reports a duplicate instead of failing.

use rusqlite::{Connection, params};

use super::DbError;
use crate::domain::{GuildId, ProviderId};

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
    pub external_event_id: &'a str,
    pub guild_id: Option<GuildId>,
    pub subscription_id: Option<i64>,
    pub event_type: &'a str,
    pub event_json: &'a str,
    pub outcome: Outcome,
    pub detail: Option<&'a str>,
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
             (provider, external_event_id, guild_id, subscription_id, event_type, event, outcome, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (provider, external_event_id) DO NOTHING")?.execute(params![
            event.provider.as_str(),
            event.external_event_id,
            event.guild_id.map(GuildId::as_i64),
            event.subscription_id,
            event.event_type,
            event.event_json,
            event.outcome.as_str(),
            event.detail,
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

/// Whether this delivery was recorded before.
pub fn exists(
    conn: &Connection,
    provider: &ProviderId,
    external_event_id: &str,
) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM webhook_events WHERE provider = ?1 AND external_event_id = ?2)",
        )?
        .query_row(params![provider.as_str(), external_event_id], |r| r.get(0))?)
}
