//! Writes with retries: a failed put is retried a few times with backoff before the writer
//! moves on, so one store hiccup does not cost a segment, and writes stay in order.

use std::time::Duration;

use bytes::Bytes;

use crate::storage::{Storage, StorageError};

/// Attempts per object (the first plus retries).
pub const PUT_ATTEMPTS: u32 = 4;
/// Wait before the first retry; doubles each time.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Puts `body` at `key`, retrying failures with exponential backoff.
pub async fn put_with_retry(storage: &Storage, key: &str, body: Bytes) -> Result<(), StorageError> {
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        match storage.put(key, body.clone()).await {
            Ok(()) => return Ok(()),
            // A key the store refuses will never be accepted: no point retrying.
            Err(e @ StorageError::BadKey { .. }) => return Err(e),
            Err(e) if attempt < PUT_ATTEMPTS => {
                tracing::warn!(%key, attempt, error = %e, "object write failed; retrying");
                metrics::counter!("barrage_storage_retries_total").increment(1);
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}
