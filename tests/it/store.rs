//! The SQLite store: migrations, pragmas, unique constraints, backups.

use docobo::db::{self, Db, guilds, members, paid_roles, subscriptions, webhook_events};
use docobo::domain::{Billing, SubscriptionState, SubscriptionStatus, UserId};

use crate::helpers::{BUSY, fresh_db, guild, open_raw, provider, role, seed_guild_with_role, usd};

#[test]
fn a_fresh_database_migrates_to_the_five_tables_and_the_revenue_totals() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The folder does not exist yet: it is created.
    let path = dir.path().join("nested/data/docobo.db");
    let (_db, report) = Db::open(&path, BUSY).expect("open");
    assert_eq!(
        report.applied,
        vec![
            "V1__init".to_owned(),
            "V2__role_sync_announcements".to_owned(),
            "V3__drop_unused_indexes".to_owned(),
            "V4__subscription_sync_version".to_owned(),
            "V5__failed_sync_index".to_owned(),
            "V6__scoped_event_ids".to_owned(),
            "V7__payment_code_valid_until".to_owned(),
            "V8__plugin_api_0_2".to_owned(),
            "V9__revenue_months".to_owned(),
            "V10__members_list_index".to_owned(),
            "V11__reminders_and_refund_policy".to_owned(),
            "V12__tier_roles".to_owned()
        ]
    );
    let conn = open_raw(&path);
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != 'refinery_schema_history' ORDER BY name")
        .expect("prepare");
    let tables: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        tables,
        [
            "guilds",
            "members",
            "paid_roles",
            "revenue_months",
            "subscriptions",
            "tier_roles",
            "webhook_events"
        ]
    );
}

#[test]
fn migrating_twice_is_a_no_op() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("docobo.db");
    let (db, first) = Db::open(&path, BUSY).expect("first open");
    assert_eq!(first.applied.len(), 12);
    drop(db);
    let (_db, second) = Db::open(&path, BUSY).expect("second open");
    assert!(second.applied.is_empty(), "{:?}", second.applied);
    let mut conn = open_raw(&path);
    assert!(db::migrate(&mut conn).expect("third").applied.is_empty());
    let versions: i64 = conn
        .query_row("SELECT count(*) FROM refinery_schema_history", [], |r| {
            r.get(0)
        })
        .expect("history");
    assert_eq!(versions, 12);
}

#[test]
fn the_queries_run_per_webhook_and_per_sweep_use_an_index() {
    // Indexes cost every insert; the ones kept must serve these, and none of these may
    // scan a whole table (they run per delivery, per role sync or per sweep).
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("docobo.db");
    let (_db, _) = Db::open(&path, BUSY).expect("open");
    let conn = open_raw(&path);
    let queries = [
        "SELECT 1 FROM webhook_events WHERE provider = 'polar' AND scope = '1' AND external_event_id = 'e'",
        "SELECT * FROM subscriptions WHERE provider = 'polar' AND scope = '1' AND external_id = 's'",
        "SELECT * FROM subscriptions WHERE payment_code = 'C'",
        "SELECT * FROM subscriptions WHERE guild_id = 1 AND user_id = 2 AND paid_role_id = 3",
        "SELECT * FROM subscriptions WHERE next_sync_at <= 5 ORDER BY next_sync_at LIMIT 10",
        "SELECT id FROM subscriptions WHERE status IN ('active', 'canceled', 'past_due') \
           AND period_end <= 5 AND (next_sync_at IS NULL OR next_sync_at > 5) \
           AND guild_id NOT IN (SELECT guild_id FROM guilds WHERE left_at IS NOT NULL)",
        "SELECT guild_id FROM guilds WHERE left_at IS NOT NULL",
        "SELECT * FROM subscriptions WHERE guild_id = 1",
        "SELECT * FROM paid_roles WHERE guild_id = 1 AND product_ref = 'p'",
        "SELECT * FROM guilds WHERE webhook_key = 'k'",
    ];
    for query in queries {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {query}"))
            .expect("explain");
        let plan: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .expect("plan")
            .collect::<Result<_, _>>()
            .expect("rows");
        // The partial index of left guilds holds only them: scanning it is reading them.
        assert!(
            plan.iter()
                .all(|step| !step.starts_with("SCAN") || step.ends_with("INDEX guilds_left")),
            "{query}\n{plan:#?}"
        );
    }
}

