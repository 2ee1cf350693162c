//! The overview's charts, from the store: members with access per paid role, revenue per
//! currency by month, and subscriptions begun and ended per week. Each chart is drawn as
//! server-rendered SVG bars (no script, no image requests) and is also given as a table, so
//! it reads without colour and without sight.

use std::collections::BTreeMap;

use crate::db::DbError;
use crate::domain::{Currency, GuildId, Money};
use crate::services::Services;

/// Months of revenue the overview shows, this one included.
pub const MONTHS: usize = 12;
/// Weeks of begun and ended subscriptions the overview shows, this one included.
pub const WEEKS: usize = 12;

const WEEK_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// What the overview's trend charts show.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Trends {
    /// Per currency: the net revenue (payments less refunds) of each of the last
    /// [`MONTHS`] calendar months (UTC), oldest first.
    pub revenue: Vec<(String, Vec<Month>)>,
    /// The last [`WEEKS`] weeks (seven-day spans ending now), oldest first.
    pub weeks: Vec<Week>,
}

/// One month's net revenue in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Month {
    /// `YYYY-MM`.
    pub month: String,
    pub minor_units: i64,
    /// As an owner reads it: `12.50 USD`.
    pub text: String,
}

/// One week's subscriptions begun and ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Week {
    /// The week's first day, `MM-DD` (UTC).
    pub from: String,
    /// Subscriptions created in the week (unpaid bank-transfer checkouts left out).
    pub begun: u64,
    /// Subscriptions that expired, were refunded or were revoked in the week (by their last
    /// change).
    pub ended: u64,
}

const BEGUN: &str = "SELECT (:now - created_at) / :week, COUNT(*) FROM subscriptions \
     WHERE guild_id = :guild AND test = 0 AND status != 'pending' AND created_at > :from \
     GROUP BY 1";

const ENDED: &str = "SELECT (:now - updated_at) / :week, COUNT(*) FROM subscriptions \
     WHERE guild_id = :guild AND test = 0 AND status IN ('expired', 'refunded', 'revoked') \
       AND updated_at > :from \
     GROUP BY 1";

/// The first instant (unix ms) of the month `back` months before `now`'s, and the `YYYY-MM`
/// keys of that month through `now`'s, oldest first.
fn months(now: i64) -> (i64, Vec<String>) {
    let today = jiff::Timestamp::from_millisecond(now)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let first = today.first_of_month();
    let keys: Vec<jiff::civil::Date> = (0..MONTHS)
        .rev()
        .filter_map(|back| {
            first
                .checked_sub(jiff::Span::new().months(i64::try_from(back).ok()?))
                .ok()
        })
        .collect();
    let from = keys
        .first()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map_or(0, |z| z.timestamp().as_millisecond());
    (
        from,
        keys.iter()
            .map(|d| d.strftime("%Y-%m").to_string())
            .collect(),
    )
}

fn money_text(minor_units: i64, currency: &str) -> String {
    Currency::parse(currency)
        .and_then(|c| Money::new(minor_units.saturating_abs(), c))
        .map_or_else(
            |_| format!("{minor_units} {currency}"),
            |m| {
                if minor_units < 0 {
                    format!("−{m}")
                } else {
                    m.to_string()
                }
            },
        )
}

/// Counts per week index (0: the last seven days) from a `(week, count)` query.
fn per_week(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[(&str, &dyn rusqlite::ToSql)],
) -> Result<[u64; WEEKS], DbError> {
    let mut out = [0; WEEKS];
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    while let Some(row) = rows.next()? {
        let (week, n): (i64, i64) = (row.get(0)?, row.get(1)?);
        if let Some(slot) = usize::try_from(week).ok().and_then(|w| out.get_mut(w)) {
            *slot = u64::try_from(n).unwrap_or(0);
        }
    }
    Ok(out)
}

