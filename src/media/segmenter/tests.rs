//! Segment cutting on synthetic frame sequences.

use super::*;

fn video(dts_ms: u64, keyframe: bool) -> VideoFrame {
    VideoFrame {
        dts_ms,
        composition_ms: 0,
        keyframe,
        data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
    }
}

fn audio(pts_ms: u64) -> AudioFrame {
    AudioFrame {
        pts_ms,
        data: Bytes::from_static(&[0x21]),
    }
}

/// Feeds 30 fps video with a keyframe every `gop` frames, plus 48 kHz audio.
fn run(cutter: &mut SegmentCutter, frames: u64, gop: u64) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut next_audio = 0.0f64;
    for i in 0..frames {
        let t = i * 1000 / 30;
        while next_audio <= t as f64 {
            if let (_, Some(s)) = cutter.push_audio(audio(next_audio as u64)).unwrap() {
                out.push(s);
            }
            next_audio += 1024.0 * 1000.0 / 48000.0;
        }
        if let Some(s) = cutter.push_video(video(t, i % gop == 0)).unwrap() {
            out.push(s);
        }
    }
    out.extend(cutter.finish().unwrap());
    out
}

#[test]
fn cuts_at_the_first_keyframe_past_the_target() {
    let mut c = SegmentCutter::new(2000, true, Some(48000));
    // 10 s at 30 fps, keyframe every 1.5 s: cuts at 3.0, 6.0, 9.0 s.
    let segs = run(&mut c, 300, 45);
    let starts: Vec<u64> = segs.iter().map(|s| s.start_ms).collect();
    assert_eq!(starts, vec![0, 3000, 6000, 9000]);
    let seqs: Vec<u64> = segs.iter().map(|s| s.sequence).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    assert!((segs[0].duration - 3.0).abs() < 1e-9);
    assert!(
        (segs[3].duration - 1.0).abs() < 0.01,
        "{}",
        segs[3].duration
    );
    assert!(segs.iter().all(|s| s.independent));
    assert_eq!(segs.iter().map(|s| s.video_frames).sum::<usize>(), 300);
    assert_eq!(segs[0].video_frames, 90);
}

#[test]
fn nothing_before_the_first_keyframe() {
    let mut c = SegmentCutter::new(2000, true, Some(48000));
    assert_eq!(c.push_video(video(0, false)).unwrap(), None);
    assert_eq!(
        c.push_audio(audio(0)).unwrap(),
        (AudioOutcome::NoOpenSegment, None)
    );
    assert!(!c.is_open());
    c.push_video(video(33, true)).unwrap();
    assert!(c.is_open());
    let last = c.finish().unwrap().unwrap();
    assert_eq!((last.start_ms, last.video_frames), (33, 1));
    assert_eq!(c.finish().unwrap(), None);
}

#[test]
fn audio_only_is_cut_by_time() {
    let mut c = SegmentCutter::new(2000, false, Some(48000));
    let mut segs = Vec::new();
    for i in 0..300u64 {
        if let (AudioOutcome::Queued, Some(s)) =
            c.push_audio(audio(i * 1024 * 1000 / 48000)).unwrap()
        {
            segs.push(s);
        }
    }
    segs.extend(c.finish().unwrap());
    assert_eq!(segs.len(), 4); // 6.4 s of audio
    assert!(segs[..3].iter().all(|s| (2.0..2.03).contains(&s.duration)));
    assert_eq!(segs.iter().map(|s| s.audio_frames).sum::<usize>(), 300);
}

#[test]
fn a_gop_that_never_ends_is_cut_at_the_cap() {
    let mut c = SegmentCutter::new(2000, true, None);
    let mut segs = Vec::new();
    for i in 0..(35 * 30) {
        segs.extend(c.push_video(video(i * 1000 / 30, i == 0)).unwrap());
    }
    assert_eq!(segs.len(), 1);
    assert!(segs[0].duration >= 30.0);
    segs.extend(c.finish().unwrap());
    assert!(!segs[1].independent);
}

#[test]
fn audio_clock_resyncs_on_gaps_and_drops_early_frames() {
    let mut c = SegmentCutter::new(2000, false, Some(48000));
    c.push_audio(audio(0)).unwrap();
    c.push_audio(audio(21)).unwrap();
    // 500 ms gap: resync forward.
    c.push_audio(audio(543)).unwrap();
    // 200 ms behind the clock: dropped.
    assert_eq!(
        c.push_audio(audio(360)).unwrap(),
        (AudioOutcome::Early, None)
    );
    let seg = c.finish().unwrap().unwrap();
    assert_eq!(seg.audio_frames, 3);
    assert!((seg.duration - (543.0 + 21.333) / 1000.0).abs() < 0.002);
}

#[test]
fn repeated_video_timestamps_stay_increasing() {
    let mut c = SegmentCutter::new(2000, true, None);
    c.push_video(video(100, true)).unwrap();
    c.push_video(video(100, false)).unwrap();
    c.push_video(video(90, false)).unwrap();
    c.push_video(video(133, false)).unwrap();
    let seg = c.finish().unwrap().unwrap();
    assert_eq!(seg.video_frames, 4);
    assert!(seg.duration > 0.0);
}
