//! Helpers for the chat integration tests: an in-process server on ephemeral ports, real
//! WebSocket clients (tokio-tungstenite) speaking JSON or protobuf, and the admin API.
#![allow(dead_code)]

use std::time::Duration;

use barrage::app::RunningServer;
use barrage::auth::Role;
use barrage::chat::codec::{self, Encoded, Format};
use barrage::chat::protocol::{ClientFrame, Event, SendDanmaku, ServerFrame, Welcome, WHITE};
use barrage::config::{Config, RoomConfig};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Long enough for a slow CI machine, short enough that a bug fails instead of hanging.
pub const WAIT: Duration = Duration::from_secs(20);

/// A server with its data folder and admin key.
pub struct TestServer {
    pub server: RunningServer,
    pub http: String,
    pub ws: String,
    pub admin_key: String,
    pub api: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// Starts a server on 127.0.0.1:0 with rooms `demo` and `other`, after `tweak` edits the config.
/// A broadcast ends with its publish (`rtmp.reconnect_grace_s = 0`), as with `test_config`.
pub async fn start(tweak: impl FnOnce(&mut Config)) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::from_toml_str("").expect("default config");
    config.data_dir = dir.path().to_path_buf();
    config.rtmp.reconnect_grace_s = 0;
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.rtmp.listen = "127.0.0.1:0".parse().unwrap();
    config.rooms.push(RoomConfig {
        id: "other".into(),
        title: String::new(),
        stream_key: String::new(),
        host_key: String::new(),
        host_gifts: None,
    });
    tweak(&mut config);
    serve(config, dir).await
}

/// Starts a server on exactly `config` (its own data folder, kept by the caller).
pub async fn start_config(config: Config) -> TestServer {
    serve(config, tempfile::tempdir().expect("tempdir")).await
}

/// Starts `config`, keeping `dir` for as long as the server is held.
async fn serve(config: Config, dir: tempfile::TempDir) -> TestServer {
    let server = barrage::app::start(config).await.expect("server starts");
    let addr = server.http_addr;
    TestServer {
        admin_key: server.state.secrets.admin_key.clone(),
        http: format!("http://{addr}"),
        ws: format!("ws://{addr}"),
        api: reqwest::Client::new(),
        server,
        _dir: dir,
    }
}

impl TestServer {
    /// A token for `user` in `room`, signed with the server's secret.
    pub fn token(&self, user: &str, room: &str) -> String {
        self.server.state.tokens.mint(
            user,
            &format!("name-{user}"),
            Role::Viewer,
            Some(room),
            Duration::from_secs(600),
        )
    }

    /// A token of `role` for `user`, for `room` (None: no room claim), valid `ttl`.
    pub fn token_as(&self, user: &str, role: Role, room: Option<&str>, ttl: Duration) -> String {
        self.server
            .state
            .tokens
            .mint(user, &format!("name-{user}"), role, room, ttl)
    }

    /// A config room's host key (generated into secrets.toml at start).
    pub fn host_key(&self, room: &str) -> String {
        self.server.state.secrets.host_keys[room].clone()
    }

    /// An API call with `bearer` (None: no Authorization header); status and JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self.api.request(method, format!("{}{path}", self.http));
        if let Some(key) = bearer {
            req = req.bearer_auth(key);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("api call");
        let status = resp.status().as_u16();
        let value = resp.json().await.unwrap_or(serde_json::Value::Null);
        (status, value)
    }

