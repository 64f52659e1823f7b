//! Who schedules each room: the lease loop (take free leases, renew held ones, notice lost
//! ones), the takeover (catch up, continue the seq and the CDN files), and the health check
//! that brings the node back after a Redis outage.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;

use super::rooms::{NodeRole, SharedRoom};
use super::{scripts, Cluster};

use crate::sync::lock;

/// How long a new owner waits for its reader to reach the stored seq before it continues
/// anyway (history then has a gap, the seq does not).
const CATCH_UP: Duration = Duration::from_secs(3);

impl Cluster {
    /// Every `lease_ms/6` (or at once when a room starts here): health, leases, takeovers.
    pub(crate) async fn election_loop(self: Arc<Self>) {
        let mut every = tokio::time::interval(self.settings.renew_every());
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = every.tick() => {}
                _ = self.wake_election.notified() => {}
            }
            if !self.is_up() {
                self.try_rejoin().await;
                self.expire_local_files();
                continue;
            }
            self.renew_leases().await;
            if self.is_up() {
                self.acquire_free().await;
            }
        }
    }

    pub(crate) fn new_token(&self) -> String {
        format!("{}:{}", self.node_id, crate::secrets::random_secret(12))
    }

    /// Renews every held lease; a lease held by another node now demotes the room here.
    async fn renew_leases(self: &Arc<Self>) {
        let held: Vec<(String, String)> = lock(&self.leases)
            .iter()
            .map(|(r, t)| (r.clone(), t.clone()))
            .collect();
        let lease_ms = self.settings.lease.as_millis() as u64;
        let sent = Instant::now();
        let results =
            join_all(
                held.iter().map(|(room, token)| {
                    let mut conn = self.link.conn();
                    let key = self.keys.owner(room);
                    async move {
                        scripts::lease(&scripts::RENEW, &key, token, lease_ms, &mut conn).await
                    }
                }),
            )
            .await;
        let until = sent + self.settings.lease - self.settings.margin();
        for ((room, token), result) in held.into_iter().zip(results) {
            match result {
                Ok(1) => {
                    if let Some(shared) = self.shared(&room) {
                        shared.extend(&token, until);
                    }
                }
                Ok(_) => match self.shared(&room) {
                    Some(shared) if shared.holds(&token) => self.demote(&shared, "lease_lost"),
                    _ => {
                        let mut leases = lock(&self.leases);
                        if leases.get(&room) == Some(&token) {
                            leases.remove(&room);
                        }
                    }
                },
                Err(e) => {
                    self.redis_failed("renew", &e);
                    return;
                }
            }
        }
        // An owner whose renewals did not land in time stops before its lease can expire.
        for shared in self.rooms_snapshot() {
            if let NodeRole::Owner { until, .. } = shared.role() {
                if Instant::now() >= until {
                    self.demote(&shared, "lease_ran_out");
                }
            }
        }
    }

    /// Tries to take the lease of every room this node follows.
    async fn acquire_free(self: &Arc<Self>) {
        let followers: Vec<Arc<SharedRoom>> = self
            .rooms_snapshot()
            .into_iter()
            .filter(|s| s.role() == NodeRole::Follower)
            .collect();
        let lease_ms = self.settings.lease.as_millis() as u64;
        let sent = Instant::now();
        let attempts = followers.into_iter().map(|shared| {
            let token = self.new_token();
            let mut conn = self.link.conn();
            let key = self.keys.owner(&shared.room.id);
            async move {
                let taken =
                    scripts::lease(&scripts::ACQUIRE, &key, &token, lease_ms, &mut conn).await;
                (shared, token, taken)
            }
        });
        for (shared, token, taken) in join_all(attempts).await {
            match taken {
                Ok(1) => {
                    let until = sent + self.settings.lease - self.settings.margin();
                    shared.set_role(NodeRole::Acquiring {
                        token: token.clone(),
                        until,
                    });
                    lock(&self.leases).insert(shared.room.id.to_string(), token.clone());
                    let this = self.clone();
                    self.tasks
                        .spawn(async move { this.take_over(shared, token).await });
                }
                Ok(_) => {}
                Err(e) => {
                    self.redis_failed("acquire", &e);
                    return;
                }
            }
        }
    }

    /// This node holds the lease: catch up with the stream, continue the CDN files and the
    /// seq where the last owner left them, then schedule.
    async fn take_over(self: Arc<Self>, shared: Arc<SharedRoom>, token: String) {
        let room = shared.room.clone();
        let mut conn = self.link.conn();
        let stored: u64 = match redis::cmd("GET")
            .arg(self.keys.seq(&room.id))
            .query_async::<Option<u64>>(&mut conn)
            .await
        {
            Ok(seq) => seq.unwrap_or(0),
            Err(e) => {
                self.redis_failed("takeover", &e);
                return;
            }
        };
        let deadline = Instant::now() + CATCH_UP;
        while room.last_seq() < stored && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if room.last_seq() < stored {
            tracing::warn!(room = %room.id, stored, have = room.last_seq(), "cluster: took the room over before reading all of its stream; history has a gap");
        }
        match tokio::time::timeout(Duration::from_secs(5), self.resume_files(&room)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(room = %room.id, error = %e, "cluster: cannot read the room's CDN index; its files start a new session")
            }
            Err(_) => {
                tracing::warn!(room = %room.id, "cluster: the CDN index did not load in 5 s; files start a new session")
            }
        }
        room.continue_after(stored.max(room.last_seq()));
        if shared.promote(&token) {
            metrics::counter!("barrage_cluster_takeovers_total").increment(1);
            tracing::info!(room = %room.id, after_seq = stored, node = %self.node_id, "cluster: this node now schedules the room");
        }
    }

    /// Follows this node's broadcasts: the node that takes a room's RTMP push in claims the
    /// room, so the room's CDN files are written under the broadcast's session (replay and the
    /// XML export find them) by the node that knows it.
    pub(crate) async fn live_loop(self: Arc<Self>) {
        let mut changes = self.live.subscribe();
        loop {
            let change = tokio::select! {
                _ = self.cancel.cancelled() => return,
                change = changes.recv() => change,
            };
            match change {
                Ok(crate::rooms::live::LiveChange::Started(info)) => self.claim(&info.room).await,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    async fn claim(self: &Arc<Self>, room: &str) {
        if !self.is_up() {
            return;
        }
        let shared = match self.shared(room) {
            Some(s) => s,
            None => {
                // Nobody watches here yet: start the room so this node can schedule it.
                let started = self.chat().map(|c| c.room(room));
                match (started, self.shared(room)) {
                    (Some(Ok(_)), Some(s)) => s,
                    _ => return,
                }
            }
        };
        if matches!(
            shared.role(),
            NodeRole::Owner { .. } | NodeRole::Acquiring { .. }
        ) {
            return;
        }
        let token = self.new_token();
        let sent = Instant::now();
        let mut conn = self.link.conn();
        let lease_ms = self.settings.lease.as_millis() as u64;
        let claimed = scripts::lease(
            &scripts::CLAIM,
            &self.keys.owner(room),
            &token,
            lease_ms,
            &mut conn,
        )
        .await;
        match claimed {
            Ok(_) => {
                tracing::info!(
                    room,
                    "cluster: this node takes the room's broadcast in; claiming the room"
                );
                shared.set_role(NodeRole::Acquiring {
                    token: token.clone(),
                    until: sent + self.settings.lease - self.settings.margin(),
                });
                lock(&self.leases).insert(room.to_string(), token.clone());
                let this = self.clone();
                self.tasks
                    .spawn(async move { this.take_over(shared, token).await });
            }
            Err(e) => self.redis_failed("claim", &e),
        }
    }

    /// While Redis is down, an owner's files stop when its lease would have run out.
    fn expire_local_files(&self) {
        for shared in self.rooms_snapshot() {
            if let NodeRole::Local {
                files_until: Some(until),
            } = shared.role()
            {
                if Instant::now() >= until {
                    shared.set_role(NodeRole::Local { files_until: None });
                    self.cdn.hand_over(&shared.room.id);
                }
            }
        }
    }

    /// Redis answers again: raise every room's stored seq to what this node reached alone,
    /// keep the leases that are still ours, follow the rest.
    async fn try_rejoin(self: &Arc<Self>) {
        if self.ping().await.is_err() {
            return;
        }
        let mut conn = self.link.conn();
        let rooms = self.rooms_snapshot();
        let mut stored = HashMap::new();
        for shared in &rooms {
            let reached = shared.room.scheduled_seq().max(shared.room.last_seq());
            let seq = scripts::RAISE_SEQ
                .key(self.keys.seq(&shared.room.id))
                .arg(reached)
                .invoke_async::<u64>(&mut conn)
                .await;
            match seq {
                Ok(seq) => {
                    stored.insert(shared.room.id.to_string(), seq);
                }
                Err(_) => return,
            }
        }
        let held: Vec<(String, String)> = lock(&self.leases)
            .iter()
            .map(|(r, t)| (r.clone(), t.clone()))
            .collect();
        let lease_ms = self.settings.lease.as_millis() as u64;
        let sent = Instant::now();
        let mut kept = HashMap::new();
        for (room, token) in held {
            // A lease is kept only while this node's CDN writer still runs for the room;
            // otherwise it is given back and the room is taken over the usual way (which
            // continues the files from the index).
            let writing = self.shared(&room).is_some_and(
                |s| matches!(s.role(), NodeRole::Local { files_until: Some(u) } if Instant::now() < u),
            );
            if !writing {
                let _ = scripts::RELEASE
                    .key(self.keys.owner(&room))
                    .arg(&token)
                    .invoke_async::<i64>(&mut conn)
                    .await;
                continue;
            }
            let renewed = scripts::lease(
                &scripts::RENEW,
                &self.keys.owner(&room),
                &token,
                lease_ms,
                &mut conn,
            )
            .await;
            match renewed {
                Ok(1) => {
                    kept.insert(room, token);
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
        let until = sent + self.settings.lease - self.settings.margin();
        *lock(&self.leases) = kept.clone();
        for shared in &rooms {
            let id = shared.room.id.to_string();
            if let Some(seq) = stored.get(&id) {
                shared.room.continue_after(*seq);
            }
            match kept.get(&id) {
                Some(token) => shared.set_role(NodeRole::Owner {
                    token: token.clone(),
                    until,
                }),
                None => {
                    if matches!(
                        shared.role(),
                        NodeRole::Local {
                            files_until: Some(_)
                        }
                    ) {
                        self.cdn.hand_over(&id);
                    }
                    shared.set_role(NodeRole::Follower);
                }
            }
        }
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
        metrics::gauge!("barrage_cluster_redis_up").set(1.0);
        tracing::info!(
            rooms = rooms.len(),
            kept = kept.len(),
            "cluster: Redis is back; rejoined"
        );
    }

    /// Gives back every lease this node holds (stopping).
    pub(crate) async fn release_all(&self) {
        let held: Vec<(String, String)> = lock(&self.leases).drain().collect();
        let mut conn = self.link.conn();
        for (room, token) in held {
            let _ = scripts::RELEASE
                .key(self.keys.owner(&room))
                .arg(token)
                .invoke_async::<i64>(&mut conn)
                .await;
        }
        let _ = redis::pipe()
            .del(self.keys.node(&self.node_id))
            .ignore()
            .srem(self.keys.nodes(), &self.node_id)
            .ignore()
            .query_async::<()>(&mut conn)
            .await;
    }
}
