//! Revenue per guild, currency and month (`revenue_months`, migration V9), added to as
//! deliveries are applied, so that the overview reads a dozen rows instead of adding up
//! every delivery, and the totals outlast retention and `forget` (they are anonymous).

use rusqlite::{Connection, params};

use super::DbError;
use crate::domain::{GuildId, UnixMillis};

/// Adds `minor_units` (negative for a refund) to the guild's revenue in `currency` for the
/// UTC month of `at`.
///
/// # Errors
/// A database error.
pub fn add(
    conn: &Connection,
    guild: GuildId,
    currency: &str,
    at: UnixMillis,
    minor_units: i64,
) -> Result<(), DbError> {
    conn.prepare_cached(
        "INSERT INTO revenue_months (guild_id, currency, month, minor_units)
         VALUES (?1, upper(?2), strftime('%Y-%m', ?3 / 1000, 'unixepoch'), ?4)
         ON CONFLICT (guild_id, currency, month)
         DO UPDATE SET minor_units = minor_units + excluded.minor_units",
    )?
    .execute(params![guild.as_i64(), currency, at, minor_units])?;
    Ok(())
}

/// Whether a period ending at `period_end` is one subscription `id` has not been counted
/// for yet; if so, it is now (a repeat of the same period answers `false`).
///
/// # Errors
/// A database error.
pub fn new_period(conn: &Connection, id: i64, period_end: UnixMillis) -> Result<bool, DbError> {
    let changed = conn
        .prepare_cached(
            "UPDATE subscriptions SET paid_through = ?2
             WHERE id = ?1 AND (paid_through IS NULL OR paid_through < ?2)",
        )?
        .execute(params![id, period_end])?;
    Ok(changed == 1)
}

/// Carries the period already counted from subscription `from` to `to` (a plan change's
/// new row), so that the same paid period is not counted twice.
///
/// # Errors
/// A database error.
pub fn carry_paid_through(conn: &Connection, from: i64, to: i64) -> Result<(), DbError> {
    conn.prepare_cached(
        "UPDATE subscriptions SET paid_through =
             (SELECT paid_through FROM subscriptions WHERE id = ?1)
         WHERE id = ?2",
    )?
    .execute(params![from, to])?;
    Ok(())
}

/// The guild's revenue from month `from` (`YYYY-MM`) on: `(month, currency, minor units)`.
///
/// # Errors
/// A database error.
pub fn since(
    conn: &Connection,
    guild: GuildId,
    from: &str,
) -> Result<Vec<(String, String, i64)>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT month, currency, minor_units FROM revenue_months
         WHERE guild_id = ?1 AND month >= ?2",
    )?;
    let rows = stmt.query_map(params![guild.as_i64(), from], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserId;

    /// 2026-02-15T00:00:00Z.
    const FEB: i64 = 1_771_113_600_000;

    fn shop() -> (Connection, GuildId) {
        let mut conn = Connection::open_in_memory().expect("sqlite");
        crate::db::migrate(&mut conn).expect("migrate");
        conn.execute_batch(
            "INSERT INTO guilds (guild_id, webhook_key) VALUES (1, 'k1');
             INSERT INTO paid_roles (id, guild_id, role_id, price_minor, currency, billing)
                 VALUES (1, 1, 10, 499, 'USD', 'monthly');
             INSERT INTO members (guild_id, user_id) VALUES (1, 100);
             INSERT INTO subscriptions (id, guild_id, user_id, paid_role_id, provider, scope,
                                        external_id, status)
                 VALUES (7, 1, 100, 1, 'polar', 'operator', 'sub-7', 'active');",
        )
        .expect("rows");
        (conn, GuildId::new(1).expect("guild"))
    }

    #[test]
    fn a_period_counts_once_and_only_a_later_one_counts_again() {
        let (conn, _) = shop();
        assert!(new_period(&conn, 7, FEB).expect("first"));
        assert!(!new_period(&conn, 7, FEB).expect("repeat"));
        assert!(!new_period(&conn, 7, FEB - 1).expect("older"));
        assert!(new_period(&conn, 7, FEB + 1).expect("renewal"));
        assert!(!new_period(&conn, 8, FEB).expect("no such subscription"));
    }

    #[test]
    fn totals_add_up_per_month_and_currency_and_outlast_forget() {
        let (conn, guild) = shop();
        let day = 86_400_000;
        add(&conn, guild, "usd", FEB, 499).expect("add");
        add(&conn, guild, "USD", FEB + day, 499).expect("add");
        add(&conn, guild, "USD", FEB + 2 * day, -200).expect("refund");
        add(&conn, guild, "VND", FEB, 120_000).expect("add");
        add(&conn, guild, "USD", FEB - 20 * day, 1000).expect("january");
        let mut got = since(&conn, guild, "2026-02").expect("read");
        got.sort();
        assert_eq!(
            got,
            vec![
                ("2026-02".to_owned(), "USD".to_owned(), 798),
                ("2026-02".to_owned(), "VND".to_owned(), 120_000),
            ]
        );
        assert_eq!(since(&conn, guild, "2026-01").expect("read").len(), 3);
        let forgotten =
            crate::db::admin::forget_member(&conn, guild, UserId::new(100).expect("user"))
                .expect("forget");
        assert_eq!(forgotten.subscriptions, 1);
        assert_eq!(since(&conn, guild, "2026-01").expect("read").len(), 3);
    }
}

