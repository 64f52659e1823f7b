//! A finished session's XML export, built once and stored beside its danmaku files
//! (`danmaku/{room}/{session}/danmaku.xml`). Built per request it read every batch file of the
//! session each time, unauthenticated (a 4 h session: 14,400 reads per GET). Now it is built
//! only from the session file (`all.json`, written when the broadcast ends, so the export is
//! complete), stored, and read back as one object by every later request. A session that is
//! still on (or whose files are not joined yet) has no export.

use bytes::Bytes;

use super::export::{ExportError, SessionFile};
use crate::storage::Storage;

/// Where a session's export is kept.
pub fn xml_key(room: &str, session: &str) -> String {
    format!("danmaku/{room}/{session}/danmaku.xml")
}

/// The session's XML export: the stored one, else built from its session file and stored.
pub async fn session_xml(
    storage: &Storage,
    room: &str,
    session: &str,
) -> Result<Bytes, ExportError> {
    let key = xml_key(room, session);
    if let Some(stored) = storage.get_bytes(&key).await? {
        return Ok(stored);
    }
    let file_key = SessionFile::key(room, session);
    let Some(body) = storage.get_bytes(&file_key).await? else {
        let prefix = format!("danmaku/{room}/{session}/");
        return Err(if storage.list(&prefix).await?.is_empty() {
            ExportError::NoSession {
                room: room.to_string(),
                session: session.to_string(),
            }
        } else {
            ExportError::NotFinished {
                room: room.to_string(),
                session: session.to_string(),
            }
        });
    };
    let file: SessionFile = serde_json::from_slice(&body).map_err(|e| ExportError::Damaged {
        key: file_key,
        message: e.to_string(),
    })?;
    let xml = Bytes::from(super::xml::session_xml(session, &file.events));
    // A failed write only costs a rebuild on the next request.
    if let Err(e) = storage.put(&key, xml.clone()).await {
        tracing::warn!(%key, error = %e, "danmaku export not stored");
    }
    Ok(xml)
}
