//! Request counters: `LIMIT#{key}` / `WINDOW#{startMs:013}`, one item per window with its
//! count in `requests` (N), added to by one `UpdateItem` (`ADD`), and the TTL attribute set
//! to the window's end, so that DynamoDB deletes the windows that have ended.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::keys::{limit_pk, window_sk};
use super::{DynamoStore, TTL_ATTRIBUTE, number, number_attr};
use crate::StoreError;
use crate::aws::backend;
use crate::ports::RequestCounters;
use crate::rules::unix_time::unix_seconds;

/// The attribute holding a window's count.
const COUNT_ATTRIBUTE: &str = "requests";

/// A stored count (never negative: only ever added to).
fn count(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{COUNT_ATTRIBUTE} is negative")))
}

impl RequestCounters for DynamoStore {
    async fn count_request(&self, key: &str, window_start_ms: i64, expires_at_ms: i64) -> Result<u64, StoreError> {
        // The TTL is in whole seconds: round up, so that the counter outlives its window.
        let expires_at = unix_seconds(expires_at_ms.saturating_add(999));
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(limit_pk(key)))
            .key("sk", AttributeValue::S(window_sk(window_start_ms)))
            .update_expression("ADD #count :one SET #ttl = :ttl")
            .expression_attribute_names("#count", COUNT_ATTRIBUTE)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":ttl", number(expires_at))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| backend("dynamodb.count_request", e))?;
        count(number_attr(&output.attributes.unwrap_or_default(), COUNT_ATTRIBUTE)?)
    }

    async fn request_count(&self, key: &str, window_start_ms: i64) -> Result<u64, StoreError> {
        let sk = window_sk(window_start_ms);
        match self.get("dynamodb.request_count", limit_pk(key), &sk).await? {
            Some(item) => count(number_attr(&item, COUNT_ATTRIBUTE)?),
            None => Ok(0),
        }
    }
}
