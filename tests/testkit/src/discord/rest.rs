//! The fake REST API under `/api/v10` (HTTP/1.1 on hyper): logs every request, checks its body
//! against Discord's `OpenAPI` schema, applies injected faults, checks the bot token, then routes
//! to a handler over the in-memory model. Unknown routes answer Discord's `404: Not Found`.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::faults::{Fault, rate_limit_response};
use super::files;
use super::interactions::Answer;
use super::model::{INTENT_GUILD_MEMBERS, RoleChange};
use super::payloads::{self, ApiError};
use super::{Shared, State};

/// One request the fake received, with what it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedRequest {
    /// Upper case.
    pub method: String,
    /// The path below `/api/v10` (the full path if it was not under it), without the query.
    pub path: String,
    /// The raw query string (serenity sends `?&limit=…`).
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When the request arrived.
    pub at: Instant,
    /// Time since the fake started.
    pub since_start: Duration,
    /// The status sent; `None` if an injected fault dropped the connection or the fake was
    /// silent.
    pub status: Option<u16>,
    /// Never answered: it arrived while the fake was silent ([`super::FakeDiscord::set_silent`]).
    pub silenced: bool,
    /// The matching operation of Discord's `OpenAPI` spec.
    pub operation_id: Option<String>,
    /// The JSON body the fake answered with (`None` for 204 or a dropped connection).
    pub response: Option<Value>,
}

impl LoggedRequest {
    /// A header, by case-insensitive name.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, if it is JSON.
    #[must_use]
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// `X-Audit-Log-Reason`, percent-decoded (serenity encodes it).
    #[must_use]
    pub fn audit_log_reason(&self) -> Option<String> {
        self.header("X-Audit-Log-Reason")
            .map(|r| percent_decode_str(r).decode_utf8_lossy().into_owned())
    }

    /// `(key, value)` pairs of the query, ignoring the empty pair serenity's `?&` produces.
    #[must_use]
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        query_pairs(self.query.as_deref())
    }
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                percent_decode_str(k).decode_utf8_lossy().into_owned(),
                percent_decode_str(v).decode_utf8_lossy().into_owned(),
            )
        })
        .collect()
}

/// Returned to hyper to abort the connection without a response (the drop fault).
#[derive(Debug)]
struct Dropped;

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for Dropped {}

/// Serves HTTP/1.1 until the task is aborted (dropping the `JoinSet` ends every connection).
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = Arc::clone(&shared);
                    connections.spawn(async move {
                        let service = service_fn(move |req| handle(Arc::clone(&shared), req));
                        // Errors here are the client going away or a drop fault.
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// What a request ends in.
enum Outcome {
    Answer(u16, Vec<(String, String)>, Option<Value>),
    Drop,
}

impl From<ApiError> for Outcome {
    fn from(e: ApiError) -> Self {
        Outcome::Answer(e.status, Vec::new(), Some(e.body()))
    }
}

impl From<Answer> for Outcome {
    fn from(a: Answer) -> Self {
        match a {
            Answer::Json(status, body) => Outcome::Answer(status, Vec::new(), Some(body)),
            Answer::NoContent => Outcome::Answer(204, Vec::new(), None),
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let at = Instant::now();
    let method = req.method().as_str().to_ascii_uppercase();
    let full_path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(_) => return Err(Dropped),
    };
    let api_path = full_path.strip_prefix("/api/v10").map(str::to_owned);
    let mut entry = LoggedRequest {
        method,
        path: api_path.clone().unwrap_or(full_path),
        query,
        headers,
        body,
        at,
        since_start: at.duration_since(shared.started),
        status: None,
        silenced: false,
        operation_id: None,
        response: None,
    };
    if shared.rest_silent() {
        // A Discord that hangs: the request was read, and no answer ever comes.
        entry.silenced = true;
        record(&shared, entry);
        return std::future::pending().await;
    }
    if entry.method == "GET"
        && let Some(bytes) = uploaded(&shared, &entry.path)
    {
        entry.status = Some(200);
        record(&shared, entry);
        return Ok(Response::builder()
            .status(200)
            .header("content-type", "application/octet-stream")
            .body(Full::new(Bytes::from(bytes)))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))));
    }
    let outcome = match api_path {
        Some(path) => respond(&shared, &mut entry, &path).await,
        None => ApiError::not_found().into(),
    };
    let reply = match outcome {
        Outcome::Drop => {
            record(&shared, entry);
            return Err(Dropped);
        }
        Outcome::Answer(status, extra_headers, body) => {
            entry.status = Some(status);
            entry.response.clone_from(&body);
            build_response(status, &extra_headers, body.as_ref())
        }
    };
    record(&shared, entry);
    Ok(reply)
}

