//! One publisher per room across nodes. [`LiveRegistry`](crate::rooms::live::LiveRegistry) keeps a
//! node from taking a second push of a live room; with several nodes the same key pushed to
//! another node must be refused too. The broadcaster asks its [`PublishClaims`] (the cluster,
//! when there is one) before it takes a publish, and holds the returned [`ClaimGuard`] for as
//! long as the session is live.

use futures::future::BoxFuture;
use tokio_util::sync::{CancellationToken, DropGuard};

/// What a claim on a room's publish came to.
#[derive(Debug)]
pub enum ClaimOutcome {
    /// This node may take the push; the claim lasts until the guard is dropped.
    Claimed(ClaimGuard),
    /// Another node has the room live.
    Elsewhere { node: String },
    /// Nobody could say (the shared store is down): the node takes the push on its own word,
    /// as a node alone would, and says so in its log.
    Unchecked,
}

/// Holds a claim; dropping it gives the claim back (the holder stops renewing and releases).
#[derive(Debug)]
pub struct ClaimGuard {
    _release: DropGuard,
}

impl ClaimGuard {
    /// A guard that cancels `release` when dropped; whoever made the claim watches it.
    pub fn new(release: CancellationToken) -> ClaimGuard {
        ClaimGuard {
            _release: release.drop_guard(),
        }
    }
}

/// Who decides whether a room may go live on this node, beyond this node's own registry.
pub trait PublishClaims: Send + Sync + 'static {
    /// Claims `room`'s publish for this node. Bounded in time: an unreachable store answers
    /// [`ClaimOutcome::Unchecked`] rather than holding the publisher up.
    fn claim<'a>(&'a self, room: &'a str) -> BoxFuture<'a, ClaimOutcome>;
}
