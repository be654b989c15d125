//! The delivery log: attempts (`ATTEMPTS#{merchantId}#{subscriptionId}[#{shard}]` / the
//! shared `rules::attempt_key`, listed by merging the shards) and delivery statuses (`DELIVERY#{eventId}` / `SUB#{id}`), both
//! with the TTL attribute.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use serde::{Deserialize, Serialize};
use webhooks_domain::{DeliveryAttempt, DeliveryStatus};

use super::keys::{delivery_pk, subscription_sk};
use super::parked_retries::parked_item;
use super::{DynamoStore, Item, PageQuery, TTL_ATTRIBUTE, item, number};
use crate::StoreError;
use crate::aws::backend;
use crate::page::{Page, PageRequest};
use crate::ports::{AttemptRecorded, DeliveryLog, HandOff};
use crate::rules::attempt_key::{ATTEMPT_KEY_PREFIX, attempt_sort_key};
use crate::rules::unix_time::now_ms;

/// The status item's condition for recording attempt `:attempt`: `rules::attempt_key::attempt_is_new`.
const ATTEMPT_IS_NEW: &str = "attribute_not_exists(lastAttempt) OR lastAttempt < :attempt";

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
        let pk = self.attempts_pk_for(&attempt.merchant_id, &attempt.subscription_id, &attempt.event_id);
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
            partitions: self.attempt_log_partitions(merchant_id, subscription_id).await?,
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
        // An update, not a put: the highest attempt recorded (`lastAttempt`) stays.
        let record = DeliveryStatusRecord { merchant_id, status };
        let data = serde_json::to_string(&record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(delivery_pk(event_id)))
            .key("sk", AttributeValue::S(subscription_sk(subscription_id)))
            .update_expression("SET #data = :data, #ttl = :ttl")
            .expression_attribute_names("#data", "data")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":data", AttributeValue::S(data))
            .expression_attribute_values(":ttl", self.expires_at(now_ms()))
            .send()
            .await
            .map(drop)
            .map_err(|e| backend("dynamodb.set_delivery_status", e))
    }

    async fn record_attempt_once(
        &self,
        attempt: &DeliveryAttempt,
        status: DeliveryStatus,
        hand_off: Option<&HandOff>,
    ) -> Result<AttemptRecorded, StoreError> {
        let op = "dynamodb.record_attempt_once";
        let expires_at = self.expires_at(now_ms());
        let pk = self.attempts_pk_for(&attempt.merchant_id, &attempt.subscription_id, &attempt.event_id);
        let mut attempt_item = item(pk, attempt_sort_key(attempt), attempt)?;
        attempt_item.insert(TTL_ATTRIBUTE.into(), expires_at.clone());
        let record = DeliveryStatusRecord {
            merchant_id: &attempt.merchant_id,
            status,
        };
        let mut status_item = item(
            delivery_pk(&attempt.event_id),
            subscription_sk(&attempt.subscription_id),
            &record,
        )?;
        status_item.insert(TTL_ATTRIBUTE.into(), expires_at);
        status_item.insert("lastAttempt".into(), number(i64::from(attempt.attempt)));
        let put = |item: Item, condition: Option<&str>| {
            let put = Put::builder().table_name(&self.table).set_item(Some(item));
            let put = match condition {
                Some(condition) => put
                    .condition_expression(condition)
                    .expression_attribute_values(":attempt", number(i64::from(attempt.attempt))),
                None => put,
            };
            put.build()
                .map(|put| TransactWriteItem::builder().put(put).build())
                .map_err(|e| StoreError::backend(op, e))
        };
        // The status item, with the condition, is the first write: its reason comes first.
        let mut items = vec![put(status_item, Some(ATTEMPT_IS_NEW))?, put(attempt_item, None)?];
        if let Some(hand_off) = hand_off {
            items.push(put(parked_item(&hand_off.parked()), None)?);
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let Err(e) = result else {
            return Ok(AttemptRecorded::Recorded);
        };
        let status_refused = match e.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => cancelled
                .cancellation_reasons()
                .first()
                .is_some_and(|reason| reason.code() == Some("ConditionalCheckFailed")),
            _ => false,
        };
        match status_refused {
            true => Ok(AttemptRecorded::AlreadyRecorded),
            false => Err(backend(op, e)),
        }
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
