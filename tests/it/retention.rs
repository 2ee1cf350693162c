//! Retention (issue 16, item 4): old deliveries, ended subscriptions and members with nothing
//! left go; what a refund or a dispute may still need stays.

use docobo::clock::Clock;
use docobo::retention::Pruner;
use rusqlite::params;

use crate::helpers::{fresh_db, guild, role, seed_guild_with_role};

const DAY: i64 = 24 * 3600 * 1000;
const NOW: i64 = 1_800_000_000_000;
const KEEP_DAYS: u32 = 395;

/// Inserts a member last seen `seen_days_ago`.
fn member(conn: &rusqlite::Connection, user: i64, seen_days_ago: i64) {
    conn.execute(
        "INSERT INTO members (guild_id, user_id, created_at, updated_at) VALUES (1, ?1, ?2, ?2)",
        params![user, NOW - seen_days_ago * DAY],
    )
    .expect("member");
}

/// Inserts a subscription of `user`; returns its id.
fn subscription(
    conn: &rusqlite::Connection,
    user: i64,
    status: &str,
    changed_days_ago: i64,
    period_end_days_ago: Option<i64>,
    role_applied: bool,
) -> i64 {
    let changed = NOW - changed_days_ago * DAY;
    conn.execute(
        "INSERT INTO subscriptions (guild_id, user_id, paid_role_id, provider, external_id, status,
             period_end, role_applied, created_at, updated_at, scope)
         VALUES (1, ?1, 1, 'polar', ?2, ?3, ?4, ?5, ?6, ?6, '1')",
        params![
            user,
            format!("sub-{user}"),
            status,
            period_end_days_ago.map(|d| NOW - d * DAY),
            role_applied,
            changed
        ],
    )
    .expect("subscription");
    conn.last_insert_rowid()
}

/// Inserts a delivery received `days_ago`, of `subscription` if any.
fn event(conn: &rusqlite::Connection, id: &str, subscription: Option<i64>, days_ago: i64) {
    conn.execute(
        "INSERT INTO webhook_events (provider, external_event_id, guild_id, subscription_id,
             event_type, event, received_at, outcome, scope)
         VALUES ('polar', ?1, 1, ?2, 'subscription.updated', '{}', ?3, 'applied', '1')",
        params![id, subscription, NOW - days_ago * DAY],
    )
    .expect("event");
}

fn ids(conn: &rusqlite::Connection, sql: &str) -> Vec<String> {
    let mut statement = conn.prepare(sql).expect("prepare");
    statement
        .query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[tokio::test]
async fn pruning_keeps_what_a_refund_may_need_and_forgets_the_rest() {
    let t = fresh_db();
    t.db.call(|conn| {
        seed_guild_with_role(conn, guild(1), role(10));
        // 1: running, its first payment long ago: everything kept.
        member(conn, 1, 600);
        let running = subscription(conn, 1, "active", 600, None, true);
        event(conn, "running-old", Some(running), 600);
        // 2: expired 500 days ago: its deliveries, itself and the member go.
        member(conn, 2, 500);
        let ended_long_ago = subscription(conn, 2, "expired", 500, Some(501), false);
        event(conn, "ended-long-ago", Some(ended_long_ago), 530);
        // 3: refunded 100 days ago after a payment 450 days ago: kept for the dispute window.
        member(conn, 3, 100);
        let ended_lately = subscription(conn, 3, "refunded", 100, Some(80), false);
        event(conn, "ended-lately", Some(ended_lately), 450);
        // 4: cancelled, period over 500 days ago: goes.
        member(conn, 4, 500);
        let canceled = subscription(conn, 4, "canceled", 520, Some(500), false);
        event(conn, "canceled-long-ago", Some(canceled), 520);
        // 5: cancelled long ago but still entitled (period ends in 10 days): kept.
        member(conn, 5, 400);
        let still_entitled = subscription(conn, 5, "canceled", 400, Some(-10), true);
        event(conn, "still-entitled", Some(still_entitled), 400);
        // 6: revoked long ago, but the role is still on the member at Discord (the removal
        // failed and is being retried): kept until Docobo has removed it.
        member(conn, 6, 500);
        let role_still_on = subscription(conn, 6, "revoked", 500, None, true);
        event(conn, "role-still-on", Some(role_still_on), 500);
        // 7: a checkout never paid, 500 days old: goes.
        member(conn, 7, 500);
        subscription(conn, 7, "pending", 500, None, false);
        // 8 and 9: no subscription; 8 seen two days ago goes, 9 seen an hour ago stays.
        member(conn, 8, 2);
        conn.execute(
            "INSERT INTO members (guild_id, user_id, created_at, updated_at) VALUES (1, 9, ?1, ?1)",
            [NOW - 3_600_000],
        )?;
        // Deliveries that changed nothing: old ones go, recent ones stay.
        event(conn, "orphan-old", None, 400);
        event(conn, "orphan-recent", None, 394);
        Ok(())
    })
    .await
    .expect("seed");

    // Windows of 2 rows: every table takes several.
    let pruner = Pruner::new(t.db.clone(), Clock::fixed(NOW), KEEP_DAYS).window_rows(2);
    let report = pruner.prune().await.expect("prune");
    assert_eq!(
        (report.events, report.subscriptions, report.members),
        (3, 3, 4),
        "{report:?}"
    );
    assert!(report.windows > 6, "{report:?}");

    let (events, subscriptions, members, violations) =
        t.db.read(|conn| {
            Ok((
                ids(
                    conn,
                    "SELECT external_event_id FROM webhook_events ORDER BY external_event_id",
                ),
                ids(
                    conn,
                    "SELECT external_id FROM subscriptions ORDER BY external_id",
                ),
                ids(
                    conn,
                    "SELECT CAST(user_id AS TEXT) FROM members ORDER BY user_id",
                ),
                ids(conn, "SELECT \"table\" FROM pragma_foreign_key_check"),
            ))
        })
        .await
        .expect("read");
    assert_eq!(
        events,
        [
            "ended-lately",
            "orphan-recent",
            "role-still-on",
            "running-old",
            "still-entitled"
        ]
    );
    assert_eq!(subscriptions, ["sub-1", "sub-3", "sub-5", "sub-6"]);
    assert_eq!(members, ["1", "3", "5", "6", "9"]);
    assert!(violations.is_empty(), "{violations:?}");

    // A second pass finds nothing more.
    let again = pruner.prune().await.expect("prune again");
    assert_eq!(
        (again.events, again.subscriptions, again.members),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn keep_days_zero_keeps_everything() {
    let t = fresh_db();
    t.db.call(|conn| {
        seed_guild_with_role(conn, guild(1), role(10));
        member(conn, 2, 5000);
        let ended = subscription(conn, 2, "expired", 5000, Some(5000), false);
        event(conn, "ancient", Some(ended), 5000);
        Ok(())
    })
    .await
    .expect("seed");
    // `run` returns at once with keep_days = 0; `prune` with a cutoff of now would delete,
    // so the setting must stop the task itself.
    let pruner = Pruner::new(t.db.clone(), Clock::fixed(NOW), 0);
    let ran = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        pruner.run(
            std::time::Duration::ZERO,
            std::time::Duration::from_millis(1),
            tokio_util::sync::CancellationToken::new(),
        ),
    )
    .await;
    assert!(ran.is_ok(), "with keep_days = 0 the pruner must not run");
    let left: i64 = t
        .db
        .read(|conn| Ok(conn.query_row("SELECT count(*) FROM webhook_events", [], |r| r.get(0))?))
        .await
        .expect("count");
    assert_eq!(left, 1);
}
