//! A load of distinct signed Polar deliveries (and, on request, duplicates of earlier ones),
//! posted by concurrent workers, with a record of which ones the server acknowledged.
//!
//! Durability tests use it: whatever is in [`Load::acked`] at a moment must survive what
//! happens after that moment (a SIGKILL, a power cut, a restore).
//!
//! Delivery `n` is message `load-{n}` for subscription `sub-load-{n}` of user
//! `1_000_000 + n`, on one product of one guild, entitled for 30 days from now.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::json;
use tokio::task::JoinHandle;

use crate::webhooks::PolarKey;

/// The message id of delivery `n`.
#[must_use]
pub fn message_id(n: usize) -> String {
    format!("load-{n}")
}

/// The body of delivery `n`: an active Polar subscription paid for 30 days from now.
#[must_use]
pub fn subscription_body(n: usize, guild: u64, product: &str) -> Vec<u8> {
    let now = unix_now();
    let body = json!({
        "type": "subscription.active",
        "timestamp": iso(now),
        "data": {
            "id": format!("sub-load-{n}"),
            "status": "active",
            "cancel_at_period_end": false,
            "created_at": iso(now),
            "modified_at": iso(now),
            "current_period_end": iso(now + 30 * 86_400),
            "amount": 499, "currency": "usd",
            "product_id": product,
            "customer_id": format!("cus-load-{n}"),
            "metadata": {"docobo_guild_id": guild.to_string(), "docobo_user_id": (1_000_000 + n).to_string()},
        }
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Where the load goes and what it signs with.
#[derive(Debug, Clone)]
pub struct Target {
    /// The guild's webhook URL (`http://…/webhooks/polar/<key>`).
    pub url: String,
    /// The webhook secret configured for it.
    pub secret: String,
    pub guild: u64,
    pub product: String,
}

#[derive(Debug)]
struct Inner {
    target: Mutex<Target>,
    next: AtomicUsize,
    stop: AtomicBool,
    /// Delivery numbers the server answered 2xx, in the order the answers arrived.
    acked: Mutex<Vec<usize>>,
    /// Requests that got no 2xx (a refused connection, a 5xx while the server died).
    failed: AtomicUsize,
    /// Every `duplicate_every`-th request re-sends an earlier acknowledged delivery.
    duplicate_every: usize,
    duplicates_sent: AtomicUsize,
}

/// A running load; stop it with [`Load::stop`].
#[derive(Debug)]
pub struct Load {
    inner: Arc<Inner>,
    workers: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts `workers` concurrent posters, numbering deliveries from `first`.
    /// `duplicate_every` = 0: no duplicates.
    #[must_use]
    pub fn start(target: Target, workers: usize, first: usize, duplicate_every: usize) -> Self {
        let inner = Arc::new(Inner {
            target: Mutex::new(target),
            next: AtomicUsize::new(first),
            stop: AtomicBool::new(false),
            acked: Mutex::new(Vec::new()),
            failed: AtomicUsize::new(0),
            duplicate_every,
            duplicates_sent: AtomicUsize::new(0),
        });
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        let workers = (0..workers)
            .map(|_| tokio::spawn(work(Arc::clone(&inner), client.clone())))
            .collect();
        Self { inner, workers }
    }

    /// Points the load at another URL (the server restarted on another port).
    pub fn retarget(&self, url: String) {
        self.inner
            .target
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .url = url;
    }

    /// The deliveries acknowledged so far (numbers; see [`message_id`]).
    #[must_use]
    pub fn acked(&self) -> Vec<usize> {
        self.inner
            .acked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many requests got no 2xx.
    #[must_use]
    pub fn failed(&self) -> usize {
        self.inner.failed.load(Ordering::Relaxed)
    }

    /// How many duplicates were sent.
    #[must_use]
    pub fn duplicates_sent(&self) -> usize {
        self.inner.duplicates_sent.load(Ordering::Relaxed)
    }

    /// Stops the workers (each finishes its request in flight) and returns what was acked.
    pub async fn stop(mut self) -> Vec<usize> {
        self.inner.stop.store(true, Ordering::Relaxed);
        for worker in std::mem::take(&mut self.workers) {
            let _ = worker.await;
        }
        self.acked()
    }
}

async fn work(inner: Arc<Inner>, client: reqwest::Client) {
    let mut sent = 0_usize;
    while !inner.stop.load(Ordering::Relaxed) {
        sent += 1;
        let earlier = (inner.duplicate_every > 0 && sent.is_multiple_of(inner.duplicate_every))
            .then(|| {
                let acked = inner.acked.lock().unwrap_or_else(PoisonError::into_inner);
                (!acked.is_empty()).then(|| acked[sent % acked.len()])
            })
            .flatten();
        let n = earlier.unwrap_or_else(|| inner.next.fetch_add(1, Ordering::Relaxed));
        let target = inner
            .target
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let body = subscription_body(n, target.guild, &target.product);
        let delivery = PolarKey::utf8(&target.secret).delivery_now(&message_id(n), body);
        let answer = delivery.request(&client, &target.url).send().await;
        match answer {
            Ok(response) if response.status().is_success() => {
                if earlier.is_some() {
                    inner.duplicates_sent.fetch_add(1, Ordering::Relaxed);
                } else {
                    inner
                        .acked
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(n);
                }
            }
            _ => {
                inner.failed.fetch_add(1, Ordering::Relaxed);
                // The server is down or failing: do not spin.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// RFC 3339 (UTC, seconds) of unix seconds, as Polar writes timestamps.
fn iso(unix: i64) -> String {
    jiff::Timestamp::from_second(unix).map_or_else(|_| String::new(), |t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates_are_right() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(1_767_225_600), "2026-01-01T00:00:00Z");
    }
}