    /// An admin API call; returns status and JSON body (Null when not JSON).
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        self.call(method, path, Some(&self.admin_key), body).await
    }

    pub async fn system(&self, room: &str, text: &str) {
        let (status, body) = self
            .admin(
                reqwest::Method::POST,
                &format!("/api/rooms/{room}/system"),
                Some(serde_json::json!({ "text": text })),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }

    pub async fn stats(&self, room: &str) -> serde_json::Value {
        let resp = self
            .api
            .get(format!("{}/api/rooms/{room}/stats", self.http))
            .send()
            .await
            .expect("stats");
        assert_eq!(resp.status().as_u16(), 200);
        resp.json().await.expect("stats json")
    }

    /// Polls stats until the room's last seq reaches `seq`.
    pub async fn wait_seq(&self, room: &str, seq: u64) {
        tokio::time::timeout(WAIT, async {
            loop {
                if self.stats(room).await["last_seq"].as_u64().unwrap_or(0) >= seq {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("room reached the seq in time");
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// What a client read.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Frame(ServerFrame),
    Close(u16, String),
}

/// A WebSocket client speaking one format.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub format: Format,
}

/// Small buffers, as the server uses, so a thousand clients fit in the test process.
pub fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

impl Client {
    pub async fn connect(
        server: &TestServer,
        room: &str,
        token: Option<&str>,
        format: Format,
    ) -> Client {
        let mut url = format!("{}/ws/{room}?format={}", server.ws, format.as_str());
        if let Some(t) = token {
            url.push_str(&format!("&token={t}"));
        }
        let (ws, _) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::connect_async_with_config(url, Some(client_config()), true),
        )
        .await
        .expect("connect in time")
        .expect("websocket handshake");
        Client { ws, format }
    }

    /// Connects with a tiny kernel receive buffer, so a client that stops reading makes the
    /// server's writes block almost at once (a genuinely slow reader).
    pub async fn connect_slow(server: &TestServer, room: &str, format: Format) -> Client {
        let url = format!("{}/ws/{room}?format={}", server.ws, format.as_str());
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let stream = socket
            .connect(server.server.http_addr)
            .await
            .expect("tcp connect");
        let (ws, _) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::client_async_with_config(
                url,
                MaybeTlsStream::Plain(stream),
                Some(client_config()),
            ),
        )
        .await
        .expect("handshake in time")
        .expect("websocket handshake");
        Client { ws, format }
    }

    /// Connects, says hello and returns the welcome.
    pub async fn join(
        server: &TestServer,
        room: &str,
        token: Option<&str>,
        format: Format,
    ) -> (Client, Welcome) {
        let mut c = Client::connect(server, room, token, format).await;
        let welcome = c.hello(None).await;
        (c, welcome)
    }

    pub async fn send_frame(&mut self, frame: &ClientFrame) {
        let msg = match codec::encode_client(frame, self.format) {
            Encoded::Text(t) => Message::Text(t.into()),
            Encoded::Binary(b) => Message::Binary(b),
        };
        self.ws.send(msg).await.expect("send");
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.ws.send(msg).await.expect("send raw");
    }

    pub async fn hello(&mut self, resume_from: Option<u64>) -> Welcome {
        self.send_frame(&ClientFrame::Hello { resume_from }).await;
        match self.next().await {
            Incoming::Frame(ServerFrame::Welcome(w)) => w,
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    pub async fn say(&mut self, client_id: u64, text: &str) {
        self.send_frame(&ClientFrame::Send(SendDanmaku {
            client_id,
            text: text.to_string(),
            color: WHITE,
            mode: Default::default(),
            stream_ms: None,
        }))
        .await;
    }

    /// The next frame or close (panics on timeout or a dead connection without a close).
    pub async fn next(&mut self) -> Incoming {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame in time");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    return Incoming::Frame(
                        codec::decode_server_text(t.as_str()).expect("server JSON"),
                    )
                }
                Some(Ok(Message::Binary(b))) => {
                    return Incoming::Frame(
                        codec::decode_server_binary(&b).expect("server protobuf"),
                    )
                }
                Some(Ok(Message::Close(frame))) => {
                    return match frame {
                        Some(f) => Incoming::Close(u16::from(f.code), f.reason.to_string()),
                        None => Incoming::Close(1005, String::new()),
                    }
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("connection failed: {e}"),
                None => panic!("connection ended without a close frame"),
            }
        }
    }

    /// Reads until `pick` returns Some, skipping other frames.
    pub async fn until<T>(&mut self, mut pick: impl FnMut(&ServerFrame) -> Option<T>) -> T {
        loop {
            match self.next().await {
                Incoming::Frame(f) => {
                    if let Some(v) = pick(&f) {
                        return v;
                    }
                }
                Incoming::Close(code, reason) => panic!("closed {code} {reason} while waiting"),
            }
        }
    }

    /// The ack for `client_id`.
    pub async fn ack(&mut self, client_id: u64) -> barrage::chat::protocol::Ack {
        self.until(|f| match f {
            ServerFrame::Ack(a) if a.client_id == client_id => Some(*a),
            _ => None,
        })
        .await
    }

    /// Sends a danmaku and returns its ack.
    pub async fn say_and_ack(
        &mut self,
        client_id: u64,
        text: &str,
    ) -> barrage::chat::protocol::Ack {
        self.say(client_id, text).await;
        self.ack(client_id).await
    }

    /// Events from batches until `stop` holds for one of them; returns all events read.
    pub async fn events_until(&mut self, mut stop: impl FnMut(&Event) -> bool) -> Vec<Event> {
        let mut all = Vec::new();
        loop {
            if let Incoming::Frame(ServerFrame::Batch { events }) = self.next().await {
                let done = events.iter().any(&mut stop);
                all.extend(events);
                if done {
                    return all;
                }
            }
        }
    }

    /// The next error frame and the close after it.
    pub async fn error_and_close(&mut self) -> (String, u16) {
        let code = self
            .until(|f| match f {
                ServerFrame::Error { code, .. } => Some(code.clone()),
                _ => None,
            })
            .await;
        loop {
            match self.next().await {
                Incoming::Close(close, _) => return (code, close),
                Incoming::Frame(_) => continue,
            }
        }
    }
}