/// `n` live subscriptions in guild `g` (one member each), each due for a role sync at its
/// own time, the latest first: a table big enough that reading all of it shows.
fn many_subscriptions(conn: &rusqlite::Connection, g: docobo::domain::GuildId, n: u64) {
    let paid = seed_guild_with_role(conn, g, role(10));
    conn.execute_batch("BEGIN").expect("begin");
    for i in 1..=n {
        let user = UserId::new(i).expect("user");
        members::upsert(conn, g, user, None).expect("member");
        let sub = subscriptions::insert(
            conn,
            &new_sub(g, i, paid.id, Some(&format!("sub-{i}")), None),
        )
        .expect("subscription");
        conn.execute(
            "UPDATE subscriptions SET next_sync_at = ?2 WHERE id = ?1",
            (sub.id, 5_000_000_000_000_i64 - i64::try_from(i).expect("i")),
        )
        .expect("schedule");
    }
    conn.execute_batch("COMMIT").expect("commit");
}

/// Runs `sql` once with `params`; returns the VM steps it took.
fn vm_steps(conn: &rusqlite::Connection, sql: &str, params: impl rusqlite::Params) -> i32 {
    let mut stmt = conn.prepare(sql).expect("prepare");
    let mut rows = stmt.query(params).expect("run");
    while rows.next().expect("step").is_some() {}
    drop(rows);
    stmt.get_status(rusqlite::StatementStatus::VmStep)
}

/// The role-sync worker asks when the next sync is due each time it goes idle: after every
/// delivery that changed a subscription. That must read one index entry, not every row: a
/// `min()` over the column of a partial index scans the whole table unless the query says
/// it wants only the indexed rows (17 ms at 300 000 subscriptions by `scripts/scan_cost.py`,
/// holding the reader connection that webhook-key lookups and `/health` share).
#[test]
fn finding_when_the_next_role_sync_is_due_reads_an_index_entry_not_the_table() {
    let t = fresh_db();
    let conn = open_raw(&t.dir.path().join("docobo.db"));
    many_subscriptions(&conn, guild(1), 2_000);
    let steps = vm_steps(&conn, subscriptions::NEXT_DUE_AT, []);
    assert!(
        steps < 100,
        "{} took {steps} VM steps for 2 000 subscriptions: it reads the table",
        subscriptions::NEXT_DUE_AT
    );
    assert_eq!(
        subscriptions::next_due_at(&conn).expect("next due"),
        Some(5_000_000_000_000 - 2_000)
    );
}

/// Every role change at Discord in a guild retries that guild's failed role syncs (the
/// owner may have fixed the hierarchy), on the writer's connection: it must read the failed
/// subscriptions, not all of them (15 ms at 300 000 subscriptions, webhooks waiting behind
/// it; Discord sends one event per role whose position moved).
#[test]
fn retrying_failed_role_syncs_reads_only_the_failed_subscriptions() {
    let t = fresh_db();
    let g = guild(1);
    let conn = open_raw(&t.dir.path().join("docobo.db"));
    many_subscriptions(&conn, g, 2_000);
    conn.execute(
        "UPDATE subscriptions SET last_sync_error = 'Missing Permissions', next_sync_at = NULL
         WHERE user_id IN (7, 1500)",
        [],
    )
    .expect("two failures");
    for scope in [Some(g.as_i64()), None] {
        // Each scope counted in a transaction that is rolled back: the statement really
        // runs, and updates both failed rows each time.
        conn.execute_batch("BEGIN").expect("begin");
        let steps = vm_steps(
            &conn,
            subscriptions::MARK_FAILED_DUE,
            rusqlite::params![scope, 1_000],
        );
        assert_eq!(conn.changes(), 2, "{scope:?}");
        conn.execute_batch("ROLLBACK").expect("rollback");
        assert!(
            steps < 200,
            "{scope:?}: {steps} VM steps for 2 failed syncs among 2 000 subscriptions: it reads the table"
        );
    }
    assert_eq!(
        subscriptions::mark_failed_due(&conn, Some(g), 2_000).expect("retry"),
        2
    );
    let due: i64 = conn
        .query_row(
            "SELECT count(*) FROM subscriptions WHERE next_sync_at = 2000",
            [],
            |r| r.get(0),
        )
        .expect("due");
    assert_eq!(due, 2);
}

