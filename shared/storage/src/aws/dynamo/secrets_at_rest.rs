//! Re-sealing a merchant's secrets: each item's `data` swapped only if it is still the
//! document read (a condition on `data`).

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

use super::keys::{AUTH_CALLBACK_SK, SUBSCRIPTION_PREFIX, merchant_pk, subscription_sk};
use super::{DynamoStore, PageQuery, backend, condition_failed};
use crate::page::PageRequest;
use crate::ports::SecretsAtRest;
use crate::{StoreError, sealed};

/// Subscriptions read per query while re-sealing.
const RESEAL_PAGE: usize = 100;

impl DynamoStore {
    /// Replaces the `data` of the item at (`pk`, `sk`) with `new` if it is still `old`;
    /// whether it was.
    async fn swap_data(&self, pk: String, sk: String, old: &Value, new: &Value) -> Result<bool, StoreError> {
        const OP: &str = "dynamodb.reseal";
        let json = |value: &Value| serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()));
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk))
            .key("sk", AttributeValue::S(sk))
            .update_expression("SET #data = :new")
            .condition_expression("#data = :old")
            .expression_attribute_names("#data", "data")
            .expression_attribute_values(":new", AttributeValue::S(json(new)?))
            .expression_attribute_values(":old", AttributeValue::S(json(old)?))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if condition_failed(&error) => Ok(false),
            Err(error) => Err(backend(OP, error)),
        }
    }
}

impl SecretsAtRest for DynamoStore {
    async fn reseal_merchant(&self, merchant_id: &str) -> Result<usize, StoreError> {
        let mut resealed = 0;
        let mut page = PageRequest::first(RESEAL_PAGE);
        let scope = format!("reseal:{merchant_id}");
        loop {
            let query = PageQuery {
                op: "dynamodb.reseal_list",
                scope: &scope,
                partitions: vec![merchant_pk(merchant_id)],
                sk_prefix: SUBSCRIPTION_PREFIX,
                forward: true,
                filter: None,
            };
            let documents = self.query_page::<Value>(query, &page).await?;
            for old in &documents.items {
                let id = sealed::subscription(old)?.id;
                let new = sealed::reseal_subscription(&self.keyring, old).await?;
                let swapped = self
                    .swap_data(merchant_pk(merchant_id), subscription_sk(&id), old, &new)
                    .await?;
                resealed += usize::from(swapped);
            }
            match documents.next_cursor {
                Some(cursor) => page.cursor = Some(cursor),
                None => break,
            }
        }
        let config: Option<Value> = self
            .get_data("dynamodb.reseal_get", merchant_pk(merchant_id), AUTH_CALLBACK_SK)
            .await?;
        if let Some(old) = config {
            let new = sealed::reseal_auth_callback(&self.keyring, merchant_id, &old).await?;
            let swapped = self
                .swap_data(merchant_pk(merchant_id), AUTH_CALLBACK_SK.to_owned(), &old, &new)
                .await?;
            resealed += usize::from(swapped);
        }
        Ok(resealed)
    }
}
