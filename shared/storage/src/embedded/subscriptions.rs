//! Subscriptions: the `subscriptions` table, one row per (merchant, id).

use rusqlite::params;
use serde_json::Value;
use webhooks_domain::{EndpointHealth, EventName, SigningSecrets, Subscription};

use super::EmbeddedStore;
use super::connection::to_json;
use super::opened_subscriptions::{self, Opened};
use crate::page::{Page, PageRequest};
use crate::ports::SubscriptionStore;
use crate::rules::write_conditions::{Precondition, VersionedReplace};
use crate::sealed;
use crate::{Entity, StoreError};

/// A row's document with its endpoint health (the `health` column) put in, as selected.
const DOCUMENT: &str = "CASE WHEN health IS NULL THEN json ELSE json_set(json, '$.health', json(health)) END";

/// The `events` column of a subscription: `,name,name,`, so that `instr(events, ',name,')`
/// finds one.
fn events_column(subscription: &Subscription) -> String {
    let names: String = subscription.events.iter().map(|event| format!(",{event}")).collect();
    names + ","
}

impl SubscriptionStore for EmbeddedStore {
    async fn create_subscription(
        &self,
        subscription: &Subscription,
        secrets: &SigningSecrets,
    ) -> Result<(), StoreError> {
        let sql = "INSERT OR IGNORE INTO subscriptions (merchant_id, id, enabled, events, json) \
                   VALUES (?1, ?2, ?3, ?4, ?5)";
        let s = subscription;
        let document = sealed::subscription_document(&self.keyring, s, secrets).await?;
        let row = params![s.merchant_id, s.id, s.enabled, events_column(s), to_json(&document)?];
        let rows = self.db.exec("subscriptions.create", sql, row)?;
        Precondition::Absent(Entity::Subscription).check(rows)
    }

    async fn get_subscription(
        &self,
        merchant_id: &str,
        subscription_id: &str,
    ) -> Result<Option<Subscription>, StoreError> {
        let sql = format!("SELECT {DOCUMENT} FROM subscriptions WHERE merchant_id = ?1 AND id = ?2");
        self.db.fetch("subscriptions.get", &sql, [merchant_id, subscription_id])
    }

    async fn get_subscription_with_secrets(
        &self,
        merchant_id: &str,
        subscription_id: &str,
    ) -> Result<Option<(Subscription, SigningSecrets)>, StoreError> {
        let changes = self.subscription_changes()?;
        self.opened_at(changes, merchant_id, subscription_id).await
    }

    async fn get_subscriptions_with_secrets(&self, keys: &[(String, String)]) -> Result<Vec<Opened>, StoreError> {
        // One look at the count for all of them, as if all were read at once.
        let changes = self.subscription_changes()?;
        let mut found = Vec::with_capacity(keys.len());
        for (merchant_id, subscription_id) in keys {
            found.push(self.opened_at(changes, merchant_id, subscription_id).await?);
        }
        Ok(found)
    }

    async fn list_subscriptions(&self, merchant_id: &str, page: PageRequest) -> Result<Page<Subscription>, StoreError> {
        let sql = format!(
            "SELECT id, {DOCUMENT} FROM subscriptions WHERE (?1 IS NULL OR id > ?1) AND merchant_id = ?3 \
             ORDER BY id LIMIT ?2"
        );
        let scope = format!("subscriptions:{merchant_id}");
        self.db.list("subscriptions.list", &scope, &page, &sql, &[&merchant_id])
    }

    async fn update_subscription(
        &self,
        subscription: &Subscription,
        secrets: &SigningSecrets,
    ) -> Result<(), StoreError> {
        // The version lives in the JSON; one stored before versions has none and is at 0.
        let update = "UPDATE subscriptions SET enabled = ?3, events = ?4, json = ?5 \
                      WHERE merchant_id = ?1 AND id = ?2 AND ifnull(json_extract(json, '$.version'), 0) = ?6";
        let exists = "SELECT EXISTS (SELECT 1 FROM subscriptions WHERE merchant_id = ?1 AND id = ?2)";
        let replace = VersionedReplace::of(subscription);
        let read = i64::try_from(replace.read).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let s = &replace.next;
        let document = sealed::subscription_document(&self.keyring, s, secrets).await?;
        let row = params![
            s.merchant_id,
            s.id,
            s.enabled,
            events_column(s),
            to_json(&document)?,
            read
        ];
        self.db.call("subscriptions.update", |conn| {
            if conn.prepare_cached(update)?.execute(row)? > 0 {
                return Ok(());
            }
            let exists = conn
                .prepare_cached(exists)?
                .query_row([&s.merchant_id, &s.id], |row| row.get(0))?;
            Err(replace.refused(exists).into())
        })
    }

