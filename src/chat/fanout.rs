//! The delivering half of a room: each tick's events as one [`DeliveredBatch`], its history,
//! the sockets that are members, and the hand-off to the batch sink (the CDN file writer).
//!
//! Fan-out follows goim: a tick's events are encoded once per format into `Bytes` and the same
//! `Arc<DeliveredBatch>` goes to every socket through a broadcast ring whose capacity is the
//! per-socket backlog. Delivery never waits for a socket; a socket that falls further behind
//! than the ring is told it lagged and skips (see `crate::http::ws`). Dropping a
//! [`Membership`] leaves the room.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use tokio::sync::broadcast;

use super::codec::{decode_server_binary, encode_batch, Format};
use super::history::{History, Resume};
use super::protocol::{Event, ServerFrame};
use super::stats::RoomAccounting;
use super::BatchSink;
use crate::http::ws_stream::{server_frame, OpCode};
use crate::sync::lock;

/// One tick's delivered events, encoded once per format and shared by every consumer.
#[derive(Debug)]
pub struct DeliveredBatch {
    pub room: Arc<str>,
    /// The events, seq-contiguous, in delivery order.
    pub events: Vec<Event>,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Wall time (ms since the epoch) of the tick that delivered the batch.
    pub tick_ms: i64,
    /// The JSON batch frame (`{"type":"batch","events":[...]}`), UTF-8.
    pub json: Bytes,
    /// The protobuf `ServerFrame{batch}`.
    pub proto: Bytes,
    /// The whole WebSocket frames (header + payload) per format (json, proto), built on first
    /// use and then written as they are to every socket of that format.
    frames: [OnceLock<Bytes>; 2],
}

/// Why bytes from another node are not a batch.
#[derive(Debug, thiserror::Error)]
pub enum RemoteBatchError {
    #[error("room {room}: the protobuf batch does not decode: {message}")]
    Proto { room: String, message: String },
    #[error("room {room}: the JSON batch is not UTF-8")]
    Json { room: String },
    #[error("room {room}: the batch says seqs {first}..={last} but holds {held}")]
    Seqs {
        room: String,
        first: u64,
        last: u64,
        held: String,
    },
}

impl DeliveredBatch {
    /// Encodes `events` (non-empty, seq-contiguous) once per format.
    pub fn new(room: Arc<str>, events: Vec<Event>, tick_ms: i64) -> DeliveredBatch {
        let encoded = encode_batch(&events);
        DeliveredBatch {
            room,
            first_seq: events.first().map_or(0, |e| e.seq),
            last_seq: events.last().map_or(0, |e| e.seq),
            events,
            tick_ms,
            json: Bytes::from(encoded.json),
            proto: encoded.proto,
            frames: Default::default(),
        }
    }

    /// A batch another node encoded: its bytes are sent to sockets as they are (no encode
    /// here); the protobuf form is decoded once for history and the CDN writer.
    pub fn from_encoded(
        room: Arc<str>,
        tick_ms: i64,
        json: Bytes,
        proto: Bytes,
    ) -> Result<DeliveredBatch, RemoteBatchError> {
        let events = match decode_server_binary(&proto) {
            Ok(ServerFrame::Batch { events }) => events,
            Ok(other) => {
                return Err(RemoteBatchError::Proto {
                    room: room.to_string(),
                    message: format!("not a batch frame: {other:?}"),
                })
            }
            Err(e) => {
                return Err(RemoteBatchError::Proto {
                    room: room.to_string(),
                    message: e.to_string(),
                })
            }
        };
        let contiguous = events.windows(2).all(|w| w[1].seq == w[0].seq + 1);
        let (first_seq, last_seq) = match (events.first(), events.last()) {
            (Some(f), Some(l)) if contiguous && f.seq >= 1 => (f.seq, l.seq),
            _ => {
                return Err(RemoteBatchError::Seqs {
                    room: room.to_string(),
                    first: events.first().map_or(0, |e| e.seq),
                    last: events.last().map_or(0, |e| e.seq),
                    held: format!("{} events, contiguous: {contiguous}", events.len()),
                })
            }
        };
        if std::str::from_utf8(&json).is_err() {
            return Err(RemoteBatchError::Json {
                room: room.to_string(),
            });
        }
        Ok(DeliveredBatch {
            room,
            events,
            first_seq,
            last_seq,
            tick_ms,
            json,
            proto,
            frames: Default::default(),
        })
    }

