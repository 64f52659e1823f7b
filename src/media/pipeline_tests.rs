//! The media layer end to end on a real ffmpeg push (tests/data/ffmpeg_push_6s.flv), without
//! storage: tags in, init + segments out, boxes read back.

use bytes::Bytes;
use mp4_atom::{Any, Decode, Moof};

use super::flv_file::{read_flv, FlvTagKind};
use super::fmp4::{AUDIO_TRACK_ID, VIDEO_TRACK_ID};
use super::mux_event::MuxEvent;
use super::muxer::{StreamMuxer, TimelineStart};

fn ffmpeg_push() -> Bytes {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ffmpeg_push_6s.flv");
    Bytes::from(std::fs::read(path).expect("tests/data/ffmpeg_push_6s.flv is in the repository"))
}

/// Runs the push through a muxer with every timestamp shifted by `offset` (wrapping).
fn mux(offset: u32) -> Vec<MuxEvent> {
    mux_into(StreamMuxer::new(2000), offset)
}

fn mux_into(mut muxer: StreamMuxer, offset: u32) -> Vec<MuxEvent> {
    let mut events = Vec::new();
    for tag in read_flv(&ffmpeg_push()).unwrap() {
        let ts = tag.timestamp.wrapping_add(offset);
        let out = match tag.kind {
            FlvTagKind::Video => muxer.push_video(ts, &tag.body).unwrap(),
            FlvTagKind::Audio => muxer.push_audio(ts, &tag.body).unwrap(),
            _ => continue,
        };
        events.extend(out);
    }
    events.extend(muxer.finish().unwrap());
    events
}

/// Per track: (tfdt, sum of durations) of each fragment.
fn track_timing(events: &[MuxEvent]) -> Vec<(u32, Vec<(u64, u64)>)> {
    let mut out = vec![(VIDEO_TRACK_ID, Vec::new()), (AUDIO_TRACK_ID, Vec::new())];
    for e in events {
        let MuxEvent::Segment(s) = e else { continue };
        let mut buf: &[u8] = &s.bytes;
        let moof = Moof::decode(&mut buf).unwrap();
        for traf in &moof.traf {
            let base = traf.tfdt.as_ref().unwrap().base_media_decode_time;
            let total: u64 = traf.trun[0]
                .samples
                .iter()
                .map(|e| u64::from(e.duration.unwrap()))
                .sum();
            let slot = out
                .iter_mut()
                .find(|(id, _)| *id == traf.tfhd.track_id)
                .unwrap();
            slot.1.push((base, total));
        }
    }
    out
}

#[test]
fn the_ffmpeg_push_becomes_three_two_second_segments() {
    let events = mux(0);
    let inits: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            MuxEvent::Init(i) => Some(i),
            _ => None,
        })
        .collect();
    assert_eq!(inits.len(), 1);
    assert!(inits[0].has_video && inits[0].has_audio);
    let video = events.iter().find_map(|e| match e {
        MuxEvent::VideoConfig(v) => Some(v.clone()),
        _ => None,
    });
    let video = video.unwrap();
    assert_eq!((video.width, video.height), (Some(320), Some(180)));
    assert_eq!(video.codec, "avc1.64000d");
    assert!(events.iter().any(|e| matches!(e, MuxEvent::AudioConfig(a) if a.codec == "mp4a.40.2" && a.sample_rate == 48000)));

    let segments: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            MuxEvent::Segment(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(segments.len(), 3);
    for (i, s) in segments.iter().enumerate() {
        assert_eq!(s.sequence, i as u64 + 1);
        assert!(s.independent);
        assert!(
            (s.duration - 2.0).abs() < 0.1,
            "segment {i}: {}",
            s.duration
        );
    }
    // The last segment lasts until its last picture is shown: its decode span plus the
    // composition offset of the B-frame stream (2 frames at 30 fps).
    let last = segments.last().unwrap();
    eprintln!("last segment {}", last.duration);
    assert!(last.duration > 2.05, "last segment {} s", last.duration);
    // Every video frame (180 pictures) and every AAC frame ends up in a segment.
    assert_eq!(segments.iter().map(|s| s.video_frames).sum::<usize>(), 180);
    let audio_frames = segments.iter().map(|s| s.audio_frames).sum::<usize>();
    assert_eq!(audio_frames, 283);
    // Fragments follow each other without gaps on both tracks.
    for (track, frags) in track_timing(&events) {
        for pair in frags.windows(2) {
            assert_eq!(pair[0].0 + pair[0].1, pair[1].0, "track {track}: {frags:?}");
        }
    }
    // The init segment is ftyp + moov.
    let mut buf: &[u8] = &inits[0].bytes;
    assert!(matches!(Any::decode(&mut buf).unwrap(), Any::Ftyp(_)));
    assert!(matches!(Any::decode(&mut buf).unwrap(), Any::Moov(_)));
}

