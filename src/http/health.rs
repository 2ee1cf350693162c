//! `GET /health`: is the process able to do its job? Used by Docker's HEALTHCHECK and
//! uptime monitors. 200 when healthy, 503 otherwise. The dashboard's health page
//! (`crate::web`) renders the same [`Report`] for people.

use std::sync::Arc;

use salvo::http::StatusCode;
use salvo::prelude::*;
use serde::Serialize;

use super::HttpState;

pub struct Health {
    pub state: Arc<HttpState>,
}

/// What `/health` answers.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) status: &'static str,
    pub(crate) time: String,
    pub(crate) version: &'static str,
    pub(crate) uptime_seconds: u64,
    /// `ok`, or what is wrong (`not writable: the disk is full`).
    pub(crate) database: String,
    /// `connecting`, `connected`, `reconnecting`, or `failed` (Discord refused the bot:
    /// bad token or intent; the log says how to fix it).
    pub(crate) gateway: &'static str,
    pub(crate) plugins: Vec<String>,
    pub(crate) plugins_failed: usize,
}

impl Report {
    pub(crate) fn healthy(&self) -> bool {
        self.status == "ok"
    }
}

/// Checks what `/health` reports.
pub(crate) async fn report(state: &HttpState) -> Report {
    // Reading is not enough: a full disk or a file system turned read-only still
    // answers reads while every delivery fails.
    let db = &state.services.db;
    let database = match db.ping().await {
        Err(e) => {
            tracing::error!(error = %e, "health check: database unreachable");
            Some("unreachable: the database cannot be read".to_owned())
        }
        // Logged once by the writer when it started failing.
        Ok(()) => db
            .writable()
            .await
            .err()
            .map(|reason| format!("not writable: {reason}")),
    };
    let db_ok = database.is_none();
    let gateway = state.gateway.get();
    let healthy = db_ok && gateway != crate::discord::GatewayState::Failed;
    Report {
        status: if healthy { "ok" } else { "unhealthy" },
        time: jiff::Timestamp::now().to_string(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.started.elapsed().as_secs(),
        database: database.unwrap_or_else(|| "ok".to_owned()),
        gateway: gateway.as_str(),
        plugins: state
            .services
            .providers
            .plugins()
            .map(|p| p.id.to_string())
            .collect(),
        plugins_failed: state.services.providers.failures().len(),
    }
}

#[handler]
impl Health {
    async fn handle(&self, res: &mut Response) {
        let report = report(&self.state).await;
        if !report.healthy() {
            res.status_code(StatusCode::SERVICE_UNAVAILABLE);
        }
        res.add_header("cache-control", "no-store", true).ok();
        res.render(Json(report));
    }
}
