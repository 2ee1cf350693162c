//! A member's page, the owner's admin actions on it, and export/import: this edge calls the
//! same [`crate::admin`] functions `/admin` calls (`src/discord/admin.rs`) with an equivalent
//! [`Actor`] (the Discord user whose `/dashboard` link opened the session, or the operator),
//! posts the same log-channel line and shows the same answer.
//!
//! Every action is a POST from this site carrying the session's CSRF token (403 without it),
//! answered with a 303 back to the member's page, where its result shows once (a notice kept
//! in memory for the session). Input that cannot be read is a 400 saying what to fix; the
//! service's own refusals ("already has complimentary access") are results, shown as notices.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use askama::Template;
use salvo::http::{Method, ParseError};
use salvo::prelude::*;

use super::auth::{Session, csrf_matches};
use super::member_data::{self, MemberView, Names, RoleSync};
use super::pages::{cross_site, guild_session, html, problem, same_origin, session, store_failed};
use super::{MemberAction, Scope};
use crate::admin::{self, Actor, AdminError, Done, MAX_DAYS, MAX_REASON};
use crate::discord::{Notifier, RoleManager};
use crate::domain::{GuildId, RoleId, UserId};
use crate::services::Services;

/// The largest import file taken (as `/admin import` takes from Discord).
const MAX_UPLOAD_BYTES: usize = 8 << 20;
/// Room in an upload's body for the multipart framing and the form's other fields.
const UPLOAD_SLACK_BYTES: usize = 64 << 10;
/// How long an action's result waits to be shown.
const NOTICE_TTL_MS: i64 = 10 * 60 * 1000;
/// The most results waiting at once (one per session; sessions are few).
const MAX_NOTICES: usize = 10_000;

/// What the dashboard holds beside the [`Services`]: Discord for its admin actions (`forget`
/// takes roles away; every action's line goes to the log channel), and the result of each
/// session's last action until its page shows it.
#[derive(Debug, Clone)]
pub struct Dashboard {
    roles: RoleManager,
    notifier: Notifier,
    /// By session id. In memory like the sessions themselves: a restart ends both.
    notices: Arc<Mutex<HashMap<String, Notice>>>,
    /// Each guild's overview summary, kept between renders ([`super::cache`]).
    pub(super) summaries: super::pages::Summaries,
}

/// An action's result, for the member's page it returns to.
#[derive(Debug, Clone)]
struct Notice {
    guild: GuildId,
    member: UserId,
    ok: bool,
    /// The service's answer, Discord markup and all (made readable when shown).
    text: String,
    at: i64,
}

impl Dashboard {
    #[must_use]
    pub fn new(roles: RoleManager, notifier: Notifier) -> Self {
        Self {
            roles,
            notifier,
            notices: Arc::default(),
            summaries: super::pages::Summaries::default(),
        }
    }

    fn notices(&self) -> std::sync::MutexGuard<'_, HashMap<String, Notice>> {
        self.notices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn keep_notice(&self, session: &str, notice: Notice) {
        let mut notices = self.notices();
        notices.retain(|_, n| notice.at - n.at < NOTICE_TTL_MS);
        if notices.len() < MAX_NOTICES || notices.contains_key(session) {
            notices.insert(session.to_owned(), notice);
        }
    }

    /// The session's waiting result for this member's page, taken (it shows once).
    fn take_notice(
        &self,
        session: &str,
        guild: GuildId,
        member: UserId,
        now: i64,
    ) -> Option<Notice> {
        let mut notices = self.notices();
        let fits = notices
            .get(session)
            .is_some_and(|n| n.guild == guild && n.member == member && now - n.at < NOTICE_TTL_MS);
        if fits { notices.remove(session) } else { None }
    }

    /// Posts an action's line in the log channel (or to the owner by DM), as `/admin` does.
    async fn log(&self, services: &Services, guild: GuildId, done: &Done) {
        match services
            .db
            .read_slow(move |conn| crate::db::guilds::get(conn, guild))
            .await
        {
            Ok(Some(saved)) => {
                self.notifier.tell_owner(&saved, &done.log).await;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(guild = guild.get(), error = %e, "cannot read the guild to log an admin action");
            }
        }
    }
}

/// Who acts for a session: the Discord user of a link login, or the operator.
fn actor(session: &Session) -> Actor {
    match session.scope {
        Scope::Guild { user, .. } => Actor::web(user),
        Scope::Operator => Actor::OPERATOR,
    }
}

