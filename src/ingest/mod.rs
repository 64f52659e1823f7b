//! RTMP ingest: accepts publishers (OBS, ffmpeg) and hands their media to a [`PublishGate`].
//!
//! Built on the lower layers of the `rtmp` crate (handshake, chunk unpacketizer, message
//! parser, writers) driven from our own session loop, because its high-level server can be
//! aborted by unauthenticated peers (see docs/RTMP-CRATE.md). Layers, outside in:
//! `listener` (accept, limits, shutdown) -> `session` (one connection) -> `handshake`,
//! `reader` ([`chunk_guard`] + the crate's unpacketizer) -> `message` ([`amf0_guard`] + the
//! crate's parser) -> `commands`, `metadata`; answers go through `replies` into an `outbox`
//! the session writes with timeouts. The two guards are public so fuzz targets can reach them.

pub mod amf0_guard;
pub mod chunk_guard;
mod commands;
mod error;
mod handshake;
mod listener;
pub mod low_water;
pub(crate) mod message;
mod metadata;
mod outbox;
pub mod publish;
pub(crate) mod reader;
mod replies;
mod session;
mod telemetry;

pub use error::{in_contained_crate_step, IngestError, ProtocolError};
pub use publish::*;
pub use session::SessionEnd;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::RtmpConfig;

/// Accepts RTMP publishers on `listener` until `shutdown`, then ends every session (their
/// publications are dropped, so consumers finalise) and returns within a few seconds.
pub async fn serve(
    listener: TcpListener,
    config: Arc<RtmpConfig>,
    gate: Arc<dyn PublishGate>,
    shutdown: CancellationToken,
) {
    listener::Listener::new(listener, config, gate, shutdown)
        .run()
        .await
}

/// Serves one already-connected peer over any byte stream, exactly as the listener would (no
/// connection limits: those are the listener's). Fuzz targets and tests use it to run the
/// whole session loop, handshake included, from memory.
pub async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: SocketAddr,
    config: Arc<RtmpConfig>,
    gate: Arc<dyn PublishGate>,
) -> Result<SessionEnd, IngestError> {
    session::Session::new(stream, peer, config, gate)
        .run()
        .await
}
