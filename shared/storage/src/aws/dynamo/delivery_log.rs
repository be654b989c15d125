//! The delivery log: attempts (`ATTEMPTS#{merchantId}#{subscriptionId}` / the shared
//! `rules::attempt_key`) and delivery statuses (`DELIVERY#{eventId}` / `SUB#{id}`), both
//! with the TTL attribute.

use serde::{Deserialize, Serialize};
use webhooks_domain::{DeliveryAttempt, DeliveryStatus};

use super::keys::{attempts_pk, delivery_pk, subscription_sk};
use super::{DynamoStore, PageQuery, TTL_ATTRIBUTE, item};
use crate::StoreError;
use crate::page::{Page, PageRequest};
use crate::ports::DeliveryLog;
use crate::rules::attempt_key::{ATTEMPT_KEY_PREFIX, attempt_sort_key};
use crate::rules::unix_time::now_ms;

/// The `data` of a delivery status item.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryStatusRecord<'a> {
    merchant_id: &'a str,
    status: DeliveryStatus,
}

/// What is read back of a delivery status item's `data`.
#[derive(Deserialize)]
struct StoredDeliveryStatus {
    status: DeliveryStatus,
}

impl DeliveryLog for DynamoStore {
    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> Result<(), StoreError> {
        let pk = attempts_pk(&attempt.merchant_id, &attempt.subscription_id);
        let mut new = item(pk, attempt_sort_key(attempt), attempt)?;
        new.insert(TTL_ATTRIBUTE.into(), self.expires_at(now_ms()));
        self.put("dynamodb.record_attempt", new, None).await
    }

    async fn list_attempts(
        &self,
        merchant_id: &str,
        subscription_id: &str,
        page: PageRequest,
    ) -> Result<Page<DeliveryAttempt>, StoreError> {
        let scope = format!("attempts:{merchant_id}:{subscription_id}");
        let query = PageQuery {
            op: "dynamodb.list_attempts",
            scope: &scope,
            pk: attempts_pk(merchant_id, subscription_id),
            sk_prefix: ATTEMPT_KEY_PREFIX,
            forward: false,
            filter: None,
        };
        self.query_page(query, &page).await
    }

    async fn set_delivery_status(
        &self,
        merchant_id: &str,
        event_id: &str,
        subscription_id: &str,
        status: DeliveryStatus,
    ) -> Result<(), StoreError> {
        let record = DeliveryStatusRecord { merchant_id, status };
        let mut new = item(delivery_pk(event_id), subscription_sk(subscription_id), &record)?;
        new.insert(TTL_ATTRIBUTE.into(), self.expires_at(now_ms()));
        self.put("dynamodb.set_delivery_status", new, None).await
    }

    async fn delivery_status(
        &self,
        event_id: &str,
        subscription_id: &str,
    ) -> Result<Option<DeliveryStatus>, StoreError> {
        let sk = subscription_sk(subscription_id);
        let record: Option<StoredDeliveryStatus> = self
            .get_data("dynamodb.delivery_status", delivery_pk(event_id), &sk)
            .await?;
        Ok(record.map(|r| r.status))
    }
}
