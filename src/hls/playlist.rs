//! The media playlists of one broadcast session, rendered with `hls_m3u8`:
//!
//! - the session playlist (`hls/{room}/{session}/index.m3u8`): every segment, `EVENT` while
//!   live and `VOD` + `EXT-X-ENDLIST` once the stream ends, so it doubles as the replay;
//! - the room's live playlist (`hls/{room}/live.m3u8`): a sliding window of the newest
//!   segments, with URIs relative to the room folder (`{session}/000001.m4s`).
//!
//! A session continued after its publisher reconnected has several parts, each with its own
//! init segment: the first segment of a later part carries `EXT-X-DISCONTINUITY` and the new
//! `EXT-X-MAP` (see [`SessionPlaylists::begin_part`]), after `EXT-X-GAP` entries for the time
//! nobody published ([`gaps`]).
//!
//! `EXT-X-TARGETDURATION` follows RFC 8216 4.3.3.1: every `EXTINF` rounded to the nearest
//! integer must not exceed it. It is the largest rounded duration so far (at least the
//! configured target) and never decreases during a session, as a live playlist's must not.

use std::borrow::Cow;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hls_m3u8::tags::{ExtInf, ExtXMap, ExtXProgramDateTime};
use hls_m3u8::types::PlaylistType;
use hls_m3u8::{MediaPlaylist, MediaSegment};

mod gaps;
pub use gaps::GAP_FILE;

/// A playlist could not be built (a bug or an out-of-range value, with the playlist named).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the {which} playlist of session {session}: {source}")]
pub struct PlaylistError {
    which: &'static str,
    session: String,
    source: hls_m3u8::Error,
}

/// One segment as playlists list it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedSegment {
    /// Object name inside the session folder, e.g. `000001.m4s`.
    pub file: String,
    /// Seconds (written to the millisecond).
    pub duration: f64,
    /// Wall-clock time of the segment's first frame (`EXT-X-PROGRAM-DATE-TIME`).
    pub program_date_time: DateTime<Utc>,
    /// Starts with a keyframe: decodable on its own.
    pub independent: bool,
    /// A segment before this one was lost (its store write failed): timestamps jump here.
    pub discontinuity: bool,
}

/// Whether the session playlist describes a live (growing) or a finished broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Live,
    Ended,
}

/// The segments of one session and the playlists made from them.
#[derive(Debug, Clone)]
pub struct SessionPlaylists {
    session: String,
    segments: Vec<ListedSegment>,
    /// Whole seconds; only grows.
    target_duration: u64,
    /// The init segment of each part: (index of the part's first segment, file name).
    maps: Vec<(usize, String)>,
    /// A part begun whose first segment is not listed yet: its init file.
    next_part_map: Option<String>,
}

/// `EXTINF` as written: the duration rounded to the millisecond.
fn extinf(seconds: f64) -> Duration {
    Duration::from_millis((seconds.max(0.0) * 1000.0).round() as u64)
}

impl SessionPlaylists {
    /// An empty list for `session`, whose segments aim at `target_segment_s`.
    pub fn new(session: &str, target_segment_s: f64) -> SessionPlaylists {
        SessionPlaylists {
            session: session.to_string(),
            segments: Vec::new(),
            target_duration: (target_segment_s.round() as u64).max(1),
            maps: vec![(0, FIRST_INIT.to_string())],
            next_part_map: None,
        }
    }

    /// Starts a new part of the session (its publisher reconnected): the next segment listed
    /// follows a discontinuity and uses `init_file` (a name in the session folder) as its
    /// `EXT-X-MAP`, and so do the segments after it.
    pub fn begin_part(&mut self, init_file: &str) {
        self.next_part_map = Some(init_file.to_string());
    }

    /// Lists a stored segment.
    pub fn push(&mut self, mut segment: ListedSegment) {
        if let Some(init) = self.next_part_map.take() {
            segment.discontinuity = true;
            self.maps.push((self.segments.len(), init));
        }
        let rounded = extinf(segment.duration).as_secs_f64().round() as u64;
        self.target_duration = self.target_duration.max(rounded);
        self.segments.push(segment);
    }

