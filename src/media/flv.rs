//! FLV video and audio tag bodies, as RTMP carries them, parsed into typed values.
//!
//! This is network input: every length is checked and every failure is a [`TagError`], never a
//! panic. Only H.264 (AVC) video and AAC audio are supported, which is what OBS and ffmpeg send
//! by default; anything else is refused with a typed error naming the codec.

use bytes::Bytes;

/// Why a tag body could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("empty {kind} tag")]
    Empty { kind: &'static str },
    #[error("{what} truncated: needs {need} bytes, has {have}")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    #[error("unsupported video codec id {0} (only H.264/AVC, codec id 7)")]
    UnsupportedVideoCodec(u8),
    #[error("unsupported enhanced-RTMP video codec `{0}` (only H.264/AVC)")]
    UnsupportedEnhancedVideo(String),
    #[error("unsupported audio format {0} (only AAC, sound format 10)")]
    UnsupportedAudioCodec(u8),
    #[error("unknown AVC packet type {0}")]
    UnknownAvcPacketType(u8),
    #[error("unknown AAC packet type {0}")]
    UnknownAacPacketType(u8),
    #[error("AVC sequence header is not a valid AVCDecoderConfigurationRecord: {0}")]
    BadAvcConfig(String),
    #[error("AVC NAL unit lengths do not add up: {0}")]
    BadNalLengths(String),
}

impl TagError {
    /// A short stable label for logs and metrics, so invalid input is reported once per kind.
    pub fn kind(&self) -> &'static str {
        match self {
            TagError::Empty { .. } => "empty",
            TagError::Truncated { .. } => "truncated",
            TagError::UnsupportedVideoCodec(_) | TagError::UnsupportedEnhancedVideo(_) => {
                "unsupported_video_codec"
            }
            TagError::UnsupportedAudioCodec(_) => "unsupported_audio_codec",
            TagError::UnknownAvcPacketType(_) => "unknown_avc_packet_type",
            TagError::UnknownAacPacketType(_) => "unknown_aac_packet_type",
            TagError::BadAvcConfig(_) => "bad_avc_config",
            TagError::BadNalLengths(_) => "bad_nal_lengths",
        }
    }
}

/// A parsed FLV video tag body.
#[derive(Debug, Clone, PartialEq)]
pub enum VideoTag {
    /// The AVCDecoderConfigurationRecord (SPS/PPS): the decoder setup for what follows.
    AvcSequenceHeader(AvcConfig),
    /// One access unit: length-prefixed NAL units (AVCC).
    AvcFrame {
        keyframe: bool,
        /// Presentation minus decode time, ms (signed 24-bit in the tag).
        composition_ms: i32,
        /// The AVCC NAL units, as the mdat stores them.
        data: Bytes,
    },
    /// The encoder's end of sequence marker.
    AvcEndOfSequence,
    /// A video info/command frame (frame type 5): carries no picture.
    Command,
}

/// A parsed FLV audio tag body.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioTag {
    /// The AudioSpecificConfig that describes the AAC frames that follow.
    AacSequenceHeader(Bytes),
    /// One raw AAC frame (1024 samples).
    AacFrame(Bytes),
}

/// An AVC sequence header, checked and decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct AvcConfig {
    /// The AVCDecoderConfigurationRecord as received: the body of the `avcC` box.
    pub record: Bytes,
    /// The typed record (profile, level, SPS and PPS lists).
    pub avcc: mp4_atom::Avcc,
}

impl AvcConfig {
    /// Decodes an AVCDecoderConfigurationRecord, refusing one without an SPS.
    pub fn parse(record: Bytes) -> Result<AvcConfig, TagError> {
        use mp4_atom::Atom;
        let mut buf: &[u8] = &record;
        let avcc = mp4_atom::Avcc::decode_body(&mut buf)
            .map_err(|e| TagError::BadAvcConfig(e.to_string()))?;
        if avcc.sequence_parameter_sets.is_empty() {
            return Err(TagError::BadAvcConfig("no SPS".into()));
        }
        if avcc.picture_parameter_sets.is_empty() {
            return Err(TagError::BadAvcConfig("no PPS".into()));
        }
        if avcc.length_size == 3 {
            return Err(TagError::BadAvcConfig("NAL length size 3".into()));
        }
        Ok(AvcConfig { record, avcc })
    }

    /// Bytes of each NAL unit's length prefix (1, 2 or 4).
    pub fn length_size(&self) -> u8 {
        self.avcc.length_size
    }
}

const VIDEO_CODEC_AVC: u8 = 7;
const SOUND_FORMAT_AAC: u8 = 10;
const FRAME_TYPE_KEY: u8 = 1;
const FRAME_TYPE_COMMAND: u8 = 5;

