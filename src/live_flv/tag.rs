//! FLV framing (pure): the file header, one tag around a body, and a small `onMetaData`.
//! Layout from the FLV spec (Adobe, v10.1, annex E): header `FLV` 1 flags 9 then
//! PreviousTagSize0; each tag is type, 24-bit size, 24-bit timestamp + 8-bit extension,
//! 24-bit stream id 0, the body, then the 32-bit size of what came before.

use bytes::{BufMut, Bytes, BytesMut};

/// FLV tag types.
pub const AUDIO: u8 = 8;
pub const VIDEO: u8 = 9;
pub const SCRIPT: u8 = 18;

/// The FLV file header for a stream with audio and/or video, with PreviousTagSize0.
pub fn header(has_audio: bool, has_video: bool) -> Bytes {
    let flags = (u8::from(has_audio) << 2) | u8::from(has_video);
    Bytes::from(vec![b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0])
}

/// A tag not framed yet: what the room keeps for joiners. Framing copies the body, so a room
/// with no FLV viewer frames nothing; a joiner frames the cached group of pictures once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unframed {
    pub kind: u8,
    pub timestamp: u32,
    pub body: Bytes,
}

impl Unframed {
    pub fn new(kind: u8, timestamp: u32, body: &Bytes) -> Unframed {
        Unframed {
            kind,
            timestamp,
            body: body.clone(),
        }
    }

    /// The framed tag ([`tag`]).
    pub fn framed(&self) -> Bytes {
        tag(self.kind, self.timestamp, &self.body)
    }

    /// Bytes the framed tag takes.
    pub fn framed_len(&self) -> usize {
        11 + self.body.len().min(0xFF_FFFF) + 4
    }
}

/// One tag: 11-byte tag header, the body, and the 4-byte PreviousTagSize after it. A body
/// longer than 24 bits can hold is cut (ingest refuses such messages long before).
pub fn tag(kind: u8, timestamp: u32, body: &[u8]) -> Bytes {
    let body = &body[..body.len().min(0xFF_FFFF)];
    let size = body.len() as u32;
    let mut out = BytesMut::with_capacity(11 + body.len() + 4);
    out.put_u8(kind);
    out.put_uint(u64::from(size), 3);
    out.put_uint(u64::from(timestamp & 0xFF_FFFF), 3);
    out.put_u8((timestamp >> 24) as u8);
    out.put_uint(0, 3);
    out.put_slice(body);
    out.put_u32(11 + size);
    out.freeze()
}

/// An `onMetaData` script tag body (AMF0: the string, then an ECMA array of numbers), from what
/// the encoder announced. Only numeric fields: players use them for display only.
pub fn metadata_body(fields: &[(&str, f64)]) -> Bytes {
    let mut out = BytesMut::new();
    amf0_string(&mut out, "onMetaData");
    out.put_u8(0x08); // ECMA array
    out.put_u32(fields.len() as u32);
    for (name, value) in fields {
        let name = &name.as_bytes()[..name.len().min(u16::MAX as usize)];
        out.put_u16(name.len() as u16);
        out.put_slice(name);
        out.put_u8(0x00); // number
        out.put_f64(*value);
    }
    out.put_slice(&[0, 0, 9]); // object end
    out.freeze()
}

fn amf0_string(out: &mut BytesMut, s: &str) {
    out.put_u8(0x02);
    out.put_u16(s.len() as u16);
    out.put_slice(s.as_bytes());
}

/// Whether a video tag body starts a keyframe (frame type 1 in the high nibble) of coded
/// pictures (not the AVC sequence header, packet type 0).
pub fn is_video_keyframe(body: &[u8]) -> bool {
    body.first().is_some_and(|b| b >> 4 == 1) && body.get(1) != Some(&0)
}

/// Whether a video tag body is the codec configuration (AVC sequence header).
pub fn is_video_config(body: &[u8]) -> bool {
    body.first().is_some_and(|b| b & 0x0F == 7) && body.get(1) == Some(&0)
}

/// Whether an audio tag body is the codec configuration (AAC AudioSpecificConfig).
pub fn is_audio_config(body: &[u8]) -> bool {
    body.first().is_some_and(|b| b >> 4 == 10) && body.get(1) == Some(&0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_the_tracks() {
        assert_eq!(
            &header(true, true)[..],
            b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00"
        );
        assert_eq!(header(false, true)[4], 1);
        assert_eq!(header(true, false)[4], 4);
    }

    #[test]
    fn a_tag_is_framed_with_its_size_and_extended_timestamp() {
        let t = tag(VIDEO, 0x0102_0304, b"abc");
        assert_eq!(t.len(), 11 + 3 + 4);
        assert_eq!(t[0], VIDEO);
        assert_eq!(&t[1..4], &[0, 0, 3]);
        assert_eq!(&t[4..7], &[0x02, 0x03, 0x04]);
        assert_eq!(t[7], 0x01);
        assert_eq!(&t[8..11], &[0, 0, 0]);
        assert_eq!(&t[11..14], b"abc");
        assert_eq!(&t[14..], &14u32.to_be_bytes());
    }

    #[test]
    fn metadata_is_amf0_with_an_object_end() {
        let b = metadata_body(&[("width", 640.0)]);
        assert_eq!(&b[..13], b"\x02\x00\x0aonMetaData");
        assert_eq!(b[13], 0x08);
        assert_eq!(&b[14..18], &1u32.to_be_bytes());
        assert_eq!(&b[18..25], b"\x00\x05width");
        assert_eq!(b[25], 0);
        assert_eq!(f64::from_be_bytes(b[26..34].try_into().unwrap()), 640.0);
        assert_eq!(&b[34..], &[0, 0, 9]);
    }

    #[test]
    fn frame_kinds() {
        assert!(is_video_keyframe(&[0x17, 1]));
        assert!(!is_video_keyframe(&[0x17, 0]));
        assert!(!is_video_keyframe(&[0x27, 1]));
        assert!(is_video_config(&[0x17, 0]));
        assert!(is_audio_config(&[0xAF, 0]));
        assert!(!is_audio_config(&[0xAF, 1]));
        assert!(!is_video_keyframe(&[]));
    }
}
