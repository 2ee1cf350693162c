//! The fake gateway: a plain-text JSON WebSocket server on `ws://127.0.0.1:P/gateway` that
//! speaks Discord's protocol to serenity: HELLO, IDENTIFY (token and intents checked), READY,
//! `GUILD_CREATE` per guild, heartbeat ACKs, RESUME (replaying missed dispatches) or
//! `INVALID_SESSION`, and close codes on demand. It owns the session (sequence numbers and the
//! dispatch history a RESUME replays) and the socket currently serving it.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::model::{INTENT_GUILDS, PRIVILEGED_INTENTS};
use super::{FakeError, Shared, State, payloads};

/// What the fake does with a RESUME for a known session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResumePolicy {
    /// Replay the dispatches the client missed, then send RESUMED (Discord's usual answer).
    #[default]
    Accept,
    /// Answer with op 9 `INVALID_SESSION` `false`, forcing a fresh IDENTIFY.
    Invalidate,
}

/// Counters and the current session, for assertions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayStats {
    /// WebSocket connections accepted.
    pub connections: u32,
    /// TCP connections accepted while the gateway was silent (their upgrade never answered).
    pub silent_connections: u32,
    /// Successful IDENTIFYs (each starts a new session and sends READY).
    pub identifies: u32,
    /// Successful RESUMEs.
    pub resumes: u32,
    /// `INVALID_SESSION` frames sent.
    pub invalid_sessions: u32,
    /// Heartbeats received.
    pub heartbeats: u32,
    /// Close codes the fake sent.
    pub close_codes: Vec<u16>,
    /// The request target of the last WebSocket handshake (e.g. `/gateway?v=10`).
    pub last_handshake_uri: Option<String>,
    /// Whether a socket is identified (or resumed) right now.
    pub live: bool,
    pub session_id: Option<String>,
    /// Last sequence number dispatched in the current session.
    pub seq: u64,
    /// Intents of the current session.
    pub intents: Option<u64>,
    /// The `shard` of every successful IDENTIFY, in order (`[0, 1]` when none was sent).
    pub identified_shards: Vec<[u64; 2]>,
    /// The shards identified (or resumed) on a socket right now.
    pub live_shards: Vec<u64>,
}

/// The session of a shard other than 0 (with more than one shard, see
/// `FakeDiscordBuilder::shards`): its socket, READY and its guilds' `GUILD_CREATE`s,
/// heartbeat ACKs, RESUME.
#[derive(Debug)]
pub(crate) struct OtherShard {
    session_id: String,
    seq: u64,
    conn_id: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct Session {
    pub id: String,
    pub seq: u64,
    pub intents: u64,
}

/// What the connection task should do next with its socket.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Frame(Value),
    Close(u16, String),
    Drop,
}

#[derive(Debug)]
pub(crate) struct Connection {
    id: u64,
    tx: mpsc::UnboundedSender<Outgoing>,
    /// Identified or resumed: dispatches flow to it. Before that they wait in the history.
    live: bool,
}

#[derive(Debug, Default)]
pub(crate) struct GatewayState {
    pub session: Option<Session>,
    /// Every dispatch of the current session, replayed on RESUME from the client's `seq`.
    history: Vec<(u64, Value)>,
    connection: Option<Connection>,
    /// Every open socket, by id (with one shard, only `connection`'s).
    sockets: std::collections::BTreeMap<u64, mpsc::UnboundedSender<Outgoing>>,
    /// Sessions of shards 1.. (with more than one shard).
    others: std::collections::BTreeMap<u64, OtherShard>,
    next_connection: u64,
    sessions_started: u64,
    pub stats: GatewayStats,
    /// Every frame the fake sent, in order (checked against serenity's types in tests).
    pub sent: Vec<Value>,
    /// Every frame received, with tokens redacted.
    pub received: Vec<Value>,
    pub resume_policy: ResumePolicy,
    /// Answer heartbeats (turn off to make serenity see a zombie connection).
    pub ack_heartbeats: bool,
    /// A close code to answer the next IDENTIFY with.
    pub close_next_identify: Option<(u16, String)>,
}

