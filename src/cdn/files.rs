//! The objects the CDN serves for danmaku: one immutable batch file per period per room, and a
//! small index per room. Keys are predictable (`n`, `n+1`, ...) so a client can poll the next
//! file without reading the index.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::chat::{DeliveredBatch, Event};
use crate::config::CdnBase;

/// One delivered event as the CDN file carries it: the same JSON the WebSocket batch carries.
#[derive(Debug, Clone)]
pub struct CdnEvent {
    pub seq: u64,
    pub ts_ms: i64,
    pub stream_ms: u64,
    /// The whole event in its JSON wire form (seq, ts_ms, stream_ms, priority, body), written
    /// into the file as it is.
    pub json: Box<RawValue>,
}

impl CdnEvent {
    /// The events of a delivered batch, each its part of the batch's JSON frame: the batch was
    /// encoded once for the sockets, and the files take the same bytes (no second encoding).
    pub fn from_batch(batch: &DeliveredBatch) -> Vec<CdnEvent> {
        #[derive(Deserialize)]
        struct Frame<'a> {
            #[serde(borrow)]
            events: Vec<&'a RawValue>,
        }
        let encoded = serde_json::from_slice::<Frame>(&batch.json)
            .ok()
            .filter(|frame| frame.events.len() == batch.events.len());
        match encoded {
            Some(frame) => batch
                .events
                .iter()
                .zip(frame.events)
                .map(|(e, json)| CdnEvent::with_json(e, json.to_owned()))
                .collect(),
            // Every batch's JSON is its events' (`DeliveredBatch` makes or checks it); should
            // one not be, its events are encoded again rather than lost.
            None => batch.events.iter().map(CdnEvent::from_event).collect(),
        }
    }

    /// An event encoded on its own (one taken from history rather than from a batch).
    pub fn from_event(e: &Event) -> CdnEvent {
        let json =
            serde_json::value::to_raw_value(e).expect("protocol events always serialise to JSON");
        CdnEvent::with_json(e, json)
    }

    fn with_json(e: &Event, json: Box<RawValue>) -> CdnEvent {
        CdnEvent {
            seq: e.seq,
            ts_ms: e.ts_ms,
            stream_ms: e.stream_ms,
            json,
        }
    }
}

/// `danmaku/{room}/{session}/{n}.json`: the events of one period.
///
/// `from_seq..=to_seq` continues the previous file exactly (`from_seq` = previous `to_seq` + 1);
/// a period without events has `to_seq = from_seq - 1` and no events, so the sequence of files
/// has no holes and a client never has to guess whether a file is missing or empty.
///
/// The writer holds each event as its encoded JSON (`BatchFile<Box<RawValue>>`); readers get
/// them as values (`BatchFile`, the default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchFile<E = serde_json::Value> {
    pub room: String,
    pub session: String,
    pub n: u64,
    pub from_seq: u64,
    pub to_seq: u64,
    /// Wall-clock range of the period, ms since the epoch.
    pub start_ms: i64,
    pub end_ms: i64,
    pub events: Vec<E>,
}

impl BatchFile {
    /// The object key of batch `n`.
    pub fn key(room: &str, session: &str, n: u64) -> String {
        format!("danmaku/{room}/{session}/{n}.json")
    }
}

impl<E> BatchFile<E> {
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
    format!("chat-{}", crate::rooms::live::new_session_id(now))
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

    #[test]
    fn a_batch_gives_each_event_the_json_it_has_alone() {
        use crate::chat::protocol::{Body, Priority, SystemMessage};
        let event = |seq: u64| Event {
            seq,
            ts_ms: 1_764_000_000_000,
            stream_ms: seq * 10,
            priority: Priority::System,
            body: Body::System(SystemMessage {
                text: format!("m{seq} \"quoted\" 弹幕"),
            }),
        };
        let batch = DeliveredBatch::new(std::sync::Arc::from("r"), vec![event(7), event(8)], 0);
        let from_batch = CdnEvent::from_batch(&batch);
        let alone: Vec<CdnEvent> = batch.events.iter().map(CdnEvent::from_event).collect();
        let json = |events: &[CdnEvent]| -> Vec<String> {
            events.iter().map(|e| e.json.get().to_string()).collect()
        };
        assert_eq!(json(&from_batch), json(&alone));
        assert_eq!(from_batch.iter().map(|e| e.seq).collect::<Vec<_>>(), [7, 8]);
    }
}
