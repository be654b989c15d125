//! Events and their fan-out status: the `events` table. What `record_event` does is
//! decided by `rules::fan_out_lease`; here it is carried out in one write of the writer
//! thread, for one event or for a batch of them.

use std::time::Duration;

use rusqlite::{OptionalExtension, params};
use webhooks_domain::PlatformEvent;

use super::EmbeddedStore;
use super::connection::{from_json, to_json};
use crate::StoreError;
use crate::ports::{EventStore, Recorded};
use crate::rules::fan_out_lease::{RecordDecision, StoredEventState, decide_record};
use crate::rules::retention::expires_at_ms;
use crate::rules::unix_time::now_ms;
use crate::rules::write_conditions::Precondition;

impl EventStore for EmbeddedStore {
    async fn record_event(&self, event: &PlatformEvent, lease: Duration) -> Result<Recorded, StoreError> {
        self.record_events(std::slice::from_ref(event), lease)
            .await
            .pop()
            .expect("one answer per event")
    }

    async fn mark_fanned_out(&self, event_id: &str) -> Result<(), StoreError> {
        let sql = "UPDATE events SET fanned_out = 1 WHERE event_id = ?1";
        Precondition::Present.check(self.db.exec("events.mark_fanned_out", sql, [event_id])?)
    }

    /// One write of the writer thread for the whole batch; the events are encoded before.
    async fn record_events(&self, events: &[PlatformEvent], lease: Duration) -> Vec<Result<Recorded, StoreError>> {
        let retention = self.retention;
        let encoded: Vec<_> = events
            .iter()
            .map(|event| (event.event_id.clone(), to_json(event)))
            .collect();
        let recorded = self
            .db
            .write("events.record", move |tx| {
                let now = now_ms();
                let mut answers = Vec::with_capacity(encoded.len());
                for (id, json) in &encoded {
                    let answer = match json {
                        Ok(json) => record_in(tx, id, json, now, lease, retention)?,
                        Err(error) => Err(error.clone()),
                    };
                    answers.push(answer);
                }
                Ok(answers)
            })
            .await;
        match recorded {
            Ok(answers) => answers,
            Err(error) => events.iter().map(|_| Err(error.clone())).collect(),
        }
    }

    /// One write of the writer thread for the whole batch.
    async fn mark_all_fanned_out(&self, event_ids: &[String]) -> Vec<Result<(), StoreError>> {
        let ids = event_ids.to_vec();
        let marked = self
            .db
            .write("events.mark_fanned_out", move |tx| {
                let mut update = tx.prepare_cached("UPDATE events SET fanned_out = 1 WHERE event_id = ?1")?;
                let changed = ids
                    .iter()
                    .map(|id| update.execute([id]))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(changed)
            })
            .await;
        match marked {
            Ok(changed) => changed.into_iter().map(|n| Precondition::Present.check(n)).collect(),
            Err(error) => event_ids.iter().map(|_| Err(error.clone())).collect(),
        }
    }

    async fn get_event(&self, event_id: &str) -> Result<Option<PlatformEvent>, StoreError> {
        // Retained while not expired: `rules::retention::is_expired` in SQL.
        let sql = "SELECT json FROM events WHERE event_id = ?1 AND expires_at_ms > ?2";
        self.db.fetch("events.get", sql, params![event_id, now_ms()])
    }
}

/// Records the event `id` (encoded as `json`) within a write: a decision of
/// `rules::fan_out_lease`, carried out; a new event is kept for `retention`.
fn record_in(
    tx: &rusqlite::Connection,
    id: &str,
    json: &str,
    now: i64,
    lease: Duration,
    retention: Duration,
) -> Result<Result<Recorded, StoreError>, rusqlite::Error> {
    let sql = "SELECT fanned_out, lease_until_ms, expires_at_ms, json FROM events WHERE event_id = ?1";
    let stored: Option<(StoredEventState, String)> = tx
        .prepare_cached(sql)?
        .query_row([id], |row| {
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
            tx.prepare_cached(sql)?
                .execute(params![id, json, expires_at_ms(now, retention), lease_until_ms])?;
        }
        RecordDecision::RetakeLease { lease_until_ms } => {
            let sql = "UPDATE events SET lease_until_ms = ?2 WHERE event_id = ?1";
            tx.prepare_cached(sql)?.execute(params![id, lease_until_ms])?;
        }
        RecordDecision::InProgress | RecordDecision::AlreadyFannedOut => {}
    }
    Ok(decision.recorded(|| from_json(stored_json.as_deref().unwrap_or_default())))
}