/// A multipart body's JSON part (checked and routed as the body) and files; other bodies
/// as they are. Returns the content type to check the body as.
#[allow(clippy::type_complexity, reason = "three parts of one body")]
fn split_files(
    entry: &LoggedRequest,
) -> Result<(Option<String>, Option<Vec<u8>>, Vec<(usize, files::Upload)>), String> {
    let content_type = entry.header("content-type").map(str::to_owned);
    match content_type
        .as_deref()
        .filter(|c| c.to_ascii_lowercase().starts_with("multipart/form-data"))
    {
        Some(ct) => {
            let parts = files::parse_multipart(ct, &entry.body)?;
            Ok((
                Some("application/json".into()),
                parts.payload_json,
                parts.files,
            ))
        }
        None => Ok((content_type, None, Vec::new())),
    }
}

/// Stores the files a request sent and lists them as the message's attachments.
fn attach_files(
    state: &mut State,
    shared: &Shared,
    path: &str,
    body: &mut Value,
    sent: Vec<(usize, files::Upload)>,
) {
    if sent.is_empty() {
        return;
    }
    let attachments: Vec<Value> = sent
        .into_iter()
        .map(|(_, upload)| {
            let id = state.model.next_id();
            let object = files::attachment(id, &upload, &shared.rest_url);
            state.model.uploads.insert(id, upload);
            object
        })
        .collect();
    if path.starts_with("/interactions/") {
        body["data"]["attachments"] = Value::Array(attachments);
    } else {
        body["attachments"] = Value::Array(attachments);
    }
}

/// A file at `/attachments/{id}/{name}` (Discord's CDN), if the fake has it.
fn uploaded(shared: &Shared, path: &str) -> Option<Vec<u8>> {
    let rest = path.strip_prefix("/attachments/")?;
    let (id, name) = rest.split_once('/')?;
    let state = shared.lock();
    let upload = state.model.uploads.get(&id.parse().ok()?)?;
    (upload.filename == name).then(|| upload.bytes.clone())
}

fn record(shared: &Shared, entry: LoggedRequest) {
    shared.lock().requests.push(entry);
    shared.notify();
}