impl GatewayState {
    pub(crate) fn new() -> Self {
        Self {
            ack_heartbeats: true,
            ..Self::default()
        }
    }

    fn refresh_stats(&mut self) {
        self.stats.live = self.connection.as_ref().is_some_and(|c| c.live);
        self.stats.live_shards = self
            .stats
            .live
            .then_some(0)
            .into_iter()
            .chain(
                self.others
                    .iter()
                    .filter(|(_, s)| s.conn_id.is_some())
                    .map(|(i, _)| *i),
            )
            .collect();
        self.stats.session_id = self.session.as_ref().map(|s| s.id.clone());
        self.stats.seq = self.session.as_ref().map_or(0, |s| s.seq);
        self.stats.intents = self.session.as_ref().map(|s| s.intents);
    }

    /// Sends a frame to the current socket regardless of its state (HELLO, ACK, op 9, op 7).
    fn send_raw(&mut self, conn_id: u64, frame: Value) {
        if let Some(tx) = self.sockets.get(&conn_id) {
            self.sent.push(frame.clone());
            // A closed channel means the socket task is gone; the frame is simply lost.
            let _ = tx.send(Outgoing::Frame(frame));
        }
    }

    /// Queues a close frame (or an abrupt drop) for the live socket.
    /// The socket stops being live at once, so dispatches pushed from now on wait in the
    /// history for the RESUME instead of being lost with the old socket.
    pub(crate) fn close_current(&mut self, code: Option<u16>, reason: &str) -> bool {
        let Some(conn) = self.connection.as_mut() else {
            return false;
        };
        conn.live = false;
        let out = match code {
            Some(code) => {
                self.stats.close_codes.push(code);
                Outgoing::Close(code, reason.to_owned())
            }
            None => Outgoing::Drop,
        };
        let sent = conn.tx.send(out).is_ok();
        self.refresh_stats();
        sent
    }

    /// Sends op 9 `INVALID_SESSION` or op 7 RECONNECT to the live socket.
    pub(crate) fn send_control(&mut self, frame: Value) -> bool {
        let Some(id) = self.connection.as_ref().map(|c| c.id) else {
            return false;
        };
        if frame["op"] == 9 {
            self.stats.invalid_sessions += 1;
        }
        self.send_raw(id, frame);
        true
    }
}

impl State {
    /// Pushes a dispatch (op 0) with the session's next sequence number. It goes out at once on
    /// a live socket, otherwise it waits in the history for a RESUME, as on Discord.
    pub(crate) fn dispatch(&mut self, event: &str, data: Value) -> Result<u64, FakeError> {
        let gw = &mut self.gateway;
        let session = gw.session.as_mut().ok_or(FakeError::NoSession)?;
        session.seq += 1;
        let seq = session.seq;
        let frame = payloads::dispatch_frame(seq, event, data);
        gw.history.push((seq, frame.clone()));
        if let Some(conn) = gw.connection.as_ref().filter(|c| c.live) {
            gw.sent.push(frame.clone());
            let _ = conn.tx.send(Outgoing::Frame(frame));
        }
        gw.refresh_stats();
        Ok(seq)
    }

    /// Like [`State::dispatch`], but only if the session asked for `intent`: Discord does not
    /// send events the bot did not subscribe to. Returns `None` when not delivered.
    pub(crate) fn dispatch_if(
        &mut self,
        intent: u64,
        event: &str,
        data: Value,
    ) -> Result<Option<u64>, FakeError> {
        let intents = self
            .gateway
            .session
            .as_ref()
            .ok_or(FakeError::NoSession)?
            .intents;
        if intents & intent == intent {
            self.dispatch(event, data).map(Some)
        } else {
            Ok(None)
        }
    }

