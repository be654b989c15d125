//! The single-table DynamoDB adapter. Keys and access patterns: `docs/data-model.md`;
//! key formats in `keys.rs`. What to write and when a write is refused follow `rules`.

mod auth_callbacks;
mod delivery_log;
mod endpoint_breaker;
mod events;
#[cfg(test)]
mod hot_keys;
mod keys;
mod merchants;
mod operator_reads;
mod parked_retries;
mod recovery;
mod request_counters;
mod secrets_at_rest;
mod sharded_reads;
mod subscriptions;
mod table;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use webhooks_keyring::Keyring;

pub(super) use table::create_table;

use super::backend;
use crate::StoreError;
use crate::page::{CursorCodec, Page, PageRequest};
use crate::rules::attempt_key::attempt_log_shard;
use crate::rules::retention::expires_at_ms;
use crate::rules::unix_time::unix_seconds;
use crate::rules::write_conditions::Precondition;

type Item = HashMap<String, AttributeValue>;

/// The TTL attribute (unix seconds).
const TTL_ATTRIBUTE: &str = "expiresAt";
/// The condition that no item exists at the key.
const NOT_EXISTS: &str = "attribute_not_exists(pk)";

/// Every store port on one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    cursors: CursorCodec,
    retention: Duration,
    keyring: Keyring,
    /// How many shards of a subscription's attempt log and held deliveries this store writes to.
    subscription_shards: u32,
}

impl DynamoStore {
    /// Connects to `table`, loading (or creating, once for all processes) the cursor key;
    /// events, attempts and delivery statuses written through it expire after `retention`;
    /// secrets are sealed and opened with `keyring`.
    pub async fn connect(
        client: Client,
        table: impl Into<String>,
        retention: Duration,
        keyring: Keyring,
    ) -> Result<Self, StoreError> {
        let table = table.into();
        let key = table::load_or_create_cursor_key(&client, &table).await?;
        Ok(Self {
            client,
            table,
            cursors: CursorCodec::new(key),
            retention,
            keyring,
            subscription_shards: 1,
        })
    }

    /// Spreads the attempts and held deliveries this store writes over `shards` partitions
    /// per subscription (`rules::shard`; clamped to 1..=[`crate::MAX_SUBSCRIPTION_SHARDS`]), or over
    /// more if another writer raised the table's count higher: the count only grows, and
    /// readers query as many shards as the table's count says.
    pub async fn with_subscription_shards(mut self, shards: u32) -> Result<Self, StoreError> {
        let wanted = shards.clamp(1, crate::MAX_SUBSCRIPTION_SHARDS);
        self.subscription_shards = table::raise_subscription_shards(&self.client, &self.table, wanted).await?;
        Ok(self)
    }

    /// The shard of a subscription's attempt log that `event_id`'s attempts go to.
    fn attempts_pk_for(&self, merchant_id: &str, subscription_id: &str, event_id: &str) -> String {
        let shard = attempt_log_shard(event_id, self.subscription_shards);
        keys::attempts_pk(merchant_id, subscription_id, shard)
    }

    /// Every partition a subscription's attempts may be in, shard 0 first.
    async fn attempt_log_partitions(
        &self,
        merchant_id: &str,
        subscription_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let shards = self.shards_in_use().await?;
        Ok((0..shards)
            .map(|shard| keys::attempts_pk(merchant_id, subscription_id, shard))
            .collect())
    }

    /// How many shards a subscription's sharded keys may be spread over: as many as the
    /// table's count says now (read each time: reads of them are rare, and a writer may
    /// have raised it since this store started).
    async fn shards_in_use(&self) -> Result<u32, StoreError> {
        let stored = table::subscription_shards(&self.client, &self.table).await?;
        Ok(stored.max(self.subscription_shards))
    }

    /// The TTL attribute of an item written at `now_ms`.
    fn expires_at(&self, now_ms: i64) -> AttributeValue {
        number(unix_seconds(expires_at_ms(now_ms, self.retention)))
    }

    async fn get(&self, op: &'static str, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(op, e))?;
        Ok(output.item)
    }

    async fn get_data<T: DeserializeOwned>(
        &self,
        op: &'static str,
        pk: String,
        sk: &str,
    ) -> Result<Option<T>, StoreError> {
        self.get(op, pk, sk).await?.map(|item| data(&item)).transpose()
    }

    /// Puts `item`, if it meets `precondition` (refused as the rule says otherwise).
    async fn put(&self, op: &'static str, item: Item, precondition: Option<Precondition>) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(precondition.map(|p| condition(p).to_owned()))
            .send()
            .await;
        match (result, precondition) {
            (Ok(_), _) => Ok(()),
            (Err(e), Some(precondition)) if condition_failed(&e) => Err(precondition.refused()),
            (Err(e), _) => Err(backend(op, e)),
        }
    }

