//! Publishers that dropped and may come back. When a session's publisher leaves, its writer
//! waits up to `rtmp.reconnect_grace_s` for another publish of the room
//! ([`Reconnects::wait`]); the gate hands such a publish to the waiting writer
//! ([`Reconnects::resume`]) instead of starting a new session.
//!
//! The room's entry is the one place where the two meet: whoever removes it first decides,
//! the gate (the session continues) or the writer at the end of the grace (the broadcast ends),
//! so a publish that races the deadline is never lost between them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::MEDIA_CHANNEL_CAPACITY;
use crate::ingest::{MediaBatch, Publication};
use crate::sync::lock;

/// A publish that continues a waiting session.
#[derive(Debug)]
pub struct Resumed {
    /// The new publisher's media.
    pub media: mpsc::Receiver<MediaBatch>,
    pub peer: SocketAddr,
}

/// How a wait for the publisher ended.
#[derive(Debug)]
pub enum WaitOutcome {
    /// A publish of the room came within the grace: the session goes on with it.
    Resumed(Resumed),
    /// Nobody came within the grace: the broadcast ends.
    Expired,
    /// The node is shutting down: the broadcast ends now.
    Stopped,
}

/// One waiting session.
#[derive(Debug)]
struct Waiting {
    session: String,
    resume: oneshot::Sender<Resumed>,
}

/// The sessions of this node waiting for their publisher, by room.
#[derive(Debug, Default)]
pub struct Reconnects {
    waiting: Mutex<HashMap<String, Waiting>>,
}

impl Reconnects {
    /// Nothing waiting.
    pub fn new() -> Reconnects {
        Reconnects::default()
    }

    /// Waits up to `grace` for a publish of `room` to continue `session` (or until `stop`).
    pub async fn wait(
        &self,
        room: &str,
        session: &str,
        grace: Duration,
        stop: &CancellationToken,
    ) -> WaitOutcome {
        let (resume, mut resumed) = oneshot::channel();
        let waiting = Waiting {
            session: session.to_string(),
            resume,
        };
        lock(&self.waiting).insert(room.to_string(), waiting);
        let outcome = tokio::select! {
            biased;
            r = &mut resumed => return r.map_or(WaitOutcome::Expired, WaitOutcome::Resumed),
            _ = stop.cancelled() => WaitOutcome::Stopped,
            _ = tokio::time::sleep(grace) => WaitOutcome::Expired,
        };
        if self.withdraw(room, session) {
            return outcome;
        }
        // A publish took the entry first: its media is already on the way (sent right after
        // the take, with no wait in between).
        match resumed.await {
            Ok(r) => WaitOutcome::Resumed(r),
            Err(_) => outcome,
        }
    }

    /// Removes `room`'s entry if it is still `session`'s; false when a publish took it.
    fn withdraw(&self, room: &str, session: &str) -> bool {
        let mut waiting = lock(&self.waiting);
        match waiting.get(room) {
            Some(w) if w.session == session => {
                waiting.remove(room);
                true
            }
            _ => false,
        }
    }

    /// Hands a publish of `room` to its waiting session, if there is one: the publication
    /// then continues that session.
    pub fn resume(&self, room: &str, peer: SocketAddr) -> Option<Publication> {
        let waiting = lock(&self.waiting).remove(room)?;
        let (media, receiver) = mpsc::channel(MEDIA_CHANNEL_CAPACITY);
        let resumed = Resumed {
            media: receiver,
            peer,
        };
        // Fails only when the writer is gone (its task ended without withdrawing).
        waiting.resume.send(resumed).ok()?;
        Some(Publication {
            room: room.to_string(),
            session: waiting.session,
            media,
        })
    }

    /// Whether a session of `room` is waiting for its publisher.
    pub fn is_waiting(&self, room: &str) -> bool {
        lock(&self.waiting).contains_key(room)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn peer() -> SocketAddr {
        "127.0.0.1:5000".parse().unwrap()
    }

    #[tokio::test]
    async fn a_publish_within_the_grace_continues_the_session() {
        let reconnects = Arc::new(Reconnects::new());
        let stop = CancellationToken::new();
        assert!(reconnects.resume("r", peer()).is_none());
        let waiter = {
            let (reconnects, stop) = (reconnects.clone(), stop.clone());
            tokio::spawn(async move {
                reconnects
                    .wait("r", "s1", Duration::from_secs(3600), &stop)
                    .await
            })
        };
        let publication = loop {
            if let Some(p) = reconnects.resume("r", peer()) {
                break p;
            }
            tokio::task::yield_now().await;
        };
        assert_eq!(publication.session, "s1");
        let WaitOutcome::Resumed(mut resumed) = waiter.await.unwrap() else {
            panic!("the writer must get the publish");
        };
        publication.media.send(Vec::new()).await.unwrap();
        assert!(resumed.media.recv().await.is_some());
        assert!(!reconnects.is_waiting("r"));
    }

    #[tokio::test]
    async fn after_the_grace_or_at_shutdown_nobody_is_waiting() {
        let reconnects = Reconnects::new();
        let stop = CancellationToken::new();
        let expired = reconnects
            .wait("r", "s1", Duration::from_millis(1), &stop)
            .await;
        assert!(matches!(expired, WaitOutcome::Expired));
        assert!(reconnects.resume("r", peer()).is_none());
        stop.cancel();
        let stopped = reconnects
            .wait("r", "s2", Duration::from_secs(3600), &stop)
            .await;
        assert!(matches!(stopped, WaitOutcome::Stopped));
        assert!(!reconnects.is_waiting("r"));
    }
}
