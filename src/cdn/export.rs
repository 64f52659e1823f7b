//! Reads a session's batch files back from storage (for the XML export and replays).

use super::files::BatchFile;
use crate::storage::{Storage, StorageError};

/// Why a session's files could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("no danmaku files for session {session} of room {room}")]
    NoSession { room: String, session: String },
    #[error("danmaku file {key} is damaged: {message}")]
    Damaged { key: String, message: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Every event of a session, from its files `1..=N` in order (stopping at the first missing n).
pub async fn session_events(
    storage: &Storage,
    room: &str,
    session: &str,
) -> Result<Vec<serde_json::Value>, ExportError> {
    let mut events = Vec::new();
    let mut n = 1u64;
    loop {
        let key = BatchFile::key(room, session, n);
        let Some(body) = storage.get_bytes(&key).await? else {
            break;
        };
        let file: BatchFile = serde_json::from_slice(&body).map_err(|e| ExportError::Damaged {
            key: key.clone(),
            message: e.to_string(),
        })?;
        events.extend(file.events);
        n += 1;
    }
    if n == 1 {
        return Err(ExportError::NoSession {
            room: room.to_string(),
            session: session.to_string(),
        });
    }
    Ok(events)
}