    /// Deletes one item; whether it existed.
    async fn delete(&self, op: &'static str, pk: String, sk: String) -> Result<bool, StoreError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk))
            .key("sk", AttributeValue::S(sk))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| backend(op, e))?;
        Ok(output.attributes.is_some_and(|old| !old.is_empty()))
    }

    /// One page of the items of the query's partitions whose sort key starts with
    /// `sk_prefix`, after the cursor, optionally filtered: a full page (plus one, to know
    /// whether more exist) or what is left.
    async fn query_page<T: DeserializeOwned>(
        &self,
        query: PageQuery<'_>,
        page: &PageRequest,
    ) -> Result<Page<T>, StoreError> {
        self.query_page_with(query, page, data).await
    }

    /// [`DynamoStore::query_page`], each item decoded by `decode`. The partitions are
    /// read at once, each up to a full page after the cursor, and merged by sort key.
    async fn query_page_with<T>(
        &self,
        query: PageQuery<'_>,
        page: &PageRequest,
        decode: impl Fn(&Item) -> Result<T, StoreError>,
    ) -> Result<Page<T>, StoreError> {
        let after = match &page.cursor {
            Some(cursor) => Some(self.cursors.open(query.scope, cursor)?),
            None => None,
        };
        // Collected first: the compiler cannot prove a stream over a borrowing closure `Send`.
        let reads: Vec<_> = query
            .partitions
            .iter()
            .map(|pk| self.read_partition(&query, pk, after.as_deref(), page.limit + 1))
            .collect();
        let mut items: Vec<Item> = futures::stream::iter(reads)
            .buffer_unordered(PARALLEL_SHARD_READS)
            .try_collect::<Vec<Vec<Item>>>()
            .await?
            .into_iter()
            .flatten()
            .collect();
        if query.partitions.len() > 1 {
            // Sort keys are unique across a key's shards: one order, one cursor.
            items.sort_by(|a, b| match query.forward {
                true => sort_key(a).cmp(sort_key(b)),
                false => sort_key(b).cmp(sort_key(a)),
            });
        }
        let more = items.len() > page.limit;
        items.truncate(page.limit);
        let next_cursor = match items.last() {
            Some(last) if more => Some(self.cursors.seal(query.scope, string_attr(last, "sk")?)),
            _ => None,
        };
        let items = items.iter().map(decode).collect::<Result<_, _>>()?;
        Ok(Page { items, next_cursor })
    }

    /// Up to `wanted` items of partition `pk` that `query` selects, after the sort key
    /// `after` (in the query's direction): DynamoDB applies `Limit` before the filter, so
    /// this queries until it has them or the partition ends.
    async fn read_partition(
        &self,
        query: &PageQuery<'_>,
        pk: &str,
        after: Option<&str>,
        wanted: usize,
    ) -> Result<Vec<Item>, StoreError> {
        // A position, not necessarily an item of this partition: the query starts past it.
        let mut start_key = after.map(|sk| {
            HashMap::from([
                ("pk".to_owned(), AttributeValue::S(pk.to_owned())),
                ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
            ])
        });
        let mut items: Vec<Item> = Vec::new();
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
                .expression_attribute_values(":prefix", AttributeValue::S(query.sk_prefix.to_owned()))
                .scan_index_forward(query.forward)
                .set_exclusive_start_key(start_key.take())
                .limit(i32::try_from(wanted - items.len()).unwrap_or(i32::MAX));
            if let Some((filter, values)) = &query.filter {
                request = request.filter_expression(*filter);
                for (name, value) in values {
                    request = request.expression_attribute_values(*name, value.clone());
                }
            }
            let output = request.send().await.map_err(|e| backend(query.op, e))?;
            items.extend(output.items.unwrap_or_default());
            start_key = output.last_evaluated_key.filter(|key| !key.is_empty());
            if items.len() >= wanted || start_key.is_none() {
                return Ok(items);
            }
        }
    }
}

/// How many partitions of a sharded key one page reads at once.
const PARALLEL_SHARD_READS: usize = 16;

/// An item's sort key, for merging the pages of several partitions (items without one,
/// which no query returns, sort first).
fn sort_key(item: &Item) -> &str {
    match item.get("sk") {
        Some(AttributeValue::S(sk)) => sk,
        _ => "",
    }
}

/// What [`DynamoStore::query_page`] reads.
struct PageQuery<'a> {
    op: &'static str,
    scope: &'a str,
    /// The partitions read, merged into one order: one key, or every shard of a
    /// write-sharded one.
    partitions: Vec<String>,
    sk_prefix: &'a str,
    forward: bool,
    filter: Option<(&'static str, Vec<(&'static str, AttributeValue)>)>,
}

/// The condition expression stating `precondition` about the item at the written key.
fn condition(precondition: Precondition) -> &'static str {
    match precondition {
        Precondition::Absent(_) => NOT_EXISTS,
        Precondition::Present => "attribute_exists(pk)",
    }
}

/// Whether a write failed because its condition expression did not hold.
fn condition_failed(error: &impl ProvideErrorMetadata) -> bool {
    error.code() == Some("ConditionalCheckFailedException")
}

fn number(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn string_attr<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        _ => Err(StoreError::Corrupt(format!("attribute {name} missing"))),
    }
}

fn number_attr(item: &Item, name: &str) -> Result<i64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("attribute {name} is not an integer"))),
        _ => Err(StoreError::Corrupt(format!("attribute {name} missing"))),
    }
}

fn bool_attr(item: &Item, name: &str) -> Result<bool, StoreError> {
    match item.get(name) {
        Some(AttributeValue::Bool(value)) => Ok(*value),
        _ => Err(StoreError::Corrupt(format!("attribute {name} missing"))),
    }
}

/// The domain object in an item's `data`.
fn data<T: DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    serde_json::from_str(string_attr(item, "data")?).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// An item with its keys and the JSON of `value` in `data`.
fn item(pk: String, sk: String, value: &impl Serialize) -> Result<Item, StoreError> {
    let json = serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk)),
        ("sk".to_owned(), AttributeValue::S(sk)),
        ("data".to_owned(), AttributeValue::S(json)),
    ]))
}
