//! [`LiveEdges`]: each room's LL-HLS live playlist, kept in memory by the session writer and
//! read by the `/hls/{room}/live.m3u8` handler, which answers blocking reloads
//! (`_HLS_msn`/`_HLS_part`) as soon as the asked part is listed.
//!
//! Parts change three times a second; writing the playlist object to the store that often
//! would cost a store write per part per room for nothing a plain client uses, so the stored
//! `live.m3u8` stays the plain playlist (written per segment, as before) and the LL-HLS one
//! lives here. A node without the room's writer (another node of a cluster, or after the
//! broadcast ended) answers from the store: plain HLS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::watch;

use super::low_latency::PlaylistPosition;
use crate::sync::lock;

/// One version of a room's LL-HLS live playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveEdge {
    /// The playlist text, LL-HLS lines included.
    pub playlist: Arc<str>,
    /// What it lists: the last complete segment and the parts of the next.
    pub position: PlaylistPosition,
    /// `EXT-X-TARGETDURATION`, seconds (a blocking reload waits at most three of them).
    pub target_duration_s: u64,
}

type EdgeSender = watch::Sender<Option<Arc<LiveEdge>>>;

/// Every room's current edge (None while the room has no LL-HLS playlist to offer), and the
/// parts its playlist lists.
#[derive(Debug, Default)]
pub struct LiveEdges {
    rooms: Mutex<HashMap<String, EdgeSender>>,
    /// LL-HLS parts by object key (`hls/{room}/{session}/{n}.{i}.m4s`). Only the node that
    /// cuts them lists them (its in-memory playlist), so they are served from here instead of
    /// being written to the store: five file creations and deletions a second per room were
    /// most of what parts cost. The writer drops a segment's parts when they leave the playlist
    /// and all of its session's when it ends.
    parts: Mutex<HashMap<String, Bytes>>,
}

impl LiveEdges {
    pub fn new() -> LiveEdges {
        LiveEdges::default()
    }

    /// Replaces `room`'s edge (None: serve the stored playlist) and wakes its waiters.
    pub fn publish(&self, room: &str, edge: Option<LiveEdge>) {
        let mut rooms = lock(&self.rooms);
        let edge = edge.map(Arc::new);
        match rooms.get(room) {
            Some(sender) => {
                sender.send_replace(edge);
            }
            None if edge.is_some() => {
                rooms.insert(room.to_string(), watch::Sender::new(edge));
            }
            None => {}
        }
    }

    /// Follows `room`'s edge; None when the room never had one on this node.
    pub fn watch(&self, room: &str) -> Option<watch::Receiver<Option<Arc<LiveEdge>>>> {
        lock(&self.rooms).get(room).map(watch::Sender::subscribe)
    }

    /// Keeps a part for players (see `parts`).
    pub fn put_part(&self, key: String, body: Bytes) {
        lock(&self.parts).insert(key, body);
    }

    /// A part kept here, by object key.
    pub fn part(&self, key: &str) -> Option<Bytes> {
        lock(&self.parts).get(key).cloned()
    }

    /// Drops parts no playlist lists any more.
    pub fn drop_parts(&self, keys: impl IntoIterator<Item = String>) {
        let mut parts = lock(&self.parts);
        for key in keys {
            parts.remove(&key);
        }
    }

    /// Drops every part whose key starts with `prefix` (a session's folder, when it ends).
    pub fn drop_parts_under(&self, prefix: &str) {
        lock(&self.parts).retain(|key, _| !key.starts_with(prefix));
    }

    /// Bytes of parts held (metrics, tests).
    pub fn part_bytes(&self) -> usize {
        lock(&self.parts).values().map(Bytes::len).sum()
    }

    /// `room`'s edge now, if it has one.
    pub fn current(&self, room: &str) -> Option<Arc<LiveEdge>> {
        lock(&self.rooms).get(room).and_then(|s| s.borrow().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(text: &str, parts: u64) -> LiveEdge {
        LiveEdge {
            playlist: Arc::from(text),
            position: PlaylistPosition {
                last_complete: Some(1),
                building_parts: parts,
            },
            target_duration_s: 2,
        }
    }

    #[tokio::test]
    async fn waiters_see_each_new_edge_and_its_withdrawal() {
        let edges = LiveEdges::new();
        assert!(edges.watch("r").is_none());
        edges.publish("r", None);
        assert!(
            edges.watch("r").is_none(),
            "withdrawing nothing makes no entry"
        );
        edges.publish("r", Some(edge("a", 1)));
        let mut rx = edges.watch("r").unwrap();
        assert_eq!(rx.borrow().as_ref().unwrap().playlist.as_ref(), "a");
        edges.publish("r", Some(edge("b", 2)));
        rx.changed().await.unwrap();
        assert_eq!(
            rx.borrow_and_update()
                .as_ref()
                .unwrap()
                .position
                .building_parts,
            2
        );
        edges.publish("r", None);
        rx.changed().await.unwrap();
        assert!(rx.borrow().is_none());
        assert!(edges.current("r").is_none());
        assert!(edges.current("other").is_none());
    }
}
