//! The table itself: creating it with its TTL, the cursor key every process shares, and
//! how many shards each subscription's attempt log and held deliveries are spread over.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};

use super::{Item, NOT_EXISTS, TTL_ATTRIBUTE, condition_failed};
use crate::StoreError;
use crate::aws::backend;

/// Loads the cursor key (`CONFIG` / `CURSOR_KEY`), creating it if no process has yet.
pub(super) async fn load_or_create_cursor_key(client: &Client, table: &str) -> Result<Vec<u8>, StoreError> {
    let op = "dynamodb.cursor_key";
    let key_of = |item: Option<Item>| match item.as_ref().and_then(|i| i.get("key")) {
        Some(AttributeValue::B(blob)) => Some(blob.as_ref().to_vec()),
        _ => None,
    };
    let read = || async {
        let output = client
            .get_item()
            .table_name(table)
            .key("pk", AttributeValue::S("CONFIG".into()))
            .key("sk", AttributeValue::S("CURSOR_KEY".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(op, e))?;
        Ok::<_, StoreError>(key_of(output.item))
    };
    if let Some(key) = read().await? {
        return Ok(key);
    }
    let mut fresh = uuid::Uuid::new_v4().as_bytes().to_vec();
    fresh.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    let created = client
        .put_item()
        .table_name(table)
        .item("pk", AttributeValue::S("CONFIG".into()))
        .item("sk", AttributeValue::S("CURSOR_KEY".into()))
        .item("key", AttributeValue::B(Blob::new(fresh.clone())))
        .condition_expression(NOT_EXISTS)
        .send()
        .await;
    match created {
        Ok(_) => Ok(fresh),
        // Another process created it first: use theirs.
        Err(e) if condition_failed(&e) => read()
            .await?
            .ok_or_else(|| StoreError::Corrupt("cursor key vanished".into())),
        Err(e) => Err(backend(op, e)),
    }
}

/// Creates the table (pay per request, TTL on `expiresAt`) unless it exists.
pub(crate) async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let op = "dynamodb.CreateTable";
    let key = |name: &str, key_type| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .map_err(|e| StoreError::backend(op, e))
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| StoreError::backend(op, e))
    };
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .attribute_definitions(attribute("pk")?)
        .attribute_definitions(attribute("sk")?)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => return Ok(()),
        Err(e) => return Err(backend(op, e)),
    }
    let ttl = TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name(TTL_ATTRIBUTE)
        .build()
        .map_err(|e| StoreError::backend(op, e))?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(ttl)
        .send()
        .await
        .map_err(|e| backend("dynamodb.UpdateTimeToLive", e))?;
    Ok(())
}

/// The key of the item that holds how many shards each subscription's attempt log and held
/// deliveries are written to.
fn subscription_shards_key() -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S("CONFIG".into())),
        ("sk".to_owned(), AttributeValue::S("SUBSCRIPTION_SHARDS".into())),
    ])
}

/// The number stored in `shards` of a `CONFIG` / `SUBSCRIPTION_SHARDS` item, 1 if none.
fn shards_of(item: Option<&Item>) -> Result<u32, StoreError> {
    match item.and_then(|item| item.get("shards")) {
        None => Ok(1),
        Some(AttributeValue::N(text)) => text
            .parse::<u32>()
            .ok()
            .filter(|&shards| shards >= 1)
            .ok_or_else(|| StoreError::Corrupt(format!("subscription shards {text:?}"))),
        Some(_) => Err(StoreError::Corrupt("subscription shards not a number".into())),
    }
}

/// How many shards the table's attempt logs and held deliveries may be spread over: the most any writer was
/// started with (`CONFIG` / `SUBSCRIPTION_SHARDS`), 1 before any was. Readers query that
/// many, so that what a writer with a higher count wrote is found.
pub(super) async fn subscription_shards(client: &Client, table: &str) -> Result<u32, StoreError> {
    let output = client
        .get_item()
        .table_name(table)
        .set_key(Some(subscription_shards_key()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| backend("dynamodb.subscription_shards", e))?;
    shards_of(output.item.as_ref())
}

/// Raises the table's subscription shard count to `shards` before a writer spreads over
/// that many; never lowers it (a lower count would hide the shards above it from readers).
/// The count in force afterwards.
pub(super) async fn raise_subscription_shards(client: &Client, table: &str, shards: u32) -> Result<u32, StoreError> {
    let op = "dynamodb.raise_subscription_shards";
    let raised = client
        .update_item()
        .table_name(table)
        .set_key(Some(subscription_shards_key()))
        .update_expression("SET shards = :shards")
        .condition_expression("attribute_not_exists(shards) OR shards < :shards")
        .expression_attribute_values(":shards", AttributeValue::N(shards.to_string()))
        .send()
        .await;
    match raised {
        Ok(_) => Ok(shards),
        // Already as high or higher.
        Err(e) if condition_failed(&e) => subscription_shards(client, table).await,
        Err(e) => Err(backend(op, e)),
    }
}
