//! A finished session's danmaku in one piece. While a session is on, its events go out as one
//! file per period; a replay of a 2 h show would then cost about 7,200 requests. When the
//! session ends, its files are joined into `danmaku/{room}/{session}/all.json` ([`SessionFile`],
//! immutable like the batch files), which the replay page and the XML export read instead.

use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::files::BatchFile;
use crate::broadcast::store::put_with_retry;
use crate::storage::{Storage, StorageError};

/// Batch files read at once while joining a session.
const PARALLEL_READS: usize = 16;

/// Why a session's files could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("no danmaku files for session {session} of room {room}")]
    NoSession { room: String, session: String },
    #[error("session {session} of room {room} has not ended: its export is made when it ends")]
    NotFinished { room: String, session: String },
    #[error("danmaku file {key} is damaged: {message}")]
    Damaged { key: String, message: String },
    #[error("danmaku file {key} is missing (the session has {files} files)")]
    Missing { key: String, files: u64 },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// `danmaku/{room}/{session}/all.json`: every event of a finished session, in seq order, with
/// the range its batch files `1..=files` covered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionFile<E = serde_json::Value> {
    pub room: String,
    pub session: String,
    /// Batch files joined.
    pub files: u64,
    pub from_seq: u64,
    pub to_seq: u64,
    /// Wall-clock range, ms since the epoch.
    pub start_ms: i64,
    pub end_ms: i64,
    pub events: Vec<E>,
}

impl SessionFile {
    /// The object key of a session's file.
    pub fn key(room: &str, session: &str) -> String {
        format!("danmaku/{room}/{session}/all.json")
    }
}

/// Every event of a session: from its session file when there is one (one read), else from its
/// batch files `1..=N`.
pub async fn session_events(
    storage: &Storage,
    room: &str,
    session: &str,
) -> Result<Vec<serde_json::Value>, ExportError> {
    let key = SessionFile::key(room, session);
    if let Some(body) = storage.get_bytes(&key).await? {
        let file: SessionFile =
            serde_json::from_slice(&body).map_err(|e| ExportError::Damaged {
                key,
                message: e.to_string(),
            })?;
        return Ok(file.events);
    }
    let files: Vec<BatchFile> = batch_files(storage, room, session).await?;
    Ok(files.into_iter().flat_map(|f| f.events).collect())
}

/// Joins a finished session's batch files into its session file and stores it; returns its
/// key. Events are copied as the files hold them (no second encoding).
pub async fn write_session_file(
    storage: &Storage,
    room: &str,
    session: &str,
) -> Result<String, ExportError> {
    let files: Vec<BatchFile<Box<RawValue>>> = batch_files(storage, room, session).await?;
    let (Some(first), Some(last)) = (files.first(), files.last()) else {
        return Err(ExportError::NoSession {
            room: room.to_string(),
            session: session.to_string(),
        });
    };
    let joined = SessionFile {
        room: room.to_string(),
        session: session.to_string(),
        files: files.len() as u64,
        from_seq: first.from_seq,
        to_seq: last.to_seq,
        start_ms: first.start_ms,
        end_ms: last.end_ms,
        events: files.into_iter().flat_map(|f| f.events).collect::<Vec<_>>(),
    };
    let key = SessionFile::key(room, session);
    let body = serde_json::to_vec(&joined).map_err(|e| ExportError::Damaged {
        key: key.clone(),
        message: e.to_string(),
    })?;
    put_with_retry(storage, &key, body.into()).await?;
    Ok(key)
}

/// A session's batch files `1..=N` in order, N being the highest stored (a hole is an error:
/// files are written in order, so one is missing only if the store lost it).
async fn batch_files<E: serde::de::DeserializeOwned>(
    storage: &Storage,
    room: &str,
    session: &str,
) -> Result<Vec<BatchFile<E>>, ExportError> {
    let folder = format!("danmaku/{room}/{session}/");
    let count = storage
        .list(&folder)
        .await?
        .iter()
        .filter_map(|k| {
            k.strip_prefix(&folder)?
                .strip_suffix(".json")?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    if count == 0 {
        return Err(ExportError::NoSession {
            room: room.to_string(),
            session: session.to_string(),
        });
    }
    futures::stream::iter(1..=count)
        .map(|n| async move {
            let key = BatchFile::key(room, session, n);
            let body = storage
                .get_bytes(&key)
                .await?
                .ok_or_else(|| ExportError::Missing {
                    key: key.clone(),
                    files: count,
                })?;
            serde_json::from_slice::<BatchFile<E>>(&body).map_err(|e| ExportError::Damaged {
                key,
                message: e.to_string(),
            })
        })
        .buffered(PARALLEL_READS)
        .try_collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// Batch file `n` with the events `from..=to` (none when `to < from`: an empty period).
    async fn put_batch(storage: &Storage, n: u64, from: u64, to: u64) {
        let events: Vec<serde_json::Value> = (from..=to)
            .map(|seq| serde_json::json!({"seq": seq, "stream_ms": seq * 10, "system": {"text": format!("m{seq}")}}))
            .collect();
        let file = BatchFile {
            room: "r".into(),
            session: "s".into(),
            n,
            from_seq: from,
            to_seq: to,
            start_ms: n as i64 * 1000,
            end_ms: n as i64 * 1000 + 1000,
            events,
        };
        let body = Bytes::from(serde_json::to_vec(&file).unwrap());
        storage.put(&file.object_key(), body).await.unwrap();
    }

    #[tokio::test]
    async fn a_finished_session_becomes_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(dir.path()).unwrap();
        assert!(matches!(
            write_session_file(&storage, "r", "s").await,
            Err(ExportError::NoSession { .. })
        ));
        put_batch(&storage, 1, 1, 2).await;
        put_batch(&storage, 2, 3, 2).await; // an empty period
        put_batch(&storage, 3, 3, 5).await;
        let key = write_session_file(&storage, "r", "s").await.unwrap();
        assert_eq!(key, "danmaku/r/s/all.json");
        let body = storage.get_bytes(&key).await.unwrap().unwrap();
        let file: SessionFile = serde_json::from_slice(&body).unwrap();
        assert_eq!((file.files, file.from_seq, file.to_seq), (3, 1, 5));
        assert_eq!((file.start_ms, file.end_ms), (1000, 4000));
        let seqs: Vec<u64> = file
            .events
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
        // Readers take the session file: the batch files are no longer needed.
        std::fs::remove_file(dir.path().join("danmaku/r/s/1.json")).unwrap();
        let events = session_events(&storage, "r", "s").await.unwrap();
        assert_eq!(events.len(), 5);
        assert_eq!(events[4]["system"]["text"], "m5");
    }

    #[tokio::test]
    async fn a_hole_in_the_files_is_an_error_not_a_short_file() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(dir.path()).unwrap();
        put_batch(&storage, 1, 1, 1).await;
        put_batch(&storage, 3, 3, 3).await;
        assert!(matches!(
            write_session_file(&storage, "r", "s").await,
            Err(ExportError::Missing { files: 3, .. })
        ));
    }
}