fn member_url(guild: GuildId, member: UserId) -> String {
    format!("/dashboard/guilds/{}/members/{}", guild.get(), member.get())
}

/// The session behind a member URL, its guild and the member, or the refusal rendered.
struct Target {
    session_id: String,
    session: Session,
    guild: GuildId,
    member: UserId,
}

/// Reads a member URL for a GET (no session: to the login page) or a POST (no session:
/// 403); another guild is 403, an id that is not a Discord id 404.
fn target(
    services: &Services,
    guild: &str,
    user: &str,
    req: &Request,
    res: &mut Response,
) -> Option<Target> {
    let session_id = posting_session(services, req, res)?;
    let (session, guild) = guild_session(services, guild, req, res)?;
    let Some(member) = discord_id(user).and_then(|id| UserId::new(id).ok()) else {
        problem(
            res,
            StatusCode::NOT_FOUND,
            "Not found",
            "That is not a Discord user id: open the member from the members list.",
        );
        return None;
    };
    Some(Target {
        session_id,
        session,
        guild,
        member,
    })
}

/// The session id; a POST without a session is refused here (403), a GET is left to
/// [`guild_session`] (to the login page). `Some("")` for a GET without one.
fn posting_session(services: &Services, req: &Request, res: &mut Response) -> Option<String> {
    match session(services, req) {
        Some((id, _)) => Some(id),
        None if req.method() == Method::POST => {
            problem(
                res,
                StatusCode::FORBIDDEN,
                "Not logged in",
                "Your session has ended: run /dashboard in your server for a new login link, then try again.",
            );
            None
        }
        None => Some(String::new()),
    }
}

/// A Discord id as the path spells it: digits only, no leading zero, at most a `u64`.
fn discord_id(text: &str) -> Option<u64> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let id = text.parse::<u64>().ok().filter(|_| digits)?;
    (id.to_string() == text).then_some(id)
}

/// Whether the form came from this site with the session's token; the refusal rendered.
fn form_allowed(req: &Request, session: &Session, csrf: Option<&str>, res: &mut Response) -> bool {
    if !same_origin(req) {
        cross_site(res);
        return false;
    }
    if !csrf_matches(&session.csrf, csrf) {
        problem(
            res,
            StatusCode::FORBIDDEN,
            "Refused",
            "This form is missing its security token: reload the page and try again.",
        );
        return false;
    }
    true
}

fn admin_failed(res: &mut Response, e: &AdminError) {
    match e {
        AdminError::Db(e) => store_failed(res, e),
        AdminError::Refused(text) => problem(res, StatusCode::BAD_REQUEST, "Not done", text),
        AdminError::Provider(text) => problem(res, StatusCode::BAD_GATEWAY, "Not done", text),
    }
}

/// One line of a member's history.
struct Line {
    when: String,
    datetime: String,
    text: String,
}

/// A notice as the page shows it.
struct Shown {
    ok: bool,
    lines: Vec<String>,
}

#[derive(Template)]
#[template(path = "member.html")]
struct MemberPage<'a> {
    operator: bool,
    csrf: &'a str,
    guild: u64,
    guild_name: &'a str,
    member: u64,
    title: &'a str,
    in_guild: Option<bool>,
    notice: Option<Shown>,
    roles: &'a [RoleSync],
    tiers: &'a [(u64, String)],
    timeline: &'a [Line],
    /// Forget's confirmation step instead of the action forms.
    confirm_forget: bool,
    max_days: u32,
    max_reason: usize,
}

/// `GET …/members/{user}`: the member's history, role sync and action forms.
pub(super) async fn page(
    services: &Services,
    dashboard: &Dashboard,
    guild: &str,
    user: &str,
    req: &Request,
    res: &mut Response,
) {
    let Some(t) = target(services, guild, user, req, res) else {
        return;
    };
    let notice = dashboard.take_notice(&t.session_id, t.guild, t.member, services.now());
    let notice = notice.map(|n| (n.ok, n.text));
    render_member(services, &t, notice, false, StatusCode::OK, res).await;
}

