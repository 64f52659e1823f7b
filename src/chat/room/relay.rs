//! The seam between a room and the other nodes that serve it. A single node has no relay and
//! every path is the plain local one; with several nodes (`crate::cluster`) the relay decides
//! where accepted content is queued (here, or on the node that runs the room's scheduler) and
//! when a ticked batch reaches this node's sockets (once it is shared).
//!
//! The trait lives in `chat` so the engine does not depend on Redis or on the cluster module;
//! below it are the parts of a room that only matter when other nodes share it: content that
//! arrives from another node, seq numbering that continues another node's, and the online
//! count of the other nodes. (Batches rebuilt from another node's bytes are
//! [`DeliveredBatch::from_encoded`].)

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::Room;
use crate::chat::fanout::DeliveredBatch;
use crate::chat::limits::LimitRefusal;
use crate::chat::moderation::ModerationChange;
use crate::chat::protocol::Priority;
use crate::chat::scheduler::Pending;
use crate::sync::lock;

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
    /// have it, through [`Room::deliver_to_sockets`] or [`Room::deliver_with_files`].
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
        self.fanout.online()
    }

    /// Viewers on the other nodes, from their latest reports.
    pub fn set_others_online(&self, n: u64) {
        self.others_online.store(n, Ordering::Relaxed);
    }
}