#[test]
fn a_stream_crossing_the_32_bit_wrap_stays_continuous() {
    // Start 3 s before 2^32 ms: the wrap falls inside the second segment.
    let offset = u32::MAX - 2_999;
    let wrapped = mux(offset);
    let plain = mux(0);
    let timing = track_timing(&wrapped);
    assert_eq!(timing, track_timing(&plain));
    for (track, frags) in &timing {
        assert_eq!(frags.len(), 3, "track {track}");
        for pair in frags.windows(2) {
            assert!(
                pair[1].0 > pair[0].0,
                "track {track} not monotonic: {frags:?}"
            );
            assert_eq!(pair[0].0 + pair[0].1, pair[1].0, "track {track}: {frags:?}");
        }
    }
    let durations = |events: &[MuxEvent]| -> Vec<f64> {
        events
            .iter()
            .filter_map(|e| match e {
                MuxEvent::Segment(s) => Some(s.duration),
                _ => None,
            })
            .collect()
    };
    assert_eq!(durations(&wrapped), durations(&plain));
}

#[test]
fn audio_only_and_video_only_streams() {
    let tags = read_flv(&ffmpeg_push()).unwrap();
    for keep in [FlvTagKind::Audio, FlvTagKind::Video] {
        let mut muxer = StreamMuxer::new(2000);
        let mut events = Vec::new();
        for tag in tags.iter().filter(|t| t.kind == keep) {
            let out = match keep {
                FlvTagKind::Video => muxer.push_video(tag.timestamp, &tag.body),
                _ => muxer.push_audio(tag.timestamp, &tag.body),
            };
            events.extend(out.unwrap());
        }
        events.extend(muxer.finish().unwrap());
        let init = events
            .iter()
            .find_map(|e| match e {
                MuxEvent::Init(i) => Some(i),
                _ => None,
            })
            .unwrap();
        assert_eq!(init.has_video, keep == FlvTagKind::Video);
        assert_eq!(init.has_audio, keep == FlvTagKind::Audio);
        let total: f64 = events
            .iter()
            .filter_map(|e| match e {
                MuxEvent::Segment(s) => Some(s.duration),
                _ => None,
            })
            .sum();
        assert!((total - 6.0).abs() < 0.2, "{keep:?}: {total}");
    }
}

#[test]
fn garbage_tags_are_errors_not_panics() {
    let mut muxer = StreamMuxer::new(2000);
    assert!(muxer
        .push_video(0, &Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 9]))
        .unwrap()
        .iter()
        .all(|e| matches!(e, MuxEvent::Dropped(_))));
    assert!(muxer.push_video(0, &Bytes::from_static(&[0x22])).is_err());
    assert!(muxer
        .push_audio(0, &Bytes::from_static(&[0xaf, 0, 0xff]))
        .is_err());
    let tags = read_flv(&ffmpeg_push()).unwrap();
    // A frame whose NAL lengths do not add up is refused once the config is known.
    for tag in tags.iter().take(3) {
        let _ = match tag.kind {
            FlvTagKind::Video => muxer.push_video(tag.timestamp, &tag.body),
            FlvTagKind::Audio => muxer.push_audio(tag.timestamp, &tag.body),
            _ => continue,
        };
    }
    let err = muxer
        .push_video(40, &Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 9, 1]))
        .unwrap_err();
    assert_eq!(err.kind(), "bad_nal_lengths");
}

#[test]
fn a_new_video_config_mid_stream_goes_in_band_before_the_next_keyframe() {
    let tags = read_flv(&ffmpeg_push()).unwrap();
    let header = tags
        .iter()
        .find(|t| t.kind == FlvTagKind::Video && t.body.get(1) == Some(&0))
        .unwrap()
        .body
        .clone();
    // The same record with a recognisable PPS (the 4 bytes after its NAL header, before the
    // 4-byte High-profile extension, changed).
    let mut changed = header.to_vec();
    let n = changed.len();
    changed[n - 8..n - 4].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    let mut muxer = StreamMuxer::new(2000);
    let mut events = Vec::new();
    for (i, tag) in tags.iter().enumerate() {
        let out = match tag.kind {
            FlvTagKind::Video => muxer.push_video(tag.timestamp, &tag.body).unwrap(),
            FlvTagKind::Audio => muxer.push_audio(tag.timestamp, &tag.body).unwrap(),
            _ => continue,
        };
        events.extend(out);
        if i == 100 {
            events.extend(
                muxer
                    .push_video(tag.timestamp, &Bytes::from(changed.clone()))
                    .unwrap(),
            );
        }
    }
    events.extend(muxer.finish().unwrap());
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, MuxEvent::VideoConfig(_)))
            .count(),
        2
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, MuxEvent::Init(_)))
            .count(),
        1
    );
    let inband_pps = [0, 0, 0, 5, 0x68, 0xde, 0xad, 0xbe, 0xef];
    let carrying: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            MuxEvent::Segment(s) if s.bytes.windows(9).any(|w| w == inband_pps) => Some(s.sequence),
            _ => None,
        })
        .collect();
    assert_eq!(
        carrying,
        vec![2],
        "only the segment starting at the next keyframe"
    );
}

