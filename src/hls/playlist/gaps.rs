//! Time nobody published, on the playlist timeline. When a publisher reconnects, its media goes
//! on the session timeline after the earlier parts plus the time it was away (so stream time
//! and a player's position agree). Players place media on the playlist's timeline (the sum of
//! `EXTINF`s, from each discontinuity on), so that time is listed too: entries marked
//! `EXT-X-GAP` (RFC 8216bis 4.4.4.7: no media, not to be loaded), none longer than the target
//! duration. A player that does not know the tag asks for [`GAP_FILE`] and gets a 404.

use chrono::{DateTime, Utc};

use super::{ListedSegment, SessionPlaylists};

/// The name gap entries carry (no such object is ever written).
pub const GAP_FILE: &str = "gap.m4s";

impl SessionPlaylists {
    /// Lists `seconds` without media starting at wall-clock `start`, as gap entries of at most
    /// the target duration each. A part begun before it still begins at the next segment.
    pub fn push_gap(&mut self, seconds: f64, start: DateTime<Utc>) {
        let step_ms = (self.target_duration * 1000).max(1);
        let mut left_ms = (seconds.max(0.0) * 1000.0).round() as u64;
        let mut at = start;
        while left_ms > 0 {
            let ms = left_ms.min(step_ms);
            self.segments.push(ListedSegment {
                file: GAP_FILE.to_string(),
                duration: ms as f64 / 1000.0,
                program_date_time: at,
                independent: true,
                discontinuity: false,
            });
            at += chrono::Duration::milliseconds(ms as i64);
            left_ms -= ms;
        }
    }
}

/// Marks each gap entry of a rendered playlist with `EXT-X-GAP` (`hls_m3u8` has no such tag),
/// right before its URI.
pub(super) fn mark_gaps(text: &str, uri_prefix: &str) -> String {
    let gap_uri = format!("{uri_prefix}{GAP_FILE}");
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.trim_end() == gap_uri {
            out.push_str("#EXT-X-GAP\n");
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::playlist::SessionState;
    use chrono::TimeZone;

    fn segment(n: u64, at: DateTime<Utc>) -> ListedSegment {
        ListedSegment {
            file: format!("{n:06}.m4s"),
            duration: 2.0,
            program_date_time: at,
            independent: true,
            discontinuity: false,
        }
    }

    #[test]
    fn the_time_away_is_listed_as_gaps_before_the_next_part() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 13, 5, 0).unwrap();
        let mut p = SessionPlaylists::new("S", 2.0);
        p.push(segment(1, t0));
        p.begin_part("init-2.mp4");
        p.push_gap(4.5, t0 + chrono::Duration::seconds(2));
        p.push(segment(2, t0 + chrono::Duration::milliseconds(6_500)));
        assert_eq!(p.len(), 5);
        let vod = p.session_playlist(SessionState::Ended).unwrap();
        assert_eq!(vod.matches("#EXT-X-GAP\n").count(), 3, "{vod}");
        assert!(
            vod.contains("#EXTINF:0.5,\n#EXT-X-GAP\ngap.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-2.mp4\"\n"),
            "{vod}"
        );
        let parsed = hls_m3u8::MediaPlaylist::try_from(vod.as_str()).unwrap();
        assert!((parsed.duration().as_secs_f64() - 8.5).abs() < 1e-9);
        assert_eq!(parsed.target_duration.as_secs(), 2);
        // The live window names them with its prefix.
        let live = p.live_playlist(3, false).unwrap();
        assert_eq!(live.matches("#EXT-X-GAP\nS/gap.m4s\n").count(), 2, "{live}");
        // Nothing for no time.
        let mut q = SessionPlaylists::new("S", 2.0);
        q.push_gap(0.0, t0);
        assert!(q.is_empty());
    }
}
