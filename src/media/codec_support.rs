//! Which codecs a publish may use: H.264 video and AAC audio, what HLS here carries. A publish
//! that announces another codec in its metadata, or sends a tag of one, is refused at once
//! with a message the streamer can act on, instead of being taken with that track silently
//! dropped (an OBS 30 HEVC or AV1 push became audio-only before). Pure: ingest asks, and
//! answers the publisher.
//!
//! Codecs are named as FLV knows them: a legacy codec id (video 7 = AVC; 12 is HEVC and 13 AV1
//! in the common Chinese extension; audio 10 = AAC, 2 = MP3) or an enhanced-RTMP FourCC
//! (`hvc1`, `av01`, `vp09` for video; `Opus`, `fLaC`, `ac-3`, ... for audio).

use std::fmt;

/// A codec as FLV names it: the legacy id, or the enhanced-RTMP FourCC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlvCodec {
    Id(u8),
    FourCc(String),
}

impl FlvCodec {
    /// From a metadata `videocodecid`/`audiocodecid` number: small numbers are legacy ids,
    /// larger ones a FourCC packed big-endian (what enhanced-RTMP encoders write).
    pub fn from_number(n: f64) -> Option<FlvCodec> {
        if !n.is_finite() || n < 0.0 || n > f64::from(u32::MAX) || n.fract() != 0.0 {
            return None;
        }
        let n = n as u32;
        match u8::try_from(n) {
            Ok(id) => Some(FlvCodec::Id(id)),
            Err(_) => FlvCodec::from_fourcc(&n.to_be_bytes()),
        }
    }

    /// From four bytes of a FourCC (printable ASCII only).
    pub fn from_fourcc(bytes: &[u8]) -> Option<FlvCodec> {
        (bytes.len() == 4 && bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' '))
            .then(|| FlvCodec::FourCc(String::from_utf8_lossy(bytes).into_owned()))
    }
}

impl fmt::Display for FlvCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlvCodec::Id(id) => write!(f, "codec id {id}"),
            FlvCodec::FourCc(cc) => write!(f, "`{cc}`"),
        }
    }
}

/// Which track a codec is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    Video,
    Audio,
}

/// A codec barrage does not carry, named for the streamer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedCodec {
    pub track: Track,
    /// How FLV named it.
    pub codec: FlvCodec,
}

impl UnsupportedCodec {
    /// The codec's common name ("HEVC (H.265)"), or how FLV named it when unknown.
    pub fn name(&self) -> String {
        let known = match (&self.track, &self.codec) {
            (Track::Video, FlvCodec::Id(12)) => "HEVC (H.265)",
            (Track::Video, FlvCodec::Id(13)) => "AV1",
            (Track::Video, FlvCodec::Id(2)) => "Sorenson H.263",
            (Track::Video, FlvCodec::Id(3 | 6)) => "Screen Video",
            (Track::Video, FlvCodec::Id(4 | 5)) => "On2 VP6",
            (Track::Audio, FlvCodec::Id(2 | 14)) => "MP3",
            (Track::Audio, FlvCodec::Id(0 | 3)) => "PCM",
            (Track::Audio, FlvCodec::Id(1)) => "ADPCM",
            (Track::Audio, FlvCodec::Id(4..=6)) => "Nellymoser",
            (Track::Audio, FlvCodec::Id(7 | 8)) => "G.711",
            (Track::Audio, FlvCodec::Id(11)) => "Speex",
            (_, FlvCodec::FourCc(cc)) => match cc.as_str() {
                "hvc1" | "hev1" => "HEVC (H.265)",
                "av01" => "AV1",
                "vp09" => "VP9",
                "vp08" => "VP8",
                "avc1" => "H.264 in enhanced-RTMP form",
                "Opus" => "Opus",
                "fLaC" => "FLAC",
                "ac-3" => "AC-3",
                "ec-3" => "E-AC-3",
                ".mp3" => "MP3",
                "mp4a" => "AAC in enhanced-RTMP form",
                _ => "",
            },
            _ => "",
        };
        if known.is_empty() {
            self.codec.to_string()
        } else {
            known.to_string()
        }
    }

    /// What the publisher is told (RTMP onStatus description) and the log says.
    pub fn message(&self) -> String {
        match self.track {
            Track::Video => format!(
                "video codec {} is not supported: this server carries H.264 video; in OBS set \
                 Settings > Output > Video Encoder to an H.264 encoder (x264, NVENC H.264, ...)",
                self.name()
            ),
            Track::Audio => format!(
                "audio codec {} is not supported: this server carries AAC audio; in OBS set \
                 Settings > Output > Audio Encoder to AAC",
                self.name()
            ),
        }
    }

    /// A short label for metrics and notices: `unsupported_video_codec` or `..._audio_...`.
    pub fn code(&self) -> &'static str {
        match self.track {
            Track::Video => "unsupported_video_codec",
            Track::Audio => "unsupported_audio_codec",
        }
    }
}

/// FLV video codec id of H.264.
const AVC: u8 = 7;
/// FLV sound format of AAC.
const AAC: u8 = 10;
/// FLV sound format that announces an enhanced-RTMP audio header (FourCC follows).
const ENHANCED_AUDIO: u8 = 9;
/// Video frame type of info/command frames (no picture, any codec id).
const COMMAND_FRAME: u8 = 5;

