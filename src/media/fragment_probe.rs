//! Reads back a stored media segment: how long it plays and whether it starts with a keyframe,
//! from its `moof` and the init segment's track timescales. Crash recovery uses it for the
//! segments that were stored but never listed in a playlist. Pure; the bytes come from the
//! store, so a damaged object is an error, never a panic.

use std::collections::HashMap;

use mp4_atom::{Any, Decode, TrunSamples};

use super::fmp4::{NON_SYNC_SAMPLE_FLAGS, VIDEO_TRACK_ID};

/// What a stored segment holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FragmentInfo {
    /// Seconds it plays: its longest track's sample durations. The writer lists a segment cut
    /// at a keyframe by its video (audio may run up to one AAC frame, ~21 ms, either way) and
    /// the last one of a publish until its last picture is shown (a composition offset more).
    pub duration: f64,
    /// Its video starts with a keyframe (or it has no video).
    pub independent: bool,
}

/// A segment or init segment that cannot be read back.
#[derive(Debug, thiserror::Error)]
#[error("cannot read back the {what}: {reason}")]
pub struct ProbeError {
    what: &'static str,
    reason: String,
}

/// Track id -> timescale, from an init segment (`ftyp` + `moov`).
pub fn track_timescales(init: &[u8]) -> Result<HashMap<u32, u32>, ProbeError> {
    let err = |reason: String| ProbeError {
        what: "init segment",
        reason,
    };
    let decoded = std::panic::catch_unwind(|| {
        let mut buf = init;
        let mut scales = HashMap::new();
        while !buf.is_empty() {
            match Any::decode(&mut buf).map_err(|e| e.to_string())? {
                Any::Moov(moov) => {
                    for trak in moov.trak {
                        scales.insert(trak.tkhd.track_id, trak.mdia.mdhd.timescale);
                    }
                    return Ok(scales);
                }
                _ => continue,
            }
        }
        Err("no moov box".to_string())
    });
    decoded
        .map_err(|_| err("the decoder panicked".into()))?
        .map_err(err)
}

/// Reads a media segment (`moof` + `mdat`) given its init's track timescales.
pub fn probe_fragment(
    fragment: &[u8],
    timescales: &HashMap<u32, u32>,
) -> Result<FragmentInfo, ProbeError> {
    let err = |reason: String| ProbeError {
        what: "media segment",
        reason,
    };
    // Boxes before the moof (the danmaku `emsg`s, see `media::emsg`) are skipped.
    let moof = std::panic::catch_unwind(|| {
        let mut buf = fragment;
        while !buf.is_empty() {
            match Any::decode(&mut buf).map_err(|e| e.to_string())? {
                Any::Moof(moof) => return Ok(moof),
                Any::Mdat(_) => break,
                _ => continue,
            }
        }
        Err("no moof box before the media data".to_string())
    })
    .map_err(|_| err("the decoder panicked".into()))?
    .map_err(err)?;
    let mut seconds: Option<f64> = None;
    let mut independent = true;
    for traf in &moof.traf {
        let id = traf.tfhd.track_id;
        let Some(&scale) = timescales.get(&id).filter(|s| **s > 0) else {
            continue;
        };
        let default = u64::from(traf.tfhd.default_sample_duration.unwrap_or(0));
        let mut ticks = 0u64;
        for trun in &traf.trun {
            ticks += match &trun.samples {
                TrunSamples::Inherited { count, .. } => u64::from(*count) * default,
                TrunSamples::Explicit(entries) => entries
                    .iter()
                    .map(|e| e.duration.map_or(default, u64::from))
                    .sum(),
            };
        }
        if id == VIDEO_TRACK_ID {
            let first_flags = traf
                .trun
                .first()
                .and_then(|t| t.samples.get(0))
                .and_then(|e| e.flags)
                .or(traf.tfhd.default_sample_flags);
            independent = first_flags.is_none_or(|f| f & NON_SYNC_SAMPLE_FLAGS == 0);
        }
        let track_seconds = ticks as f64 / f64::from(scale);
        seconds = Some(seconds.map_or(track_seconds, |s| s.max(track_seconds)));
    }
    let duration = seconds.ok_or_else(|| err("no track of the init segment".into()))?;
    Ok(FragmentInfo {
        duration,
        independent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::flv_file::{read_flv, FlvTagKind};
    use crate::media::{MuxEvent, StreamMuxer};
    use bytes::Bytes;

    #[test]
    fn segments_read_back_as_the_writer_listed_them() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ffmpeg_push_6s.flv");
        let flv = Bytes::from(std::fs::read(path).unwrap());
        let mut muxer = StreamMuxer::new(2000);
        let mut events = Vec::new();
        for tag in read_flv(&flv).unwrap() {
            events.extend(match tag.kind {
                FlvTagKind::Video => muxer.push_video(tag.timestamp, &tag.body).unwrap(),
                FlvTagKind::Audio => muxer.push_audio(tag.timestamp, &tag.body).unwrap(),
                _ => continue,
            });
        }
        events.extend(muxer.finish().unwrap());
        let init = events
            .iter()
            .find_map(|e| match e {
                MuxEvent::Init(i) => Some(i.bytes.clone()),
                _ => None,
            })
            .unwrap();
        let scales = track_timescales(&init).unwrap();
        assert_eq!(scales.get(&VIDEO_TRACK_ID), Some(&90_000));
        let mut segments = 0;
        for e in &events {
            let MuxEvent::Segment(s) = e else { continue };
            let info = probe_fragment(&s.bytes, &scales).unwrap();
            // Within one AAC frame at 48 kHz of what the writer listed.
            assert!(
                (info.duration - s.duration).abs() < 0.022,
                "{info:?} vs {}",
                s.duration
            );
            assert_eq!(info.independent, s.independent);
            // The same with danmaku in front of the moof.
            let events = [crate::media::emsg::TimedEvent {
                id: 1,
                presentation_ms: s.start_ms,
                json: Bytes::from_static(br#"{"seq":1}"#),
            }];
            let boxes = crate::media::emsg::encode_emsg_boxes(&events, 90_000).unwrap();
            let carried = probe_fragment(&[&boxes[..], &s.bytes[..]].concat(), &scales).unwrap();
            assert_eq!(carried, info);
            segments += 1;
        }
        assert_eq!(segments, 3);
        // Damaged objects are errors.
        assert!(track_timescales(b"garbage!").is_err());
        assert!(probe_fragment(&init, &scales).is_err());
        assert!(probe_fragment(&[0, 0, 0, 8, b'm', b'o', b'o', b'f'], &scales).is_err());
    }
}
