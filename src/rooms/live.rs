//! Which rooms are on air right now, shared by ingest (one publisher per room), the HLS
//! writer, the chat engine (stream time of each event) and the pages (live list, status).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::sync::lock;

/// A room's current broadcast.
#[derive(Debug, Clone, Serialize)]
pub struct LiveInfo {
    pub room: String,
    /// Names the broadcast's objects: `hls/{room}/{session}/...`.
    pub session: String,
    /// Wall-clock ms when the publish began.
    pub started_ms: i64,
    /// When the first media frame arrived: stream time 0 (None until then).
    #[serde(skip)]
    pub first_frame_at: Option<Instant>,
    /// Wall-clock ms of the first frame.
    pub first_frame_ms: Option<i64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    /// Bitrate measured on ingest over the last seconds (kbit/s).
    pub bitrate_kbps: f64,
    /// Bitrate the encoder announced in its metadata (kbit/s).
    pub announced_kbps: Option<f64>,
    pub segments: u64,
    /// The publisher dropped and the broadcast waits for it to come back
    /// (`rtmp.reconnect_grace_s`): still live, no media coming in.
    pub reconnecting: bool,
    /// How many times a publisher came back and continued this broadcast.
    pub reconnects: u32,
}

impl LiveInfo {
    /// Milliseconds since the first frame (0 before it): where "now" is on the stream timeline.
    pub fn stream_ms(&self) -> u64 {
        self.first_frame_at
            .map(|t| t.elapsed().as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A change other parts react to (the database records sessions, the danmaku writer follows).
#[derive(Debug, Clone)]
pub enum LiveChange {
    Started(LiveInfo),
    /// The broadcast ended; its VOD playlist is at `vod_key` (when any segment was written).
    Ended {
        info: LiveInfo,
        ended_ms: i64,
        vod_key: Option<String>,
    },
}

/// Refusal of a second publisher.
#[derive(Debug, Clone, thiserror::Error)]
#[error("room {room} is already live (session {session})")]
pub struct AlreadyLive {
    pub room: String,
    pub session: String,
}

/// The live rooms of this node.
#[derive(Debug)]
pub struct LiveRegistry {
    rooms: Mutex<HashMap<String, LiveInfo>>,
    changes: broadcast::Sender<LiveChange>,
}

impl Default for LiveRegistry {
    fn default() -> Self {
        LiveRegistry::new()
    }
}

impl LiveRegistry {
    pub fn new() -> LiveRegistry {
        LiveRegistry {
            rooms: Mutex::new(HashMap::new()),
            changes: broadcast::channel(256).0,
        }
    }

    /// Marks `room` live with a new session, unless it already is.
    pub fn try_begin(&self, room: &str) -> Result<LiveInfo, AlreadyLive> {
        let mut rooms = lock(&self.rooms);
        if let Some(existing) = rooms.get(room) {
            return Err(AlreadyLive {
                room: room.to_string(),
                session: existing.session.clone(),
            });
        }
        let now = chrono::Utc::now();
        let info = LiveInfo {
            room: room.to_string(),
            session: new_session_id(now),
            started_ms: now.timestamp_millis(),
            first_frame_at: None,
            first_frame_ms: None,
            width: None,
            height: None,
            video_codec: None,
            audio_codec: None,
            bitrate_kbps: 0.0,
            announced_kbps: None,
            segments: 0,
            reconnecting: false,
            reconnects: 0,
        };
        rooms.insert(room.to_string(), info.clone());
        drop(rooms);
        let _ = self.changes.send(LiveChange::Started(info.clone()));
        Ok(info)
    }

    /// Ends the session if it is still the live one.
    pub fn end(&self, room: &str, session: &str, vod_key: Option<String>) {
        self.end_at(room, session, vod_key, crate::clock::now_ms());
    }

    /// Ends the session as of `ended_ms` (wall clock): when its last publisher left, for a
    /// broadcast that waited for a reconnect in vain.
    pub fn end_at(&self, room: &str, session: &str, vod_key: Option<String>, ended_ms: i64) {
        let mut rooms = lock(&self.rooms);
        let Some(info) = rooms.get(room) else { return };
        if info.session != session {
            return;
        }
        let info = rooms.remove(room).expect("checked above");
        drop(rooms);
        let _ = self.changes.send(LiveChange::Ended {
            info,
            ended_ms,
            vod_key,
        });
    }

    /// Applies an update to a live room's info (resolution, bitrate, first frame).
    pub fn update(&self, room: &str, session: &str, f: impl FnOnce(&mut LiveInfo)) {
        if let Some(info) = lock(&self.rooms).get_mut(room) {
            if info.session == session {
                f(info);
            }
        }
    }

    /// The room's live info, if live.
    pub fn get(&self, room: &str) -> Option<LiveInfo> {
        lock(&self.rooms).get(room).cloned()
    }

    /// All live rooms.
    pub fn list(&self) -> Vec<LiveInfo> {
        let mut all: Vec<LiveInfo> = lock(&self.rooms).values().cloned().collect();
        all.sort_by(|a, b| a.room.cmp(&b.room));
        all
    }

    /// Follows starts and ends.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveChange> {
        self.changes.subscribe()
    }
}

/// A sortable, unique session name: `20261125T130501Z-k3f9`.
pub fn new_session_id(now: chrono::DateTime<chrono::Utc>) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    let suffix: String = (0..4)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{}-{suffix}", now.format("%Y%m%dT%H%M%SZ"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_session_per_room_and_end_only_matches_its_session() {
        let reg = LiveRegistry::new();
        let mut rx = reg.subscribe();
        let a = reg.try_begin("r").unwrap();
        assert!(reg.try_begin("r").is_err());
        reg.end("r", "other-session", None);
        assert!(reg.get("r").is_some());
        reg.end("r", &a.session, None);
        assert!(reg.get("r").is_none());
        assert!(matches!(rx.try_recv().unwrap(), LiveChange::Started(_)));
        assert!(matches!(rx.try_recv().unwrap(), LiveChange::Ended { .. }));
        assert!(reg.try_begin("r").is_ok());
    }
}
