//! Content on its way to a room's owner: followers push it to the room's Redis list (one
//! task per node, batching what queued meanwhile into one pipeline), and the owner pops the
//! lists of its rooms with BLMPOP on a connection of its own into their schedulers. A list
//! (not pub/sub) keeps what arrives while no node owns the room, so a takeover loses none of
//! it; a TTL and a length cap bound what waits for a room nobody takes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;

use super::rooms::{Forward, SharedRoom};
use super::wire::UplinkItem;
use super::Cluster;

/// Items one pipeline carries at most.
const FORWARD_BATCH: usize = 512;
/// Items waiting for an owner expire after this long without a push.
const UPLINK_TTL_MS: u64 = 60_000;
/// Items kept waiting per room at most (the newest).
const UPLINK_MAX: i64 = 10_000;
/// How long one BLMPOP waits (a room taken over meanwhile waits at most this).
const BLOCK_S: f64 = 0.25;

impl Cluster {
    /// Pushes forwarded content to the rooms' lists; what cannot be pushed (Redis down) is
    /// queued here instead, where the room is now local.
    pub(crate) async fn forward_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Forward>) {
        loop {
            let first = tokio::select! {
                _ = self.cancel.cancelled() => return,
                f = rx.recv() => match f { Some(f) => f, None => return },
            };
            let mut batch = vec![first];
            while batch.len() < FORWARD_BATCH {
                match rx.try_recv() {
                    Ok(f) => batch.push(f),
                    Err(_) => break,
                }
            }
            if !self.is_up() {
                keep_here(batch);
                continue;
            }
            let mut by_room: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
            for f in &batch {
                by_room
                    .entry(self.keys.uplink(&f.shared.room.id))
                    .or_default()
                    .push(f.item.to_json());
            }
            let mut pipe = redis::pipe();
            for (key, items) in &by_room {
                pipe.rpush(key, items)
                    .ignore()
                    .ltrim(key, -(UPLINK_MAX as isize), -1)
                    .ignore()
                    .pexpire(key, UPLINK_TTL_MS as i64)
                    .ignore();
            }
            let mut conn = self.link.conn();
            match pipe.query_async::<()>(&mut conn).await {
                Ok(()) => {}
                Err(e) => {
                    self.redis_failed("forward", &e);
                    keep_here(batch);
                }
            }
        }
    }

    /// The owner's side: pops its rooms' lists into their schedulers.
    pub(crate) async fn consume_loop(self: Arc<Self>) {
        let mut conn: Option<MultiplexedConnection> = None;
        let block = Duration::from_secs_f64(BLOCK_S);
        loop {
            if self.cancel.is_cancelled() {
                return;
            }
            let owned: Vec<Arc<SharedRoom>> = self
                .rooms_snapshot()
                .into_iter()
                .filter(|s| s.is_owner())
                .collect();
            if owned.is_empty() || !self.is_up() {
                if !self.is_up() {
                    conn = None;
                }
                tokio::select! {
                    _ = self.cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
                continue;
            }
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match self.link.dedicated(block).await {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        self.redis_failed("uplink", &e);
                        continue;
                    }
                },
            };
            let keys: Vec<String> = owned.iter().map(|s| self.keys.uplink(&s.room.id)).collect();
            let popped: redis::RedisResult<Option<(String, Vec<Vec<u8>>)>> = redis::cmd("BLMPOP")
                .arg(BLOCK_S)
                .arg(keys.len())
                .arg(&keys)
                .arg("LEFT")
                .arg("COUNT")
                .arg(FORWARD_BATCH)
                .query_async(c)
                .await;
            match popped {
                Ok(Some((key, items))) => self.take_items(&owned, &key, items),
                Ok(None) => {}
                Err(e) => {
                    self.redis_failed("uplink", &e);
                    conn = None;
                }
            }
        }
    }

    fn take_items(&self, owned: &[Arc<SharedRoom>], key: &str, items: Vec<Vec<u8>>) {
        let Some(shared) = self
            .keys
            .room_of_uplink(key)
            .and_then(|room| owned.iter().find(|s| &*s.room.id == room))
        else {
            return;
        };
        let stopping = self.chat().is_none_or(|c| c.is_stopping());
        if shared.room.is_closed() || stopping {
            // The room is ending here: the items go back to the front for the next owner.
            let key = key.to_string();
            let mut conn = self.link.conn();
            self.tasks.spawn(async move {
                let back: redis::RedisResult<()> = redis::cmd("LPUSH")
                    .arg(&key)
                    .arg(items.into_iter().rev().collect::<Vec<_>>())
                    .query_async(&mut conn)
                    .await;
                if let Err(e) = back {
                    tracing::warn!(key, error = %e, "cluster: popped items could not go back to the list; they are lost");
                }
            });
            return;
        }
        for raw in items {
            match UplinkItem::from_json(&raw) {
                Ok(item) => {
                    let (priority, pending) = item.into_pending();
                    shared.room.enqueue_relayed(priority, pending);
                }
                Err(e) => {
                    metrics::counter!("barrage_cluster_bad_entries_total").increment(1);
                    tracing::warn!(room = %shared.room.id, error = %e, "cluster: skipped an uplink item that does not read");
                }
            }
        }
    }
}

impl Cluster {
    /// Puts content this node had queued for a room back at the front of the room's list
    /// (the node stops scheduling it; the next owner delivers it, oldest first).
    pub(crate) async fn push_back(&self, room: &str, items: Vec<UplinkItem>) {
        if items.is_empty() {
            return;
        }
        let n = items.len();
        let mut conn = self.link.conn();
        let back: redis::RedisResult<()> = redis::cmd("LPUSH")
            .arg(self.keys.uplink(room))
            .arg(
                items
                    .iter()
                    .rev()
                    .map(UplinkItem::to_json)
                    .collect::<Vec<_>>(),
            )
            .query_async(&mut conn)
            .await;
        match back {
            Ok(()) => tracing::info!(
                room,
                items = n,
                "cluster: queued content handed to the next owner"
            ),
            Err(e) => {
                tracing::warn!(room, items = n, error = %e, "cluster: queued content could not be handed on; it is lost")
            }
        }
    }
}

/// Queues forwarded content on this node (its rooms are local while Redis is down).
fn keep_here(batch: Vec<Forward>) {
    for f in batch {
        let (priority, pending) = f.item.into_pending();
        f.shared.room.enqueue_relayed(priority, pending);
    }
}
