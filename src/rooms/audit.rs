//! The audit log: every moderation action (and every other change a host or moderator makes to
//! a room: system messages, keys, closing) with who took it, in which role, on what, and
//! whether through the API or a chat socket. Hosts read it at `GET /api/rooms/{room}/audit`.
//!
//! An entry is written after its action succeeded. A failed write does not undo the action
//! (it was already stored and applied): it is logged as an error with the whole entry and
//! counted in `barrage_audit_write_failures_total`, so the log line keeps what the table lost.

use std::sync::atomic::{AtomicU64, Ordering};

use rand::Rng;

use crate::clock::now_ms;
use crate::db::{AuditRow, Database, DbError};
use crate::rights::{Action, Credential};

/// Which door an action came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The HTTP API.
    Api,
    /// A chat socket (`delete` and `mute` frames).
    Socket,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Api => "api",
            Via::Socket => "socket",
        }
    }
}

/// Writes and reads the audit table.
#[derive(Debug)]
pub struct AuditLog {
    db: Database,
    /// Orders this node's entries of the same millisecond (ids sort by time, then this).
    written: AtomicU64,
}

impl AuditLog {
    pub fn new(db: Database) -> AuditLog {
        AuditLog {
            db,
            written: AtomicU64::new(0),
        }
    }

    /// Records that `credential` took `action` on `target` in `room` (see the module doc for
    /// what a failed write does).
    pub async fn record(
        &self,
        credential: &Credential,
        room: &str,
        action: Action,
        target: String,
        via: Via,
    ) {
        let at_ms = now_ms();
        let n = self.written.fetch_add(1, Ordering::Relaxed);
        // The random part keeps ids of several nodes apart.
        let node: u32 = rand::rng().random();
        let row = AuditRow {
            id: format!("{at_ms:015}-{n:012}-{node:08x}"),
            room: room.to_string(),
            at_ms,
            actor: credential.actor().to_string(),
            role: credential.role().as_str().to_string(),
            action: action.code().to_string(),
            target,
            via: via.as_str().to_string(),
        };
        if let Err(e) = self.db.insert_audit(&row).await {
            metrics::counter!("barrage_audit_write_failures_total").increment(1);
            tracing::error!(error = %e, entry = ?row, "audit entry not stored");
        }
    }

    /// Page `page` (from 1) of a room's entries, newest first, and how many there are.
    pub async fn page(
        &self,
        room: &str,
        page: usize,
        per_page: usize,
    ) -> Result<(Vec<AuditRow>, i64), DbError> {
        let offset = page.saturating_sub(1).saturating_mul(per_page);
        self.db
            .list_audit(
                room,
                i64::try_from(offset).unwrap_or(i64::MAX),
                i64::try_from(per_page).unwrap_or(i64::MAX),
            )
            .await
    }
}