/// The writer's connection commits with what `database.synchronous` says (FULL unless told).
#[tokio::test]
async fn the_writer_commits_with_the_configured_durability() {
    use docobo::db::{OpenOptions, Synchronous};
    let synchronous_of = async |db: &Db| -> i64 {
        db.write(|conn| Ok(conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?))
            .await
            .expect("pragma")
    };
    let t = fresh_db();
    assert_eq!(synchronous_of(&t.db).await, 2, "FULL by default");
    let dir = tempfile::tempdir().expect("dir");
    let options = OpenOptions {
        synchronous: Synchronous::Normal,
        ..OpenOptions::new(BUSY)
    };
    let (normal, _) = Db::open_with(&dir.path().join("docobo.db"), options).expect("open");
    assert_eq!(synchronous_of(&normal).await, 1, "NORMAL when asked");
}

#[test]
fn every_connection_has_wal_foreign_keys_and_full_sync() {
    let t = fresh_db();
    let conn = open_raw(&t.dir.path().join("docobo.db"));
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    let fk: i64 = conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .expect("fk");
    let sync: i64 = conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .expect("sync");
    let busy: i64 = conn
        .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
        .expect("busy");
    assert_eq!(mode, "wal");
    assert_eq!(fk, 1);
    assert_eq!(sync, 2, "FULL: durable before a webhook is acknowledged");
    assert_eq!(busy, 5000);
    // Foreign keys are enforced: a paid role for an unknown guild is refused.
    let orphan = paid_roles::insert(
        &conn,
        &paid_roles::NewPaidRole {
            guild_id: guild(999),
            role_id: role(1),
            name: String::new(),
            price: usd(100),
            billing: Billing::Monthly,
            product_ref: None,
        },
    );
    assert!(orphan.is_err());
}

fn new_sub(
    g: docobo::domain::GuildId,
    user: u64,
    paid_role_id: i64,
    external: Option<&str>,
    code: Option<&str>,
) -> subscriptions::NewSubscription {
    subscriptions::NewSubscription {
        guild_id: g,
        user_id: UserId::new(user).expect("user"),
        paid_role_id,
        provider: provider("polar"),
        scope: docobo::domain::Scope::Guild(g),
        external_id: external.map(str::to_owned),
        state: SubscriptionState {
            status: SubscriptionStatus::Active,
            period_end: None,
            last_event_at: None,
        },
        payment_code: code.map(str::to_owned),
    }
}

