//! The objects the CDN serves for danmaku: one immutable batch file per period per room, and a
//! small index per room. Keys are predictable (`n`, `n+1`, ...) so a client can poll the next
//! file without reading the index.

use serde::{Deserialize, Serialize};

use crate::config::CdnBase;

/// One delivered event as the CDN file carries it: the same JSON the WebSocket batch carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CdnEvent {
    pub seq: u64,
    pub ts_ms: i64,
    pub stream_ms: u64,
    /// The whole event in its JSON wire form (seq, ts_ms, stream_ms, priority, body).
    pub json: serde_json::Value,
}

/// `danmaku/{room}/{session}/{n}.json`: the events of one period.
///
/// `from_seq..=to_seq` continues the previous file exactly (`from_seq` = previous `to_seq` + 1);
/// a period without events has `to_seq = from_seq - 1` and no events, so the sequence of files
/// has no holes and a client never has to guess whether a file is missing or empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchFile {
    pub room: String,
    pub session: String,
    pub n: u64,
    pub from_seq: u64,
    pub to_seq: u64,
    /// Wall-clock range of the period, ms since the epoch.
    pub start_ms: i64,
    pub end_ms: i64,
    pub events: Vec<serde_json::Value>,
}

impl BatchFile {
    /// The object key of batch `n`.
    pub fn key(room: &str, session: &str, n: u64) -> String {
        format!("danmaku/{room}/{session}/{n}.json")
    }

    /// This file's key.
    pub fn object_key(&self) -> String {
        BatchFile::key(&self.room, &self.session, self.n)
    }
}

/// `danmaku/{room}/index.json`: where a client starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexFile {
    pub room: String,
    pub session: String,
    /// The newest batch written (files 1..=latest exist for this session).
    pub latest: u64,
    pub period_ms: u64,
    /// Whether the room still writes a file every period.
    pub active: bool,
    /// Whether `session` is the live broadcast's session (its HLS is `hls_url`).
    pub live: bool,
    pub hls_url: Option<String>,
    /// Base URLs that serve these files, with weights for weighted round robin.
    pub cdn_bases: Vec<CdnBase>,
    pub updated_ms: i64,
}

impl IndexFile {
    pub fn key(room: &str) -> String {
        format!("danmaku/{room}/index.json")
    }
}

/// How a session's name says where it came from: the live broadcast's own id, or a chat-only
/// session (`chat-...`) for talk while the room is off air.
pub fn chat_session_id(now: chrono::DateTime<chrono::Utc>) -> String {
    format!("chat-{}", crate::live::new_session_id(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_predictable() {
        assert_eq!(BatchFile::key("r", "s", 7), "danmaku/r/s/7.json");
        assert_eq!(IndexFile::key("r"), "danmaku/r/index.json");
        assert!(chat_session_id(chrono::Utc::now()).starts_with("chat-"));
    }
}
