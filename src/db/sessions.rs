//! The `sessions` table: each broadcast's start, end, VOD playlist and danmaku file progress,
//! for replays.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{q, Database, DbError};

/// A stored broadcast session (for replays).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SessionRow {
    pub room: String,
    pub session: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub vod_key: Option<String>,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    pub batches: i64,
    /// The session's one danmaku file (`danmaku/{room}/{session}/all.json`), once written.
    pub danmaku_key: Option<String>,
}

/// A session left open by an earlier run that stopped without ending it (a crash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterruptedSession {
    pub room: String,
    pub session: String,
    pub started_ms: i64,
    /// Danmaku files recorded for it.
    pub batches: i64,
}

/// The columns [`session_row`] reads, in its order.
const SESSION_COLUMNS: &str =
    "room, session, started_ms, ended_ms, vod_key, first_seq, last_seq, batches, danmaku_key";

impl Database {
    /// Records a broadcast `node` takes in.
    pub async fn session_started(
        &self,
        room: &str,
        session: &str,
        started_ms: i64,
        node: &str,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO sessions (room, session, started_ms, batches, node) VALUES ($1, $2, $3, 0, $4) \
             ON CONFLICT (room, session) DO NOTHING",
        )
        .bind(room)
        .bind(session)
        .bind(started_ms)
        .bind(node)
        .execute(&self.pool)
        .await
        .map_err(q("record session start"))?;
        Ok(())
    }

    pub async fn session_ended(
        &self,
        room: &str,
        session: &str,
        ended_ms: i64,
        vod_key: Option<&str>,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE sessions SET ended_ms = $1, vod_key = $2 WHERE room = $3 AND session = $4",
        )
        .bind(ended_ms)
        .bind(vod_key)
        .bind(room)
        .bind(session)
        .execute(&self.pool)
        .await
        .map_err(q("record session end"))?;
        Ok(())
    }

    /// Records danmaku file `batches` of a session; `range` is the file's seq range when it held
    /// events (the first one seen becomes the session's first_seq).
    pub async fn session_danmaku(
        &self,
        room: &str,
        session: &str,
        range: Option<(i64, i64)>,
        batches: i64,
    ) -> Result<(), DbError> {
        match range {
            Some((first, last)) => sqlx::query(
                "UPDATE sessions SET first_seq = COALESCE(first_seq, $1), last_seq = $2, batches = $3 \
                 WHERE room = $4 AND session = $5",
            )
            .bind(first)
            .bind(last)
            .bind(batches)
            .bind(room)
            .bind(session),
            None => sqlx::query("UPDATE sessions SET batches = $1 WHERE room = $2 AND session = $3")
                .bind(batches)
                .bind(room)
                .bind(session),
        }
        .execute(&self.pool)
        .await
        .map_err(q("record session danmaku"))?;
        Ok(())
    }

    /// Sessions `node` took in that never ended (it stopped without ending them: a crash),
    /// oldest first. Sessions recorded before nodes were named count as this node's only on an
    /// embedded database (one node by construction); on a shared one they are left alone.
    pub async fn interrupted_sessions(
        &self,
        node: &str,
    ) -> Result<Vec<InterruptedSession>, DbError> {
        let unnamed = if self.embedded {
            " OR node IS NULL"
        } else {
            ""
        };
        let rows = sqlx::query(&format!(
            "SELECT room, session, started_ms, batches FROM sessions \
             WHERE ended_ms IS NULL AND (node = $1{unnamed}) ORDER BY started_ms, session"
        ))
        .bind(node)
        .fetch_all(&self.pool)
        .await
        .map_err(q("list interrupted sessions"))?;
        rows.iter()
            .map(|row| {
                Ok(InterruptedSession {
                    room: row.try_get(0).map_err(q("read interrupted session"))?,
                    session: row.try_get(1).map_err(q("read interrupted session"))?,
                    started_ms: row.try_get(2).map_err(q("read interrupted session"))?,
                    batches: row.try_get(3).map_err(q("read interrupted session"))?,
                })
            })
            .collect()
    }

    /// Records that the session's one danmaku file is written at `key`.
    pub async fn session_danmaku_file(
        &self,
        room: &str,
        session: &str,
        key: &str,
    ) -> Result<(), DbError> {
        sqlx::query("UPDATE sessions SET danmaku_key = $1 WHERE room = $2 AND session = $3")
            .bind(key)
            .bind(room)
            .bind(session)
            .execute(&self.pool)
            .await
            .map_err(q("record session danmaku file"))?;
        Ok(())
    }

    /// One page of a room's sessions, newest first, and the total count.
    pub async fn list_sessions(
        &self,
        room: &str,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<SessionRow>, i64), DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE room = $1 \
             ORDER BY started_ms DESC, session DESC LIMIT $2 OFFSET $3"
        ))
        .bind(room)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await
        .map_err(q("list sessions"))?;
        let total: i64 = sqlx::query("SELECT COUNT(*) FROM sessions WHERE room = $1")
            .bind(room)
            .fetch_one(&self.pool)
            .await
            .map_err(q("count sessions"))?
            .try_get(0)
            .map_err(q("count sessions"))?;
        let sessions = rows
            .iter()
            .map(session_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((sessions, total))
    }

    /// One session, if recorded.
    pub async fn get_session(
        &self,
        room: &str,
        session: &str,
    ) -> Result<Option<SessionRow>, DbError> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE room = $1 AND session = $2"
        ))
        .bind(room)
        .bind(session)
        .fetch_optional(&self.pool)
        .await
        .map_err(q("get session"))?;
        row.as_ref().map(session_row).transpose()
    }
}

fn session_row(row: &AnyRow) -> Result<SessionRow, DbError> {
    Ok(SessionRow {
        room: row.try_get(0).map_err(q("read session"))?,
        session: row.try_get(1).map_err(q("read session"))?,
        started_ms: row.try_get(2).map_err(q("read session"))?,
        ended_ms: row.try_get(3).map_err(q("read session"))?,
        vod_key: row.try_get(4).map_err(q("read session"))?,
        first_seq: row.try_get(5).map_err(q("read session"))?,
        last_seq: row.try_get(6).map_err(q("read session"))?,
        batches: row.try_get(7).map_err(q("read session"))?,
        danmaku_key: row.try_get(8).map_err(q("read session"))?,
    })
}
