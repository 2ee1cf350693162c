//! Plugin call cost: Polar `handle-webhook` on a 2 KB body through a fresh instance, on the
//! synchronous path every webhook takes and on the fiber path every webhook took before
//! (issue 20), beside native HMAC-SHA256 of the same bytes; and loading a cached compiled
//! component vs compiling it. The two paths are sampled alternately, call by call.
//!
//! Run: `cargo bench --bench plugins` (release build). Prints figures; asserts nothing.
//! `DOCOBO_BENCH_POLAR=path/to/docobo_polar.wasm` measures that build of the Polar plugin
//! instead of the embedded one (to compare guest profiles).

use std::time::{Duration, Instant};

use docobo::providers::{Clock, HostOptions, ProviderHost};
use docobo_testkit::webhooks::PolarKey;

const SECRET: &str = "polar_whs_benchmark_secret";
/// A standard (post-2026-09-08) secret: `whsec_` + base64 of 32 bytes, two candidate keys.
const STANDARD_SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const CALLS: usize = 3000;

fn body_of_2kb() -> Vec<u8> {
    let path = docobo_testkit::fixtures::webhooks().join("polar-subscription-active.json");
    let text = std::fs::read_to_string(path).expect("fixture (tests/fixtures/webhooks)");
    let mut value: serde_json::Value = serde_json::from_str(&text).expect("json");
    // Drop nested objects the mapping does not need until it fits, then pad to 2048 bytes.
    for key in ["product", "prices", "meters", "discount", "customer"] {
        if serde_json::to_vec(&value).expect("json").len() <= 2048 {
            break;
        }
        if let Some(data) = value["data"].as_object_mut() {
            data.remove(key);
        }
    }
    let len = serde_json::to_vec(&value).expect("json").len();
    let pad = 2048usize.saturating_sub(len + r#","padding":"""#.len());
    value["data"]["metadata"]["padding"] = serde_json::Value::String("x".repeat(pad));
    serde_json::to_vec(&value).expect("json")
}

/// The `webhook-signature` of a delivery (HMAC-SHA256 under the legacy UTF-8 key, base64).
fn sign(id: &str, timestamp: i64, body: &[u8]) -> String {
    PolarKey::utf8(SECRET).sign(id, timestamp, body)
}

/// The `per_mille`/1000 quantile of sorted samples.
fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    sorted[(sorted.len() - 1) * per_mille / 1000]
}

fn report(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let p50 = percentile(&samples, 500);
    println!(
        "{name:<48} p50 {:>9.1} µs   p99 {:>9.1} µs   (n = {})",
        p50.as_secs_f64() * 1e6,
        percentile(&samples, 990).as_secs_f64() * 1e6,
        samples.len()
    );
    p50
}

/// A Polar delivery of the 2 KB body: its plugin config and headers.
struct Delivery {
    config: Vec<(String, String)>,
    headers: Vec<(String, String)>,
}

const TIMESTAMP: i64 = 1_767_225_600;

fn delivery(secret: &str, key: &PolarKey, body: &[u8]) -> Delivery {
    Delivery {
        config: vec![
            ("webhook_secret".to_owned(), secret.to_owned()),
            ("access_token".to_owned(), "polar_oat_x".to_owned()),
        ],
        headers: vec![
            ("webhook-id".to_owned(), "msg_bench".to_owned()),
            ("webhook-timestamp".to_owned(), TIMESTAMP.to_string()),
            (
                "webhook-signature".to_owned(),
                key.sign("msg_bench", TIMESTAMP, body),
            ),
        ],
    }
}

/// Loads the host with a cold compile cache, then five times with a warm one.
async fn measure_loads(options: impl Fn() -> HostOptions) {
    let started = Instant::now();
    let cold = ProviderHost::load(options()).await.expect("load");
    let compile = started.elapsed();
    drop(cold);
    let mut warm_loads = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let host = ProviderHost::load(options()).await.expect("load");
        warm_loads.push(started.elapsed());
        drop(host);
    }
    warm_loads.sort();
    let warm = warm_loads[warm_loads.len() / 2];
    println!(
        "load polar + sepay, cold cache (compile)        {:>9.1} ms",
        compile.as_secs_f64() * 1e3
    );
    println!(
        "load polar + sepay, warm cache (median of 5)    {:>9.1} ms   ({:.0}x faster)",
        warm.as_secs_f64() * 1e3,
        compile.as_secs_f64() / warm.as_secs_f64()
    );
}

