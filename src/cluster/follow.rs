//! Reading what the owners publish: one loop per node, on a connection of its own, blocks on
//! XREAD over the control stream and the event stream of every room active here, and hands
//! each batch (the owner's bytes) to the room's sockets. A room that starts here first reads
//! back the stream's tail, so its history (resume) covers what came before: batches ticked
//! before the room became active here go to history only (a socket that joined meanwhile
//! without `resume_from` must not get them as live), later ones are delivered as usual (the
//! loop picks a new room up within one XREAD block, and batches published in that time are
//! news).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::AsyncCommands;

use super::rooms::SharedRoom;
use super::wire::{read_batch, read_control, Control};
use super::Cluster;
use crate::chat::fanout::DeliveredBatch;

/// How long one XREAD waits for news (rooms that start here wait at most this to be read).
const BLOCK: Duration = Duration::from_millis(250);
/// Entries one XREAD returns at most.
const COUNT: usize = 256;

impl Cluster {
    /// The control stream's newest id now: changes after it are for this node (read once at
    /// start, before the node serves, so none made meanwhile is missed).
    pub(crate) async fn control_tail(&self) -> redis::RedisResult<String> {
        let mut conn = self.link.conn();
        let tail: StreamRangeReply = conn
            .xrevrange_count(self.keys.control(), "+", "-", 1)
            .await?;
        Ok(tail.ids.first().map_or("0-0".to_string(), |e| e.id.clone()))
    }

