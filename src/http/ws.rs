//! `/ws/{room}?token=JWT&format=json|proto`: one viewer socket (the `Viewer` below).
//!
//! The socket is admitted before the upgrade (room open, token valid for the room, token
//! present when the room needs one) but refusals are told over the socket as an error frame
//! and a close code, because browsers cannot read an HTTP error on a WebSocket handshake. The
//! first client frame may be `hello` (with `resume_from`); then the viewer joins the room,
//! gets `welcome`, what it missed, and one batch per tick. It never makes the room wait: past
//! the backlog it skips to the newest batch and is told the gap (or is closed, by policy).
//! When the socket's token runs out it is told, and its sends are refused until it hands over
//! a fresh one; a moderator's token lets it delete and mute ([`super::ws_access`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRef, FromRequestParts, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::Instant;
use tracing::Instrument;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::Message;

use crate::auth::TokenSigner;
use crate::chat::codec::{
    decode_client_binary, decode_client_text, encode_server, Encoded, Format,
};
use crate::chat::fanout::{DeliveredBatch, Membership};
use crate::chat::history::Resume;
use crate::chat::limits::{LayerLimiter, LimitRefusal};
use crate::chat::protocol::{ClientFrame, SendDanmaku, ServerFrame, Welcome};
use crate::chat::room::Room;
use crate::chat::uplink::{self, Identity};
use crate::chat::ChatEngine;
use crate::config::{CdnBase, Config, SlowPolicy};
use crate::http::api_error::ApiError;
use crate::http::room_acts::{Act, RoomActs};
use crate::http::ws_access::{self, SocketAccess};
use crate::http::ws_stream::{close_frame, server_frame, OpCode, SplitSocket};
use crate::http::{client_cdn_bases, live_playlist_url, public_base};
use crate::state::AppState;

/// WebSocket close codes barrage uses (the error frame before the close says why in words).
pub mod close_code {
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A text frame that is not UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// Bad, expired, wrong-room or missing token.
    pub const POLICY: u16 = 1008;
    /// A frame larger than `chat.max_frame_bytes`.
    pub const TOO_BIG: u16 = 1009;
    /// The socket fell behind its backlog and `chat.slow_policy` is "close".
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// The room does not exist or is closed.
    pub const NOT_FOUND: u16 = 4404;
    /// Nothing from the client for `chat.idle_timeout_s`.
    pub const IDLE: u16 = 4408;
    /// The room closed while the socket was in it.
    pub const ROOM_CLOSED: u16 = 4410;
}

/// Per-socket read buffer. Every socket holds one for its whole life, and tungstenite zero-fills
/// it to this size on each read, so all of it is resident: at 4 KiB it was most of an idle
/// viewer's memory (heaptrack: 4 of 5.2 KiB of heap per socket). Client frames are a few
/// hundred bytes; a larger one (up to `chat.max_frame_bytes`) just takes several reads.
const READ_BUFFER_BYTES: usize = 512;
/// How long the server waits for `hello` before joining the socket without resume.
const HELLO_WAIT: Duration = Duration::from_secs(5);
/// A send to a socket that does not finish in this long (at least) ends the socket.
const MIN_SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The viewer socket route, merged into the main router.
pub fn routes() -> Router<AppState> {
    Router::new().route("/ws/{room}", get(upgrade))
}

/// What a viewer socket uses of the state: the chat engine, the token check at admission (and
/// on renewal), moderators' acts, and the settings.
#[derive(Clone)]
struct Viewers {
    chat: Arc<ChatEngine>,
    tokens: Arc<TokenSigner>,
    acts: RoomActs,
    config: Arc<Config>,
}

