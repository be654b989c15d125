//! Failing endpoints: probe slots `PROBE#{endpoint}` / `SLOT#{n}` and the release lease
//! `PROBE#{endpoint}` / `RELEASE` (`lease`, `leaseUntil`), and held deliveries `HELD#{endpoint}` / `{heldAtMs:013}#{taskKey}` (`body`, TTL).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::keys::{held_pk, probe_pk};
use super::{DynamoStore, condition_failed, number, string_attr};
use crate::StoreError;
use crate::aws::backend;
use crate::ports::{EndpointBreaker, HeldTask};
use crate::rules::due_index::{due_lower_bound, due_upper_bound};

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
        // A conditional put per slot until one is free: at most `slots` writes.
        for slot in 0..slots {
            if self
                .take_lease(endpoint, &format!("SLOT#{slot}"), lease, now_ms, until_ms)
                .await?
            {
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
            .expression_attribute_values(":slots", AttributeValue::S("SLOT#".to_owned()))
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
        let item = HashMap::from([
            ("pk".to_owned(), AttributeValue::S(held_pk(endpoint))),
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
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :first AND :last")
            .expression_attribute_values(":pk", AttributeValue::S(held_pk(endpoint)))
            .expression_attribute_values(":first", AttributeValue::S(due_lower_bound(since_ms)))
            .expression_attribute_values(":last", AttributeValue::S(due_upper_bound(until_ms - 1)))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("dynamodb.held_tasks", e))?;
        output
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                Ok(HeldTask {
                    sort_key: string_attr(item, "sk")?.to_owned(),
                    body: string_attr(item, "body")?.to_owned(),
                })
            })
            .collect()
    }

    async fn unhold(&self, endpoint: &str, tasks: &[HeldTask]) -> Result<(), StoreError> {
        let keys: Vec<(String, String)> = tasks
            .iter()
            .map(|task| (held_pk(endpoint), task.sort_key.clone()))
            .collect();
        self.batch_delete("dynamodb.unhold", &keys).await
    }
}
