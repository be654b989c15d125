//! The delivery log: the `attempts` table (sorted by `rules::attempt_key`), fed through
//! `attempts_recent` ([`append_attempt`]), and the `delivery_status` table, all kept for
//! the store's retention.

use rusqlite::{Connection, OptionalExtension, Params, params};
use webhooks_domain::{DeliveryAttempt, DeliveryStatus};

use super::EmbeddedStore;
use super::connection::{to_json, write_tx};
use super::parked_retries::insert_parked;
use crate::StoreError;
use crate::page::{Page, PageRequest};
use crate::ports::{AttemptRecorded, DeliveryLog, HandOff};
use crate::rules::attempt_key::{attempt_is_new, attempt_sort_key};
use crate::rules::unix_time::now_ms;

/// Appends an attempt to the recent ones.
const INSERT_ATTEMPT: &str = "INSERT INTO attempts_recent \
    (merchant_id, subscription_id, sort_key, json, expires_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)";
/// How many recent attempts are merged into `attempts` at once.
const MERGE_AT: i64 = 1024;
/// Sets a delivery's status (and, as `?6`, the highest attempt recorded; `NULL` keeps it).
const UPSERT_STATUS: &str = "INSERT INTO delivery_status \
    (event_id, subscription_id, merchant_id, status, expires_at_ms, last_attempt) \
    VALUES (?1, ?2, ?3, ?4, ?5, COALESCE(?6, 0)) \
    ON CONFLICT (event_id, subscription_id) DO UPDATE SET status = excluded.status, \
    expires_at_ms = excluded.expires_at_ms, last_attempt = COALESCE(?6, last_attempt)";

/// Appends an attempt (`row`, as [`INSERT_ATTEMPT`] takes it) to `attempts_recent`,
/// merging the recent ones into `attempts` once there are [`MERGE_AT`] of them.
///
/// `attempts` is kept in key order, (merchant, subscription, sort key): an attempt written
/// there at once changes the page of its subscription's log, a different page for nearly
/// every attempt of a fan-out, and SQLite writes whole pages to the WAL at each commit
/// (56 % of the pages a fan-out wrote). Appended to `attempts_recent` (no index) and merged
/// a thousand at a time in key order, the attempts of one subscription share its pages.
fn append_attempt(conn: &Connection, row: impl Params) -> rusqlite::Result<()> {
    conn.prepare_cached(INSERT_ATTEMPT)?.execute(row)?;
    // Rows are numbered from 1 again after each merge empties the table.
    if conn.last_insert_rowid() >= MERGE_AT {
        merge_recent_attempts(conn)?;
    }
    Ok(())
}

/// Moves the recent attempts into `attempts`, in key order; of two with one key the later
/// stays, as if each had been written there at once. Whatever reads `attempts` merges first.
pub(super) fn merge_recent_attempts(conn: &Connection) -> rusqlite::Result<()> {
    let merge = "INSERT OR REPLACE INTO attempts (merchant_id, subscription_id, sort_key, json, expires_at_ms) \
        SELECT merchant_id, subscription_id, sort_key, json, expires_at_ms FROM attempts_recent \
        ORDER BY merchant_id, subscription_id, sort_key, rowid";
    conn.prepare_cached(merge)?.execute([])?;
    conn.prepare_cached("DELETE FROM attempts_recent")?.execute([])?;
    Ok(())
}

impl DeliveryLog for EmbeddedStore {
    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> Result<(), StoreError> {
        let row = params![
            attempt.merchant_id,
            attempt.subscription_id,
            attempt_sort_key(attempt),
            to_json(attempt)?,
            self.expires_at_ms(now_ms()),
        ];
        self.db.call("attempts.record", |conn| {
            let tx = write_tx(conn)?;
            append_attempt(&tx, row)?;
            Ok(tx.commit()?)
        })
    }

    async fn list_attempts(
        &self,
        merchant_id: &str,
        subscription_id: &str,
        page: PageRequest,
    ) -> Result<Page<DeliveryAttempt>, StoreError> {
        let sql = "SELECT sort_key, json FROM attempts WHERE (?1 IS NULL OR sort_key < ?1) \
                   AND merchant_id = ?3 AND subscription_id = ?4 ORDER BY sort_key DESC LIMIT ?2";
        let scope = format!("attempts:{merchant_id}:{subscription_id}");
        self.db
            .write("attempts.merge", |tx| Ok(merge_recent_attempts(tx)?))
            .await?;
        self.db
            .list("attempts.list", &scope, &page, sql, &[&merchant_id, &subscription_id])
    }

    async fn set_delivery_status(
        &self,
        merchant_id: &str,
        event_id: &str,
        subscription_id: &str,
        status: DeliveryStatus,
    ) -> Result<(), StoreError> {
        let row = params![
            event_id,
            subscription_id,
            merchant_id,
            to_json(&status)?,
            self.expires_at_ms(now_ms()),
            None::<u32>,
        ];
        self.db.exec("delivery_status.set", UPSERT_STATUS, row).map(drop)
    }

