//! Events and their fan-out status: the `events` table. What `record_event` does is
//! decided by `rules::fan_out_lease`; here it is carried out in one write transaction.

use std::time::Duration;

use rusqlite::{OptionalExtension, params};
use webhooks_domain::PlatformEvent;

use super::EmbeddedStore;
use super::connection::{from_json, to_json, write_tx};
use crate::StoreError;
use crate::ports::{EventStore, Recorded};
use crate::rules::fan_out_lease::{RecordDecision, StoredEventState, decide_record};
use crate::rules::unix_time::now_ms;
use crate::rules::write_conditions::Precondition;

impl EventStore for EmbeddedStore {
    async fn record_event(&self, event: &PlatformEvent, lease: Duration) -> Result<Recorded, StoreError> {
        let json = to_json(event)?;
        let id = &event.event_id;
        self.db.call("events.record", |conn| {
            let tx = write_tx(conn)?;
            let now = now_ms();
            let sql = "SELECT fanned_out, lease_until_ms, expires_at_ms, json FROM events WHERE event_id = ?1";
            let stored: Option<(StoredEventState, String)> = tx
                .query_row(sql, [id], |row| {
                    let state = StoredEventState {
                        fanned_out: row.get(0)?,
                        lease_until_ms: row.get(1)?,
                        expires_at_ms: row.get(2)?,
                    };
                    Ok((state, row.get(3)?))
                })
                .optional()?;
            let (state, stored_json) = stored.unzip();
            let decision = decide_record(state.as_ref(), now, lease);
            match decision {
                RecordDecision::Insert { lease_until_ms } => {
                    let sql = "INSERT OR REPLACE INTO events \
                               (event_id, json, fanned_out, expires_at_ms, lease_until_ms) VALUES (?1, ?2, 0, ?3, ?4)";
                    tx.execute(sql, params![id, json, self.expires_at_ms(now), lease_until_ms])?;
                }
                RecordDecision::RetakeLease { lease_until_ms } => {
                    let sql = "UPDATE events SET lease_until_ms = ?2 WHERE event_id = ?1";
                    tx.execute(sql, params![id, lease_until_ms])?;
                }
                RecordDecision::InProgress | RecordDecision::AlreadyFannedOut => {}
            }
            tx.commit()?;
            Ok(decision.recorded(|| from_json(stored_json.as_deref().unwrap_or_default()))?)
        })
    }

    async fn mark_fanned_out(&self, event_id: &str) -> Result<(), StoreError> {
        let sql = "UPDATE events SET fanned_out = 1 WHERE event_id = ?1";
        Precondition::Present.check(self.db.exec("events.mark_fanned_out", sql, [event_id])?)
    }

    async fn get_event(&self, event_id: &str) -> Result<Option<PlatformEvent>, StoreError> {
        // Retained while not expired: `rules::retention::is_expired` in SQL.
        let sql = "SELECT json FROM events WHERE event_id = ?1 AND expires_at_ms > ?2";
        self.db.fetch("events.get", sql, params![event_id, now_ms()])
    }
}
