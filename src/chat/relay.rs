//! The seam between a room and the other nodes that serve it. A single node has no relay and
//! every path below is the plain local one; with several nodes (`crate::cluster`) the relay
//! decides where accepted content is queued (here, or on the node that runs the room's
//! scheduler) and when a ticked batch reaches this node's sockets (once it is shared).
//!
//! The trait lives in `chat` so the engine does not depend on Redis or on the cluster module.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::limits::LimitRefusal;
use super::moderation::ModerationChange;
use super::protocol::Priority;
use super::room::{DeliveredBatch, Room};
use super::scheduler::Pending;

/// What a room asks of the nodes that share it.
pub trait RoomRelay: Send + Sync + std::fmt::Debug {
    /// The room's task started on this node (a viewer or the API touched it).
    fn activated(&self, room: &Arc<Room>);

    /// The room's task ended (closed, or the engine is stopping).
    fn deactivated(&self, room: &Arc<Room>);

    /// Content this node accepted (after its limits and moderation). `Some` gives it back to be
    /// queued here; `None` means the relay took it (forwarded to the scheduling node).
    fn uplink(&self, room: &Room, priority: Priority, item: Pending) -> Option<Pending>;

    /// A batch this node's scheduler ticked. The relay delivers it, now or once every node can
    /// have it, through [`Room::deliver`].
    fn batch(&self, room: &Room, batch: Arc<DeliveredBatch>);

    /// The shared rate layers (per user and per room, across nodes), checked before a send is
    /// accepted. An error is a refusal; a relay that cannot reach its store lets the send pass
    /// (the local layers still apply).
    fn check_send<'a>(
        &'a self,
        room: &'a str,
        user: &'a str,
    ) -> BoxFuture<'a, Result<(), LimitRefusal>>;

    /// A moderation change made on this node, for the other nodes to apply too.
    fn moderated(&self, room: &str, change: &ModerationChange);

    /// Stream time (ms since the first frame) of the room's broadcast when another node takes
    /// its RTMP push in, so events accepted here line up with the video too.
    fn stream_ms(&self, room: &str) -> Option<u64>;
}
