//! What the dashboard's pages show, read from the store (no HTTP or template types here, so
//! that other edges can reuse it).

use std::collections::{BTreeMap, BTreeSet};

use crate::db::{DbError, guilds, paid_roles};
use crate::discord::ui::price_text;
use crate::domain::{GuildId, SubscriptionStatus, is_entitled};
use crate::services::Services;

/// One guild in the operator's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuildLine {
    pub id: u64,
    pub name: String,
    pub provider: String,
    /// Members entitled to at least one paid role now (test purchases left out).
    pub active: usize,
}

/// One paid role on a guild's overview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleLine {
    pub name: String,
    pub price: String,
    pub for_sale: bool,
    pub active: usize,
}

/// A guild's overview page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overview {
    pub id: u64,
    pub name: String,
    pub provider: String,
    pub active: usize,
    pub roles: Vec<RoleLine>,
}

/// [`crate::domain::is_entitled`] as SQL, over a row's `status`, `period_end` and
/// `payment_code` (a bank-transfer pass has no grace), with `:now` and `:grace` bound. Counting
/// in SQL keeps the overview fast at 100 000 subscriptions; the unit test below checks it
/// against the Rust rule for every status and boundary.
const ENTITLED: &str = "((status IN ('active', 'trialing') AND period_end IS NULL) \
     OR (status IN ('active', 'past_due') AND period_end IS NOT NULL \
         AND :now < period_end + CASE WHEN payment_code IS NULL THEN :grace ELSE 0 END) \
     OR (status IN ('canceled', 'trialing') AND period_end IS NOT NULL AND :now < period_end))";

/// Members entitled now, per paid role row id, and overall (test purchases left out).
fn entitled(
    conn: &rusqlite::Connection,
    guild: GuildId,
    now: i64,
    grace_ms: i64,
) -> Result<(BTreeMap<i64, usize>, usize), DbError> {
    let filter = format!("FROM subscriptions WHERE guild_id = :guild AND test = 0 AND {ENTITLED}");
    let params =
        rusqlite::named_params! {":guild": guild.as_i64(), ":now": now, ":grace": grace_ms};
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT paid_role_id, COUNT(DISTINCT user_id) {filter} GROUP BY paid_role_id"
    ))?;
    let per_role = stmt
        .query_map(params, |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
        })?
        .map(|r| r.map(|(role, n)| (role, usize::try_from(n).unwrap_or(0))))
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    let all: i64 = conn
        .prepare_cached(&format!("SELECT COUNT(DISTINCT user_id) {filter}"))?
        .query_row(params, |row| row.get(0))?;
    Ok((per_role, usize::try_from(all).unwrap_or(0)))
}

fn provider_name(guild: &guilds::Guild) -> String {
    guild
        .provider
        .as_ref()
        .map_or_else(|| "none yet".to_owned(), |p| p.as_str().to_owned())
}

/// The guild's overview, or `None` for a guild Docobo does not know.
///
/// # Errors
/// The store cannot be read.
pub async fn overview(services: &Services, guild: GuildId) -> Result<Option<Overview>, DbError> {
    let now = services.now();
    let grace = services.grace_ms;
    services
        .db
        .read_slow(move |conn| {
            let Some(row) = guilds::get(conn, guild)? else {
                return Ok(None);
            };
            let (per_role, all) = entitled(conn, guild, now, grace)?;
            let on_sale: BTreeSet<i64> = paid_roles::for_sale(conn, guild)?
                .into_iter()
                .map(|r| r.id)
                .collect();
            let roles = paid_roles::all(conn, guild)?
                .into_iter()
                .map(|r| RoleLine {
                    price: price_text(r.price, r.billing),
                    for_sale: on_sale.contains(&r.id),
                    active: per_role.get(&r.id).copied().unwrap_or(0),
                    name: if r.name.is_empty() {
                        format!("role {}", r.role_id.get())
                    } else {
                        r.name
                    },
                })
                .collect();
            Ok(Some(Overview {
                id: row.id.get(),
                provider: provider_name(&row),
                name: row.name,
                active: all,
                roles,
            }))
        })
        .await
}

/// Every guild, for the operator.
///
/// # Errors
/// The store cannot be read.
pub async fn guilds(services: &Services) -> Result<Vec<GuildLine>, DbError> {
    let now = services.now();
    let grace = services.grace_ms;
    services
        .db
        .read_slow(move |conn| {
            guilds::all(conn)?
                .into_iter()
                .map(|g| {
                    let (_, all) = entitled(conn, g.id, now, grace)?;
                    Ok(GuildLine {
                        id: g.id.get(),
                        provider: provider_name(&g),
                        name: g.name,
                        active: all,
                    })
                })
                .collect()
        })
        .await
}

