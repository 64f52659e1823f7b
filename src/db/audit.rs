//! The `audit_log` table: every moderation action, who took it (and in which role), in which
//! room, on what, and through which door (the HTTP API or a chat socket).

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{q, Database, DbError};

/// One stored audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRow {
    /// Time-ordered id: `at_ms` and the node's counter zero-padded, then a random suffix
    /// (unique, sorts by time).
    #[serde(skip)]
    pub id: String,
    pub room: String,
    pub at_ms: i64,
    /// Who: a token's user id, or `admin key` / `host key`.
    pub actor: String,
    /// In which role: `admin`, `host` or `moderator`.
    pub role: String,
    /// What: `mute`, `unmute`, `ban`, `unban`, `delete`, `blocked_words`, `slow_mode`, ...
    pub action: String,
    /// On what: a user id, `seq 42`, `5 s`, ... (empty when the action names it all).
    pub target: String,
    /// `api` or `socket`.
    pub via: String,
}

impl Database {
    /// Appends one entry.
    pub async fn insert_audit(&self, row: &AuditRow) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO audit_log (id, room, at_ms, actor, role, action, target, via) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&row.id)
        .bind(&row.room)
        .bind(row.at_ms)
        .bind(&row.actor)
        .bind(&row.role)
        .bind(&row.action)
        .bind(&row.target)
        .bind(&row.via)
        .execute(&self.pool)
        .await
        .map_err(q("write audit entry"))?;
        Ok(())
    }

    /// One page of a room's entries, newest first, and how many the room has.
    pub async fn list_audit(
        &self,
        room: &str,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<AuditRow>, i64), DbError> {
        let rows = sqlx::query(
            "SELECT id, room, at_ms, actor, role, action, target, via FROM audit_log \
             WHERE room = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
        )
        .bind(room)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await
        .map_err(q("list audit entries"))?;
        let total: i64 = sqlx::query("SELECT COUNT(*) FROM audit_log WHERE room = $1")
            .bind(room)
            .fetch_one(&self.pool)
            .await
            .map_err(q("count audit entries"))?
            .try_get(0)
            .map_err(q("count audit entries"))?;
        let entries = rows.iter().map(audit_row).collect::<Result<Vec<_>, _>>()?;
        Ok((entries, total))
    }
}

fn audit_row(row: &AnyRow) -> Result<AuditRow, DbError> {
    let e = || q("read audit entry");
    Ok(AuditRow {
        id: row.try_get(0).map_err(e())?,
        room: row.try_get(1).map_err(e())?,
        at_ms: row.try_get(2).map_err(e())?,
        actor: row.try_get(3).map_err(e())?,
        role: row.try_get(4).map_err(e())?,
        action: row.try_get(5).map_err(e())?,
        target: row.try_get(6).map_err(e())?,
        via: row.try_get(7).map_err(e())?,
    })
}