/// Checks a video tag body; Some when its codec is not carried.
pub fn check_video_tag(body: &[u8]) -> Option<UnsupportedCodec> {
    let first = *body.first()?;
    let codec = if first & 0x80 != 0 {
        // Enhanced RTMP: a FourCC after the first byte (every such codec is refused, see name()).
        FlvCodec::from_fourcc(body.get(1..5)?).unwrap_or(FlvCodec::FourCc("????".into()))
    } else if first >> 4 == COMMAND_FRAME || first & 0x0f == AVC {
        return None;
    } else {
        FlvCodec::Id(first & 0x0f)
    };
    Some(UnsupportedCodec {
        track: Track::Video,
        codec,
    })
}

/// Checks an audio tag body; Some when its codec is not carried.
pub fn check_audio_tag(body: &[u8]) -> Option<UnsupportedCodec> {
    let format = *body.first()? >> 4;
    let codec = match format {
        AAC => return None,
        ENHANCED_AUDIO => {
            FlvCodec::from_fourcc(body.get(1..5)?).unwrap_or(FlvCodec::FourCc("????".into()))
        }
        other => FlvCodec::Id(other),
    };
    Some(UnsupportedCodec {
        track: Track::Audio,
        codec,
    })
}

/// Checks the codecs an encoder announced in its metadata; Some for the first not carried.
/// Announced H.264/AAC in enhanced form (`avc1`, `mp4a`) pass here: the tags decide.
pub fn check_announced(
    video: Option<&FlvCodec>,
    audio: Option<&FlvCodec>,
) -> Option<UnsupportedCodec> {
    let video_ok = |c: &FlvCodec| matches!(c, FlvCodec::Id(AVC)) || *c == fourcc("avc1");
    let audio_ok = |c: &FlvCodec| matches!(c, FlvCodec::Id(AAC)) || *c == fourcc("mp4a");
    if let Some(c) = video.filter(|c| !video_ok(c)) {
        return Some(UnsupportedCodec {
            track: Track::Video,
            codec: c.clone(),
        });
    }
    audio.filter(|c| !audio_ok(c)).map(|c| UnsupportedCodec {
        track: Track::Audio,
        codec: c.clone(),
    })
}

fn fourcc(cc: &str) -> FlvCodec {
    FlvCodec::FourCc(cc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h264_and_aac_pass_the_rest_is_named() {
        assert_eq!(check_video_tag(&[0x17, 0, 0, 0, 0]), None);
        assert_eq!(check_video_tag(&[0x27, 1, 0, 0, 0]), None);
        assert_eq!(check_video_tag(&[0x52, 0]), None, "a command frame");
        assert_eq!(check_audio_tag(&[0xaf, 1, 0x21]), None);
        // Legacy HEVC (codec id 12) and enhanced-RTMP HEVC, AV1, VP9.
        let hevc = check_video_tag(&[0x1c, 0, 0, 0, 0]).unwrap();
        assert_eq!(hevc.codec, FlvCodec::Id(12));
        assert_eq!(hevc.name(), "HEVC (H.265)");
        let ex = |cc: &[u8]| {
            let mut body = vec![0x90];
            body.extend(cc);
            check_video_tag(&body).unwrap().name()
        };
        assert_eq!(ex(b"hvc1"), "HEVC (H.265)");
        assert_eq!(ex(b"av01"), "AV1");
        assert_eq!(ex(b"vp09"), "VP9");
        assert_eq!(ex(b"xyz1"), "`xyz1`");
        assert_eq!(ex(&[0xff, 0, 1, 2]), "`????`");
        assert!(ex(b"hvc1").contains("HEVC"));
        let mp3 = check_audio_tag(&[0x2f, 0]).unwrap();
        assert_eq!(mp3.name(), "MP3");
        assert_eq!(mp3.code(), "unsupported_audio_codec");
        let opus = check_audio_tag(b"\x90Opus").unwrap();
        assert_eq!(opus.name(), "Opus");
        assert!(check_video_tag(&[]).is_none() && check_video_tag(&[0x90, b'h']).is_none());
        let message = hevc.message();
        assert!(
            message.contains("HEVC (H.265)") && message.contains("H.264"),
            "{message}"
        );
    }

    #[test]
    fn announced_codecs_from_metadata_numbers() {
        let hvc1 = f64::from(u32::from_be_bytes(*b"hvc1"));
        assert_eq!(FlvCodec::from_number(hvc1), Some(fourcc("hvc1")));
        assert_eq!(FlvCodec::from_number(7.0), Some(FlvCodec::Id(7)));
        assert_eq!(FlvCodec::from_number(-1.0), None);
        assert_eq!(FlvCodec::from_number(7.5), None);
        assert_eq!(FlvCodec::from_number(f64::NAN), None);
        let h264 = FlvCodec::Id(7);
        let aac = FlvCodec::Id(10);
        assert_eq!(check_announced(Some(&h264), Some(&aac)), None);
        assert_eq!(check_announced(None, None), None);
        assert_eq!(
            check_announced(Some(&fourcc("avc1")), Some(&fourcc("mp4a"))),
            None
        );
        let refused = check_announced(Some(&fourcc("av01")), Some(&aac)).unwrap();
        assert_eq!(
            (refused.track, refused.name().as_str()),
            (Track::Video, "AV1")
        );
        let refused = check_announced(Some(&h264), Some(&FlvCodec::Id(2))).unwrap();
        assert_eq!(refused.track, Track::Audio);
    }
}
