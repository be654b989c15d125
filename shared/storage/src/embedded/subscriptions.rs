//! Subscriptions: the `subscriptions` table, one row per (merchant, id).

use rusqlite::params;
use webhooks_domain::{EventName, Subscription};

use super::EmbeddedStore;
use super::connection::to_json;
use crate::page::{Page, PageRequest};
use crate::ports::SubscriptionStore;
use crate::rules::write_conditions::Precondition;
use crate::{Entity, StoreError};

/// The `events` column of a subscription: `,name,name,`, so that `instr(events, ',name,')`
/// finds one.
fn events_column(subscription: &Subscription) -> String {
    let names: String = subscription.events.iter().map(|event| format!(",{event}")).collect();
    names + ","
}

impl SubscriptionStore for EmbeddedStore {
    async fn create_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let sql = "INSERT OR IGNORE INTO subscriptions (merchant_id, id, enabled, events, json) \
                   VALUES (?1, ?2, ?3, ?4, ?5)";
        let s = subscription;
        let row = params![s.merchant_id, s.id, s.enabled, events_column(s), to_json(s)?];
        let rows = self.db.exec("subscriptions.create", sql, row)?;
        Precondition::Absent(Entity::Subscription).check(rows)
    }

    async fn get_subscription(
        &self,
        merchant_id: &str,
        subscription_id: &str,
    ) -> Result<Option<Subscription>, StoreError> {
        let sql = "SELECT json FROM subscriptions WHERE merchant_id = ?1 AND id = ?2";
        self.db.fetch("subscriptions.get", sql, [merchant_id, subscription_id])
    }

    async fn list_subscriptions(&self, merchant_id: &str, page: PageRequest) -> Result<Page<Subscription>, StoreError> {
        let sql = "SELECT id, json FROM subscriptions WHERE (?1 IS NULL OR id > ?1) AND merchant_id = ?3 \
                   ORDER BY id LIMIT ?2";
        let scope = format!("subscriptions:{merchant_id}");
        self.db.list("subscriptions.list", &scope, &page, sql, &[&merchant_id])
    }

    async fn update_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let sql = "UPDATE subscriptions SET enabled = ?3, events = ?4, json = ?5 WHERE merchant_id = ?1 AND id = ?2";
        let s = subscription;
        let row = params![s.merchant_id, s.id, s.enabled, events_column(s), to_json(s)?];
        let rows = self.db.exec("subscriptions.update", sql, row)?;
        Precondition::Present.check(rows)
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
        let sql = "SELECT id, json FROM subscriptions WHERE (?1 IS NULL OR id > ?1) AND merchant_id = ?3 \
                   AND enabled = 1 AND instr(events, ?4) > 0 ORDER BY id LIMIT ?2";
        let scope = format!("subscriptions-for-event:{merchant_id}:{event}");
        let needle = format!(",{event},");
        self.db
            .list("subscriptions.for_event", &scope, &page, sql, &[&merchant_id, &needle])
    }
}
