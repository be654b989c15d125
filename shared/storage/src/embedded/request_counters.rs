//! Request counters: the `request_counts` table, one row per (key, window), counted up by
//! one UPSERT; [`EmbeddedStore::purge_expired`] deletes the rows of windows that have ended.

use rusqlite::{OptionalExtension, params};

use super::EmbeddedStore;
use crate::StoreError;
use crate::ports::RequestCounters;

/// Inserts the counter at 1, or adds one to it, and reads the count back: one statement.
const COUNT: &str = "INSERT INTO request_counts (key, window_start_ms, count, expires_at_ms) VALUES (?1, ?2, 1, ?3)
    ON CONFLICT (key, window_start_ms) DO UPDATE
    SET count = count + 1, expires_at_ms = max(expires_at_ms, excluded.expires_at_ms)
    RETURNING count";

impl RequestCounters for EmbeddedStore {
    async fn count_request(&self, key: &str, window_start_ms: i64, expires_at_ms: i64) -> Result<u64, StoreError> {
        let count: i64 = self.db.call("request_counts.count", |conn| {
            let mut statement = conn.prepare_cached(COUNT)?;
            Ok(statement.query_row(params![key, window_start_ms, expires_at_ms], |row| row.get(0))?)
        })?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn request_count(&self, key: &str, window_start_ms: i64) -> Result<u64, StoreError> {
        let sql = "SELECT count FROM request_counts WHERE key = ?1 AND window_start_ms = ?2";
        let count: Option<i64> = self.db.read("request_counts.read", |conn| {
            let mut statement = conn.prepare_cached(sql)?;
            Ok(statement
                .query_row(params![key, window_start_ms], |row| row.get(0))
                .optional()?)
        })?;
        Ok(count.map_or(0, |count| u64::try_from(count).unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::open_temporary;
    use crate::rules::unix_time::now_ms;

    #[tokio::test]
    async fn counters_of_ended_windows_are_purged_and_the_current_one_is_kept() {
        let (_dir, store) = open_temporary();
        let now = now_ms();
        store
            .count_request("merchant:m_1", now - 10_000, now - 5_000)
            .await
            .unwrap();
        store.count_request("merchant:m_1", now, now + 60_000).await.unwrap();

        assert_eq!(store.purge_expired().await.unwrap(), 1);
        assert_eq!(store.request_count("merchant:m_1", now - 10_000).await.unwrap(), 0);
        assert_eq!(store.request_count("merchant:m_1", now).await.unwrap(), 1);
    }
}