    /// Segments listed so far.
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// Whether no segment is listed yet (then there is no playlist to write).
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// `EXT-X-TARGETDURATION` in seconds.
    pub fn target_duration(&self) -> u64 {
        self.target_duration
    }

    /// The session playlist: every segment, URIs relative to the session folder.
    pub fn session_playlist(&self, state: SessionState) -> Result<String, PlaylistError> {
        let kind = match state {
            SessionState::Live => PlaylistType::Event,
            SessionState::Ended => PlaylistType::Vod,
        };
        self.render("session", 0, "", Some(kind), state == SessionState::Ended)
    }

    /// The room's live playlist: the newest `window` segments, URIs relative to the room
    /// folder. `ended` adds `EXT-X-ENDLIST`, so players still watching stop cleanly instead
    /// of polling a playlist that will never grow again.
    pub fn live_playlist(&self, window: usize, ended: bool) -> Result<String, PlaylistError> {
        let first = self.segments.len().saturating_sub(window.max(1));
        let prefix = format!("{}/", self.session);
        self.render("live", first, &prefix, None, ended)
    }

    /// The init file of the segment at `index`: set at the window's first segment (the one in
    /// force there) and where a part begins; None elsewhere.
    fn map_at(&self, index: usize, first_listed: bool) -> Option<&str> {
        let mut in_force = None;
        for (start, file) in &self.maps {
            if *start > index {
                break;
            }
            if first_listed || *start == index {
                in_force = Some(file.as_str());
            }
        }
        in_force
    }

    fn render(
        &self,
        which: &'static str,
        first: usize,
        uri_prefix: &str,
        kind: Option<PlaylistType>,
        ended: bool,
    ) -> Result<String, PlaylistError> {
        let err = |source| PlaylistError {
            which,
            session: self.session.clone(),
            source,
        };
        let listed = self.segments.get(first..).unwrap_or_default();
        let mut segments = Vec::with_capacity(listed.len());
        for (i, s) in listed.iter().enumerate() {
            let mut b = MediaSegment::builder();
            if let Some(init) = self.map_at(first + i, i == 0) {
                b.map(ExtXMap::new(Cow::Owned(format!("{uri_prefix}{init}"))));
            }
            b.program_date_time(ExtXProgramDateTime::new(s.program_date_time.fixed_offset()))
                .has_discontinuity(s.discontinuity && i > 0)
                .duration(ExtInf::new(extinf(s.duration)))
                .uri(format!("{uri_prefix}{}", s.file));
            segments.push(b.build().map_err(err)?);
        }
        // Discontinuities that slid out of the window are counted, as RFC 8216 6.2.2 asks.
        let discontinuities = self.segments[..first]
            .iter()
            .skip(1)
            .filter(|s| s.discontinuity)
            .count()
            + usize::from(listed.first().is_some_and(|s| s.discontinuity) && first > 0);
        let mut b = MediaPlaylist::builder();
        b.target_duration(Duration::from_secs(self.target_duration))
            // Media sequence numbers count listed segments from 1.
            .media_sequence(first + 1)
            .discontinuity_sequence(discontinuities)
            .has_independent_segments(listed.iter().all(|s| s.independent))
            .has_end_list(ended)
            .segments(segments);
        if let Some(kind) = kind {
            b.playlist_type(kind);
        }
        let text = discontinuity_before_map(&b.build().map_err(err)?.to_string());
        Ok(gaps::mark_gaps(&text, uri_prefix))
    }
}

/// The init segment of a session's first part.
const FIRST_INIT: &str = "init.mp4";

