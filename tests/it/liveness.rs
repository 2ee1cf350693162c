//! Liveness against a Discord that hangs (accepts connections, never answers) or refuses
//! them: grants are delayed with backoff but the role-sync worker is never parked, and the
//! real binary stops within the documented bound on SIGTERM in every state.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use docobo::db::{Db, subscriptions};
use docobo::domain::{Billing, GuildId, ProviderId, RoleId};
use docobo_testkit::discord::{FakeDiscord, GuildSpec, MANAGE_ROLES, MemberSpec, RoleSpec};
use docobo_testkit::webhooks::PolarKey;
use serde_json::json;

use crate::app::{TestApp, shared_cache, test_app};
use crate::bot::{
    BUYER, GUILD, LOG_CHANNEL, OWNER, POLAR_SECRET, SUPPORTER, WAIT, buy, messages_in, polar_event,
    seed_polar, shop,
};
use crate::cli::{sigterm, start_server};

/// A second guild, with a shop of its own.
const OTHER_GUILD: u64 = 223_344_556_677_889_900;
const OTHER_BUYER: u64 = 4010;
const OTHER_ROLE: u64 = 3100;
const OTHER_BOT_ROLE: u64 = 3101;

/// What the README promises: `docobo serve` exits this soon after SIGTERM, whatever Discord
/// does.
const STOP_BOUND: Duration = Duration::from_secs(10);

fn other_shop() -> GuildSpec {
    GuildSpec::new(OTHER_GUILD, "Other shop")
        .owner(OWNER)
        .role(RoleSpec::new(OTHER_ROLE, "Backer", 1, 0))
        .role(RoleSpec::new(OTHER_BOT_ROLE, "Docobo", 2, MANAGE_ROLES).managed())
        .member(MemberSpec::new(OTHER_BUYER, "other buyer"))
        .member(MemberSpec::new(OWNER, "owner"))
        .bot_roles(&[OTHER_BOT_ROLE])
}

async fn subscription(app: &TestApp, external_id: &'static str) -> subscriptions::Subscription {
    let provider = ProviderId::parse("polar").expect("id");
    app.db
        .call(move |conn| crate::helpers::subscription_any_scope(conn, &provider, external_id))
        .await
        .expect("read")
        .expect("exists")
}

