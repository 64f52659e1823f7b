//! Bounds a publisher must keep, whatever its timestamps say. Segments are cut by media time,
//! so a publisher (with a valid key) whose timestamps never advance would have the segment
//! being filled grow without bound. Two bounds catch it: the bytes buffered for one segment
//! (`hls.max_segment_bytes`) and the wall time since the last segment was cut
//! (`hls.max_segment_wall_s`) while media keeps arriving. A publisher past either is cut off:
//! the session writer closes its media channel (the RTMP session ends) and logs which bound.
//! Pure: the writer passes the clock reading.

use std::time::{Duration, Instant};

/// Which bound a publisher broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoundBroken {
    #[error(
        "{bytes} bytes buffered for one segment, past hls.max_segment_bytes ({limit}): \
         are the publisher's timestamps advancing?"
    )]
    SegmentBytes { bytes: usize, limit: usize },
    #[error(
        "no segment cut for {waited:?} of media, past hls.max_segment_wall_s ({limit:?}): \
         are the publisher's timestamps advancing?"
    )]
    SegmentWallTime { waited: Duration, limit: Duration },
}

impl BoundBroken {
    /// Metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            BoundBroken::SegmentBytes { .. } => "segment_bytes",
            BoundBroken::SegmentWallTime { .. } => "segment_wall_time",
        }
    }
}

/// The bounds of one publish, and when its last segment was cut.
#[derive(Debug, Clone)]
pub struct PublisherBounds {
    max_segment_bytes: usize,
    max_segment_wall: Duration,
    /// When the segment being filled started (the first media, or the last cut).
    segment_since: Option<Instant>,
    /// Most bytes ever buffered (reported at the end, and what tests check stays bounded).
    peak_bytes: usize,
}

impl PublisherBounds {
    pub fn new(max_segment_bytes: usize, max_segment_wall: Duration) -> PublisherBounds {
        PublisherBounds {
            max_segment_bytes,
            max_segment_wall,
            segment_since: None,
            peak_bytes: 0,
        }
    }

    /// A segment was cut at `now`.
    pub fn segment_cut(&mut self, now: Instant) {
        self.segment_since = Some(now);
    }

    /// Checks after a media message: `buffered` bytes held, at `now`.
    pub fn check(&mut self, buffered: usize, now: Instant) -> Result<(), BoundBroken> {
        self.peak_bytes = self.peak_bytes.max(buffered);
        let since = *self.segment_since.get_or_insert(now);
        if buffered > self.max_segment_bytes {
            return Err(BoundBroken::SegmentBytes {
                bytes: buffered,
                limit: self.max_segment_bytes,
            });
        }
        let waited = now.saturating_duration_since(since);
        if waited > self.max_segment_wall {
            return Err(BoundBroken::SegmentWallTime {
                waited,
                limit: self.max_segment_wall,
            });
        }
        Ok(())
    }

    /// Most bytes buffered at any check.
    pub fn peak_bytes(&self) -> usize {
        self.peak_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_wall_time_since_the_last_cut_are_bounded() {
        let t0 = Instant::now();
        let mut b = PublisherBounds::new(1000, Duration::from_secs(60));
        b.check(10, t0).unwrap();
        b.check(1000, t0 + Duration::from_secs(59)).unwrap();
        assert_eq!(
            b.check(1001, t0 + Duration::from_secs(59))
                .unwrap_err()
                .reason(),
            "segment_bytes"
        );
        assert_eq!(
            b.check(5, t0 + Duration::from_secs(61))
                .unwrap_err()
                .reason(),
            "segment_wall_time"
        );
        b.segment_cut(t0 + Duration::from_secs(61));
        b.check(5, t0 + Duration::from_secs(100)).unwrap();
        assert_eq!(b.peak_bytes(), 1001);
    }

    #[test]
    fn frozen_timestamps_are_cut_off_with_the_buffer_bounded() {
        use crate::media::StreamMuxer;
        use bytes::Bytes;
        // A real stream's first keyframe, then the same inter frame with timestamp 0 forever.
        let push = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/ffmpeg_push_6s.flv"
        ))
        .unwrap();
        let tags = crate::media::flv_file::read_flv(&Bytes::from(push)).unwrap();
        let mut muxer = StreamMuxer::new(2000);
        let mut bounds = PublisherBounds::new(1 << 20, Duration::from_secs(60));
        let now = Instant::now();
        let mut sent = 0usize;
        let mut broken = None;
        let frames = tags
            .iter()
            .filter(|t| t.kind == crate::media::flv_file::FlvTagKind::Video)
            .cycle()
            .take(100_000);
        for tag in frames {
            let body = tag.body.clone();
            let _ = muxer.push_video(0, &body);
            sent += body.len();
            if let Err(e) = bounds.check(muxer.buffered_bytes(), now) {
                broken = Some(e);
                break;
            }
        }
        assert_eq!(broken.map(|e| e.reason()), Some("segment_bytes"));
        assert!(sent < 4 << 20, "cut off after {sent} bytes");
        assert!(bounds.peak_bytes() < (1 << 20) + 256 * 1024);
        assert!(muxer.probe_audio_frames() <= crate::media::muxer::MAX_PROBE_AUDIO_FRAMES);
    }
}
