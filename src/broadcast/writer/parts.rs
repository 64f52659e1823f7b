//! The writer's side of reconnects: when a publish ends, list its last segment with the
//! playlists still live and wait for the room's publisher to come back within the grace; a
//! publish that does becomes the session's next part (see [`SessionParts`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::SessionWriter;
#[cfg(doc)]
use crate::broadcast::continuation::SessionParts;
use crate::broadcast::keys::SessionKeys;
use crate::broadcast::reconnect::{Reconnects, WaitOutcome};
use crate::ingest::MediaBatch;

impl SessionWriter {
    /// Lets a publisher that drops come back within `grace` and continue the session (a
    /// publish of the room is handed over through `reconnects`). Without it, or with a zero
    /// grace, the broadcast ends with its first publisher.
    pub fn with_reconnects(mut self, reconnects: Arc<Reconnects>, grace: Duration) -> Self {
        self.reconnect = (!grace.is_zero()).then_some((reconnects, grace));
        self
    }

    /// After a publisher left: lists its last segment with the playlists still live and waits
    /// for it to come back. Some(media) continues the session as a new part; None ends it
    /// (no grace, the grace ran out, or shutdown).
    pub(super) async fn await_reconnect(
        &mut self,
        stop: &CancellationToken,
    ) -> Option<mpsc::Receiver<MediaBatch>> {
        let (reconnects, grace) = self.reconnect.clone()?;
        if stop.is_cancelled() || self.refusal.is_some() {
            return None;
        }
        self.end_part().await;
        self.withdraw_edge();
        let left = Instant::now();
        self.parts.publisher_left(left);
        self.left_ms = Some(crate::clock::now_ms());
        self.update_live(|info| {
            info.reconnecting = true;
            info.bitrate_kbps = 0.0;
        });
        tracing::info!(
            grace_s = grace.as_secs_f64(),
            part = self.parts.part(),
            "publisher left: waiting for it to reconnect"
        );
        self.live.notice(
            &self.settings.room,
            "publisher_left",
            &format!(
                "the publisher disconnected; the broadcast waits {} s for it to come back",
                grace.as_secs()
            ),
        );
        let outcome = reconnects
            .wait(&self.settings.room, &self.settings.session, grace, stop)
            .await;
        match outcome {
            WaitOutcome::Resumed(resumed) => {
                let gap_ms = self.parts.gap_ms(Instant::now());
                self.begin_part();
                metrics::counter!("barrage_publish_resumed_total").increment(1);
                tracing::info!(
                    peer = %resumed.peer,
                    gap_ms,
                    part = self.parts.part(),
                    "publisher reconnected: the broadcast goes on"
                );
                self.live.notice(
                    &self.settings.room,
                    "publisher_back",
                    &format!(
                        "the publisher came back after {:.1} s; the broadcast goes on",
                        gap_ms as f64 / 1000.0
                    ),
                );
                Some(resumed.media)
            }
            WaitOutcome::Expired => {
                tracing::info!(
                    grace_s = grace.as_secs_f64(),
                    "no publisher came back within the grace: ending the broadcast"
                );
                self.live.notice(
                    &self.settings.room,
                    "broadcast_ended",
                    "no publisher came back within the grace: the broadcast ended",
                );
                None
            }
            WaitOutcome::Stopped => None,
        }
    }

    /// Flushes the part's last segment into the (still live) playlists.
    async fn end_part(&mut self) {
        let now = Instant::now();
        match self.muxer.finish() {
            Ok(events) => {
                for event in events {
                    self.event(event, now).await;
                }
            }
            Err(e) => self.invalid(&e),
        }
    }

    /// Starts the next part for a publisher that came back: a new muxer whose timeline and
    /// segment numbers continue the session's, and a new init segment after a discontinuity.
    fn begin_part(&mut self) {
        let start = match self.first_frame_wall {
            Some(first_frame) => {
                // The time away goes on the playlist timeline as gap entries, so players
                // place the next part where stream time says it is.
                let media_end_ms = self.parts.media_end_ms();
                let start = self.parts.resume(Instant::now());
                let away_ms = start.start_ms.saturating_sub(media_end_ms);
                let at = first_frame
                    + chrono::Duration::milliseconds(i64::try_from(media_end_ms).unwrap_or(0));
                self.spool_mark(super::Listing::Gap {
                    seconds: away_ms as f64 / 1000.0,
                    start: at,
                });
                start
            }
            None => self.parts.resume_before_any_media(),
        };
        self.left_ms = None;
        self.muxer = self.new_muxer(start);
        if let Some(ll) = &mut self.low_latency {
            ll.parts.new_publish();
        }
        self.spool_mark(super::Listing::BeginPart(SessionKeys::init_file(
            self.parts.part(),
        )));
        self.update_live(|info| {
            info.reconnecting = false;
            info.reconnects += 1;
        });
    }

    /// Ingest refused the publish mid-stream: remember why (the broadcast then ends without
    /// waiting for a reconnect) and tell the room's notices, which the host console shows.
    pub(super) fn refused(&mut self, reason: String) {
        self.live
            .notice(&self.settings.room, "publish_refused", &reason);
        self.refusal = Some(reason);
    }
}
