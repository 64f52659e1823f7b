//! The chatroom engine: danmaku over WebSocket (JSON or protobuf), layered uplink flow
//! control, moderation, a per-room priority scheduler with one shared batch per tick, history
//! for resume, and gifts/system messages from the HTTP API.
//!
//! Pure logic (protocol types, codec, scheduler, limits, moderation, history) has no I/O and is
//! tested directly. A room's flow runs in three modules: [`uplink`] takes a client's send to
//! its ack, [`room`] queues content and ticks on a tokio task, [`fanout`] delivers each tick's
//! batch to history, sockets and the batch sink; [`engine`] holds the rooms of a node.
//! `crate::http::ws` and `crate::http::api_chat` are the thin network faces. The error type
//! and the sink trait live here, below all of them.

pub mod access_frames;
pub mod codec;
pub mod engine;
pub mod fanout;
pub mod history;
pub mod limits;
pub mod moderation;
pub mod names;
pub mod protocol;
pub mod room;
pub mod scheduler;
pub mod stats;
pub mod uplink;

use std::sync::Arc;

/// Types generated from `proto/barrage/v1/barrage.proto` (prost, compiled by build.rs).
#[allow(clippy::all, missing_docs)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/barrage.v1.rs"));
}

pub use engine::ChatEngine;
pub use fanout::DeliveredBatch;
pub use protocol::{AckStatus, Event, Priority};

/// Why an engine call could not be done; each names the room.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    #[error("room {0} does not exist or is closed")]
    RoomNotFound(String),
    #[error("room {room}: the {queue} queue is full; try again later")]
    QueueFull { room: String, queue: &'static str },
    #[error("room {room}: seq {seq} has not been delivered")]
    NotDelivered { room: String, seq: u64 },
}

/// Receives every batch any room delivers with its files written here, inline in the room's
/// tick (so it never lags or misses one): the CDN file writer. It must only hand the batch
/// on, never wait.
pub trait BatchSink: Send + Sync + std::fmt::Debug {
    fn deliver(&self, batch: &Arc<DeliveredBatch>);
}