    async fn record_attempt_once(
        &self,
        attempt: &DeliveryAttempt,
        status: DeliveryStatus,
        hand_off: Option<&HandOff>,
    ) -> Result<AttemptRecorded, StoreError> {
        let expires_at_ms = self.expires_at_ms(now_ms());
        let (attempt_json, status_json) = (to_json(attempt)?, to_json(&status)?);
        let parked = hand_off.map(HandOff::parked);
        let (attempt, sort_key) = (attempt.clone(), attempt_sort_key(attempt));
        // On the writer thread: a deliver batch's attempts, and whatever else is being
        // written meanwhile, share one commit.
        self.db
            .write("delivery_log.record_attempt_once", move |tx| {
                let last: Option<u32> = tx
                    .prepare_cached(
                        "SELECT last_attempt FROM delivery_status WHERE event_id = ?1 AND subscription_id = ?2",
                    )?
                    .query_row([&attempt.event_id, &attempt.subscription_id], |row| row.get(0))
                    .optional()?;
                if !attempt_is_new(last, attempt.attempt) {
                    return Ok(AttemptRecorded::AlreadyRecorded);
                }
                let row = params![
                    attempt.merchant_id,
                    attempt.subscription_id,
                    sort_key,
                    attempt_json,
                    expires_at_ms
                ];
                append_attempt(tx, row)?;
                let row = params![
                    attempt.event_id,
                    attempt.subscription_id,
                    attempt.merchant_id,
                    status_json,
                    expires_at_ms,
                    attempt.attempt
                ];
                tx.prepare_cached(UPSERT_STATUS)?.execute(row)?;
                if let Some(parked) = &parked {
                    insert_parked(tx, parked)?;
                }
                Ok(AttemptRecorded::Recorded)
            })
            .await
    }

    async fn delivery_status(
        &self,
        event_id: &str,
        subscription_id: &str,
    ) -> Result<Option<DeliveryStatus>, StoreError> {
        let sql = "SELECT status FROM delivery_status WHERE event_id = ?1 AND subscription_id = ?2";
        self.db.fetch("delivery_status.get", sql, [event_id, subscription_id])
    }
}

#[cfg(test)]
mod tests {
    use webhooks_domain::{AttemptOutcome, EventName, IsoTime};

    use super::*;

    fn attempt(subscription_id: &str, event_id: &str, at_ms: i64) -> DeliveryAttempt {
        let start = IsoTime::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        DeliveryAttempt {
            event_id: event_id.into(),
            subscription_id: subscription_id.into(),
            merchant_id: "m_1".into(),
            event_name: EventName::PaymentReceived,
            attempt: 1,
            attempted_at: IsoTime::new(start.instant() + time::Duration::milliseconds(at_ms)).unwrap(),
            outcome: AttemptOutcome::Succeeded,
            status_code: Some(200),
            error: None,
            latency_ms: 1,
            response_excerpt: None,
            next_attempt_at: None,
            manual: false,
        }
    }

    /// How many rows `table` has.
    fn rows(store: &EmbeddedStore, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        store
            .db
            .read("test.count", |conn| Ok(conn.query_row(&sql, [], |row| row.get(0))?))
            .unwrap()
    }

    #[tokio::test]
    async fn recent_attempts_are_merged_in_thousands_and_before_any_read() {
        let (_dir, store) = crate::embedded::open_temporary();
        let subscriptions = ["sub_a", "sub_b", "sub_c"];
        let recorded = MERGE_AT + 5;
        for n in 0..recorded {
            let subscription = subscriptions[usize::try_from(n).unwrap() % 3];
            let attempt = attempt(subscription, &format!("evt_{n}"), n);
            let recorded = store
                .record_attempt_once(&attempt, DeliveryStatus::Succeeded, None)
                .await;
            assert_eq!(recorded, Ok(AttemptRecorded::Recorded));
        }
        assert_eq!(
            (rows(&store, "attempts"), rows(&store, "attempts_recent")),
            (MERGE_AT, 5)
        );
        // The same key again, of one merged and of one still recent: the later attempt
        // replaces the earlier, as in `attempts`.
        for n in [0, recorded - 3] {
            let mut again = attempt("sub_a", &format!("evt_{n}"), n);
            again.status_code = Some(202);
            store.record_attempt(&again).await.unwrap();
        }

        let mut listed = 0;
        for subscription in subscriptions {
            let log = store
                .list_attempts("m_1", subscription, PageRequest::first(1000))
                .await
                .unwrap()
                .items;
            let times: Vec<i64> = log.iter().map(|a| a.attempted_at.unix_millis()).collect();
            assert!(
                times.windows(2).all(|pair| pair[0] > pair[1]),
                "newest first, once each"
            );
            listed += log.len();
            if subscription == "sub_a" {
                let codes = [log[0].status_code, log[1].status_code, log[log.len() - 1].status_code];
                assert_eq!(codes, [Some(202), Some(200), Some(202)], "the later one of a key stays");
            }
        }
        assert_eq!(i64::try_from(listed).unwrap(), recorded);
        assert_eq!(rows(&store, "attempts_recent"), 0, "merged before the read");
    }
}
