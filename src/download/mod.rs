//! A finished (or running) broadcast as one MP4 file: the session's init segment followed by
//! its media segments, byte for byte (fMP4 is an MP4; nothing is transcoded). [`plan`] reads
//! the session playlist into the objects to join, pure; `http::api_download` streams them one
//! object at a time, so memory holds one segment, not the session.
//!
//! A session continued after a reconnect has one init segment per part. The parts are joined
//! while their init segments are the same bytes (the publisher came back with the same
//! settings: the usual case); a part with other settings cannot follow in the same file, so the
//! download ends before it and says so in `X-Barrage-Parts`.

/// What to join, from one session playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadPlan {
    pub parts: Vec<PlannedPart>,
}

/// One init segment and the media segments that follow it (file names in the session folder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPart {
    pub init: String,
    pub segments: Vec<String>,
}

/// Why a playlist cannot be downloaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the session playlist lists no segment")]
    Empty,
    #[error("the session playlist names {0:?}, which is not a file of the session")]
    BadName(String),
}

/// A file name inside the session folder: no path, no dot-dot, nothing odd.
fn plain_file(name: &str) -> Result<String, PlanError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(name.to_string())
    } else {
        Err(PlanError::BadName(name.to_string()))
    }
}

/// The parts of a session playlist (its `EXT-X-MAP`s and segments; `EXT-X-GAP` entries,
/// which stand for time nobody published, are left out).
pub fn plan(playlist: &str) -> Result<DownloadPlan, PlanError> {
    let mut parts: Vec<PlannedPart> = Vec::new();
    let mut gap = false;
    for line in playlist.lines().map(str::trim) {
        if let Some(attrs) = line.strip_prefix("#EXT-X-MAP:") {
            let uri = attrs
                .split(',')
                .find_map(|a| a.trim().strip_prefix("URI="))
                .map(|u| u.trim_matches('"'))
                .unwrap_or("");
            parts.push(PlannedPart {
                init: plain_file(uri)?,
                segments: Vec::new(),
            });
        } else if line == "#EXT-X-GAP" {
            gap = true;
        } else if line.is_empty() || line.starts_with('#') || std::mem::take(&mut gap) {
            // Tags, blank lines, and the URI of a gap entry.
            continue;
        } else {
            let segment = plain_file(line)?;
            match parts.last_mut() {
                Some(part) => part.segments.push(segment),
                None => return Err(PlanError::BadName(segment)),
            }
        }
    }
    parts.retain(|p| !p.segments.is_empty());
    if parts.is_empty() {
        return Err(PlanError::Empty);
    }
    Ok(DownloadPlan { parts })
}

/// The file name offered for a session's download.
pub fn file_name(room: &str, session: &str) -> String {
    format!("{room}-{session}.mp4")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_PARTS: &str = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n\
        #EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2,\n000001.m4s\n\
        #EXTINF:1.5,\n000002.m4s\n#EXT-X-GAP\n#EXTINF:2,\ngap.m4s\n#EXT-X-DISCONTINUITY\n\
        #EXT-X-MAP:URI=\"init-2.mp4\"\n#EXTINF:2,\n000003.m4s\n#EXT-X-ENDLIST\n";

    #[test]
    fn parts_with_their_segments_and_no_gaps() {
        let p = plan(TWO_PARTS).unwrap();
        assert_eq!(p.parts.len(), 2);
        assert_eq!(p.parts[0].init, "init.mp4");
        assert_eq!(p.parts[0].segments, ["000001.m4s", "000002.m4s"]);
        assert_eq!(p.parts[1].init, "init-2.mp4");
        assert_eq!(p.parts[1].segments, ["000003.m4s"]);
    }

    #[test]
    fn names_outside_the_session_are_refused() {
        for bad in ["../other/000001.m4s", "/etc/passwd", "a/b.m4s", ".hidden"] {
            let text = format!("#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2,\n{bad}\n");
            assert!(matches!(plan(&text), Err(PlanError::BadName(_))), "{bad}");
        }
        let text = "#EXT-X-MAP:URI=\"../init.mp4\"\n#EXTINF:2,\n000001.m4s\n";
        assert!(matches!(plan(text), Err(PlanError::BadName(_))));
        assert!(matches!(
            plan("#EXTINF:2,\n000001.m4s\n"),
            Err(PlanError::BadName(_))
        ));
    }

    #[test]
    fn a_playlist_without_segments_is_empty() {
        assert_eq!(plan("#EXTM3U\n"), Err(PlanError::Empty));
        assert_eq!(
            plan("#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n"),
            Err(PlanError::Empty)
        );
    }
}
