//! The accept loop: admits connections within the limits, runs a [`Session`] task for each,
//! and on shutdown stops accepting, ends every session (dropping its publication) and waits a
//! bounded time for them. A connection without an accepted publish may be evicted (oldest
//! first) to make room for a new one (`rtmp.max_unauthenticated`, see [`crate::conn_limits`]):
//! its session ends at once.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

use super::low_water::{LowWater, SocketLowWater};
use super::publish::PublishGate;
use super::session::Session;
use super::telemetry;
use crate::config::RtmpConfig;
use crate::conn_limits::{ConnectionLimits, LimitSizes};

/// How long shutdown waits for sessions to end after telling them to.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Back-off after a failed accept (out of file descriptors, say): doubles up to the maximum.
const ACCEPT_BACKOFF_START: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Accepts RTMP connections and hands each to a session task.
pub struct Listener {
    listener: TcpListener,
    config: Arc<RtmpConfig>,
    /// Decides publishes; shared by every session.
    gate: Arc<dyn PublishGate>,
    /// Global and per-address connection limits.
    limits: Arc<ConnectionLimits>,
    /// Cancelled once: stop accepting and end every session.
    shutdown: CancellationToken,
    /// Every session task, so shutdown can wait for them.
    sessions: TaskTracker,
}

impl Listener {
    /// A listener with limits from `config`; nothing runs until [`Listener::run`].
    pub fn new(
        listener: TcpListener,
        config: Arc<RtmpConfig>,
        gate: Arc<dyn PublishGate>,
        shutdown: CancellationToken,
    ) -> Listener {
        Listener {
            limits: ConnectionLimits::new(
                LimitSizes {
                    max_connections: config.max_connections,
                    max_per_ip: config.max_connections_per_ip,
                    max_unauthenticated: config.max_unauthenticated,
                },
                telemetry::CONNECTION_SCOPE,
            ),
            listener,
            config,
            gate,
            shutdown,
            sessions: TaskTracker::new(),
        }
    }

    /// Runs until shutdown, then waits (at most [`SHUTDOWN_GRACE`]) for sessions to end.
    pub async fn run(self) {
        let local = self.listener.local_addr().ok();
        info!(listen = ?local, app = %self.config.app, "rtmp ingest listening");
        let mut backoff = ACCEPT_BACKOFF_START;
        loop {
            let accepted = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok((socket, peer)) => {
                    backoff = ACCEPT_BACKOFF_START;
                    self.admit(socket, peer);
                }
                Err(error) => {
                    warn!(%error, retry_in = ?backoff, "rtmp accept failed; retrying");
                    tokio::select! {
                        _ = self.shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
            }
        }
        drop(self.listener);
        self.sessions.close();
        let open = self.sessions.len();
        if open > 0 {
            info!(sessions = open, "rtmp ingest stopping: ending sessions");
        }
        if tokio::time::timeout(SHUTDOWN_GRACE, self.sessions.wait())
            .await
            .is_err()
        {
            warn!(
                sessions = self.sessions.len(),
                "rtmp sessions still running after {SHUTDOWN_GRACE:?}; leaving them"
            );
        }
        info!("rtmp ingest stopped");
    }

    /// Starts a session, or closes the socket at once when a limit is reached.
    fn admit(&self, socket: TcpStream, peer: SocketAddr) {
        let permit = match self.limits.try_admit(peer.ip()) {
            Ok(permit) => permit,
            Err(refusal) => {
                telemetry::connection_refused(refusal.reason());
                warn!(%peer, reason = refusal.reason(), "rtmp connection refused: {refusal}");
                drop(socket);
                return;
            }
        };
        if let Err(error) = socket.set_nodelay(true) {
            debug!(%peer, %error, "cannot set TCP_NODELAY");
        }
        let span = tracing::info_span!("rtmp", %peer, room = tracing::field::Empty);
        let gather = Duration::from_millis(self.config.gather_ms);
        let low_water = (!gather.is_zero())
            .then(|| LowWater::new(Box::new(SocketLowWater::new(socket.as_raw_fd())), gather));
        let evicted = permit.evicted().clone();
        let mut session =
            Session::new(socket, peer, self.config.clone(), self.gate.clone()).with_permit(permit);
        if let Some(low_water) = low_water {
            session = session.with_low_water(low_water);
        }
        let shutdown = self.shutdown.clone();
        self.sessions
            .spawn(run_session(session, shutdown, evicted).instrument(span));
    }
}

/// Runs one session until it ends, shutdown, or its eviction (while it has no accepted
/// publish, to make room for a new connection); logs how it ended. The session holds the
/// connection's permit, released when it is dropped here (or unwinds).
async fn run_session(session: Session, shutdown: CancellationToken, evicted: CancellationToken) {
    debug!("rtmp connection accepted");
    let outcome = tokio::select! {
        _ = shutdown.cancelled() => {
            info!("rtmp connection closed: server is shutting down");
            return;
        }
        _ = evicted.cancelled() => {
            info!(
                "rtmp connection closed: evicted (no publish yet) to make room for a new \
                 connection (rtmp.max_unauthenticated, rtmp.max_connections_per_ip)"
            );
            return;
        }
        outcome = session.run() => outcome,
    };
    match outcome {
        Ok(end) => debug!(?end, "rtmp connection closed"),
        Err(error) => match error.kind() {
            Some(kind) => {
                telemetry::protocol_error(kind);
                warn!(kind, %error, "rtmp connection closed: {error}");
            }
            None => info!(%error, "rtmp connection closed: {error}"),
        },
    }
}
