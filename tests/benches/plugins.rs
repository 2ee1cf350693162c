//! Plugin call cost: Polar `handle-webhook` on a 2 KB body through a fresh instance, beside
//! native HMAC-SHA256 of the same bytes, and loading a cached compiled component vs
//! compiling it.
//!
//! Run: `cargo bench --bench plugins` (release build). Prints figures; asserts nothing.

use std::time::{Duration, Instant};

use docobo::providers::{Clock, HostOptions, ProviderHost};
use docobo_testkit::webhooks::PolarKey;

const SECRET: &str = "polar_whs_benchmark_secret";
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

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = || HostOptions {
            cache_dir: Some(dir.path().join("cache")),
            builtins: true,
            clock: Clock::fixed(1_767_225_600_000),
            ..HostOptions::default()
        };

        // Load: compile (cold cache) vs cached.
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

        let host = ProviderHost::load(options()).await.expect("load");
        let body = body_of_2kb();
        let timestamp = 1_767_225_600;
        let signature = sign("msg_bench", timestamp, &body);
        let config = vec![
            ("webhook_secret".to_owned(), SECRET.to_owned()),
            ("access_token".to_owned(), "polar_oat_x".to_owned()),
        ];
        let headers = vec![
            ("webhook-id".to_owned(), "msg_bench".to_owned()),
            ("webhook-timestamp".to_owned(), timestamp.to_string()),
            ("webhook-signature".to_owned(), signature.clone()),
        ];
        // Warm up, and check the call really verifies.
        for _ in 0..100 {
            let events = host
                .handle_webhook("polar", &config, &headers, &body)
                .await
                .expect("verifies");
            assert_eq!(events.len(), 1);
        }
        let mut plugin_samples = Vec::with_capacity(CALLS);
        let mut native_samples = Vec::with_capacity(CALLS);
        for _ in 0..CALLS {
            let started = Instant::now();
            let events = host
                .handle_webhook("polar", &config, &headers, &body)
                .await
                .expect("verifies");
            plugin_samples.push(started.elapsed());
            std::hint::black_box(events);

            let started = Instant::now();
            let expected = sign("msg_bench", timestamp, std::hint::black_box(&body));
            native_samples.push(started.elapsed());
            assert_eq!(expected, signature);
        }
        // Fixed cost: a fresh instance and a call that returns at once (no signature header).
        let mut overhead = Vec::with_capacity(CALLS);
        for _ in 0..CALLS {
            let started = Instant::now();
            let refused = host.handle_webhook("polar", &config, &[], &body).await;
            overhead.push(started.elapsed());
            assert!(refused.is_err());
        }
        println!("body: {} bytes", body.len());
        report("fresh instance + a call that returns at once", overhead);
        let w = report(
            "polar handle-webhook, fresh instance per call",
            plugin_samples,
        );
        let n = report(
            "native HMAC-SHA256 (+ base64) of the same bytes",
            native_samples,
        );
        println!(
            "ratio wasm/native at p50: {:.0}x",
            w.as_secs_f64() / n.as_secs_f64()
        );
    });
}