/// Polls `check` until it holds (at most [`WAIT`]).
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The silent fake answers nothing: not the gateway's start, not the guild lookup before a
/// grant, not the grant. Each call times out after `discord.timeout_ms` and counts as a failed
/// attempt retried with backoff; meanwhile the worker takes up other guilds' grants, and once
/// Discord answers again every grant lands. Nothing is recorded as granted before it is.
#[allow(
    clippy::too_many_lines,
    reason = "one story: hang, keep working, recover"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_discord_delays_grants_with_backoff_and_never_parks_the_worker() {
    let discord = Arc::new(
        FakeDiscord::builder()
            .guild(shop())
            .guild(other_shop())
            .silent()
            .start()
            .await
            .expect("fake Discord"),
    );
    // Short, but not so short that a loaded CI machine misses it against the healthy fake.
    let timeout = Duration::from_millis(700);
    let app = test_app()
        .discord(Arc::clone(&discord))
        .envs(&[
            ("DOCOBO_DISCORD__TIMEOUT_MS", "700"),
            ("DOCOBO_SUBSCRIPTIONS__SWEEP_INTERVAL_SECS", "3600"),
            ("DOCOBO_SUBSCRIPTIONS__POLL_INTERVAL_SECS", "3600"),
            ("DOCOBO_SERVER__RATE_LIMIT_PER_MINUTE", "0"),
        ])
        .start()
        .await;
    let other_key = app
        .add_guild(
            GuildId::new(OTHER_GUILD).expect("guild"),
            "polar",
            &[("access_token", "x"), ("webhook_secret", POLAR_SECRET)],
        )
        .await;
    app.add_paid_role(
        GuildId::new(OTHER_GUILD).expect("guild"),
        RoleId::new(OTHER_ROLE).expect("role"),
        (499, "USD"),
        Billing::Monthly,
        Some(crate::bot::PRODUCT),
    )
    .await;
    // Both guilds get a log channel (announcements are Discord calls too).
    let path = seed_polar(&app, SUPPORTER).await;

    // The gateway never came up, so the grant needs the guild's roles over REST first.
    buy(&app, &path, "msg_silent_first").await;
    let lookup = format!("/guilds/{GUILD}/roles");
    eventually("the first guild lookup to be tried twice", || {
        discord.unanswered_requests("GET", &lookup) >= 2
    })
    .await;

    // The worker is not parked on the first guild: a purchase in another guild is attempted.
    let mut body: serde_json::Value =
        serde_json::from_slice(&polar_event("subscription.active", "active", false, now()))
            .expect("json");
    body["data"]["id"] = json!("sub_other");
    body["data"]["metadata"]["docobo_guild_id"] = json!(OTHER_GUILD.to_string());
    body["data"]["metadata"]["docobo_user_id"] = json!(OTHER_BUYER.to_string());
    body["data"]["customer"]["external_id"] = json!(OTHER_BUYER.to_string());
    let response = PolarKey::utf8(POLAR_SECRET)
        .delivery_now("msg_silent_other", serde_json::to_vec(&body).expect("json"))
        .request(
            &app.client,
            &app.url(&format!("/webhooks/polar/{other_key}")),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 202, "{:?}", response.text().await);
    let other_lookup = format!("/guilds/{OTHER_GUILD}/roles");
    eventually("the other guild's lookup", || {
        discord.unanswered_requests("GET", &other_lookup) >= 1
    })
    .await;
    eventually("a third try of the first guild", || {
        discord.unanswered_requests("GET", &lookup) >= 3
    })
    .await;

    // Retried with backoff, not hammered: each try waited for its deadline, then longer.
    let tries: Vec<Duration> = discord
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == lookup)
        .map(|r| r.since_start)
        .collect();
    for pair in tries.windows(2) {
        assert!(
            pair[1].saturating_sub(pair[0]) >= timeout,
            "tries closer than the deadline: {tries:?}"
        );
    }
    // Nothing is granted, at Discord or in the database, and the failure says why.
    assert_eq!(discord.member_roles(GUILD, BUYER), Some(Vec::new()));
    assert_eq!(
        discord.member_roles(OTHER_GUILD, OTHER_BUYER),
        Some(Vec::new())
    );
    for id in ["sub_e2e", "sub_other"] {
        let mut sub = subscription(&app, id).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        while sub.sync_attempts == 0 {
            assert!(tokio::time::Instant::now() < deadline, "{sub:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
            sub = subscription(&app, id).await;
        }
        assert!(!sub.role_applied, "{sub:?}");
        let error = sub.last_sync_error.clone().unwrap_or_default();
        assert!(error.contains("did not answer within"), "{sub:?}");
    }

    // No deadline was spent on log lines while the grants themselves went unanswered.
    assert_eq!(
        discord.unanswered_requests("POST", "/channels/*/messages"),
        0
    );

    // Discord answers again: both grants land, and are recorded.
    discord.set_silent(false);
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, true, WAIT)
        .await
        .expect("the first grant lands");
    discord
        .wait_for_member_role(OTHER_GUILD, OTHER_BUYER, OTHER_ROLE, true, WAIT)
        .await
        .expect("the other guild's grant lands");
    for id in ["sub_e2e", "sub_other"] {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let sub = subscription(&app, id).await;
            if sub.role_applied && sub.last_sync_error.is_none() {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{sub:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // The purchase is announced once the grant is made.
    eventually("the purchase line in the log channel", || {
        !messages_in(&discord, LOG_CHANNEL).is_empty()
    })
    .await;
    // And the bot gets onto the gateway once it answers.
    discord.wait_for_ready(WAIT).await.expect("gateway");
    let started = Instant::now();
    app.stop().await;
    assert!(started.elapsed() < STOP_BOUND);
}

/// A gateway that accepts the connection and never answers the upgrade: serenity would wait
/// for it for good. The start has a deadline (twice `discord.timeout_ms`): the attempt is
/// abandoned, with all that serenity spawned for it, and a new one made with backoff; once the
/// gateway answers, the bot gets exactly one session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_never_answers_is_retried_and_joined_once_it_does() {
    let discord = Arc::new(
        FakeDiscord::builder()
            .guild(shop())
            .start()
            .await
            .expect("fake Discord"),
    );
    discord.set_gateway_silent(true);
    let app = test_app()
        .discord(Arc::clone(&discord))
        .env("DOCOBO_DISCORD__TIMEOUT_MS", "1000")
        .start()
        .await;
    discord
        .wait_for_gateway("a second attempt", WAIT, |s| s.silent_connections >= 2)
        .await
        .expect("the silent start was abandoned and tried again");
    let health: serde_json::Value = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert!(
        health["gateway"] == "connecting" || health["gateway"] == "reconnecting",
        "{health}"
    );
    discord.set_gateway_silent(false);
    discord
        .wait_for_command(Some(GUILD), "setup", WAIT)
        .await
        .expect("on the gateway once it answers");
    // Nothing left over from the abandoned attempts connects beside the new session.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let stats = discord.gateway_stats();
    assert_eq!((stats.connections, stats.identifies), (1, 1), "{stats:?}");
    app.stop().await;
}

fn now() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

// ---- the real binary and SIGTERM ---------------------------------------------------------

/// What Discord does while the binary runs.
enum DiscordState<'a> {
    Healthy(&'a FakeDiscord),
    /// Accepts connections, never answers (REST and gateway).
    Silent(&'a FakeDiscord),
    /// Nothing listens on the port: every connection is refused.
    Refusing(u16),
}

/// A database in `dir` with the fixture's guild and a paid role for `PRODUCT_ID`.
async fn seeded_database(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("docobo.db");
    let (db, _) = Db::open(&path, crate::helpers::BUSY).expect("database");
    let guild = GuildId::new(GUILD).expect("guild");
    let role = RoleId::new(SUPPORTER).expect("role");
    db.call(move |conn| {
        crate::helpers::seed_guild_with_role(conn, guild, role);
        Ok(())
    })
    .await
    .expect("seed");
    path
}

/// A signed Polar `subscription.active` for user `n` (the operator route takes the guild
/// from the metadata).
fn purchase(client: &reqwest::Client, url: &str, n: usize) -> reqwest::RequestBuilder {
    let mut body: serde_json::Value =
        serde_json::from_slice(&polar_event("subscription.active", "active", false, now()))
            .expect("json");
    let user = (10_000 + n).to_string();
    body["data"]["id"] = json!(format!("sub_load_{n}"));
    body["data"]["product_id"] = json!("prod_1");
    body["data"]["metadata"]["docobo_user_id"] = json!(user);
    body["data"]["customer"]["external_id"] = json!(user);
    PolarKey::utf8(POLAR_SECRET)
        .delivery_now(
            &format!("msg_load_{n}"),
            serde_json::to_vec(&body).expect("json"),
        )
        .request(client, url)
}

/// Starts `docobo serve` against `discord`; returns the child, its address and its log.
async fn serve(
    dir: &Path,
    discord: &DiscordState<'_>,
) -> (
    std::process::Child,
    String,
    std::sync::mpsc::Receiver<String>,
) {
    let db = seeded_database(dir).await;
    let (token, api) = match discord {
        DiscordState::Healthy(d) | DiscordState::Silent(d) => {
            (d.token().to_owned(), d.rest_url().to_owned())
        }
        DiscordState::Refusing(port) => ("t".to_owned(), format!("http://127.0.0.1:{port}")),
    };
    let cache = shared_cache();
    let env = [
        ("DOCOBO_DISCORD__TOKEN", token.as_str()),
        ("DOCOBO_DISCORD__API_URL", api.as_str()),
        ("DOCOBO_SERVER__PORT", "0"),
        ("DOCOBO_SERVER__BIND", "127.0.0.1"),
        ("DOCOBO_SERVER__RATE_LIMIT_PER_MINUTE", "0"),
        ("DOCOBO_DATABASE__PATH", db.to_str().expect("utf-8")),
        ("DOCOBO_PLUGINS__CACHE_DIR", cache.to_str().expect("utf-8")),
        ("DOCOBO_PROVIDERS__POLAR__WEBHOOK_SECRET", POLAR_SECRET),
        ("DOCOBO_LOG__FORMAT", "json"),
    ];
    let (child, addr, logs) = start_server(dir, &env, &[]);
    (child, addr, logs)
}

/// Sends SIGTERM and returns how long the process took to exit (failing past the bound).
fn stop_and_time(child: &mut std::process::Child, state: &str) -> Duration {
    let started = Instant::now();
    sigterm(child);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            let took = started.elapsed();
            eprintln!("docobo exited {took:?} after SIGTERM ({state})");
            assert!(status.success(), "{state}: exit status {status:?}");
            return took;
        }
        if started.elapsed() > STOP_BOUND + Duration::from_secs(20) {
            let _ = child.kill();
            panic!("{state}: docobo did not exit within {STOP_BOUND:?} of SIGTERM (killed)");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn assert_within_bound(took: Duration, state: &str) {
    assert!(
        took < STOP_BOUND,
        "{state}: exited {took:?} after SIGTERM; the README promises {STOP_BOUND:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_binary_in_time_when_idle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let discord = FakeDiscord::builder()
        .guild(shop())
        .start()
        .await
        .expect("fake");
    let (mut child, _, _logs) = serve(dir.path(), &DiscordState::Healthy(&discord)).await;
    discord
        .wait_for_command(None, "setup", WAIT)
        .await
        .expect("on the gateway, commands registered");
    let took = tokio::task::block_in_place(|| stop_and_time(&mut child, "idle"));
    assert_within_bound(took, "idle");
}

/// Signed deliveries keep arriving, `IN_FLIGHT` at a time, before, during and after SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_binary_in_time_under_webhook_load_and_loses_no_acknowledged_event() {
    const IN_FLIGHT: usize = 200;
    const BEFORE_SIGTERM: usize = 300;
    let dir = tempfile::tempdir().expect("tempdir");
    let discord = FakeDiscord::builder()
        .guild(shop())
        .start()
        .await
        .expect("fake");
    let (mut child, addr, _logs) = serve(dir.path(), &DiscordState::Healthy(&discord)).await;
    let url = format!("http://{addr}/webhooks/polar");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let load = tokio::spawn({
        let (stop, answered) = (Arc::clone(&stop), Arc::clone(&answered));
        async move {
            let mut statuses = Vec::new();
            let mut deliveries = tokio::task::JoinSet::new();
            let mut n = 0;
            loop {
                while deliveries.len() < IN_FLIGHT && !stop.load(Ordering::Relaxed) {
                    let request = purchase(&client, &url, n);
                    deliveries.spawn(async move {
                        request.send().await.ok().map(|r| r.status().as_u16())
                    });
                    n += 1;
                }
                let Some(done) = deliveries.join_next().await else {
                    return statuses;
                };
                statuses.push(done.expect("a delivery task"));
                answered.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    eventually("deliveries to flow", || {
        answered.load(Ordering::Relaxed) >= BEFORE_SIGTERM
    })
    .await;
    let took = tokio::task::block_in_place(|| stop_and_time(&mut child, "under webhook load"));
    stop.store(true, Ordering::Relaxed);
    let statuses = load.await.expect("load");
    let acked = statuses.iter().filter(|s| **s == Some(202)).count();
    let refused = statuses.iter().filter(|s| s.is_none()).count();
    eprintln!(
        "under load: {} deliveries, {acked} acknowledged, {refused} cut off or refused by the stopping server",
        statuses.len()
    );
    assert!(
        statuses
            .iter()
            .all(|s| matches!(s, None | Some(202 | 500 | 503))),
        "{statuses:?}"
    );
    assert!(refused > 0, "the load did not outlast the server");
    // Every acknowledged delivery was stored before its 2xx.
    let (db, _) = Db::open(&dir.path().join("docobo.db"), crate::helpers::BUSY).expect("db");
    let stored: i64 = db
        .read(|conn| Ok(conn.query_row("SELECT count(*) FROM webhook_events", [], |r| r.get(0))?))
        .await
        .expect("count");
    assert!(
        stored >= i64::try_from(acked).expect("count"),
        "{stored} stored, {acked} acknowledged"
    );
    assert_within_bound(took, "under webhook load");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_binary_in_time_while_discord_hangs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let discord = FakeDiscord::builder()
        .guild(shop())
        .silent()
        .start()
        .await
        .expect("fake");
    let (mut child, addr, _logs) = serve(dir.path(), &DiscordState::Silent(&discord)).await;
    // A purchase, so that the role-sync worker is waiting on Discord too.
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let response = purchase(&client, &format!("http://{addr}/webhooks/polar"), 1)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 202);
    let lookup = format!("/guilds/{GUILD}/roles");
    eventually("the worker to wait on Discord", || {
        discord.unanswered_requests("GET", &lookup) >= 1
    })
    .await;
    assert!(discord.unanswered_requests("GET", "/gateway/bot") >= 1);
    let took = tokio::task::block_in_place(|| stop_and_time(&mut child, "Discord silent"));
    assert_within_bound(took, "Discord silent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_binary_in_time_while_discord_refuses_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let (mut child, addr, _logs) = serve(dir.path(), &DiscordState::Refusing(port)).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let response = purchase(&client, &format!("http://{addr}/webhooks/polar"), 1)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 202);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let took = tokio::task::block_in_place(|| stop_and_time(&mut child, "Discord refusing"));
    assert_within_bound(took, "Discord refusing");
}
