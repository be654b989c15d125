//! Probe slots (and, as slot -1, the release lease) and held deliveries of failing
//! endpoints: the `probe_slots` and `held_deliveries` tables.

use rusqlite::params;

use super::EmbeddedStore;
use super::connection::write_tx;
use crate::StoreError;
use crate::ports::{EndpointBreaker, HeldTask};
use crate::rules::due_index::{due_lower_bound, due_upper_bound};
use crate::rules::retention::expires_at_ms;

/// Takes lease row `?2` of endpoint `?1` for lease `?3` until `?4`, if absent or run out by `?5`.
const TAKE_LEASE: &str = "INSERT INTO probe_slots (endpoint, slot, lease, lease_until_ms) VALUES (?1, ?2, ?3, ?4) \
                          ON CONFLICT (endpoint, slot) DO UPDATE SET lease = ?3, lease_until_ms = ?4 \
                          WHERE lease_until_ms <= ?5";
/// The release lease's row among the endpoint's probe slots (numbered from 0).
const RELEASE_LEASE_SLOT: i64 = -1;

impl EndpointBreaker for EmbeddedStore {
    async fn take_probe_slot(
        &self,
        endpoint: &str,
        slots: u32,
        lease: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        // One transaction: the first slot that is absent or whose lease ran out.
        self.db.call("probe_slots.take", |conn| {
            let tx = write_tx(conn)?;
            let mut taken = false;
            for slot in 0..slots {
                if tx.execute(TAKE_LEASE, params![endpoint, slot, lease, until_ms, now_ms])? > 0 {
                    taken = true;
                    break;
                }
            }
            tx.commit()?;
            Ok(taken)
        })
    }

    async fn release_probe_slot(&self, endpoint: &str, lease: &str) -> Result<(), StoreError> {
        let sql = "DELETE FROM probe_slots WHERE endpoint = ?1 AND slot >= 0 AND lease = ?2";
        self.db.exec("probe_slots.release", sql, [endpoint, lease]).map(drop)
    }

    async fn take_release_lease(
        &self,
        endpoint: &str,
        lease: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        let row = params![endpoint, RELEASE_LEASE_SLOT, lease, until_ms, now_ms];
        self.db
            .exec("release_lease.take", TAKE_LEASE, row)
            .map(|taken| taken > 0)
    }

    async fn end_release_lease(&self, endpoint: &str, lease: &str) -> Result<(), StoreError> {
        let sql = "DELETE FROM probe_slots WHERE endpoint = ?1 AND slot = ?2 AND lease = ?3";
        let row = params![endpoint, RELEASE_LEASE_SLOT, lease];
        self.db.exec("release_lease.end", sql, row).map(drop)
    }

    async fn hold(&self, endpoint: &str, task: &HeldTask, now_ms: i64) -> Result<(), StoreError> {
        let sql = "INSERT OR REPLACE INTO held_deliveries (endpoint, sort_key, body, expires_at_ms) \
                   VALUES (?1, ?2, ?3, ?4)";
        let expires = expires_at_ms(now_ms, self.retention);
        let row = params![endpoint, task.sort_key, task.body, expires];
        self.db.exec("held_deliveries.hold", sql, row).map(drop)
    }

    async fn held_tasks(
        &self,
        endpoint: &str,
        since_ms: i64,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<HeldTask>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (first, last) = (due_lower_bound(since_ms), due_upper_bound(until_ms - 1));
        self.db.read("held_deliveries.list", |conn| {
            let sql = "SELECT sort_key, body FROM held_deliveries WHERE endpoint = ?1 \
                       AND sort_key BETWEEN ?2 AND ?3 ORDER BY sort_key LIMIT ?4";
            let mut statement = conn.prepare_cached(sql)?;
            let rows = statement.query_map(params![endpoint, first, last, limit], |row| {
                Ok(HeldTask {
                    sort_key: row.get(0)?,
                    body: row.get(1)?,
                    shard: None,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    async fn unhold(&self, endpoint: &str, tasks: &[HeldTask]) -> Result<(), StoreError> {
        self.db.call("held_deliveries.unhold", |conn| {
            let tx = write_tx(conn)?;
            {
                let sql = "DELETE FROM held_deliveries WHERE endpoint = ?1 AND sort_key = ?2";
                let mut delete = tx.prepare_cached(sql)?;
                for task in tasks {
                    delete.execute(params![endpoint, task.sort_key])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }
}