#[test]
fn each_unique_constraint_rejects_a_duplicate() {
    let t = fresh_db();
    let conn = open_raw(&t.dir.path().join("docobo.db"));
    let g = guild(1);
    let paid = seed_guild_with_role(&conn, g, role(10));

    // guilds.guild_id
    let mut dup_guild = guilds::get(&conn, g).expect("get").expect("exists");
    dup_guild.webhook_key = "other-key".into();
    assert!(
        guilds::insert(&conn, &dup_guild)
            .expect_err("dup id")
            .is_unique_violation()
    );
    // guilds.webhook_key
    dup_guild.id = guild(2);
    dup_guild.webhook_key = format!("key-{g}");
    assert!(
        guilds::insert(&conn, &dup_guild)
            .expect_err("dup key")
            .is_unique_violation()
    );

    // members (guild_id, user_id)
    let user = UserId::new(5).expect("user");
    members::insert(&conn, g, user, Some("alice")).expect("member");
    assert!(
        members::insert(&conn, g, user, None)
            .expect_err("dup member")
            .is_unique_violation()
    );

    // paid_roles (guild_id, role_id)
    let again = paid_roles::NewPaidRole {
        guild_id: g,
        role_id: role(10),
        name: "Gold again".into(),
        price: usd(999),
        billing: Billing::Yearly,
        product_ref: None,
    };
    assert!(
        paid_roles::insert(&conn, &again)
            .expect_err("dup role")
            .is_unique_violation()
    );

    // subscriptions (provider, external_id)
    subscriptions::insert(
        &conn,
        &new_sub(g, 5, paid.id, Some("sub_1"), Some("DCBAAAA")),
    )
    .expect("sub");
    assert!(
        subscriptions::insert(&conn, &new_sub(g, 5, paid.id, Some("sub_1"), None))
            .expect_err("dup external id")
            .is_unique_violation()
    );
    // subscriptions.payment_code
    assert!(
        subscriptions::insert(
            &conn,
            &new_sub(g, 5, paid.id, Some("sub_2"), Some("DCBAAAA"))
        )
        .expect_err("dup payment code")
        .is_unique_violation()
    );
    // NULL external ids (unpaid bank-transfer checkouts) do not collide.
    subscriptions::insert(&conn, &new_sub(g, 5, paid.id, None, Some("DCBBBBB")))
        .expect("null ext 1");
    subscriptions::insert(&conn, &new_sub(g, 5, paid.id, None, Some("DCBCCCC")))
        .expect("null ext 2");

    // webhook_events (provider, external_event_id): the duplicate is reported, not an error.
    let p = provider("polar");
    let event = webhook_events::NewWebhookEvent {
        provider: &p,
        scope: docobo::domain::Scope::Guild(g),
        external_event_id: "msg_1",
        guild_id: Some(g),
        subscription_id: None,
        event_type: "subscription.active",
        event_json: "{}",
        outcome: webhook_events::Outcome::Applied,
        detail: None,
        test: false,
    };
    assert!(
        webhook_events::insert_if_new(&conn, &event)
            .expect("first")
            .is_some()
    );
    assert_eq!(
        webhook_events::insert_if_new(&conn, &event).expect("second"),
        None
    );
    let other_provider = provider("sepay");
    let same_id_other_provider = webhook_events::NewWebhookEvent {
        provider: &other_provider,
        ..event
    };
    assert!(
        webhook_events::insert_if_new(&conn, &same_id_other_provider)
            .expect("other")
            .is_some()
    );
    assert_eq!(webhook_events::count(&conn).expect("count"), 2);
}

