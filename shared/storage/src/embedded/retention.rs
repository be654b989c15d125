//! Retention in the embedded store: events, attempts and delivery statuses carry
//! `expires_at_ms` (`rules::retention`), the instant DynamoDB's TTL attribute holds, and
//! [`EmbeddedStore::purge_expired`] deletes what has expired, as DynamoDB's TTL does; so
//! does it with request counters, which expire when their window ends.

use super::EmbeddedStore;
use super::connection::write_tx;
use super::delivery_log::merge_recent_attempts;
use crate::StoreError;
use crate::rules::retention::{expires_at_ms, retention_days};
use crate::rules::unix_time::now_ms;

/// One delete per table with an expiry: what has expired at `?1` (`rules::retention::is_expired`).
const PURGES: [&str; 5] = [
    "DELETE FROM events WHERE expires_at_ms <= ?1",
    "DELETE FROM attempts WHERE expires_at_ms <= ?1",
    "DELETE FROM delivery_status WHERE expires_at_ms <= ?1",
    "DELETE FROM request_counts WHERE expires_at_ms <= ?1",
    "DELETE FROM held_deliveries WHERE expires_at_ms <= ?1",
];

impl EmbeddedStore {
    /// The same store, keeping what it writes from now on for `days` days.
    pub fn with_retention_days(mut self, days: u32) -> Self {
        self.retention = retention_days(days);
        self
    }

    /// Deletes the events, delivery attempts and delivery statuses whose retention has
    /// ended, and the request counters of windows that have ended; how many rows. An
    /// expired event is already treated as absent before.
    pub async fn purge_expired(&self) -> Result<usize, StoreError> {
        self.db.call("sqlite.purge_expired", |conn| {
            let tx = write_tx(conn)?;
            merge_recent_attempts(&tx)?;
            let now = now_ms();
            let mut purged = 0;
            for sql in PURGES {
                purged += tx.prepare_cached(sql)?.execute([now])?;
            }
            tx.commit()?;
            Ok(purged)
        })
    }

    /// When something this store writes at `now_ms` expires.
    pub(super) fn expires_at_ms(&self, now_ms: i64) -> i64 {
        expires_at_ms(now_ms, self.retention)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use webhooks_domain::{AttemptOutcome, DeliveryAttempt, DeliveryStatus, EventName, IsoTime, PlatformEvent};

    use super::*;
    use crate::embedded::open_temporary;
    use crate::page::PageRequest;
    use crate::ports::{DeliveryLog, EventStore, Recorded};

    fn event(id: &str) -> PlatformEvent {
        PlatformEvent {
            event_id: id.into(),
            merchant_id: "m_1".into(),
            event_name: EventName::PaymentReceived,
            order_id: "o_1".into(),
            time_stamp: IsoTime::parse_rfc3339("2026-01-01T00:00:00Z").unwrap(),
        }
    }

    fn attempt(event_id: &str) -> DeliveryAttempt {
        DeliveryAttempt {
            event_id: event_id.into(),
            subscription_id: "sub_1".into(),
            merchant_id: "m_1".into(),
            event_name: EventName::PaymentReceived,
            attempt: 1,
            attempted_at: IsoTime::parse_rfc3339("2026-01-01T00:00:01Z").unwrap(),
            outcome: AttemptOutcome::Succeeded,
            status_code: Some(200),
            error: None,
            latency_ms: 3,
            response_excerpt: None,
            next_attempt_at: None,
            manual: false,
        }
    }

    /// Records an event, its attempt and its status, marking the event fanned out.
    async fn write_one_delivery(store: &EmbeddedStore, event_id: &str) {
        assert_eq!(
            store
                .record_event(&event(event_id), Duration::from_secs(60))
                .await
                .unwrap(),
            Recorded::New
        );
        store.mark_fanned_out(event_id).await.unwrap();
        store.record_attempt(&attempt(event_id)).await.unwrap();
        store
            .set_delivery_status("m_1", event_id, "sub_1", DeliveryStatus::Succeeded)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn purge_deletes_expired_events_attempts_and_statuses_and_keeps_the_rest() {
        let (_dir, store) = open_temporary();
        write_one_delivery(&store, "evt_kept").await;
        let expiring = store.clone().with_retention_days(0);
        write_one_delivery(&expiring, "evt_gone").await;

        assert_eq!(store.purge_expired().await.unwrap(), 3);
        assert_eq!(store.purge_expired().await.unwrap(), 0);
        assert_eq!(store.get_event("evt_gone").await.unwrap(), None);
        assert_eq!(store.delivery_status("evt_gone", "sub_1").await.unwrap(), None);
        let log = store
            .list_attempts("m_1", "sub_1", PageRequest::first(10))
            .await
            .unwrap();
        assert_eq!(log.items, [attempt("evt_kept")]);
        assert_eq!(store.get_event("evt_kept").await.unwrap(), Some(event("evt_kept")));
        assert_eq!(
            store.delivery_status("evt_kept", "sub_1").await.unwrap(),
            Some(DeliveryStatus::Succeeded)
        );
    }

    #[tokio::test]
    async fn an_expired_event_is_absent_and_new_again_before_any_purge() {
        let (_dir, store) = open_temporary();
        let expiring = store.with_retention_days(0);
        write_one_delivery(&expiring, "evt_1").await;
        assert_eq!(expiring.get_event("evt_1").await.unwrap(), None);
        let again = expiring.record_event(&event("evt_1"), Duration::from_secs(60)).await;
        assert_eq!(again.unwrap(), Recorded::New);
    }
}
