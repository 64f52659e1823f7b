//! What the media layer takes in: one message of a live publish (stream metadata, or an FLV
//! audio or video tag body at its RTMP timestamp), in arrival order. RTMP ingest produces these,
//! and so does [`super::flv_file`] from a recorded push; the muxer and the broadcast writer
//! consume them. The type lives here, below ingest, so that media depends on nothing above it.

use bytes::Bytes;

use super::codec_support::FlvCodec;

/// What the encoder said about its stream in `@setDataFrame onMetaData`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamMetadata {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub framerate: Option<f64>,
    pub video_kbps: Option<f64>,
    pub audio_kbps: Option<f64>,
    pub encoder: Option<String>,
    /// `videocodecid` / `audiocodecid`: what the encoder says it will send.
    pub video_codec: Option<FlvCodec>,
    pub audio_codec: Option<FlvCodec>,
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
    /// Ingest refused the publish mid-stream (a codec this server does not carry, say why):
    /// the last message of the publish. The broadcast ends at once, waiting for no reconnect.
    Refused(String),
}

impl MediaMessage {
    /// Whether the consumer should see this at once rather than with the next batch: stream
    /// metadata, codec configuration, and video keyframes (which close HLS segments, so the
    /// playlist is not held back).
    pub fn is_urgent(&self) -> bool {
        match self {
            MediaMessage::Metadata(_) | MediaMessage::Refused(_) => true,
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