#[test]
fn a_sync_reschedules_only_the_subscriptions_it_read_unchanged() {
    let t = fresh_db();
    let conn = open_raw(&t.dir.path().join("docobo.db"));
    let g = guild(1);
    let paid = seed_guild_with_role(&conn, g, role(10));
    members::insert(&conn, g, UserId::new(5).expect("user"), None).expect("member");
    let stays =
        subscriptions::insert(&conn, &new_sub(g, 5, paid.id, Some("sub_a"), None)).expect("a");
    let changes =
        subscriptions::insert(&conn, &new_sub(g, 5, paid.id, Some("sub_b"), None)).expect("b");
    let next_sync_at = |id: i64| -> Option<i64> {
        conn.query_row(
            "SELECT next_sync_at FROM subscriptions WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .expect("read")
    };
    let due_at = next_sync_at(changes.id).expect("a new subscription is due");
    // A sync read both; then, while it called Discord, a webhook changed one.
    let seen = subscriptions::for_holding(&conn, g, UserId::new(5).expect("user"), paid.id)
        .expect("holding");
    let mut refunded = changes.state;
    refunded.status = SubscriptionStatus::Refunded;
    subscriptions::set_state(&conn, changes.id, refunded, false, due_at + 1).expect("change");
    subscriptions::mark_synced(
        &conn,
        &seen,
        &std::collections::BTreeSet::from([paid.role_id]),
        Some(i64::MAX),
    )
    .expect("synced");
    assert_eq!(next_sync_at(stays.id), Some(i64::MAX), "rescheduled");
    // Both record what the sync did at Discord, which the next sync compares with.
    let applied: i64 = conn
        .query_row(
            "SELECT sum(role_applied) FROM subscriptions WHERE id IN (?1, ?2)",
            [stays.id, changes.id],
            |r| r.get(0),
        )
        .expect("applied");
    assert_eq!(applied, 2);
    assert_eq!(
        next_sync_at(changes.id),
        Some(due_at + 1),
        "still due: the sync did not see the refund"
    );
    // The same for a failed sync; the next sync, having read the change, reschedules it.
    let seen = subscriptions::for_holding(&conn, g, UserId::new(5).expect("user"), paid.id)
        .expect("holding");
    assert!(!subscriptions::any_moved(&conn, &seen).expect("moved"));
    subscriptions::mark_member_due(&conn, g, UserId::new(5).expect("user"), None, None, 7)
        .expect("sweep");
    assert!(subscriptions::any_moved(&conn, &seen).expect("moved"));
    subscriptions::mark_failed(&conn, &seen, "Discord API error", Some(99)).expect("failed");
    assert_eq!(next_sync_at(stays.id), Some(7));
    let seen = subscriptions::for_holding(&conn, g, UserId::new(5).expect("user"), paid.id)
        .expect("holding");
    subscriptions::mark_failed(&conn, &seen, "Discord API error", Some(99)).expect("failed");
    assert_eq!(next_sync_at(stays.id), Some(99));
    assert_eq!(next_sync_at(changes.id), Some(99));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_writes_is_a_readable_copy_of_committed_rows() {
    let (t, g) = seeded_db().await;

    // A writer that commits one member per transaction until told to stop.
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = {
        let db = t.db.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut n: u64 = 0;
            while !stop.is_cancelled() {
                n += 1;
                let user = UserId::new(n).expect("user");
                db.call(move |conn| members::insert(conn, g, user, Some("m")))
                    .await
                    .expect("insert");
            }
            n
        })
    };
    // Let some rows commit first.
    while members_count(&t.db).await < 50 {
        tokio::task::yield_now().await;
    }
    let before = members_count(&t.db).await;
    let dest = t.dir.path().join("backup.db");
    t.db.backup(dest.clone()).await.expect("backup");
    let after = members_count(&t.db).await;
    stop.cancel();
    let written = writer.await.expect("writer");
    assert!(written >= 50);

    let copy = rusqlite::Connection::open(&dest).expect("open backup");
    let check: String = copy
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(check, "ok");
    let copied: i64 = copy
        .query_row("SELECT count(*) FROM members", [], |r| r.get(0))
        .expect("count");
    assert!(
        (before..=after).contains(&copied),
        "backup has {copied} members; {before} were committed before it started, {after} after"
    );
    // A real copy: the paid role and schema history came along.
    let roles: i64 = copy
        .query_row("SELECT count(*) FROM paid_roles", [], |r| r.get(0))
        .expect("roles");
    assert_eq!(roles, 1);
    // No partial file is left behind.
    assert!(!t.dir.path().join("backup.db.partial").exists());

    // Backing up over an existing file is refused with a fix.
    let err = t.db.backup(dest).await.expect_err("exists");
    assert!(err.to_string().contains("already exists"), "{err}");
}

/// A fresh database with guild 1 and its paid role 10.
async fn seeded_db() -> (crate::helpers::TestDb, docobo::domain::GuildId) {
    let t = fresh_db();
    let g = guild(1);
    t.db.call(move |conn| {
        seed_guild_with_role(conn, g, role(10));
        Ok(())
    })
    .await
    .expect("seed");
    (t, g)
}