async fn render_member(
    services: &Services,
    t: &Target,
    notice: Option<(bool, String)>,
    confirm_forget: bool,
    status: StatusCode,
    res: &mut Response,
) {
    let view = match member_data::member(services, t.guild, t.member).await {
        Ok(Some(view)) => view,
        Ok(None) => return problem(res, StatusCode::NOT_FOUND, "Not found", "No such server."),
        Err(e) => return store_failed(res, &e),
    };
    let found = match admin::lookup(services, t.guild, t.member).await {
        Ok(found) => found,
        Err(e) => return admin_failed(res, &e),
    };
    let timeline: Vec<Line> = found
        .entries
        .iter()
        .map(|e| {
            let (when, datetime) = member_data::when(e.at);
            Line {
                when,
                datetime,
                text: view.names.plain(&e.text),
            }
        })
        .collect();
    let title = title(&view, t.member);
    html(
        res,
        status,
        &MemberPage {
            operator: matches!(t.session.scope, Scope::Operator),
            csrf: &t.session.csrf,
            guild: t.guild.get(),
            guild_name: &view.guild_name,
            member: t.member.get(),
            title: &title,
            in_guild: view.in_guild,
            notice: notice.map(|(ok, text)| shown(&view.names, ok, &text)),
            roles: &view.roles,
            tiers: &view.tiers,
            timeline: &timeline,
            confirm_forget,
            max_days: MAX_DAYS,
            max_reason: MAX_REASON,
        },
    );
}

fn title(view: &MemberView, member: UserId) -> String {
    view.username
        .as_ref()
        .map_or_else(|| format!("User {member}"), |name| format!("@{name}"))
}

fn shown(names: &Names, ok: bool, text: &str) -> Shown {
    Shown {
        ok,
        lines: names.plain(text).lines().map(str::to_owned).collect(),
    }
}

/// An action, its form read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Command {
    Grant { tier: RoleId, days: Option<u32> },
    Extend { days: u32 },
    Revoke { reason: Option<String> },
    Forget,
}

/// The fields an action's form may carry.
#[derive(Debug, Default)]
struct Fields {
    csrf: Option<String>,
    tier: Option<String>,
    days: Option<String>,
    lifetime: bool,
    reason: Option<String>,
    confirm: bool,
}

impl Fields {
    async fn read(req: &mut Request) -> Self {
        let text = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        Self {
            csrf: req.form::<String>("csrf").await,
            tier: text(req.form::<String>("tier").await),
            days: text(req.form::<String>("days").await),
            lifetime: req.form::<String>("lifetime").await.is_some(),
            reason: text(req.form::<String>("reason").await),
            confirm: req.form::<String>("confirm").await.as_deref() == Some("yes"),
        }
    }

    /// The command, `Ok(None)` for a forget not yet confirmed, or what to fix.
    fn command(&self, action: MemberAction) -> Result<Option<Command>, String> {
        let days = || match self.days.as_deref() {
            None => Ok(None),
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|d| (1..=MAX_DAYS).contains(d))
                .map(Some)
                .ok_or_else(|| {
                    format!("days must be a whole number from 1 to {MAX_DAYS} (you sent {text:?}).")
                }),
        };
        Ok(Some(match action {
            MemberAction::Grant => {
                let tier = self
                    .tier
                    .as_deref()
                    .and_then(discord_id)
                    .and_then(|id| RoleId::new(id).ok())
                    .ok_or("Pick the paid role to grant.")?;
                let days =
                    match (days()?, self.lifetime) {
                        (Some(_), true) => {
                            return Err("Give a number of days or tick Lifetime, not both.".into());
                        }
                        (None, false) => return Err(
                            "Give the number of days, or tick Lifetime for access without an end."
                                .into(),
                        ),
                        (days, _) => days,
                    };
                Command::Grant { tier, days }
            }
            MemberAction::Extend => Command::Extend {
                days: days()?.ok_or("Give the number of days to add.")?,
            },
            MemberAction::Revoke => Command::Revoke {
                reason: self.reason.clone(),
            },
            MemberAction::Forget if self.confirm => Command::Forget,
            MemberAction::Forget => return Ok(None),
        }))
    }
}