    fn handle_frame(&mut self, shared: &Shared, conn_id: u64, text: &str) {
        let Ok(frame) = serde_json::from_str::<Value>(text) else {
            self.close_conn(conn_id, 4002, "Error while decoding payload.");
            return;
        };
        let mut logged = frame.clone();
        if logged["d"].get("token").is_some() {
            logged["d"]["token"] = json!("<redacted>");
        }
        self.gateway.received.push(logged);
        match frame.get("op").and_then(Value::as_u64) {
            Some(1) => {
                self.gateway.stats.heartbeats += 1;
                if self.gateway.ack_heartbeats {
                    self.gateway.send_raw(conn_id, payloads::heartbeat_ack());
                }
            }
            Some(2) => self.identify(shared, conn_id, &frame["d"]),
            Some(6) => self.resume(shared, conn_id, &frame["d"]),
            // Presence update, voice state, request guild members, soundboard: accepted, ignored.
            Some(3 | 4 | 8 | 31) => {}
            _ => self.close_conn(conn_id, 4001, "Unknown opcode."),
        }
        self.gateway.refresh_stats();
    }

    fn close_conn(&mut self, conn_id: u64, code: u16, reason: &str) {
        if let Some(tx) = self.gateway.sockets.get(&conn_id) {
            self.gateway.stats.close_codes.push(code);
            let _ = tx.send(Outgoing::Close(code, reason.to_owned()));
        }
    }

    fn token_ok(shared: &Shared, d: &Value) -> bool {
        let token = d.get("token").and_then(Value::as_str).unwrap_or_default();
        token.strip_prefix("Bot ").unwrap_or(token) == shared.config.token
    }

    fn identify(&mut self, shared: &Shared, conn_id: u64, d: &Value) {
        let identified = self
            .gateway
            .connection
            .as_ref()
            .is_some_and(|c| c.id == conn_id && c.live)
            || self
                .gateway
                .others
                .values()
                .any(|s| s.conn_id == Some(conn_id));
        if identified {
            self.close_conn(conn_id, 4005, "Already authenticated.");
            return;
        }
        if !Self::token_ok(shared, d) {
            self.close_conn(conn_id, 4004, "Authentication failed.");
            return;
        }
        if let Some((code, reason)) = self.gateway.close_next_identify.take() {
            self.close_conn(conn_id, code, &reason);
            return;
        }
        let intents = d.get("intents").and_then(Value::as_u64).unwrap_or(0);
        if intents & PRIVILEGED_INTENTS & !shared.config.privileged_intents != 0 {
            self.close_conn(conn_id, 4014, "Disallowed intent(s).");
            return;
        }
        let total = u64::from(shared.config.shards);
        let shard_id = match d.get("shard").and_then(Value::as_array).map(Vec::as_slice) {
            None if total > 1 => {
                self.close_conn(conn_id, 4011, "Sharding required.");
                return;
            }
            None => [0, 1],
            Some([i, n]) => match (i.as_u64(), n.as_u64()) {
                (Some(i), Some(n)) if n == total && i < n => [i, n],
                _ => {
                    self.close_conn(conn_id, 4010, "Invalid shard.");
                    return;
                }
            },
            Some(_) => {
                self.close_conn(conn_id, 4010, "Invalid shard.");
                return;
            }
        };
        self.gateway.stats.identified_shards.push(shard_id);
        if shard_id[0] != 0 {
            self.identify_other(shared, conn_id, shard_id, intents);
            return;
        }
        if total > 1 {
            // Shard 0's socket is this one from now on.
            if let Some(old) = self.gateway.connection.take().filter(|c| c.id != conn_id) {
                let _ = old.tx.send(Outgoing::Drop);
            }
            if let Some(tx) = self.gateway.sockets.get(&conn_id) {
                self.gateway.connection = Some(Connection {
                    id: conn_id,
                    tx: tx.clone(),
                    live: false,
                });
            }
        }
        let gw = &mut self.gateway;
        gw.sessions_started += 1;
        let session_id = format!("fake-session-{}", gw.sessions_started);
        gw.session = Some(Session {
            id: session_id.clone(),
            seq: 0,
            intents,
        });
        gw.history.clear();
        if let Some(conn) = gw.connection.as_mut().filter(|c| c.id == conn_id) {
            conn.live = true;
        }
        gw.stats.identifies += 1;
        let shard_info = d.get("shard").cloned().unwrap_or_else(|| json!([0, 1]));
        let guild_ids = self.shard_guilds(shard_id);
        let ready = payloads::ready(
            &self.model,
            &guild_ids,
            &session_id,
            &shared.gateway_url,
            &shard_info,
        );
        // The session was just created, so these cannot fail.
        let _ = self.dispatch("READY", ready);
        if intents & INTENT_GUILDS != 0 {
            let creates = self.guild_creates(&guild_ids, intents);
            for create in creates {
                let _ = self.dispatch("GUILD_CREATE", create);
            }
        }
    }

