//! Reads for operators (`webhooks-admin status`), beside the ports: counts over the
//! due-time index and over a subscription's attempt log, in the keys the ports write.

use aws_sdk_dynamodb::types::{AttributeValue, Select};
use webhooks_domain::{AttemptOutcome, DeliveryAttempt};

use super::DynamoStore;
use super::keys::due_pk;
use crate::StoreError;
use crate::aws::backend;
use crate::rules::attempt_key::attempt_key_range;
use crate::rules::due_index::due_upper_bound;

impl DynamoStore {
    /// The tasks parked in due-time shard `shard`: all of them or, with `due_by_ms`, those
    /// due then or earlier. `Select COUNT` queries, page by page.
    pub async fn count_parked(&self, shard: u32, due_by_ms: Option<i64>) -> Result<u64, StoreError> {
        let op = "dynamodb.count_parked";
        let mut total = 0;
        let mut start = None;
        loop {
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .select(Select::Count)
                .expression_attribute_values(":pk", AttributeValue::S(due_pk(shard)))
                .set_exclusive_start_key(start.take());
            let query = match due_by_ms {
                Some(ms) => query
                    .key_condition_expression("pk = :pk AND sk <= :upper")
                    .expression_attribute_values(":upper", AttributeValue::S(due_upper_bound(ms))),
                None => query.key_condition_expression("pk = :pk"),
            };
            let output = query.send().await.map_err(|e| backend(op, e))?;
            total += u64::try_from(output.count).unwrap_or(0);
            start = output.last_evaluated_key.filter(|key| !key.is_empty());
            if start.is_none() {
                return Ok(total);
            }
        }
    }

    /// A subscription's attempts made from `since_ms` (included) to `until_ms` (excluded):
    /// how many, and how many failed. Queries of that key range of its log, page by page.
    pub async fn count_attempts(
        &self,
        merchant_id: &str,
        subscription_id: &str,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<(u64, u64), StoreError> {
        let op = "dynamodb.count_attempts";
        let (first, last) = attempt_key_range(since_ms, until_ms);
        let (mut attempts, mut failed) = (0, 0);
        for pk in self.attempt_log_partitions(merchant_id, subscription_id).await? {
            let mut start = None;
            loop {
                let output = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("pk = :pk AND sk BETWEEN :first AND :last")
                    .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                    .expression_attribute_values(":first", AttributeValue::S(first.clone()))
                    .expression_attribute_values(":last", AttributeValue::S(last.clone()))
                    .projection_expression("#data")
                    .expression_attribute_names("#data", "data")
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| backend(op, e))?;
                for item in output.items() {
                    let Some(AttributeValue::S(data)) = item.get("data") else {
                        return Err(StoreError::Corrupt("an attempt without data".into()));
                    };
                    let attempt: DeliveryAttempt =
                        serde_json::from_str(data).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    attempts += 1;
                    if attempt.outcome == AttemptOutcome::Failed {
                        failed += 1;
                    }
                }
                start = output.last_evaluated_key.filter(|key| !key.is_empty());
                if start.is_none() {
                    break;
                }
            }
        }
        Ok((attempts, failed))
    }
}
