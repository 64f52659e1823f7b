//! The writer's hook into its [`Spool`]: every media object is queued there first, and
//! [`SessionWriter::drain`] stores the queue's front while the store takes it, lists each
//! stored segment (a dropped one as a gap) and then writes the playlists. While the store
//! fails, attempts are spaced by the [`RetryClock`] and the writer goes on cutting segments
//! into the spool, so the publisher is not held up and nothing is lost until the spool is full.

use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::{SessionSettings, SessionWriter};
use crate::broadcast::spool::{Front, Spool, SpoolSettings};
use crate::hls::playlist::{ListedSegment, SessionState};
use crate::storage::StorageError;

/// Objects stored per drain before the writer goes back to its media (catching up after an
/// outage must not stall ingest for the whole backlog at once).
const DRAIN_BATCH: usize = 8;
/// On shutdown, how long the final writes are retried against a store that does not answer
/// before the writer gives up (loudly; crash recovery closes the playlists at the next start).
pub(super) const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// What the writer does once a spooled entry is stored (or dropped).
#[derive(Debug)]
pub(super) enum Listing {
    /// An init segment: nothing to list.
    Init,
    /// A media segment: listed when stored, a gap of its duration when dropped.
    Segment {
        listed: ListedSegment,
        sequence: u64,
        /// When its closing keyframe arrived (for the keyframe-to-playlist delay).
        received: Instant,
    },
    /// Time nobody published (a reconnect), as gap entries.
    Gap { seconds: f64, start: DateTime<Utc> },
    /// A new part begins with this init file.
    BeginPart(String),
}

/// The front entry of the spool, taken out of its borrow.
enum Step {
    Mark,
    Dropped,
    Put(String, Bytes),
}

/// Failed attempts at one object, each while the store took a playlist, after which the
/// object counts as refused (dropped and listed as a gap) rather than the store as away.
const REFUSALS_TO_DROP: u32 = 3;

/// The spool folder of a session, under the spool root.
pub(super) fn spool_name(settings: &SessionSettings) -> String {
    format!("{}/{}", settings.room, settings.session)
}

impl SessionWriter {
    /// Spools this session's media with `settings` (budgets and folder; see
    /// [`SpoolSettings::from_config`]) instead of the default 64 MiB in memory.
    pub fn with_spool(mut self, settings: SpoolSettings) -> Self {
        self.spool = Spool::new(settings, &spool_name(&self.settings));
        self
    }

    /// Whether there is something to store or a playlist to write.
    pub(super) fn drain_due(&self) -> bool {
        !self.spool.is_empty() || self.playlists_due
    }

    /// Queues a segment; a full spool drops the oldest segments, loudly.
    pub(super) async fn spool_segment(&mut self, key: String, body: Bytes, listing: Listing) {
        let dropped = self.spool.push(key, body, true, listing).await;
        if dropped > 0 {
            let (memory, disk) = self.spool.held_bytes();
            metrics::counter!("barrage_spool_dropped_segments_total").increment(dropped);
            tracing::error!(
                dropped,
                dropped_in_session = self.spool.dropped(),
                spooled = self.spool.len(),
                memory_bytes = memory,
                disk_bytes = disk,
                "spool full while the store does not take media: oldest segments dropped \
                 (listed as EXT-X-GAP); raise storage.spool_memory_mb / spool_disk_mb"
            );
        }
    }

    /// Queues a mark (no object) behind what is spooled.
    pub(super) fn spool_mark(&mut self, listing: Listing) {
        self.spool.push_mark(listing);
    }

    /// Stores the spool's front entries while the store takes them (at most
    /// [`DRAIN_BATCH`]), lists them, then writes the playlists if they changed.
    pub(super) async fn drain(&mut self) {
        if !self.store_retry.due(Instant::now()) {
            return;
        }
        for _ in 0..DRAIN_BATCH {
            let step = match self.spool.front().await {
                None => break,
                Some(Front::Mark(_)) => Step::Mark,
                Some(Front::Dropped(_)) => Step::Dropped,
                Some(Front::Object { key, body, .. }) => Step::Put(key.to_string(), body),
            };
            let stored = match step {
                Step::Mark => true,
                Step::Dropped => false,
                Step::Put(key, body) => match self.storage.put(&key, body).await {
                    Ok(()) => true,
                    // A key the store refuses will never be accepted: drop it, not the queue.
                    Err(e @ StorageError::BadKey { .. }) => {
                        tracing::error!(error = %e, "object refused by the store; dropped");
                        false
                    }
                    Err(e) if self.refused_alone(&key, &e).await => false,
                    Err(e) => {
                        self.store_failed(&e);
                        self.spool_gauge();
                        return;
                    }
                },
            };
            self.store_answered();
            if let Some(listing) = self.spool.pop().await {
                self.apply(listing, stored);
            }
        }
        self.spool_gauge();
        if self.playlists_due {
            self.publish_edge();
        }
        if self.playlists_due {
            let state = if self.ending && self.spool.is_empty() {
                SessionState::Ended
            } else {
                SessionState::Live
            };
            if self.write_playlists(state).await {
                self.playlists_due = false;
                self.final_written = state == SessionState::Ended;
            } else {
                self.store_retry.failed(Instant::now());
            }
        }
    }

    /// Objects waiting in the room's spool, as a gauge (`barrage_spool_objects{room}`).
    fn spool_gauge(&self) {
        metrics::gauge!("barrage_spool_objects", "room" => self.settings.room.clone())
            .set(self.spool.len() as f64);
    }

