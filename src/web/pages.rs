//! The dashboard's HTTP edge: sessions from the cookie, CSRF on every POST, one function per
//! page rendering an askama template. Pages are refused without a session (GETs are sent to
//! the login page), and a guild session sees only its own guild.

use askama::Template;
use rust_embed::RustEmbed;
use salvo::http::cookie::{Cookie, SameSite};
use salvo::prelude::*;

use super::auth::{LoginError, Session, csrf_matches};
use super::{Page, Scope, data, ops};
use crate::domain::GuildId;
use crate::services::Services;

/// The session cookie. `Path=/dashboard`, `HttpOnly`, `SameSite=Strict`, `Secure` when the
/// public URL is https.
const COOKIE: &str = "docobo_session";

/// The dashboard's own content security policy (the rest of the server sends `default-src
/// 'none'`): only this origin's scripts, styles and forms; no inline script.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

#[derive(RustEmbed)]
#[folder = "src/web/assets/"]
struct Assets;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    problem: Option<&'a str>,
    link: Option<&'a str>,
    guild_name: &'a str,
}

#[derive(Template)]
#[template(path = "guilds.html")]
struct GuildsPage<'a> {
    operator: bool,
    csrf: &'a str,
    guilds: &'a [data::GuildLine],
}

/// The part of the overview that live updates render again.
#[derive(Debug)]
pub(super) struct Summary {
    id: u64,
    active: usize,
    roles: Vec<data::RoleLine>,
    charts: Vec<super::trends::Chart>,
}

/// A guild's overview as kept between renders: `None` for a guild Docobo does not know.
pub(super) type Computed = Option<(data::Overview, Summary)>;

/// The kept overviews, by guild.
pub(super) type Summaries = super::cache::Cache<GuildId, Computed>;

/// Where a kept overview comes from: the store, and the store's change counter.
pub(super) struct OverviewSource {
    services: Services,
    guild: GuildId,
}

impl OverviewSource {
    pub(super) fn new(services: &Services, guild: GuildId) -> Self {
        Self {
            services: services.clone(),
            guild,
        }
    }
}

impl super::cache::Source<Computed> for OverviewSource {
    fn generation(&self) -> u64 {
        self.services.db.generation()
    }

    fn now_ms(&self) -> i64 {
        self.services.now()
    }

    async fn compute(&self) -> Result<Computed, crate::db::DbError> {
        overview(&self.services, self.guild).await
    }
}

/// The guild's overview from the kept summaries (see [`super::cache`]).
async fn kept_overview(
    services: &Services,
    summaries: &Summaries,
    guild: GuildId,
) -> Result<std::sync::Arc<super::cache::Kept<Computed>>, std::sync::Arc<crate::db::DbError>> {
    let kept = summaries
        .page(guild, OverviewSource::new(services, guild))
        .await?;
    if kept.value.is_none() {
        // Not kept for an id nobody has: the operator may type any.
        summaries.forget(guild);
    }
    Ok(kept)
}

/// `HH:MM:SS UTC`: when a kept summary was computed.
fn as_of(at_ms: i64) -> String {
    jiff::Timestamp::from_millisecond(at_ms)
        .map(|t| t.strftime("%H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage<'a> {
    operator: bool,
    csrf: &'a str,
    guild: u64,
    name: &'a str,
    provider: &'a str,
    s: &'a Summary,
    as_of: &'a str,
}

#[derive(Template)]
#[template(path = "summary_part.html")]
struct SummaryPart<'a> {
    s: &'a Summary,
    as_of: &'a str,
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage<'a> {
    operator: bool,
    csrf: &'a str,
    guild: u64,
    name: &'a str,
    q: &'a str,
    role: Option<i64>,
    roles: &'a [(i64, String)],
    status: &'a str,
    statuses: &'a [&'static str],
    provider: &'a str,
    rows: &'a [data::MemberRow],
    /// The next page's URL, filters kept.
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "problem.html")]
struct ProblemPage<'a> {
    title: &'a str,
    text: &'a str,
}