    /// The reader loop (see the module doc); reconnects after errors. `control_from` is where
    /// the control stream is read from (None: its tail when the loop first reaches Redis).
    pub(crate) async fn follow_loop(self: Arc<Self>, control_from: Option<String>) {
        let mut conn: Option<MultiplexedConnection> = None;
        let control = self.keys.control();
        // Stream key -> last id read.
        let mut positions: HashMap<String, String> = HashMap::new();
        if let Some(id) = control_from {
            positions.insert(control.clone(), id);
        }
        loop {
            if self.cancel.is_cancelled() {
                return;
            }
            if !self.is_up() {
                conn = None;
                self.pause(Duration::from_millis(100)).await;
                continue;
            }
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match self.link.dedicated(BLOCK).await {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        self.redis_failed("follow", &e);
                        continue;
                    }
                },
            };
            match self.follow_once(c, &mut positions, &control).await {
                Ok(()) => {}
                Err(e) => {
                    self.redis_failed("follow", &e);
                    conn = None;
                }
            }
        }
    }

    async fn pause(&self, d: Duration) {
        tokio::select! {
            _ = self.cancel.cancelled() => {}
            _ = tokio::time::sleep(d) => {}
        }
    }

    async fn follow_once(
        &self,
        conn: &mut MultiplexedConnection,
        positions: &mut HashMap<String, String>,
        control: &str,
    ) -> redis::RedisResult<()> {
        if !positions.contains_key(control) {
            let tail: StreamRangeReply = conn.xrevrange_count(control, "+", "-", 1).await?;
            let last = tail.ids.first().map_or("0-0".to_string(), |e| e.id.clone());
            positions.insert(control.to_string(), last);
        }
        let rooms: HashMap<String, Arc<SharedRoom>> = self
            .rooms_snapshot()
            .into_iter()
            .map(|s| (self.keys.events(&s.room.id), s))
            .collect();
        positions.retain(|key, _| key == control || rooms.contains_key(key));
        for (key, shared) in &rooms {
            if !positions.contains_key(key) {
                let last = self.preload(conn, key, shared).await?;
                positions.insert(key.clone(), last);
            }
        }
        let (keys, ids): (Vec<String>, Vec<String>) = positions
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .unzip();
        let options = StreamReadOptions::default()
            .block(BLOCK.as_millis() as usize)
            .count(COUNT);
        let reply: Option<StreamReadReply> = conn.xread_options(&keys, &ids, &options).await?;
        tracing::trace!(node = %self.node_id, ?keys, ?ids, entries = reply.as_ref().map_or(0, |r| r.keys.iter().map(|k| k.ids.len()).sum::<usize>()), "cluster: read");
        for stream in reply.map(|r| r.keys).unwrap_or_default() {
            for entry in stream.ids {
                positions.insert(stream.key.clone(), entry.id.clone());
                if stream.key == control {
                    self.apply_control(&entry.id, entry.map);
                } else if let Some(shared) = rooms.get(&stream.key) {
                    self.deliver_entry(shared, &entry.id, entry.map);
                }
            }
        }
        Ok(())
    }

    /// Reads the tail of a room's stream into its history; returns the id to read on from.
    async fn preload(
        &self,
        conn: &mut MultiplexedConnection,
        key: &str,
        shared: &SharedRoom,
    ) -> redis::RedisResult<String> {
        let tail: StreamRangeReply = conn
            .xrevrange_count(key, "+", "-", self.settings.preload)
            .await?;
        let last = tail.ids.first().map_or("0-0".to_string(), |e| e.id.clone());
        for entry in tail.ids.into_iter().rev() {
            let Some((node, batch)) = self.read_entry(shared, &entry.id, entry.map) else {
                continue;
            };
            if batch.tick_ms < shared.activated_ms {
                shared.room.record_history(Arc::new(batch));
            } else {
                self.deliver_batch(shared, &node, batch);
            }
        }
        Ok(last)
    }

    fn deliver_entry(&self, shared: &SharedRoom, id: &str, map: HashMap<String, redis::Value>) {
        if let Some((node, batch)) = self.read_entry(shared, id, map) {
            self.deliver_batch(shared, &node, batch);
        }
    }

    /// Reads a batch entry (None, counted and logged, when it does not read).
    fn read_entry(
        &self,
        shared: &SharedRoom,
        id: &str,
        map: HashMap<String, redis::Value>,
    ) -> Option<(String, DeliveredBatch)> {
        match read_batch(&shared.room.id, id, map) {
            Ok(read) => Some(read),
            Err(e) => {
                metrics::counter!("barrage_cluster_bad_entries_total").increment(1);
                tracing::warn!(room = %shared.room.id, error = %e, "cluster: skipped a batch entry that does not read");
                None
            }
        }
    }

    fn deliver_batch(&self, shared: &SharedRoom, node: &str, batch: DeliveredBatch) {
        // Only the owner that published a batch writes it to the CDN files.
        let batch = Arc::new(batch);
        let delivered = if node == self.node_id && shared.is_owner() {
            shared.room.deliver_with_files(batch)
        } else {
            shared.room.deliver_to_sockets(batch)
        };
        if delivered {
            metrics::counter!("barrage_cluster_relayed_batches_total").increment(1);
        }
    }

    fn apply_control(&self, id: &str, map: HashMap<String, redis::Value>) {
        match read_control(id, map) {
            Ok((origin, _)) if origin == self.node_id => {}
            Ok((_, Control::Moderation { room, change })) => {
                if let Some(chat) = self.chat() {
                    if let Err(e) = chat.moderate_here(&room, &change) {
                        tracing::debug!(error = %e, "cluster: moderation for a room this node does not know");
                    }
                }
            }
            Ok((_, Control::RoomsChanged)) => {
                let catalog = self.catalog.clone();
                self.tasks.spawn(async move {
                    match catalog.reload().await {
                        Ok(n) => tracing::info!(rooms = n, "cluster: rooms reloaded after a change on another node"),
                        Err(e) => tracing::warn!(error = %e, "cluster: could not reload rooms after a change on another node"),
                    }
                });
            }
            Err(e) => {
                metrics::counter!("barrage_cluster_bad_entries_total").increment(1);
                tracing::warn!(error = %e, "cluster: skipped a control entry that does not read");
            }
        }
    }

    /// Tells the other nodes about a moderation change made here (they apply it in memory;
    /// the database already has it).
    pub(crate) fn announce_moderation(
        &self,
        room: &str,
        change: &crate::chat::moderation::ModerationChange,
    ) {
        let control = Control::Moderation {
            room: room.to_string(),
            change: change.clone(),
        };
        self.announce(control, "a moderation change");
    }

    /// Tells the other nodes that rooms changed in the database.
    pub fn announce_rooms_changed(&self) {
        self.announce(Control::RoomsChanged, "a room change");
    }

    /// Appends a change to the control stream (fire and forget; logged when it fails).
    fn announce(&self, control: Control, what: &'static str) {
        if !self.is_up() {
            tracing::warn!(
                what,
                "cluster: Redis is down; other nodes learn of this when they restart"
            );
            return;
        }
        let body = serde_json::to_vec(&control).unwrap_or_default();
        let key = self.keys.control();
        let origin = self.node_id.clone();
        let mut conn = self.link.conn();
        tokio::spawn(async move {
            let added: redis::RedisResult<String> = redis::cmd("XADD")
                .arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(1000)
                .arg("*")
                .arg("origin")
                .arg(origin)
                .arg("body")
                .arg(body)
                .query_async(&mut conn)
                .await;
            if let Err(e) = added {
                tracing::warn!(what, error = %e, "cluster: could not announce a change to the other nodes");
            }
        });
    }
}
