//! The dashboard's cost, release build, on loopback:
//!
//! - render time (request sent → whole page received) of a server's overview and of the
//!   members list (first page; filtered by role and status; a name search; a page deep in the
//!   list through its keyset cursor) with `DOCOBO_BENCH_SUBSCRIPTIONS` (default 100 000)
//!   subscriptions in the server, 200 requests each, one at a time;
//! - webhook acknowledgement latency at 100 purchases/s, without the dashboard and then with
//!   an operator reloading the overview and the members list every 100 ms meanwhile.
//!
//! Run: `cargo bench --bench dashboard`. Prints figures; asserts only that pages and
//! deliveries succeed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use docobo::domain::{Billing, GuildId, RoleId};
use docobo_testkit::app::TestApp;
use docobo_testkit::discord::{FakeDiscord, GuildSpec, MANAGE_ROLES, RoleSpec};
use docobo_testkit::webhooks::{PolarDelivery, PolarKey};

const SECRET: &str = "polar_whs_bench_secret";
const TOKEN: &str = "docobo_admin_bench_token_0123456789abcdef";
const GUILD: u64 = 112_233_445_566_778_899;
const ROLE: u64 = 555;
const PRODUCT: &str = "prod-bench";
const DAY_MS: i64 = 86_400_000;

fn subscriptions_wanted() -> u64 {
    std::env::var("DOCOBO_BENCH_SUBSCRIPTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn iso(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .expect("time")
        .to_string()
}

fn purchase(user: u64) -> PolarDelivery {
    let now = jiff::Timestamp::now().as_millisecond();
    let body = serde_json::json!({
        "type": "subscription.active",
        "timestamp": iso(now),
        "data": {
            "id": format!("sub-{user}"), "status": "active", "cancel_at_period_end": false,
            "created_at": iso(now), "modified_at": iso(now),
            "current_period_end": iso(now + 30 * DAY_MS),
            "amount": 499, "currency": "usd", "product_id": PRODUCT, "customer_id": "cus_1",
            "metadata": {"docobo_guild_id": GUILD.to_string(), "docobo_user_id": user.to_string()},
        }
    });
    PolarKey::utf8(SECRET).delivery_now(
        &format!("msg-{user}"),
        serde_json::to_vec(&body).expect("json"),
    )
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let q = |per_mille: usize| samples[(samples.len() - 1) * per_mille / 1000].as_secs_f64() * 1e3;
    println!(
        "{what:<58} n = {:>4}   p50 {:>7.2} ms   p99 {:>7.2} ms",
        samples.len(),
        q(500),
        q(990),
    );
}

/// `n` subscriptions: members `fan{i}`, three in four active, the rest expired. (Seeded as
/// canceled with a past period end, the ended ones kept the sweep and the role-sync worker
/// busy expiring 25 000 rows and taking their roles away during the first measurements.)
fn seed(
    conn: &rusqlite::Connection,
    guild: GuildId,
    paid: i64,
    n: u64,
) -> Result<(), docobo::db::DbError> {
    let now = jiff::Timestamp::now().as_millisecond();
    // One transaction: one fsync, not one per row.
    let transaction = conn.unchecked_transaction()?;
    let mut member =
        conn.prepare("INSERT INTO members (guild_id, user_id, username) VALUES (?1, ?2, ?3)")?;
    let mut sub = conn.prepare(
        "INSERT INTO subscriptions (guild_id, user_id, paid_role_id, provider, external_id, status, period_end, scope) \
         VALUES (?1, ?2, ?3, 'polar', ?4, ?5, ?6, ?7)",
    )?;
    // A guild's credential scope is stored as its id in decimal (migration V6).
    let scope = guild.get().to_string();
    for i in 0..n {
        let user = 10_000_000 + i as i64;
        member.execute(rusqlite::params![guild.as_i64(), user, format!("fan{i}")])?;
        let (status, end) = if i % 4 == 3 {
            ("expired", now - DAY_MS)
        } else {
            ("active", now + 30 * DAY_MS)
        };
        sub.execute(rusqlite::params![
            guild.as_i64(),
            user,
            paid,
            format!("seed-{i}"),
            status,
            end,
            scope
        ])?;
    }
    drop((member, sub));
    transaction.commit()?;
    Ok(())
}

#[allow(
    clippy::too_many_lines,
    reason = "one benchmark script, phase by phase"
)]
fn main() {
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let guild_spec = GuildSpec::new(GUILD, "Bench")
        .role(RoleSpec::new(ROLE, "Gold", 1, 0))
        .role(RoleSpec::new(556, "Docobo", 2, MANAGE_ROLES).managed())
        .bot_roles(&[556]);
    let discord = Arc::new(
        server
            .block_on(FakeDiscord::builder().guild(guild_spec).start())
            .expect("fake Discord"),
    );
    let hash = docobo::web::auth::hash_token(TOKEN);
    let app = server.block_on(
        TestApp::builder()
            .discord(Arc::clone(&discord))
            .envs(&[
                ("DOCOBO_SERVER__RATE_LIMIT_PER_MINUTE", "0"),
                ("DOCOBO_DASHBOARD__ADMIN_TOKEN_HASH", &hash),
            ])
            .start(),
    );
    server
        .block_on(discord.wait_for_command(Some(GUILD), "status", Duration::from_secs(30)))
        .expect("bot ready");
    let guild = GuildId::new(GUILD).expect("guild");
    let n = subscriptions_wanted();
    let (key, paid) = server.block_on(async {
        let key = app
            .add_guild(
                guild,
                "polar",
                &[
                    ("webhook_secret", SECRET),
                    ("access_token", "x"),
                    ("environment", "production"),
                ],
            )
            .await;
        let paid = app
            .add_paid_role(
                guild,
                RoleId::new(ROLE).expect("role"),
                (499, "USD"),
                Billing::Monthly,
                Some(PRODUCT),
            )
            .await;
        let seeded = Instant::now();
        app.db
            .call(move |conn| seed(conn, guild, paid, n))
            .await
            .expect("seed");
        println!(
            "seeded {n} subscriptions in {:.1} s",
            seeded.elapsed().as_secs_f64()
        );
        (key, paid)
    });

    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let cookie = server.block_on(async {
        let login = client
            .post(app.url("/dashboard/login"))
            .form(&[("token", TOKEN)])
            .send()
            .await
            .expect("login");
        assert_eq!(login.status(), 303);
        let set = login.headers()["set-cookie"]
            .to_str()
            .expect("cookie")
            .to_owned();
        set.split(';').next().expect("cookie").to_owned()
    });
    let base = app.url("");
    let live_cookie = cookie.clone();
    let get = {
        let client = client.clone();
        move |path: String| {
            let (client, cookie, url) = (client.clone(), cookie.clone(), format!("{base}{path}"));
            async move {
                let at = Instant::now();
                let response = client
                    .get(url)
                    .header("cookie", cookie)
                    .send()
                    .await
                    .expect("get");
                assert_eq!(response.status(), 200, "{path}");
                let body = response.text().await.expect("body");
                (at.elapsed(), body)
            }
        }
    };
    let members = format!("/dashboard/guilds/{GUILD}/members");
    // A cursor deep in the list: the id of a subscription near the oldest.
    let deep = 1 + (n as i64) / 20;
    let pages = [
        ("overview", format!("/dashboard/guilds/{GUILD}")),
        ("members, first page", members.clone()),
        (
            "members, role + status=expired",
            format!("{members}?role={paid}&status=expired"),
        ),
        (
            "members, name search q=fan9999",
            format!("{members}?q=fan9999"),
        ),
        (
            "members, keyset page near the end",
            format!("{members}?before={deep}"),
        ),
    ];
    // The first render computes the summary (nothing is kept yet); the ones after it find
    // it kept, until something changes (`src/web/cache.rs`).
    let (first_render, overview) = server.block_on(get(pages[0].1.clone()));
    println!(
        "render: overview, the first (summary computed)              {:>7.2} ms",
        first_render.as_secs_f64() * 1e3
    );
    let counted = overview
        .split(r#"id="active-count">"#)
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or("?");
    println!("the overview counts {counted} members with access");
    for (what, path) in &pages {
        let mut samples = Vec::new();
        for _ in 0..200 {
            let (took, body) = server.block_on(get(path.clone()));
            assert!(body.contains("</html>"));
            samples.push(took);
        }
        report(&format!("render: {what}"), samples);
    }

    // Webhook ack p99 at 100/s, without and with an owner watching: which part of the
    // dashboard costs the acks (the live stream makes the summary be recounted at the
    // paced rate; a page load makes a stale one be recounted; the list is one query).
    let url = app.url(&format!("/webhooks/polar/{key}"));
    let phases: [(&str, bool, &[usize]); 4] = [
        ("without the dashboard", false, &[]),
        ("live stream open, no page loads", true, &[]),
        ("members list every 100 ms, no overview", false, &[1]),
        (
            "live stream + overview and members list in turn every 100 ms",
            true,
            &[0, 1],
        ),
    ];
    for (n_phase, (phase, with_live, loaded)) in phases.into_iter().enumerate() {
        let first = 1_000_000 * (n_phase as u64 + 1);
        let acks = server.block_on(async {
            let stop = tokio_util::sync::CancellationToken::new();
            let started = Instant::now();
            let live = with_live.then(|| {
                let (stop, client, cookie) = (stop.clone(), client.clone(), live_cookie.clone());
                let url = app.url(&format!("/dashboard/guilds/{GUILD}/events"));
                tokio::spawn(async move {
                    let mut response = client
                        .get(url)
                        .header("cookie", cookie)
                        .send()
                        .await
                        .expect("events");
                    assert_eq!(response.status(), 200);
                    let mut changed = Vec::new();
                    loop {
                        let chunk = tokio::select! {
                            () = stop.cancelled() => break,
                            chunk = response.chunk() => chunk,
                        };
                        match chunk {
                            Ok(Some(bytes)) => {
                                for _ in String::from_utf8_lossy(&bytes).matches("event: changed") {
                                    changed.push(started.elapsed());
                                }
                            }
                            _ => break,
                        }
                    }
                    changed
                })
            });
            let reader = (!loaded.is_empty()).then(|| {
                let (stop, get, pages) = (stop.clone(), get.clone(), pages.clone());
                let loaded = loaded.to_vec();
                tokio::spawn(async move {
                    let mut i = 0;
                    let mut took: Vec<Vec<Duration>> = vec![Vec::new(); loaded.len()];
                    while !stop.is_cancelled() {
                        let which = i % loaded.len();
                        let (t, _) = get(pages[loaded[which]].1.clone()).await;
                        took[which].push(t);
                        i += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    (loaded, took)
                })
            });
            let mut tasks = Vec::new();
            for k in 0..1000_u64 {
                let delivery = purchase(first + k);
                let (client, url) = (client.clone(), url.clone());
                let due = started + Duration::from_millis(10 * k);
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep_until(due.into()).await;
                    let at = Instant::now();
                    let response = delivery.request(&client, &url).send().await.expect("send");
                    assert_eq!(response.status(), 202);
                    (due - started, at.elapsed())
                }));
            }
            let mut acks = Vec::new();
            for task in tasks {
                acks.push(task.await.expect("task"));
            }
            stop.cancel();
            if let Some(reader) = reader {
                let (loaded, took) = reader.await.expect("reader");
                for (page, took) in loaded.into_iter().zip(took) {
                    report(
                        &format!("  render during the phase: {}", pages[page].0),
                        took,
                    );
                }
            }
            let mut slowest = acks.clone();
            slowest.sort_by_key(|(_, took)| std::cmp::Reverse(*took));
            slowest.truncate(10);
            slowest.sort();
            let at = |d: &Duration| format!("{:.2}", d.as_secs_f64());
            println!(
                "  the 10 slowest acks, sent at (s): {}",
                slowest
                    .iter()
                    .map(|(sent, took)| format!(
                        "{} ({:.0} ms)",
                        at(sent),
                        took.as_secs_f64() * 1e3
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if let Some(live) = live {
                let changed = live.await.expect("live");
                println!(
                    "  the live stream said `changed` {} times, at (s): {}",
                    changed.len(),
                    changed.iter().map(at).collect::<Vec<_>>().join(", ")
                );
            }
            acks.into_iter().map(|(_, took)| took).collect::<Vec<_>>()
        });
        report(&format!("webhook ack at 100/s, {phase}"), acks);
    }
    server.block_on(app.stop());
}