async fn members_count(db: &Db) -> i64 {
    db.call(|conn| Ok(conn.query_row("SELECT count(*) FROM members", [], |r| r.get(0))?))
        .await
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_writes_commit_together_and_a_failing_write_rolls_back_alone() {
    let (t, g) = seeded_db().await;
    let writes = (1..=60u64).map(|n| {
        let db = t.db.clone();
        tokio::spawn(async move {
            db.write(move |conn| {
                members::insert(conn, g, UserId::new(n).expect("user"), Some("m"))?;
                if n % 5 == 0 {
                    // Fails after writing: this member must not survive.
                    return Err(docobo::db::DbError::Corrupt {
                        table: "members",
                        message: format!("refused {n}"),
                    });
                }
                assert!(n != 7, "a bug in one write");
                Ok(n)
            })
            .await
        })
    });
    let mut ok = Vec::new();
    for (i, handle) in writes.enumerate() {
        let n = i as u64 + 1;
        match handle.await.expect("join") {
            Ok(value) => {
                assert_eq!(value, n);
                ok.push(n);
            }
            Err(docobo::db::DbError::Corrupt { message, .. }) => {
                assert_eq!(message, format!("refused {n}"));
            }
            Err(docobo::db::DbError::WriteAborted) => assert_eq!(n, 7),
            Err(other) => panic!("write {n}: {other}"),
        }
    }
    assert_eq!(ok.len(), 60 - 12 - 1);
    let stored: Vec<u64> =
        t.db.call(|conn| {
            let mut stmt = conn.prepare("SELECT user_id FROM members ORDER BY user_id")?;
            let rows = stmt.query_map([], |r| r.get::<_, i64>(0))?;
            Ok(rows
                .map(|r| r.map(|v| v as u64))
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await
        .expect("read");
    assert_eq!(stored, ok, "exactly the successful writes are stored");
    // The writer survived the panic.
    t.db.write(move |conn| members::insert(conn, g, UserId::new(1000).expect("user"), None))
        .await
        .expect("still writing");
}

/// The WAL header's checkpoint sequence number, which SQLite increments every time it
/// starts writing the WAL from its beginning again.
fn wal_restarts(db_path: &std::path::Path) -> u32 {
    let mut wal = db_path.as_os_str().to_owned();
    wal.push("-wal");
    let header = std::fs::read(wal).unwrap_or_default();
    header
        .get(12..16)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Under a steady stream of writes the WAL must still be checkpointed to its end and reused
/// from its beginning: otherwise it grows to the writer's own limit, and every write extends
/// the file, which measured as 10–40 ms stalls whenever a checkpoint fsyncs.
///
/// Steady, not saturating: a write every 10 ms. Each commit now waits for its fsync
/// (`synchronous = FULL`), which on a loaded CI machine can take a few milliseconds: at one
/// write every 2 ms the writer never paused, and only the writer's own limit
/// (`WAL_LIMIT_FRAMES`) restarted the WAL, which is the saturation case, not this one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_is_reused_while_writes_keep_coming() {
    let (t, g) = seeded_db().await;
    let path = t.dir.path().join("docobo.db");
    let before = wal_restarts(&path);
    // Three seconds of writes: never a quiet second for the WAL to be caught up in (the
    // checkpointer looks every 100 ms).
    let mut ticker = tokio::time::interval(std::time::Duration::from_millis(10));
    for n in 1..=300u64 {
        ticker.tick().await;
        let user = UserId::new(n).expect("user");
        t.db.write(move |conn| members::insert(conn, g, user, Some("m")))
            .await
            .expect("insert");
    }
    let restarts = wal_restarts(&path).wrapping_sub(before);
    assert!(
        restarts >= 5,
        "the WAL was restarted {restarts} times in 3 s of steady writes"
    );
    assert_eq!(members_count(&t.db).await, 300);
}

/// Another connection holding the write lock for a moment (another process, a backup tool,
/// an operator's sqlite3 shell) makes a write wait, not fail: even a write that reads
/// before it writes, which in a deferred transaction SQLite would refuse at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waits_for_another_connections_write_lock() {
    let (t, g) = seeded_db().await;
    let path = t.dir.path().join("docobo.db");
    let (locked, is_locked) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let mut conn = open_raw(&path);
        let tx = db::write_transaction(&mut conn).expect("lock");
        locked.send(()).expect("send");
        std::thread::sleep(std::time::Duration::from_millis(300));
        tx.commit().expect("release");
    });
    is_locked.recv().expect("locked");
    let started = std::time::Instant::now();
    let user = UserId::new(42).expect("user");
    let written =
        t.db.write(move |conn| {
            let known: i64 = conn.query_row("SELECT count(*) FROM members", [], |r| r.get(0))?;
            members::insert(conn, g, user, Some("m"))?;
            Ok(known)
        })
        .await;
    holder.join().expect("holder");
    assert_eq!(written.expect("the write waited for the lock"), 0);
    assert!(started.elapsed() >= std::time::Duration::from_millis(200));
    assert_eq!(members_count(&t.db).await, 1);
}
