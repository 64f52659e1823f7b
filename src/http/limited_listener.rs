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
//!
//! A connection that has not yet sent a complete request head is unauthenticated
//! (`http.max_unauthenticated`): a new connection that would pass a limit evicts the oldest such
//! one instead of being refused (see [`crate::conn_limits`]), so silent sockets never keep a
//! viewer out; the evicted connection's next read fails and hyper closes it.

use std::future::Future;
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
use tokio_util::sync::WaitForCancellationFutureOwned;
use tracing::{debug, warn};

use super::deadline_stream::{DeadlineStream, Deadlines};
use crate::config::HttpConfig;
use crate::conn_limits::{
    ConnectionLimits, ConnectionPermit, LimitRefusal, LimitScope, LimitSizes,
};

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
                LimitSizes {
                    max_connections: config.max_connections,
                    max_per_ip: config.max_connections_per_ip,
                    max_unauthenticated: config.max_unauthenticated,
                },
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
                    let first_request_by = tokio::time::sleep(self.deadlines.request);
                    let stream = DeadlineStream::new(stream, self.deadlines);
                    return (LimitedStream::new(stream, permit, first_request_by), peer);
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
/// (given back on close). Until a complete request head has been read it is unauthenticated:
/// it may be evicted for a new connection, and its reads then fail.
pub struct LimitedStream {
    stream: DeadlineStream<TcpStream>,
    permit: ConnectionPermit,
    /// Resolves when the permit is evicted; `None` once the connection proved itself.
    evicted: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    /// A silent connection's deadline for its first complete request head
    /// (`http.request_timeout_s` from accept; the idle timeout would let it sit for minutes).
    first_request_by: Pin<Box<tokio::time::Sleep>>,
    /// Where the request head's end (`\r\n\r\n`) is being looked for.
    head_end: HeadEnd,
}

impl LimitedStream {
    fn new(
        stream: DeadlineStream<TcpStream>,
        permit: ConnectionPermit,
        first_request_by: tokio::time::Sleep,
    ) -> LimitedStream {
        LimitedStream {
            stream,
            evicted: Some(Box::pin(permit.evicted().clone().cancelled_owned())),
            first_request_by: Box::pin(first_request_by),
            permit,
            head_end: HeadEnd::default(),
        }
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(evicted) = &mut this.evicted {
            if evicted.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "evicted before a complete request to make room for a new connection",
                )));
            }
            if this.first_request_by.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no complete request within http.request_timeout_s of connecting",
                )));
            }
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if this.evicted.is_some() && this.head_end.saw_end(&buf.filled()[before..]) {
            this.permit.authenticated();
            this.evicted = None;
        }
        polled
    }
}

/// Finds `\r\n\r\n` across reads: the end of an HTTP/1 request head (and of the HTTP/2
/// preface), after which a connection counts as a real client.
#[derive(Debug, Default)]
struct HeadEnd {
    /// How many bytes of `\r\n\r\n` the previous read ended with.
    matched: usize,
}

impl HeadEnd {
    const END: &'static [u8] = b"\r\n\r\n";

    /// Feeds `bytes`; true once the end has been seen.
    fn saw_end(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            self.matched = if b == Self::END[self.matched] {
                self.matched + 1
            } else if b == b'\r' {
                1
            } else {
                0
            };
            if self.matched == Self::END.len() {
                return true;
            }
        }
        false
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

    #[test]
    fn the_request_head_end_is_found_across_reads() {
        let mut head = HeadEnd::default();
        assert!(!head.saw_end(b"GET / HTTP/1.1\r\nhost: t\r"));
        assert!(!head.saw_end(b"\n\r"));
        assert!(head.saw_end(b"\nrest"));
        let mut head = HeadEnd::default();
        assert!(!head.saw_end(b"\r\r\n\r"));
        assert!(head.saw_end(b"\n"));
    }

    /// Before: silent connections held their places for the whole idle timeout, so enough of
    /// them (from many addresses, or one IPv6 /64) kept every viewer out. Now the oldest silent
    /// one is closed for each new connection and a real request is answered.
    #[tokio::test]
    async fn silent_connections_never_keep_a_request_out() {
        let mut config = crate::config::Config::from_toml_str("").unwrap().http;
        config.max_connections = 8;
        config.max_connections_per_ip = 4;
        config.max_unauthenticated = 4;
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let listener = LimitedListener::new(inner, &config);
        let limits = listener.limits.clone();
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(listener.tap_io(|_| {}), app).await });
        let mut silent = Vec::new();
        for i in 0..40 {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket
                .bind(format!("127.0.{}.{}:0", i / 4, i % 4 + 1).parse().unwrap())
                .unwrap();
            silent.push(socket.connect(addr).await.unwrap());
        }
        let (_kept, answer) = get_from("127.0.200.1", addr).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(limits.unauthenticated() <= 4);
        // The evicted ones were closed by the server: reading them ends.
        let mut closed = 0;
        for stream in &mut silent[..30] {
            let mut byte = [0u8; 1];
            if let Ok(Ok(0) | Err(_)) =
                timeout(Duration::from_secs(3), stream.read(&mut byte)).await
            {
                closed += 1;
            }
        }
        assert_eq!(closed, 30, "the oldest silent connections were closed");
    }

    /// A silent connection is closed `http.request_timeout_s` after connecting (not after the
    /// idle timeout), even with room to spare.
    #[tokio::test]
    async fn a_silent_connection_is_closed_after_the_request_timeout() {
        let mut config = crate::config::Config::from_toml_str("").unwrap().http;
        config.request_timeout_s = 1;
        config.idle_timeout_s = 3600;
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let listener = LimitedListener::new(inner, &config).tap_io(|_| {});
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut byte = [0u8; 1];
        let read = timeout(Duration::from_secs(30), silent.read(&mut byte)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "closed by the server: {read:?}"
        );
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
