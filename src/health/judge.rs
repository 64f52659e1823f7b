//! What counts as a problem, and the advice for each. Pure: [`judge`] reads [`Vitals`] and
//! returns the problems, in a fixed order, with messages for the streamer (OBS menu names,
//! since that is what most of them use).

use super::Problem;

/// Keyframes further apart than this make segments long and joins slow (HLS wants ~2 s).
pub const KEYFRAME_MAX_MS: u64 = 4_000;
/// The measured frame rate may fall this far under the announced one.
pub const FPS_SHARE: f64 = 0.8;
/// With nothing announced, a frame rate under this stutters for anyone.
pub const FPS_FLOOR: f64 = 10.0;
/// How long the bitrate must stay low before it is reported (short dips are normal).
pub const LOW_BITRATE_FOR_MS: u64 = 10_000;
/// Video running this long (stream time) with no audio frame means no audio.
pub const NO_AUDIO_MS: u64 = 5_000;
/// Stream time of video needed before frame rate and audio are judged.
pub const SETTLE_MS: u64 = 3_000;

/// The figures of a broadcast as [`super::StreamWatch`] measured them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vitals {
    pub video_frames: u64,
    /// Stream time the video covers (ms).
    pub video_ms: u64,
    pub fps: Option<f64>,
    pub announced_fps: Option<f64>,
    /// Longest recent gap between keyframes, the open one included (ms).
    pub keyframe_interval_ms: Option<u64>,
    pub kbps: f64,
    pub announced_kbps: Option<f64>,
    /// How long the bitrate has been under half the announced one (ms, 0: it is not).
    pub bitrate_low_ms: u64,
    pub audio_frames: u64,
    /// Stream time of video since the last audio frame (all of it when there was none).
    pub video_ms_without_audio: u64,
    /// Timestamp jumps in the last 30 s, and the last one's step (ms).
    pub recent_jumps: u32,
    pub last_jump_ms: Option<i64>,
}

fn problem(code: &str, message: String) -> Problem {
    Problem {
        code: code.to_string(),
        message,
    }
}

