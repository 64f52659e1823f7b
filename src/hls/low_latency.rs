//! Low-Latency HLS (RFC 8216bis) lines for the room's live playlist, written beside
//! `hls_m3u8` (which has no LL-HLS tags), and the blocking-reload rules.
//!
//! The live playlist is rendered by [`super::playlist`] as today; [`add_parts`] then inserts:
//!
//! - `EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=...` (three part targets, the
//!   spec's minimum) and `EXT-X-PART-INF:PART-TARGET=...` after `EXT-X-TARGETDURATION`;
//! - the `EXT-X-PART` lines of the newest complete segments, each block right before that
//!   segment's `EXTINF` (after its `EXT-X-DISCONTINUITY`/`EXT-X-MAP`, which the parts share);
//! - the parts of the segment being built, then `EXT-X-PRELOAD-HINT` for its next part.
//!
//! Only stored parts are passed in, so the playlist never lists an object a CDN cannot fetch.
//! A finished playlist (`EXT-X-ENDLIST`) gets no LL-HLS lines: nothing more will come.
//!
//! [`BlockingRequest`] parses `_HLS_msn`/`_HLS_part` and says whether a playlist state
//! satisfies it, so the HTTP handler only waits on a per-room notification and re-checks.

use std::fmt::Write as _;

/// One stored part of a segment, as the playlist lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedPart {
    /// URI relative to the room folder, e.g. `{session}/000012.3.m4s`.
    pub uri: String,
    /// Seconds (written to the millisecond).
    pub duration: f64,
    /// Starts with a keyframe (`INDEPENDENT=YES`).
    pub independent: bool,
}

/// The parts of one segment, by its media sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentParts {
    pub msn: u64,
    pub parts: Vec<ListedPart>,
}

/// What the LL-HLS lines of one live playlist are made from.
#[derive(Debug, Clone, PartialEq)]
pub struct PartsView {
    /// `PART-TARGET`, seconds.
    pub part_target_s: f64,
    /// Parts of the newest complete segments (listed in the playlist), oldest first.
    pub complete: Vec<SegmentParts>,
    /// Parts stored so far of the segment being built (its msn follows the last listed one).
    pub building: SegmentParts,
    /// URI of the next part of the segment being built (`EXT-X-PRELOAD-HINT`).
    pub next_part_uri: String,
}

/// How many complete segments keep their parts listed (the spec asks for at least the last
/// three target durations' worth; three segments is more than that).
pub const SEGMENTS_WITH_PARTS: usize = 3;

fn seconds(s: f64) -> String {
    format!("{:.3}", s.max(0.0))
}

fn part_line(out: &mut String, part: &ListedPart) {
    let _ = write!(
        out,
        "#EXT-X-PART:DURATION={},URI=\"{}\"",
        seconds(part.duration),
        part.uri
    );
    if part.independent {
        out.push_str(",INDEPENDENT=YES");
    }
    out.push('\n');
}

/// The media sequence number of the playlist's first segment (0 when the tag is absent).
fn media_sequence(playlist: &str) -> u64 {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// `playlist` (a live media playlist as rendered by `hls_m3u8`) with the LL-HLS lines of
/// `view` added. Parts of segments not in the playlist are left out.
pub fn add_parts(playlist: &str, view: &PartsView) -> String {
    if playlist.lines().any(|l| l.trim() == "#EXT-X-ENDLIST") {
        return playlist.to_string();
    }
    let mut msn = media_sequence(playlist);
    let mut out = String::with_capacity(playlist.len() + 1024);
    for line in playlist.lines() {
        if line.starts_with("#EXTINF") {
            if let Some(seg) = view.complete.iter().find(|s| s.msn == msn) {
                for part in &seg.parts {
                    part_line(&mut out, part);
                }
            }
        }
        out.push_str(line);
        out.push('\n');
        if line.starts_with("#EXT-X-TARGETDURATION") {
            let _ = writeln!(
                out,
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={}",
                seconds(3.0 * view.part_target_s)
            );
            let _ = writeln!(
                out,
                "#EXT-X-PART-INF:PART-TARGET={}",
                seconds(view.part_target_s)
            );
        } else if !line.is_empty() && !line.starts_with('#') {
            msn += 1;
        }
    }
    for part in &view.building.parts {
        part_line(&mut out, part);
    }
    let _ = writeln!(
        out,
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
        view.next_part_uri
    );
    out
}

/// A blocking playlist reload (`_HLS_msn`, optionally `_HLS_part`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockingRequest {
    pub msn: u64,
    pub part: Option<u64>,
}