/// Serves one dashboard page; the state's `shutdown` ends the live streams.
pub async fn serve(
    state: &crate::http::HttpState,
    page: Page,
    req: &mut Request,
    res: &mut Response,
) {
    let services = &state.services;
    res.add_header("content-security-policy", CSP, true).ok();
    res.add_header("cache-control", "no-store", true).ok();
    match page {
        Page::Asset(name) => asset(&name, res),
        Page::Login if req.method() == salvo::http::Method::POST => {
            login(services, req, res).await;
        }
        Page::Login => login_page(services, req, res).await,
        Page::Logout => logout(services, req, res).await,
        Page::Home => home(services, req, res).await,
        Page::Guild(id) => guild(services, &state.dashboard, &id, req, res).await,
        Page::Members(id) => members(services, &id, req, res).await,
        Page::Summary(id) => summary(services, &state.dashboard, &id, req, res).await,
        Page::Events(id) => {
            super::live::events(services, &state.dashboard, &state.shutdown, &id, req, res);
        }
        Page::Syncs(id) => ops::syncs(services, &id, req, res).await,
        Page::SyncRetry(id) => ops::retry_sync(services, &id, req, res).await,
        Page::Deliveries(id) => ops::deliveries(services, &id, req, res).await,
        Page::Plugins(id) => ops::plugins(services, &id, req, res).await,
        Page::Backups if req.method() == salvo::http::Method::POST => {
            ops::take_backup(state, req, res).await;
        }
        Page::Backups => ops::backups(state, req, res).await,
        Page::Backup(name) => ops::download_backup(state, &name, req, res).await,
        Page::Health => ops::health(state, req, res).await,
        Page::Member { guild, user } => {
            super::member::page(services, &state.dashboard, &guild, &user, req, res).await;
        }
        Page::MemberAction {
            guild,
            user,
            action,
        } => super::member::act(services, &state.dashboard, &guild, &user, action, req, res).await,
        Page::Export(id) => super::member::export(services, &state.dashboard, &id, req, res).await,
        Page::Import(id) => super::member::import(services, &state.dashboard, &id, req, res).await,
    }
}

pub(super) fn session(services: &Services, req: &Request) -> Option<(String, Session)> {
    let id = req.cookie(COOKIE)?.value().to_owned();
    let session = services.logins.session(&id)?;
    Some((id, session))
}

pub(super) fn html(res: &mut Response, status: StatusCode, page: &impl Template) {
    match page.render() {
        Ok(body) => {
            res.status_code(status);
            res.render(Text::Html(body));
        }
        Err(e) => {
            tracing::error!(error = %e, "a dashboard template failed to render");
            res.status_code(StatusCode::INTERNAL_SERVER_ERROR);
            res.render(Text::Plain(
                "the page could not be rendered; the log says why",
            ));
        }
    }
}

pub(super) fn problem(res: &mut Response, status: StatusCode, title: &str, text: &str) {
    html(res, status, &ProblemPage { title, text });
}

pub(super) fn to_login(res: &mut Response) {
    res.render(Redirect::other("/dashboard/login"));
}

fn asset(name: &str, res: &mut Response) {
    let Some(file) = Assets::get(name) else {
        res.status_code(StatusCode::NOT_FOUND);
        return;
    };
    let kind = match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "text/plain; charset=utf-8",
    };
    res.add_header("content-type", kind, true).ok();
    // Names carry their version (htmx-2.0.11.min.js); the stylesheet changes with releases.
    res.add_header("cache-control", "public, max-age=3600", true)
        .ok();
    res.write_body(file.data.into_owned()).ok();
}

async fn login_page(services: &Services, req: &Request, res: &mut Response) {
    let Some(link) = req.query::<String>("link") else {
        return html(
            res,
            StatusCode::OK,
            &LoginPage {
                problem: None,
                link: None,
                guild_name: "",
            },
        );
    };
    // Checked, not spent: chat apps fetch links to preview them, so a GET must not log in.
    match services.logins.check_link(&link) {
        Ok(Scope::Guild { guild, .. }) => {
            let name = data::guild_name(services, guild)
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| "your server".to_owned());
            html(
                res,
                StatusCode::OK,
                &LoginPage {
                    problem: None,
                    link: Some(&link),
                    guild_name: &name,
                },
            );
        }
        Ok(Scope::Operator) => to_login(res),
        Err(e) => refused_login(res, e),
    }
}

fn refused_login(res: &mut Response, e: LoginError) {
    let text = e.to_string();
    html(
        res,
        StatusCode::FORBIDDEN,
        &LoginPage {
            problem: Some(&text),
            link: None,
            guild_name: "",
        },
    );
}