/// The guild's trends at `now`.
fn read(conn: &rusqlite::Connection, guild: GuildId, now: i64) -> Result<Trends, DbError> {
    let (_, keys) = months(now);
    let mut by_currency: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    {
        // Kept as deliveries are applied (`crate::db::revenue`): payments and bank
        // transfers, each subscription event that starts a later paid period, less refunds;
        // test purchases left out.
        let first = keys.first().map_or("", String::as_str);
        for (month, currency, sum) in crate::db::revenue::since(conn, guild, first)? {
            *by_currency
                .entry(currency)
                .or_default()
                .entry(month)
                .or_default() += sum;
        }
    }
    let revenue = by_currency
        .into_iter()
        .map(|(currency, sums)| {
            let months = keys
                .iter()
                .map(|k| {
                    let minor_units = sums.get(k).copied().unwrap_or(0);
                    Month {
                        month: k.clone(),
                        minor_units,
                        text: money_text(minor_units, &currency),
                    }
                })
                .collect();
            (currency, months)
        })
        .collect();
    let week_from = now - WEEK_MS * i64::try_from(WEEKS).unwrap_or(0);
    let params: [(&str, &dyn rusqlite::ToSql); 4] = [
        (":guild", &guild.as_i64()),
        (":now", &now),
        (":week", &WEEK_MS),
        (":from", &week_from),
    ];
    let begun = per_week(conn, BEGUN, &params)?;
    let ended = per_week(conn, ENDED, &params)?;
    let weeks = (0..WEEKS)
        .rev()
        .map(|w| Week {
            from: jiff::Timestamp::from_millisecond(
                now - WEEK_MS * i64::try_from(w + 1).unwrap_or(0) + 1,
            )
            .map(|t| t.strftime("%m-%d").to_string())
            .unwrap_or_default(),
            begun: begun.get(w).copied().unwrap_or(0),
            ended: ended.get(w).copied().unwrap_or(0),
        })
        .collect();
    Ok(Trends { revenue, weeks })
}

/// The guild's trends now.
///
/// # Errors
/// The store cannot be read.
pub async fn trends(services: &Services, guild: GuildId) -> Result<Trends, DbError> {
    let now = services.now();
    services
        .db
        .read_slow(move |conn| read(conn, guild, now))
        .await
}

/// A bar chart as the template draws it: bars in a `WIDTH` × `HEIGHT` view box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    pub title: String,
    /// The view box ([`WIDTH`] × [`HEIGHT`]) and where labels sit.
    pub width: u32,
    pub height: u32,
    pub label_y: u32,
    /// The largest value, as text (the scale's top).
    pub top: String,
    pub bars: Vec<Bar>,
    /// What each series is, for the legend (series 0 solid, 1 hatched).
    pub series: Vec<&'static str>,
    /// The chart as a table: a header, then one row per label.
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// One bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
    /// 0 or 1: solid or hatched (told apart without colour).
    pub series: usize,
    /// Label and value, for the bar's tooltip and screen readers.
    pub text: String,
    /// The label under the bar's group, on the first bar of a group only.
    pub label: Option<String>,
    pub label_x: u32,
}

/// The view box.
pub const WIDTH: u32 = 600;
pub const HEIGHT: u32 = 150;
/// The widest bar.
const MAX_BAR: u32 = 60;
/// The room under the bars for labels.
const LABELS: u32 = 20;

/// A bar's label, cut to fit under it (the table has it whole).
fn short(label: &str) -> String {
    const MAX: usize = 10;
    if label.chars().count() <= MAX {
        label.to_owned()
    } else {
        let mut cut: String = label.chars().take(MAX - 1).collect();
        cut.push('…');
        cut
    }
}

/// One group of bars: a label and one `(value, text)` per series.
#[derive(Debug, Clone)]
pub struct Group {
    pub label: String,
    pub values: Vec<(u64, String)>,
}

impl Chart {
    /// Lays out `groups` side by side, each with one bar per series, scaled to the largest
    /// value (a chart of zeros draws no bars).
    #[must_use]
    pub fn new(title: &str, series: Vec<&'static str>, groups: &[Group]) -> Self {
        let max = groups
            .iter()
            .flat_map(|g| g.values.iter().map(|(v, _)| *v))
            .max()
            .unwrap_or(0);
        let top = groups
            .iter()
            .flat_map(|g| g.values.iter())
            .find(|(v, _)| *v == max)
            .map_or_else(|| "0".to_owned(), |(_, t)| t.clone());
        let n = u32::try_from(groups.len().max(1)).unwrap_or(1);
        let per = u32::try_from(series.len().max(1)).unwrap_or(1);
        let slot = WIDTH / n;
        let gap = (slot / 5).max(1);
        // A lone bar stays a bar, not a band across the chart.
        let w = ((slot - gap) / per).clamp(1, MAX_BAR);
        let plot = HEIGHT - LABELS;
        let mut bars = Vec::new();
        for (i, group) in groups.iter().enumerate() {
            let left = u32::try_from(i).unwrap_or(0) * slot + gap / 2;
            for (s, (value, text)) in group.values.iter().enumerate() {
                // At most `plot`: the ratio is ≤ 1 (no bars when every value is 0). u128
                // keeps the product of two large values from overflowing.
                let h = (u128::from(plot) * u128::from(*value))
                    .checked_div(u128::from(max))
                    .map_or(0, |h| u32::try_from(h).unwrap_or(plot));
                bars.push(Bar {
                    x: left + u32::try_from(s).unwrap_or(0) * w,
                    y: plot - h,
                    w: w.saturating_sub(1).max(1),
                    h,
                    series: s,
                    text: format!("{}: {text}", group.label),
                    label: (s == 0).then(|| short(&group.label)),
                    label_x: left + (w * per) / 2,
                });
            }
        }
        let mut header = vec![String::new()];
        header.extend(series.iter().map(|s| (*s).to_owned()));
        let rows = groups
            .iter()
            .map(|g| {
                let mut row = vec![g.label.clone()];
                row.extend(g.values.iter().map(|(_, t)| t.clone()));
                row
            })
            .collect();
        Self {
            title: title.to_owned(),
            width: WIDTH,
            height: HEIGHT,
            label_y: HEIGHT - 5,
            top,
            bars,
            series,
            header,
            rows,
        }
    }

