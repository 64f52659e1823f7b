//! The chatroom engine: danmaku over WebSocket (JSON or protobuf), layered uplink flow
//! control, moderation, a per-room priority scheduler with one shared batch per tick, history
//! for resume, and gifts/system messages from the HTTP API.
//!
//! Pure logic (protocol types, codec, scheduler, limits, moderation, history) has no I/O and is
//! tested directly; `room` and `engine` put it on tokio tasks; `crate::http::ws` and
//! `crate::http::api_chat` are the thin network faces.

pub mod codec;
pub mod engine;
pub mod history;
pub mod limits;
pub mod moderation;
pub mod protocol;
pub mod relay;
pub mod room;
pub mod scheduler;
pub mod stats;

/// Types generated from `proto/barrage/v1/barrage.proto` (prost, compiled by build.rs).
#[allow(clippy::all, missing_docs)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/barrage.v1.rs"));
}

pub use engine::{ChatEngine, ChatError};

pub use protocol::{AckStatus, Event, Priority};
pub use room::DeliveredBatch;