    /// The whole WebSocket frame for a socket of `format` (a text frame for JSON, binary
    /// for protobuf), encoded once per batch: every socket writes these same bytes.
    pub fn frame(&self, format: Format) -> &Bytes {
        self.frames[format_index(format)].get_or_init(|| match format {
            Format::Json => server_frame(OpCode::Text, &self.json),
            Format::Proto => server_frame(OpCode::Binary, &self.proto),
        })
    }

    /// Encoded size in `format`.
    pub fn len(&self, format: Format) -> usize {
        match format {
            Format::Json => self.json.len(),
            Format::Proto => self.proto.len(),
        }
    }

    /// Whether the batch has no events (never true for delivered batches).
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// A socket's place in the room: its feed of batches and what to send first. Dropping it
/// leaves the room (online count).
#[derive(Debug)]
pub struct Membership {
    pub batches: broadcast::Receiver<Arc<DeliveredBatch>>,
    /// The room's latest delivered seq at join (the welcome's `seq`).
    pub seq: u64,
    /// What a resuming client missed.
    pub resume: Resume,
    _guard: MemberGuard,
}

#[derive(Debug)]
struct MemberGuard {
    fanout: Arc<Fanout>,
    format: Format,
}

impl Drop for MemberGuard {
    fn drop(&mut self) {
        let fanout = &self.fanout;
        fanout.online.fetch_sub(1, Ordering::Relaxed);
        fanout.members[format_index(self.format)].fetch_sub(1, Ordering::Relaxed);
        fanout
            .accounting
            .online(fanout.online.load(Ordering::Relaxed));
    }
}

fn format_index(f: Format) -> usize {
    match f {
        Format::Json => 0,
        Format::Proto => 1,
    }
}

/// One room's delivered events and the sockets and sink they go to.
#[derive(Debug)]
pub struct Fanout {
    /// History and the ring send happen under this lock, so a joining socket's resume
    /// snapshot and its subscription meet without a gap or a duplicate.
    history: Mutex<History>,
    ring: broadcast::Sender<Arc<DeliveredBatch>>,
    /// Sockets on this node.
    online: AtomicU64,
    /// Members per format (json, proto), for delivered-bytes accounting.
    members: [AtomicU64; 2],
    accounting: Arc<RoomAccounting>,
    /// Sees every batch whose files this node writes (the CDN file writer), inline in the tick.
    sink: OnceLock<Arc<dyn BatchSink>>,
}

impl Fanout {
    /// Continues after `last_seq`, keeping `history` events and a ring of `backlog` batches.
    pub(crate) fn new(
        history: usize,
        backlog: usize,
        last_seq: u64,
        accounting: Arc<RoomAccounting>,
    ) -> Fanout {
        Fanout {
            history: Mutex::new(History::new(history, last_seq)),
            ring: broadcast::channel(backlog.max(1)).0,
            online: AtomicU64::new(0),
            members: Default::default(),
            accounting,
            sink: OnceLock::new(),
        }
    }

    /// Installs the sink that sees every batch (set before the room's task starts).
    pub(crate) fn set_sink(&self, sink: Arc<dyn BatchSink>) {
        let _ = self.sink.set(sink);
    }

    /// Adds a socket: subscribes it and computes its resume under one lock.
    pub fn join(self: &Arc<Self>, format: Format, resume_from: Option<u64>) -> Membership {
        let (batches, seq, resume) = {
            let history = lock(&self.history);
            let batches = self.ring.subscribe();
            let resume = resume_from.map_or(Resume::UpToDate, |s| history.after(s));
            (batches, history.last_seq(), resume)
        };
        let online = self.online.fetch_add(1, Ordering::Relaxed) + 1;
        self.members[format_index(format)].fetch_add(1, Ordering::Relaxed);
        self.accounting.online(online);
        Membership {
            batches,
            seq,
            resume,
            _guard: MemberGuard {
                fanout: self.clone(),
                format,
            },
        }
    }

    /// The batches delivered from now on, for a reader that is not a socket (the session
    /// writer carrying danmaku in the media): not counted online, skipped when it lags.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<DeliveredBatch>> {
        self.ring.subscribe()
    }

    /// Sockets joined on this node.
    pub fn online(&self) -> u64 {
        self.online.load(Ordering::Relaxed)
    }

    /// The seq of the latest delivered event.
    pub fn last_seq(&self) -> u64 {
        lock(&self.history).last_seq()
    }

    /// Delivered events after `seq` still in history.
    pub fn history_after(&self, seq: u64) -> Resume {
        lock(&self.history).after(seq)
    }

    /// Whether `seq` was delivered (and is still in history).
    pub fn was_delivered(&self, seq: u64) -> bool {
        lock(&self.history).was_delivered(seq)
    }

