//! Webhook server throughput and latency on loopback, release build:
//! distinct, validly signed Polar deliveries (each creates a live subscription, whose role
//! the role-sync worker then grants on a fake Discord), with the plain `GET /health` rate of
//! the same server in the same run as the ceiling.
//!
//! Phases: ack latency at 500 req/s on a steady server (open loop); `/health` and webhooks
//! each at their maximum rate (32, 64 and 128 closed loops); 500 req/s again, right after
//! saturation.
//! Each open-loop phase also prints the server's own histograms (ack, plugin, store).
//!
//! The load generator shares the two cores with the server, so the closed loops use a
//! minimal keep-alive HTTP/1.1 client (pre-built request bytes, the reply parsed with
//! httparse), like `wrk`: with reqwest the generator took ≈ 14 % of the CPU in a profile of
//! the webhook phase, a cost that moved the ceiling and the webhook rate alike.
//!
//! Run: `cargo bench --bench webhooks`. Prints figures; asserts nothing but correctness.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use docobo::domain::{Billing, GuildId, RoleId};
use docobo_testkit::app::TestApp;
use docobo_testkit::discord::{FakeDiscord, GuildSpec, MANAGE_ROLES, RoleSpec};
use docobo_testkit::webhooks::{PolarDelivery, PolarKey};

const SECRET: &str = "polar_whs_bench_secret";
const GUILD: u64 = 112_233_445_566_778_899;
const PRODUCT: &str = "prod-bench";
/// Closed loops (keep-alive connections) of the maximum-rate phases: a closed loop measures
/// the rate at one concurrency, and with too few requests in flight the server idles while
/// they all wait on the same group commit, so the phases are run at each of these and the
/// highest rate is the maximum sustained one.
const CONNECTIONS: [usize; 3] = [32, 64, 128];

/// How long each maximum-rate webhook phase lasts: 5 s, or `DOCOBO_BENCH_PHASE_SECONDS`
/// (1 to 60; a longer phase shows whether the rate holds while the WAL and the tables
/// grow).
fn phase_length() -> Duration {
    const VAR: &str = "DOCOBO_BENCH_PHASE_SECONDS";
    let Ok(text) = std::env::var(VAR) else {
        return Duration::from_secs(5);
    };
    match text.trim().parse::<u64>() {
        Ok(seconds @ 1..=60) => Duration::from_secs(seconds),
        _ => panic!("{VAR}={text:?}: give a whole number of seconds from 1 to 60"),
    }
}

/// Distinct deliveries signed for a webhook phase: enough for 25 000/s. They are signed
/// just before their phase (Polar refuses a signature more than five minutes old); a phase
/// that uses them up sooner ends there, its rate measured over the time it ran.
fn per_phase(length: Duration) -> usize {
    usize::try_from(length.as_secs() * 25_000).expect("deliveries")
}

fn delivery(n: usize) -> PolarDelivery {
    // Dated now, paid for 30 days: each delivery creates an entitled subscription, so the
    // role-sync worker grants its role (on the fake Discord), as it would in production.
    let now = jiff::Timestamp::now().as_second();
    let at = jiff::Timestamp::from_second(now).expect("now").to_string();
    let end = jiff::Timestamp::from_second(now + 30 * 86_400)
        .expect("end")
        .to_string();
    let body = serde_json::json!({
        "type": "subscription.active",
        "timestamp": at,
        "data": {
            "id": format!("sub-{n}"),
            "status": "active",
            "cancel_at_period_end": false,
            "created_at": at,
            "modified_at": at,
            "current_period_end": end,
            "amount": 499, "currency": "usd",
            "product_id": PRODUCT,
            "customer_id": "cus_1",
            "metadata": {"docobo_guild_id": GUILD.to_string(), "docobo_user_id": (1_000_000 + n).to_string()},
        }
    });
    let body = serde_json::to_vec(&body).expect("json");
    PolarKey::utf8(SECRET).delivery_now(&format!("msg-{n}"), body)
}

