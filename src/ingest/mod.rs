//! RTMP ingest: accepts publishers (OBS, ffmpeg) and hands their media to a [`PublishGate`].
//!
//! Built on the lower layers of the `rtmp` crate (handshake, chunk unpacketizer, message
//! parser, writers) driven from our own session loop, because its high-level server can be
//! aborted by unauthenticated peers (see `/work/shared/CRATE-NOTES.md`). Layers, outside in:
//! `listener` (accept, limits, shutdown) -> `session` (one connection) -> `handshake`,
//! `reader` ([`chunk_guard`] + the crate's unpacketizer) -> `message` ([`amf0_guard`] + the
//! crate's parser) -> `commands`, `metadata`; answers go through `replies` into an `outbox`
//! the session writes with timeouts. The two guards are public so fuzz targets can reach them.

pub mod amf0_guard;
pub mod chunk_guard;
mod commands;
mod error;
mod handshake;
mod limits;
mod listener;
mod message;
mod metadata;
mod outbox;
pub mod publish;
mod reader;
mod replies;
mod session;
mod telemetry;

pub use error::{IngestError, ProtocolError};
pub use publish::*;

use std::sync::Arc;

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
