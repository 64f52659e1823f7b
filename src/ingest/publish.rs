//! The contract between RTMP ingest and whatever consumes a publish (the HLS broadcaster):
//! ingest asks a [`PublishGate`] whether a key may publish, then feeds FLV tag bodies into the
//! returned channel. Dropping the [`Publication`] (unpublish, TCP drop, shutdown) ends it.

use std::net::SocketAddr;

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

/// A publisher's request, as read from `connect` + `publish`.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// The RTMP application (`live` in `rtmp://host/live`).
    pub app: String,
    /// The stream name given to `publish`: the room's stream key.
    pub stream_key: String,
    pub peer: SocketAddr,
}

/// What the encoder said about its stream in `@setDataFrame onMetaData`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamMetadata {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub framerate: Option<f64>,
    pub video_kbps: Option<f64>,
    pub audio_kbps: Option<f64>,
    pub encoder: Option<String>,
}

/// One message of a live publish, in arrival order.
#[derive(Debug, Clone)]
pub enum MediaMessage {
    Metadata(StreamMetadata),
    /// An FLV video tag body (first byte: frame type and codec id) at an RTMP timestamp (ms,
    /// 32-bit, may wrap).
    Video {
        timestamp: u32,
        body: Bytes,
    },
    /// An FLV audio tag body (first byte: sound format) at an RTMP timestamp.
    Audio {
        timestamp: u32,
        body: Bytes,
    },
}

/// An accepted publish: where to send its media.
#[derive(Debug)]
pub struct Publication {
    pub room: String,
    pub session: String,
    /// Bounded: a full channel makes ingest wait, which backs up the publisher's TCP.
    pub media: mpsc::Sender<MediaMessage>,
}

/// Why a publish was refused; ingest answers `NetStream.Publish.BadName` with this text.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishRefusal {
    #[error("unknown stream key")]
    UnknownKey,
    #[error("room {room} is already live")]
    AlreadyLive { room: String },
    #[error("wrong application `{app}` (publish to rtmp://HOST:PORT/{expected})")]
    WrongApp { app: String, expected: String },
    #[error("server is shutting down")]
    ShuttingDown,
}

impl PublishRefusal {
    /// Metric label for refusals by reason.
    pub fn reason(&self) -> &'static str {
        match self {
            PublishRefusal::UnknownKey => "unknown_key",
            PublishRefusal::AlreadyLive { .. } => "already_live",
            PublishRefusal::WrongApp { .. } => "wrong_app",
            PublishRefusal::ShuttingDown => "shutting_down",
        }
    }
}

/// Decides publishes and receives their media.
pub trait PublishGate: Send + Sync + 'static {
    /// Called once per `publish`, on the session's task: it may ask other nodes (bounded in
    /// time), never block the thread.
    fn open<'a>(
        &'a self,
        request: &'a PublishRequest,
    ) -> BoxFuture<'a, Result<Publication, PublishRefusal>>;
}

/// A gate that decides at once, without asking anyone (test and fuzz gates).
pub trait ImmediateGate: Send + Sync + 'static {
    fn decide(&self, request: &PublishRequest) -> Result<Publication, PublishRefusal>;
}

impl<G: ImmediateGate> PublishGate for G {
    fn open<'a>(
        &'a self,
        request: &'a PublishRequest,
    ) -> BoxFuture<'a, Result<Publication, PublishRefusal>> {
        Box::pin(std::future::ready(self.decide(request)))
    }
}