/// Whether a POST comes from a page of this server (login CSRF; the session cookie is
/// `SameSite=Strict` for the rest). Browsers say where a request comes from in
/// `Sec-Fetch-Site`; older ones only in `Origin`, which is `null` under this server's
/// `Referrer-Policy: no-referrer`, so only a real other origin there is refused. Clients that
/// send neither (scripts, curl) are not browsers carrying someone's cookie.
pub(super) fn same_origin(req: &Request) -> bool {
    let headers = req.headers();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    match header("origin") {
        None | Some("null") => true,
        Some(origin) => origin.split_once("://").map(|(_, rest)| rest) == header("host"),
    }
}

pub(super) fn cross_site(res: &mut Response) {
    problem(
        res,
        StatusCode::FORBIDDEN,
        "Refused",
        "This form was sent from another site.",
    );
}

async fn login(services: &Services, req: &mut Request, res: &mut Response) {
    if !same_origin(req) {
        return cross_site(res);
    }
    let link = req.form::<String>("link").await;
    let token = req.form::<String>("token").await;
    let opened = match (link, token) {
        (Some(link), _) => services.logins.redeem_link(&link),
        (None, Some(token)) => services.logins.login_operator(&token),
        (None, None) => Err(LoginError::BadLink),
    };
    match opened {
        Ok((id, session)) => {
            let secure = services
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"));
            let cookie = Cookie::build((COOKIE, id))
                .path("/dashboard")
                .http_only(true)
                .same_site(SameSite::Strict)
                .secure(secure)
                .build();
            res.add_cookie(cookie);
            let to = match session.scope {
                Scope::Guild { guild, .. } => format!("/dashboard/guilds/{}", guild.get()),
                Scope::Operator => "/dashboard".to_owned(),
            };
            res.render(Redirect::other(to));
        }
        Err(e) => refused_login(res, e),
    }
}

async fn logout(services: &Services, req: &mut Request, res: &mut Response) {
    let Some((id, session)) = session(services, req) else {
        return problem(
            res,
            StatusCode::FORBIDDEN,
            "Not logged in",
            "There is no session to end.",
        );
    };
    if !same_origin(req) {
        return cross_site(res);
    }
    let csrf = req.form::<String>("csrf").await;
    if !csrf_matches(&session.csrf, csrf.as_deref()) {
        return problem(
            res,
            StatusCode::FORBIDDEN,
            "Refused",
            "This form is missing its security token: reload the page and try again.",
        );
    }
    services.logins.end(&id);
    res.remove_cookie(COOKIE);
    to_login(res);
}

async fn home(services: &Services, req: &Request, res: &mut Response) {
    let Some((_, session)) = session(services, req) else {
        return to_login(res);
    };
    match session.scope {
        Scope::Guild { guild, .. } => {
            res.render(Redirect::other(format!(
                "/dashboard/guilds/{}",
                guild.get()
            )));
        }
        Scope::Operator => match data::guilds(services).await {
            Ok(guilds) => html(
                res,
                StatusCode::OK,
                &GuildsPage {
                    operator: true,
                    csrf: &session.csrf,
                    guilds: &guilds,
                },
            ),
            Err(e) => store_failed(res, &e),
        },
    }
}

pub(super) fn store_failed(res: &mut Response, e: &crate::db::DbError) {
    tracing::error!(error = %e, "the dashboard could not read the database");
    problem(
        res,
        StatusCode::SERVICE_UNAVAILABLE,
        "Database unavailable",
        "The database could not be read; the operator's log says why.",
    );
}

/// The session and the guild of a guild page, or the refusal already rendered.
pub(super) fn guild_session(
    services: &Services,
    id: &str,
    req: &Request,
    res: &mut Response,
) -> Option<(Session, GuildId)> {
    guild_session_id(services, id, req, res).map(|(_, session, guild)| (session, guild))
}

/// [`guild_session`], with the session's id.
pub(super) fn guild_session_id(
    services: &Services,
    id: &str,
    req: &Request,
    res: &mut Response,
) -> Option<(String, Session, GuildId)> {
    let Some((session_id, session)) = session(services, req) else {
        to_login(res);
        return None;
    };
    let Some(guild) = id
        .parse::<u64>()
        .ok()
        .and_then(|g| GuildId::new(g).ok())
        .filter(|g| g.get().to_string() == id)
    else {
        problem(res, StatusCode::NOT_FOUND, "Not found", "No such server.");
        return None;
    };
    if !session.scope.sees(guild) {
        problem(
            res,
            StatusCode::FORBIDDEN,
            "Another server",
            "This session is for another server: run /dashboard in that server.",
        );
        return None;
    }
    Some((session_id, session, guild))
}

