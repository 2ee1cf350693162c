//! The HTTP server (salvo): routes, protection and the serve loop.
//!
//! Every request passes, outermost first: the access log (method, the normalised path with
//! webhook keys redacted, status, latency, client IP), security headers (what Helmet sets),
//! client-IP resolution (`X-Forwarded-For` only from trusted proxies), and a request timeout;
//! then it is routed on its normalised path ([`route`]). All routes but `/health` are behind a
//! per-IP rate limit. Before any of that the connection bounds the request head (64 lines,
//! 8 KiB, a deadline). There is no CORS: browsers have no business here.

mod health;
mod protect;
pub mod route;
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
    /// Where the dashboard takes and lists backups (`database.backup_dir`).
    pub backup_dir: std::path::PathBuf,
    pub protection: protect::Protection,
    /// Fired at shutdown: ends the dashboard's live streams at once.
    pub shutdown: CancellationToken,
    /// The dashboard's Discord side (its admin actions remove roles and post log lines).
    pub dashboard: crate::web::Dashboard,
}

pub(crate) use health::{Report as HealthReport, report as health_report};
pub use protect::{Protection, ProtectionSettings};

/// Every route, with the protection layers. Salvo's router only hands every request to
/// [`Dispatch`], which routes the normalised path ([`route::Route::of`]): what is routed and
/// what is logged are the same reading of the path.
#[must_use]
pub fn service(state: &Arc<HttpState>) -> Service {
    let dispatch = || Dispatch {
        state: Arc::clone(state),
    };
    let router = Router::new()
        .goal(dispatch())
        .push(Router::with_path("{**rest}").goal(dispatch()));
    Service::new(router)
        .hoop(protect::AccessLog {
            state: Arc::clone(state),
        })
        .hoop(protect::SecurityHeaders)
        .hoop(protect::ClientIp {
            state: Arc::clone(state),
        })
        .hoop(protect::Timeout {
            state: Arc::clone(state),
        })
}

/// Routes a request by its normalised path. Every route but `/health` is behind the per-IP
/// rate limit.
struct Dispatch {
    state: Arc<HttpState>,
}

#[handler]
impl Dispatch {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        let route = route::Route::of(req.method(), req.uri().path());
        if !matches!(route, route::Route::Health) && protect::rate_limited(&self.state, depot, res)
        {
            return;
        }
        match route {
            route::Route::Health => {
                let health = health::Health {
                    state: Arc::clone(&self.state),
                };
                salvo::Handler::handle(&health, req, depot, res, ctrl).await;
            }
            route::Route::Metrics => metrics(&self.state, req, res).await,
            route::Route::Webhook { provider, key } => {
                webhooks::Webhook {
                    state: Arc::clone(&self.state),
                }
                .handle(req, depot, res, provider, key)
                .await;
            }
            route::Route::Dashboard(page) => {
                crate::web::serve(&self.state, page, req, res).await;
            }
            route::Route::WrongMethod(allowed) => {
                res.status_code(StatusCode::METHOD_NOT_ALLOWED);
                res.add_header("allow", allowed, true).ok();
                res.render(Json(serde_json::json!({"error": "method not allowed"})));
            }
            route::Route::NotFound => {
                res.status_code(StatusCode::NOT_FOUND);
                res.render(Json(serde_json::json!({"error": "not found"})));
            }
        }
    }
}

/// `GET /metrics`: Prometheus text format; 401 without the bearer token when
/// `server.metrics_token` is set.
async fn metrics(state: &HttpState, req: &Request, res: &mut Response) {
    let authorization = req
        .headers()
        .get("authorization")
        .map(salvo::http::HeaderValue::as_bytes);
    if !state.protection.metrics_allowed(authorization) {
        res.status_code(StatusCode::UNAUTHORIZED);
        res.add_header("www-authenticate", "Bearer", true).ok();
        res.render(Json(serde_json::json!({
            "error": "GET /metrics needs Authorization: Bearer <server.metrics_token>"
        })));
        return;
    }
    res.add_header(
        "content-type",
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        true,
    )
    .ok();
    let services = &state.services;
    // Read before the count: a write that lands during it makes the next scrape count again.
    let generation = services.db.generation();
    if state.protection.metrics_private() && services.metrics.shop_stale(generation) {
        // The shop's figures, counted again when the store changed or after 30 s, on the
        // dashboard's own connection; a failed count keeps the last figures (and is
        // logged), the other metrics still go.
        let now = services.now();
        match services
            .db
            .read_slow(move |conn| crate::db::revenue::shop_figures(conn, now))
            .await
        {
            Ok(figures) => services.metrics.set_shop(&figures, generation),
            Err(e) => tracing::warn!(error = %e, "cannot count the shop's figures for /metrics"),
        }
    }
    res.write_body(services.metrics.render()).ok();
}

impl HttpState {
    /// The request's path as logs show it ([`route::logged`]).
    fn logged_path(&self, req: &Request) -> String {
        route::logged(req.uri().path(), |provider| {
            self.services.providers.plugin(provider).is_some()
        })
    }
}

/// How long in-flight requests may take to finish after shutdown begins (a webhook cut
/// short is not acknowledged, so its provider sends it again).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(6);

/// Serves on an already-bound listener until `shutdown` fires, then drains in-flight
/// requests (at most [`DRAIN_TIMEOUT`]). Request heads are bounded by `limits` and by
/// [`MAX_HEADERS`] and [`MAX_HEADER_BYTES`].
///
/// # Errors
/// The listener cannot be handed to salvo.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Service,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let acceptor = salvo::conn::tcp::TcpAcceptor::try_from(listener)?;
    // Slow-loris protection: headers, bodies, idle connections and stalled writes are all
    // bounded (no WebSockets or long polls are served here). The head has one deadline for
    // the whole of it, so trickling a byte a second does not extend it.
    let mut server = Server::new(acceptor).fuse_config(
        salvo::fuse::FuseConfig::strict()
            .with_http1_header_timeout(limits.header_timeout)
            .with_request_body_timeout(Duration::from_secs(30)),
    );
    // A request head with more headers, or more bytes, is refused with 431.
    server
        .http1_mut()
        .max_headers(MAX_HEADERS)
        .max_header_size(MAX_HEADER_BYTES);
    let handle = server.handle();
    let stopper = tokio::spawn(async move {
        shutdown.cancelled().await;
        handle.stop_graceful(DRAIN_TIMEOUT);
    });
    server.serve(service).await;
    stopper.abort();
    Ok(())
}

/// Most header lines in one request (431 above).
pub const MAX_HEADERS: usize = 64;
/// Largest request head, request line included (431 above).
pub const MAX_HEADER_BYTES: usize = 8 << 10;

/// What bounds a connection before a handler runs.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// How long the request line and headers may take to arrive.
    pub header_timeout: Duration,
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