    /// The guilds a shard serves: `(guild_id >> 22) % n == i`, as Discord assigns them.
    fn shard_guilds(&self, [i, n]: [u64; 2]) -> Vec<u64> {
        self.model
            .guilds
            .keys()
            .copied()
            .filter(|id| (id >> 22) % n.max(1) == i)
            .collect()
    }

    fn guild_creates(&self, guild_ids: &[u64], intents: u64) -> Vec<Value> {
        guild_ids
            .iter()
            .filter_map(|id| self.model.guilds.get(id))
            .map(|g| payloads::guild_create(g, self.model.bot.id, intents, &self.joined_at))
            .collect()
    }

    /// IDENTIFY for shard `i` > 0: a session of its own on this socket.
    fn identify_other(&mut self, shared: &Shared, conn_id: u64, shard_id: [u64; 2], intents: u64) {
        let guild_ids = self.shard_guilds(shard_id);
        let mut frames = Vec::new();
        let gw = &mut self.gateway;
        gw.sessions_started += 1;
        gw.stats.identifies += 1;
        let session_id = format!("fake-session-{}", gw.sessions_started);
        let ready = payloads::ready(
            &self.model,
            &guild_ids,
            &session_id,
            &shared.gateway_url,
            &json!(shard_id),
        );
        frames.push(("READY", ready));
        if intents & INTENT_GUILDS != 0 {
            for create in self.guild_creates(&guild_ids, intents) {
                frames.push(("GUILD_CREATE", create));
            }
        }
        let gw = &mut self.gateway;
        let mut other = OtherShard {
            session_id,
            seq: 0,
            conn_id: Some(conn_id),
        };
        for (event, data) in frames {
            other.seq += 1;
            let frame = payloads::dispatch_frame(other.seq, event, data);
            gw.send_raw(conn_id, frame);
        }
        if let Some(old) = gw.others.insert(shard_id[0], other)
            && let Some(old_conn) = old.conn_id.filter(|c| *c != conn_id)
            && let Some(tx) = gw.sockets.get(&old_conn)
        {
            let _ = tx.send(Outgoing::Drop);
        }
    }

    fn resume(&mut self, shared: &Shared, conn_id: u64, d: &Value) {
        if !Self::token_ok(shared, d) {
            self.close_conn(conn_id, 4004, "Authentication failed.");
            return;
        }
        let wanted = d.get("session_id").and_then(Value::as_str);
        let from = d.get("seq").and_then(Value::as_u64).unwrap_or(0);
        let gw = &mut self.gateway;
        if let Some(other) = gw
            .others
            .values_mut()
            .find(|s| Some(s.session_id.as_str()) == wanted)
        {
            // Another shard's session: nothing was dispatched to it since READY.
            other.conn_id = Some(conn_id);
            other.seq += 1;
            let frame = payloads::dispatch_frame(
                other.seq,
                "RESUMED",
                json!({ "_trace": ["fake-discord"] }),
            );
            gw.stats.resumes += 1;
            gw.send_raw(conn_id, frame);
            return;
        }
        let known = gw
            .session
            .as_ref()
            .is_some_and(|s| Some(s.id.as_str()) == wanted);
        if !known || gw.resume_policy == ResumePolicy::Invalidate {
            gw.session = None;
            gw.history.clear();
            gw.stats.invalid_sessions += 1;
            gw.send_raw(conn_id, payloads::invalid_session(false));
            return;
        }
        let missed: Vec<Value> = gw
            .history
            .iter()
            .filter(|(seq, _)| *seq > from)
            .map(|(_, frame)| frame.clone())
            .collect();
        for frame in missed {
            gw.send_raw(conn_id, frame);
        }
        if gw.connection.as_ref().is_none_or(|c| c.id != conn_id)
            && let Some(tx) = gw.sockets.get(&conn_id)
        {
            // With more shards, shard 0's session moves to this socket.
            if let Some(old) = gw.connection.take() {
                let _ = old.tx.send(Outgoing::Drop);
            }
            gw.connection = Some(Connection {
                id: conn_id,
                tx: tx.clone(),
                live: false,
            });
        }
        if let Some(conn) = gw.connection.as_mut().filter(|c| c.id == conn_id) {
            conn.live = true;
        }
        gw.stats.resumes += 1;
        let _ = self.dispatch("RESUMED", json!({ "_trace": ["fake-discord"] }));
    }
}

