//! Rooms' live FLV feeds and their viewers. The session writer owns a room's
//! [`FlvRoomFeed`] while the broadcast lasts (through reconnects within the grace) and hands it
//! every media message; `GET /live/{room}.flv` asks [`FlvHub::watch`] for a viewer.
//!
//! Memory per room is the ring of `queue_tags` tags shared by all its viewers plus one group of
//! pictures for joiners; a viewer holds only its place in the ring. One that falls more than the
//! ring behind skips to the next keyframe (`barrage_flv_skips_total`); the picture jumps
//! forward, nothing piles up.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::broadcast;

use super::gop::{GopCache, TagKind};
use super::tag::{self, Unframed};
use crate::media::{MediaMessage, StreamMetadata};
use crate::sync::lock;

/// Longest group of pictures kept for joiners (a 2 s GOP at 8 Mbit/s is 2 MB).
const GOP_MAX_BYTES: usize = 8 << 20;

/// One framed tag in the room's ring.
#[derive(Debug, Clone)]
struct FlvTag {
    kind: TagKind,
    bytes: Bytes,
}

#[derive(Debug)]
struct RoomFlv {
    /// Joiner state and the ring's sender, under one lock so a joiner's snapshot and its place
    /// in the ring agree.
    cache: Mutex<(GopCache, broadcast::Sender<FlvTag>)>,
}

/// Every room's live FLV feed on this node.
#[derive(Debug)]
pub struct FlvHub {
    rooms: Mutex<HashMap<String, Arc<RoomFlv>>>,
    queue_tags: usize,
}

impl FlvHub {
    /// `queue_tags`: the ring's length (`flv.queue_tags`).
    pub fn new(queue_tags: usize) -> Arc<FlvHub> {
        Arc::new(FlvHub {
            rooms: Mutex::new(HashMap::new()),
            queue_tags: queue_tags.max(16),
        })
    }

    /// The feed of a broadcast starting in `room` (it replaces any earlier one).
    pub fn feed(self: &Arc<Self>, room: &str) -> FlvRoomFeed {
        let (tx, _) = broadcast::channel(self.queue_tags);
        let flv = Arc::new(RoomFlv {
            cache: Mutex::new((GopCache::new(GOP_MAX_BYTES), tx)),
        });
        lock(&self.rooms).insert(room.to_string(), flv.clone());
        FlvRoomFeed {
            hub: self.clone(),
            room: room.to_string(),
            flv,
        }
    }

    /// A new viewer of `room`'s live broadcast (None: not live on this node, or no codec
    /// configuration seen yet).
    pub fn watch(&self, room: &str) -> Option<FlvViewer> {
        let flv = lock(&self.rooms).get(room).cloned()?;
        let guard = lock(&flv.cache);
        let (cache, tx) = &*guard;
        if !cache.has_video() && !cache.has_audio() {
            return None;
        }
        let mut start = vec![tag::header(cache.has_audio(), cache.has_video())];
        start.extend(cache.joining_tags());
        Some(FlvViewer {
            start,
            ring: tx.subscribe(),
            need_keyframe: cache.has_video() && !cache.starts_with_keyframe(),
        })
    }

    /// Bytes held for joiners in `room` (None: no feed).
    pub fn held_bytes(&self, room: &str) -> Option<usize> {
        let flv = lock(&self.rooms).get(room).cloned()?;
        let held = lock(&flv.cache).0.held_bytes();
        Some(held)
    }
}

/// A broadcast's side of the hub: framed tags in, for as long as it lives.
#[derive(Debug)]
pub struct FlvRoomFeed {
    hub: Arc<FlvHub>,
    room: String,
    flv: Arc<RoomFlv>,
}

impl FlvRoomFeed {
    /// Hands one media message to the room: kept for joiners as it is, framed only when the
    /// room has viewers (framing copies the body).
    pub fn publish(&self, message: &MediaMessage) {
        let (kind, unframed) = match message {
            MediaMessage::Metadata(meta) => (
                TagKind::Metadata,
                Unframed {
                    kind: tag::SCRIPT,
                    timestamp: 0,
                    body: tag::metadata_body(&metadata_fields(meta)),
                },
            ),
            MediaMessage::Video { timestamp, body } => {
                let kind = if tag::is_video_config(body) {
                    TagKind::VideoConfig
                } else if tag::is_video_keyframe(body) {
                    TagKind::Keyframe
                } else {
                    TagKind::Video
                };
                (kind, Unframed::new(tag::VIDEO, *timestamp, body))
            }
            MediaMessage::Audio { timestamp, body } => {
                let kind = if tag::is_audio_config(body) {
                    TagKind::AudioConfig
                } else {
                    TagKind::Audio
                };
                (kind, Unframed::new(tag::AUDIO, *timestamp, body))
            }
            MediaMessage::Refused(_) => return,
        };
        let mut guard = lock(&self.flv.cache);
        guard.0.push(kind, &unframed);
        // Without viewers the ring would only keep the last `queue_tags` tags alive (seconds
        // of media per room, for nobody): joiners start from the GOP cache anyway, and they
        // take it and subscribe under this same lock, so nothing falls between the two.
        if guard.1.receiver_count() > 0 {
            let _ = guard.1.send(FlvTag {
                kind,
                bytes: unframed.framed(),
            });
        }
    }
}