    /// Drains until everything is stored and the playlists written. Once `stop` fires (or if
    /// it had), gives up after [`SHUTDOWN_WAIT`].
    pub(super) async fn drain_all(&mut self, stop: &CancellationToken) {
        let mut give_up: Option<Instant> = None;
        while self.drain_due() {
            let now = Instant::now();
            if stop.is_cancelled() && now >= *give_up.get_or_insert(now + SHUTDOWN_WAIT) {
                let (memory, disk) = self.spool.held_bytes();
                tracing::error!(
                    spooled = self.spool.len(),
                    memory_bytes = memory,
                    disk_bytes = disk,
                    "shutting down with media the store never took: those segments are lost"
                );
                return;
            }
            tokio::time::sleep(self.store_retry.wait(now)).await;
            self.drain().await;
        }
    }

    /// Whether the store refuses this one object while it takes others (say a folder in the
    /// way on a local store, or a policy on a bucket; never a full disk or a failing network,
    /// see [`is_refusal`]): the playlists, which name only stored
    /// objects, are written again as a probe. After [`REFUSALS_TO_DROP`] such failures in a
    /// row the object is given up (true), so one bad object does not hold the session back.
    async fn refused_alone(&mut self, key: &str, error: &StorageError) -> bool {
        if self.playlists.is_empty() || !is_refusal(error) {
            return false;
        }
        let state = if self.final_written {
            SessionState::Ended
        } else {
            SessionState::Live
        };
        if !self.write_playlists(state).await {
            self.refusals = 0;
            return false;
        }
        self.refusals += 1;
        if self.refusals < REFUSALS_TO_DROP {
            return false;
        }
        self.refusals = 0;
        tracing::error!(%key, %error, "the store takes other objects but refuses this one; dropped");
        true
    }

    /// A store write failed: log the first failure of an outage, space the next attempt.
    fn store_failed(&mut self, error: &StorageError) {
        if !self.store_retry.failing() {
            metrics::counter!("barrage_spool_outages_total").increment(1);
            tracing::error!(
                %error,
                spooled = self.spool.len(),
                "store does not take media: spooling segments until it answers"
            );
        }
        metrics::counter!("barrage_storage_retries_total").increment(1);
        self.store_retry.failed(Instant::now());
    }

    /// A store write succeeded: if it had been failing, say it is back.
    fn store_answered(&mut self) {
        self.refusals = 0;
        if self.store_retry.failing() {
            tracing::info!(
                spooled = self.spool.len(),
                "store answers again: writing spooled segments in order"
            );
        }
        self.store_retry.succeeded();
    }

    /// Does what an entry leaving the spool asks (`stored`: its object is in the store).
    fn apply(&mut self, listing: Listing, stored: bool) {
        match listing {
            Listing::Init => {}
            Listing::Segment {
                listed,
                sequence,
                received,
            } => {
                self.playlists_due = true;
                if !stored {
                    self.counts.lost_segments += 1;
                    self.playlists
                        .push_gap(listed.duration, listed.program_date_time);
                    if let Some(ll) = &mut self.low_latency {
                        ll.parts.failed(sequence);
                    }
                    self.parts_listed(sequence);
                    return;
                }
                self.playlists.push(listed);
                self.parts_listed(sequence);
                self.counts.segments += 1;
                metrics::counter!("barrage_hls_segments_total").increment(1);
                let delay = received.elapsed().as_secs_f64();
                metrics::histogram!("barrage_hls_playlist_delay_seconds").record(delay);
                self.counts.max_playlist_delay_ms =
                    self.counts.max_playlist_delay_ms.max(delay * 1000.0);
                tracing::debug!(sequence, delay_ms = delay * 1000.0, "segment published");
                let segments = self.counts.segments;
                self.update_live(|info| {
                    info.segments = segments;
                    info.playlist_delay_ms = Some(delay * 1000.0);
                });
            }
            Listing::Gap { seconds, start } => {
                self.playlists.push_gap(seconds, start);
            }
            Listing::BeginPart(init_file) => self.playlists.begin_part(&init_file),
        }
    }
}

/// Whether a failed put is the store saying no to this object (permission, a name in the
/// way, a file too large) rather than the store being unable to take anything right now (no
/// space left, network, 5xx): only the former may end in dropping the object; for the latter
/// the spool waits, however long, within its budget.
fn is_refusal(error: &StorageError) -> bool {
    use std::io::ErrorKind;
    let StorageError::Store { source, .. } = error else {
        return false;
    };
    if matches!(
        source,
        object_store::Error::PermissionDenied { .. }
            | object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. }
            | object_store::Error::NotImplemented { .. }
    ) {
        return true;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                ErrorKind::IsADirectory
                    | ErrorKind::NotADirectory
                    | ErrorKind::PermissionDenied
                    | ErrorKind::InvalidFilename
                    | ErrorKind::FileTooLarge
            );
        }
        cause = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_error(io: std::io::ErrorKind) -> StorageError {
        StorageError::Store {
            key: "hls/r/s/000001.m4s".into(),
            source: object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(std::io::Error::from(io)),
            },
        }
    }

    #[test]
    fn a_full_disk_is_waited_out_a_name_in_the_way_is_a_refusal() {
        assert!(!is_refusal(&store_error(std::io::ErrorKind::StorageFull)));
        assert!(!is_refusal(&store_error(
            std::io::ErrorKind::ConnectionRefused
        )));
        assert!(is_refusal(&store_error(std::io::ErrorKind::IsADirectory)));
        assert!(is_refusal(&StorageError::Store {
            key: "k".into(),
            source: object_store::Error::PermissionDenied {
                path: "k".into(),
                source: "policy".into(),
            },
        }));
    }
}
