//! The media harness: FLV tag bodies (as RTMP delivers them) into a [`StreamMuxer`], plus the
//! codec config readers on raw bytes, with checks on what comes out.
//!
//! Input format, a sequence of records (the last one may be cut short; its body is then what
//! is left): `kind: u8`, `timestamp: u32 BE` (RTMP ms), `length: u24 BE`, `body`. Kinds are
//! [`MediaRecordKind`] (the low two bits of the byte). Seeds are made from the captured ffmpeg
//! push with [`encode_media_record`].

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::ingest::MediaBatch;
use crate::media::aac::parse_audio_specific_config;
use crate::media::sps::parse_sps;
use crate::media::MediaMessage;
use crate::media::{MuxEvent, StreamMuxer};

/// Segment length the fuzz muxer aims at: the smallest `hls.target_segment_s` allowed, so short
/// inputs still cut segments.
const FUZZ_SEGMENT_MS: u64 = 500;

/// Bytes before a record's body.
const RECORD_HEADER: usize = 8;

/// What a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaRecordKind {
    /// An FLV video tag body, to `StreamMuxer::push_video`.
    Video = 0,
    /// An FLV audio tag body, to `StreamMuxer::push_audio`.
    Audio = 1,
    /// A raw SPS NAL unit, to `parse_sps` alone.
    Sps = 2,
    /// A raw AudioSpecificConfig, to `parse_audio_specific_config` alone.
    AudioConfig = 3,
}

/// Appends one record in the harness's input format.
pub fn encode_media_record(kind: MediaRecordKind, timestamp: u32, body: &[u8], out: &mut Vec<u8>) {
    out.push(kind as u8);
    out.extend_from_slice(&timestamp.to_be_bytes());
    let len = body.len().min(0xFF_FFFF) as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&body[..len as usize]);
}

/// Runs the records of `data` through a muxer and the config readers; see the module doc.
pub fn media_tags(data: &[u8]) {
    run_media(data);
}

/// [`media_tags`], returning how many segments were cut.
fn run_media(data: &[u8]) -> u64 {
    let data = Bytes::copy_from_slice(data);
    let mut muxer = MuxCheck::new();
    let mut pos = 0;
    while pos + RECORD_HEADER <= data.len() {
        let header = &data[pos..pos + RECORD_HEADER];
        let kind = header[0] & 3;
        let timestamp = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let len = u32::from_be_bytes([0, header[5], header[6], header[7]]) as usize;
        let start = pos + RECORD_HEADER;
        let end = start.saturating_add(len).min(data.len());
        let body = data.slice(start..end);
        pos = end;
        match kind {
            0 => muxer.push(MediaMessage::Video { timestamp, body }),
            1 => muxer.push(MediaMessage::Audio { timestamp, body }),
            2 => {
                let _ = parse_sps(&body);
            }
            _ => {
                let _ = parse_audio_specific_config(&body);
            }
        }
    }
    muxer.finish();
    muxer.next_sequence - 1
}

/// What the RTMP harness's gate runs for each publication: the same muxer and checks, fed
/// from the session's channel.
/// Returns how many messages it received.
pub async fn feed_publication(mut rx: mpsc::Receiver<MediaBatch>) -> usize {
    let mut muxer = MuxCheck::new();
    let mut received = 0;
    while let Some(batch) = rx.recv().await {
        for message in batch {
            received += 1;
            muxer.push(message);
        }
    }
    muxer.finish();
    received
}

/// A muxer and the invariants its output must keep, whatever the input: the init segment
/// comes once and before any segment, segments are numbered 1, 2, 3, ... with non-empty bytes,
/// a finite non-negative duration and increasing start times.
struct MuxCheck {
    muxer: StreamMuxer,
    init_seen: bool,
    next_sequence: u64,
    last_start_ms: Option<u64>,
}

impl MuxCheck {
    fn new() -> MuxCheck {
        MuxCheck {
            muxer: StreamMuxer::new(FUZZ_SEGMENT_MS).with_parts(FUZZ_SEGMENT_MS / 4),
            init_seen: false,
            next_sequence: 1,
            last_start_ms: None,
        }
    }