impl Drop for FlvRoomFeed {
    /// The broadcast ended: its viewers' streams end (the ring's sender goes with the room).
    fn drop(&mut self) {
        let mut rooms = lock(&self.hub.rooms);
        if rooms
            .get(&self.room)
            .is_some_and(|flv| Arc::ptr_eq(flv, &self.flv))
        {
            rooms.remove(&self.room);
        }
    }
}

fn metadata_fields(meta: &StreamMetadata) -> Vec<(&'static str, f64)> {
    let mut fields = Vec::new();
    if let Some(w) = meta.width {
        fields.push(("width", f64::from(w)));
    }
    if let Some(h) = meta.height {
        fields.push(("height", f64::from(h)));
    }
    if let Some(f) = meta.framerate {
        fields.push(("framerate", f));
    }
    if let Some(v) = meta.video_kbps {
        fields.push(("videodatarate", v));
    }
    if let Some(a) = meta.audio_kbps {
        fields.push(("audiodatarate", a));
    }
    fields
}

/// One viewer: the joining bytes, then its place in the room's ring.
#[derive(Debug)]
pub struct FlvViewer {
    start: Vec<Bytes>,
    ring: broadcast::Receiver<FlvTag>,
    /// Skipping until a video keyframe (after joining without one, or after falling behind).
    need_keyframe: bool,
}

impl FlvViewer {
    /// The next bytes to send (None: the broadcast ended).
    pub async fn next_bytes(&mut self) -> Option<Bytes> {
        if !self.start.is_empty() {
            let joined = self.start.concat();
            self.start.clear();
            return Some(Bytes::from(joined));
        }
        loop {
            match self.ring.recv().await {
                Ok(t) => {
                    if self.need_keyframe {
                        if t.kind == TagKind::Keyframe {
                            self.need_keyframe = false;
                        } else if !t.kind.is_setup() {
                            continue;
                        }
                    }
                    return Some(t.bytes);
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    metrics::counter!("barrage_flv_skips_total").increment(1);
                    tracing::debug!(missed, "slow FLV viewer skips to the next keyframe");
                    self.need_keyframe = true;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The viewer as a response body stream; counts itself in `barrage_flv_viewers`.
    pub fn into_stream(self) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send {
        metrics::gauge!("barrage_flv_viewers").increment(1.0);
        let counted = ViewerCount;
        futures::stream::unfold((self, counted), |(mut viewer, counted)| async move {
            let bytes = viewer.next_bytes().await?;
            Some((Ok(bytes), (viewer, counted)))
        })
    }
}

/// Takes the viewer out of the gauge when its stream is dropped (ended or the client left).
struct ViewerCount;

impl Drop for ViewerCount {
    fn drop(&mut self) {
        metrics::gauge!("barrage_flv_viewers").decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(timestamp: u32, body: &[u8]) -> MediaMessage {
        MediaMessage::Video {
            timestamp,
            body: Bytes::copy_from_slice(body),
        }
    }

    #[tokio::test]
    async fn a_joiner_starts_at_the_latest_keyframe_and_follows_live() {
        let hub = FlvHub::new(64);
        assert!(hub.watch("r").is_none(), "offline");
        let feed = hub.feed("r");
        assert!(hub.watch("r").is_none(), "no configuration yet");
        feed.publish(&video(0, &[0x17, 0, 1, 2]));
        feed.publish(&video(0, &[0x17, 1, 9]));
        feed.publish(&video(40, &[0x27, 1, 8]));
        let mut viewer = hub.watch("r").expect("live");
        let start = viewer.next_bytes().await.unwrap();
        assert_eq!(&start[..3], b"FLV");
        assert_eq!(start[4], 1, "video only so far");
        // header 13 + config tag (11+4+4) + keyframe (11+3+4) + inter (11+3+4)
        assert_eq!(start.len(), 13 + 19 + 18 + 18);
        feed.publish(&video(80, &[0x27, 1, 7]));
        let next = viewer.next_bytes().await.unwrap();
        assert_eq!(&next[11..14], &[0x27, 1, 7]);
        drop(feed);
        assert!(viewer.next_bytes().await.is_none(), "broadcast over");
        assert!(hub.watch("r").is_none());
    }

    #[tokio::test]
    async fn a_viewer_that_never_reads_holds_no_memory_and_skips_to_a_keyframe() {
        let hub = FlvHub::new(16);
        let feed = hub.feed("r");
        feed.publish(&video(0, &[0x17, 0, 1]));
        feed.publish(&video(0, &[0x17, 1, 0]));
        let mut slow = hub.watch("r").unwrap();
        let _ = slow.next_bytes().await.unwrap();
        // 10,000 tags go by; the ring keeps 16 and the joiner cache one group.
        for i in 1..10_000u32 {
            let key = if i % 50 == 0 { 0x17 } else { 0x27 };
            feed.publish(&video(i * 40, &[key, 1, (i % 256) as u8]));
        }
        assert!(hub.held_bytes("r").unwrap() <= 50 * 18);
        feed.publish(&video(400_000, &[0x17, 1, 0xAA]));
        // Behind: the next thing it gets is a keyframe, never a picture that needs an earlier one.
        let next = slow.next_bytes().await.unwrap();
        assert_eq!(next[11], 0x17, "resumes at a keyframe");
    }

    #[tokio::test]
    async fn a_new_broadcast_in_the_room_replaces_the_old_feed() {
        let hub = FlvHub::new(16);
        let old = hub.feed("r");
        let new = hub.feed("r");
        drop(old);
        new.publish(&video(0, &[0x17, 0, 1]));
        assert!(
            hub.watch("r").is_some(),
            "the old feed's end leaves the new one"
        );
    }
}
