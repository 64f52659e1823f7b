//! Records broadcast sessions as they start and end, so replays can be listed: the live
//! registry's changes, written to the database's `sessions` table.

use super::live::{LiveChange, LiveRegistry};
use crate::db::Database;

/// Runs until the registry is dropped; a failed write is logged and the next change is still
/// recorded. Sessions are recorded as taken in by `node` (crash recovery finishes its own).
pub fn record_sessions(
    db: Database,
    live: &LiveRegistry,
    node: String,
) -> tokio::task::JoinHandle<()> {
    let mut changes = live.subscribe();
    tokio::spawn(async move {
        loop {
            let change = match changes.recv().await {
                Ok(c) => c,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "session recorder fell behind");
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            let result = match &change {
                LiveChange::Started(info) => {
                    db.session_started(&info.room, &info.session, info.started_ms, &node)
                        .await
                }
                LiveChange::Ended {
                    info,
                    ended_ms,
                    vod_key,
                } => {
                    db.session_ended(&info.room, &info.session, *ended_ms, vod_key.as_deref())
                        .await
                }
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "could not record a broadcast session");
            }
        }
    })
}
