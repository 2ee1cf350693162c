//! How long pruning holds the database writer (issue 16, item 4).
//!
//! A database with 1 million deliveries (`DOCOBO_BENCH_RETENTION_ROWS`), 200 000
//! subscriptions and their members, most of them past `keep_days`; one pruning pass while a
//! small write is queued every millisecond, as deliveries would be. Prints, per window size,
//! what was deleted, how long the pass took, the longest window, and the latency of the
//! small writes during the pass next to a baseline without pruning: the pause a delivery
//! sees.
//!
//! `cargo bench --bench retention`

use std::time::{Duration, Instant};

use docobo::clock::Clock;
use docobo::db::Db;
use docobo::retention::Pruner;
use rusqlite::params;

const DAY: i64 = 24 * 3600 * 1000;
const NOW: i64 = 1_800_000_000_000;

fn rows() -> i64 {
    std::env::var("DOCOBO_BENCH_RETENTION_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// Fills the database: `events` deliveries, one subscription per five of them (four in
/// five ended 500 days ago, the rest running), a member per subscription.
fn fill(db_path: &std::path::Path, events: i64) {
    let mut conn = rusqlite::Connection::open(db_path).expect("open");
    let tx = conn.transaction().expect("tx");
    tx.execute(
        "INSERT INTO guilds (guild_id, name, webhook_key) VALUES (1, 'Bench', 'k')",
        [],
    )
    .expect("guild");
    tx.execute(
        "INSERT INTO paid_roles (guild_id, role_id, price_minor, currency, billing) VALUES (1, 10, 499, 'USD', 'monthly')",
        [],
    )
    .expect("role");
    let subscriptions = events / 5;
    {
        let mut member = tx
            .prepare("INSERT INTO members (guild_id, user_id, created_at, updated_at) VALUES (1, ?1, ?2, ?2)")
            .expect("member");
        let mut subscription = tx
            .prepare(
                "INSERT INTO subscriptions (guild_id, user_id, paid_role_id, provider, external_id, status,
                     period_end, role_applied, created_at, updated_at, scope)
                 VALUES (1, ?1, 1, 'polar', ?2, ?3, ?4, ?5, ?6, ?6, '1')",
            )
            .expect("subscription");
        for n in 0..subscriptions {
            let ended = n % 5 != 0;
            let changed = if ended { NOW - 500 * DAY } else { NOW - DAY };
            member.execute(params![n, changed]).expect("member");
            subscription
                .execute(params![
                    n,
                    format!("sub-{n}"),
                    if ended { "expired" } else { "active" },
                    if ended {
                        NOW - 501 * DAY
                    } else {
                        NOW + 30 * DAY
                    },
                    !ended,
                    changed
                ])
                .expect("subscription");
        }
        let mut event = tx
            .prepare(
                "INSERT INTO webhook_events (provider, external_event_id, guild_id, subscription_id,
                     event_type, event, received_at, outcome, scope)
                 VALUES ('polar', ?1, 1, ?2, 'subscription.updated', '{\"status\":\"active\"}', ?3, 'applied', '1')",
            )
            .expect("event");
        for n in 0..events {
            // Old first (rowids grow with time): 90 % of them past 395 days.
            let age = if n < events * 9 / 10 {
                600 - n * 200 / events
            } else {
                10
            };
            event
                .execute(params![
                    format!("evt-{n}"),
                    n % subscriptions + 1,
                    NOW - age * DAY
                ])
                .expect("event");
        }
    }
    tx.commit().expect("commit");
}

/// Queues a one-row write every millisecond until `stop`; returns their latencies.
async fn probe_writes(db: Db, stop: tokio_util::sync::CancellationToken) -> Vec<Duration> {
    let mut latencies = Vec::new();
    let mut n = 0_i64;
    while !stop.is_cancelled() {
        n += 1;
        let started = Instant::now();
        db.write(move |conn| {
            conn.execute(
                "UPDATE guilds SET settings = ?1 WHERE guild_id = 1",
                [format!("{{\"probe\":{n}}}")],
            )?;
            Ok(())
        })
        .await
        .expect("probe write");
        latencies.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    latencies.sort();
    latencies
}

fn quantile(sorted: &[Duration], per_mille: usize) -> f64 {
    sorted
        .get((sorted.len().saturating_sub(1)) * per_mille / 1000)
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let events = rows();
    println!(
        "retention: {events} deliveries, {} subscriptions (4 in 5 ended 500 days ago), keep_days = 395",
        events / 5
    );
    for window in [100, 500, 2000] {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("docobo.db");
        // Migrated by Docobo, filled in one transaction, then opened as Docobo opens it.
        drop(Db::open(&path, Duration::from_secs(5)).expect("migrate"));
        let filling = Instant::now();
        fill(&path, events);
        let filled = filling.elapsed();
        let (db, _) = Db::open(&path, Duration::from_secs(5)).expect("open");
        runtime.block_on(async {
            // The baseline: the same probes for a second without pruning.
            let stop = tokio_util::sync::CancellationToken::new();
            let probes = tokio::spawn(probe_writes(db.clone(), stop.clone()));
            tokio::time::sleep(Duration::from_secs(1)).await;
            stop.cancel();
            let baseline = probes.await.expect("probes");

            let stop = tokio_util::sync::CancellationToken::new();
            let probes = tokio::spawn(probe_writes(db.clone(), stop.clone()));
            let pruner = Pruner::new(db.clone(), Clock::fixed(NOW), 395).window_rows(window);
            let started = Instant::now();
            let report = pruner.prune().await.expect("prune");
            let pass = started.elapsed();
            stop.cancel();
            let during = probes.await.expect("probes");
            println!(
                "window {window:>5} rows: filled in {:.1} s; pass {:.1} s, {} windows, deleted {} deliveries, {} subscriptions, {} members; longest window {:.2} ms",
                filled.as_secs_f64(),
                pass.as_secs_f64(),
                report.windows,
                report.events,
                report.subscriptions,
                report.members,
                report.longest_window.as_secs_f64() * 1e3
            );
            println!(
                "  a small write queued every ms: without pruning p50 {:.2} p99 {:.2} max {:.2} ms; during the pass p50 {:.2} p99 {:.2} max {:.2} ms",
                quantile(&baseline, 500),
                quantile(&baseline, 990),
                quantile(&baseline, 1000),
                quantile(&during, 500),
                quantile(&during, 990),
                quantile(&during, 1000),
            );
        });
    }
}
