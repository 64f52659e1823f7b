//! What a [`super::muxer::StreamMuxer`] hands back for each tag: produced objects and
//! stream facts ([`MuxEvent`]), frames it had to drop ([`DropReason`]), and tags it could not
//! use ([`MediaError`]). The caller stores the objects and logs the rest once per kind.

use super::aac::AacConfigError;
use super::flv::TagError;
use super::fmp4::{Fmp4Error, InitSegment};
use super::segmenter::{Part, Segment};
use super::sps::SpsError;

/// Why a tag was not used; the caller logs it once per kind.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error(transparent)]
    Tag(#[from] TagError),
    #[error("bad AAC config: {0}")]
    AacConfig(#[from] AacConfigError),
    #[error(transparent)]
    Encode(#[from] Fmp4Error),
}

impl MediaError {
    /// A stable label, for metrics and once-per-kind logging.
    pub fn kind(&self) -> &'static str {
        match self {
            MediaError::Tag(e) => e.kind(),
            MediaError::AacConfig(_) => "bad_aac_config",
            MediaError::Encode(_) => "encode",
        }
    }
}

/// A frame that was valid but could not be used where it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    VideoBeforeConfig,
    AudioBeforeConfig,
    VideoBeforeKeyframe,
    /// Audio older than the first keyframe (segments start at a keyframe).
    AudioBeforeVideo,
    /// The track appeared after the init segment was written without it.
    TrackNotInInit,
    /// The audio config changed mid-stream (not supported: the frames would not decode).
    AudioConfigChanged,
    /// A new video config whose NAL length size differs from the init segment's.
    VideoConfigIncompatible,
    /// Audio timestamps fell behind the frames already counted.
    AudioEarly,
}

impl DropReason {
    /// A stable label, for metrics and once-per-reason logging.
    pub fn kind(self) -> &'static str {
        match self {
            DropReason::VideoBeforeConfig => "video_before_config",
            DropReason::AudioBeforeConfig => "audio_before_config",
            DropReason::VideoBeforeKeyframe => "video_before_keyframe",
            DropReason::AudioBeforeVideo => "audio_before_video",
            DropReason::TrackNotInInit => "track_not_in_init",
            DropReason::AudioConfigChanged => "audio_config_changed",
            DropReason::VideoConfigIncompatible => "video_config_incompatible",
            DropReason::AudioEarly => "audio_early",
        }
    }
}

/// Video properties, from the AVC sequence header.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// `avc1.PPCCLL`.
    pub codec: String,
    /// Displayed size; None when the SPS could not be read.
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub sps_error: Option<SpsError>,
}

/// Audio properties, from the AudioSpecificConfig.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    /// `mp4a.40.N`.
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u8,
}

/// What the muxer produced from one input.
#[derive(Debug, Clone, PartialEq)]
pub enum MuxEvent {
    VideoConfig(VideoInfo),
    AudioConfig(AudioInfo),
    /// The tracks are decided: store `init.mp4` before any segment.
    Init(InitSegment),
    /// An LL-HLS part of the segment being built (comes before that segment).
    Part(Part),
    Segment(Segment),
    Dropped(DropReason),
}