impl FromRef<AppState> for Viewers {
    fn from_ref(state: &AppState) -> Viewers {
        Viewers {
            chat: state.chat.clone(),
            tokens: state.tokens.clone(),
            acts: RoomActs::from_ref(state),
            config: state.config.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct WsParams {
    token: Option<String>,
    format: Option<String>,
}

/// A refusal told over the socket before closing it.
#[derive(Debug)]
struct Refused {
    code: &'static str,
    message: String,
    close: u16,
}

/// The handshake. axum's `WebSocketUpgrade` checks the request (and answers a bad one as it
/// always has), but the upgrade is completed here, on a clone of hyper's upgrade hook, so
/// that the connection can be split: see [`super::ws_stream`].
async fn upgrade(
    State(state): State<Viewers>,
    Path(room): Path<String>,
    Query(params): Query<WsParams>,
    request: Request,
) -> Response {
    let (mut parts, _body) = request.into_parts();
    let on_upgrade = parts.extensions.get::<hyper::upgrade::OnUpgrade>().cloned();
    if let Err(rejection) = WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        return rejection.into_response();
    }
    let headers = parts.headers;
    let (Some(on_upgrade), Some(key)) = (on_upgrade, headers.get(header::SEC_WEBSOCKET_KEY)) else {
        // axum accepted it, so this is a request hyper cannot upgrade (HTTP/2).
        return ApiError::bad_request(
            "not_upgradable",
            "this connection cannot be upgraded to a WebSocket",
        )
        .into_response();
    };
    // Base64 of a SHA-1: always a valid header value.
    let Ok(accept) =
        header::HeaderValue::from_str(&tungstenite::handshake::derive_accept_key(key.as_bytes()))
    else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let format = match params.format.as_deref().map(str::parse::<Format>) {
        None => Format::Json,
        Some(Ok(f)) => f,
        Some(Err(message)) => return ApiError::bad_request("bad_format", message).into_response(),
    };
    let admission = admit(&state, &room, params.token.as_deref());
    let base = public_base(&state.config, &headers);
    let max = state.config.chat.max_frame_bytes;
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(error = %e, "websocket upgrade failed");
                return;
            }
        };
        let socket = SplitSocket::new(TokioIo::new(upgraded), config).await;
        // A task of its own, sized by the session alone: this task also holds the
        // handshake's state, which an idle socket would keep for its whole life.
        tokio::spawn(session(state, room, format, admission, base, socket));
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("upgrade"),
    );
    h.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    response
}

/// Decides whether the socket may join, and as whom.
fn admit(
    state: &Viewers,
    room: &str,
    token: Option<&str>,
) -> Result<(Arc<Room>, Option<Box<Identity>>), Refused> {
    let room_handle = state.chat.room(room).map_err(|e| Refused {
        code: "room_not_found",
        message: e.to_string(),
        close: close_code::NOT_FOUND,
    })?;
    let who = match token.filter(|t| !t.is_empty()) {
        Some(token) => {
            let claims = state
                .tokens
                .verify(token, Some(room))
                .map_err(|e| Refused {
                    code: e.code(),
                    message: e.to_string(),
                    close: close_code::POLICY,
                })?;
            Some(Box::new(ws_access::identity(claims)))
        }
        None if state.config.chat.read_needs_token => {
            return Err(Refused {
                code: "token_required",
                message: format!("room {room} needs a token to read: add ?token=JWT"),
                close: close_code::POLICY,
            })
        }
        None => None,
    };
    Ok((room_handle, who))
}

/// One socket's whole life, as a boxed future of exactly its own size. The task of an idle
/// viewer is most of what a connection costs, so everything is set up before the `async`
/// block (whose captures would otherwise stay reserved for the socket's life beside the
/// copies it makes), and the loop boxes the paths it rarely takes (see [`Viewer::run`]).
fn session(
    state: Viewers,
    room: String,
    format: Format,
    admission: Result<(Arc<Room>, Option<Box<Identity>>), Refused>,
    base: String,
    socket: SplitSocket,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let tracked = state.chat.track_socket();
    let user = match &admission {
        Ok((_, Some(who))) => who.user.as_str(),
        _ => "",
    };
    let span = tracing::info_span!("ws", room = %room, user = %user, format = format.as_str());
    let (room, who) = match admission {
        Ok(ok) => ok,
        Err(refused) => {
            let mut out = SocketWriter::new(socket, format, &state.config);
            return instrumented(
                async move {
                    let _tracked = tracked;
                    tracing::info!(code = refused.code, reason = %refused.message, "socket refused");
                    out.close_with(refused.code, &refused.message, refused.close)
                        .await;
                },
                span,
            );
        }
    };
    metrics::counter!("barrage_chat_connections_total", "format" => format.as_str()).increment(1);
    let open = metrics::gauge!("barrage_chat_connections");
    open.increment(1.0);
    let mut viewer = Viewer {
        conn_limit: state.chat.connection_limiter(),
        out: SocketWriter::new(socket, format, &state.config),
        access: Arc::new(SocketAccess {
            tokens: state.tokens,
            acts: state.acts,
        }),
        chat: state.chat,
        config: state.config,
        room,
        who,
        expiry_told: false,
        base,
        last_seq: 0,
    };
    instrumented(
        async move {
            let _tracked = tracked;
            let end = viewer.run().await;
            if matches!(end, End::PeerClosed) {
                // Send the close reply tungstenite queued, so the client sees a clean close.
                let _ = tokio::time::timeout(Duration::from_secs(1), viewer.out.socket.shutdown())
                    .await;
            }
            tracing::debug!(%end, "socket ended");
            open.decrement(1.0);
        },
        span,
    )
}