#[test]
fn a_continued_session_follows_the_earlier_part_on_the_timeline() {
    // A publisher that reconnected: its encoder starts its timestamps anywhere, its media lands
    // at 16.5 s of the session and its segments continue the numbering.
    let start = TimelineStart {
        start_ms: 16_500,
        first_sequence: 9,
    };
    let continued = mux_into(StreamMuxer::continuing(2000, start), 123_456);
    let plain = mux(0);
    let sequences: Vec<u64> = continued
        .iter()
        .filter_map(|e| match e {
            MuxEvent::Segment(s) => Some(s.sequence),
            _ => None,
        })
        .collect();
    assert_eq!(sequences, vec![9, 10, 11]);
    let first = continued.iter().find_map(|e| match e {
        MuxEvent::Segment(s) => Some(s.start_ms),
        _ => None,
    });
    assert_eq!(first, Some(16_500));
    // Every fragment is the plain one moved by 16.5 s on both tracks (audio at 48 kHz).
    let shift = |track: u32| {
        if track == VIDEO_TRACK_ID {
            16_500 * 90
        } else {
            16_500 * 48
        }
    };
    let moved: Vec<(u32, Vec<(u64, u64)>)> = track_timing(&plain)
        .into_iter()
        .map(|(track, frags)| {
            let frags = frags
                .into_iter()
                .map(|(b, d)| (b + shift(track), d))
                .collect();
            (track, frags)
        })
        .collect();
    assert_eq!(track_timing(&continued), moved);
}

/// One sample as a fragment has it: (track, decode time, duration, flags, composition
/// offset, data).
type SampleFacts = (u32, u64, u32, Option<u32>, Option<i64>, Vec<u8>);

/// Every sample of a fragment (`moof` + `mdat`, after any leading boxes such as `emsg`).
fn fragment_samples(bytes: &[u8]) -> Vec<SampleFacts> {
    let mut at = 0;
    // Skip to the moof (segments may start with emsg boxes).
    while &bytes[at + 4..at + 8] != b"moof" {
        at += u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    }
    let moof_start = at;
    let mut buf: &[u8] = &bytes[at..];
    let moof = Moof::decode(&mut buf).unwrap();
    let mut out = Vec::new();
    for traf in &moof.traf {
        let mut decode = traf.tfdt.as_ref().unwrap().base_media_decode_time;
        let trun = &traf.trun[0];
        let mut data_at = moof_start + trun.data_offset.unwrap() as usize;
        for e in trun.samples.iter() {
            let size = e.size.unwrap() as usize;
            let duration = e.duration.unwrap();
            out.push((
                traf.tfhd.track_id,
                decode,
                duration,
                e.flags,
                e.cts,
                bytes[data_at..data_at + size].to_vec(),
            ));
            data_at += size;
            decode += u64::from(duration);
        }
    }
    out.sort_by_key(|s| (s.0, s.1));
    out
}

#[test]
fn parts_hold_exactly_their_segments_samples() {
    let events = mux_into(StreamMuxer::new(2000).with_parts(300), 0);
    let mut parts: Vec<&super::segmenter::Part> = Vec::new();
    let mut segments = 0;
    // The stream's last segment is listed until its last picture is shown (see
    // `SegmentCutter::shown_until`); an ended playlist lists no parts.
    let last = events
        .iter()
        .filter_map(|e| match e {
            MuxEvent::Segment(s) => Some(s.sequence),
            _ => None,
        })
        .max()
        .unwrap();
    for e in &events {
        match e {
            MuxEvent::Part(p) => parts.push(p),
            MuxEvent::Segment(s) => {
                segments += 1;
                let mine: Vec<_> = parts.iter().filter(|p| p.segment == s.sequence).collect();
                assert!(
                    mine.len() >= 2,
                    "segment {} has {} parts",
                    s.sequence,
                    mine.len()
                );
                assert_eq!(
                    parts.len(),
                    mine.len(),
                    "parts of earlier segments came after their segment"
                );
                for (i, p) in mine.iter().enumerate() {
                    assert_eq!(p.index as usize, i, "part numbers run from 0");
                    assert!(p.duration <= 0.5, "part {} lasts {}", i, p.duration);
                }
                assert!(
                    mine[0].independent,
                    "a segment's first part starts with its keyframe"
                );
                assert_eq!(mine[0].start_ms, s.start_ms);
                let total: f64 = mine.iter().map(|p| p.duration).sum();
                if s.sequence != last {
                    assert!(
                        (total - s.duration).abs() < 0.002,
                        "{total} vs {}",
                        s.duration
                    );
                }
                let mut from_parts: Vec<_> = mine
                    .iter()
                    .flat_map(|p| fragment_samples(&p.bytes))
                    .collect();
                from_parts.sort_by_key(|s| (s.0, s.1));
                assert_eq!(
                    from_parts,
                    fragment_samples(&s.bytes),
                    "segment {}",
                    s.sequence
                );
                parts.clear();
            }
            _ => {}
        }
    }
    assert!(segments >= 2, "{segments} segments");
}

#[test]
fn without_a_part_target_there_are_no_parts() {
    let events = mux_into(StreamMuxer::new(2000), 0);
    assert!(!events.iter().any(|e| matches!(e, MuxEvent::Part(_))));
}
