//! A room as this node shares it: its role (follower, owner, or local while Redis is down),
//! the chat relay that routes its content by that role, and the per-room task that publishes
//! the batches its scheduler ticks, one at a time and in order.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::wire::{batch_fields, UplinkItem};
use super::{scripts, Cluster};
use crate::chat::limits::LimitRefusal;
use crate::chat::moderation::ModerationChange;
use crate::chat::protocol::Priority;
use crate::chat::room::{Room, RoomRelay};
use crate::chat::scheduler::Pending;
use crate::chat::DeliveredBatch;
use crate::sync::lock;

/// What this node does for a room now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NodeRole {
    /// Another node (or none yet) schedules the room: forward content, read its batches.
    Follower,
    /// This node took the lease and is catching up before it schedules.
    Acquiring { token: String, until: Instant },
    /// This node schedules the room and writes its CDN files, while `until` is ahead.
    Owner { token: String, until: Instant },
    /// Redis is down: schedule for this node's viewers alone. `files_until`: this node was
    /// the owner, and its CDN writer may go on until its lease would have run out.
    Local { files_until: Option<Instant> },
}

/// A room active on this node.
pub(crate) struct SharedRoom {
    pub room: Arc<Room>,
    role: Mutex<NodeRole>,
    /// The room's ticked batches, to its publishing task.
    publish: mpsc::UnboundedSender<Arc<DeliveredBatch>>,
    /// Cancelled when the room's task ends on this node.
    gone: CancellationToken,
    /// Wall-clock ms the room became active on this node: batches ticked before it are the
    /// room's past here (history for resume), not news for sockets (see `Cluster::preload`).
    pub activated_ms: i64,
}

impl SharedRoom {
    pub(crate) fn role(&self) -> NodeRole {
        lock(&self.role).clone()
    }

    pub(crate) fn set_role(&self, role: NodeRole) {
        *lock(&self.role) = role;
    }

    /// A renewal of lease `token` landed: hold the role until `until` (only if the role is
    /// still that lease's; a demotion that raced the renewal stands).
    pub(crate) fn extend(&self, token: &str, until: Instant) {
        let mut role = lock(&self.role);
        match &mut *role {
            NodeRole::Owner { token: t, until: u } | NodeRole::Acquiring { token: t, until: u }
                if t == token =>
            {
                *u = until;
            }
            _ => {}
        }
    }

    /// Whether the room's role is under lease `token` (acquiring or owning).
    pub(crate) fn holds(&self, token: &str) -> bool {
        matches!(&*lock(&self.role), NodeRole::Owner { token: t, .. } | NodeRole::Acquiring { token: t, .. } if t == token)
    }

    /// The takeover under lease `token` is done: schedule (only if still acquiring with it).
    pub(crate) fn promote(&self, token: &str) -> bool {
        let mut role = lock(&self.role);
        match &*role {
            NodeRole::Acquiring { token: t, until } if t == token => {
                *role = NodeRole::Owner {
                    token: token.to_string(),
                    until: *until,
                };
                true
            }
            _ => false,
        }
    }

    pub(crate) fn is_owner(&self) -> bool {
        matches!(*lock(&self.role), NodeRole::Owner { .. })
    }

    /// Redis went away: schedule locally; an owner keeps its files until its lease ends.
    pub(crate) fn go_local(&self) {
        let mut role = lock(&self.role);
        let files_until = match &*role {
            NodeRole::Owner { until, .. } => Some(*until),
            NodeRole::Local { files_until } => *files_until,
            _ => None,
        };
        *role = NodeRole::Local { files_until };
        drop(role);
        // A follower's scheduler numbered nothing yet: number after what it delivered.
        self.room.continue_after(self.room.last_seq());
    }
}

/// One accepted item for a room's owner, on its way to the task that pushes it to the room's list.
pub(crate) struct Forward {
    pub shared: Arc<SharedRoom>,
    pub item: UplinkItem,
}

/// What the fenced publish said.
enum Published {
    Appended,
    /// The lease is not ours any more.
    NotOwner,
    /// The stored seq is at or past the batch: continue after it.
    Behind(u64),
}