    /// Puts a batch in history and sends it to every socket; its files are written elsewhere
    /// (another node's sink) or not at all. A batch at or below the delivered seq is dropped
    /// (false); one that jumps ahead (the room went on elsewhere) starts history after the jump.
    pub fn deliver_to_sockets(&self, batch: Arc<DeliveredBatch>) -> bool {
        if !self.record_and_send(&batch) {
            return false;
        }
        self.count_delivered(&batch);
        true
    }

    /// As [`Fanout::deliver_to_sockets`], and hands the batch to the sink too: this node
    /// writes the room's files.
    pub fn deliver_with_files(&self, batch: Arc<DeliveredBatch>) -> bool {
        if !self.record_and_send(&batch) {
            return false;
        }
        if let Some(sink) = self.sink.get() {
            sink.deliver(&batch);
        }
        self.count_delivered(&batch);
        true
    }

    /// Puts a batch in history only: what the room delivered before it was active on this
    /// node (another node's stream tail), there for resume but not news to any socket here.
    /// False for a batch already had.
    pub fn record_history(&self, batch: Arc<DeliveredBatch>) -> bool {
        self.record(&batch, false)
    }

    /// History and the ring, under one lock (see `history`); false for a batch already had.
    fn record_and_send(&self, batch: &Arc<DeliveredBatch>) -> bool {
        self.record(batch, true)
    }

    /// History, and the ring when `send`, under one lock.
    fn record(&self, batch: &Arc<DeliveredBatch>, send: bool) -> bool {
        let mut history = lock(&self.history);
        if batch.first_seq <= history.last_seq() {
            return false;
        }
        if batch.first_seq > history.last_seq() + 1 {
            history.skip_to(batch.first_seq - 1);
        }
        history.push(&batch.events);
        if send {
            // No receiver is fine: an empty room still keeps history and seqs.
            let _ = self.ring.send(batch.clone());
        }
        true
    }

    fn count_delivered(&self, batch: &DeliveredBatch) {
        let members = self.members.each_ref().map(|m| m.load(Ordering::Relaxed));
        let bytes = [Format::Json, Format::Proto].map(|f| batch.len(f));
        self.accounting
            .delivered(batch.events.len() as u64, bytes, members);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::protocol::{Body, Priority, SystemMessage};

    fn event(seq: u64) -> Event {
        Event {
            seq,
            ts_ms: 1,
            stream_ms: 0,
            priority: Priority::System,
            body: Body::System(SystemMessage {
                text: format!("m{seq}"),
            }),
        }
    }

    #[test]
    fn a_batch_rebuilt_from_bytes_keeps_them_and_its_events() {
        let original = DeliveredBatch::new(Arc::from("r"), vec![event(7), event(8)], 5);
        let rebuilt = DeliveredBatch::from_encoded(
            Arc::from("r"),
            5,
            original.json.clone(),
            original.proto.clone(),
        )
        .unwrap();
        assert_eq!((rebuilt.first_seq, rebuilt.last_seq), (7, 8));
        assert_eq!(rebuilt.events, original.events);
        // The same allocation, not a copy: sockets get the owner's bytes.
        assert_eq!(rebuilt.proto.as_ptr(), original.proto.as_ptr());
        assert_eq!(rebuilt.json, original.json);
    }

    #[test]
    fn a_batch_frame_is_built_once_and_carries_the_format_bytes() {
        let batch = DeliveredBatch::new(Arc::from("r"), vec![event(1)], 5);
        let json = batch.frame(Format::Json).clone();
        assert_eq!(json[0], 0x81, "FIN + text");
        assert!(json.ends_with(&batch.json));
        let proto = batch.frame(Format::Proto);
        assert_eq!(proto[0], 0x82, "FIN + binary");
        assert!(proto.ends_with(&batch.proto));
        // The same bytes on every call: one encode per batch, shared by every socket.
        assert_eq!(batch.frame(Format::Json).as_ptr(), json.as_ptr());
    }

    #[test]
    fn garbage_is_an_error_that_names_the_room() {
        let err = DeliveredBatch::from_encoded(
            Arc::from("r9"),
            0,
            Bytes::from_static(b"{}"),
            Bytes::from_static(&[0xff, 0xff, 0xff]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("r9"), "{err}");
        let empty = DeliveredBatch::new(Arc::from("r"), vec![], 0);
        let err = DeliveredBatch::from_encoded(
            Arc::from("r"),
            0,
            empty.json.clone(),
            empty.proto.clone(),
        )
        .unwrap_err();
        assert!(matches!(err, RemoteBatchError::Seqs { .. }), "{err}");
    }
}