fn build_response(
    status: u16,
    headers: &[(String, String)],
    body: Option<&Value>,
) -> Response<Full<Bytes>> {
    let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    let mut builder = Response::builder().status(status);
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    for (k, v) in headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder.body(Full::new(bytes)).unwrap_or_else(|_| {
        let mut r = Response::new(Full::new(Bytes::from_static(
            b"{\"message\":\"fake: invalid injected status or header\",\"code\":0}",
        )));
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

async fn respond(shared: &Shared, entry: &mut LoggedRequest, path: &str) -> Outcome {
    let (content_type, json_body, sent_files) = match split_files(entry) {
        Ok(split) => split,
        Err(e) => return ApiError::invalid_form_body(&[(String::new(), e)]).into(),
    };
    let checked_body = json_body.as_deref().unwrap_or(&entry.body);
    match shared
        .spec
        .check(&entry.method, path, content_type.as_deref(), checked_body)
    {
        Ok(operation_id) => entry.operation_id = Some(operation_id),
        Err(violation) => {
            entry.operation_id.clone_from(&violation.operation_id);
            let unknown_route = violation.operation_id.is_none();
            let fields: Vec<(String, String)> = violation
                .errors
                .iter()
                .map(|e| {
                    let (at, msg) = e.split_once(": ").unwrap_or(("", e.as_str()));
                    (at.trim_start_matches('/').replace('/', "."), msg.to_owned())
                })
                .collect();
            shared.lock().violations.push(*violation);
            return if unknown_route {
                ApiError::not_found().into()
            } else {
                ApiError::invalid_form_body(&fields).into()
            };
        }
    }

    let (delay, terminal) = {
        let mut state = shared.lock();
        let mut delay = Duration::ZERO;
        let mut terminal = None;
        for rule in &mut state.faults {
            if !rule.matches(&entry.method, path) {
                continue;
            }
            rule.consume();
            if let Fault::Delay(d) = &rule.fault {
                delay += *d;
            } else {
                terminal = Some(rule.fault.clone());
                break;
            }
        }
        state.faults.retain(|r| !r.exhausted());
        (delay, terminal)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match terminal {
        Some(Fault::Error(e)) => return e.into(),
        Some(Fault::RateLimited {
            retry_after,
            global,
        }) => {
            let (status, headers, body) = rate_limit_response(retry_after, global);
            return Outcome::Answer(status, headers, Some(body));
        }
        Some(Fault::DropConnection) => return Outcome::Drop,
        Some(Fault::Delay(_)) | None => {}
    }

    // Interaction callbacks and webhook routes are authorized by the token in their path, and
    // `GET /gateway` needs no authorization at all.
    let open_route = path.starts_with("/interactions/")
        || path.starts_with("/webhooks/")
        || (entry.method == "GET" && path == "/gateway");
    if !open_route
        && entry.header("authorization") != Some(format!("Bot {}", shared.config.token).as_str())
    {
        return ApiError::unauthorized().into();
    }

    let raw = json_body.as_deref().unwrap_or(&entry.body);
    let mut body: Value = if raw.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(raw).unwrap_or(Value::Null)
    };
    let query = entry.query_pairs();
    let mut state = shared.lock();
    attach_files(&mut state, shared, path, &mut body, sent_files);
    match route(&mut state, shared, &entry.method, path, &query, &body) {
        Ok(answer) => answer.into(),
        Err(e) => e.into(),
    }
}

fn snowflake(segment: &str) -> Result<u64, ApiError> {
    segment.parse().map_err(|_| {
        ApiError::invalid_form_body(&[(
            "id".into(),
            format!("Value \"{segment}\" is not snowflake."),
        )])
    })
}

fn route(
    state: &mut State,
    shared: &Shared,
    method: &str,
    path: &str,
    query: &[(String, String)],
    body: &Value,
) -> Result<Answer, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("GET", ["gateway"]) => Ok(Answer::Json(200, json!({ "url": shared.gateway_url }))),
        ("GET", ["gateway", "bot"]) => Ok(Answer::Json(
            200,
            json!({
                "url": shared.gateway_url,
                "shards": shared.config.shards,
                "session_start_limit": {
                    "total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1
                }
            }),
        )),
        ("GET", ["users", "@me"]) => {
            Ok(Answer::Json(200, payloads::current_user(&state.model.bot)))
        }
        ("GET", ["oauth2", "applications", "@me"]) => Ok(Answer::Json(
            200,
            payloads::current_application(state.model.application_id, &state.model.bot),
        )),
        (_, ["applications", app, "commands"]) => {
            commands(state, method, snowflake(app)?, None, body)
        }
        (_, ["applications", app, "guilds", guild, "commands"]) => commands(
            state,
            method,
            snowflake(app)?,
            Some(snowflake(guild)?),
            body,
        ),
        ("POST", ["interactions", id, token, "callback"]) => {
            state.interaction_callback(shared, snowflake(id)?, token, body)
        }
        (_, ["webhooks", app, token, "messages", "@original"]) => {
            state.original_message(method, snowflake(app)?, token, body)
        }
        (_, ["webhooks", app, token, "messages", message]) => {
            state.followup_message(method, snowflake(app)?, token, message, body)
        }
        ("POST", ["webhooks", id, token])
            if state
                .model
                .incoming_webhooks
                .contains_key(&(snowflake(id)?, (*token).to_owned())) =>
        {
            execute_webhook(state, snowflake(id)?, token, body)
        }
        ("POST", ["webhooks", app, token]) => state.followup(snowflake(app)?, token, body),
        ("PUT" | "DELETE", ["guilds", guild, "members", user, "roles", role]) => member_role(
            state,
            snowflake(guild)?,
            snowflake(user)?,
            snowflake(role)?,
            method == "PUT",
        ),
        ("DELETE", ["guilds", guild, "members", user]) => {
            let guild = snowflake(guild)?;
            let member = state.model.kick_member(guild, snowflake(user)?)?;
            let _ = state.dispatch_if(
                INTENT_GUILD_MEMBERS,
                "GUILD_MEMBER_REMOVE",
                payloads::member_remove(guild, &member.user),
            );
            Ok(Answer::NoContent)
        }
        ("GET", ["guilds", guild, "members", user]) => {
            let guild = state.model.guild(snowflake(guild)?)?;
            let member = guild
                .members
                .get(&snowflake(user)?)
                .ok_or_else(ApiError::unknown_member)?;
            Ok(Answer::Json(200, payloads::member(member)))
        }
        ("GET", ["guilds", guild, "members"]) => {
            list_members(state, shared, snowflake(guild)?, query)
        }
        ("GET", ["guilds", guild, "roles"]) => {
            let guild = state.model.guild(snowflake(guild)?)?;
            let roles: Vec<Value> = guild.roles.values().map(payloads::role).collect();
            Ok(Answer::Json(200, Value::Array(roles)))
        }
        ("POST", ["users", "@me", "channels"]) => create_dm(state, body),
        ("GET", ["channels", channel]) => {
            let channel = snowflake(channel)?;
            let guild = state
                .model
                .guild_of_channel(channel)
                .ok_or_else(ApiError::not_found)?;
            Ok(Answer::Json(
                200,
                payloads::text_channel(state.model.guild(guild)?),
            ))
        }
        ("POST", ["channels", channel, "messages"]) => {
            create_message(state, snowflake(channel)?, body)
        }
        _ => Err(ApiError::not_found()),
    }
}

/// `POST /webhooks/{id}/{token}` on an incoming webhook: records the body; 204 as Discord
/// answers without `?wait=true`. An empty message is refused as Discord does (50006).
fn execute_webhook(
    state: &mut State,
    id: u64,
    token: &str,
    body: &Value,
) -> Result<Answer, ApiError> {
    let empty = |k: &str| {
        body.get(k).is_none_or(|v| {
            v.is_null() || v.as_str() == Some("") || v.as_array().is_some_and(Vec::is_empty)
        })
    };
    if empty("content") && empty("embeds") {
        return Err(ApiError::new(400, 50006, "Cannot send an empty message"));
    }
    if let Some(executions) = state
        .model
        .incoming_webhooks
        .get_mut(&(id, token.to_owned()))
    {
        executions.push(body.clone());
    }
    Ok(Answer::NoContent)
}

/// Registered commands: `PUT` overwrites the list (ids kept by name, as Discord does),
/// `POST` creates or replaces one, `GET` lists.
fn commands(
    state: &mut State,
    method: &str,
    application: u64,
    guild: Option<u64>,
    body: &Value,
) -> Result<Answer, ApiError> {
    if application != state.model.application_id {
        return Err(ApiError::unknown_application());
    }
    if let Some(g) = guild
        && !state.model.guilds.contains_key(&g)
    {
        return Err(ApiError::missing_access());
    }
    let app = state.model.application_id;
    let existing = state
        .model
        .commands
        .get(&guild)
        .cloned()
        .unwrap_or_default();
    let id_for = |name: &Value, model: &mut super::model::Model| {
        existing
            .iter()
            .find(|c| c.get("name") == Some(name))
            .and_then(|c| c.get("id").and_then(Value::as_str))
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| model.next_id())
    };
    match method {
        "GET" => Ok(Answer::Json(200, Value::Array(existing.clone()))),
        "PUT" => {
            let list = body.as_array().ok_or_else(|| {
                ApiError::invalid_form_body(&[(String::new(), "Expected an array".into())])
            })?;
            let mut out = Vec::new();
            for cmd in list {
                let name = cmd.get("name").cloned().unwrap_or(Value::Null);
                let id = id_for(&name, &mut state.model);
                let version = state.model.next_id();
                out.push(payloads::command(cmd, id, version, app, guild));
            }
            state.model.commands.insert(guild, out.clone());
            Ok(Answer::Json(200, Value::Array(out)))
        }
        "POST" => {
            let name = body.get("name").cloned().unwrap_or(Value::Null);
            let is_new = !existing.iter().any(|c| c.get("name") == Some(&name));
            let id = id_for(&name, &mut state.model);
            let version = state.model.next_id();
            let created = payloads::command(body, id, version, app, guild);
            let list = state.model.commands.entry(guild).or_default();
            list.retain(|c| c.get("name") != Some(&name));
            list.push(created.clone());
            Ok(Answer::Json(if is_new { 201 } else { 200 }, created))
        }
        _ => Err(ApiError::not_found()),
    }
}