impl Cluster {
    /// Sends accepted content towards the room's owner.
    pub(crate) fn forward_item(&self, shared: &Arc<SharedRoom>, item: UplinkItem) {
        let forward = Forward {
            shared: shared.clone(),
            item,
        };
        if let Err(mpsc::error::SendError(f)) = self.forward.send(forward) {
            // The forwarder has stopped (the node is stopping): keep the content here.
            let (priority, pending) = f.item.into_pending();
            shared.room.enqueue_relayed(priority, pending);
        }
    }

    /// Sends a batch's events back towards the owner (this node scheduled them but may not
    /// deliver them): they get new seqs where they are delivered.
    fn forward_events(&self, shared: &Arc<SharedRoom>, batch: &DeliveredBatch) {
        metrics::counter!("barrage_cluster_requeued_events_total")
            .increment(batch.events.len() as u64);
        for e in &batch.events {
            self.forward_item(shared, UplinkItem::from_event(e));
        }
    }

    /// Stops acting as the room's owner: forget the lease, stop its CDN writer here.
    pub(crate) fn demote(&self, shared: &SharedRoom, why: &'static str) {
        let was_owner = !matches!(
            shared.role(),
            NodeRole::Follower | NodeRole::Local { files_until: None }
        );
        shared.set_role(NodeRole::Follower);
        lock(&self.leases).remove(&*shared.room.id);
        if was_owner {
            tracing::warn!(room = %shared.room.id, why, "cluster: no longer the room's owner; following");
            metrics::counter!("barrage_cluster_demotions_total", "why" => why).increment(1);
            self.cdn.hand_over(&shared.room.id);
        }
    }

    /// One ticked batch, by the room's role at the time it is handled.
    async fn handle_batch(&self, shared: &Arc<SharedRoom>, batch: Arc<DeliveredBatch>) {
        match shared.role() {
            NodeRole::Owner { token, until } if Instant::now() < until => {
                match self.publish(&shared.room.id, &token, &batch).await {
                    Ok(Published::Appended) => {
                        metrics::counter!("barrage_cluster_published_batches_total").increment(1);
                    }
                    Ok(Published::NotOwner) => {
                        self.demote(shared, "fenced");
                        self.forward_events(shared, &batch);
                    }
                    Ok(Published::Behind(seq)) => {
                        tracing::info!(room = %shared.room.id, seq, "cluster: the room went further elsewhere; renumbering after it");
                        shared.room.continue_after(seq);
                        for e in &batch.events {
                            let (p, pending) = UplinkItem::from_event(e).into_pending();
                            shared.room.enqueue_relayed(p, pending);
                        }
                    }
                    Err(e) => {
                        self.redis_failed("publish", &e);
                        self.deliver_local(shared, batch);
                    }
                }
            }
            NodeRole::Owner { .. } => {
                self.demote(shared, "lease_ran_out");
                self.forward_events(shared, &batch);
            }
            NodeRole::Follower | NodeRole::Acquiring { .. } => self.forward_events(shared, &batch),
            NodeRole::Local { .. } => self.deliver_local(shared, batch),
        }
    }

    /// Delivers on this node alone (Redis down); files only while this node's lease would
    /// still hold, so two nodes never write the same room's files.
    fn deliver_local(&self, shared: &SharedRoom, batch: Arc<DeliveredBatch>) {
        let files = match shared.role() {
            NodeRole::Local { files_until } => files_until.is_some_and(|u| Instant::now() < u),
            _ => false,
        };
        if files {
            shared.room.deliver_with_files(batch);
        } else {
            shared.room.deliver_to_sockets(batch);
        }
    }

    async fn publish(
        &self,
        room: &str,
        token: &str,
        batch: &DeliveredBatch,
    ) -> redis::RedisResult<Published> {
        let mut inv = scripts::PUBLISH.prepare_invoke();
        inv.key(self.keys.owner(room))
            .key(self.keys.seq(room))
            .key(self.keys.events(room))
            .arg(token)
            .arg(batch.first_seq)
            .arg(batch.last_seq)
            .arg(self.settings.stream_len);
        for (field, value) in batch_fields(&self.node_id, batch) {
            inv.arg(field).arg(value);
        }
        let mut conn = self.link.conn();
        let (code, value): (i64, redis::Value) = inv.invoke_async(&mut conn).await?;
        Ok(match code {
            1 => Published::Appended,
            2 => Published::Behind(redis::from_redis_value::<u64>(value).unwrap_or(batch.last_seq)),
            _ => Published::NotOwner,
        })
    }

