//! Crash consistency (issue 16, item 5): the real binary under a load of distinct deliveries
//! and duplicates, killed (SIGKILL) at random moments and started again, then stopped by SIGTERM
//! under load: every acknowledged delivery is there exactly once, every subscription is in
//! the state its delivery put it in, and the file is intact.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use docobo_testkit::FakeDiscord;
use docobo_testkit::app::TestApp;
use docobo_testkit::load::{Load, Target, message_id};
use rand::Rng as _;

use crate::cli::{sigterm, start_server, wait_with_timeout};
use crate::helpers::load_shop;

/// Kill-and-restart cycles.
const CYCLES: usize = 10;

/// How long SIGTERM may take under load (the README's bound).
const STOP_WITHIN: Duration = Duration::from_secs(10);

/// The settings the binary and the seeding app share: one folder, one key, one Discord.
fn settings(dir: &Path, discord: &FakeDiscord) -> Vec<(String, String)> {
    let path = |name: &str| dir.join(name).display().to_string();
    vec![
        ("DOCOBO_DISCORD__TOKEN".into(), discord.token().into()),
        ("DOCOBO_DISCORD__API_URL".into(), discord.rest_url().into()),
        ("DOCOBO_SERVER__BIND".into(), "127.0.0.1".into()),
        ("DOCOBO_SERVER__PORT".into(), "0".into()),
        ("DOCOBO_SERVER__RATE_LIMIT_PER_MINUTE".into(), "0".into()),
        ("DOCOBO_DATABASE__PATH".into(), path("docobo.db")),
        ("DOCOBO_PLUGINS__DIR".into(), path("plugins")),
        ("DOCOBO_PLUGINS__CACHE_DIR".into(), path("cache")),
        ("DOCOBO_SECRETS__KEY_PATH".into(), path("docobo.key")),
        ("DOCOBO_LOG__FORMAT".into(), "json".into()),
        ("DOCOBO_LOG__LEVEL".into(), "warn,docobo=info".into()),
    ]
}

fn serve(dir: &Path, env: &[(String, String)]) -> (Child, String) {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (child, addr, log) = start_server(dir, &env, &[]);
    // Keep reading its log, or a full pipe would block the server.
    std::thread::spawn(move || while log.recv().is_ok() {});
    (child, addr)
}

/// The shop's webhook URL on the server at `addr`.
fn url_at(target: &Target, addr: &str) -> String {
    let path = target
        .url
        .split_once("/webhooks/")
        .map(|(_, rest)| rest)
        .expect("a webhook URL");
    format!("http://{addr}/webhooks/{path}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_and_duplicates_nothing_acknowledged() {
    let discord = std::sync::Arc::new(FakeDiscord::builder().start().await.expect("fake Discord"));
    let dir = tempfile::tempdir().expect("data folder");
    let env = settings(dir.path(), &discord);
    // The shop is set up through the app on the same folder, then the binary takes over.
    let seeding = TestApp::builder()
        .discord(std::sync::Arc::clone(&discord))
        .envs(
            &env.iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
        )
        .start()
        .await;
    let target = load_shop(&seeding).await;
    drop(seeding.stop().await);

    let (mut child, addr) = serve(dir.path(), &env);
    // Every fifth request re-sends an acknowledged delivery (a provider's retry).
    let load = Load::start(
        Target {
            url: url_at(&target, &addr),
            ..target.clone()
        },
        8,
        0,
        5,
    );
    for _ in 0..CYCLES {
        let after = rand::rng().random_range(200..800);
        tokio::time::sleep(Duration::from_millis(after)).await;
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let (next, addr) = serve(dir.path(), &env);
        child = next;
        load.retarget(url_at(&target, &addr));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // SIGTERM with the load still running: the server stops in time, and what it
    // acknowledged while stopping is kept like the rest.
    let stop_asked = Instant::now();
    sigterm(&child);
    let status = wait_with_timeout(&mut child, STOP_WITHIN);
    let took = stop_asked.elapsed();
    let duplicates = load.duplicates_sent();
    let acked = load.stop().await;
    eprintln!(
        "{CYCLES} SIGKILLs: {} deliveries acknowledged, {duplicates} duplicates acknowledged; SIGTERM under load took {took:?} ({status})",
        acked.len()
    );
    assert!(status.success(), "SIGTERM exit: {status}");
    assert!(acked.len() > 100, "too little load to prove anything");
    assert!(duplicates > 0, "no duplicate was sent");

    // After the last stop: the file as Docobo left it, opened as Docobo opens it.
    let (db, _) =
        docobo::db::Db::open(&dir.path().join("docobo.db"), Duration::from_secs(5)).expect("open");
    let (integrity, events, subscriptions) = db
        .read(|conn| {
            let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
            let mut events = conn.prepare(
                "SELECT external_event_id, count(*) FROM webhook_events GROUP BY external_event_id",
            )?;
            let events: HashMap<String, i64> = events
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let mut subscriptions = conn.prepare(
                "SELECT external_id, status, count(*) FROM subscriptions GROUP BY external_id",
            )?;
            let subscriptions: HashMap<String, (String, i64)> = subscriptions
                .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?
                .collect::<Result<_, _>>()?;
            Ok((integrity, events, subscriptions))
        })
        .await
        .expect("read");
    assert_eq!(integrity, "ok");
    let acked: HashSet<usize> = acked.into_iter().collect();
    for n in &acked {
        assert_eq!(events.get(&message_id(*n)), Some(&1), "delivery {n}");
        let sub = subscriptions.get(&format!("sub-load-{n}"));
        assert_eq!(sub, Some(&("active".to_owned(), 1)), "subscription of {n}");
    }
    // What was applied but never acknowledged (the kill fell between commit and reply) is
    // there once too, and nothing else is.
    assert!(events.values().all(|count| *count == 1));
    assert_eq!(events.len(), subscriptions.len());
}
