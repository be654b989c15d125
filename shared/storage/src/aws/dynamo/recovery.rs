//! Recovery's claims (`rules::recovery`): a `Query` of each shard of the subscription's
//! attempt log in the window (keys only, oldest first, merged), one consistent `BatchGetItem` of the statuses of the
//! deliveries first attempted there, then an `UpdateItem` per delivery taken, conditional
//! on the status item's `data` being what was read (a compare-and-swap: of recoveries
//! running at once, exactly one claims it).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use serde::Deserialize;
use serde_json::{Map, Value};
use webhooks_domain::DeliveryStatus;

use super::keys::{delivery_pk, subscription_sk};
use super::sharded_reads::ShardedRange;
use super::{DynamoStore, Item, TTL_ATTRIBUTE, condition_failed, number_attr, string_attr};
use crate::StoreError;
use crate::aws::backend;
use crate::ports::{ClaimedDelivery, DeliveryRecovery, LogPosition, RecoveryPage, RecoveryScope};
use crate::rules::attempt_key::attempt_key_range;
use crate::rules::recovery::{CLAIMED, StoredStatus, claim, first_attempts, position_after};
use crate::rules::unix_time::now_ms;

/// The operation name in errors.
const OP: &str = "dynamodb.claim_for_recovery";
/// DynamoDB's most keys in one `BatchGetItem`.
const MAX_BATCH_GET_KEYS: usize = 100;
/// How many times unprocessed keys are asked for again before the call fails.
const UNPROCESSED_ROUNDS: usize = 3;

/// What a claim reads of a status item's `data`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusData {
    merchant_id: String,
    status: DeliveryStatus,
}

impl DeliveryRecovery for DynamoStore {
    async fn claim_for_recovery(
        &self,
        scope: &RecoveryScope<'_>,
        after: Option<&LogPosition>,
        limit: usize,
    ) -> Result<RecoveryPage, StoreError> {
        let (mut keys, more) = self.window_keys(scope, after, limit).await?;
        keys.truncate(limit);
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let events = first_attempts(&keys)?;
        let statuses = self.statuses(scope.subscription_id, &events).await?;
        let mut claimed = Vec::new();
        for event_id in events {
            let Some(item) = statuses.get(&delivery_pk(event_id)) else {
                continue;
            };
            let read = string_attr(item, "data")?;
            let data: StatusData = serde_json::from_str(read).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let last_attempt = match item.get("lastAttempt") {
                Some(_) => u32::try_from(number_attr(item, "lastAttempt")?).unwrap_or(0),
                None => 0,
            };
            let stored = StoredStatus {
                merchant_id: &data.merchant_id,
                status: data.status,
                last_attempt,
            };
            if let Some(claim) = claim(scope, event_id, &stored)
                && self.take(scope.subscription_id, &claim, read).await?
            {
                claimed.push(claim);
            }
        }
        let next = position_after(keys.last().copied().filter(|_| more))?;
        Ok(RecoveryPage { claimed, next })
    }
}

impl DynamoStore {
    /// Up to `limit` + 1 attempt keys of the window after `after`, oldest first, and
    /// whether the window goes on past the first `limit`: the log's shards merged.
    async fn window_keys(
        &self,
        scope: &RecoveryScope<'_>,
        after: Option<&LogPosition>,
        limit: usize,
    ) -> Result<(Vec<String>, bool), StoreError> {
        let partitions = self
            .attempt_log_partitions(scope.merchant_id, scope.subscription_id)
            .await?;
        let (first, last) = attempt_key_range(scope.since_ms, scope.until_ms);
        let range = ShardedRange {
            op: OP,
            partitions: &partitions,
            first: &first,
            last: &last,
            after: after.map(LogPosition::sort_key),
            projection: Some("sk"),
            consistent: false,
        };
        let page = self.read_sharded_range(&range, limit).await?;
        let keys = page
            .items
            .iter()
            .map(|(_, item)| string_attr(item, "sk").map(str::to_owned))
            .collect::<Result<_, _>>()?;
        Ok((keys, page.more))
    }

    /// The status items of the deliveries of `event_ids` to the subscription, read
    /// consistently, by partition key (absent ones left out).
    async fn statuses(&self, subscription_id: &str, event_ids: &[&str]) -> Result<HashMap<String, Item>, StoreError> {
        let mut found = HashMap::new();
        for chunk in event_ids.chunks(MAX_BATCH_GET_KEYS) {
            let keys = chunk
                .iter()
                .map(|event_id| {
                    HashMap::from([
                        ("pk".to_owned(), AttributeValue::S(delivery_pk(event_id))),
                        ("sk".to_owned(), AttributeValue::S(subscription_sk(subscription_id))),
                    ])
                })
                .collect();
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .projection_expression("pk, #data, lastAttempt")
                .expression_attribute_names("#data", "data")
                .build()
                .map_err(|e| StoreError::backend(OP, e))?;
            for round in 1.. {
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| backend(OP, e))?;
                for item in output
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    found.insert(string_attr(&item, "pk")?.to_owned(), item);
                }
                match output.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                    Some(left) if !left.keys().is_empty() && round <= UNPROCESSED_ROUNDS => request = left,
                    Some(left) if !left.keys().is_empty() => {
                        let message = format!("{} status reads left unprocessed", left.keys().len());
                        return Err(StoreError::backend(OP, message));
                    }
                    _ => break,
                }
            }
        }
        Ok(found)
    }

    /// Claims one delivery: its status becomes [`CLAIMED`] if its `data` is still `read`;
    /// whether it was.
    async fn take(&self, subscription_id: &str, claim: &ClaimedDelivery, read: &str) -> Result<bool, StoreError> {
        // Only the status changes: whatever else `data` holds is kept.
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
        let mut data: Map<String, Value> = serde_json::from_str(read).map_err(corrupt)?;
        data.insert("status".to_owned(), serde_json::to_value(CLAIMED).map_err(corrupt)?);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(delivery_pk(&claim.event_id)))
            .key("sk", AttributeValue::S(subscription_sk(subscription_id)))
            .update_expression("SET #data = :claimed, #ttl = :ttl")
            .condition_expression("#data = :read")
            .expression_attribute_names("#data", "data")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":claimed", AttributeValue::S(Value::Object(data).to_string()))
            .expression_attribute_values(":read", AttributeValue::S(read.to_owned()))
            .expression_attribute_values(":ttl", self.expires_at(now_ms()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(backend(OP, e)),
        }
    }
}