    /// The room's publishing task: batches in tick order, until the room ends here.
    async fn publish_loop(
        self: Arc<Self>,
        shared: Arc<SharedRoom>,
        mut rx: mpsc::UnboundedReceiver<Arc<DeliveredBatch>>,
    ) {
        loop {
            tokio::select! {
                _ = shared.gone.cancelled() => break,
                _ = self.cancel.cancelled() => return,
                batch = rx.recv() => match batch {
                    Some(batch) => self.handle_batch(&shared, batch).await,
                    None => return,
                },
            }
        }
        // The room ended here. What it had scheduled but not shared, and what still waits in
        // its queues, goes back to the room's list for the next owner.
        if !self.is_up() || matches!(shared.role(), NodeRole::Local { .. }) {
            return;
        }
        let mut items = Vec::new();
        while let Ok(batch) = rx.try_recv() {
            items.extend(batch.events.iter().map(UplinkItem::from_event));
        }
        items.extend(
            shared
                .room
                .drain_queued()
                .into_iter()
                .map(|(p, pending)| UplinkItem::new(p, pending)),
        );
        self.push_back(&shared.room.id, items).await;
    }
}

impl RoomRelay for Cluster {
    fn activated(&self, room: &Arc<Room>) {
        let (publish, rx) = mpsc::unbounded_channel();
        let role = if self.is_up() {
            NodeRole::Follower
        } else {
            NodeRole::Local { files_until: None }
        };
        let shared = Arc::new(SharedRoom {
            room: room.clone(),
            role: Mutex::new(role),
            publish,
            gone: CancellationToken::new(),
            activated_ms: crate::clock::now_ms(),
        });
        let replaced = lock(&self.rooms).insert(room.id.to_string(), shared.clone());
        if let Some(old) = replaced {
            old.gone.cancel();
        }
        if let Some(this) = self.me.upgrade() {
            let span = tracing::info_span!("cluster_room", room = %room.id);
            self.tasks
                .spawn(this.publish_loop(shared, rx).instrument(span));
        }
        self.wake_election.notify_one();
    }

    fn deactivated(&self, room: &Arc<Room>) {
        let removed = {
            let mut rooms = lock(&self.rooms);
            match rooms.get(&*room.id) {
                Some(s) if Arc::ptr_eq(&s.room, room) => rooms.remove(&*room.id),
                _ => None,
            }
        };
        let Some(shared) = removed else { return };
        shared.gone.cancel();
        let stopping = self.chat().is_none_or(|c| c.is_stopping());
        if !stopping {
            // Closed by an admin: give the lease back now (stopping nodes keep it until the
            // CDN writer has flushed, see `Cluster::stop`).
            if let Some(token) = lock(&self.leases).remove(&*room.id) {
                let this_keys = self.keys.owner(&room.id);
                let mut conn = self.link.conn();
                tokio::spawn(async move {
                    let _ = scripts::RELEASE
                        .key(this_keys)
                        .arg(token)
                        .invoke_async::<i64>(&mut conn)
                        .await;
                });
            }
        }
    }

    fn uplink(&self, room: &Room, priority: Priority, item: Pending) -> Option<Pending> {
        let Some(shared) = self.shared(&room.id) else {
            return Some(item);
        };
        match shared.role() {
            NodeRole::Owner { .. } | NodeRole::Local { .. } => Some(item),
            NodeRole::Follower | NodeRole::Acquiring { .. } => {
                metrics::counter!("barrage_cluster_forwarded_total", "queue" => priority.as_str())
                    .increment(1);
                self.forward_item(&shared, UplinkItem::new(priority, item));
                None
            }
        }
    }

    fn batch(&self, room: &Room, batch: Arc<DeliveredBatch>) {
        let Some(shared) = self.shared(&room.id) else {
            room.deliver_to_sockets(batch);
            return;
        };
        if let Err(mpsc::error::SendError(batch)) = shared.publish.send(batch) {
            room.deliver_to_sockets(batch);
        }
    }

    fn check_send<'a>(
        &'a self,
        room: &'a str,
        user: &'a str,
    ) -> BoxFuture<'a, Result<(), LimitRefusal>> {
        Box::pin(self.check_send_shared(room, user))
    }

    fn moderated(&self, room: &str, change: &ModerationChange) {
        self.announce_moderation(room, change);
    }

    fn stream_ms(&self, room: &str) -> Option<u64> {
        self.remote_stream_ms(room)
    }
}