/// The guild's name, for the login page.
///
/// # Errors
/// The store cannot be read.
pub async fn guild_name(services: &Services, guild: GuildId) -> Result<Option<String>, DbError> {
    services
        .db
        .read_slow(move |conn| Ok(guilds::get(conn, guild)?.map(|g| g.name)))
        .await
}

/// Rows per members page.
pub const PAGE_ROWS: usize = 50;

/// What the members list is narrowed to. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberFilter {
    /// A Discord user id (exact) or the start of a username.
    pub search: Option<String>,
    /// A paid role's row id.
    pub paid_role: Option<i64>,
    pub status: Option<SubscriptionStatus>,
    pub provider: Option<String>,
    /// Keyset paging: only subscriptions with a smaller id (older) than this.
    pub before: Option<i64>,
}

/// One subscription in the members list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    pub user_id: u64,
    pub username: String,
    pub role: String,
    pub provider: String,
    pub status: String,
    /// `YYYY-MM-DD` (UTC), or empty when the subscription has no end.
    pub period_end: String,
    pub entitled: bool,
}

/// A page of the members list, newest first, and the cursor of the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberPage {
    pub rows: Vec<MemberRow>,
    pub next: Option<i64>,
}

const MEMBERS: &str = "SELECT s.id, s.user_id, m.username, r.name, r.role_id, s.provider, s.status, \
     s.period_end, s.payment_code IS NOT NULL \
     FROM subscriptions s \
     CROSS JOIN paid_roles r ON r.id = s.paid_role_id \
     LEFT JOIN members m ON m.guild_id = s.guild_id AND m.user_id = s.user_id \
     WHERE s.guild_id = ?1 AND s.test = 0 \
       AND (?2 IS NULL OR s.id < ?2) \
       AND (?3 IS NULL OR s.paid_role_id = ?3) \
       AND (?4 IS NULL OR s.status = ?4) \
       AND (?5 IS NULL OR s.provider = ?5) \
       AND (?6 IS NULL OR s.user_id = ?7 OR m.username LIKE ?6 ESCAPE '\\') \
     ORDER BY s.id DESC LIMIT ?8";