/// Accepts gateway sockets until the task is aborted (dropping the `JoinSet` ends them all).
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) if shared.gateway_silent() => {
                    shared.lock().gateway.stats.silent_connections += 1;
                    shared.notify();
                    // Held open, never read or answered, until the client gives up (or the
                    // fake stops).
                    connections.spawn(async move {
                        let _held = stream;
                        std::future::pending::<()>().await;
                    });
                }
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, Arc::clone(&shared)));
                }
                // Out of file descriptors or similar: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let mut uri = String::new();
    // The error type is tungstenite's, however large clippy finds it.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        uri = req.uri().to_string();
        Ok(resp)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let conn_id = {
        let mut state = shared.lock();
        let gw = &mut state.gateway;
        gw.next_connection += 1;
        let id = gw.next_connection;
        gw.sockets.insert(id, tx.clone());
        if shared.config.shards == 1 {
            // Discord would keep the old socket open; serenity has abandoned it by now anyway.
            if let Some(old) = gw.connection.take() {
                let _ = old.tx.send(Outgoing::Drop);
            }
            gw.connection = Some(Connection {
                id,
                tx,
                live: false,
            });
        }
        // With more shards, a socket is bound to one at its IDENTIFY (or RESUME).
        gw.stats.connections += 1;
        gw.stats.last_handshake_uri = Some(uri);
        gw.send_raw(
            id,
            payloads::hello(
                u64::try_from(shared.config.heartbeat_interval.as_millis()).unwrap_or(u64::MAX),
            ),
        );
        gw.refresh_stats();
        id
    };
    shared.notify();
    loop {
        tokio::select! {
            incoming = source.next() => match incoming {
                // Silent: read (so the socket stays open) but never handled.
                Some(Ok(Message::Text(_))) if shared.gateway_silent() => {}
                Some(Ok(Message::Text(text))) => {
                    shared.lock().handle_frame(&shared, conn_id, &text);
                    shared.notify();
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                // Binary (ETF/zlib) is not negotiated by serenity; pings are answered by
                // tungstenite itself.
                Some(Ok(_)) => {}
            },
            out = rx.recv() => match out {
                Some(Outgoing::Frame(_)) if shared.gateway_silent() => {}
                Some(Outgoing::Frame(frame)) => {
                    if sink.send(Message::Text(frame.to_string())).await.is_err() {
                        break;
                    }
                }
                Some(Outgoing::Close(code, reason)) => {
                    let frame = CloseFrame { code: CloseCode::from(code), reason: reason.into() };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    break;
                }
                Some(Outgoing::Drop) | None => break,
            },
        }
    }
    // Dropping both halves closes the TCP socket without a close frame.
    drop(sink);
    drop(source);
    {
        let mut state = shared.lock();
        let gw = &mut state.gateway;
        if gw.connection.as_ref().is_some_and(|c| c.id == conn_id) {
            gw.connection = None;
        }
        gw.sockets.remove(&conn_id);
        for other in gw.others.values_mut() {
            if other.conn_id == Some(conn_id) {
                other.conn_id = None;
            }
        }
        gw.refresh_stats();
    }
    shared.notify();
}