    async fn record_health(
        &self,
        merchant_id: &str,
        subscription_id: &str,
        read: &EndpointHealth,
        next: &EndpointHealth,
    ) -> Result<bool, StoreError> {
        // A row that never failed has no health: it is at the clean one.
        let sql = "UPDATE subscriptions SET health = ?3 WHERE merchant_id = ?1 AND id = ?2 \
                   AND ifnull(health, ?5) = ?4";
        let clean = to_json(&EndpointHealth::default())?;
        let row = params![merchant_id, subscription_id, to_json(next)?, to_json(read)?, clean];
        Ok(self.db.exec("subscriptions.record_health", sql, row)? > 0)
    }

    async fn delete_subscription(&self, merchant_id: &str, subscription_id: &str) -> Result<bool, StoreError> {
        let sql = "DELETE FROM subscriptions WHERE merchant_id = ?1 AND id = ?2";
        Ok(self
            .db
            .exec("subscriptions.delete", sql, [merchant_id, subscription_id])?
            > 0)
    }

    async fn subscriptions_for_event(
        &self,
        merchant_id: &str,
        event: EventName,
        page: PageRequest,
    ) -> Result<Page<Subscription>, StoreError> {
        let sql = format!(
            "SELECT id, {DOCUMENT} FROM subscriptions WHERE (?1 IS NULL OR id > ?1) AND merchant_id = ?3 \
             AND enabled = 1 AND instr(events, ?4) > 0 ORDER BY id LIMIT ?2"
        );
        let scope = format!("subscriptions-for-event:{merchant_id}:{event}");
        let needle = format!(",{event},");
        self.db
            .list("subscriptions.for_event", &scope, &page, &sql, &[&merchant_id, &needle])
    }
}

impl EmbeddedStore {
    /// The count of changes to subscriptions so far ([`opened_subscriptions::changes`]).
    fn subscription_changes(&self) -> Result<i64, StoreError> {
        self.db
            .read("subscriptions.changes", |conn| Ok(opened_subscriptions::changes(conn)?))
    }

    /// A subscription with its opened secrets: as opened before if no subscription changed
    /// since, with the count of changes read at `changes`; read and opened otherwise.
    async fn opened_at(&self, changes: i64, merchant_id: &str, subscription_id: &str) -> Result<Opened, StoreError> {
        let kept = &self.opened_subscriptions;
        if let Some(opened) = kept.get(changes, merchant_id, subscription_id) {
            return Ok(opened);
        }
        // Read after the count: a change committed in between has moved the count on, so
        // the next read drops what this one keeps.
        let sql = format!("SELECT {DOCUMENT} FROM subscriptions WHERE merchant_id = ?1 AND id = ?2");
        let document: Option<Value> = self
            .db
            .fetch("subscriptions.get", &sql, [merchant_id, subscription_id])?;
        let opened = match document {
            Some(document) => Some(sealed::open_subscription(&self.keyring, &document).await?),
            None => None,
        };
        kept.keep(changes, merchant_id, subscription_id, &opened);
        Ok(opened)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_row_stored_before_versions_and_sealing_is_at_version_0_and_its_first_write_seals_it() {
        let (_dir, store) = crate::embedded::open_temporary();
        let legacy = r#"{"id":"sub_1","merchantId":"m_1","url":"https://merchant.example/hook",
            "events":["payment_received"],"description":"","enabled":true,
            "createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:00Z",
            "secrets":{"current":"old-secret-0123456789"}}"#;
        let sql = "INSERT INTO subscriptions (merchant_id, id, enabled, events, json) \
                   VALUES ('m_1', 'sub_1', 1, ',payment_received,', ?1)";
        store.db.exec("test.insert_legacy", sql, [legacy]).unwrap();

        let (read, secrets) = store
            .get_subscription_with_secrets("m_1", "sub_1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((read.version, secrets.current.as_str()), (0, "old-secret-0123456789"));
        let changed = Subscription {
            enabled: false,
            ..read.clone()
        };
        store.update_subscription(&changed, &secrets).await.unwrap();
        assert_eq!(
            store.get_subscription_with_secrets("m_1", "sub_1").await.unwrap(),
            Some((Subscription { version: 1, ..changed }, secrets.clone()))
        );
        assert_eq!(
            store.update_subscription(&read, &secrets).await,
            Err(StoreError::VersionConflict)
        );
        // The write sealed the secrets it found in clear.
        let stored: String = store
            .db
            .call("test.read_raw", |conn| {
                Ok(conn.query_row("SELECT json FROM subscriptions", [], |row| row.get(0))?)
            })
            .unwrap();
        assert!(!stored.contains("old-secret-0123456789"), "{stored}");
    }
}
