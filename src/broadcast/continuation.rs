//! How one session goes on across publishes. A publisher that drops and comes back within
//! `rtmp.reconnect_grace_s` continues its session (the same playlists, VOD and danmaku session)
//! with a new part instead of starting a new broadcast. [`SessionParts`] keeps the bookkeeping
//! that needs: where the media written so far ends on the session timeline, the next segment
//! number, and where the next part starts.
//!
//! A part starts after the media so far plus the wall-clock time nobody published, so the
//! timeline keeps counting through the gap the way stream time (ms since the session's first
//! frame, what danmaku carry) does: a player's position stays the comments' `stream_ms`.
//! Pure: instants are passed in.

use std::time::Instant;

use crate::media::TimelineStart;

/// The parts of one session so far.
#[derive(Debug, Clone)]
pub struct SessionParts {
    /// 1 for the first publish, 2 after the first reconnect, ...
    part: u32,
    /// End (ms on the session timeline) of the latest segment cut.
    media_end_ms: u64,
    /// Number the next segment gets.
    next_sequence: u64,
    /// When the current part's publisher went away (None while it publishes).
    left_at: Option<Instant>,
}

impl Default for SessionParts {
    fn default() -> SessionParts {
        SessionParts::new()
    }
}

impl SessionParts {
    /// A session whose first part starts at time 0 with segment 1.
    pub fn new() -> SessionParts {
        SessionParts {
            part: 1,
            media_end_ms: 0,
            next_sequence: 1,
            left_at: None,
        }
    }

    /// The current part: 1 until the first reconnect.
    pub fn part(&self) -> u32 {
        self.part
    }

    /// Notes a segment the muxer cut (stored or lost: it used its number and its time).
    pub fn segment_cut(&mut self, sequence: u64, start_ms: u64, duration_s: f64) {
        let end = start_ms + (duration_s.max(0.0) * 1000.0).round() as u64;
        self.media_end_ms = self.media_end_ms.max(end);
        self.next_sequence = self.next_sequence.max(sequence + 1);
    }

    /// Notes that the publisher went away at `at` (its last segment already cut).
    pub fn publisher_left(&mut self, at: Instant) {
        self.left_at = Some(at);
    }

    /// When the publisher went away, while nobody publishes.
    pub fn left_at(&self) -> Option<Instant> {
        self.left_at
    }

    /// Starts the next part for a publisher that came back at `at`: it continues after the
    /// media so far plus the time nobody published. Returns where its media goes.
    pub fn resume(&mut self, at: Instant) -> TimelineStart {
        let gap_ms = self.left_at.take().map_or(0, |left| {
            at.saturating_duration_since(left).as_millis() as u64
        });
        self.part += 1;
        // The timeline has moved on through the gap even if this part cuts nothing.
        self.media_end_ms += gap_ms;
        TimelineStart {
            start_ms: self.media_end_ms,
            first_sequence: self.next_sequence,
        }
    }

    /// Where the media cut so far ends on the session timeline (ms).
    pub fn media_end_ms(&self) -> u64 {
        self.media_end_ms
    }

    /// Starts the next part when no media came before it at all: stream time 0 is still to
    /// come (the session's first frame), so the timeline starts afresh and no gap counts.
    pub fn resume_before_any_media(&mut self) -> TimelineStart {
        self.left_at = None;
        self.part += 1;
        self.media_end_ms = 0;
        TimelineStart {
            start_ms: 0,
            first_sequence: self.next_sequence,
        }
    }

    /// Milliseconds nobody published between `left_at` and `at` (0 while publishing).
    pub fn gap_ms(&self, at: Instant) -> u64 {
        self.left_at.map_or(0, |left| {
            at.saturating_duration_since(left).as_millis() as u64
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_next_part_starts_after_the_media_and_the_gap() {
        let t0 = Instant::now();
        let mut parts = SessionParts::new();
        assert_eq!(parts.part(), 1);
        parts.segment_cut(1, 0, 2.0);
        parts.segment_cut(2, 2_000, 2.0);
        // A lost segment still used its number and time.
        parts.segment_cut(3, 4_000, 1.5);
        parts.publisher_left(t0);
        assert_eq!(parts.gap_ms(t0 + Duration::from_millis(500)), 500);
        let start = parts.resume(t0 + Duration::from_millis(2_250));
        assert_eq!(parts.part(), 2);
        assert_eq!(
            start,
            TimelineStart {
                start_ms: 7_750,
                first_sequence: 4,
            }
        );
        assert_eq!(parts.left_at(), None);
        // Segments of part 2 move the end on from there.
        parts.segment_cut(4, 7_750, 2.0);
        parts.publisher_left(t0 + Duration::from_secs(10));
        let start = parts.resume(t0 + Duration::from_secs(11));
        assert_eq!(parts.part(), 3);
        assert_eq!(start.start_ms, 10_750);
        assert_eq!(start.first_sequence, 5);
    }

    #[test]
    fn a_part_without_segments_keeps_the_timeline_where_it_was() {
        let t0 = Instant::now();
        let mut parts = SessionParts::new();
        parts.publisher_left(t0);
        let start = parts.resume(t0 + Duration::from_secs(1));
        assert_eq!(start.start_ms, 1_000);
        assert_eq!(start.first_sequence, 1);
        // A clock that went backwards counts no gap.
        parts.publisher_left(t0 + Duration::from_secs(5));
        assert_eq!(parts.resume(t0).start_ms, 1_000);
        // Before any media, nothing counts: the timeline starts at the first frame to come.
        let mut parts = SessionParts::new();
        parts.publisher_left(t0);
        let start = parts.resume_before_any_media();
        assert_eq!(
            (start.start_ms, start.first_sequence, parts.part()),
            (0, 1, 2)
        );
    }
}
