//! The dashboard's operations pages: a server's failed role syncs (with retry), its recent
//! deliveries, its plugins; and for the operator the backups; and health. Each page is
//! refused without a session (GETs go to the login page, POSTs get 403) and for another
//! server; every POST checks its origin and CSRF token as logout does.

use std::time::Duration;

use askama::Template;
use salvo::prelude::*;

use super::Scope;
use super::auth::{Session, csrf_matches};
use super::ops_data::{
    self, BackupFile, Delivery, DeliveryPage, FailedSync, PluginLine, Plugins, Retried, Storage,
};
use super::pages::{
    cross_site, guild_session, html, problem, same_origin, session, store_failed, to_login,
};
use crate::domain::{GuildId, UserId};
use crate::http::HttpState;
use crate::services::Services;

/// How long a retry waits for the role-sync worker's outcome before saying it is queued.
const RETRY_WAIT: Duration = Duration::from_secs(5);

#[derive(Template)]
#[template(path = "syncs.html")]
struct SyncsPage<'a> {
    operator: bool,
    csrf: &'a str,
    guild: u64,
    name: &'a str,
    rows: &'a [FailedSync],
    total: usize,
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "deliveries.html")]
struct DeliveriesPage<'a> {
    operator: bool,
    csrf: &'a str,
    guild: u64,
    name: &'a str,
    rows: &'a [Delivery],
    /// Whether this is the newest page (no `before`).
    first: bool,
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "plugins.html")]
struct PluginsPage<'a> {
    operator: bool,
    csrf: &'a str,
    guild: u64,
    name: &'a str,
    provider: Option<&'a str>,
    own: Option<&'a PluginLine>,
    others: &'a [PluginLine],
    failures: &'a [(String, String)],
}

#[derive(Template)]
#[template(path = "backups.html")]
struct BackupsPage<'a> {
    operator: bool,
    csrf: &'a str,
    folder: &'a str,
    rows: &'a [BackupFile],
    notice: Option<String>,
    problem: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "health.html")]
struct HealthPage<'a> {
    operator: bool,
    csrf: &'a str,
    /// A guild session's own server (for its link back).
    home: Option<u64>,
    report: &'a crate::http::HealthReport,
    gateway: &'static str,
    uptime: String,
    storage: &'a Storage,
    last: Option<&'a Delivery>,
}

fn is_operator(session: &Session) -> bool {
    matches!(session.scope, Scope::Operator)
}

/// The session of a POST, its origin and CSRF token checked; or the refusal rendered.
async fn checked_post(services: &Services, req: &mut Request, res: &mut Response) -> Option<()> {
    let Some((_, session)) = session(services, req) else {
        problem(
            res,
            StatusCode::FORBIDDEN,
            "Not logged in",
            "This action needs a session: log in again, then retry.",
        );
        return None;
    };
    if !same_origin(req) {
        cross_site(res);
        return None;
    }
    let csrf = req.form::<String>("csrf").await;
    if !csrf_matches(&session.csrf, csrf.as_deref()) {
        problem(
            res,
            StatusCode::FORBIDDEN,
            "Refused",
            "This form is missing its security token: reload the page and try again.",
        );
        return None;
    }
    Some(())
}

/// The guild's name, or the 404 / 503 rendered.
async fn guild_name(services: &Services, guild: GuildId, res: &mut Response) -> Option<String> {
    match super::data::guild_name(services, guild).await {
        Ok(Some(name)) => Some(name),
        Ok(None) => {
            problem(res, StatusCode::NOT_FOUND, "Not found", "No such server.");
            None
        }
        Err(e) => {
            store_failed(res, &e);
            None
        }
    }
}

fn query_count(req: &Request, name: &str) -> Option<usize> {
    req.query::<String>(name).and_then(|v| v.parse().ok())
}

/// What the page says after a retry (from the redirect's counts; never text from the URL).
fn retry_notice(req: &Request) -> Option<String> {
    let (synced, failed, waiting) = (
        query_count(req, "synced")?,
        query_count(req, "failed").unwrap_or(0),
        query_count(req, "waiting").unwrap_or(0),
    );
    let one = req.query::<String>("one").is_some();
    Some(match (synced, failed, waiting) {
        (0, 0, 0) => {
            "Nothing to retry: no role sync of that choice is failing now (it may have succeeded meanwhile).".to_owned()
        }
        (1, 0, 0) if one => "✔ Retried: the role sync succeeded.".to_owned(),
        (0, 1, 0) if one => "✘ Retried: the role sync failed again; its error is below.".to_owned(),
        (0, 0, 1) if one => {
            "… Retried: Discord has not answered yet. The role-sync worker carries on; reload in a moment.".to_owned()
        }
        _ => format!(
            "Retried {} role syncs: {synced} succeeded, {failed} failed again, {waiting} still waiting for Discord.",
            synced + failed + waiting
        ),
    })
}

