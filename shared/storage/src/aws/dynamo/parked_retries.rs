//! Parked retries: the due-time index, `DUE#{shard:02}` / `{dueMs:013}#{taskKey}`
//! (`rules::due_index`), with the task's body in `body`. Read with one `Query` per shard,
//! removed with `BatchWriteItem` (at most 25 deletes a request).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};

use super::keys::due_pk;
use super::{DynamoStore, Item, number, number_attr, string_attr};
use crate::StoreError;
use crate::aws::backend;
use crate::ports::{ParkedRetries, ParkedTask};
use crate::rules::due_index::due_upper_bound;

/// DynamoDB's most write requests in one `BatchWriteItem`.
const MAX_BATCH_WRITE_ITEMS: usize = 25;
/// How many times unprocessed deletes are sent again before the call fails.
const UNPROCESSED_ROUNDS: usize = 3;

/// The item of one parked task.
pub(super) fn parked_item(task: &ParkedTask) -> Item {
    let mut item = HashMap::from([
        ("pk".to_owned(), AttributeValue::S(due_pk(task.shard))),
        ("sk".to_owned(), AttributeValue::S(task.sort_key.clone())),
        ("dueMs".to_owned(), number(task.due_ms)),
        ("body".to_owned(), AttributeValue::S(task.body.clone())),
    ]);
    if let Some(reason) = &task.dead_letter_reason {
        item.insert("deadLetterReason".to_owned(), AttributeValue::S(reason.clone()));
    }
    item
}

impl ParkedRetries for DynamoStore {
    async fn park(&self, task: &ParkedTask) -> Result<(), StoreError> {
        self.put("dynamodb.park", parked_item(task), None).await
    }

    async fn due_tasks(&self, shard: u32, now_ms: i64, limit: usize) -> Result<Vec<ParkedTask>, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk <= :upper")
            .expression_attribute_values(":pk", AttributeValue::S(due_pk(shard)))
            .expression_attribute_values(":upper", AttributeValue::S(due_upper_bound(now_ms)))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("dynamodb.due_tasks", e))?;
        output
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                Ok(ParkedTask {
                    shard,
                    sort_key: string_attr(item, "sk")?.to_owned(),
                    due_ms: number_attr(item, "dueMs")?,
                    body: string_attr(item, "body")?.to_owned(),
                    dead_letter_reason: match item.get("deadLetterReason") {
                        Some(AttributeValue::S(reason)) => Some(reason.clone()),
                        _ => None,
                    },
                })
            })
            .collect()
    }

    async fn unpark(&self, tasks: &[ParkedTask]) -> Result<(), StoreError> {
        let keys: Vec<(String, String)> = tasks
            .iter()
            .map(|task| (due_pk(task.shard), task.sort_key.clone()))
            .collect();
        self.batch_delete("dynamodb.unpark", &keys).await
    }
}

impl DynamoStore {
    /// Deletes the items at `keys` (pk, sk), 25 to a `BatchWriteItem`, sending unprocessed
    /// deletes again up to [`UNPROCESSED_ROUNDS`] times.
    pub(super) async fn batch_delete(&self, op: &'static str, keys: &[(String, String)]) -> Result<(), StoreError> {
        for chunk in keys.chunks(MAX_BATCH_WRITE_ITEMS) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|(pk, sk)| delete_request(op, pk, sk))
                .collect::<Result<_, _>>()?;
            for _ in 0..UNPROCESSED_ROUNDS {
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(|e| backend(op, e))?;
                requests = output
                    .unprocessed_items
                    .and_then(|mut unprocessed| unprocessed.remove(&self.table))
                    .unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
            }
            if !requests.is_empty() {
                return Err(StoreError::backend(
                    op,
                    format!("{} deletes left unprocessed", requests.len()),
                ));
            }
        }
        Ok(())
    }
}

/// The delete of the item at (`pk`, `sk`).
fn delete_request(op: &'static str, pk: &str, sk: &str) -> Result<WriteRequest, StoreError> {
    let delete = DeleteRequest::builder()
        .key("pk", AttributeValue::S(pk.to_owned()))
        .key("sk", AttributeValue::S(sk.to_owned()))
        .build()
        .map_err(|e| StoreError::backend(op, e))?;
    Ok(WriteRequest::builder().delete_request(delete).build())
}