/// `POST …/members/{user}/{action}`, and `GET …/forget` (the confirmation step).
pub(super) async fn act(
    services: &Services,
    dashboard: &Dashboard,
    guild: &str,
    user: &str,
    action: MemberAction,
    req: &mut Request,
    res: &mut Response,
) {
    let Some(t) = target(services, guild, user, req, res) else {
        return;
    };
    if req.method() != Method::POST {
        return render_member(services, &t, None, true, StatusCode::OK, res).await;
    }
    let fields = Fields::read(req).await;
    if !form_allowed(req, &t.session, fields.csrf.as_deref(), res) {
        return;
    }
    let command = match fields.command(action) {
        Ok(Some(command)) => command,
        // Not confirmed: back to the confirmation step.
        Ok(None) => {
            let to = format!("{}/forget", member_url(t.guild, t.member));
            return res.render(Redirect::other(to));
        }
        Err(fix) => {
            let status = StatusCode::BAD_REQUEST;
            return render_member(services, &t, Some((false, fix)), false, status, res).await;
        }
    };
    let who = actor(&t.session);
    let (s, guild, member) = (services, t.guild, t.member);
    let result = match command {
        Command::Grant { tier, days } => admin::grant(s, guild, who, member, tier, days).await,
        Command::Extend { days } => admin::extend(s, guild, who, member, days).await,
        Command::Revoke { reason } => admin::revoke(s, guild, who, member, reason).await,
        Command::Forget => admin::forget(s, &dashboard.roles, guild, who, member).await,
    };
    let (ok, text) = match result {
        Ok(done) => {
            dashboard.log(services, guild, &done).await;
            (true, done.reply)
        }
        Err(AdminError::Refused(text) | AdminError::Provider(text)) => (false, text),
        Err(AdminError::Db(e)) => return store_failed(res, &e),
    };
    let at = services.now();
    dashboard.keep_notice(
        &t.session_id,
        Notice {
            guild,
            member,
            ok,
            text,
            at,
        },
    );
    res.render(Redirect::other(member_url(guild, member)));
}

/// `GET …/export`: the file `/admin export` attaches, as a download (audited and logged
/// like it).
pub(super) async fn export(
    services: &Services,
    dashboard: &Dashboard,
    id: &str,
    req: &Request,
    res: &mut Response,
) {
    let Some((session, guild)) = guild_session(services, id, req, res) else {
        return;
    };
    match admin::export(services, guild, actor(&session)).await {
        Ok(export) => {
            dashboard.log(services, guild, &export.done).await;
            let disposition = format!("attachment; filename=\"{}\"", export.file_name);
            res.add_header("content-type", "application/jsonl; charset=utf-8", true)
                .ok();
            res.add_header("content-disposition", disposition, true)
                .ok();
            res.write_body(export.text.into_bytes()).ok();
        }
        Err(e) => admin_failed(res, &e),
    }
}

#[derive(Template)]
#[template(path = "import.html")]
struct ImportPage<'a> {
    operator: bool,
    csrf: &'a str,
    guild: u64,
    guild_name: &'a str,
    /// The guild's provider, when one is connected (its subscriber list can be imported).
    provider: Option<&'a str>,
    /// What the last import did (`ok`), or why nothing was.
    result: Option<Shown>,
    max_mib: usize,
}

/// Where an import comes from.
enum Source {
    Provider,
    File(String),
}

/// `GET …/import` (the form), `POST …/import` (a file from export, or the provider's list).
pub(super) async fn import(
    services: &Services,
    dashboard: &Dashboard,
    id: &str,
    req: &mut Request,
    res: &mut Response,
) {
    if posting_session(services, req, res).is_none() {
        return;
    }
    let Some((session, guild)) = guild_session(services, id, req, res) else {
        return;
    };
    let saved = match services
        .db
        .read_slow(move |conn| crate::db::guilds::get(conn, guild))
        .await
    {
        Ok(Some(saved)) => saved,
        Ok(None) => return problem(res, StatusCode::NOT_FOUND, "Not found", "No such server."),
        Err(e) => return store_failed(res, &e),
    };
    let provider = saved.provider.as_ref().map(|p| p.as_str().to_owned());
    let page = |result: Option<Shown>| ImportPage {
        operator: matches!(session.scope, Scope::Operator),
        csrf: &session.csrf,
        guild: guild.get(),
        guild_name: &saved.name,
        provider: provider.as_deref(),
        result,
        max_mib: MAX_UPLOAD_BYTES >> 20,
    };
    let names = Names::default();
    if req.method() != Method::POST {
        return html(res, StatusCode::OK, &page(None));
    }
    if !same_origin(req) {
        return cross_site(res);
    }
    let (csrf, source) = match read_upload(req).await {
        Ok(upload) => upload,
        Err((status, fix)) => return html(res, status, &page(Some(shown(&names, false, &fix)))),
    };
    if !form_allowed(req, &session, csrf.as_deref(), res) {
        return;
    }
    let who = actor(&session);
    let result = match source {
        Ok(Source::Provider) => admin::import_from_provider(services, guild, who).await,
        Ok(Source::File(text)) => admin::import_file(services, guild, who, &text).await,
        Err(fix) => Err(AdminError::Refused(fix)),
    };
    let (status, shown_result) = match result {
        Ok((_, done)) => {
            dashboard.log(services, guild, &done).await;
            (StatusCode::OK, shown(&names, true, &done.reply))
        }
        Err(AdminError::Refused(text)) => (StatusCode::BAD_REQUEST, shown(&names, false, &text)),
        Err(AdminError::Provider(text)) => (StatusCode::BAD_GATEWAY, shown(&names, false, &text)),
        Err(AdminError::Db(e)) => return store_failed(res, &e),
    };
    html(res, status, &page(Some(shown_result)));
}