/// The delivery as the bytes of one HTTP/1.1 request on a keep-alive connection.
fn request_bytes(addr: std::net::SocketAddr, path: &str, d: &PolarDelivery) -> Vec<u8> {
    let mut headers = String::new();
    for (name, value) in d.headers() {
        for part in [name, ": ", &value, "\r\n"] {
            headers.push_str(part);
        }
    }
    let mut bytes = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\n{headers}content-length: {}\r\n\r\n",
        d.body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(&d.body);
    bytes
}

/// One keep-alive connection of the closed-loop load generator.
struct Connection {
    stream: tokio::net::TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    async fn open(addr: std::net::SocketAddr) -> Self {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream,
            buffer: Vec::with_capacity(4096),
        }
    }

    /// Sends one request and reads its whole reply; returns the status.
    async fn exchange(&mut self, request: &[u8]) -> u16 {
        use tokio::io::AsyncWriteExt as _;
        self.stream.write_all(request).await.expect("write");
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut reply = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head) = reply.parse(&self.buffer).expect("reply") {
                let status = reply.code.expect("status");
                let length: usize = reply
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
                    .expect("content-length");
                while self.buffer.len() < head + length {
                    self.read_more().await;
                }
                self.buffer.drain(..head + length);
                return status;
            }
            self.read_more().await;
        }
    }

    async fn read_more(&mut self) {
        use tokio::io::AsyncReadExt as _;
        let read = self.stream.read_buf(&mut self.buffer).await.expect("read");
        assert!(read > 0, "the server closed the connection");
    }
}

/// The cumulative buckets of a histogram in the `/metrics` text, one per label set: each
/// `(labels, [(upper bound in seconds, count)])`, labels without `le`.
async fn histograms(client: &reqwest::Client, url: &str) -> Vec<(String, Vec<(f64, u64)>)> {
    let text = client
        .get(url)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let mut out: Vec<(String, Vec<(f64, u64)>)> = Vec::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once("_bucket{") else {
            continue;
        };
        let Some((labels, count)) = rest.rsplit_once("} ") else {
            continue;
        };
        let mut le = f64::INFINITY;
        let mut kept = Vec::new();
        for label in labels.split(',').filter(|l| !l.is_empty()) {
            match label.strip_prefix("le=\"") {
                Some(bound) => le = bound.trim_end_matches('"').parse().unwrap_or(f64::INFINITY),
                None => kept.push(label),
            }
        }
        let Ok(count) = count.trim().parse() else {
            continue;
        };
        let key = format!("{name}{{{}}}", kept.join(","));
        match out.last_mut() {
            Some((k, buckets)) if *k == key => buckets.push((le, count)),
            _ => out.push((key, vec![(le, count)])),
        }
    }
    out
}

/// Per histogram, the difference between two readings of [`histograms`].
fn since(
    after: &[(String, Vec<(f64, u64)>)],
    before: &[(String, Vec<(f64, u64)>)],
) -> Vec<(String, Vec<(f64, u64)>)> {
    after
        .iter()
        .map(|(key, buckets)| {
            let old = before
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, b)| b.as_slice());
            let diff = buckets
                .iter()
                .enumerate()
                .map(|(i, (le, n))| (*le, n - old.and_then(|o| o.get(i)).map_or(0, |b| b.1)))
                .collect();
            (key.clone(), diff)
        })
        .collect()
}

/// The upper bound (ms) of the bucket holding the given quantile of a cumulative histogram.
fn bucket_bound(buckets: &[(f64, u64)], per_mille: u64) -> String {
    let total = buckets.last().map_or(0, |b| b.1);
    let wanted = (total * per_mille).div_ceil(1000);
    buckets
        .iter()
        .find(|(_, n)| *n >= wanted)
        .map_or_else(|| "?".into(), |(le, _)| format!("{}", le * 1e3))
}

fn quantile(sorted: &[Duration], per_mille: usize) -> f64 {
    sorted[(sorted.len() - 1) * per_mille / 1000].as_secs_f64() * 1e3
}

/// Requests completed by a closed-loop phase, and how long it ran.
struct Completed {
    requests: usize,
    elapsed: Duration,
}

impl Completed {
    /// `n` things over the phase's duration, per second.
    fn rate_of(&self, n: usize) -> f64 {
        as_f64(n) / self.elapsed.as_secs_f64()
    }

    fn per_second(&self) -> f64 {
        self.rate_of(self.requests)
    }
}

