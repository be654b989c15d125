//! The delivery log: the `attempts` table (sorted by `rules::attempt_key`) and the
//! `delivery_status` table, both kept for the store's retention.

use rusqlite::params;
use webhooks_domain::{DeliveryAttempt, DeliveryStatus};

use super::EmbeddedStore;
use super::connection::to_json;
use crate::StoreError;
use crate::page::{Page, PageRequest};
use crate::ports::DeliveryLog;
use crate::rules::attempt_key::attempt_sort_key;
use crate::rules::unix_time::now_ms;

impl DeliveryLog for EmbeddedStore {
    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> Result<(), StoreError> {
        let sql = "INSERT OR REPLACE INTO attempts (merchant_id, subscription_id, sort_key, json, expires_at_ms) \
                   VALUES (?1, ?2, ?3, ?4, ?5)";
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
        let sql = "INSERT OR REPLACE INTO delivery_status \
                   (event_id, subscription_id, merchant_id, status, expires_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)";
        let row = params![
            event_id,
            subscription_id,
            merchant_id,
            to_json(&status)?,
            self.expires_at_ms(now_ms()),
        ];
        self.db.exec("delivery_status.set", sql, row).map(drop)
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