/// Adds or removes a role; a real change is dispatched as `GUILD_MEMBER_UPDATE` to sessions
/// subscribed to `GUILD_MEMBERS`.
fn member_role(
    state: &mut State,
    guild: u64,
    user: u64,
    role: u64,
    add: bool,
) -> Result<Answer, ApiError> {
    if state.model.change_member_role(guild, user, role, add)? == RoleChange::Changed {
        let update = state
            .model
            .guilds
            .get(&guild)
            .and_then(|g| g.members.get(&user))
            .map(|m| payloads::member_update(guild, m));
        if let Some(update) = update {
            // No session (bot offline) means no event, as on Discord.
            let _ = state.dispatch_if(INTENT_GUILD_MEMBERS, "GUILD_MEMBER_UPDATE", update);
        }
    }
    Ok(Answer::NoContent)
}

/// `GET /guilds/{g}/members?limit&after`: needs the `GUILD_MEMBERS` privileged intent enabled
/// for the app (whatever the gateway session asked for).
fn list_members(
    state: &State,
    shared: &Shared,
    guild: u64,
    query: &[(String, String)],
) -> Result<Answer, ApiError> {
    let guild = state.model.guild(guild)?;
    if shared.config.privileged_intents & INTENT_GUILD_MEMBERS == 0 {
        return Err(ApiError::missing_access());
    }
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let limit = match param("limit") {
        None => 1,
        Some(l) => match l.parse::<usize>() {
            Ok(n @ 1..=1000) => n,
            _ => {
                return Err(ApiError::invalid_form_body(&[(
                    "limit".into(),
                    "int value should be between 1 and 1000.".into(),
                )]));
            }
        },
    };
    let after = match param("after") {
        None => 0,
        Some(a) => snowflake(a)?,
    };
    let members: Vec<Value> = guild
        .members
        .range(after.saturating_add(1)..)
        .take(limit)
        .map(|(_, m)| payloads::member(m))
        .collect();
    Ok(Answer::Json(200, Value::Array(members)))
}