/// The overview's name, provider and summary, or `None` for a guild Docobo does not know.
async fn overview(
    services: &Services,
    guild: GuildId,
) -> Result<Option<(data::Overview, Summary)>, crate::db::DbError> {
    let (overview, trends) = tokio::try_join!(
        data::overview(services, guild),
        super::trends::trends(services, guild),
    )?;
    Ok(overview.map(|mut o| {
        let roles = std::mem::take(&mut o.roles);
        let summary = Summary {
            id: o.id,
            active: o.active,
            charts: super::trends::charts(&roles, &trends),
            roles,
        };
        (o, summary)
    }))
}

async fn guild(
    services: &Services,
    dashboard: &super::Dashboard,
    id: &str,
    req: &Request,
    res: &mut Response,
) {
    let Some((session, guild)) = guild_session(services, id, req, res) else {
        return;
    };
    match kept_overview(services, &dashboard.summaries, guild).await {
        Ok(kept) => match &kept.value {
            Some((o, summary)) => html(
                res,
                StatusCode::OK,
                &OverviewPage {
                    operator: matches!(session.scope, Scope::Operator),
                    csrf: &session.csrf,
                    guild: summary.id,
                    name: &o.name,
                    provider: &o.provider,
                    s: summary,
                    as_of: &as_of(kept.at_ms),
                },
            ),
            None => problem(res, StatusCode::NOT_FOUND, "Not found", "No such server."),
        },
        Err(e) => store_failed(res, &e),
    }
}

/// `GET /dashboard/guilds/{id}/summary`: the overview's counts and charts alone (what the
/// live overview swaps in).
async fn summary(
    services: &Services,
    dashboard: &super::Dashboard,
    id: &str,
    req: &Request,
    res: &mut Response,
) {
    let Some((_, guild)) = guild_session(services, id, req, res) else {
        return;
    };
    match kept_overview(services, &dashboard.summaries, guild).await {
        Ok(kept) => match &kept.value {
            Some((_, summary)) => html(
                res,
                StatusCode::OK,
                &SummaryPart {
                    s: summary,
                    as_of: &as_of(kept.at_ms),
                },
            ),
            None => problem(res, StatusCode::NOT_FOUND, "Not found", "No such server."),
        },
        Err(e) => store_failed(res, &e),
    }
}

/// The statuses the members filter offers.
const STATUSES: &[&str] = &[
    "active", "trialing", "past_due", "canceled", "paused", "pending", "expired", "refunded",
    "revoked",
];

async fn members(services: &Services, id: &str, req: &Request, res: &mut Response) {
    let Some((session, guild)) = guild_session(services, id, req, res) else {
        return;
    };
    let text = |name: &str| {
        req.query::<String>(name)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let (q, status, provider) = (text("q"), text("status"), text("provider"));
    let role = text("role").and_then(|r| r.parse::<i64>().ok());
    let filter = data::MemberFilter {
        search: q.clone(),
        paid_role: role,
        status: status
            .as_deref()
            .and_then(|s| crate::domain::SubscriptionStatus::parse(s).ok()),
        provider: provider.clone(),
        before: text("before").and_then(|b| b.parse::<i64>().ok()),
    };
    let (page, roles, overview) = match tokio::try_join!(
        data::members(services, guild, filter),
        data::role_choices(services, guild),
        data::guild_name(services, guild),
    ) {
        Ok(found) => found,
        Err(e) => return store_failed(res, &e),
    };
    let next = page.next.map(|before| {
        let mut url = url::Url::parse("http://x/").unwrap_or_else(|_| unreachable!("a valid URL"));
        url.set_path(&format!("/dashboard/guilds/{}/members", guild.get()));
        {
            let mut query = url.query_pairs_mut();
            for (k, v) in [("q", &q), ("status", &status), ("provider", &provider)] {
                if let Some(v) = v {
                    query.append_pair(k, v);
                }
            }
            if let Some(role) = role {
                query.append_pair("role", &role.to_string());
            }
            query.append_pair("before", &before.to_string());
        }
        format!("{}?{}", url.path(), url.query().unwrap_or_default())
    });
    html(
        res,
        StatusCode::OK,
        &MembersPage {
            operator: matches!(session.scope, Scope::Operator),
            csrf: &session.csrf,
            guild: guild.get(),
            name: overview.as_deref().unwrap_or("Server"),
            q: q.as_deref().unwrap_or(""),
            role,
            roles: &roles,
            status: status.as_deref().unwrap_or(""),
            statuses: STATUSES,
            provider: provider.as_deref().unwrap_or(""),
            rows: &page.rows,
            next,
        },
    );
}
