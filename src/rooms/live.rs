//! Which rooms are on air right now, shared by ingest (one publisher per room), the HLS
//! writer, the chat engine (stream time of each event) and the pages (live list, status).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::sync::lock;

/// A room's current broadcast. Nodes of a cluster report it to each other (so it reads back
/// too; the instant of the first frame stays on the node that has it).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
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
    /// Video frames per second, measured on the encoder's timestamps.
    #[serde(default)]
    pub frame_rate: Option<f64>,
    /// The longest recent gap between keyframes (s), the open one included.
    #[serde(default)]
    pub keyframe_interval_s: Option<f64>,
    /// What is wrong with the stream, with advice (empty: healthy); see `crate::health`.
    #[serde(default)]
    pub health: Vec<crate::health::Problem>,
    /// The latest segment's delay from its closing keyframe to its playlist (ms).
    #[serde(default)]
    pub playlist_delay_ms: Option<f64>,
    /// Wall-clock ms of the room's latest still (`crate::thumbnails`), None until one.
    #[serde(default)]
    pub thumbnail_ms: Option<i64>,
}

impl LiveInfo {
    /// A broadcast of `room` just begun as `session` (nothing known about its media yet).
    pub fn new(room: &str, session: &str, started_ms: i64) -> LiveInfo {
        LiveInfo {
            room: room.to_string(),
            session: session.to_string(),
            started_ms,
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
            frame_rate: None,
            keyframe_interval_s: None,
            health: Vec::new(),
            playlist_delay_ms: None,
            thumbnail_ms: None,
        }
    }

    /// Milliseconds since the first frame (0 before it): where "now" is on the stream timeline.
    pub fn stream_ms(&self) -> u64 {
        self.first_frame_at
            .map(|t| t.elapsed().as_millis() as u64)
            .unwrap_or(0)
    }
}

/// Something that happened to a room's broadcasts that its host should see (a refused codec,
/// a reconnect, a broadcast recovered after a crash), kept for the host console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Notice {
    /// Wall-clock ms.
    pub at_ms: i64,
    /// Stable label: `publish_refused`, `publisher_left`, `publisher_back`, `recovered`, ...
    pub code: String,
    /// What happened and what to do, in plain words.
    pub message: String,
}

/// Notices kept per room (the newest).
pub const NOTICES_KEPT: usize = 20;

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
    /// Recent notices by room, oldest first.
    notices: Mutex<HashMap<String, VecDeque<Notice>>>,
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
            notices: Mutex::new(HashMap::new()),
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
        let info = LiveInfo::new(room, &new_session_id(now), now.timestamp_millis());
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

    /// Keeps a notice for `room`'s host (the newest [`NOTICES_KEPT`]).
    pub fn notice(&self, room: &str, code: &str, message: &str) {
        let mut notices = lock(&self.notices);
        let kept = notices.entry(room.to_string()).or_default();
        if kept.len() >= NOTICES_KEPT {
            kept.pop_front();
        }
        kept.push_back(Notice {
            at_ms: crate::clock::now_ms(),
            code: code.to_string(),
            message: message.to_string(),
        });
    }

    /// `room`'s recent notices on this node, oldest first.
    pub fn notices(&self, room: &str) -> Vec<Notice> {
        lock(&self.notices)
            .get(room)
            .map(|n| n.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every room's recent notices on this node (for the cluster's reports).
    pub fn all_notices(&self) -> HashMap<String, Vec<Notice>> {
        lock(&self.notices)
            .iter()
            .map(|(room, n)| (room.clone(), n.iter().cloned().collect()))
            .collect()
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

    #[test]
    fn notices_keep_the_newest_per_room() {
        let reg = LiveRegistry::new();
        for i in 0..NOTICES_KEPT + 3 {
            reg.notice("r", "publish_refused", &format!("n{i}"));
        }
        reg.notice("other", "recovered", "x");
        let kept = reg.notices("r");
        assert_eq!(kept.len(), NOTICES_KEPT);
        assert_eq!(kept[0].message, "n3");
        assert_eq!(
            kept.last().unwrap().message,
            format!("n{}", NOTICES_KEPT + 2)
        );
        assert_eq!(reg.notices("other")[0].code, "recovered");
        assert!(reg.notices("none").is_empty());
    }
}
