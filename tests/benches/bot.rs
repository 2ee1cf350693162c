//! The bot's latencies on loopback, release build, against the fake Discord:
//!
//! - webhook received → role `PUT` seen at Discord, over 1,000 purchases sent at 100/s
//!   (each a distinct member and subscription: verify, commit, wake the worker, hierarchy
//!   check, REST call);
//! - interaction dispatched on the gateway → first response received at Discord, over 500
//!   `/status` and 500 `/join` commands.
//!
//! Run: `cargo bench --bench bot`. Prints figures; asserts only that everything arrived.

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
    let mut guild_spec = GuildSpec::new(GUILD, "Bench")
        .role(RoleSpec::new(ROLE, "Gold", 1, 0))
        .role(RoleSpec::new(556, "Docobo", 2, MANAGE_ROLES).managed())
        .bot_roles(&[556]);
    for user in FIRST_USER..FIRST_USER + PURCHASES {
        guild_spec = guild_spec.member(MemberSpec::new(user, "member"));
    }
    let discord = server
        .block_on(FakeDiscord::builder().guild(guild_spec).start())
        .expect("fake Discord");
    let discord = Arc::new(discord);
    let app = server.block_on(
        TestApp::builder()
            .discord(Arc::clone(&discord))
            .envs(&[
                ("DOCOBO_SERVER__RATE_LIMIT_PER_MINUTE", "0"),
                ("DOCOBO_SUBSCRIPTIONS__SWEEP_INTERVAL_SECS", "3600"),
            ])
            .start(),
    );
    let addr = app.addr;
    // Ready (the guild registered, then the commands): set the shop up.
    server
        .block_on(discord.wait_for_command(Some(GUILD), "status", Duration::from_secs(30)))
        .expect("bot ready");
    let guild = GuildId::new(GUILD).expect("guild");
    let key = server.block_on(async {
        let credentials = [("webhook_secret", SECRET), ("access_token", "x")];
        let key = app.add_guild(guild, "polar", &credentials).await;
        let role = RoleId::new(ROLE).expect("role");
        app.add_paid_role(guild, role, (499, "USD"), Billing::Monthly, Some(PRODUCT))
            .await;
        key
    });

    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    // Webhook → role PUT. Pre-signed; sent open-loop at 100/s.
    let deliveries: Vec<_> = (FIRST_USER..FIRST_USER + PURCHASES)
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
    let last = FIRST_USER + PURCHASES - 1;
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
    server.block_on(app.stop());
    discord.assert_no_schema_violations();
}
