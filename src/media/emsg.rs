//! Timed metadata inside the media: danmaku carried in a fragment as `emsg` boxes holding ID3
//! tags, the form HLS players read without any side channel (hls.js reports them as
//! `FRAG_PARSING_METADATA`, Safari as metadata cues).
//!
//! Each event becomes one version-1 `emsg` (absolute presentation time on the fragment's
//! timeline, scheme [`ID3_SCHEME`]) whose message data is an ID3v2.4 tag with a single `TXXX`
//! frame: description [`TXXX_DESCRIPTION`], value the event's JSON. The boxes go in front of
//! the fragment's `moof`, where players look for them. Pure: events and timing in, bytes out.

use bytes::Bytes;
use mp4_atom::{Emsg, EmsgTimestamp, Encode};

use super::fmp4::Fmp4Error;

/// The scheme players recognise for ID3 in `emsg` (AOM "Carriage of ID3 Timed Metadata in
/// CMAF").
pub const ID3_SCHEME: &str = "https://aomedia.org/emsg/ID3";
/// The `TXXX` description naming barrage's payload (the value is one event's JSON).
pub const TXXX_DESCRIPTION: &str = "barrage";

/// One event to carry in a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedEvent {
    /// Identifies the event (the room's seq; players use it to drop repeats).
    pub id: u32,
    /// When it should show: ms on the stream timeline (the fragment's timeline, as `tfdt`).
    pub presentation_ms: u64,
    /// The event's JSON, as the WebSocket and the CDN files carry it.
    pub json: Bytes,
}

/// Encodes `events` as consecutive `emsg` boxes with times in `timescale` units per second
/// (the track's, e.g. 90 000); empty input gives empty output. Prepend the result to the
/// fragment (`moof` + `mdat`).
pub fn encode_emsg_boxes(events: &[TimedEvent], timescale: u32) -> Result<Bytes, Fmp4Error> {
    let mut out = Vec::new();
    for event in events {
        let presentation_time = event
            .presentation_ms
            .checked_mul(u64::from(timescale))
            .map(|t| t / 1000)
            .ok_or(Fmp4Error {
                what: "emsg presentation time",
                source: mp4_atom::Error::OutOfBounds,
            })?;
        let emsg = Emsg {
            timescale,
            presentation_time: EmsgTimestamp::Absolute(presentation_time),
            // Zero: an instant, not a span (players treat it as "until replaced").
            event_duration: 0,
            id: event.id,
            scheme_id_uri: ID3_SCHEME.to_string(),
            value: String::new(),
            message_data: id3_txxx(TXXX_DESCRIPTION, &event.json),
        };
        emsg.encode(&mut out).map_err(|source| Fmp4Error {
            what: "emsg",
            source,
        })?;
    }
    Ok(Bytes::from(out))
}

/// An ID3v2.4 tag holding one `TXXX` frame (UTF-8 description and value).
pub fn id3_txxx(description: &str, value: &[u8]) -> Vec<u8> {
    let mut frame_body = Vec::with_capacity(2 + description.len() + value.len());
    frame_body.push(3); // text encoding: UTF-8
    frame_body.extend_from_slice(description.as_bytes());
    frame_body.push(0);
    frame_body.extend_from_slice(value);
    let frame_len = 10 + frame_body.len();
    let mut tag = Vec::with_capacity(10 + frame_len);
    tag.extend_from_slice(b"ID3");
    tag.extend_from_slice(&[4, 0, 0]); // v2.4.0, no flags
    tag.extend_from_slice(&synchsafe(frame_len));
    tag.extend_from_slice(b"TXXX");
    tag.extend_from_slice(&synchsafe(frame_body.len()));
    tag.extend_from_slice(&[0, 0]); // frame flags
    tag.extend_from_slice(&frame_body);
    tag
}

/// A size as ID3's 28-bit "synchsafe" integer (7 bits per byte). Larger sizes are clamped:
/// the events carried are a few hundred bytes each.
fn synchsafe(n: usize) -> [u8; 4] {
    let n = n.min(0x0FFF_FFFF) as u32;
    [
        (n >> 21) as u8 & 0x7F,
        (n >> 14) as u8 & 0x7F,
        (n >> 7) as u8 & 0x7F,
        n as u8 & 0x7F,
    ]
}

