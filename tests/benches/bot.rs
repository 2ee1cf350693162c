//! The bot's latencies on loopback, release build, against the fake Discord:
//!
//! - webhook received → role `PUT` seen at Discord, over 1,000 purchases sent at 100/s
//!   (each a distinct member and subscription: verify, commit, wake the worker, hierarchy
//!   check, REST call);
//! - interaction dispatched on the gateway → first response received at Discord, over 500
//!   `/status` and 500 `/join` commands;
//! - webhook → role `PUT` again, 1,000 more purchases at 100/s, on an app whose drift sweep
//!   runs without pause (every second) over 10,000 paying members: the sweep runs in a task
//!   of its own, so a due grant must not wait behind one Discord call per member. The
//!   sweep's `GET …/members/{id}` calls during the phase are counted to show it overlapped.
//!
//! Run: `cargo bench --bench bot`. Prints figures; asserts only that everything arrived.
//! `DOCOBO_BENCH_SWEEP_MEMBERS` changes the 10,000.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use docobo::domain::{Billing, GuildId, RoleId};
use docobo_testkit::app::TestApp;
use docobo_testkit::discord::{
    FakeDiscord, GuildSpec, MANAGE_ROLES, MemberSpec, RoleSpec, SlashCommand,
};
use docobo_testkit::webhooks::{PolarDelivery, PolarKey};

const SECRET: &str = "polar_whs_bench_secret";
const GUILD: u64 = 112_233_445_566_778_899;
const ROLE: u64 = 555;
const PRODUCT: &str = "prod-bench";
const PURCHASES: u64 = 1000;
const FIRST_USER: u64 = 1_000_000;
const DAY_MS: i64 = 86_400_000;

fn iso(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .expect("time")
        .to_string()
}

/// A signed `subscription.active` for member `user`.
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
    let body = serde_json::to_vec(&body).expect("json");
    PolarKey::utf8(SECRET).delivery_now(&format!("msg-{user}"), body)
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let q = |per_mille: usize| samples[(samples.len() - 1) * per_mille / 1000].as_secs_f64() * 1e3;
    println!(
        "{what:<48} n = {:>4}   p50 {:>6.2} ms   p99 {:>6.2} ms   max {:>6.2} ms",
        samples.len(),
        q(500),
        q(990),
        samples.last().expect("samples").as_secs_f64() * 1e3
    );
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
    let members = (FIRST_USER..FIRST_USER + PURCHASES).map(|u| MemberSpec::new(u, "member"));
    let shop = Shop::start(&server, members, "3600");
    let (discord, app, key) = (&shop.discord, &shop.app, &shop.key);
    let addr = app.addr;

    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let to_put = purchases(&server, &client_rt, discord, addr, key, FIRST_USER);
    report("webhook received → role PUT at Discord (100/s)", to_put);

    // Interaction → first response, one at a time, as members would.
    for command in ["status", "join"] {
        let mut samples = Vec::new();
        for n in 0..500_u64 {
            let at = Instant::now();
            let handle = discord
                .slash_command(&SlashCommand::new(GUILD, FIRST_USER + n, command))
                .expect("dispatch");
            let callback = format!("/interactions/{}/{}/callback", handle.id, handle.token);
            let logged = server
                .block_on(discord.wait_for_request("POST", &callback, Duration::from_secs(10)))
                .expect("answered");
            samples.push(logged.at.saturating_duration_since(at));
        }
        report(&format!("interaction /{command} → first response"), samples);
    }
    server.block_on(shop.app.stop());
    shop.discord.assert_no_schema_violations();

    purchases_during_sweeps(&server, &client_rt);
}

/// Sends [`PURCHASES`] signed purchases for members `first..` at 100/s, open loop; returns
/// each one's time from sending to its role `PUT` at Discord.
fn purchases(
    server: &tokio::runtime::Runtime,
    client_rt: &tokio::runtime::Runtime,
    discord: &FakeDiscord,
    addr: std::net::SocketAddr,
    key: &str,
    first: u64,
) -> Vec<Duration> {
    // Pre-signed; sent open-loop at 100/s.
    let deliveries: Vec<_> = (first..first + PURCHASES)
        .map(|u| (u, purchase(u)))
        .collect();
    let sent: HashMap<u64, Instant> = client_rt.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let url = format!("http://{addr}/webhooks/polar/{key}");
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (n, (user, delivery)) in deliveries.into_iter().enumerate() {
            let due = started + Duration::from_millis(10 * n as u64);
            let (client, url) = (client.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(due.into()).await;
                let at = Instant::now();
                let response = delivery.request(&client, &url).send().await.expect("send");
                assert_eq!(response.status(), 202);
                (user, at)
            }));
        }
        let mut sent = HashMap::new();
        for task in tasks {
            let (user, at) = task.await.expect("task");
            sent.insert(user, at);
        }
        sent
    });
    let last = first + PURCHASES - 1;
    server
        .block_on(discord.wait_for_member_role(GUILD, last, ROLE, true, Duration::from_mins(1)))
        .expect("last role granted");
    std::thread::sleep(Duration::from_millis(500));
    let mut to_put = Vec::new();
    for request in discord.requests() {
        if request.method != "PUT" || !request.path.ends_with(&format!("/roles/{ROLE}")) {
            continue;
        }
        let user: u64 = request
            .path
            .split('/')
            .nth(4)
            .and_then(|u| u.parse().ok())
            .expect("user in path");
        if let Some(at) = sent.get(&user) {
            to_put.push(request.at.saturating_duration_since(*at));
        }
    }
    assert_eq!(to_put.len() as u64, PURCHASES, "one PUT per purchase");
    to_put
}