pub(super) async fn syncs(services: &Services, id: &str, req: &Request, res: &mut Response) {
    let Some((session, guild)) = guild_session(services, id, req, res) else {
        return;
    };
    let Some(name) = guild_name(services, guild, res).await else {
        return;
    };
    match ops_data::failed_syncs(services, guild).await {
        Ok((rows, total)) => html(
            res,
            StatusCode::OK,
            &SyncsPage {
                operator: is_operator(&session),
                csrf: &session.csrf,
                guild: guild.get(),
                name: &name,
                rows: &rows,
                total,
                notice: retry_notice(req),
            },
        ),
        Err(e) => store_failed(res, &e),
    }
}

/// `POST …/syncs/retry` with `user` and `role` (a paid role's row id), or `all`.
pub(super) async fn retry_sync(
    services: &Services,
    id: &str,
    req: &mut Request,
    res: &mut Response,
) {
    if checked_post(services, req, res).await.is_none() {
        return;
    }
    let Some((_, guild)) = guild_session(services, id, req, res) else {
        return;
    };
    let user = req.form::<String>("user").await;
    let role = req.form::<String>("role").await;
    let all = req.form::<String>("all").await.is_some();
    let target = match (user, role) {
        (Some(user), Some(role)) => {
            let user = user.parse::<u64>().ok().and_then(|u| UserId::new(u).ok());
            match (user, role.parse::<i64>().ok()) {
                (Some(user), Some(role)) => Some((user, role)),
                _ => return bad_retry(res),
            }
        }
        _ if all => None,
        _ => return bad_retry(res),
    };
    match ops_data::retry_syncs(services, guild, target, RETRY_WAIT).await {
        Ok(Retried {
            synced,
            failed,
            waiting,
        }) => {
            let one = if target.is_some() { "&one=1" } else { "" };
            res.render(Redirect::other(format!(
                "/dashboard/guilds/{}/syncs?synced={synced}&failed={failed}&waiting={waiting}{one}",
                guild.get()
            )));
        }
        Err(e) => store_failed(res, &e),
    }
}

fn bad_retry(res: &mut Response) {
    problem(
        res,
        StatusCode::BAD_REQUEST,
        "Bad request",
        "The retry names no member and role: use the Retry buttons on the failed syncs page.",
    );
}

pub(super) async fn deliveries(services: &Services, id: &str, req: &Request, res: &mut Response) {
    let Some((session, guild)) = guild_session(services, id, req, res) else {
        return;
    };
    let Some(name) = guild_name(services, guild, res).await else {
        return;
    };
    let before = req
        .query::<String>("before")
        .and_then(|b| b.parse::<i64>().ok());
    match ops_data::deliveries(services, guild, before).await {
        Ok(DeliveryPage { rows, next }) => html(
            res,
            StatusCode::OK,
            &DeliveriesPage {
                operator: is_operator(&session),
                csrf: &session.csrf,
                guild: guild.get(),
                name: &name,
                rows: &rows,
                first: before.is_none(),
                next: next
                    .map(|n| format!("/dashboard/guilds/{}/deliveries?before={n}", guild.get())),
            },
        ),
        Err(e) => store_failed(res, &e),
    }
}

pub(super) async fn plugins(services: &Services, id: &str, req: &Request, res: &mut Response) {
    let Some((session, guild)) = guild_session(services, id, req, res) else {
        return;
    };
    let Some(name) = guild_name(services, guild, res).await else {
        return;
    };
    match ops_data::plugins(services, guild).await {
        Ok(Plugins {
            provider,
            own,
            others,
            failures,
        }) => html(
            res,
            StatusCode::OK,
            &PluginsPage {
                operator: is_operator(&session),
                csrf: &session.csrf,
                guild: guild.get(),
                name: &name,
                provider: provider.as_deref(),
                own: own.as_ref(),
                others: &others,
                failures: &failures,
            },
        ),
        Err(e) => store_failed(res, &e),
    }
}

/// The operator's session, or the refusal rendered: no session sends a GET to the login
/// page (a POST gets 403); a server's session gets 403.
fn operator_session(services: &Services, req: &Request, res: &mut Response) -> Option<Session> {
    let Some((_, session)) = session(services, req) else {
        if req.method() == salvo::http::Method::POST {
            problem(
                res,
                StatusCode::FORBIDDEN,
                "Not logged in",
                "This action needs a session: log in again, then retry.",
            );
        } else {
            to_login(res);
        }
        return None;
    };
    if !is_operator(&session) {
        problem(
            res,
            StatusCode::FORBIDDEN,
            "For the operator only",
            "Backups hold every server's data, so only the operator (logged in with the admin \
             token) can list, take or download them.",
        );
        return None;
    }
    Some(session)
}

