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

/// Every room's current edge (None while the room has no LL-HLS playlist to offer).
#[derive(Debug, Default)]
pub struct LiveEdges {
    rooms: Mutex<HashMap<String, EdgeSender>>,
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