/// Boxes a socket's future, inside its span only when the span is on: entering even a
/// disabled span on every poll of every socket was 1.7% of a fan-out server's CPU.
fn instrumented(
    fut: impl Future<Output = ()> + Send + 'static,
    span: tracing::Span,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    if span.is_disabled() {
        Box::pin(fut)
    } else {
        Box::pin(fut.instrument(span))
    }
}

/// Why a socket ended (logged).
#[derive(Debug, thiserror::Error)]
enum End {
    #[error("the client closed the socket")]
    PeerClosed,
    #[error("read failed: {0}")]
    ReadError(String),
    #[error("send failed: {0}")]
    SendFailed(String),
    #[error("a send did not finish in time (the client stopped reading)")]
    SendTimedOut,
    /// The server closed it with an error frame and close code.
    #[error("closed by the server: {0}")]
    Closed(&'static str),
}

/// The viewer's socket, written frame by frame: encodes frames for the socket's format and
/// sends without waiting forever (the loop reads from its `socket` too).
struct SocketWriter {
    socket: SplitSocket,
    format: Format,
    send_timeout: Duration,
}

impl SocketWriter {
    fn new(socket: SplitSocket, format: Format, config: &Config) -> SocketWriter {
        SocketWriter {
            socket,
            format,
            send_timeout: Duration::from_secs(config.chat.idle_timeout_s).max(MIN_SEND_TIMEOUT),
        }
    }

    /// Sends one whole WebSocket frame (after any pong or close reply that waits; an empty
    /// `frame` sends just those). The usual case completes on the first poll (no timer); a
    /// socket whose peer stopped reading gets `send_timeout` before it is given up.
    /// The slow path (timer and all) is boxed, so it takes no room in every socket's future.
    async fn send(&mut self, frame: &[u8]) -> Result<(), End> {
        let timeout = self.send_timeout;
        let mut fut = std::pin::pin!(self.socket.write_frame(frame));
        let result = match futures::poll!(fut.as_mut()) {
            Poll::Ready(r) => r,
            Poll::Pending => match Box::pin(tokio::time::timeout(timeout, fut)).await {
                Ok(r) => r,
                Err(_) => return Err(End::SendTimedOut),
            },
        };
        result.map_err(|e| End::SendFailed(e.to_string()))
    }

    async fn frame(&mut self, frame: &ServerFrame) -> Result<(), End> {
        let bytes = match encode_server(frame, self.format) {
            Encoded::Text(t) => server_frame(OpCode::Text, t.as_bytes()),
            Encoded::Binary(b) => server_frame(OpCode::Binary, &b),
        };
        self.send(&bytes).await
    }

    async fn error(&mut self, code: &str, message: &str) -> Result<(), End> {
        self.frame(&ServerFrame::Error {
            code: code.to_string(),
            message: message.to_string(),
        })
        .await
    }