/// `hls_m3u8` writes a segment's `EXT-X-MAP` before its `EXT-X-DISCONTINUITY`; players and
/// Apple's examples read the discontinuity first, then the new map (hls.js numbers the init
/// segment with the discontinuity count in force at the MAP line). Swaps each such pair.
fn discontinuity_before_map(text: &str) -> String {
    let mut lines: Vec<&str> = text.split('\n').collect();
    let mut i = 0;
    while i + 1 < lines.len() {
        if lines[i].starts_with("#EXT-X-MAP:") && lines[i + 1] == "#EXT-X-DISCONTINUITY" {
            lines.swap(i, i + 1);
            i += 2;
        } else {
            i += 1;
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn segment(n: u64, duration: f64) -> ListedSegment {
        let start = Utc.with_ymd_and_hms(2026, 11, 25, 13, 5, 0).unwrap();
        ListedSegment {
            file: format!("{n:06}.m4s"),
            duration,
            program_date_time: start + chrono::Duration::milliseconds((n as i64 - 1) * 2000),
            independent: true,
            discontinuity: false,
        }
    }

    fn parse(text: &str) -> MediaPlaylist<'_> {
        MediaPlaylist::try_from(text).unwrap_or_else(|e| panic!("{e}:\n{text}"))
    }

    #[test]
    fn session_playlist_is_an_event_then_a_vod() {
        let mut p = SessionPlaylists::new("S1", 2.0);
        for n in 1..=3 {
            p.push(segment(n, 2.0));
        }
        p.push(segment(4, 0.967));
        let text = p.session_playlist(SessionState::Live).unwrap();
        let live = parse(&text);
        assert_eq!(live.playlist_type, Some(PlaylistType::Event));
        assert!(!live.has_end_list);
        assert_eq!(live.media_sequence, 1);
        assert_eq!(live.target_duration, Duration::from_secs(2));
        assert_eq!(live.segments.num_elements(), 4);
        assert!(text.contains("#EXT-X-MAP:URI=\"init.mp4\""), "{text}");
        assert_eq!(text.matches("#EXT-X-MAP").count(), 1);
        assert_eq!(text.matches("#EXT-X-PROGRAM-DATE-TIME").count(), 4);
        assert!(
            text.contains("#EXT-X-PROGRAM-DATE-TIME:2026-11-25T13:05:02.000Z"),
            "{text}"
        );
        assert!(text.contains("\n000004.m4s\n"));
        assert!(text.contains("#EXTINF:0.967,"));
        assert!(text.contains("#EXT-X-INDEPENDENT-SEGMENTS"));

        let vod = p.session_playlist(SessionState::Ended).unwrap();
        let vod = parse(&vod);
        assert_eq!(vod.playlist_type, Some(PlaylistType::Vod));
        assert!(vod.has_end_list);
        assert!((vod.duration().as_secs_f64() - 6.967).abs() < 1e-9);
    }

    #[test]
    fn live_playlist_slides_and_ends() {
        let mut p = SessionPlaylists::new("S1", 2.0);
        for n in 1..=8 {
            p.push(segment(n, 2.0));
        }
        let text = p.live_playlist(6, false).unwrap();
        let live = parse(&text);
        assert_eq!(live.media_sequence, 3);
        assert_eq!(live.playlist_type, None);
        assert!(!live.has_end_list);
        let uris: Vec<&str> = live.segments.values().map(|s| s.uri().as_ref()).collect();
        assert_eq!(uris.first(), Some(&"S1/000003.m4s"));
        assert_eq!(uris.last(), Some(&"S1/000008.m4s"));
        assert_eq!(uris.len(), 6);
        assert!(text.contains("#EXT-X-MAP:URI=\"S1/init.mp4\""));
        assert_eq!(text.matches("#EXT-X-MAP").count(), 1);
        let ended = parse(&p.live_playlist(6, true).unwrap()).has_end_list;
        assert!(ended);
        // Fewer segments than the window: all of them, from 1.
        let mut short = SessionPlaylists::new("S2", 2.0);
        short.push(segment(1, 2.0));
        assert_eq!(
            parse(&short.live_playlist(6, false).unwrap()).media_sequence,
            1
        );
    }

    #[test]
    fn target_duration_covers_rounded_durations_and_never_shrinks() {
        let mut p = SessionPlaylists::new("S", 2.0);
        p.push(segment(1, 2.002));
        assert_eq!(p.target_duration(), 2);
        p.push(segment(2, 2.5));
        assert_eq!(p.target_duration(), 3);
        p.push(segment(3, 8.34));
        p.push(segment(4, 2.0));
        assert_eq!(p.target_duration(), 8);
        // The window no longer holds the long segment; the target stays.
        let live = p.live_playlist(1, false).unwrap();
        assert_eq!(parse(&live).target_duration, Duration::from_secs(8));
        let vod = p.session_playlist(SessionState::Ended).unwrap();
        let vod = parse(&vod);
        for s in vod.segments.values() {
            assert!(s.duration.duration().as_secs_f64().round() as u64 <= 8);
        }
    }

    #[test]
    fn a_lost_segment_is_a_discontinuity() {
        let mut p = SessionPlaylists::new("S", 2.0);
        p.push(segment(1, 2.0));
        let mut third = segment(3, 2.0);
        third.discontinuity = true;
        p.push(third);
        p.push(segment(4, 2.0));
        let text = p.session_playlist(SessionState::Live).unwrap();
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
        parse(&text);
        // Once the discontinuity slides out, the discontinuity sequence counts it.
        let live = parse_owned(p.live_playlist(1, false).unwrap());
        assert_eq!(live.discontinuity_sequence, 1);
        assert_eq!(live.media_sequence, 3);
    }

    #[test]
    fn a_new_part_is_a_discontinuity_with_its_own_init() {
        let mut p = SessionPlaylists::new("S", 2.0);
        p.push(segment(1, 2.0));
        p.push(segment(2, 1.5));
        p.begin_part("init-2.mp4");
        p.push(segment(3, 2.0));
        p.push(segment(4, 2.0));
        let text = p.session_playlist(SessionState::Ended).unwrap();
        assert!(
            text.contains(
                "#EXTINF:1.5,\n000002.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-2.mp4\"\n"
            ),
            "{text}"
        );
        assert_eq!(text.matches("#EXT-X-MAP").count(), 2, "{text}");
        assert!(text.starts_with("#EXTM3U"), "{text}");
        let vod = parse(&text);
        assert!((vod.duration().as_secs_f64() - 7.5).abs() < 1e-9);
        // The live window starting inside part 2 names part 2's init first, no discontinuity.
        let live = p.live_playlist(2, false).unwrap();
        assert!(live.contains("#EXT-X-MAP:URI=\"S/init-2.mp4\""), "{live}");
        assert!(!live.contains("init.mp4"), "{live}");
        let live = parse_owned(live);
        assert_eq!(live.media_sequence, 3);
        assert_eq!(live.discontinuity_sequence, 1);
        // A window across the join: part 1's map first, then the discontinuity and part 2's.
        let live = p.live_playlist(3, false).unwrap();
        assert_eq!(live.matches("#EXT-X-MAP").count(), 2, "{live}");
        assert!(live.contains("#EXT-X-MAP:URI=\"S/init.mp4\""), "{live}");
        assert_eq!(parse_owned(live).discontinuity_sequence, 0);
    }

    #[test]
    fn a_part_begun_twice_before_a_segment_uses_the_newest_init() {
        let mut p = SessionPlaylists::new("S", 2.0);
        p.begin_part("init-2.mp4");
        p.begin_part("init-3.mp4");
        p.push(segment(1, 2.0));
        let text = p.session_playlist(SessionState::Live).unwrap();
        assert!(text.contains("#EXT-X-MAP:URI=\"init-3.mp4\""), "{text}");
        assert_eq!(text.matches("#EXT-X-MAP").count(), 1, "{text}");
        assert!(!text.contains("#EXT-X-DISCONTINUITY\n"), "{text}");
    }

    fn parse_owned(text: String) -> MediaPlaylist<'static> {
        MediaPlaylist::try_from(text.as_str()).unwrap().into_owned()
    }
}