/// One tier's figures for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierFigures {
    pub guild: i64,
    pub role: i64,
    /// Members entitled now (an active, trialing, past-due, or cancelled but paid-up
    /// subscription; complimentary access and test purchases left out).
    pub members: i64,
    /// Members whose access ended in the last 30 days (expired, refunded, revoked, or
    /// cancelled and past its end; a plan change's old row is not an end).
    pub ended_30d: i64,
}

/// The shop's figures across every guild (see [`shop_figures`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShopFigures {
    /// Largest first.
    pub tiers: Vec<TierFigures>,
    /// This UTC month's revenue: (currency, minor units, refunds taken off).
    pub revenue: Vec<(String, i64)>,
}

/// The shop's figures across every guild: per tier, and this UTC month's revenue per
/// currency (minor units, refunds taken off).
///
/// # Errors
/// A database error.
pub fn shop_figures(conn: &Connection, now: UnixMillis) -> Result<ShopFigures, DbError> {
    const DAYS_30: i64 = 30 * 86_400_000;
    let mut stmt = conn.prepare_cached(
        "SELECT p.guild_id, p.role_id,
                count(DISTINCT CASE WHEN s.status IN ('active', 'trialing', 'past_due', 'canceled')
                                     AND (s.period_end IS NULL OR s.period_end > ?1)
                                    THEN s.user_id END),
                count(DISTINCT CASE WHEN (s.status IN ('expired', 'refunded', 'revoked')
                                          AND s.updated_at > ?1 - ?2
                                          AND (s.external_id IS NOT NULL OR s.payment_code IS NOT NULL))
                                      OR (s.status = 'canceled' AND s.period_end <= ?1
                                          AND s.period_end > ?1 - ?2)
                                    THEN s.user_id END)
         FROM paid_roles p JOIN subscriptions s ON s.paid_role_id = p.id
         WHERE s.test = 0 AND s.provider <> 'admin'
         GROUP BY p.id ORDER BY 3 DESC, 4 DESC, p.guild_id, p.role_id",
    )?;
    let tiers = stmt
        .query_map(params![now, DAYS_30], |r| {
            Ok(TierFigures {
                guild: r.get(0)?,
                role: r.get(1)?,
                members: r.get(2)?,
                ended_30d: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut stmt = conn.prepare_cached(
        "SELECT currency, sum(minor_units) FROM revenue_months
         WHERE month = strftime('%Y-%m', ?1 / 1000, 'unixepoch')
         GROUP BY currency ORDER BY currency",
    )?;
    let revenue = stmt
        .query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ShopFigures { tiers, revenue })
}
