//! Parked retries: the `parked_retries` table, keyed as the DynamoDB due-time index is
//! (`rules::due_index`).

use rusqlite::{Connection, params};

use super::EmbeddedStore;
use super::connection::write_tx;
use crate::StoreError;
use crate::ports::{ParkedRetries, ParkedTask};
use crate::rules::due_index::due_upper_bound;

/// Writes one parked task (replacing the same key at the same instant).
pub(super) fn insert_parked(conn: &Connection, task: &ParkedTask) -> rusqlite::Result<usize> {
    let sql = "INSERT OR REPLACE INTO parked_retries (shard, sort_key, due_ms, body, dead_letter_reason) \
               VALUES (?1, ?2, ?3, ?4, ?5)";
    conn.prepare_cached(sql)?.execute(params![
        task.shard,
        task.sort_key,
        task.due_ms,
        task.body,
        task.dead_letter_reason
    ])
}

impl ParkedRetries for EmbeddedStore {
    async fn park(&self, task: &ParkedTask) -> Result<(), StoreError> {
        self.db
            .call("parked_retries.park", |conn| Ok(insert_parked(conn, task)?))
            .map(drop)
    }

    async fn due_tasks(&self, shard: u32, now_ms: i64, limit: usize) -> Result<Vec<ParkedTask>, StoreError> {
        let upper = due_upper_bound(now_ms);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db.read("parked_retries.due_tasks", |conn| {
            let sql = "SELECT sort_key, due_ms, body, dead_letter_reason FROM parked_retries
                       WHERE shard = ?1 AND sort_key <= ?2 ORDER BY sort_key LIMIT ?3";
            let mut statement = conn.prepare_cached(sql)?;
            let rows = statement.query_map(params![shard, upper, limit], |row| {
                Ok(ParkedTask {
                    shard,
                    sort_key: row.get(0)?,
                    due_ms: row.get(1)?,
                    body: row.get(2)?,
                    dead_letter_reason: row.get(3)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    async fn unpark(&self, tasks: &[ParkedTask]) -> Result<(), StoreError> {
        self.db.call("parked_retries.unpark", |conn| {
            let tx = write_tx(conn)?;
            {
                let mut delete = tx.prepare_cached("DELETE FROM parked_retries WHERE shard = ?1 AND sort_key = ?2")?;
                for task in tasks {
                    delete.execute(params![task.shard, task.sort_key])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }
}