/// Reads the `TXXX` value of an ID3 tag written by [`id3_txxx`] (for tests and tools; the
/// pages have their own reader). None for anything else.
pub fn read_id3_txxx(tag: &[u8]) -> Option<(String, Vec<u8>)> {
    let header = tag.get(..10)?;
    if &header[..3] != b"ID3" {
        return None;
    }
    let frame = tag.get(10..)?;
    if frame.get(..4)? != b"TXXX" {
        return None;
    }
    let size = frame
        .get(4..8)?
        .iter()
        .fold(0usize, |acc, b| (acc << 7) | usize::from(b & 0x7F));
    let body = frame.get(10..10 + size)?;
    let text = body.get(1..)?;
    let split = text.iter().position(|b| *b == 0)?;
    let description = String::from_utf8(text[..split].to_vec()).ok()?;
    Some((description, text[split + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::Decode;

    fn event(id: u32, ms: u64, json: &str) -> TimedEvent {
        TimedEvent {
            id,
            presentation_ms: ms,
            json: Bytes::from(json.to_string()),
        }
    }

    #[test]
    fn no_events_no_bytes() {
        assert!(encode_emsg_boxes(&[], 90_000).unwrap().is_empty());
    }

    #[test]
    fn each_event_is_one_v1_emsg_with_its_time_and_id3_payload() {
        let events = [
            event(7, 2_500, r#"{"seq":7,"text":"666"}"#),
            event(8, 3_001, r#"{"seq":8,"text":"前方高能"}"#),
        ];
        let bytes = encode_emsg_boxes(&events, 90_000).unwrap();
        // Version 1: full box header then the timescale.
        assert_eq!(&bytes[4..8], b"emsg");
        assert_eq!(bytes[8], 1);
        let mut rest = &bytes[..];
        for e in &events {
            let emsg = Emsg::decode(&mut rest).unwrap();
            assert_eq!(emsg.scheme_id_uri, ID3_SCHEME);
            assert_eq!(emsg.timescale, 90_000);
            assert_eq!(
                emsg.presentation_time,
                EmsgTimestamp::Absolute(e.presentation_ms * 90)
            );
            assert_eq!(emsg.id, e.id);
            let (description, value) = read_id3_txxx(&emsg.message_data).unwrap();
            assert_eq!(description, TXXX_DESCRIPTION);
            assert_eq!(value, e.json.to_vec());
        }
        assert!(rest.is_empty());
    }

    #[test]
    fn id3_sizes_are_synchsafe() {
        let value = vec![b'x'; 300];
        let tag = id3_txxx("d", &value);
        // Frame = 10 header + 1 encoding + "d\0" + 300 = 313; 313 = 2*128 + 57.
        assert_eq!(&tag[6..10], &[0, 0, 2, 57]);
        assert_eq!(tag.len(), 10 + 313);
        assert!(tag[6..10].iter().all(|b| b & 0x80 == 0));
    }

    #[test]
    fn a_time_past_the_range_is_an_error_not_a_panic() {
        assert!(encode_emsg_boxes(&[event(1, u64::MAX, "{}")], 90_000).is_err());
    }

    /// The fixture the page's reader is tested on (tests/browser/sync.test.mjs) is exactly
    /// what this encoder writes.
    #[test]
    fn the_pages_fixture_is_what_the_encoder_writes() {
        let fixture = include_bytes!("../../tests/data/id3_txxx_event.bin");
        let (description, value) = read_id3_txxx(fixture).unwrap();
        assert_eq!(description, TXXX_DESCRIPTION);
        assert_eq!(id3_txxx(TXXX_DESCRIPTION, &value), fixture.to_vec());
        let event: serde_json::Value = serde_json::from_slice(&value).unwrap();
        assert_eq!(event["danmaku"]["text"], "前方高能 666");
    }

    #[test]
    fn foreign_tags_are_not_read() {
        assert_eq!(read_id3_txxx(b"ID3\x04\0\0\0\0\0\x0aPRIV"), None);
        assert_eq!(read_id3_txxx(b"nope"), None);
    }
}
