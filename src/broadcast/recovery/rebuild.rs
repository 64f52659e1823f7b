//! The playlists of an interrupted session, rebuilt from what was stored: the session playlist
//! as last written (every segment listed up to the crash, with its parts and discontinuities)
//! plus the segments stored after that write (the writer stores a segment, then lists it; a
//! crash in between leaves one unlisted). Pure: the caller reads the store.

use chrono::{DateTime, Duration, Utc};
use hls_m3u8::MediaPlaylist;

use crate::broadcast::keys::SessionKeys;
use crate::hls::playlist::{ListedSegment, SessionPlaylists, GAP_FILE};

/// One segment of the playlist as written.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenSegment {
    /// Its object's number (0 for a gap entry: time nobody published, no object).
    pub sequence: u64,
    pub listed: ListedSegment,
    /// The `EXT-X-MAP` written on it (a part's init file), if any.
    pub map: Option<String>,
}

/// A stored segment no playlist lists, read back from the store.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AddedSegment {
    pub sequence: u64,
    pub duration: f64,
    pub independent: bool,
}

/// The session playlist as stored could not be read (damaged); it is rebuilt from the segments.
#[derive(Debug, thiserror::Error)]
#[error("the stored session playlist cannot be read: {0}")]
pub struct UnreadablePlaylist(String);

/// The rebuilt playlists and what went into them.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    pub playlists: SessionPlaylists,
    /// Segments that were stored but never listed, now listed.
    pub added: usize,
    /// Wall-clock end of the last segment: about when the broadcast stopped.
    pub ended_at: Option<DateTime<Utc>>,
}

/// The segments of a session playlist as written by the writer (`hls_m3u8` panics on some
/// malformed input, so parsing is guarded).
pub fn read_session_playlist(text: &str) -> Result<Vec<WrittenSegment>, UnreadablePlaylist> {
    let parsed = std::panic::catch_unwind(|| {
        MediaPlaylist::try_from(text)
            .map(|p| p.into_owned())
            .map_err(|e| e.to_string())
    })
    .map_err(|_| UnreadablePlaylist("the parser panicked".into()))?
    .map_err(UnreadablePlaylist)?;
    let independent = parsed.has_independent_segments;
    let mut out = Vec::new();
    for segment in parsed.segments.values() {
        let file = segment.uri().to_string();
        let sequence = match SessionKeys::parse_segment_file(&file) {
            Some(n) => n,
            None if file == GAP_FILE => 0,
            None => {
                return Err(UnreadablePlaylist(format!(
                    "unexpected segment name {file}"
                )))
            }
        };
        let program_date_time = segment
            .program_date_time
            .as_ref()
            .map(|p| p.date_time.with_timezone(&Utc))
            .ok_or_else(|| UnreadablePlaylist(format!("{file} has no PROGRAM-DATE-TIME")))?;
        out.push(WrittenSegment {
            sequence,
            listed: ListedSegment {
                file,
                duration: segment.duration.duration().as_secs_f64(),
                program_date_time,
                independent,
                discontinuity: segment.has_discontinuity,
            },
            map: segment.map.as_ref().map(|m| m.uri().to_string()),
        });
    }
    Ok(out)
}

