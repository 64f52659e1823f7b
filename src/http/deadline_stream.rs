//! Time bounds for one HTTP/WebSocket connection, kept at the byte level because `axum::serve`
//! gives hyper no timer (so hyper's own header-read timeout is off).
//!
//! Two deadlines, whichever applies:
//! - request: once the peer has sent bytes the server has not answered (no byte written since),
//!   the answer must start within `http.request_timeout_s`. This closes peers that trickle a
//!   request head or body forever (slowloris), each holding a connection place and a buffer.
//! - idle: with nothing unanswered, some byte must move, either way, within
//!   `http.idle_timeout_s`. This closes keep-alive connections nobody uses and dead peers; a
//!   long download and a WebSocket that receives batches are not idle (the server writes), and
//!   WebSocket clients send heartbeats well within it.
//!
//! Past a deadline the next read fails with `TimedOut`, and hyper closes the connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The two bounds (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    pub request: Duration,
    pub idle: Duration,
}

/// A byte stream with [`Deadlines`].
pub struct DeadlineStream<S> {
    inner: S,
    deadlines: Deadlines,
    /// When the peer sent bytes that no write has answered yet.
    unanswered_since: Option<Instant>,
    /// The last time a byte moved either way.
    last_activity: Instant,
    /// Wakes a pending read at the deadline.
    timer: Pin<Box<Sleep>>,
    /// A deadline passed (counted once).
    expired: bool,
}

impl<S> DeadlineStream<S> {
    /// Wraps a stream; the idle deadline starts now.
    pub fn new(inner: S, deadlines: Deadlines) -> DeadlineStream<S> {
        let now = Instant::now();
        DeadlineStream {
            inner,
            deadlines,
            unanswered_since: None,
            last_activity: now,
            timer: Box::pin(tokio::time::sleep_until(now + deadlines.idle)),
            expired: false,
        }
    }

    /// The deadline in force, and its name for the error.
    fn deadline(&self) -> (Instant, &'static str) {
        match self.unanswered_since {
            Some(since) => (since + self.deadlines.request, "http.request_timeout_s"),
            None => (
                self.last_activity + self.deadlines.idle,
                "http.idle_timeout_s",
            ),
        }
    }

    /// The error that ends the connection; counted in
    /// `barrage_http_connections_timed_out_total{deadline}` and logged once.
    fn expire(&mut self, what: &'static str) -> io::Error {
        if !self.expired {
            self.expired = true;
            metrics::counter!("barrage_http_connections_timed_out_total", "deadline" => what)
                .increment(1);
            tracing::debug!(deadline = what, "http connection closed: a deadline passed");
        }
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connection closed: past {what}"),
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for DeadlineStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let (deadline, what) = self.deadline();
        if Instant::now() >= deadline {
            return Poll::Ready(Err(self.expire(what)));
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let now = Instant::now();
                    self.last_activity = now;
                    self.unanswered_since.get_or_insert(now);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let this = &mut *self;
                if this.timer.deadline() != deadline {
                    this.timer.as_mut().reset(deadline);
                }
                match this.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(this.expire(what))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> DeadlineStream<S> {
    fn wrote(&mut self, result: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = result {
            if *n > 0 {
                self.last_activity = Instant::now();
                self.unanswered_since = None;
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for DeadlineStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(&result);
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&result);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // Real time (the crate's tokio has no test-util): short bounds.
    const DEADLINES: Deadlines = Deadlines {
        request: Duration::from_millis(400),
        idle: Duration::from_millis(1200),
    };

    #[tokio::test]
    async fn a_trickled_request_is_cut_at_the_request_deadline() {
        let (server, mut peer) = tokio::io::duplex(1024);
        let mut server = DeadlineStream::new(server, DEADLINES);
        let start = Instant::now();
        let trickle = tokio::spawn(async move {
            for _ in 0..100 {
                if peer.write_all(b"G").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peer
        });
        let mut buf = [0u8; 16];
        let error = loop {
            if let Err(e) = server.read(&mut buf).await {
                break e;
            }
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(error.to_string().contains("request_timeout"), "{error}");
        let took = start.elapsed();
        assert!(took >= DEADLINES.request, "{took:?}");
        assert!(took < DEADLINES.idle, "{took:?}");
        trickle.abort();
    }

    #[tokio::test]
    async fn answers_reset_the_request_deadline_and_idle_ends_it() {
        let (server, mut peer) = tokio::io::duplex(1024);
        let mut server = DeadlineStream::new(server, DEADLINES);
        let mut buf = [0u8; 16];
        // Request, answer 250 ms later, again: never 400 ms unanswered, so never cut.
        for _ in 0..4 {
            peer.write_all(b"ping").await.unwrap();
            server.read_exact(&mut buf[..4]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(250)).await;
            server.write_all(b"pong").await.unwrap();
            peer.read_exact(&mut buf[..4]).await.unwrap();
        }
        // Then nothing either way: closed at the idle deadline, not the request one.
        let idle_from = Instant::now();
        let error = server.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(error.to_string().contains("idle_timeout"), "{error}");
        let took = idle_from.elapsed();
        assert!(
            took >= DEADLINES.idle - Duration::from_millis(50),
            "{took:?}"
        );
    }
}
