//! The parts of a room that only matter when other nodes share it (see `crate::chat::relay`):
//! content that arrives from another node, seq numbering that continues another node's, the
//! online count of the other nodes, and batches rebuilt from bytes another node encoded.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;

use super::{DeliveredBatch, Room};
use crate::chat::codec::decode_server_binary;
use crate::chat::protocol::{Priority, ServerFrame};
use crate::chat::relay::RoomRelay;
use crate::chat::scheduler::Pending;
use crate::sync::lock;

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
        let json_text = Utf8Bytes::try_from(json).map_err(|_| RemoteBatchError::Json {
            room: room.to_string(),
        })?;
        Ok(DeliveredBatch {
            room,
            events,
            first_seq,
            last_seq,
            tick_ms,
            json: Bytes::from(json_text.clone()),
            proto,
            json_text,
        })
    }
}

impl Room {
    /// Installs the relay (set before the room's task starts).
    pub(crate) fn set_relay(&self, relay: Arc<dyn RoomRelay>) {
        let _ = self.relay.set(relay);
    }

    /// Offers accepted content to the relay; what it gives back is queued here.
    pub(super) fn relayed(&self, priority: Priority, pending: Pending) -> Option<Pending> {
        match self.relay.get() {
            Some(relay) => relay.uplink(self, priority, pending),
            None => Some(pending),
        }
    }

    /// Queues content another node accepted (this node runs the room's scheduler). Kept
    /// kinds are not refused here: the sending node already answered its client.
    pub fn enqueue_relayed(&self, priority: Priority, pending: Pending) {
        let now = self.clock_ms();
        if lock(&self.scheduler).push(priority, pending, now).is_some() {
            self.accounting.overflow(priority);
        }
    }

    /// The next event this node schedules gets a seq after `seq` (taking the room over).
    pub fn continue_after(&self, seq: u64) {
        lock(&self.scheduler).continue_after(seq);
    }

    /// The seq this node's scheduler gave last (ahead of [`Room::last_seq`] while batches
    /// are on their way to being shared).
    pub fn scheduled_seq(&self) -> u64 {
        lock(&self.scheduler).last_seq()
    }

    /// Takes what waits in the scheduler (this node stops scheduling the room).
    pub fn drain_queued(&self) -> Vec<(Priority, Pending)> {
        lock(&self.scheduler).drain()
    }

    /// Stream time of a broadcast another node takes in (None: not live anywhere).
    pub(super) fn remote_stream_ms(&self) -> Option<u64> {
        self.relay.get()?.stream_ms(&self.id)
    }

    /// Viewers of this room on this node only.
    pub fn local_online(&self) -> u64 {
        self.online.load(Ordering::Relaxed)
    }

    /// Viewers on the other nodes, from their latest reports.
    pub fn set_others_online(&self, n: u64) {
        self.others_online.store(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::protocol::{Body, Event, SystemMessage};

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