/// The webhook → role phase again, on an app sweeping `holders` paying members nonstop.
fn purchases_during_sweeps(server: &tokio::runtime::Runtime, client_rt: &tokio::runtime::Runtime) {
    let holders: u64 = std::env::var("DOCOBO_BENCH_SWEEP_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let first_holder = 50_000_000;
    let first_buyer = 90_000_000;
    let members = (first_holder..first_holder + holders)
        .map(|u| MemberSpec::new(u, "holder").roles(&[ROLE]))
        .chain((first_buyer..first_buyer + PURCHASES).map(|u| MemberSpec::new(u, "buyer")));
    let shop = Shop::start(server, members, "1");
    let (discord, app) = (&shop.discord, &shop.app);
    // The holders: paid until next month, the role already on them at Discord.
    let (guild, paid) = (GuildId::new(GUILD).expect("guild"), shop.paid);
    let end = jiff::Timestamp::now().as_millisecond() + 30 * DAY_MS;
    server
        .block_on(
            app.db
                .write(move |conn| seed_holders(conn, guild, paid, first_holder, holders, end)),
        )
        .expect("holders");
    // Let a sweep start, then buy while it runs.
    let sweep_calls = |discord: &FakeDiscord| {
        discord
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.contains("/members/5"))
            .count()
    };
    let started = Instant::now();
    while sweep_calls(discord) < 100 {
        assert!(
            started.elapsed() < Duration::from_mins(1),
            "no sweep started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = sweep_calls(discord);
    let to_put = purchases(server, client_rt, discord, app.addr, &shop.key, first_buyer);
    let during = sweep_calls(discord) - before;
    report(
        &format!("webhook → role PUT, sweeping {holders} members"),
        to_put,
    );
    println!("  sweep member checks at Discord during that phase: {during}");
    server.block_on(shop.app.stop());
    shop.discord.assert_no_schema_violations();
}

/// A fake Discord guild with `members`, the app connected to it (sweeping every
/// `sweep_secs`), and the shop: Polar, one paid role.
struct Shop {
    discord: Arc<FakeDiscord>,
    app: TestApp,
    key: String,
    paid: i64,
}

impl Shop {
    fn start(
        server: &tokio::runtime::Runtime,
        members: impl Iterator<Item = MemberSpec>,
        sweep_secs: &str,
    ) -> Self {
        let guild_spec = members.fold(
            GuildSpec::new(GUILD, "Bench")
                .role(RoleSpec::new(ROLE, "Gold", 1, 0))
                .role(RoleSpec::new(556, "Docobo", 2, MANAGE_ROLES).managed())
                .bot_roles(&[556]),
            GuildSpec::member,
        );
        let discord = Arc::new(
            server
                .block_on(FakeDiscord::builder().guild(guild_spec).start())
                .expect("fake Discord"),
        );
        let app = server.block_on(
            TestApp::builder()
                .discord(Arc::clone(&discord))
                .envs(&[
                    ("DOCOBO_SERVER__RATE_LIMIT_PER_MINUTE", "0"),
                    ("DOCOBO_SUBSCRIPTIONS__SWEEP_INTERVAL_SECS", sweep_secs),
                ])
                .start(),
        );
        // Ready (the guild registered, then the commands): set the shop up.
        server
            .block_on(discord.wait_for_command(Some(GUILD), "status", Duration::from_secs(30)))
            .expect("bot ready");
        let guild = GuildId::new(GUILD).expect("guild");
        let (key, paid) = server.block_on(async {
            let credentials = [("webhook_secret", SECRET), ("access_token", "x")];
            let key = app.add_guild(guild, "polar", &credentials).await;
            let role = RoleId::new(ROLE).expect("role");
            let paid = app
                .add_paid_role(guild, role, (499, "USD"), Billing::Monthly, Some(PRODUCT))
                .await;
            (key, paid)
        });
        Self {
            discord,
            app,
            key,
            paid,
        }
    }
}

/// `n` members from `first`, each with an active subscription to `paid` whose role is applied.
fn seed_holders(
    conn: &rusqlite::Connection,
    guild: GuildId,
    paid: i64,
    first: u64,
    n: u64,
    end: i64,
) -> Result<(), docobo::db::DbError> {
    use docobo::db::{members, subscriptions};
    use docobo::domain::{ProviderId, SubscriptionState, SubscriptionStatus, UserId};
    let applied = docobo::db::tiers::get(conn, paid)?
        .map(|tier| tier.roles())
        .unwrap_or_default();
    let provider =
        ProviderId::parse("polar").map_err(|e| docobo::db::DbError::Conflict(e.to_string()))?;
    for user in first..first + n {
        let user = UserId::new(user).map_err(|e| docobo::db::DbError::Conflict(e.to_string()))?;
        members::upsert(conn, guild, user, Some("holder"))?;
        let sub = subscriptions::insert(
            conn,
            &subscriptions::NewSubscription {
                guild_id: guild,
                user_id: user,
                paid_role_id: paid,
                provider: provider.clone(),
                scope: docobo::domain::Scope::Guild(guild),
                external_id: Some(format!("held-{user}")),
                state: SubscriptionState {
                    status: SubscriptionStatus::Active,
                    period_end: Some(end),
                    last_event_at: Some(0),
                },
                payment_code: None,
            },
        )?;
        subscriptions::mark_synced(conn, &[sub], &applied, Some(end))?;
    }
    Ok(())
}