    fn push(&mut self, message: MediaMessage) {
        let result = match message {
            MediaMessage::Video { timestamp, body } => self.muxer.push_video(timestamp, &body),
            MediaMessage::Audio { timestamp, body } => self.muxer.push_audio(timestamp, &body),
            MediaMessage::Metadata(metadata) => {
                if metadata.width.is_some() {
                    self.muxer.announce_video();
                }
                return;
            }
            MediaMessage::Refused(_) => return,
        };
        if let Ok(events) = result {
            self.check(events);
        }
    }

    fn finish(&mut self) {
        if let Ok(events) = self.muxer.finish() {
            self.check(events);
        }
    }

    fn check(&mut self, events: Vec<MuxEvent>) {
        for event in events {
            match event {
                MuxEvent::Init(init) => {
                    assert!(!self.init_seen, "a second init segment");
                    assert!(!init.bytes.is_empty(), "an empty init segment");
                    assert!(init.has_video || init.has_audio, "an init with no track");
                    check_boxes("init segment", &init.bytes);
                    self.init_seen = true;
                }
                MuxEvent::Part(part) => {
                    assert!(self.init_seen, "a part before the init segment");
                    assert_eq!(
                        part.segment, self.next_sequence,
                        "a part of another segment"
                    );
                    assert!(!part.bytes.is_empty(), "an empty part");
                    check_boxes("part", &part.bytes);
                    assert!(
                        part.duration.is_finite() && part.duration >= 0.0,
                        "part duration {}",
                        part.duration
                    );
                }
                MuxEvent::Segment(segment) => {
                    assert!(self.init_seen, "a segment before the init segment");
                    assert_eq!(segment.sequence, self.next_sequence, "segment numbering");
                    assert!(!segment.bytes.is_empty(), "an empty segment");
                    check_boxes("media segment", &segment.bytes);
                    assert!(
                        segment.duration.is_finite() && segment.duration >= 0.0,
                        "segment duration {}",
                        segment.duration
                    );
                    if let Some(last) = self.last_start_ms {
                        assert!(
                            segment.start_ms >= last,
                            "segment starts go back: {} after {last}",
                            segment.start_ms
                        );
                    }
                    self.last_start_ms = Some(segment.start_ms);
                    self.next_sequence += 1;
                }
                MuxEvent::VideoConfig(_) | MuxEvent::AudioConfig(_) | MuxEvent::Dropped(_) => {}
            }
        }
    }
}

/// What we write, a player can read: every box of `bytes` decodes (with the same `mp4-atom`
/// types a reader would use), and each `trun`'s samples lie inside the segment.
fn check_boxes(what: &str, bytes: &[u8]) {
    use mp4_atom::{Any, Decode};
    let mut buf = bytes;
    while !buf.is_empty() {
        let start = bytes.len() - buf.len();
        let atom = Any::decode(&mut buf)
            .unwrap_or_else(|e| panic!("{what}: the box at byte {start} does not decode: {e}"));
        if let Any::Moof(moof) = atom {
            for traf in &moof.traf {
                for run in &traf.trun {
                    let offset = run.data_offset.unwrap_or(0);
                    let size: u64 = run
                        .samples
                        .iter()
                        .map(|s| u64::from(s.size.unwrap_or(0)))
                        .sum();
                    let end = start as u64 + u64::try_from(offset).unwrap_or(u64::MAX) + size;
                    assert!(
                        offset > 0 && end <= bytes.len() as u64,
                        "{what}: samples at {offset}+{size} from byte {start} outside {} bytes",
                        bytes.len()
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::flv_file::{read_flv, FlvTagKind};

    #[test]
    fn the_ffmpeg_push_as_records_cuts_segments() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ffmpeg_push_6s.flv");
        let file = Bytes::from(std::fs::read(path).unwrap());
        let mut input = Vec::new();
        for tag in read_flv(&file).unwrap() {
            let kind = match tag.kind {
                FlvTagKind::Video => MediaRecordKind::Video,
                FlvTagKind::Audio => MediaRecordKind::Audio,
                _ => continue,
            };
            encode_media_record(kind, tag.timestamp, &tag.body, &mut input);
        }
        assert!(run_media(&input) >= 3, "6 s with a keyframe every 2 s");
        assert!(run_media(&input[..input.len() / 2]) >= 1);
        media_tags(&[]);
        media_tags(&[0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x17, 0]);
    }
}
