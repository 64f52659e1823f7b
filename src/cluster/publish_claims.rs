//! One publisher per room in the whole cluster: a node that takes a room's RTMP push holds
//! `{prefix}:room:{room}:live` (token `node:random`, TTL one lease) for as long as the session
//! is live, renewing it like a room lease; a push of the same room to another node finds the
//! key held and is refused "already live". A clean end gives the key back at once; a node that
//! dies stops renewing and the key expires after one lease, after which the streamer can push
//! to any node again. With Redis unreachable a node takes pushes on its own word (logged and
//! counted as `barrage_publish_unchecked_total`), as a node alone would.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::{scripts, Cluster};
use crate::broadcast::claims::{ClaimGuard, ClaimOutcome, PublishClaims};

/// The longest a publish waits on Redis before it is taken unchecked.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(2);

/// The node named in a claim token (`node:random`).
fn holder_node(token: &str) -> &str {
    token.rsplit_once(':').map_or(token, |(node, _)| node)
}

impl PublishClaims for Cluster {
    fn claim<'a>(&'a self, room: &'a str) -> BoxFuture<'a, ClaimOutcome> {
        Box::pin(async move {
            if !self.is_up() {
                return ClaimOutcome::Unchecked;
            }
            let Some(me) = self.me.upgrade() else {
                return ClaimOutcome::Unchecked;
            };
            let key = self.keys.live(room);
            let token = self.new_token();
            let lease_ms = self.settings.lease.as_millis() as u64;
            let mut conn = self.link.conn();
            let attempt = async {
                let taken =
                    scripts::lease(&scripts::ACQUIRE, &key, &token, lease_ms, &mut conn).await?;
                if taken == 1 {
                    return Ok(None);
                }
                let holder: Option<String> =
                    redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
                Ok::<_, redis::RedisError>(Some(holder.unwrap_or_default()))
            };
            match tokio::time::timeout(CLAIM_TIMEOUT, attempt).await {
                Ok(Ok(None)) => {
                    let release = CancellationToken::new();
                    let watch = release.clone();
                    self.tasks
                        .spawn(async move { me.hold_live_claim(key, token, watch).await });
                    ClaimOutcome::Claimed(ClaimGuard::new(release))
                }
                Ok(Ok(Some(holder))) => ClaimOutcome::Elsewhere {
                    node: holder_node(&holder).to_string(),
                },
                Ok(Err(e)) => {
                    self.redis_failed("live_claim", &e);
                    ClaimOutcome::Unchecked
                }
                Err(_) => {
                    self.redis_failed_msg("live_claim", "no answer in 2 s");
                    ClaimOutcome::Unchecked
                }
            }
        })
    }
}

impl Cluster {
    /// Renews a live claim until `release` fires (the session ended) or the node stops, then
    /// gives it back if it is still ours.
    async fn hold_live_claim(
        self: Arc<Self>,
        key: String,
        token: String,
        release: CancellationToken,
    ) {
        let lease_ms = self.settings.lease.as_millis() as u64;
        let mut every = tokio::time::interval(self.settings.renew_every());
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            tokio::select! {
                _ = release.cancelled() => break,
                _ = self.cancel.cancelled() => break,
                _ = every.tick() => {}
            }
            if !self.is_up() {
                continue;
            }
            let mut conn = self.link.conn();
            let renewed = scripts::lease(&scripts::RENEW, &key, &token, lease_ms, &mut conn).await;
            match renewed {
                Ok(1) => {}
                Ok(_) => {
                    // Expired while Redis was away, and maybe taken: put ours back only if free.
                    let retaken =
                        scripts::lease(&scripts::ACQUIRE, &key, &token, lease_ms, &mut conn).await;
                    if !matches!(retaken, Ok(1)) {
                        tracing::warn!(
                            key,
                            "cluster: this node's live claim was lost to another node"
                        );
                    }
                }
                Err(e) => self.redis_failed("live_claim", &e),
            }
        }
        let mut conn = self.link.conn();
        let mut release_script = scripts::RELEASE.key(&key);
        release_script.arg(&token);
        let released = release_script.invoke_async::<i64>(&mut conn);
        if let Ok(Err(e)) = tokio::time::timeout(CLAIM_TIMEOUT, released).await {
            tracing::debug!(key, error = %e, "cluster: live claim not released; it expires by itself");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::holder_node;

    #[test]
    fn the_holder_is_the_token_before_its_last_colon() {
        assert_eq!(holder_node("host-8080-ab12:XyZ"), "host-8080-ab12");
        assert_eq!(holder_node("a:b:c"), "a:b");
        assert_eq!(holder_node("plain"), "plain");
    }
}
