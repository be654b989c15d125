//! Failing endpoints: probe slots `PROBE#{endpoint}` / `SLOT#{n}` and the release lease
//! `PROBE#{endpoint}` / `RELEASE` (`lease`, `leaseUntil`), and held deliveries
//! `HELD#{endpoint}[#{shard}]` / `{heldAtMs:013}#{taskKey}` (`body`, TTL), spread over the
//! subscription shards by their sort key and read by merging the shards, oldest first.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::keys::{held_pk, probe_pk};
use super::sharded_reads::ShardedRange;
use super::{DynamoStore, condition_failed, number, number_attr, string_attr};
use crate::StoreError;
use crate::aws::backend;
use crate::ports::{EndpointBreaker, HeldTask};
use crate::rules::due_index::{due_lower_bound, due_upper_bound};
use crate::rules::shard::shard_of;

/// What the sort key of every probe slot begins with (`SLOT#{n}`).
const SLOT_PREFIX: &str = "SLOT#";
/// The sort key of the endpoint's release lease, beside its probe slots.
const RELEASE_LEASE_SK: &str = "RELEASE";

impl DynamoStore {
    /// Puts the lease item `sk` of the endpoint for `lease` if it is absent or ran out.
    async fn take_lease(
        &self,
        endpoint: &str,
        sk: &str,
        lease: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(probe_pk(endpoint)))
            .item("sk", AttributeValue::S(sk.to_owned()))
            .item("lease", AttributeValue::S(lease.to_owned()))
            .item("leaseUntil", number(until_ms))
            .condition_expression("attribute_not_exists(pk) OR leaseUntil <= :now")
            .expression_attribute_values(":now", number(now_ms))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if condition_failed(&error) => Ok(false),
            Err(error) => Err(backend("dynamodb.take_lease", error)),
        }
    }

    /// Deletes the lease item `sk` of the endpoint if `lease` still holds it.
    async fn end_lease(&self, endpoint: &str, sk: &str, lease: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(probe_pk(endpoint)))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .condition_expression("lease = :lease")
            .expression_attribute_values(":lease", AttributeValue::S(lease.to_owned()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if condition_failed(&error) => Ok(()),
            Err(error) => Err(backend("dynamodb.end_lease", error)),
        }
    }
}

impl EndpointBreaker for DynamoStore {
    async fn take_probe_slot(
        &self,
        endpoint: &str,
        slots: u32,
        lease: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        // Read first (eventually consistent, half a read unit): a busy endpoint's slots are
        // nearly always taken, and a refused conditional put still costs a write unit on a
        // partition every container of a failing endpoint comes to. A slot read as free
        // that was taken meanwhile is refused by the put's condition.
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :slots)")
            .expression_attribute_values(":pk", AttributeValue::S(probe_pk(endpoint)))
            .expression_attribute_values(":slots", AttributeValue::S(SLOT_PREFIX.to_owned()))
            .projection_expression("sk, leaseUntil")
            .send()
            .await
            .map_err(|e| backend("dynamodb.take_probe_slot", e))?;
        let mut taken = Vec::new();
        for item in output.items() {
            if number_attr(item, "leaseUntil")? > now_ms {
                taken.push(string_attr(item, "sk")?.to_owned());
            }
        }
        for slot in (0..slots).map(|slot| format!("{SLOT_PREFIX}{slot}")) {
            if !taken.contains(&slot) && self.take_lease(endpoint, &slot, lease, now_ms, until_ms).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn release_probe_slot(&self, endpoint: &str, lease: &str) -> Result<(), StoreError> {
        // The slot is not known: the one this lease holds is found by a query of the few.
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :slots)")
            .filter_expression("lease = :lease")
            .expression_attribute_values(":pk", AttributeValue::S(probe_pk(endpoint)))
            .expression_attribute_values(":slots", AttributeValue::S(SLOT_PREFIX.to_owned()))
            .expression_attribute_values(":lease", AttributeValue::S(lease.to_owned()))
            .send()
            .await
            .map_err(|e| backend("dynamodb.release_probe_slot", e))?;
        for item in output.items.unwrap_or_default() {
            self.end_lease(endpoint, string_attr(&item, "sk")?, lease).await?;
        }
        Ok(())
    }

    async fn hold(&self, endpoint: &str, task: &HeldTask, now_ms: i64) -> Result<(), StoreError> {
        let shard = shard_of(&task.sort_key, self.subscription_shards);
        let item = HashMap::from([
            ("pk".to_owned(), AttributeValue::S(held_pk(endpoint, shard))),
            ("sk".to_owned(), AttributeValue::S(task.sort_key.clone())),
            ("body".to_owned(), AttributeValue::S(task.body.clone())),
            ("expiresAt".to_owned(), self.expires_at(now_ms)),
        ]);
        self.put("dynamodb.hold", item, None).await
    }

    async fn take_release_lease(
        &self,
        endpoint: &str,
        lease: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        self.take_lease(endpoint, RELEASE_LEASE_SK, lease, now_ms, until_ms)
            .await
    }

    async fn end_release_lease(&self, endpoint: &str, lease: &str) -> Result<(), StoreError> {
        self.end_lease(endpoint, RELEASE_LEASE_SK, lease).await
    }

    async fn held_tasks(
        &self,
        endpoint: &str,
        since_ms: i64,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<HeldTask>, StoreError> {
        let partitions: Vec<String> = (0..self.shards_in_use().await?)
            .map(|shard| held_pk(endpoint, shard))
            .collect();
        let (first, last) = (due_lower_bound(since_ms), due_upper_bound(until_ms - 1));
        let range = ShardedRange {
            op: "dynamodb.held_tasks",
            partitions: &partitions,
            first: &first,
            last: &last,
            after: None,
            projection: None,
            consistent: true,
        };
        let mut page = self.read_sharded_range(&range, limit).await?;
        page.items.truncate(limit);
        page.items
            .iter()
            .map(|(shard, item)| {
                Ok(HeldTask {
                    sort_key: string_attr(item, "sk")?.to_owned(),
                    body: string_attr(item, "body")?.to_owned(),
                    shard: u32::try_from(*shard).ok(),
                })
            })
            .collect()
    }

    async fn unhold(&self, endpoint: &str, tasks: &[HeldTask]) -> Result<(), StoreError> {
        // Where it was read from; else where this store would have held it.
        let keys: Vec<(String, String)> = tasks
            .iter()
            .map(|task| {
                let shard = task
                    .shard
                    .unwrap_or_else(|| shard_of(&task.sort_key, self.subscription_shards));
                (held_pk(endpoint, shard), task.sort_key.clone())
            })
            .collect();
        self.batch_delete("dynamodb.unhold", &keys).await
    }
}
