//! The HTTP server (salvo): routes and the serve loop.

mod health;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use salvo::prelude::*;
use tokio_util::sync::CancellationToken;

use crate::db::Db;
use crate::providers::ProviderHost;

/// What handlers share.
#[derive(Debug)]
pub struct HttpState {
    pub db: Db,
    pub providers: ProviderHost,
    /// When the process started serving, for `/health`.
    pub started: std::time::Instant,
}

/// Every route.
#[must_use]
pub fn router(state: &Arc<HttpState>) -> Router {
    Router::new().push(Router::with_path("health").get(health::Health {
        state: Arc::clone(state),
    }))
}

/// How long in-flight requests may take to finish after shutdown begins.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on an already-bound listener until `shutdown` fires, then drains
/// in-flight requests (at most [`DRAIN_TIMEOUT`]).
///
/// # Errors
/// The listener cannot be handed to salvo.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let acceptor = salvo::conn::tcp::TcpAcceptor::try_from(listener)?;
    let server = Server::new(acceptor);
    let handle = server.handle();
    let stopper = tokio::spawn(async move {
        shutdown.cancelled().await;
        handle.stop_graceful(DRAIN_TIMEOUT);
    });
    server.serve(router).await;
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