/// The problems `v` shows (empty: healthy).
pub fn judge(v: &Vitals) -> Vec<Problem> {
    let mut found = Vec::new();
    if let Some(gop) = v.keyframe_interval_ms.filter(|g| *g > KEYFRAME_MAX_MS) {
        found.push(problem(
            "keyframe_interval",
            format!(
                "Keyframes arrive every {:.1} s; players join late and segments run long. Set \
                 Keyframe Interval to 2 s in OBS > Settings > Output (Output Mode: Advanced, \
                 Streaming tab).",
                gop as f64 / 1000.0
            ),
        ));
    }
    if v.video_ms >= SETTLE_MS {
        if let Some(fps) = v.fps {
            match v.announced_fps {
                Some(want) if fps < want * FPS_SHARE => found.push(problem(
                    "frame_rate",
                    format!(
                        "Frames arrive at {fps:.0} fps but the encoder announced {want:.0}: the \
                         computer or the encoder cannot keep up. Lower the Output (Scaled) \
                         Resolution or FPS in OBS > Settings > Video, or pick a faster encoder \
                         preset in OBS > Settings > Output."
                    ),
                )),
                None if fps < FPS_FLOOR => found.push(problem(
                    "frame_rate",
                    format!(
                        "Frames arrive at {fps:.0} fps: motion will stutter. Set Common FPS \
                         Values to 30 in OBS > Settings > Video."
                    ),
                )),
                _ => {}
            }
        }
    }
    if v.bitrate_low_ms >= LOW_BITRATE_FOR_MS {
        if let Some(want) = v.announced_kbps {
            found.push(problem(
                "bitrate_low",
                format!(
                    "The stream arrives at {:.0} kbit/s but the encoder is set to {want:.0}: \
                     the upload cannot carry it. Lower Bitrate in OBS > Settings > Output, or \
                     use a wired connection.",
                    v.kbps
                ),
            ));
        }
    }
    if v.video_ms >= NO_AUDIO_MS && v.video_ms_without_audio >= NO_AUDIO_MS {
        let what = if v.audio_frames == 0 {
            "No audio is coming in"
        } else {
            "Audio stopped coming in"
        };
        found.push(problem(
            "no_audio",
            format!(
                "{what}: viewers hear nothing. Check the audio devices in OBS > Settings > \
                 Audio and that the Audio Mixer tracks are not muted."
            ),
        ));
    }
    if v.recent_jumps > 0 {
        found.push(problem(
            "timestamp_jumps",
            format!(
                "The encoder's timestamps jumped {} time(s) in the last 30 s (last by {} ms): \
                 players may stall or skip. This happens when the encoder restarts or the \
                 computer is overloaded; check OBS > View > Stats for skipped frames.",
                v.recent_jumps,
                v.last_jump_ms.unwrap_or(0)
            ),
        ));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Vitals {
        Vitals {
            video_frames: 300,
            video_ms: 10_000,
            fps: Some(30.0),
            announced_fps: Some(30.0),
            keyframe_interval_ms: Some(2_000),
            kbps: 2_600.0,
            announced_kbps: Some(2_660.0),
            audio_frames: 470,
            ..Vitals::default()
        }
    }

    fn codes(v: &Vitals) -> Vec<String> {
        judge(v).into_iter().map(|p| p.code).collect()
    }

    #[test]
    fn a_healthy_stream_has_no_problem() {
        assert!(judge(&healthy()).is_empty());
        assert!(
            judge(&Vitals::default()).is_empty(),
            "nothing yet is not a problem"
        );
    }

    #[test]
    fn an_eight_second_gop_is_reported_with_the_obs_setting() {
        let v = Vitals {
            keyframe_interval_ms: Some(8_000),
            ..healthy()
        };
        let found = judge(&v);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].code, "keyframe_interval");
        assert!(found[0].message.contains("8.0 s"), "{}", found[0].message);
        assert!(found[0].message.contains("Keyframe Interval to 2 s"));
        let edge = Vitals {
            keyframe_interval_ms: Some(KEYFRAME_MAX_MS),
            ..healthy()
        };
        assert!(judge(&edge).is_empty());
    }

    #[test]
    fn frame_rate_against_the_announced_or_a_floor() {
        let slow = Vitals {
            fps: Some(20.0),
            ..healthy()
        };
        assert_eq!(codes(&slow), ["frame_rate"]);
        let unannounced = Vitals {
            fps: Some(20.0),
            announced_fps: None,
            ..healthy()
        };
        assert!(judge(&unannounced).is_empty());
        let crawling = Vitals {
            fps: Some(5.0),
            ..unannounced
        };
        assert_eq!(codes(&crawling), ["frame_rate"]);
        let young = Vitals {
            video_ms: 1_000,
            ..crawling
        };
        assert!(judge(&young).is_empty(), "not judged before it settles");
    }

    #[test]
    fn low_bitrate_only_when_it_lasts_and_was_announced() {
        let dip = Vitals {
            kbps: 600.0,
            bitrate_low_ms: 4_000,
            ..healthy()
        };
        assert!(judge(&dip).is_empty());
        let lasting = Vitals {
            bitrate_low_ms: LOW_BITRATE_FOR_MS,
            ..dip
        };
        assert_eq!(codes(&lasting), ["bitrate_low"]);
        assert!(judge(&lasting)[0].message.contains("600 kbit/s"));
    }

    #[test]
    fn missing_or_stopped_audio_and_jumps() {
        let silent = Vitals {
            audio_frames: 0,
            video_ms_without_audio: 10_000,
            ..healthy()
        };
        assert_eq!(codes(&silent), ["no_audio"]);
        assert!(judge(&silent)[0].message.starts_with("No audio"));
        let stopped = Vitals {
            video_ms_without_audio: 6_000,
            ..healthy()
        };
        assert!(judge(&stopped)[0].message.starts_with("Audio stopped"));
        let jumpy = Vitals {
            recent_jumps: 2,
            last_jump_ms: Some(-4_900),
            keyframe_interval_ms: Some(9_000),
            ..healthy()
        };
        assert_eq!(codes(&jumpy), ["keyframe_interval", "timestamp_jumps"]);
    }
}