/// Samples of one kind of call, taken in turn with the others.
#[derive(Default)]
struct Samples {
    sync: Vec<Duration>,
    fibers: Vec<Duration>,
    sync_standard: Vec<Duration>,
    native: Vec<Duration>,
    sync_overhead: Vec<Duration>,
    fibers_overhead: Vec<Duration>,
}

/// Times `call`, which must succeed (`ok`) or fail.
async fn timed<T, E>(
    samples: &mut Vec<Duration>,
    ok: bool,
    call: impl Future<Output = Result<T, E>>,
) {
    let started = Instant::now();
    let result = call.await;
    samples.push(started.elapsed());
    assert_eq!(std::hint::black_box(result).is_ok(), ok);
}

async fn measure_calls(host: &ProviderHost, body: &[u8], legacy: &Delivery, standard: &Delivery) {
    // Warm up, and check the calls really verify.
    for _ in 0..100 {
        for d in [legacy, standard] {
            let events = host.handle_webhook("polar", &d.config, &d.headers, body);
            assert_eq!(events.await.expect("verifies").len(), 1);
            let events = host.handle_webhook_on_fibers("polar", &d.config, &d.headers, body);
            assert_eq!(events.await.expect("verifies").len(), 1);
        }
    }
    let mut s = Samples::default();
    let (config, headers) = (&legacy.config, &legacy.headers);
    let signature = &legacy.headers[2].1;
    for _ in 0..CALLS {
        timed(
            &mut s.sync,
            true,
            host.handle_webhook("polar", config, headers, body),
        )
        .await;
        let on_fibers = host.handle_webhook_on_fibers("polar", config, headers, body);
        timed(&mut s.fibers, true, on_fibers).await;
        let (c, h) = (&standard.config, &standard.headers);
        timed(
            &mut s.sync_standard,
            true,
            host.handle_webhook("polar", c, h, body),
        )
        .await;

        let started = Instant::now();
        let expected = sign("msg_bench", TIMESTAMP, std::hint::black_box(body));
        s.native.push(started.elapsed());
        assert_eq!(&expected, signature);

        // Fixed cost: a fresh instance and a call that returns at once (no signature).
        timed(
            &mut s.sync_overhead,
            false,
            host.handle_webhook("polar", config, &[], body),
        )
        .await;
        let on_fibers = host.handle_webhook_on_fibers("polar", config, &[], body);
        timed(&mut s.fibers_overhead, false, on_fibers).await;
    }
    println!("body: {} bytes", body.len());
    report(
        "fresh instance + immediate return, fibers",
        s.fibers_overhead,
    );
    report(
        "fresh instance + immediate return, synchronous",
        s.sync_overhead,
    );
    let f = report("polar handle-webhook, fibers (before)", s.fibers);
    let w = report("polar handle-webhook, synchronous (after)", s.sync);
    report(
        "polar handle-webhook, standard secret, sync",
        s.sync_standard,
    );
    let n = report("native HMAC-SHA256 (+ base64) of the same bytes", s.native);
    println!(
        "p50 synchronous/fibers: {:.2}; ratio wasm/native at p50: {:.0}x (fibers {:.0}x)",
        w.as_secs_f64() / f.as_secs_f64(),
        w.as_secs_f64() / n.as_secs_f64(),
        f.as_secs_f64() / n.as_secs_f64()
    );
    let paths = host.webhook_paths();
    println!(
        "webhook calls: {} synchronous, {} rerun on fibers",
        paths.synchronous, paths.rerun_on_fibers
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let polar_file: Vec<std::path::PathBuf> = std::env::var_os("DOCOBO_BENCH_POLAR")
            .map(Into::into)
            .into_iter()
            .collect();
        for file in &polar_file {
            let size = std::fs::metadata(file).expect("DOCOBO_BENCH_POLAR").len();
            println!("polar plugin: {} ({size} bytes)", file.display());
        }
        let options = || HostOptions {
            cache_dir: Some(dir.path().join("cache")),
            builtins: true,
            extra_files: polar_file.clone(),
            clock: Clock::fixed(TIMESTAMP * 1000),
            ..HostOptions::default()
        };
        measure_loads(options).await;

        let host = ProviderHost::load(options()).await.expect("load");
        let body = body_of_2kb();
        let legacy = delivery(SECRET, &PolarKey::utf8(SECRET), &body);
        let standard_key = PolarKey::standard(STANDARD_SECRET).expect("standard secret");
        let standard = delivery(STANDARD_SECRET, &standard_key, &body);
        measure_calls(&host, &body, &legacy, &standard).await;
    });
}