/// A count as a float (counts here stay far below 2^32).
fn as_f64(n: usize) -> f64 {
    f64::from(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Runs `connections` closed loops, each on its own keep-alive connection, for `duration`
/// or until `limit` requests have been sent; `request(n)` gives the bytes of the n-th
/// request, whose reply must have status `expected`.
async fn max_rate<F>(
    addr: std::net::SocketAddr,
    connections: usize,
    duration: Duration,
    limit: usize,
    expected: u16,
    request: F,
) -> Completed
where
    F: Fn(usize) -> Arc<[u8]> + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut open = Vec::new();
    for _ in 0..connections {
        open.push(Connection::open(addr).await);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut connection in open {
        let (request, next, done) = (Arc::clone(&request), Arc::clone(&next), Arc::clone(&done));
        tasks.push(tokio::spawn(async move {
            while started.elapsed() < duration {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= limit {
                    break;
                }
                let status = connection.exchange(&request(n)).await;
                assert_eq!(status, expected, "request {n}");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    Completed {
        requests: done.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    }
}

/// CPU seconds used so far by this process's threads: `(load generator, server)`. The load
/// generator is the main thread (its runtime is single-threaded); the server is every other
/// thread (its runtime, which also serves the fake Discord, the database writer and
/// checkpointer, the plugin epoch ticker). Linux only; zeros elsewhere.
fn cpu_seconds() -> (f64, f64) {
    let pid = std::process::id().to_string();
    let (mut client, mut server) = (0.0, 0.0);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (client, server);
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // Fields after the `(comm)`, which may hold spaces: state is field 3; utime and
        // stime are fields 14 and 15, in clock ticks (100 per second on Linux).
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        let ticks: f64 = fields[11..13]
            .iter()
            .filter_map(|f| f.parse::<f64>().ok())
            .sum();
        if task.file_name().to_string_lossy() == pid {
            client += ticks / 100.0;
        } else {
            server += ticks / 100.0;
        }
    }
    (client, server)
}

/// Subscriptions in the database.
async fn subscription_count(db: &docobo::db::Db) -> usize {
    let rows: i64 = db
        .read(|conn| Ok(conn.query_row("SELECT count(*) FROM subscriptions", [], |r| r.get(0))?))
        .await
        .expect("count");
    usize::try_from(rows).expect("count")
}

/// Role grants (`PUT …/roles/…`) the fake Discord has been asked for.
fn role_grants(discord: &FakeDiscord) -> usize {
    discord.count_requests("PUT", "/guilds/*/members/*/roles/*")
}

/// Waits (up to two minutes) until the fake Discord has been asked one role grant per
/// subscription created; says whether it was.
async fn grants_caught_up(discord: &FakeDiscord, db: &docobo::db::Db) -> bool {
    let deadline = Instant::now() + Duration::from_mins(2);
    while Instant::now() < deadline {
        let (subscriptions, grants) = (subscription_count(db).await, role_grants(discord));
        if grants >= subscriptions {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Requests per second of the open-loop phases, and how long each lasts.
const OPEN_RATE: u64 = 500;
const OPEN_SECONDS: u64 = 10;

/// Sends distinct deliveries (numbered from `first`) at [`OPEN_RATE`] for [`OPEN_SECONDS`],
/// each at its scheduled time whatever happened to the others (open loop); prints the ack
/// latency from the scheduled send time, and the server's own histograms for the same
/// requests (read from `/metrics` before and after) to tell where the time went.
async fn open_loop(
    client: &reqwest::Client,
    hook_url: &Arc<String>,
    metrics_url: &str,
    first: usize,
    label: &str,
) -> (f64, f64) {
    let before = histograms(client, metrics_url).await;
    let count = usize::try_from(OPEN_RATE * OPEN_SECONDS).expect("count");
    let fresh: Arc<Vec<PolarDelivery>> = Arc::new((first..first + count).map(delivery).collect());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..fresh.len() {
        let due = started + Duration::from_micros(1_000_000 / OPEN_RATE * n as u64);
        let (c, d, u) = (client.clone(), Arc::clone(&fresh), Arc::clone(hook_url));
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(due.into()).await;
            let reply = d[n].request(&c, &u).send().await.expect("send");
            let elapsed = due.elapsed();
            let status = reply.status();
            assert!(
                status == 202,
                "delivery {n}: {status} {}",
                reply.text().await.unwrap_or_default()
            );
            elapsed
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.push(task.await.expect("task"));
    }
    latencies.sort();
    let server = since(&histograms(client, metrics_url).await, &before);
    let (p50, p99) = (quantile(&latencies, 500), quantile(&latencies, 990));
    println!(
        "webhook ack at {OPEN_RATE} req/s, {label} (n = {}): p50 {p50:.2} ms   p99 {p99:.2} ms   max {:.2} ms",
        latencies.len(),
        latencies.last().expect("samples").as_secs_f64() * 1e3
    );
    for (name, what) in [
        (
            "docobo_webhook_ack_seconds{}",
            "ack (handler start to reply)",
        ),
        (
            "docobo_plugin_call_seconds{provider=\"polar\",call=\"handle-webhook\"}",
            "  plugin verify + parse",
        ),
        (
            "docobo_webhook_store_seconds{}",
            "  store (writer queue + transaction + commit)",
        ),
    ] {
        if let Some((_, buckets)) = server.iter().find(|(k, _)| k == name) {
            println!(
                "  server: {what:<46} p50 <= {} ms   p99 <= {} ms   max <= {} ms",
                bucket_bound(buckets, 500),
                bucket_bound(buckets, 990),
                bucket_bound(buckets, 1000)
            );
        }
    }
    (p50, p99)
}

/// Whether the bot has registered the guild (its `GUILD_CREATE` was handled).
async fn guild_known(db: &docobo::db::Db) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let known = db
            .read(|conn| {
                Ok(docobo::db::guilds::get(conn, GuildId::new(GUILD).expect("guild"))?.is_some())
            })
            .await
            .expect("read");
        if known {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Starts an app whose database is in a new folder under `root`, with `synchronous`, and
/// sets the shop up in it; returns it with its webhook path.
async fn durability_app(
    discord: &Arc<FakeDiscord>,
    root: &std::path::Path,
    synchronous: &str,
) -> (TestApp, String, tempfile::TempDir) {
    let dir = tempfile::tempdir_in(root).expect("a folder for the database");
    let app = TestApp::builder()
        .discord(Arc::clone(discord))
        .env("DOCOBO_SERVER__RATE_LIMIT_PER_MINUTE", "0")
        .env(
            "DOCOBO_DATABASE__PATH",
            &dir.path().join("docobo.db").display().to_string(),
        )
        .env("DOCOBO_DATABASE__SYNCHRONOUS", synchronous)
        .start()
        .await;
    assert!(guild_known(&app.db).await, "the bot never saw the guild");
    let guild = GuildId::new(GUILD).expect("guild");
    let credentials = [
        ("webhook_secret", SECRET),
        ("access_token", "x"),
        ("api_url", "https://127.0.0.1:9"),
    ];
    let key = app.add_guild(guild, "polar", &credentials).await;
    app.add_paid_role(
        guild,
        RoleId::new(555).expect("role"),
        (499, "USD"),
        Billing::Monthly,
        Some(PRODUCT),
    )
    .await;
    (app, format!("/webhooks/polar/{key}"), dir)
}

/// What durable commits cost (issue 16): `database.synchronous` = normal and = full, on
/// tmpfs (`/dev/shm`, where fsync costs nothing) and on the disk under the temporary folder,
/// in one run, one fresh app each: ack latency at 500 req/s, then the closed-loop rate.
fn durability(server: &tokio::runtime::Runtime, discord: &Arc<FakeDiscord>) {
    let length = Duration::from_secs(3);
    let connections = 64;
    println!(
        "durability: ack at {OPEN_RATE} req/s for {OPEN_SECONDS} s, then {connections} closed loops for {} s, one fresh app each",
        length.as_secs()
    );
    let places = [
        ("tmpfs", std::path::PathBuf::from("/dev/shm")),
        ("disk", std::env::temp_dir()),
    ];
    // Alternated, twice: the machine's noise then falls on both settings alike.
    let rounds: usize = std::env::var("DOCOBO_BENCH_DURABILITY_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let order: Vec<&str> = (0..rounds).flat_map(|_| ["normal", "full"]).collect();
    let mut rows = Vec::new();
    for (place, root) in places.iter().filter(|(_, root)| root.is_dir()) {
        for synchronous in order.iter().copied() {
            let (app, hook_path, _dir) =
                server.block_on(durability_app(discord, root, synchronous));
            let addr = app.addr;
            let client_rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("rt");
            let (p50, p99, rate) = client_rt.block_on(async {
                let client = reqwest::Client::builder()
                    .no_proxy()
                    .build()
                    .expect("client");
                let hook_url = Arc::new(format!("http://{addr}{hook_path}"));
                let metrics_url = format!("http://{addr}/metrics");
                let label = format!("{place}, synchronous={synchronous}");
                let (p50, p99) =
                    open_loop(&client, &hook_url, &metrics_url, 3_000_000, &label).await;
                let per_phase = per_phase(length);
                let requests: Vec<Arc<[u8]>> = (4_000_000..4_000_000 + per_phase)
                    .map(|n| request_bytes(addr, &hook_path, &delivery(n)).into())
                    .collect();
                let done = max_rate(addr, connections, length, per_phase, 202, move |n| {
                    Arc::clone(&requests[n])
                })
                .await;
                (p50, p99, done.per_second())
            });
            rows.push((*place, synchronous, p50, p99, rate));
            server.block_on(app.stop());
        }
    }
    println!("place   synchronous   ack p50 ms   ack p99 ms   webhooks/s");
    for (place, synchronous, p50, p99, rate) in &rows {
        println!("{place:<7} {synchronous:<13} {p50:>10.2}   {p99:>10.2}   {rate:>10.0}");
    }
    let mean = |place: &str, synchronous: &str, pick: fn(&(&str, &str, f64, f64, f64)) -> f64| {
        let picked: Vec<f64> = rows
            .iter()
            .filter(|r| r.0 == place && r.1 == synchronous)
            .map(pick)
            .collect();
        picked.iter().sum::<f64>() / as_f64(picked.len())
    };
    for (place, _) in places.iter().filter(|(_, root)| root.is_dir()) {
        println!(
            "{place}: full vs normal (mean of {rounds}): rate {:.0} %, ack p99 {:.2} vs {:.2} ms",
            mean(place, "full", |r| r.4) / mean(place, "normal", |r| r.4) * 100.0,
            mean(place, "full", |r| r.3),
            mean(place, "normal", |r| r.3),
        );
    }
}

#[allow(
    clippy::too_many_lines,
    reason = "one benchmark script, phase by phase"
)]
fn main() {
    // The server's warnings and errors reach stderr (a failed delivery says why).
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(std::io::stderr)
        .init();
    // The server gets its own runtime, like the binary; the load generator another thread.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    // The bot talks to a loopback fake Discord that knows the guild (the role-sync worker
    // runs during the benchmark, as it would in production).
    let discord = server
        .block_on(
            FakeDiscord::builder()
                .guild(
                    GuildSpec::new(GUILD, "Bench")
                        .role(RoleSpec::new(555, "Gold", 1, 0))
                        .role(RoleSpec::new(556, "Docobo", 2, MANAGE_ROLES).managed())
                        .bot_roles(&[556]),
                )
                .start(),
        )
        .expect("fake Discord");
    let discord = Arc::new(discord);
    let app = server.block_on(
        TestApp::builder()
            .discord(Arc::clone(&discord))
            .env("DOCOBO_SERVER__RATE_LIMIT_PER_MINUTE", "0")
            .start(),
    );
    let (addr, db) = (app.addr, app.db.clone());
    // Once the bot has registered the guild, the shop is set up in it.
    server
        .block_on(discord.wait_for_command(Some(GUILD), "status", Duration::from_secs(30)))
        .expect("bot ready");
    let guild = GuildId::new(GUILD).expect("guild");
    let credentials = [
        ("webhook_secret", SECRET),
        ("access_token", "x"),
        // The reconciler's poll must not try to reach Polar from a benchmark.
        ("api_url", "https://127.0.0.1:9"),
    ];
    let key = server.block_on(async {
        let key = app.add_guild(guild, "polar", &credentials).await;
        let role = RoleId::new(555).expect("role");
        app.add_paid_role(guild, role, (499, "USD"), Billing::Monthly, Some(PRODUCT))
            .await;
        key
    });
    let hook_path = format!("/webhooks/polar/{key}");

    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    client_rt.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(32)
            .build()
            .expect("client");
        let hook_url = Arc::new(format!("http://{addr}{hook_path}"));

        let metrics_url = format!("http://{addr}/metrics");
        open_loop(&client, &hook_url, &metrics_url, 100_000, "steady").await;

        let length = phase_length();
        let per_phase = per_phase(length);
        let health_request: Arc<[u8]> = format!("GET /health HTTP/1.1\r\nhost: {addr}\r\n\r\n")
            .into_bytes()
            .into();
        // The ceilings first, on an idle server; then each webhook phase, after the role
        // grants of the one before have caught up, so that every phase starts alike.
        let mut ceilings = Vec::new();
        for connections in CONNECTIONS {
            let request = Arc::clone(&health_request);
            let before = cpu_seconds();
            let done = max_rate(
                addr,
                connections,
                Duration::from_secs(3),
                usize::MAX,
                200,
                move |_| Arc::clone(&request),
            )
            .await;
            let after = cpu_seconds();
            let per_request = (after.1 - before.1) / as_f64(done.requests);
            ceilings.push((done.per_second(), per_request * 1e6));
        }
        println!(
            "webhook phases of {} s; the worker grants roles while a phase runs and after it",
            length.as_secs()
        );
        print!("closed loops   GET /health (ceiling), server CPU per request   ");
        print!("signed Polar webhooks   ratio   role grants during the phase   caught up after   ");
        println!("CPU per delivery: server / load generator");
        let mut best = (0.0_f64, 0);
        for (phase, (connections, (health, health_cpu))) in
            CONNECTIONS.into_iter().zip(ceilings).enumerate()
        {
            // Distinct deliveries, signed before the phase: signing is not the server's cost.
            let first = 1_000_000 + phase * per_phase;
            let requests: Vec<Arc<[u8]>> = (first..first + per_phase)
                .map(|n| request_bytes(addr, &hook_path, &delivery(n)).into())
                .collect();
            let before = cpu_seconds();
            let grants_before = role_grants(&discord);
            let done = max_rate(addr, connections, length, per_phase, 202, move |n| {
                Arc::clone(&requests[n])
            })
            .await;
            let ended = Instant::now();
            let webhooks = done.per_second();
            let granted = role_grants(&discord) - grants_before;
            let sent = as_f64(done.requests);
            // The load generator's share is its CPU during the phase; the server's runs on
            // until its role grants are done, which belong to the deliveries too.
            let client = cpu_seconds().0 - before.0;
            let caught_up = grants_caught_up(&discord, &db).await;
            let after = cpu_seconds();
            let ratio = webhooks / health * 100.0;
            let grant_rate = done.rate_of(granted);
            let caught = if caught_up {
                format!("{:.1} s", ended.elapsed().as_secs_f64())
            } else {
                "not within 2 min".into()
            };
            let (server_cpu, client_cpu) = ((after.1 - before.1) / sent * 1e6, client / sent * 1e6);
            print!("{connections:>12}   {health:>15.0} req/s, {health_cpu:>5.0} µs   ");
            print!(
                "{webhooks:>15.0} req/s   {ratio:>4.0} %   {grant_rate:>22.0} /s   {caught:>15}   "
            );
            println!("{server_cpu:>6.0} µs / {client_cpu:.0} µs");
            if webhooks > best.0 {
                best = (webhooks, connections);
            }
        }
        println!(
            "maximum sustained webhook rate: {:.0} req/s ({} connections)",
            best.0, best.1
        );
        open_loop(
            &client,
            &hook_url,
            &metrics_url,
            200_000,
            "right after the saturation phase",
        )
        .await;
    });
    let rows = server.block_on(subscription_count(&db));
    println!("subscriptions created: {rows}");
    println!(
        "role grants asked of the fake Discord by then: {}",
        role_grants(&discord)
    );
    server.block_on(app.stop());
    durability(&server, &discord);
}
