//! [`StreamWatch`]: the figures health is judged on, followed frame by frame. Pure: frames come
//! with their stream timestamp and the caller's `now_ms` (any monotonic milliseconds), so tests
//! feed it made-up frames.
//!
//! Frame rate and keyframe interval are measured on the encoder's timestamps (what it meant to
//! send); timestamp jumps and how long the bitrate has been low are measured on `now_ms`.

use std::collections::VecDeque;

use super::judge::Vitals;
use crate::media::StreamMetadata;

/// Stream time over which the frame rate is measured.
const FPS_WINDOW_MS: u64 = 5_000;
/// Keyframe gaps remembered (stream time).
const KEYFRAME_WINDOW_MS: u64 = 60_000;
/// A step between two frames of one track larger than this, or backwards, is a jump.
pub const JUMP_MS: i64 = 2_000;
/// A jump stays reported this long (wall time).
const JUMP_MEMORY_MS: u64 = 30_000;
/// The bitrate counts as low below this share of the announced one.
pub const LOW_BITRATE_SHARE: f64 = 0.5;

/// One track's timeline: 32-bit wrapping timestamps made continuous, jumps counted.
#[derive(Debug, Default)]
struct Track {
    last_raw: Option<u32>,
    /// Continuous stream time of the last frame (ms).
    now: u64,
    frames: u64,
}

impl Track {
    /// Places a frame; returns the step if it was a jump.
    fn frame(&mut self, raw: u32) -> Option<i64> {
        self.frames += 1;
        let last = self.last_raw.replace(raw)?;
        let step = i64::from(raw.wrapping_sub(last) as i32);
        if !(0..=JUMP_MS).contains(&step) {
            return Some(step);
        }
        self.now += step as u64;
        None
    }
}

/// The figures of one session (see the module doc).
#[derive(Debug, Default)]
pub struct StreamWatch {
    video: Track,
    audio: Track,
    /// Stream times of recent video frames (for the frame rate).
    frame_times: VecDeque<u64>,
    /// Stream times of recent keyframes.
    keyframes: VecDeque<u64>,
    /// Wall times of recent jumps, with their step.
    jumps: VecDeque<(u64, i64)>,
    announced_fps: Option<f64>,
    announced_kbps: Option<f64>,
    /// Since when (wall) the bitrate has been below [`LOW_BITRATE_SHARE`] of the announced.
    low_since: Option<u64>,
    /// Audio frames seen when video had run this long (stream ms), for "audio stopped".
    last_audio_video_ms: Option<u64>,
}

impl StreamWatch {
    pub fn new() -> StreamWatch {
        StreamWatch::default()
    }

    /// What the encoder announced (`onMetaData`).
    pub fn metadata(&mut self, meta: &StreamMetadata) {
        if let Some(fps) = meta.framerate.filter(|f| *f > 0.0) {
            self.announced_fps = Some(fps);
        }
        let kbps = meta.video_kbps.unwrap_or(0.0) + meta.audio_kbps.unwrap_or(0.0);
        if kbps > 0.0 {
            self.announced_kbps = Some(kbps);
        }
    }

    /// A video tag (FLV body); configs and end-of-sequence tags are not frames.
    pub fn video(&mut self, now_ms: u64, timestamp: u32, body: &[u8]) {
        let (Some(&head), Some(&packet)) = (body.first(), body.get(1)) else {
            return;
        };
        if packet != 1 {
            return;
        }
        if let Some(step) = self.video.frame(timestamp) {
            self.jumped(now_ms, step);
        }
        let t = self.video.now;
        self.frame_times.push_back(t);
        while self
            .frame_times
            .front()
            .is_some_and(|f| t.saturating_sub(*f) > FPS_WINDOW_MS)
        {
            self.frame_times.pop_front();
        }
        if head >> 4 == 1 {
            self.keyframes.push_back(t);
            while self
                .keyframes
                .front()
                .is_some_and(|k| t.saturating_sub(*k) > KEYFRAME_WINDOW_MS)
                && self.keyframes.len() > 2
            {
                self.keyframes.pop_front();
            }
        }
    }

    /// An audio tag (configs included: a stream that sends only an audio config has no audio).
    pub fn audio(&mut self, now_ms: u64, timestamp: u32, body: &[u8]) {
        // AAC packet type 0 is the AudioSpecificConfig, not a frame.
        if body.first().is_some_and(|b| b >> 4 == 10) && body.get(1) == Some(&0) {
            return;
        }
        if let Some(step) = self.audio.frame(timestamp) {
            self.jumped(now_ms, step);
        }
        self.last_audio_video_ms = Some(self.video.now);
    }

    fn jumped(&mut self, now_ms: u64, step: i64) {
        self.jumps.push_back((now_ms, step));
    }

