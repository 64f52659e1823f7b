//! The contract between RTMP ingest and whatever consumes a publish (the HLS broadcaster):
//! ingest asks a [`PublishGate`] whether a key may publish, then feeds FLV tag bodies into the
//! returned channel, in batches ([`MediaBatch`]). Dropping the [`Publication`] (unpublish, TCP
//! drop, shutdown) ends it.

use std::net::SocketAddr;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::mpsc;

pub use crate::media::{MediaMessage, StreamMetadata};

/// A publisher's request, as read from `connect` + `publish`.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// The RTMP application (`live` in `rtmp://host/live`).
    pub app: String,
    /// The stream name given to `publish`: the room's stream key.
    pub stream_key: String,
    pub peer: SocketAddr,
}

/// Messages handed over together. A real-time publisher sends about 80 messages a second;
/// waking the consumer for each cost more CPU than the muxing itself, so ingest hands them over
/// in batches: at every urgent message ([`MediaMessage::is_urgent`]), at
/// [`MEDIA_BATCH_MAX`] messages, once the oldest message waited [`MEDIA_BATCH_MAX_AGE`], and
/// before the publish ends.
pub type MediaBatch = Vec<MediaMessage>;

/// The most messages a batch holds (about half a second of a 30 fps stream with audio).
pub const MEDIA_BATCH_MAX: usize = 32;

/// How long a message may wait in a batch (checked after each socket read): HTTP-FLV viewers
/// and LL-HLS parts get media this soon, at about ten writer wake-ups a second.
pub const MEDIA_BATCH_MAX_AGE: Duration = Duration::from_millis(100);

/// An accepted publish: where to send its media.
#[derive(Debug)]
pub struct Publication {
    pub room: String,
    pub session: String,
    /// Bounded: a full channel makes ingest wait, which backs up the publisher's TCP.
    pub media: mpsc::Sender<MediaBatch>,
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
