//! Subscriptions already read and unsealed, kept until any subscription row changes.
//!
//! Every delivery reads its subscription with its secrets: a row read, a JSON parse and an
//! unsealing, about a tenth of the CPU of a fan-out delivery, though subscriptions rarely
//! change. Triggers on the `subscriptions` table ([`COUNT_CHANGES`], made by `schema.rs`)
//! count every insert, update and delete in `meta`, whichever connection or process makes
//! it; a read of that count (one small row) tells whether what was opened before still holds.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use rusqlite::Connection;
use webhooks_domain::{SigningSecrets, Subscription};

/// What a read found: the subscription with its secrets, or none.
pub(super) type Opened = Option<(Subscription, SigningSecrets)>;

/// The most subscriptions kept; past it the cache starts again empty.
const CAPACITY: usize = 1024;

/// Counts every change to the `subscriptions` table in `meta`, by triggers, so that what a
/// process keeps is checked against changes made by any connection or process.
pub(super) const COUNT_CHANGES: &str = "
INSERT OR IGNORE INTO meta (key, value) VALUES ('subscription_changes', 0);
CREATE TRIGGER IF NOT EXISTS subscription_inserted AFTER INSERT ON subscriptions BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'subscription_changes'; END;
CREATE TRIGGER IF NOT EXISTS subscription_updated AFTER UPDATE ON subscriptions BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'subscription_changes'; END;
CREATE TRIGGER IF NOT EXISTS subscription_deleted AFTER DELETE ON subscriptions BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'subscription_changes'; END;
";

/// The count of changes to the `subscriptions` table so far.
pub(super) fn changes(conn: &Connection) -> rusqlite::Result<i64> {
    let sql = "SELECT value FROM meta WHERE key = 'subscription_changes'";
    conn.prepare_cached(sql)?.query_row([], |row| row.get(0))
}

/// Opened subscriptions by (merchant, subscription), all valid at one count of changes.
#[derive(Debug, Default)]
pub(super) struct OpenedSubscriptions {
    kept: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    /// The count of changes every entry was read at (or after).
    changes: i64,
    /// By merchant, then subscription.
    entries: HashMap<String, HashMap<String, Opened>>,
    /// How many subscriptions `entries` holds.
    len: usize,
}

impl OpenedSubscriptions {
    /// What was opened for (`merchant_id`, `subscription_id`), if kept since the count of
    /// changes was last `changes`. A different count empties the cache first.
    pub(super) fn get(&self, changes: i64, merchant_id: &str, subscription_id: &str) -> Option<Opened> {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.changes != changes {
            *kept = Kept {
                changes,
                ..Kept::default()
            };
            return None;
        }
        kept.entries.get(merchant_id)?.get(subscription_id).cloned()
    }

