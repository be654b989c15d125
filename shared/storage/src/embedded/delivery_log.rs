//! The delivery log: the `attempts` table (sorted by `rules::attempt_key`) and the
//! `delivery_status` table, both kept for the store's retention.

use rusqlite::{OptionalExtension, params};
use webhooks_domain::{DeliveryAttempt, DeliveryStatus};

use super::EmbeddedStore;
use super::connection::to_json;
use super::parked_retries::insert_parked;
use crate::StoreError;
use crate::page::{Page, PageRequest};
use crate::ports::{AttemptRecorded, DeliveryLog, HandOff};
use crate::rules::attempt_key::{attempt_is_new, attempt_sort_key};
use crate::rules::unix_time::now_ms;

/// Inserts an attempt row.
const INSERT_ATTEMPT: &str = "INSERT OR REPLACE INTO attempts \
    (merchant_id, subscription_id, sort_key, json, expires_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)";
/// Sets a delivery's status (and, as `?6`, the highest attempt recorded; `NULL` keeps it).
const UPSERT_STATUS: &str = "INSERT INTO delivery_status \
    (event_id, subscription_id, merchant_id, status, expires_at_ms, last_attempt) \
    VALUES (?1, ?2, ?3, ?4, ?5, COALESCE(?6, 0)) \
    ON CONFLICT (event_id, subscription_id) DO UPDATE SET status = excluded.status, \
    expires_at_ms = excluded.expires_at_ms, last_attempt = COALESCE(?6, last_attempt)";

impl DeliveryLog for EmbeddedStore {
    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> Result<(), StoreError> {
        let sql = INSERT_ATTEMPT;
        let row = params![
            attempt.merchant_id,
            attempt.subscription_id,
            attempt_sort_key(attempt),
            to_json(attempt)?,
            self.expires_at_ms(now_ms()),
        ];
        self.db.exec("attempts.record", sql, row).map(drop)
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
                tx.prepare_cached(INSERT_ATTEMPT)?.execute(row)?;
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
