//! The HTTP server (salvo): routes, protection and the serve loop.
//!
//! Every request passes, outermost first: the access log (method, path with webhook keys
//! redacted, status, latency, client IP), security headers (what Helmet sets), client-IP
//! resolution (`X-Forwarded-For` only from trusted proxies), and a request timeout. All routes
//! but `/health` are behind a per-IP rate limit. There is no CORS: browsers have no business
//! here.

mod health;
mod protect;
mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use salvo::prelude::*;
use tokio_util::sync::CancellationToken;

use crate::ingest::Ingest;
use crate::services::Services;

/// Largest webhook body accepted (413 above it).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// What handlers share.
#[derive(Debug)]
pub struct HttpState {
    pub services: Services,
    /// The ingest service behind the webhook routes.
    pub ingest: Ingest,
    /// The Discord gateway connection, for `/health`.
    pub gateway: crate::discord::GatewayStatus,
    /// When the process started serving, for `/health`.
    pub started: std::time::Instant,
    pub protection: protect::Protection,
}

pub use protect::Protection;

/// Every route, with the protection layers.
#[must_use]
pub fn service(state: &Arc<HttpState>) -> Service {
    let limited = Router::new()
        .hoop(protect::RateLimit {
            state: Arc::clone(state),
        })
        .push(Router::with_path("metrics").get(MetricsRoute {
            state: Arc::clone(state),
        }))
        .push(
            Router::with_path("webhooks/{provider}")
                .post(webhooks::Webhook {
                    state: Arc::clone(state),
                })
                .push(Router::with_path("{webhook_key}").post(webhooks::Webhook {
                    state: Arc::clone(state),
                })),
        );
    let router = Router::new()
        .push(Router::with_path("health").get(health::Health {
            state: Arc::clone(state),
        }))
        .push(limited);
    Service::new(router)
        .hoop(protect::AccessLog)
        .hoop(protect::SecurityHeaders)
        .hoop(protect::ClientIp {
            state: Arc::clone(state),
        })
        .hoop(protect::Timeout {
            limit: state.protection.request_timeout,
        })
}

/// `GET /metrics`: Prometheus text format.
struct MetricsRoute {
    state: Arc<HttpState>,
}

#[handler]
#[allow(clippy::unused_async, reason = "salvo handlers are async")]
impl MetricsRoute {
    async fn handle(&self, res: &mut Response) {
        res.add_header(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            true,
        )
        .ok();
        res.write_body(self.state.services.metrics.render()).ok();
    }
}

/// How long in-flight requests may take to finish after shutdown begins (a webhook cut
/// short is not acknowledged, so its provider sends it again).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(6);

/// Serves on an already-bound listener until `shutdown` fires, then drains in-flight
/// requests (at most [`DRAIN_TIMEOUT`]).
///
/// # Errors
/// The listener cannot be handed to salvo.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Service,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let acceptor = salvo::conn::tcp::TcpAcceptor::try_from(listener)?;
    // Slow-loris protection: headers, bodies, idle connections and stalled writes are all
    // bounded (no WebSockets or long polls are served here).
    let server = Server::new(acceptor).fuse_config(
        salvo::fuse::FuseConfig::strict()
            .with_http1_header_timeout(Duration::from_secs(10))
            .with_request_body_timeout(Duration::from_secs(30)),
    );
    let handle = server.handle();
    let stopper = tokio::spawn(async move {
        shutdown.cancelled().await;
        handle.stop_graceful(DRAIN_TIMEOUT);
    });
    server.serve(service).await;
    stopper.abort();
    Ok(())
}

/// Binds the HTTP listener, with an error that says what to do.
///
/// # Errors
/// The address is in use or not allowed.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        let fix = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                "another program uses this port: stop it, or set server.port (DOCOBO_SERVER__PORT)"
            }
            std::io::ErrorKind::PermissionDenied => {
                "ports below 1024 need privileges: use a port such as 3000 behind a reverse proxy"
            }
            _ => "check server.bind and server.port",
        };
        anyhow::anyhow!("cannot listen on {addr}: {e}. Fix: {fix}")
    })
}
