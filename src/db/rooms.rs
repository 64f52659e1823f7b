//! The `rooms` table: each room's id, title, stream and host key digests, whether its host key
//! may post gifts, and when it was made and closed.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{q, Database, DbError};

/// A stored room.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomRow {
    pub id: String,
    pub title: String,
    pub key_hash: String,
    /// Digest of the room's host key; empty: the room has none yet.
    pub host_key_hash: String,
    /// Whether the host key may post gifts.
    pub host_gifts: bool,
    pub created_ms: i64,
    pub closed_ms: Option<i64>,
}

impl Database {
    pub async fn load_rooms(&self) -> Result<Vec<RoomRow>, DbError> {
        let rows = sqlx::query(
            "SELECT id, title, key_hash, created_ms, closed_ms, host_key_hash, host_gifts \
             FROM rooms ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(q("load rooms"))?;
        rows.iter().map(room_row).collect()
    }

    /// Inserts a new room; false if the id is taken.
    pub async fn insert_room(&self, room: &RoomRow) -> Result<bool, DbError> {
        let done = sqlx::query(
            "INSERT INTO rooms (id, title, key_hash, created_ms, closed_ms, host_key_hash, host_gifts) \
             VALUES ($1, $2, $3, $4, NULL, $5, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&room.id)
        .bind(&room.title)
        .bind(&room.key_hash)
        .bind(room.created_ms)
        .bind(&room.host_key_hash)
        .bind(i64::from(room.host_gifts))
        .execute(&self.pool)
        .await
        .map_err(q("insert room"))?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn update_room_title(&self, id: &str, title: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE rooms SET title = $1 WHERE id = $2")
            .bind(title)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(q("update room title"))?;
        Ok(())
    }

    pub async fn set_key_hash(&self, id: &str, key_hash: &str) -> Result<bool, DbError> {
        let done = sqlx::query("UPDATE rooms SET key_hash = $1 WHERE id = $2")
            .bind(key_hash)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(q("set stream key"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Replaces a room's host key digest; false if there is no such room.
    pub async fn set_host_key_hash(&self, id: &str, host_key_hash: &str) -> Result<bool, DbError> {
        let done = sqlx::query("UPDATE rooms SET host_key_hash = $1 WHERE id = $2")
            .bind(host_key_hash)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(q("set host key"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether the room's host key may post gifts; false if there is no such room.
    pub async fn set_host_gifts(&self, id: &str, allowed: bool) -> Result<bool, DbError> {
        let done = sqlx::query("UPDATE rooms SET host_gifts = $1 WHERE id = $2")
            .bind(i64::from(allowed))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(q("set host gifts"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Closes (Some(time)) or reopens (None) a room.
    pub async fn set_closed(&self, id: &str, closed_ms: Option<i64>) -> Result<bool, DbError> {
        let done = sqlx::query("UPDATE rooms SET closed_ms = $1 WHERE id = $2")
            .bind(closed_ms)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(q("close room"))?;
        Ok(done.rows_affected() == 1)
    }
}

fn room_row(row: &AnyRow) -> Result<RoomRow, DbError> {
    let host_gifts: i64 = row.try_get(6).map_err(q("read room"))?;
    Ok(RoomRow {
        id: row.try_get(0).map_err(q("read room"))?,
        title: row.try_get(1).map_err(q("read room"))?,
        key_hash: row.try_get(2).map_err(q("read room"))?,
        created_ms: row.try_get(3).map_err(q("read room"))?,
        closed_ms: row.try_get(4).map_err(q("read room"))?,
        host_key_hash: row.try_get(5).map_err(q("read room"))?,
        host_gifts: host_gifts != 0,
    })
}
