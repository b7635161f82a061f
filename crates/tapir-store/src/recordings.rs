//! Call recordings' metadata: one row per recording (its id, when it
//! started, the size of its file, and the server's JSON document). The audio
//! itself is a file the server keeps; the store only says which exist, so
//! that listing, retention and access survive a restart.

use super::{Store, StoreError, i, json, u};
use serde_json::Value;
use sqlx::Row;

/// A recording's row.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRecording {
    /// Its id (the server's opaque, unguessable one).
    pub id: String,
    /// When it started (ms since the epoch).
    pub started_at: u64,
    /// Bytes of its file.
    pub bytes: u64,
    /// The metadata document (the API's shape).
    pub data: Value,
}

impl Store {
    /// Insert or replace a recording's row.
    pub async fn put_recording(&self, r: &StoredRecording) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO recordings (id, started_at, bytes, data) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at, \
             bytes = excluded.bytes, data = excluded.data",
        )
        .bind(&r.id)
        .bind(i(r.started_at))
        .bind(i(r.bytes))
        .bind(r.data.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One recording.
    pub async fn recording(&self, id: &str) -> Result<Option<StoredRecording>, StoreError> {
        let row = sqlx::query("SELECT id, started_at, bytes, data FROM recordings WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| recording_of(&r)).transpose()
    }

    /// Every recording, newest first.
    pub async fn recordings(&self) -> Result<Vec<StoredRecording>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, started_at, bytes, data FROM recordings ORDER BY started_at DESC, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(recording_of).collect()
    }

    /// Delete a recording's row; false when it was not stored.
    pub async fn delete_recording(&self, id: &str) -> Result<bool, StoreError> {
        let n = sqlx::query("DELETE FROM recordings WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }
}

fn recording_of(r: &sqlx::any::AnyRow) -> Result<StoredRecording, StoreError> {
    Ok(StoredRecording {
        id: r.try_get(0)?,
        started_at: u(r.try_get(1)?),
        bytes: u(r.try_get(2)?),
        data: json(&r.try_get::<String, _>(3)?)?,
    })
}
