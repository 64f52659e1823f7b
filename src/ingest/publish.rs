//! The contract between RTMP ingest and whatever consumes a publish (the HLS broadcaster):
//! ingest asks a [`PublishGate`] whether a key may publish, then feeds FLV tag bodies into the
//! returned channel, in batches ([`MediaBatch`]). Dropping the [`Publication`] (unpublish, TCP
//! drop, shutdown) ends it.

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

impl MediaMessage {
    /// Whether the consumer should see this at once rather than with the next batch: stream
    /// metadata, codec configuration, and video keyframes (which close HLS segments, so the
    /// playlist is not held back).
    pub fn is_urgent(&self) -> bool {
        match self {
            MediaMessage::Metadata(_) => true,
            // FLV video: frame type 1 = keyframe in the high nibble; AVC packet type 0 = config.
            MediaMessage::Video { body, .. } => {
                body.first().is_some_and(|b| b >> 4 == 1) || body.get(1) == Some(&0)
            }
            // AAC packet type 0 = AudioSpecificConfig.
            MediaMessage::Audio { body, .. } => {
                body.first().is_some_and(|b| b >> 4 == 10) && body.get(1) == Some(&0)
            }
        }
    }
}

/// Messages handed over together. A real-time publisher sends about 80 messages a second;
/// waking the consumer for each cost more CPU than the muxing itself, so ingest hands them over
/// in batches: at every urgent message ([`MediaMessage::is_urgent`]), at
/// [`MEDIA_BATCH_MAX`] messages, and before the publish ends.
pub type MediaBatch = Vec<MediaMessage>;

/// The most messages a batch holds (about half a second of a 30 fps stream with audio).
pub const MEDIA_BATCH_MAX: usize = 32;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn video(body: &[u8]) -> MediaMessage {
        MediaMessage::Video {
            timestamp: 0,
            body: Bytes::copy_from_slice(body),
        }
    }

    fn audio(body: &[u8]) -> MediaMessage {
        MediaMessage::Audio {
            timestamp: 0,
            body: Bytes::copy_from_slice(body),
        }
    }

    #[test]
    fn keyframes_configs_and_metadata_are_handed_over_at_once() {
        assert!(MediaMessage::Metadata(StreamMetadata::default()).is_urgent());
        assert!(
            video(&[0x17, 0x00, 0, 0, 0]).is_urgent(),
            "AVC sequence header"
        );
        assert!(video(&[0x17, 0x01, 0, 0, 0]).is_urgent(), "keyframe");
        assert!(!video(&[0x27, 0x01, 0, 0, 0]).is_urgent(), "inter frame");
        assert!(audio(&[0xaf, 0x00, 0x12, 0x10]).is_urgent(), "AAC config");
        assert!(!audio(&[0xaf, 0x01, 0x21]).is_urgent(), "AAC frame");
        assert!(!video(&[]).is_urgent() && !audio(&[]).is_urgent());
    }
}
