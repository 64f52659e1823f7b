//! A new owner continues the room's CDN files where the last owner's stopped: the index
//! names the session and the newest file, that file the last seq written, and this node's
//! history the events after it (written again by nobody else: the last owner is gone or has
//! handed over). Files then go on at `latest + 1`, contiguous in seq, in the same session.

use crate::cdn::publisher::ResumePoint;
use crate::cdn::{BatchFile, CdnEvent, IndexFile};
use crate::chat::history::Resume;
use crate::chat::room::Room;
use crate::clock::now_ms;
use crate::storage::StorageError;

use super::Cluster;

/// An index older than this belongs to a session that ended: the files start a new one.
const RECENT_MS: i64 = 60_000;

impl Cluster {
    /// Reads the index and the newest file, and points this node's CDN writer after them.
    pub(crate) async fn resume_files(&self, room: &Room) -> Result<(), StorageError> {
        let Some(body) = self.storage.get_bytes(&IndexFile::key(&room.id)).await? else {
            return Ok(());
        };
        let Ok(index) = serde_json::from_slice::<IndexFile>(&body) else {
            tracing::warn!(room = %room.id, "cluster: the CDN index does not parse; files start a new session");
            return Ok(());
        };
        if now_ms() - index.updated_ms > RECENT_MS || index.latest == 0 {
            return Ok(());
        }
        let key = BatchFile::key(&room.id, &index.session, index.latest);
        let Some(body) = self.storage.get_bytes(&key).await? else {
            tracing::warn!(room = %room.id, key, "cluster: the index names a file that is not there; files start a new session");
            return Ok(());
        };
        let Ok(last) = serde_json::from_slice::<BatchFile>(&body) else {
            tracing::warn!(room = %room.id, key, "cluster: the newest CDN file does not parse; files start a new session");
            return Ok(());
        };
        let backfill: Vec<CdnEvent> = match room.history_after(last.to_seq) {
            Resume::UpToDate => Vec::new(),
            Resume::Missed { gap, events } => {
                if let Some((from, to)) = gap {
                    tracing::warn!(room = %room.id, from, to, "cluster: events the last owner did not write are no longer in history; the files skip them");
                }
                events.iter().map(CdnEvent::from_event).collect()
            }
        };
        tracing::info!(room = %room.id, session = %index.session, next_n = index.latest + 1, next_seq = last.to_seq + 1, backfill = backfill.len(), "cluster: CDN files continue after the last owner's");
        self.cdn.resume(
            &room.id,
            ResumePoint {
                session: index.session,
                next_n: index.latest + 1,
                next_seq: last.to_seq + 1,
            },
            backfill,
        );
        Ok(())
    }
}