fn need(what: &'static str, body: &[u8], n: usize) -> Result<(), TagError> {
    if body.len() < n {
        return Err(TagError::Truncated {
            what,
            need: n,
            have: body.len(),
        });
    }
    Ok(())
}

/// Parses an FLV video tag body (frame type, codec id, AVC packet type, composition time).
pub fn parse_video(body: &Bytes) -> Result<VideoTag, TagError> {
    let first = *body.first().ok_or(TagError::Empty { kind: "video" })?;
    if first & 0x80 != 0 {
        // Enhanced RTMP: the low nibble is a packet type and a FourCC follows.
        let fourcc = body
            .get(1..5)
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .unwrap_or_else(|| "?".into());
        return Err(TagError::UnsupportedEnhancedVideo(fourcc));
    }
    let frame_type = first >> 4;
    let codec = first & 0x0f;
    if frame_type == FRAME_TYPE_COMMAND {
        return Ok(VideoTag::Command);
    }
    if codec != VIDEO_CODEC_AVC {
        return Err(TagError::UnsupportedVideoCodec(codec));
    }
    let [_, packet_type, c0, c1, c2, ..] = body[..] else {
        return Err(TagError::Truncated {
            what: "AVC video tag header",
            need: 5,
            have: body.len(),
        });
    };
    match packet_type {
        0 => Ok(VideoTag::AvcSequenceHeader(AvcConfig::parse(
            body.slice(5..),
        )?)),
        1 => {
            let raw = (u32::from(c0) << 16) | (u32::from(c1) << 8) | u32::from(c2);
            // Sign-extend the 24-bit value.
            let composition_ms = ((raw << 8) as i32) >> 8;
            Ok(VideoTag::AvcFrame {
                keyframe: frame_type == FRAME_TYPE_KEY,
                composition_ms,
                data: body.slice(5..),
            })
        }
        2 => Ok(VideoTag::AvcEndOfSequence),
        other => Err(TagError::UnknownAvcPacketType(other)),
    }
}

/// Parses an FLV audio tag body (sound format, AAC packet type).
pub fn parse_audio(body: &Bytes) -> Result<AudioTag, TagError> {
    let first = *body.first().ok_or(TagError::Empty { kind: "audio" })?;
    let format = first >> 4;
    if format != SOUND_FORMAT_AAC {
        return Err(TagError::UnsupportedAudioCodec(format));
    }
    let Some(&packet_type) = body.get(1) else {
        return Err(TagError::Truncated {
            what: "AAC audio tag header",
            need: 2,
            have: body.len(),
        });
    };
    match packet_type {
        0 => {
            need("AudioSpecificConfig", body, 4)?;
            Ok(AudioTag::AacSequenceHeader(body.slice(2..)))
        }
        1 => {
            need("AAC frame", body, 3)?;
            Ok(AudioTag::AacFrame(body.slice(2..)))
        }
        other => Err(TagError::UnknownAacPacketType(other)),
    }
}

