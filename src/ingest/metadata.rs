//! `@setDataFrame onMetaData` (or a bare `onMetaData`) -> [`StreamMetadata`]. Values that are
//! missing, of the wrong type or out of any sane range are left out rather than trusted.

use xflv::amf0::Amf0ValueType;

use crate::media::codec_support::FlvCodec;
use crate::media::StreamMetadata;

/// Longest encoder name kept (characters).
const MAX_ENCODER_CHARS: usize = 128;

/// Reads the metadata from a data message's values; `None` if it is not `onMetaData`.
pub fn from_data_values(values: &[Amf0ValueType]) -> Option<StreamMetadata> {
    let position = values
        .iter()
        .take(2)
        .position(|v| matches!(v, Amf0ValueType::UTF8String(s) if s == "onMetaData"))?;
    let properties = match values.get(position + 1)? {
        Amf0ValueType::Object(map) | Amf0ValueType::EcmaArray(map) => map,
        _ => return None,
    };
    let number = |key: &str| match properties.get(key) {
        Some(Amf0ValueType::Number(n)) if n.is_finite() && *n >= 0.0 => Some(*n),
        _ => None,
    };
    let dimension = |key: &str| {
        number(key)
            .filter(|n| *n >= 1.0 && *n <= 65_535.0)
            .map(|n| n.round() as u32)
    };
    let codec = |key: &str| match properties.get(key) {
        Some(Amf0ValueType::Number(n)) => FlvCodec::from_number(*n),
        Some(Amf0ValueType::UTF8String(s)) => FlvCodec::from_fourcc(s.as_bytes()),
        _ => None,
    };
    Some(StreamMetadata {
        width: dimension("width"),
        height: dimension("height"),
        framerate: number("framerate").filter(|f| *f <= 1000.0),
        video_kbps: number("videodatarate"),
        audio_kbps: number("audiodatarate"),
        encoder: match properties.get("encoder") {
            Some(Amf0ValueType::UTF8String(s)) => Some(s.chars().take(MAX_ENCODER_CHARS).collect()),
            _ => None,
        },
        video_codec: codec("videocodecid"),
        audio_codec: codec("audiocodecid"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Amf0ValueType {
        Amf0ValueType::UTF8String(v.to_string())
    }

    fn n(v: f64) -> Amf0ValueType {
        Amf0ValueType::Number(v)
    }

    #[test]
    fn reads_what_ffmpeg_and_obs_send() {
        let props = Amf0ValueType::Object(
            [
                ("duration", n(0.0)),
                ("width", n(320.0)),
                ("height", n(180.0)),
                ("videodatarate", n(2500.0)),
                ("framerate", n(30.0)),
                ("audiodatarate", n(160.0)),
                ("encoder", s("obs-output module (libobs version 29.1.3)")),
                ("videocodecid", n(7.0)),
                ("audiocodecid", n(10.0)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        );
        let expected = StreamMetadata {
            width: Some(320),
            height: Some(180),
            framerate: Some(30.0),
            video_kbps: Some(2500.0),
            audio_kbps: Some(160.0),
            encoder: Some("obs-output module (libobs version 29.1.3)".into()),
            video_codec: Some(FlvCodec::Id(7)),
            audio_codec: Some(FlvCodec::Id(10)),
        };
        let framed = [s("@setDataFrame"), s("onMetaData"), props.clone()];
        assert_eq!(from_data_values(&framed), Some(expected.clone()));
        assert_eq!(from_data_values(&[s("onMetaData"), props]), Some(expected));
    }

    #[test]
    fn enhanced_rtmp_codecs_are_fourccs() {
        let hvc1 = f64::from(u32::from_be_bytes(*b"hvc1"));
        let props = Amf0ValueType::Object(
            [("videocodecid", n(hvc1)), ("audiocodecid", s("Opus"))]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        );
        let meta = from_data_values(&[s("onMetaData"), props]).unwrap();
        assert_eq!(meta.video_codec, Some(FlvCodec::FourCc("hvc1".into())));
        assert_eq!(meta.audio_codec, Some(FlvCodec::FourCc("Opus".into())));
    }

    #[test]
    fn ignores_other_data_and_bad_values() {
        assert_eq!(from_data_values(&[s("onCuePoint"), n(1.0)]), None);
        assert_eq!(from_data_values(&[s("onMetaData")]), None);
        let props = Amf0ValueType::Object(
            [
                ("width", n(f64::NAN)),
                ("height", n(1e12)),
                ("framerate", n(-1.0)),
                ("encoder", n(3.0)),
                ("videocodecid", n(-3.0)),
                ("audiocodecid", s("toolong")),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        );
        assert_eq!(
            from_data_values(&[s("onMetaData"), props]),
            Some(StreamMetadata::default())
        );
    }
}