/// The upload's CSRF token and what to import (or what to fix in it); `Err` when the body
/// cannot be read at all (too large: 413).
async fn read_upload(
    req: &mut Request,
) -> Result<(Option<String>, Result<Source, String>), (StatusCode, String)> {
    let limit = MAX_UPLOAD_BYTES + UPLOAD_SLACK_BYTES;
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "The file is larger than {} MiB: split it and import the parts.",
                MAX_UPLOAD_BYTES >> 20
            ),
        )
    };
    // A body that says it is too large is refused before any of it is read.
    let declared = req
        .headers()
        .get(salvo::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let form = match req.form_data_max_size(limit).await {
        Ok(form) => form,
        Err(ParseError::PayloadTooLarge) => return Err(too_large()),
        Err(e) => {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("The upload could not be read ({e}): choose the file again and send it."),
            ));
        }
    };
    let csrf = form.fields.get("csrf").cloned();
    if form.fields.get("source").map(String::as_str) == Some("provider") {
        return Ok((csrf, Ok(Source::Provider)));
    }
    let Some(path) = form.files.get("file").map(|f| f.path().clone()) else {
        return Ok((
            csrf,
            Err("Choose the .jsonl file that Export (or /admin export) made.".into()),
        ));
    };
    let source = match tokio::fs::read(&path).await {
        Ok(bytes) if bytes.len() > MAX_UPLOAD_BYTES => Err(format!(
            "The file is larger than {} MiB: split it and import the parts.",
            MAX_UPLOAD_BYTES >> 20
        )),
        Ok(bytes) => String::from_utf8(bytes).map(Source::File).map_err(|_| {
            "The file is not UTF-8 text: choose the .jsonl file that Export made.".to_owned()
        }),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read an uploaded import file");
            Err("The uploaded file could not be read back; send it again.".into())
        }
    };
    Ok((csrf, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ids_in_paths_are_discord_ids_as_discord_spells_them() {
        assert_eq!(discord_id("4002"), Some(4002));
        assert_eq!(discord_id("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "0x10",
            "+4002",
            "04002",
            "4002 ",
            "-1",
            "18446744073709551616",
            "abc",
        ] {
            assert_eq!(discord_id(bad), None, "{bad:?}");
        }
    }

    fn fields(days: Option<&str>, lifetime: bool) -> Fields {
        Fields {
            tier: Some("3000".into()),
            days: days.map(str::to_owned),
            lifetime,
            ..Fields::default()
        }
    }

    #[test]
    fn a_grant_needs_days_or_lifetime_and_days_in_range() {
        let tier = RoleId::new(3000).expect("role");
        assert_eq!(
            fields(Some("7"), false).command(MemberAction::Grant),
            Ok(Some(Command::Grant {
                tier,
                days: Some(7)
            }))
        );
        assert_eq!(
            fields(None, true).command(MemberAction::Grant),
            Ok(Some(Command::Grant { tier, days: None }))
        );
        for (days, lifetime, says) in [
            (Some("0"), false, "1 to 3650"),
            (Some("3651"), false, "1 to 3650"),
            (Some("seven"), false, "1 to 3650"),
            (None, false, "tick Lifetime"),
            (Some("7"), true, "not both"),
        ] {
            let error = fields(days, lifetime)
                .command(MemberAction::Grant)
                .expect_err("refused");
            assert!(error.contains(says), "{days:?} {lifetime}: {error}");
        }
        assert!(fields(None, false).command(MemberAction::Extend).is_err());
        assert_eq!(fields(None, false).command(MemberAction::Forget), Ok(None));
    }
}