/// Lists `written` as it was, then `added` (sorted by sequence) after it. An added segment
/// after a gap in the numbering follows a discontinuity (a segment was lost); when the store
/// holds a newer part's init than the playlist names (`newest_init`), the added segments begin
/// that part. Without a written playlist the first segment starts at `started`.
pub fn rebuild(
    session: &str,
    target_segment_s: f64,
    written: Vec<WrittenSegment>,
    added: &[AddedSegment],
    newest_init: Option<&str>,
    started: DateTime<Utc>,
) -> Rebuilt {
    let first_init = SessionKeys::init_file(1);
    let mut playlists = SessionPlaylists::new(session, target_segment_s);
    let mut map_in_force = first_init.clone();
    // The newest object number listed, and where the timeline had got to (wall clock).
    let mut last_sequence: Option<u64> = None;
    let mut last_end: Option<DateTime<Utc>> = None;
    let end_of = |pdt: DateTime<Utc>, duration: f64| {
        pdt + Duration::milliseconds((duration * 1000.0).round() as i64)
    };
    for (i, w) in written.into_iter().enumerate() {
        if let Some(map) = w.map.filter(|m| i > 0 || *m != first_init) {
            playlists.begin_part(&map);
            map_in_force = map;
        }
        last_end = Some(end_of(w.listed.program_date_time, w.listed.duration));
        if w.sequence == 0 {
            playlists.push_gap(w.listed.duration, w.listed.program_date_time);
            continue;
        }
        last_sequence = Some(w.sequence);
        playlists.push(w.listed);
    }
    if let Some(init) = newest_init.filter(|init| *init != map_in_force && !added.is_empty()) {
        playlists.begin_part(init);
    }
    for a in added {
        let discontinuity = last_sequence.is_some_and(|n| a.sequence != n + 1);
        let program_date_time = last_end.unwrap_or(started);
        playlists.push(ListedSegment {
            file: SessionKeys::segment_file(a.sequence),
            duration: a.duration,
            program_date_time,
            independent: a.independent,
            discontinuity,
        });
        last_sequence = Some(a.sequence);
        last_end = Some(end_of(program_date_time, a.duration));
    }
    let ended_at = last_end;
    Rebuilt {
        playlists,
        added: added.len(),
        ended_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::playlist::SessionState;
    use chrono::TimeZone;

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 13, 5, 0).unwrap()
    }

    fn listed(n: u64) -> ListedSegment {
        ListedSegment {
            file: SessionKeys::segment_file(n),
            duration: 2.0,
            program_date_time: start() + Duration::seconds((n as i64 - 1) * 2),
            independent: true,
            discontinuity: false,
        }
    }

    /// The EVENT playlist a writer left: segments 1-3, a reconnect after 3 s away, segment 4
    /// in part 2.
    fn written_by_a_writer() -> String {
        let mut p = SessionPlaylists::new("S", 2.0);
        p.push(listed(1));
        p.push(listed(2));
        p.push(listed(3));
        p.begin_part("init-2.mp4");
        p.push_gap(3.0, start() + Duration::seconds(6));
        let mut fourth = listed(4);
        fourth.program_date_time += Duration::seconds(3);
        p.push(fourth);
        p.session_playlist(SessionState::Live).unwrap()
    }

    #[test]
    fn a_written_playlist_reads_back_with_its_parts() {
        let written = read_session_playlist(&written_by_a_writer()).unwrap();
        assert_eq!(
            written.iter().map(|w| w.sequence).collect::<Vec<_>>(),
            [1, 2, 3, 0, 0, 4]
        );
        assert_eq!(written[0].map.as_deref(), Some("init.mp4"));
        assert_eq!(written[5].map.as_deref(), Some("init-2.mp4"));
        assert!(written[5].listed.discontinuity);
        // Rebuilt with nothing added, it is the same list, ended.
        let rebuilt = rebuild("S", 2.0, written, &[], Some("init-2.mp4"), start());
        let vod = rebuilt
            .playlists
            .session_playlist(SessionState::Ended)
            .unwrap();
        let mut expected = SessionPlaylists::new("S", 2.0);
        for n in 1..=3 {
            expected.push(listed(n));
        }
        expected.begin_part("init-2.mp4");
        expected.push_gap(3.0, start() + Duration::seconds(6));
        let mut fourth = listed(4);
        fourth.program_date_time += Duration::seconds(3);
        expected.push(fourth);
        assert_eq!(vod, expected.session_playlist(SessionState::Ended).unwrap());
        assert_eq!(rebuilt.added, 0);
        assert_eq!(rebuilt.ended_at, Some(start() + Duration::seconds(11)));
    }

    #[test]
    fn stored_segments_nobody_listed_are_added_after_the_written_ones() {
        let written = read_session_playlist(&written_by_a_writer()).unwrap();
        let added = [
            AddedSegment {
                sequence: 5,
                duration: 1.5,
                independent: true,
            },
            AddedSegment {
                sequence: 7,
                duration: 2.0,
                independent: true,
            },
        ];
        let rebuilt = rebuild("S", 2.0, written, &added, Some("init-2.mp4"), start());
        let vod = rebuilt
            .playlists
            .session_playlist(SessionState::Ended)
            .unwrap();
        assert!(vod.ends_with("#EXTINF:1.5,\n000005.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2026-11-25T13:05:12.500Z\n#EXTINF:2,\n000007.m4s\n#EXT-X-ENDLIST\n"), "{vod}");
        assert_eq!(rebuilt.added, 2);
        assert_eq!(rebuilt.playlists.len(), 8);
    }

    #[test]
    fn without_a_written_playlist_the_stored_segments_make_it() {
        let added = [AddedSegment {
            sequence: 1,
            duration: 2.0,
            independent: true,
        }];
        let rebuilt = rebuild("S", 2.0, Vec::new(), &added, Some("init.mp4"), start());
        let vod = rebuilt
            .playlists
            .session_playlist(SessionState::Ended)
            .unwrap();
        assert!(vod.contains("#EXT-X-MAP:URI=\"init.mp4\""), "{vod}");
        assert!(
            vod.contains("#EXT-X-PROGRAM-DATE-TIME:2026-11-25T13:05:00.000Z"),
            "{vod}"
        );
        // A newer part's init in the store: the unlisted segments begin that part.
        let written = read_session_playlist(&written_by_a_writer()).unwrap();
        let added = [AddedSegment {
            sequence: 5,
            duration: 2.0,
            independent: true,
        }];
        let rebuilt = rebuild("S", 2.0, written, &added, Some("init-3.mp4"), start());
        let vod = rebuilt
            .playlists
            .session_playlist(SessionState::Ended)
            .unwrap();
        assert!(
            vod.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-3.mp4\""),
            "{vod}"
        );
        assert!(read_session_playlist("#EXTM3U\n#EXTINF:-1,\nx.m4s\n").is_err());
    }
}