/// `text` as a `LIKE` prefix pattern, its wildcards escaped.
fn like_prefix(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

fn ymd(unix_ms: i64) -> String {
    jiff::Timestamp::from_millisecond(unix_ms)
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// A page of the guild's subscriptions (test purchases left out), newest first: keyset
/// paging on the row id, so a page costs the same at row 100 000 as at row 1. (`CROSS
/// JOIN` keeps SQLite walking `subscriptions` by id, newest first, and stopping at the page's
/// end, instead of starting from `paid_roles` and sorting every row.)
///
/// # Errors
/// The store cannot be read.
pub async fn members(
    services: &Services,
    guild: GuildId,
    filter: MemberFilter,
) -> Result<MemberPage, DbError> {
    let now = services.now();
    let grace = services.grace_ms;
    services
        .db
        .read_slow(move |conn| {
            let search = filter
                .search
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty());
            let user = search.and_then(|s| s.parse::<i64>().ok());
            let mut stmt = conn.prepare_cached(MEMBERS)?;
            let mut rows = stmt.query(rusqlite::params![
                guild.as_i64(),
                filter.before,
                filter.paid_role,
                filter.status.map(SubscriptionStatus::as_str),
                filter.provider,
                search.map(like_prefix),
                user,
                i64::try_from(PAGE_ROWS + 1).unwrap_or(i64::MAX),
            ])?;
            let mut out = Vec::new();
            let mut ids = Vec::new();
            while let Some(row) = rows.next()? {
                let status_text: String = row.get(6)?;
                let status =
                    SubscriptionStatus::parse(&status_text).map_err(|e| DbError::Corrupt {
                        table: "subscriptions",
                        message: e.to_string(),
                    })?;
                let period_end: Option<i64> = row.get(7)?;
                let pass: bool = row.get(8)?;
                let role: String = row.get(3)?;
                let role_id: i64 = row.get(4)?;
                let user_id: i64 = row.get(1)?;
                ids.push(row.get::<_, i64>(0)?);
                out.push(MemberRow {
                    user_id: user_id as u64,
                    username: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    role: if role.is_empty() {
                        format!("role {role_id}")
                    } else {
                        role
                    },
                    provider: row.get(5)?,
                    status: status_text,
                    period_end: period_end.map(ymd).unwrap_or_default(),
                    entitled: is_entitled(status, period_end, now, if pass { 0 } else { grace }),
                });
            }
            let next = if out.len() > PAGE_ROWS {
                out.truncate(PAGE_ROWS);
                ids.get(PAGE_ROWS - 1).copied()
            } else {
                None
            };
            Ok(MemberPage { rows: out, next })
        })
        .await
}

/// The guild's paid roles as (row id, name), for the members filter.
///
/// # Errors
/// The store cannot be read.
pub async fn role_choices(
    services: &Services,
    guild: GuildId,
) -> Result<Vec<(i64, String)>, DbError> {
    services
        .db
        .read_slow(move |conn| {
            Ok(paid_roles::all(conn, guild)?
                .into_iter()
                .map(|r| {
                    let name = if r.name.is_empty() {
                        format!("role {}", r.role_id.get())
                    } else {
                        r.name
                    };
                    (r.id, name)
                })
                .collect())
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// VM steps of the members list's query over a guild of `n` subscriptions (beside
    /// another guild as big), newest first: (first page, role + status filter).
    fn members_page_steps(n: i64) -> (i32, i32) {
        let mut conn = rusqlite::Connection::open_in_memory().expect("sqlite");
        crate::db::migrate(&mut conn).expect("migrate");
        conn.execute_batch(
            "PRAGMA foreign_keys = OFF; \
             INSERT INTO guilds (guild_id, webhook_key) VALUES (1, 'k1'), (2, 'k2'); \
             INSERT INTO paid_roles (id, guild_id, role_id, price_minor, currency, billing) \
               VALUES (1, 1, 10, 499, 'USD', 'monthly'), (2, 2, 20, 499, 'USD', 'monthly');",
        )
        .expect("guilds");
        conn.execute(
            "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?1 * 2) \
             INSERT INTO subscriptions (guild_id, user_id, paid_role_id, provider, scope, status) \
             SELECT 1 + i % 2, i, 1 + i % 2, 'polar', 'operator', \
                    CASE WHEN i % 8 < 2 THEN 'expired' ELSE 'active' END FROM k",
            [n],
        )
        .expect("seed");
        let steps = |role: Option<i64>, status: Option<&str>| {
            let mut stmt = conn.prepare(MEMBERS).expect("prepare");
            let no: Option<String> = None;
            let mut rows = stmt
                .query(rusqlite::params![
                    1,
                    None::<i64>,
                    role,
                    status,
                    no,
                    no,
                    None::<i64>,
                    51
                ])
                .expect("query");
            let mut got = 0;
            while rows.next().expect("row").is_some() {
                got += 1;
            }
            assert_eq!(got, 51);
            drop(rows);
            stmt.get_status(rusqlite::StatementStatus::VmStep)
        };
        (steps(None, None), steps(Some(1), Some("expired")))
    }

    /// A page of the members list reads about a page of rows, at 2 000 subscriptions as
    /// at 20 000: it walks the guild's rows newest first and stops, it does not sort them.
    #[test]
    fn a_members_page_costs_the_same_at_any_table_size() {
        let (small, small_filtered) = members_page_steps(2_000);
        let (big, big_filtered) = members_page_steps(20_000);
        assert!(
            big < small * 2,
            "first page: {small} steps at 2 000, {big} at 20 000"
        );
        assert!(
            big_filtered < small_filtered * 2,
            "filtered: {small_filtered} steps at 2 000, {big_filtered} at 20 000"
        );
    }

    /// The SQL rule and the Rust rule agree for every status, with and without a period end,
    /// on both sides of each boundary, for card subscriptions and bank-transfer passes.
    #[test]
    fn the_sql_entitlement_rule_is_the_domain_s() {
        let conn = rusqlite::Connection::open_in_memory().expect("sqlite");
        let sql = format!(
            "WITH s(status, period_end, payment_code) AS (VALUES (?1, ?2, ?3)) SELECT {} FROM s",
            ENTITLED.replace(":now", "?4").replace(":grace", "?5")
        );
        let (now, grace) = (1_000_000_i64, 5_000_i64);
        let mut checked = 0;
        for status in [
            "pending", "active", "trialing", "past_due", "canceled", "paused", "revoked",
            "refunded", "expired",
        ] {
            let parsed = SubscriptionStatus::parse(status).expect("status");
            for end in [
                None,
                Some(now - grace - 1),
                Some(now - grace),
                Some(now - 1),
                Some(now),
                Some(now + 1),
            ] {
                for code in [None, Some("DCB123")] {
                    let by_sql: bool = conn
                        .query_row(
                            &sql,
                            rusqlite::params![status, end, code, now, grace],
                            |r| r.get(0),
                        )
                        .expect("query");
                    let by_rust =
                        is_entitled(parsed, end, now, if code.is_some() { 0 } else { grace });
                    assert_eq!(by_sql, by_rust, "{status} {end:?} {code:?}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 9 * 6 * 2);
    }
}