pub(super) async fn backups(state: &HttpState, req: &Request, res: &mut Response) {
    let Some(session) = operator_session(&state.services, req, res) else {
        return;
    };
    let notice = req
        .query::<String>("taken")
        .filter(|n| ops_data::valid_backup_name(n))
        .map(|n| format!("✔ Backup taken: {n}."));
    backups_page(state, &session, res, notice, None).await;
}

async fn backups_page(
    state: &HttpState,
    session: &Session,
    res: &mut Response,
    notice: Option<String>,
    failed: Option<&str>,
) {
    let folder = state.backup_dir.display().to_string();
    let rows = match ops_data::list_backups(state.backup_dir.clone()).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(folder = %folder, error = %e, "the dashboard cannot read the backup folder");
            let text = format!(
                "The backup folder {folder} cannot be read: {e}. Fix: check its permissions."
            );
            return problem(res, StatusCode::INTERNAL_SERVER_ERROR, "Backups", &text);
        }
    };
    let status = if failed.is_some() {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    html(
        res,
        status,
        &BackupsPage {
            operator: true,
            csrf: &session.csrf,
            folder: &folder,
            rows: &rows,
            notice,
            problem: failed,
        },
    );
}

pub(super) async fn take_backup(state: &HttpState, req: &mut Request, res: &mut Response) {
    let services = &state.services;
    let Some(session) = operator_session(services, req, res) else {
        return;
    };
    if checked_post(services, req, res).await.is_none() {
        return;
    }
    match ops_data::take_backup(services, state.backup_dir.clone()).await {
        Ok(name) => {
            tracing::info!(backup = %name, "backup taken from the dashboard");
            res.render(Redirect::other(format!("/dashboard/backups?taken={name}")));
        }
        Err(e) => {
            tracing::error!(error = %e, "a backup from the dashboard failed");
            let text = format!("The backup failed: {e}");
            backups_page(state, &session, res, None, Some(&text)).await;
        }
    }
}

pub(super) async fn download_backup(
    state: &HttpState,
    name: &str,
    req: &Request,
    res: &mut Response,
) {
    if operator_session(&state.services, req, res).is_none() {
        return;
    }
    if !ops_data::valid_backup_name(name) {
        return problem(
            res,
            StatusCode::BAD_REQUEST,
            "Not a backup",
            "That is not a backup's name: pick one from the backups page.",
        );
    }
    let Some(path) = ops_data::backup_file(&state.backup_dir, name).await else {
        return problem(
            res,
            StatusCode::NOT_FOUND,
            "Not found",
            "No such backup: it may have been removed. See the backups page.",
        );
    };
    let kind = "application/vnd.sqlite3"
        .parse::<salvo::http::Mime>()
        .unwrap_or(mime_octets());
    match salvo::fs::NamedFile::builder(path)
        .attached_name(name)
        .content_type(kind)
        .build()
        .await
    {
        Ok(file) => file.send(req.headers(), res).await,
        Err(e) => {
            tracing::error!(backup = %name, error = %e, "the dashboard cannot open a backup");
            problem(
                res,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Backups",
                "The backup cannot be read; the operator's log says why.",
            );
        }
    }
}

fn mime_octets() -> salvo::http::Mime {
    "application/octet-stream"
        .parse()
        .unwrap_or_else(|_| unreachable!("a valid MIME type"))
}

/// The gateway's state in words.
fn gateway_text(state: &str) -> &'static str {
    match state {
        "connected" => "✔ connected",
        "connecting" => "… connecting to Discord",
        "reconnecting" => {
            "… reconnecting: Discord dropped the connection; Docobo reconnects by itself"
        }
        "failed" => {
            "✘ failed: Discord refused the bot (a wrong token or a missing intent); the log says how to fix it"
        }
        _ => "unknown",
    }
}

pub(super) async fn health(state: &HttpState, req: &Request, res: &mut Response) {
    let services = &state.services;
    let Some((_, session)) = session(services, req) else {
        return to_login(res);
    };
    let own = match session.scope {
        Scope::Guild { guild, .. } => Some(guild),
        Scope::Operator => None,
    };
    let report = crate::http::health_report(state).await;
    let storage = ops_data::storage(services).await;
    let last = match ops_data::last_delivery(services, own).await {
        Ok(last) => last,
        Err(e) => {
            tracing::error!(error = %e, "the health page cannot read the last delivery");
            None
        }
    };
    html(
        res,
        StatusCode::OK,
        &HealthPage {
            operator: is_operator(&session),
            csrf: &session.csrf,
            home: own.map(GuildId::get),
            gateway: gateway_text(report.gateway),
            uptime: ops_data::duration_text(report.uptime_seconds),
            report: &report,
            storage: &storage,
            last: last.as_ref(),
        },
    );
}