/// A blocking-reload query the server answers with 400 Bad Request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadBlockingRequest {
    #[error("_HLS_part needs _HLS_msn")]
    PartWithoutMsn,
    #[error("_HLS_msn and _HLS_part must be non-negative integers")]
    NotANumber,
    #[error("_HLS_msn {asked} is more than two segments past the last one ({last})")]
    TooFarAhead { asked: u64, last: u64 },
}

/// Where the live playlist is: the last complete segment and the parts stored of the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaylistPosition {
    /// msn of the last complete (listed) segment; `None` before the first one.
    pub last_complete: Option<u64>,
    /// Parts stored so far of segment `last_complete + 1` (or 0 before the first).
    pub building_parts: u64,
}

impl PlaylistPosition {
    fn building_msn(&self) -> u64 {
        self.last_complete.map_or(0, |m| m + 1)
    }
}

impl BlockingRequest {
    /// The request in `_HLS_msn`/`_HLS_part` (already split from the query); `None` when
    /// neither is present (an ordinary reload).
    pub fn parse(
        msn: Option<&str>,
        part: Option<&str>,
    ) -> Result<Option<BlockingRequest>, BadBlockingRequest> {
        let number = |s: &str| {
            s.trim()
                .parse::<u64>()
                .map_err(|_| BadBlockingRequest::NotANumber)
        };
        match (msn, part) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(BadBlockingRequest::PartWithoutMsn),
            (Some(m), p) => Ok(Some(BlockingRequest {
                msn: number(m)?,
                part: p.map(number).transpose()?,
            })),
        }
    }

    /// RFC 8216bis 6.2.5.2: a msn more than two past the last segment is refused at once.
    pub fn check_reachable(&self, pos: &PlaylistPosition) -> Result<(), BadBlockingRequest> {
        let last = pos.last_complete.unwrap_or(0);
        if self.msn > last.saturating_add(2) {
            return Err(BadBlockingRequest::TooFarAhead {
                asked: self.msn,
                last,
            });
        }
        Ok(())
    }

    /// Whether a playlist at `pos` contains what was asked for: segment `msn` complete, or
    /// (with `_HLS_part`) part `part` of segment `msn` stored.
    pub fn satisfied_by(&self, pos: &PlaylistPosition) -> bool {
        if pos.last_complete.is_some_and(|last| self.msn <= last) {
            return true;
        }
        match self.part {
            Some(part) => self.msn == pos.building_msn() && part < pos.building_parts,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n\
#EXT-X-MEDIA-SEQUENCE:10\n#EXT-X-MAP:URI=\"s/init.mp4\"\n\
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00Z\n#EXTINF:2.000,\ns/000010.m4s\n\
#EXTINF:2.000,\ns/000011.m4s\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\ns/000012.m4s\n";

    fn part(uri: &str, independent: bool) -> ListedPart {
        ListedPart {
            uri: uri.into(),
            duration: 0.3,
            independent,
        }
    }

    fn view() -> PartsView {
        PartsView {
            part_target_s: 0.3,
            complete: vec![
                SegmentParts {
                    msn: 11,
                    parts: vec![part("s/000011.0.m4s", true), part("s/000011.1.m4s", false)],
                },
                SegmentParts {
                    msn: 12,
                    parts: vec![part("s/000012.0.m4s", true)],
                },
                // Not in the playlist: left out.
                SegmentParts {
                    msn: 3,
                    parts: vec![part("s/000003.0.m4s", true)],
                },
            ],
            building: SegmentParts {
                msn: 13,
                parts: vec![part("s/000013.0.m4s", true)],
            },
            next_part_uri: "s/000013.1.m4s".into(),
        }
    }

    #[test]
    fn server_control_and_part_inf_follow_target_duration() {
        let out = add_parts(BASE, &view());
        let lines: Vec<&str> = out.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with("#EXT-X-TARGETDURATION"))
            .unwrap();
        assert_eq!(
            lines[at + 1],
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.900"
        );
        assert_eq!(lines[at + 2], "#EXT-X-PART-INF:PART-TARGET=0.300");
    }

    #[test]
    fn parts_precede_their_segment_and_the_building_parts_end_with_a_hint() {
        let out = add_parts(BASE, &view());
        let expected_tail = "#EXTINF:2.000,\ns/000010.m4s\n\
#EXT-X-PART:DURATION=0.300,URI=\"s/000011.0.m4s\",INDEPENDENT=YES\n\
#EXT-X-PART:DURATION=0.300,URI=\"s/000011.1.m4s\"\n\
#EXTINF:2.000,\ns/000011.m4s\n#EXT-X-DISCONTINUITY\n\
#EXT-X-PART:DURATION=0.300,URI=\"s/000012.0.m4s\",INDEPENDENT=YES\n\
#EXTINF:2.000,\ns/000012.m4s\n\
#EXT-X-PART:DURATION=0.300,URI=\"s/000013.0.m4s\",INDEPENDENT=YES\n\
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s/000013.1.m4s\"\n";
        assert!(out.ends_with(expected_tail), "{out}");
        assert!(!out.contains("000003.0"));
    }

    #[test]
    fn parts_go_into_the_live_playlist_rendered_by_hls_m3u8() {
        use crate::hls::playlist::{ListedSegment, SessionPlaylists};
        let mut p = SessionPlaylists::new("s", 2.0);
        for n in 1..=12u32 {
            p.push(ListedSegment {
                file: format!("{n:06}.m4s"),
                duration: 2.0,
                program_date_time: chrono::DateTime::from_timestamp(
                    1_800_000_000 + i64::from(n) * 2,
                    0,
                )
                .unwrap(),
                independent: true,
                discontinuity: false,
            });
        }
        let live = p.live_playlist(3, false).unwrap();
        let out = add_parts(&live, &view());
        let at = |needle: &str| {
            out.find(needle)
                .unwrap_or_else(|| panic!("{needle}:\n{out}"))
        };
        assert!(at("s/000011.0.m4s") < at("s/000011.m4s"), "{out}");
        assert!(at("s/000010.m4s") < at("s/000011.0.m4s"), "{out}");
        assert!(at("s/000012.m4s") < at("s/000013.0.m4s"), "{out}");
        assert!(out.contains("#EXT-X-PART-INF:PART-TARGET=0.300\n"));
    }

    #[test]
    fn an_ended_playlist_gets_no_low_latency_lines() {
        let ended = format!("{BASE}#EXT-X-ENDLIST\n");
        assert_eq!(add_parts(&ended, &view()), ended);
    }

    #[test]
    fn blocking_query_parsing() {
        assert_eq!(BlockingRequest::parse(None, None), Ok(None));
        assert_eq!(
            BlockingRequest::parse(Some("12"), Some("3")),
            Ok(Some(BlockingRequest {
                msn: 12,
                part: Some(3)
            }))
        );
        assert_eq!(
            BlockingRequest::parse(None, Some("1")),
            Err(BadBlockingRequest::PartWithoutMsn)
        );
        assert_eq!(
            BlockingRequest::parse(Some("-1"), None),
            Err(BadBlockingRequest::NotANumber)
        );
    }

    #[test]
    fn blocking_request_is_satisfied_by_the_asked_part_or_a_complete_segment() {
        let pos = PlaylistPosition {
            last_complete: Some(12),
            building_parts: 2,
        };
        let req = |msn, part| BlockingRequest { msn, part };
        assert!(req(12, None).satisfied_by(&pos));
        assert!(req(12, Some(9)).satisfied_by(&pos));
        assert!(req(13, Some(1)).satisfied_by(&pos));
        assert!(!req(13, Some(2)).satisfied_by(&pos));
        assert!(!req(13, None).satisfied_by(&pos));
        assert!(!req(14, Some(0)).satisfied_by(&pos));
    }

    #[test]
    fn a_msn_more_than_two_ahead_is_refused() {
        let pos = PlaylistPosition {
            last_complete: Some(12),
            building_parts: 0,
        };
        let req = |msn| BlockingRequest { msn, part: None };
        assert!(req(14).check_reachable(&pos).is_ok());
        assert_eq!(
            req(15).check_reachable(&pos),
            Err(BadBlockingRequest::TooFarAhead {
                asked: 15,
                last: 12
            })
        );
    }
}