    /// An error frame, then a close frame with `close`, then the close handshake (bounded).
    async fn close_with(&mut self, code: &str, message: &str, close: u16) {
        if self.error(code, message).await.is_ok() {
            let _ = self.send(&close_frame(close, code)).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.socket.shutdown()).await;
    }
}

/// Why a read failed, as far as the client is told.
enum ReadError {
    TooBig(String),
    NotUtf8(String),
    Other(String),
}

fn classify(e: tungstenite::Error) -> ReadError {
    match e {
        tungstenite::Error::Capacity(c) => ReadError::TooBig(c.to_string()),
        tungstenite::Error::Utf8(m) => ReadError::NotUtf8(m),
        other => ReadError::Other(other.to_string()),
    }
}

/// One joined (or joining) viewer.
struct Viewer {
    chat: Arc<ChatEngine>,
    config: Arc<Config>,
    room: Arc<Room>,
    /// Boxed: most viewers are anonymous, and every socket keeps this field for its life.
    who: Option<Box<Identity>>,
    /// Whether the socket was told that `who`'s token ran out (once per token).
    expiry_told: bool,
    /// Token renewal and moderators' requests.
    access: Arc<SocketAccess>,
    out: SocketWriter,
    /// Every client frame passes this layer first (floods of any frame kind).
    conn_limit: LayerLimiter,
    base: String,
    /// The newest seq this socket has been sent (or told it missed).
    last_seq: u64,
}

impl Viewer {
    /// The socket's loop. Only the wait and `deliver` (every batch) are awaited in place; the
    /// other steps are boxed, so the loop's future (kept for the socket's whole life) is sized
    /// by what an idle viewer needs, not by the largest step.
    async fn run(&mut self) -> End {
        let (resume_from, pending) = match Box::pin(self.await_hello()).await {
            Ok(first) => first,
            Err(end) => return end,
        };
        let mut membership = self.room.join(self.out.format, resume_from);
        if let Err(end) = Box::pin(self.welcome(&mut membership)).await {
            return end;
        }
        if let Some(frame) = pending {
            if let Err(end) = Box::pin(self.handle(frame)).await {
                return end;
            }
        }
        let idle = Duration::from_secs(self.config.chat.idle_timeout_s.max(1));
        // One timer serves two ends: the idle timeout, and (earlier) the token running out.
        let mut idle_at = Instant::now() + idle;
        let deadline = tokio::time::sleep_until(self.wake_at(idle_at));
        tokio::pin!(deadline);
        let room = self.room.clone();
        // Made once: a fresh one on every wake-up was a `Notify` registration and drop each.
        let closed = room.closed();
        tokio::pin!(closed);
        loop {
            // In this order: a wake-up for a batch (the usual one) polls nothing else. A client
            // that floods frames cannot starve batches (at most one per tick is ready).
            let step = tokio::select! {
                biased;
                batch = membership.batches.recv() => match batch {
                    Ok(batch) => self.deliver_pending(&batch, &mut membership).await,
                    Err(RecvError::Lagged(missed)) => Box::pin(self.lagged(&mut membership, missed)).await,
                    Err(RecvError::Closed) => Err(End::PeerClosed),
                },
                _ = &mut closed => return Box::pin(self.room_gone()).await,
                _ = &mut deadline => {
                    if Instant::now() < idle_at {
                        let told = Box::pin(self.tell_expired()).await;
                        deadline.as_mut().reset(self.wake_at(idle_at));
                        told
                    } else {
                        return Box::pin(self.end("idle_timeout", "no frame from the client in chat.idle_timeout_s; send a heartbeat every 30 s", close_code::IDLE)).await;
                    }
                }
                msg = self.out.socket.recv() => {
                    idle_at = Instant::now() + idle;
                    let step = match msg {
                        None => Err(End::PeerClosed),
                        Some(Err(e)) => Err(Box::pin(self.read_failed(e)).await),
                        Some(Ok(msg)) => self.client_frame(msg).await,
                    };
                    // After the frame: an `auth` may have brought a new expiry.
                    deadline.as_mut().reset(self.wake_at(idle_at));
                    step
                }
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// When the loop's timer should fire: at `idle_at`, or when the token runs out if that is
    /// sooner and the socket was not told yet.
    fn wake_at(&self, idle_at: Instant) -> Instant {
        let token_end = match &self.who {
            Some(who) if !self.expiry_told => who.valid_until_ms,
            _ => None,
        };
        match token_end {
            Some(until_ms) => {
                let left = until_ms.saturating_sub(crate::clock::now_ms()).max(0);
                idle_at.min(Instant::now() + Duration::from_millis(left as u64))
            }
            None => idle_at,
        }
    }

    /// Tells the client, once, that its token ran out (its sends are refused from now on).
    async fn tell_expired(&mut self) -> Result<(), End> {
        let Some(who) = self.who.as_deref() else {
            return Ok(());
        };
        if self.expiry_told || !who.expired(crate::clock::now_ms()) {
            return Ok(());
        }
        self.expiry_told = true;
        tracing::debug!("token expired on a live socket");
        let frame = ws_access::expired_frame(who);
        self.out.frame(&frame).await
    }

    /// Decodes and handles one client frame (boxed: see [`Viewer::run`]).
    fn client_frame(
        &mut self,
        msg: Message,
    ) -> Pin<Box<dyn Future<Output = Result<(), End>> + Send + '_>> {
        Box::pin(async move {
            match self.decode(msg).await? {
                Some(frame) => self.handle(frame).await,
                None => Ok(()),
            }
        })
    }

    /// Waits for the first frame: `hello` gives the resume point; any other frame joins live
    /// and is handled after the welcome; silence joins live after [`HELLO_WAIT`].
    async fn await_hello(&mut self) -> Result<(Option<u64>, Option<ClientFrame>), End> {
        let deadline = Instant::now() + HELLO_WAIT;
        loop {
            let room = self.room.clone();
            let read = tokio::select! {
                _ = room.closed() => return Err(self.room_gone().await),
                read = tokio::time::timeout_at(deadline, self.out.socket.recv()) => read,
            };
            let msg = match read {
                Err(_) => return Ok((None, None)),
                Ok(None) => return Err(End::PeerClosed),
                Ok(Some(Err(e))) => return Err(self.read_failed(e).await),
                Ok(Some(Ok(msg))) => msg,
            };
            match self.decode(msg).await? {
                Some(ClientFrame::Hello { resume_from }) => return Ok((resume_from, None)),
                Some(other) => return Ok((None, Some(other))),
                None => {}
            }
        }
    }

    async fn welcome(&mut self, membership: &mut Membership) -> Result<(), End> {
        let bases = client_cdn_bases(&self.config);
        let hls_url = live_playlist_url(&bases, &self.base, &self.room.id);
        // Without CDN bases the files come from this node.
        let cdn_bases = if bases.is_empty() {
            vec![CdnBase {
                url: self.base.clone(),
                weight: 1,
            }]
        } else {
            bases
        };
        let welcome = Welcome {
            room: self.room.id.to_string(),
            user: self
                .who
                .as_ref()
                .map(|w| w.user.clone())
                .unwrap_or_default(),
            seq: membership.seq,
            online: self.room.online(),
            limits: uplink::limits_for(&self.room, self.who.as_deref()),
            hls_url,
            cdn_bases,
        };
        self.out.frame(&ServerFrame::Welcome(welcome)).await?;
        self.last_seq = membership.seq;
        if let Resume::Missed { gap, events } =
            std::mem::replace(&mut membership.resume, Resume::UpToDate)
        {
            if let Some((from_seq, to_seq)) = gap {
                self.out
                    .frame(&ServerFrame::Gap { from_seq, to_seq })
                    .await?;
            }
            if !events.is_empty() {
                self.out.frame(&ServerFrame::Batch { events }).await?;
            }
        }
        Ok(())
    }

    /// Turns a WebSocket message into a client frame, answering garbage and floods itself.
    async fn decode(&mut self, msg: Message) -> Result<Option<ClientFrame>, End> {
        let decoded = match &msg {
            Message::Text(t) => decode_client_text(t.as_str()),
            Message::Binary(b) => decode_client_binary(b),
            Message::Close(_) => return Err(End::PeerClosed),
            Message::Ping(_) => {
                // tungstenite made the pong; send it now, not with the next frame.
                self.out.send(&[]).await?;
                return Ok(None);
            }
            Message::Pong(_) | Message::Frame(_) => return Ok(None),
        };
        let limited = self.conn_limit.check();
        match (decoded, limited) {
            (Ok(ClientFrame::Send(send)), Err(refusal)) => {
                // A send is answered with an ack even when the connection layer refused it.
                self.answer(&send, Err(refusal)).await?;
                Ok(None)
            }
            (_, Err(_)) => {
                self.out
                    .error(
                        "rate_limited",
                        "too many frames on this connection; slow down",
                    )
                    .await?;
                Ok(None)
            }
            (Ok(frame), Ok(())) => Ok(Some(frame)),
            (Err(e), Ok(())) => {
                tracing::debug!(error = %e, "bad client frame");
                metrics::counter!("barrage_chat_bad_frames_total").increment(1);
                self.out.error("bad_frame", &e.to_string()).await?;
                Ok(None)
            }
        }
    }

    async fn handle(&mut self, frame: ClientFrame) -> Result<(), End> {
        match frame {
            ClientFrame::Hello { .. } => {
                self.out
                    .error("bad_frame", "hello is only valid as the first frame")
                    .await
            }
            ClientFrame::Send(send) => self.answer(&send, Ok(())).await,
            ClientFrame::Heartbeat => {
                let online = self.room.online();
                self.out.frame(&ServerFrame::Heartbeat { online }).await
            }
            ClientFrame::Auth { token } => {
                let (renewed, frame) = self.access.renew(&self.room.id, &token);
                if let Some(who) = renewed {
                    tracing::debug!(user = %who.user, "token renewed on a live socket");
                    self.who = Some(Box::new(who));
                    self.expiry_told = false;
                }
                self.out.frame(&frame).await
            }
            ClientFrame::Delete(d) => {
                let act = Ok(Act::delete(d.seq));
                self.moderate(d.request_id, act).await
            }
            ClientFrame::Mute(m) => {
                let act = Act::mute(m.user, m.seconds);
                self.moderate(m.request_id, act).await
            }
        }
    }

    /// A moderator's request from this socket, answered with a reply frame.
    async fn moderate(&mut self, request_id: u64, act: Result<Act, ApiError>) -> Result<(), End> {
        let reply = self
            .access
            .moderate(&self.room.id, self.who.as_deref(), request_id, act)
            .await;
        self.out.frame(&reply).await
    }

    /// Runs a send through the uplink (with the connection layer's verdict on its frame) and
    /// sends the ack.
    async fn answer(
        &mut self,
        send: &SendDanmaku,
        connection: Result<(), LimitRefusal>,
    ) -> Result<(), End> {
        let ack = uplink::submit(
            &self.chat,
            &self.room,
            self.who.as_deref(),
            send,
            connection,
        )
        .await;
        self.out.frame(&ServerFrame::Ack(ack)).await
    }

    /// Sends a shared batch, first telling the client about any seqs it will not get.
    async fn deliver(&mut self, batch: &DeliveredBatch) -> Result<(), End> {
        if batch.last_seq <= self.last_seq {
            return Ok(());
        }
        if batch.first_seq > self.last_seq + 1 {
            self.out
                .frame(&ServerFrame::Gap {
                    from_seq: self.last_seq + 1,
                    to_seq: batch.first_seq - 1,
                })
                .await?;
        }
        self.out.send(batch.frame(self.out.format)).await?;
        self.last_seq = batch.last_seq;
        Ok(())
    }

    /// Sends `batch`, then any others already waiting in the ring, in one wake-up.
    async fn deliver_pending(
        &mut self,
        batch: &DeliveredBatch,
        membership: &mut Membership,
    ) -> Result<(), End> {
        self.deliver(batch).await?;
        loop {
            match membership.batches.try_recv() {
                Ok(next) => self.deliver(&next).await?,
                Err(TryRecvError::Lagged(missed)) => {
                    return Box::pin(self.lagged(membership, missed)).await
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => return Ok(()),
            }
        }
    }

    /// The socket fell more than the backlog behind: skip to the newest batch (the gap is
    /// told by `deliver`), or close, by `chat.slow_policy`.
    async fn lagged(&mut self, membership: &mut Membership, missed: u64) -> Result<(), End> {
        match self.config.chat.slow_policy {
            SlowPolicy::Close => {
                self.room.count_slow_socket(true);
                Err(self
                    .end(
                        "too_slow",
                        &format!("the socket fell {missed} batches behind; reconnect and resume"),
                        close_code::TRY_AGAIN_LATER,
                    )
                    .await)
            }
            SlowPolicy::Skip => {
                self.room.count_slow_socket(false);
                let mut newest = None;
                loop {
                    match membership.batches.try_recv() {
                        Ok(b) => newest = Some(b),
                        Err(TryRecvError::Lagged(_)) => {}
                        Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                    }
                }
                match newest {
                    Some(b) => self.deliver(&b).await,
                    None => Ok(()),
                }
            }
        }
    }

    async fn read_failed(&mut self, e: tungstenite::Error) -> End {
        match classify(e) {
            ReadError::TooBig(m) => {
                let limit = self.config.chat.max_frame_bytes;
                tracing::info!(reason = %m, "frame too large; closing");
                self.end(
                    "too_large",
                    &format!("frame over {limit} bytes ({m})"),
                    close_code::TOO_BIG,
                )
                .await
            }
            ReadError::NotUtf8(m) => {
                self.end(
                    "bad_frame",
                    &format!("text frame is not UTF-8: {m}"),
                    close_code::INVALID_DATA,
                )
                .await
            }
            ReadError::Other(m) => End::ReadError(m),
        }
    }

    /// The room closed or the server is stopping: say which, and close.
    async fn room_gone(&mut self) -> End {
        if self.chat.is_stopping() {
            self.end(
                "going_away",
                "the server is shutting down; reconnect and resume",
                close_code::GOING_AWAY,
            )
            .await
        } else {
            self.end(
                "room_closed",
                "the room was closed",
                close_code::ROOM_CLOSED,
            )
            .await
        }
    }

    async fn end(&mut self, code: &'static str, message: &str, close: u16) -> End {
        self.out.close_with(code, message, close).await;
        End::Closed(code)
    }
}
