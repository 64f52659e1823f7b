//! Crash recovery at start. A node that stops without ending its broadcasts (killed, power
//! lost) leaves their sessions open in the database, their playlists EVENT without ENDLIST and
//! no VOD to replay. At its next start the node finishes its own such sessions (never another
//! node's on a shared database, see [`Database::interrupted_sessions`]) from what the store
//! holds: the session playlist as last written plus any segment stored after it
//! ([`rebuild`]) becomes the VOD, the room's live playlist gets its ENDLIST if it still names
//! the session, and the session is recorded as ended with its VOD. A session whose objects
//! cannot be read (the store is down) is left open and tried again at the next start.

pub mod rebuild;

use std::collections::HashMap;

use bytes::Bytes;

use super::keys::SessionKeys;
use super::store::put_with_retry;
use crate::config::HlsConfig;
use crate::db::{Database, DbError, InterruptedSession};
use crate::hls::playlist::{PlaylistError, SessionState};
use crate::media::fragment_probe::{probe_fragment, track_timescales};
use crate::storage::{Storage, StorageError};
use rebuild::{read_session_playlist, rebuild, AddedSegment};

/// Why one session could not be recovered now.
#[derive(Debug, thiserror::Error)]
enum RecoveryError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Playlist(#[from] PlaylistError),
}

/// What recovery made of one interrupted session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredSession {
    pub room: String,
    pub session: String,
    /// Segments in the finished VOD.
    pub segments: usize,
    /// Of those, stored but never listed before the crash.
    pub added: usize,
    /// The VOD playlist (None: nothing was stored).
    pub vod_key: Option<String>,
    /// The room's live playlist still named this session and now ends.
    pub live_closed: bool,
    /// About when the broadcast stopped: the end of its last segment.
    pub ended_ms: i64,
}

/// Finishes every interrupted session of `node` (see the module doc); returns what it did.
pub async fn recover_interrupted(
    db: &Database,
    storage: &Storage,
    node: &str,
    hls: &HlsConfig,
) -> Result<Vec<RecoveredSession>, DbError> {
    let mut recovered = Vec::new();
    for interrupted in db.interrupted_sessions(node).await? {
        let span = tracing::info_span!("recovery", room = %interrupted.room, session = %interrupted.session);
        let _enter = span.enter();
        match recover_session(storage, hls, &interrupted).await {
            Ok(r) => {
                db.session_ended(&r.room, &r.session, r.ended_ms, r.vod_key.as_deref())
                    .await?;
                tracing::warn!(
                    segments = r.segments,
                    unlisted_segments_added = r.added,
                    vod = r.vod_key.as_deref().unwrap_or("(nothing was stored)"),
                    live_playlist_closed = r.live_closed,
                    "recovered a broadcast interrupted by an earlier stop: its VOD is finished"
                );
                recovered.push(r);
            }
            Err(e) => tracing::error!(
                error = %e,
                "cannot recover an interrupted broadcast now; it is tried again at the next start"
            ),
        }
    }
    Ok(recovered)
}

/// Rebuilds, writes and closes one session's playlists.
async fn recover_session(
    storage: &Storage,
    hls: &HlsConfig,
    s: &InterruptedSession,
) -> Result<RecoveredSession, RecoveryError> {
    let keys = SessionKeys::new(&s.room, &s.session);
    let folder = keys.folder();
    let mut segments = Vec::new();
    let mut newest_init: Option<(u32, String)> = None;
    for key in storage.list(&folder).await? {
        let name = key.strip_prefix(&folder).unwrap_or(&key);
        if let Some(n) = SessionKeys::parse_segment_file(name) {
            segments.push(n);
        } else if let Some(part) = SessionKeys::parse_init_file(name) {
            if newest_init.as_ref().is_none_or(|(p, _)| part > *p) {
                newest_init = Some((part, name.to_string()));
            }
        }
    }
    segments.sort_unstable();
    let written = match storage.get_bytes(&keys.session_playlist()).await? {
        Some(body) => match read_session_playlist(&String::from_utf8_lossy(&body)) {
            Ok(written) => written,
            Err(e) => {
                tracing::warn!(error = %e, "rebuilding the VOD from the stored segments alone");
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    let last_listed = written.last().map_or(0, |w| w.sequence);
    let unlisted: Vec<u64> = segments.into_iter().filter(|n| *n > last_listed).collect();
    let added = match (&newest_init, unlisted.is_empty()) {
        (Some((part, _)), false) => probe_unlisted(storage, &keys, *part, &unlisted).await?,
        _ => Vec::new(),
    };
    let started = chrono::DateTime::from_timestamp_millis(s.started_ms).unwrap_or_default();
    let rebuilt = rebuild(
        &s.session,
        hls.target_segment_s,
        written,
        &added,
        newest_init.as_ref().map(|(_, name)| name.as_str()),
        started,
    );
    let ended_ms = rebuilt
        .ended_at
        .map_or(s.started_ms, |t| t.timestamp_millis());
    let mut recovered = RecoveredSession {
        room: s.room.clone(),
        session: s.session.clone(),
        segments: rebuilt.playlists.len(),
        added: rebuilt.added,
        vod_key: None,
        live_closed: false,
        ended_ms,
    };
    if rebuilt.playlists.is_empty() {
        return Ok(recovered);
    }
    let vod = rebuilt.playlists.session_playlist(SessionState::Ended)?;
    put_with_retry(storage, &keys.session_playlist(), Bytes::from(vod)).await?;
    recovered.vod_key = Some(keys.session_playlist());
    // The room's live playlist ends too, unless a later broadcast has written it since.
    let live_key = keys.live_playlist();
    if let Some(live) = storage.get_bytes(&live_key).await? {
        let live = String::from_utf8_lossy(&live);
        let names_session = live
            .lines()
            .any(|l| l.starts_with(&format!("{}/", s.session)));
        if names_session && !live.contains("#EXT-X-ENDLIST") {
            let ended = rebuilt.playlists.live_playlist(hls.window_segments, true)?;
            put_with_retry(storage, &live_key, Bytes::from(ended)).await?;
            recovered.live_closed = true;
        }
    }
    Ok(recovered)
}

/// Reads the unlisted segments back (with the newest part's init, the part they belong to).
async fn probe_unlisted(
    storage: &Storage,
    keys: &SessionKeys,
    part: u32,
    unlisted: &[u64],
) -> Result<Vec<AddedSegment>, StorageError> {
    let Some(init) = storage.get_bytes(&keys.part_init(part)).await? else {
        return Ok(Vec::new());
    };
    let scales: HashMap<u32, u32> = match track_timescales(&init) {
        Ok(scales) => scales,
        Err(e) => {
            tracing::warn!(error = %e, "unlisted segments left out");
            return Ok(Vec::new());
        }
    };
    let mut added = Vec::new();
    for &n in unlisted {
        let Some(body) = storage.get_bytes(&keys.segment(n)).await? else {
            continue;
        };
        match probe_fragment(&body, &scales) {
            Ok(info) => added.push(AddedSegment {
                sequence: n,
                duration: info.duration,
                independent: info.independent,
            }),
            Err(e) => tracing::warn!(segment = n, error = %e, "a damaged segment is left out"),
        }
    }
    Ok(added)
}

#[cfg(test)]
mod tests;