    /// The figures as they stand at `now_ms`, with the measured bitrate.
    pub fn vitals(&mut self, now_ms: u64, kbps: f64) -> Vitals {
        while self
            .jumps
            .front()
            .is_some_and(|(at, _)| now_ms.saturating_sub(*at) > JUMP_MEMORY_MS)
        {
            self.jumps.pop_front();
        }
        let low = self
            .announced_kbps
            .is_some_and(|a| kbps < a * LOW_BITRATE_SHARE);
        self.low_since = match (low, self.low_since) {
            (false, _) => None,
            (true, None) => Some(now_ms),
            (true, since) => since,
        };
        let video_ms = self.video.now;
        Vitals {
            video_frames: self.video.frames,
            video_ms,
            fps: self.fps(),
            announced_fps: self.announced_fps,
            keyframe_interval_ms: self.keyframe_interval_ms(),
            kbps,
            announced_kbps: self.announced_kbps,
            bitrate_low_ms: self.low_since.map_or(0, |s| now_ms - s),
            audio_frames: self.audio.frames,
            video_ms_without_audio: match self.last_audio_video_ms {
                Some(at) => video_ms.saturating_sub(at),
                None => video_ms,
            },
            recent_jumps: self.jumps.len() as u32,
            last_jump_ms: self.jumps.back().map(|(_, step)| *step),
        }
    }

    /// Frames per second over the last [`FPS_WINDOW_MS`] of stream time (None under a second).
    fn fps(&self) -> Option<f64> {
        let (first, last) = (self.frame_times.front()?, self.frame_times.back()?);
        let span = last - first;
        if span < 1_000 {
            return None;
        }
        Some((self.frame_times.len() - 1) as f64 * 1000.0 / span as f64)
    }

    /// The longest gap between keyframes lately, counting the time since the last one (a GOP
    /// still open that is already too long is reported before its keyframe comes).
    fn keyframe_interval_ms(&self) -> Option<u64> {
        let last = *self.keyframes.back()?;
        let open = self.video.now.saturating_sub(last);
        let closed = self
            .keyframes
            .iter()
            .zip(self.keyframes.iter().skip(1))
            .map(|(a, b)| b - a)
            .max();
        match closed {
            Some(c) => Some(c.max(open)),
            None if open > 0 => Some(open),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 5] = [0x17, 1, 0, 0, 0];
    const INTER: [u8; 5] = [0x27, 1, 0, 0, 0];
    const AAC: [u8; 3] = [0xaf, 1, 0];

    /// `seconds` of video at `fps` with a keyframe every `gop` frames, and AAC alongside.
    fn push(w: &mut StreamWatch, seconds: u32, fps: u32, gop: u32, audio: bool) {
        for i in 0..seconds * fps {
            let ts = i * 1000 / fps;
            let body = if i % gop == 0 { &KEY } else { &INTER };
            w.video(u64::from(ts), ts, body);
            if audio && i % 2 == 0 {
                w.audio(u64::from(ts), ts, &AAC);
            }
        }
    }

    #[test]
    fn measures_frame_rate_and_keyframe_interval() {
        let mut w = StreamWatch::new();
        push(&mut w, 10, 30, 60, true);
        let v = w.vitals(10_000, 1000.0);
        let fps = v.fps.unwrap();
        assert!((fps - 30.0).abs() < 0.5, "{fps}");
        assert_eq!(v.keyframe_interval_ms, Some(2000));
        assert_eq!(v.recent_jumps, 0);
        assert!(v.audio_frames > 0 && v.video_ms_without_audio < 100);
    }

    #[test]
    fn an_open_gop_counts_toward_the_interval() {
        let mut w = StreamWatch::new();
        push(&mut w, 5, 30, 240, false);
        let v = w.vitals(5_000, 1000.0);
        assert!(v.keyframe_interval_ms.unwrap() > 4_900);
        assert_eq!(v.audio_frames, 0);
    }

    #[test]
    fn jumps_are_counted_then_forgotten_and_wrapping_is_not_a_jump() {
        let mut w = StreamWatch::new();
        w.video(0, u32::MAX - 10, &KEY);
        w.video(10, 20, &INTER);
        assert_eq!(w.vitals(10, 0.0).recent_jumps, 0, "wrap-around");
        w.video(20, 5_000, &INTER);
        w.video(30, 100, &INTER);
        let v = w.vitals(40, 0.0);
        assert_eq!((v.recent_jumps, v.last_jump_ms), (2, Some(-4900)));
        assert_eq!(w.vitals(40 + JUMP_MEMORY_MS + 1, 0.0).recent_jumps, 0);
    }

    #[test]
    fn low_bitrate_is_timed_from_when_it_began() {
        let mut w = StreamWatch::new();
        w.metadata(&StreamMetadata {
            video_kbps: Some(2500.0),
            audio_kbps: Some(160.0),
            ..StreamMetadata::default()
        });
        assert_eq!(w.vitals(1_000, 2000.0).bitrate_low_ms, 0);
        w.vitals(2_000, 500.0);
        assert_eq!(w.vitals(9_000, 400.0).bitrate_low_ms, 7_000);
        assert_eq!(w.vitals(10_000, 2600.0).bitrate_low_ms, 0);
    }

    #[test]
    fn configs_are_not_frames() {
        let mut w = StreamWatch::new();
        w.video(0, 0, &[0x17, 0, 0, 0, 0]);
        w.audio(0, 0, &[0xaf, 0, 0x12, 0x10]);
        let v = w.vitals(0, 0.0);
        assert_eq!((v.video_frames, v.audio_frames), (0, 0));
        w.video(0, 0, &[]);
        assert_eq!(w.vitals(0, 0.0).video_frames, 0);
    }
}