    /// Whether there is anything to draw.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.bars.iter().all(|b| b.h == 0)
    }
}

/// The overview's charts: members per paid role, revenue per currency, weeks.
#[must_use]
pub fn charts(roles: &[super::data::RoleLine], trends: &Trends) -> Vec<Chart> {
    let mut out = vec![Chart::new(
        "Members with access, per paid role",
        vec!["members"],
        &roles
            .iter()
            .map(|r| Group {
                label: r.name.clone(),
                values: vec![(r.active as u64, r.active.to_string())],
            })
            .collect::<Vec<_>>(),
    )];
    for (currency, months) in &trends.revenue {
        out.push(Chart::new(
            &format!("Revenue in {currency}, per month (payments less refunds)"),
            vec!["revenue"],
            &months
                .iter()
                .map(|m| Group {
                    label: m.month.get(2..).unwrap_or(&m.month).to_owned(),
                    values: vec![(u64::try_from(m.minor_units).unwrap_or(0), m.text.clone())],
                })
                .collect::<Vec<_>>(),
        ));
    }
    out.push(Chart::new(
        "Subscriptions begun and ended, per week",
        vec!["begun", "ended"],
        &trends
            .weeks
            .iter()
            .map(|w| Group {
                label: w.from.clone(),
                values: vec![
                    (w.begun, w.begun.to_string()),
                    (w.ended, w.ended.to_string()),
                ],
            })
            .collect::<Vec<_>>(),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_run_back_from_this_one_across_a_year_end() {
        // 2026-02-15T00:00:00Z
        let (from, keys) = months(1_771_113_600_000);
        assert_eq!(keys.len(), MONTHS);
        assert_eq!(keys.first().map(String::as_str), Some("2025-03"));
        assert_eq!(keys.last().map(String::as_str), Some("2026-02"));
        // 2025-03-01T00:00:00Z
        assert_eq!(from, 1_740_787_200_000);
    }

    #[test]
    fn bars_scale_to_the_largest_value_and_zeros_draw_nothing() {
        let groups = [
            Group {
                label: "a".into(),
                values: vec![(10, "10".into()), (5, "5".into())],
            },
            Group {
                label: "b".into(),
                values: vec![(0, "0".into()), (2, "2".into())],
            },
        ];
        let chart = Chart::new("t", vec!["x", "y"], &groups);
        let plot = HEIGHT - LABELS;
        let heights: Vec<u32> = chart.bars.iter().map(|b| b.h).collect();
        assert_eq!(heights, vec![plot, plot / 2, 0, plot / 5]);
        assert!(chart.bars.iter().all(|b| b.y + b.h == plot));
        assert!(chart.bars.iter().all(|b| b.x + b.w <= WIDTH));
        assert_eq!(chart.top, "10");
        assert_eq!(chart.rows[1], vec!["b", "0", "2"]);
        let zeros = Chart::new(
            "t",
            vec!["x"],
            &[Group {
                label: "a".into(),
                values: vec![(0, "0".into())],
            }],
        );
        assert!(zeros.is_empty());
    }

    /// Guild 1's deliveries of January and February 2026 as V8 recorded them, and what must
    /// not count; returns February the 15th.
    fn seed_revenue(conn: &rusqlite::Connection) -> i64 {
        use serde_json::json;
        // The events name subscription rows this test does not need.
        conn.execute_batch(
            "PRAGMA foreign_keys = OFF; \
             INSERT INTO guilds (guild_id, webhook_key) VALUES (1, 'k1'), (2, 'k2');",
        )
        .expect("guilds");
        // 2026-02-15 and 2026-01-15, UTC.
        let (feb, jan, day) = (1_771_113_600_000_i64, 1_768_435_200_000_i64, 86_400_000);
        let sub = |status: &str, end: i64, minor: i64| {
            json!({"kind": "subscription", "status": status, "period_end": end,
                   "amount": {"minor_units": minor, "currency": "usd"}})
        };
        let usd = |kind: &str, minor: i64| json!({"kind": kind, "amount": {"minor_units": minor, "currency": "USD"}});
        let refund = json!({"kind": "refund",
                            "refund": {"minor_units": 200, "currency": "USD", "partial": true}});
        let partial = json!({"kind": "refund",
                             "refund": {"minor_units": 100, "currency": "USD", "partial": true}});
        let vnd = json!({"kind": "payment", "amount": {"minor_units": 120_000, "currency": "VND"}});
        // (guild, received, subscription row, event, outcome, test)
        #[rustfmt::skip]
        let events = [
            // January: a new subscription (499), its repeat (Stripe's second event), a
            // one-time payment (1000), a trial.
            (1, jan, 1, sub("active", jan + 30 * day, 499), "applied", 0),
            (1, jan + 1, 1, sub("active", jan + 30 * day, 499), "applied", 0),
            (1, jan + 2, 3, usd("payment", 1000), "applied", 0),
            (1, jan + 3, 4, sub("trialing", jan + 7 * day, 499), "applied", 0),
            // February: the renewal (499), a cancellation of that period, a refund of 200,
            // a bank transfer in VND; then a test purchase, another guild, a rejected event.
            (1, feb, 1, sub("active", feb + 30 * day, 499), "applied", 0),
            (1, feb + 1, 1, sub("canceled", feb + 30 * day, 499), "applied", 0),
            (1, feb + 2, 3, refund, "applied", 0),
            (1, feb + 3, 5, vnd, "applied", 0),
            (1, feb + 4, 6, sub("active", feb + 30 * day, 999), "applied", 1),
            (2, feb + 5, 7, sub("active", feb + 30 * day, 999), "applied", 0),
            (1, feb + 6, 8, sub("active", feb + 30 * day, 999), "rejected", 0),
            // A partial refund of 100, recorded as ignored (access kept): the money went back.
            (1, feb + 7, 3, partial, "ignored", 0),
        ];
        for (n, (guild, at, row, event, outcome, test)) in events.into_iter().enumerate() {
            conn.execute(
                "INSERT INTO webhook_events (provider, scope, external_event_id, guild_id, \
                 subscription_id, event_type, event, received_at, outcome, test) \
                 VALUES ('p', 'operator', ?1, ?2, ?3, 't', ?4, ?5, ?6, ?7)",
                rusqlite::params![
                    format!("e{n}"),
                    guild,
                    row,
                    event.to_string(),
                    at,
                    outcome,
                    test
                ],
            )
            .expect("event");
        }
        feb
    }

    /// Migration V9 adds up the deliveries kept before it: payments, the renewals among
    /// subscription events, and refunds (partial ones too), per month; a repeat of a period,
    /// a trial, a test purchase, another guild and a refused event count nothing.
    #[test]
    fn revenue_counts_each_paid_period_once_less_refunds() {
        let mut conn = rusqlite::Connection::open_in_memory().expect("sqlite");
        crate::db::migrate_to(&mut conn, 8).expect("migrate to V8");
        let feb = seed_revenue(&conn);
        crate::db::migrate(&mut conn).expect("migrate");
        let day = 86_400_000_i64;
        let trends = read(&conn, GuildId::new(1).expect("guild"), feb + 10 * day).expect("read");
        let month = |currency: &str, key: &str| {
            trends
                .revenue
                .iter()
                .find(|(c, _)| c == currency)
                .and_then(|(_, months)| months.iter().find(|m| m.month == key))
                .map(|m| (m.minor_units, m.text.clone()))
        };
        assert_eq!(month("USD", "2026-01"), Some((1499, "14.99 USD".into())));
        assert_eq!(month("USD", "2026-02"), Some((199, "1.99 USD".into())));
        assert_eq!(
            month("VND", "2026-02"),
            Some((120_000, "120000 VND".into()))
        );
        assert_eq!(month("USD", "2025-12"), Some((0, "0.00 USD".into())));
        assert_eq!(trends.revenue.len(), 2, "{:?}", trends.revenue);
    }

    #[test]
    fn money_reads_as_the_owner_writes_it() {
        assert_eq!(money_text(1250, "USD"), "12.50 USD");
        assert_eq!(money_text(120_000, "VND"), "120000 VND");
        assert_eq!(money_text(-499, "USD"), "−4.99 USD");
        assert_eq!(money_text(7, "XX"), "7 XX");
    }
}
