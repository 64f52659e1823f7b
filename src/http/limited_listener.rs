//! The HTTP/WebSocket accept loop with connection limits (`http.max_connections`,
//! `http.max_connections_per_ip`), as an `axum::serve::Listener` around the `TcpListener`.
//!
//! Every other bound on a connection (body size, WebSocket frame size, idle timeouts) is per
//! connection; this one caps how many there are, so one host cannot hold all the server's file
//! descriptors and memory. A connection past a limit gets a short `503` with a JSON error
//! (what a browser, a player or a WebSocket client shows as a refusal) and is closed, with a log
//! line and `barrage_http_connections_refused_total{reason}`; admitted connections hold a permit
//! until they close (gauge `barrage_http_connections`), and time bounds
//! ([`super::deadline_stream`]: `http.request_timeout_s`, `http.idle_timeout_s`).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout;
use tracing::{debug, warn};

use super::deadline_stream::{DeadlineStream, Deadlines};
use crate::config::HttpConfig;
use crate::conn_limits::{ConnectionLimits, ConnectionPermit, LimitRefusal, LimitScope};

/// Where the limits count open HTTP connections.
const SCOPE: LimitScope = LimitScope {
    section: "http",
    gauge: "barrage_http_connections",
};

/// Refused connections being answered at once; past it they are closed without an answer, so
/// a flood of refused connections costs no more than this many sockets and small tasks.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;
/// How long a refused peer has to send its request before we answer (reading it first means
/// closing does not reset the connection under the answer).
const REFUSAL_READ: Duration = Duration::from_millis(500);
/// Bounds on answering and closing a refused connection.
const REFUSAL_WRITE: Duration = Duration::from_secs(1);
const REFUSAL_LINGER: Duration = Duration::from_secs(1);
const REFUSAL_LINGER_MAX_BYTES: usize = 64 * 1024;
/// Back-off after a failed accept (out of file descriptors, say).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A `TcpListener` that admits connections within the limits.
pub struct LimitedListener {
    inner: TcpListener,
    limits: Arc<ConnectionLimits>,
    /// Time bounds every admitted connection gets.
    deadlines: Deadlines,
    /// Places for refusal answers in flight.
    refusals: Arc<Semaphore>,
}

impl LimitedListener {
    /// Wraps `inner` with the limits of `config`.
    pub fn new(inner: TcpListener, config: &HttpConfig) -> LimitedListener {
        LimitedListener {
            inner,
            limits: ConnectionLimits::new(
                config.max_connections,
                config.max_connections_per_ip,
                SCOPE,
            ),
            deadlines: Deadlines {
                request: Duration::from_secs(config.request_timeout_s),
                idle: Duration::from_secs(config.idle_timeout_s),
            },
            refusals: Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT)),
        }
    }

    /// Answers a refused connection in the background (bounded), or just closes it.
    fn refuse(&self, stream: TcpStream, peer: SocketAddr, refusal: LimitRefusal) {
        metrics::counter!(
            "barrage_http_connections_refused_total",
            "reason" => refusal.reason()
        )
        .increment(1);
        warn!(%peer, reason = refusal.reason(), "http connection refused: {refusal}");
        match self.refusals.clone().try_acquire_owned() {
            Ok(place) => {
                tokio::spawn(answer_refusal(stream, refusal, place));
            }
            Err(_) => drop(stream),
        }
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = LimitedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (LimitedStream, SocketAddr) {
        loop {
            let (stream, peer) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    warn!(%error, "http accept failed; retrying");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            match self.limits.try_admit(peer.ip()) {
                Ok(permit) => {
                    if let Err(error) = stream.set_nodelay(true) {
                        debug!(%peer, %error, "cannot set TCP_NODELAY");
                    }
                    return (
                        LimitedStream {
                            stream: DeadlineStream::new(stream, self.deadlines),
                            _permit: permit,
                        },
                        peer,
                    );
                }
                Err(refusal) => self.refuse(stream, peer, refusal),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// `503` with the API's JSON error shape, then close.
async fn answer_refusal(
    mut stream: TcpStream,
    refusal: LimitRefusal,
    _place: OwnedSemaphorePermit,
) {
    let mut scratch = vec![0u8; 4096];
    let _ = timeout(REFUSAL_READ, stream.read(&mut scratch)).await;
    let body = serde_json::json!({
        "error": {"code": "too_many_connections", "message": refusal.to_string()}
    })
    .to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    if !matches!(
        timeout(REFUSAL_WRITE, stream.write_all(answer.as_bytes())).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let _ = stream.shutdown().await;
    let mut drained = 0;
    let _ = timeout(REFUSAL_LINGER, async {
        while drained < REFUSAL_LINGER_MAX_BYTES {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// An admitted connection: the socket with its time bounds, and its place in the limits
/// (given back on close).
pub struct LimitedStream {
    stream: DeadlineStream<TcpStream>,
    _permit: ConnectionPermit,
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::ListenerExt;

    async fn get_from(source: &str, addr: SocketAddr) -> (TcpStream, String) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        let mut stream = socket.connect(addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
            .await
            .unwrap();
        let mut answer = vec![0u8; 1024];
        let n = timeout(Duration::from_secs(3), stream.read(&mut answer))
            .await
            .unwrap()
            .unwrap();
        (stream, String::from_utf8_lossy(&answer[..n]).into_owned())
    }

    #[tokio::test]
    async fn refuses_past_the_global_and_per_address_limits_with_503() {
        let mut config = crate::config::Config::from_toml_str("").unwrap().http;
        config.max_connections = 3;
        config.max_connections_per_ip = 2;
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let listener = LimitedListener::new(inner, &config).tap_io(|_| {});
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(listener, app).await });

        let (a1, answer) = get_from("127.0.0.1", addr).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let (_a2, _) = get_from("127.0.0.1", addr).await;
        let (_, answer) = get_from("127.0.0.1", addr).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("http.max_connections_per_ip"), "{answer}");
        let (_b1, answer) = get_from("127.0.0.2", addr).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let (_, answer) = get_from("127.0.0.3", addr).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("(http.max_connections)"), "{answer}");
        // A closed connection gives its place back.
        drop(a1);
        let start = tokio::time::Instant::now();
        loop {
            let (_, answer) = get_from("127.0.0.3", addr).await;
            if answer.starts_with("HTTP/1.1 200") {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "place not given back"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