    /// Keeps `opened`, read after the count of changes was `changes`, unless the cache has
    /// moved on to another count since.
    pub(super) fn keep(&self, changes: i64, merchant_id: &str, subscription_id: &str, opened: &Opened) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.changes != changes {
            return;
        }
        if kept.len >= CAPACITY {
            *kept = Kept {
                changes,
                ..Kept::default()
            };
        }
        let merchant = kept.entries.entry(merchant_id.to_owned()).or_default();
        if merchant.insert(subscription_id.to_owned(), opened.clone()).is_none() {
            kept.len += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use webhooks_domain::{EndpointHealth, HealthStatus, IsoTime};

    use super::*;
    use crate::embedded::EmbeddedStore;
    use crate::ports::SubscriptionStore;

    fn subscription(id: &str) -> Subscription {
        let at = IsoTime::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        Subscription {
            id: id.into(),
            merchant_id: "m_1".into(),
            url: "https://merchant.example/hook".into(),
            events: vec![webhooks_domain::EventName::PaymentReceived],
            description: String::new(),
            enabled: true,
            rate_limit_per_second: None,
            created_at: at,
            updated_at: at,
            version: 0,
            health: EndpointHealth::default(),
        }
    }

    /// The URL and health `store` reads for `sub_1`, or `None` if it finds none.
    async fn read(store: &EmbeddedStore) -> Option<(String, HealthStatus)> {
        let opened = store.get_subscription_with_secrets("m_1", "sub_1").await.unwrap();
        opened.map(|(found, _)| (found.url, found.health.status))
    }

    #[tokio::test]
    async fn a_change_made_by_any_process_is_read_at_once() {
        let (dir, here) = crate::embedded::open_temporary();
        // Another process with the same file: its own connections and its own cache.
        let elsewhere = EmbeddedStore::open(&dir.path().join("state/local.db")).unwrap();
        let secrets = SigningSecrets::new(None);
        here.create_subscription(&subscription("sub_1"), &secrets)
            .await
            .unwrap();
        let url = "https://merchant.example/hook".to_owned();
        assert_eq!(read(&here).await, Some((url, HealthStatus::Healthy)));
        assert_eq!(
            read(&elsewhere).await.map(|(url, _)| url),
            Some("https://merchant.example/hook".into())
        );

        let moved = Subscription {
            url: "https://merchant.example/moved".into(),
            ..subscription("sub_1")
        };
        elsewhere.update_subscription(&moved, &secrets).await.unwrap();
        let url = "https://merchant.example/moved".to_owned();
        assert_eq!(read(&here).await, Some((url.clone(), HealthStatus::Healthy)));

        let failing = EndpointHealth {
            status: HealthStatus::Disabled,
            ..EndpointHealth::default()
        };
        let clean = EndpointHealth::default();
        assert!(here.record_health("m_1", "sub_1", &clean, &failing).await.unwrap());
        assert_eq!(read(&elsewhere).await, Some((url, HealthStatus::Disabled)));

        assert!(elsewhere.delete_subscription("m_1", "sub_1").await.unwrap());
        assert_eq!(read(&here).await, None);
        here.create_subscription(&subscription("sub_1"), &secrets)
            .await
            .unwrap();
        assert!(read(&here).await.is_some(), "a missing one is not kept once created");
    }

    #[tokio::test]
    async fn what_was_opened_is_read_again_only_once_the_count_moves() {
        let (_dir, store) = crate::embedded::open_temporary();
        let secrets = SigningSecrets::new(None);
        store
            .create_subscription(&subscription("sub_1"), &secrets)
            .await
            .unwrap();
        let first = read(&store).await;
        // A change the triggers do not see (no process makes one): the kept read stands.
        store
            .db
            .call("test.hidden_change", |conn| {
                conn.execute_batch(
                    "DROP TRIGGER subscription_updated; \
                     UPDATE subscriptions SET json = json_set(json, '$.url', 'https://merchant.example/hidden');",
                )?;
                Ok(())
            })
            .unwrap();
        assert_eq!(read(&store).await, first, "served from what was opened");
        store
            .db
            .call("test.count", |conn| {
                let sql = "UPDATE meta SET value = value + 1 WHERE key = 'subscription_changes'";
                Ok(conn.execute(sql, [])?)
            })
            .unwrap();
        let url = read(&store).await.map(|(url, _)| url);
        assert_eq!(url.as_deref(), Some("https://merchant.example/hidden"));
    }

    #[test]
    fn it_keeps_at_most_its_capacity_and_only_what_was_read_at_its_count() {
        let opened = OpenedSubscriptions::default();
        let found: Opened = Some((subscription("sub_x"), SigningSecrets::new(None)));
        assert_eq!(opened.get(7, "m_1", "sub_0"), None, "the count moved from 0 to 7");
        for n in 0..=CAPACITY {
            opened.keep(7, "m_1", &format!("sub_{n}"), &found);
        }
        let kept = opened.kept.lock().unwrap();
        assert_eq!(kept.len, 1, "started again empty when full");
        drop(kept);
        assert_eq!(opened.get(7, "m_1", &format!("sub_{CAPACITY}")), Some(found.clone()));
        opened.keep(6, "m_1", "sub_stale", &found);
        assert_eq!(
            opened.get(7, "m_1", "sub_stale"),
            None,
            "read at an older count: not kept"
        );
        assert_eq!(
            opened.get(8, "m_1", &format!("sub_{CAPACITY}")),
            None,
            "dropped at a new count"
        );
    }
}