fn create_dm(state: &mut State, body: &Value) -> Result<Answer, ApiError> {
    let recipient = match body.get("recipient_id") {
        Some(Value::String(s)) => snowflake(s)?,
        Some(Value::Number(n)) => n.as_u64().ok_or_else(ApiError::unknown_user)?,
        _ => {
            return Err(ApiError::invalid_form_body(&[(
                "recipient_id".into(),
                "This field is required".into(),
            )]));
        }
    };
    let user = state
        .model
        .user(recipient)
        .cloned()
        .ok_or_else(ApiError::unknown_user)?;
    let channel = state.model.dm_channel(recipient);
    Ok(Answer::Json(200, payloads::dm_channel(channel, &user)))
}

fn create_message(state: &mut State, channel: u64, body: &Value) -> Result<Answer, ApiError> {
    let recipient = state
        .model
        .dm_channels
        .iter()
        .find(|(_, c)| **c == channel)
        .map(|(u, _)| *u);
    if recipient.is_none() && state.model.guild_of_channel(channel).is_none() {
        return Err(ApiError::new(404, 10003, "Unknown Channel"));
    }
    if let Some(user) = recipient
        && state.model.dms_closed.contains(&user)
    {
        return Err(ApiError::new(
            403,
            50007,
            "Cannot send messages to this user",
        ));
    }
    let has_content = ["content", "embeds", "components", "sticker_ids", "poll"]
        .iter()
        .any(|f| match body.get(*f) {
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Null) | None => false,
            Some(_) => true,
        });
    if !has_content {
        return Err(ApiError::new(400, 50006, "Cannot send an empty message"));
    }
    // `enforce_nonce`: a message by the same author with the same nonce (Discord: in the
    // past few minutes; here: ever) is returned instead of creating another.
    let nonce = body.get("nonce").filter(|n| !n.is_null()).cloned();
    if body.get("enforce_nonce") == Some(&Value::Bool(true))
        && let Some(nonce) = &nonce
        && let Some(earlier) = state
            .model
            .messages
            .iter()
            .find(|m| m.channel_id == channel && m.message.get("nonce") == Some(nonce))
    {
        return Ok(Answer::Json(200, earlier.message.clone()));
    }
    let id = state.model.next_id();
    let bot = state.model.bot.clone();
    let mut message = payloads::message(id, channel, &bot, body, payloads::MESSAGE_DEFAULT, None);
    if let Some(nonce) = nonce {
        message["nonce"] = nonce;
    }
    state.model.messages.push(super::model::SentMessage {
        channel_id: channel,
        recipient_id: recipient,
        message: message.clone(),
    });
    Ok(Answer::Json(200, message))
}

#[cfg(test)]
mod tests {
    use super::query_pairs;

    #[test]
    fn query_parser_tolerates_serenitys_leading_ampersand() {
        assert_eq!(
            query_pairs(Some("&limit=1000&after=5")),
            vec![
                ("limit".to_owned(), "1000".to_owned()),
                ("after".to_owned(), "5".to_owned())
            ]
        );
        assert!(query_pairs(None).is_empty());
    }
}
