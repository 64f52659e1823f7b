//! RTMP timestamps are 32-bit milliseconds that wrap after ~49.7 days and may start anywhere
//! (an encoder's uptime, say). [`TimestampUnwrapper`] turns them into one u64 session timeline
//! that starts at 0 (or where an earlier part of the session left off, after a reconnect) and
//! keeps counting across the wrap.

/// How far a timestamp may step back without being taken for a reset: audio and video of one
/// stream interleave a little out of order, and that jitter is normal.
pub const JITTER_TOLERANCE_MS: i64 = 3_000;

/// Unwraps one stream's 32-bit ms timestamps (audio and video share it) into session time.
///
/// The reference only moves forward, so the timeline is monotonic; a timestamp up to
/// [`JITTER_TOLERANCE_MS`] behind the newest maps to its (slightly earlier) place without moving
/// the reference, and per-track order is enforced by the segmenter. A larger step back is an
/// encoder reset: the timeline continues from where it was instead of jumping back.
#[derive(Debug, Clone, Default)]
pub struct TimestampUnwrapper {
    /// The newest raw timestamp seen and its place on the unwrapped timeline.
    newest: Option<(u32, i64)>,
    /// Unwrapped value of the first timestamp: session time 0.
    origin: i64,
    /// How many resets (large backward steps) were absorbed.
    resets: u64,
    /// Session time of the first timestamp (0, or where a continued session resumes).
    start: u64,
}

impl TimestampUnwrapper {
    /// An unwrapper whose first timestamp becomes session time 0.
    pub fn new() -> TimestampUnwrapper {
        TimestampUnwrapper::default()
    }

    /// An unwrapper whose first timestamp becomes session time `start_ms`: a publisher that
    /// reconnected continues the session's timeline where it should be, whatever its encoder
    /// restarted its timestamps at.
    pub fn starting_at(start_ms: u64) -> TimestampUnwrapper {
        TimestampUnwrapper {
            start: start_ms,
            ..TimestampUnwrapper::default()
        }
    }

    /// Session time (ms since the first timestamp) of a raw RTMP timestamp.
    pub fn unwrap(&mut self, raw: u32) -> u64 {
        let Some((newest_raw, newest)) = self.newest else {
            self.newest = Some((raw, i64::from(raw)));
            self.origin = i64::from(raw);
            return self.start;
        };
        // The signed distance on the 32-bit circle: a step over the wrap is a small positive one.
        let delta = i64::from(raw.wrapping_sub(newest_raw) as i32);
        let unwrapped = if delta >= 0 {
            let next = newest + delta;
            self.newest = Some((raw, next));
            next
        } else if delta >= -JITTER_TOLERANCE_MS {
            newest + delta
        } else {
            self.resets += 1;
            self.newest = Some((raw, newest));
            newest
        };
        u64::try_from(unwrapped - self.origin)
            .unwrap_or(0)
            .saturating_add(self.start)
    }

    /// Large backward steps absorbed so far (encoder restarts, broken muxers).
    pub fn resets(&self) -> u64 {
        self.resets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_zero_and_counts_across_the_wrap() {
        let mut t = TimestampUnwrapper::new();
        let start = u32::MAX - 2_999; // 2^32 - 3000
        assert_eq!(t.unwrap(start), 0);
        assert_eq!(t.unwrap(start.wrapping_add(1_000)), 1_000);
        assert_eq!(t.unwrap(start.wrapping_add(2_999)), 2_999);
        assert_eq!(t.unwrap(0), 3_000);
        assert_eq!(t.unwrap(40), 3_040);
        assert_eq!(t.unwrap(1_000_000), 1_003_000);
        assert_eq!(t.resets(), 0);
    }

    #[test]
    fn jitter_maps_back_without_moving_the_reference() {
        let mut t = TimestampUnwrapper::new();
        assert_eq!(t.unwrap(1_000), 0);
        assert_eq!(t.unwrap(1_100), 100);
        assert_eq!(t.unwrap(1_080), 80);
        assert_eq!(t.unwrap(1_133), 133);
        // Jitter before the first timestamp clamps at 0.
        let mut t = TimestampUnwrapper::new();
        assert_eq!(t.unwrap(500), 0);
        assert_eq!(t.unwrap(490), 0);
        // Jitter across the wrap.
        let mut t = TimestampUnwrapper::new();
        assert_eq!(t.unwrap(u32::MAX - 10), 0);
        assert_eq!(t.unwrap(20), 31);
        assert_eq!(t.unwrap(u32::MAX - 5), 5);
        assert_eq!(t.unwrap(40), 51);
    }

    #[test]
    fn a_reset_continues_the_timeline() {
        let mut t = TimestampUnwrapper::new();
        t.unwrap(100_000);
        assert_eq!(t.unwrap(160_000), 60_000);
        assert_eq!(t.unwrap(0), 60_000);
        assert_eq!(t.unwrap(40), 60_040);
        assert_eq!(t.resets(), 1);
    }

    #[test]
    fn a_continued_session_starts_where_it_resumes() {
        let mut t = TimestampUnwrapper::starting_at(16_500);
        assert_eq!(t.unwrap(0), 16_500);
        assert_eq!(t.unwrap(33), 16_533);
        // Jitter before the first timestamp clamps at the start, never before it.
        assert_eq!(t.unwrap(0), 16_500);
        assert_eq!(t.unwrap(4_000_000_000), 16_533);
        assert_eq!(t.resets(), 1);
    }

    proptest::proptest! {
        #[test]
        fn forward_steps_stay_monotonic(start: u32, steps in proptest::collection::vec(0u32..5_000, 1..200)) {
            let mut t = TimestampUnwrapper::new();
            let mut raw = start;
            let mut expect = 0u64;
            proptest::prop_assert_eq!(t.unwrap(raw), 0);
            for s in steps {
                raw = raw.wrapping_add(s);
                expect += u64::from(s);
                proptest::prop_assert_eq!(t.unwrap(raw), expect);
            }
        }
    }
}