/// Checks that AVCC data is a whole number of length-prefixed NAL units, so a corrupt frame
/// is dropped here instead of reaching players. Returns the number of NAL units.
pub fn check_nal_lengths(data: &[u8], length_size: u8) -> Result<usize, TagError> {
    let size = usize::from(length_size);
    if !(1..=4).contains(&size) || size == 3 {
        return Err(TagError::BadNalLengths(format!(
            "length size {length_size}"
        )));
    }
    let mut rest = data;
    let mut count = 0;
    while !rest.is_empty() {
        let Some(prefix) = rest.get(..size) else {
            return Err(TagError::BadNalLengths(format!(
                "{} stray bytes after {count} NAL units",
                rest.len()
            )));
        };
        let len = prefix
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        let end = size.saturating_add(len);
        if len == 0 || end > rest.len() {
            return Err(TagError::BadNalLengths(format!(
                "NAL unit {count} claims {len} bytes, {} left",
                rest.len() - size
            )));
        }
        rest = rest.get(end..).unwrap_or_default();
        count += 1;
    }
    if count == 0 {
        return Err(TagError::BadNalLengths("no NAL units".into()));
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A High-profile AVCDecoderConfigurationRecord with one SPS and one PPS.
    pub(crate) fn sample_record() -> Vec<u8> {
        let sps = [0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9];
        let pps = [0x68, 0xeb, 0xe3, 0xcb];
        let mut r = vec![1, 0x64, 0x00, 0x0d, 0xff, 0xe1, 0, sps.len() as u8];
        r.extend_from_slice(&sps);
        r.extend_from_slice(&[1, 0, pps.len() as u8]);
        r.extend_from_slice(&pps);
        r
    }

    #[test]
    fn sequence_header_frames_and_end_of_sequence() {
        let mut body = vec![0x17, 0, 0, 0, 0];
        body.extend(sample_record());
        let VideoTag::AvcSequenceHeader(cfg) = parse_video(&Bytes::from(body)).unwrap() else {
            panic!("not a sequence header")
        };
        assert_eq!(cfg.avcc.avc_profile_indication, 0x64);
        assert_eq!(cfg.length_size(), 4);

        let frame = Bytes::from_static(&[0x27, 1, 0xff, 0xff, 0xdf, 0, 0, 0, 1, 0x41]);
        assert_eq!(
            parse_video(&frame).unwrap(),
            VideoTag::AvcFrame {
                keyframe: false,
                composition_ms: -33,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x41]),
            }
        );
        let key = Bytes::from_static(&[0x17, 1, 0, 0, 67, 0, 0, 0, 1, 0x65]);
        assert!(matches!(
            parse_video(&key).unwrap(),
            VideoTag::AvcFrame {
                keyframe: true,
                composition_ms: 67,
                ..
            }
        ));
        assert_eq!(
            parse_video(&Bytes::from_static(&[0x17, 2, 0, 0, 0])).unwrap(),
            VideoTag::AvcEndOfSequence
        );
        assert_eq!(
            parse_video(&Bytes::from_static(&[0x57, 0])).unwrap(),
            VideoTag::Command
        );
    }

    #[test]
    fn bad_video_is_a_typed_error() {
        assert_eq!(
            parse_video(&Bytes::new()),
            Err(TagError::Empty { kind: "video" })
        );
        assert_eq!(
            parse_video(&Bytes::from_static(&[0x12, 0])),
            Err(TagError::UnsupportedVideoCodec(2))
        );
        assert!(matches!(
            parse_video(&Bytes::from_static(&[0x90, b'h', b'v', b'c', b'1'])),
            Err(TagError::UnsupportedEnhancedVideo(f)) if f == "hvc1"
        ));
        assert!(matches!(
            parse_video(&Bytes::from_static(&[0x17, 1, 0])),
            Err(TagError::Truncated { .. })
        ));
        assert_eq!(
            parse_video(&Bytes::from_static(&[0x17, 9, 0, 0, 0])),
            Err(TagError::UnknownAvcPacketType(9))
        );
        // A record cut short, and one without parameter sets.
        let record = sample_record();
        for cut in 0..record.len() {
            let mut body = vec![0x17, 0, 0, 0, 0];
            body.extend_from_slice(&record[..cut]);
            assert!(parse_video(&Bytes::from(body)).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn audio_tags() {
        assert_eq!(
            parse_audio(&Bytes::from_static(&[0xaf, 0, 0x11, 0x90])).unwrap(),
            AudioTag::AacSequenceHeader(Bytes::from_static(&[0x11, 0x90]))
        );
        assert_eq!(
            parse_audio(&Bytes::from_static(&[0xaf, 1, 0x21, 0x10])).unwrap(),
            AudioTag::AacFrame(Bytes::from_static(&[0x21, 0x10]))
        );
        assert_eq!(
            parse_audio(&Bytes::from_static(&[0x2f, 1])),
            Err(TagError::UnsupportedAudioCodec(2))
        );
        assert!(parse_audio(&Bytes::from_static(&[0xaf])).is_err());
        assert!(parse_audio(&Bytes::from_static(&[0xaf, 0, 0x11])).is_err());
        assert!(parse_audio(&Bytes::from_static(&[0xaf, 1])).is_err());
        assert_eq!(
            parse_audio(&Bytes::from_static(&[0xaf, 7])),
            Err(TagError::UnknownAacPacketType(7))
        );
    }

    #[test]
    fn nal_lengths_are_checked() {
        assert_eq!(
            check_nal_lengths(&[0, 0, 0, 1, 9, 0, 0, 0, 2, 1, 2], 4),
            Ok(2)
        );
        assert_eq!(check_nal_lengths(&[0, 1, 9], 2), Ok(1));
        assert!(check_nal_lengths(&[0, 0, 0, 5, 9], 4).is_err());
        assert!(check_nal_lengths(&[0, 0, 0, 1, 9, 0], 4).is_err());
        assert!(check_nal_lengths(&[], 4).is_err());
        assert!(check_nal_lengths(&[0, 0, 0, 0], 4).is_err());
        assert!(check_nal_lengths(&[0, 0, 1, 9], 3).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let body = Bytes::from(body);
            let _ = parse_video(&body);
            let _ = parse_audio(&body);
            let _ = check_nal_lengths(&body, 4);
        }
    }
}
