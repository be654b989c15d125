//! The single-table DynamoDB adapter. Keys and access patterns: `docs/data-model.md`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put, ScalarAttributeType,
    TimeToLiveSpecification, TransactWriteItem,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use webhooks_domain::{
    AuthCallbackConfig, DeliveryAttempt, DeliveryStatus, EventName, Merchant, PlatformEvent, Subscription,
};

use super::backend;
use crate::StoreError;
use crate::page::{CursorCodec, Page, PageRequest};
use crate::ports::{AuthCallbackStore, DeliveryLog, EventStore, MerchantStore, Recorded, SubscriptionStore};

type Item = HashMap<String, AttributeValue>;

/// The TTL attribute (unix seconds).
const TTL_ATTRIBUTE: &str = "expiresAt";

/// Every store port on one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    cursors: CursorCodec,
    retention: Duration,
}

impl DynamoStore {
    /// Connects to `table`, loading (or creating, once for all processes) the cursor key.
    pub async fn connect(client: Client, table: impl Into<String>, retention: Duration) -> Result<Self, StoreError> {
        let table = table.into();
        let key = load_or_create_cursor_key(&client, &table).await?;
        Ok(Self {
            client,
            table,
            cursors: CursorCodec::new(key),
            retention,
        })
    }

    fn expires_at(&self) -> AttributeValue {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        AttributeValue::N((now + self.retention).as_secs().to_string())
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

    async fn put(&self, op: &'static str, item: Item, condition: Option<&str>) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(if condition == Some(EXISTS) {
                    StoreError::NotFound
                } else {
                    StoreError::Conflict(op.into())
                })
            }
            Err(e) => Err(backend(op, e)),
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
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| backend(op, e))?;
        Ok(output.attributes.is_some_and(|old| !old.is_empty()))
    }

    /// One page of a partition's items whose sort key starts with `sk_prefix`, after the
    /// cursor, optionally filtered. DynamoDB applies `Limit` before the filter, so this
    /// queries until it has a full page (plus one, to know whether more exist) or the end.
    async fn query_page<T: DeserializeOwned>(
        &self,
        query: PageQuery<'_>,
        page: &PageRequest,
    ) -> Result<Page<T>, StoreError> {
        let mut start_key = match &page.cursor {
            Some(cursor) => {
                let sk = self.cursors.open(query.scope, cursor)?;
                Some(HashMap::from([
                    ("pk".to_owned(), AttributeValue::S(query.pk.clone())),
                    ("sk".to_owned(), AttributeValue::S(sk)),
                ]))
            }
            None => None,
        };
        let mut items: Vec<Item> = Vec::new();
        loop {
            let wanted = page.limit + 1 - items.len();
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", AttributeValue::S(query.pk.clone()))
                .expression_attribute_values(":prefix", AttributeValue::S(query.sk_prefix.to_owned()))
                .scan_index_forward(query.forward)
                .set_exclusive_start_key(start_key.take())
                .limit(i32::try_from(wanted).unwrap_or(i32::MAX));
            if let Some((filter, values)) = &query.filter {
                request = request.filter_expression(*filter);
                for (name, value) in values {
                    request = request.expression_attribute_values(*name, value.clone());
                }
            }
            let output = request.send().await.map_err(|e| backend(query.op, e))?;
            items.extend(output.items.unwrap_or_default());
            start_key = output.last_evaluated_key.filter(|key| !key.is_empty());
            if items.len() > page.limit || start_key.is_none() {
                break;
            }
        }
        let more = items.len() > page.limit;
        items.truncate(page.limit);
        let next_cursor = match items.last() {
            Some(last) if more => Some(self.cursors.seal(query.scope, string_attr(last, "sk")?)),
            _ => None,
        };
        let items = items.iter().map(data).collect::<Result<_, _>>()?;
        Ok(Page { items, next_cursor })
    }
}

/// What [`DynamoStore::query_page`] reads.
struct PageQuery<'a> {
    op: &'static str,
    scope: &'a str,
    pk: String,
    sk_prefix: &'a str,
    forward: bool,
    filter: Option<(&'static str, Vec<(&'static str, AttributeValue)>)>,
}

const NOT_EXISTS: &str = "attribute_not_exists(pk)";
const EXISTS: &str = "attribute_exists(pk)";

fn string_attr<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        _ => Err(StoreError::Corrupt(format!("attribute {name} missing"))),
    }
}

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

fn merchant_pk(merchant_id: &str) -> String {
    format!("MERCHANT#{merchant_id}")
}

fn api_key_pk(hash: &str) -> String {
    format!("APIKEY#{hash}")
}

fn event_pk(event_id: &str) -> String {
    format!("EVENT#{event_id}")
}

fn attempts_pk(merchant_id: &str, subscription_id: &str) -> String {
    format!("ATTEMPTS#{merchant_id}#{subscription_id}")
}

/// Sorts attempts by time, then event and attempt number (zero-padded so text order is numeric order).
fn attempt_sk(attempt: &DeliveryAttempt) -> String {
    format!(
        "ATTEMPT#{:013}#{}#{:05}",
        attempt.attempted_at.unix_millis().max(0),
        attempt.event_id,
        attempt.attempt
    )
}

const MERCHANTS_PK: &str = "MERCHANTS";
const SUBSCRIPTION_PREFIX: &str = "SUB#";

async fn load_or_create_cursor_key(client: &Client, table: &str) -> Result<Vec<u8>, StoreError> {
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
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
        {
            read()
                .await?
                .ok_or_else(|| StoreError::Corrupt("cursor key vanished".into()))
        }
        Err(e) => Err(backend(op, e)),
    }
}

/// Creates the table (pay per request, TTL on `expiresAt`) unless it exists.
pub(super) async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let op = "dynamodb.CreateTable";
    let key = |name: &str, key_type| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .map_err(|e| backend_build(op, e))
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| backend_build(op, e))
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
        .map_err(|e| backend_build(op, e))?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(ttl)
        .send()
        .await
        .map_err(|e| backend("dynamodb.UpdateTimeToLive", e))?;
    Ok(())
}

fn backend_build(op: &'static str, error: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::backend(op, error)
}

impl MerchantStore for DynamoStore {
    async fn create_merchant(&self, merchant: &Merchant, api_key_hash: &str) -> Result<(), StoreError> {
        let op = "dynamodb.create_merchant";
        let put = |item: Item| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(NOT_EXISTS)
                .build()
                .map(|put| TransactWriteItem::builder().put(put).build())
                .map_err(|e| backend_build(op, e))
        };
        let profile = item(MERCHANTS_PK.into(), merchant_pk(&merchant.id), merchant)?;
        let key = item(api_key_pk(api_key_hash), "APIKEY".into(), merchant)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(put(profile)?)
            .transact_items(put(key)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_transaction_canceled_exception()) =>
            {
                Err(StoreError::Conflict(format!("merchant {}", merchant.id)))
            }
            Err(e) => Err(backend(op, e)),
        }
    }

    async fn get_merchant(&self, merchant_id: &str) -> Result<Option<Merchant>, StoreError> {
        self.get_data("dynamodb.get_merchant", MERCHANTS_PK.into(), &merchant_pk(merchant_id))
            .await
    }

    async fn list_merchants(&self, page: PageRequest) -> Result<Page<Merchant>, StoreError> {
        let query = PageQuery {
            op: "dynamodb.list_merchants",
            scope: "merchants",
            pk: MERCHANTS_PK.into(),
            sk_prefix: "MERCHANT#",
            forward: true,
            filter: None,
        };
        self.query_page(query, &page).await
    }

    async fn add_api_key(&self, merchant_id: &str, api_key_hash: &str) -> Result<(), StoreError> {
        let merchant = self.get_merchant(merchant_id).await?.ok_or(StoreError::NotFound)?;
        let key = item(api_key_pk(api_key_hash), "APIKEY".into(), &merchant)?;
        self.put("dynamodb.add_api_key", key, Some(NOT_EXISTS)).await
    }

    async fn merchant_for_api_key(&self, api_key_hash: &str) -> Result<Option<Merchant>, StoreError> {
        // The key item carries a copy of the (immutable) merchant: one read per request.
        self.get_data("dynamodb.merchant_for_api_key", api_key_pk(api_key_hash), "APIKEY")
            .await
    }

    async fn revoke_api_key(&self, api_key_hash: &str) -> Result<bool, StoreError> {
        self.delete("dynamodb.revoke_api_key", api_key_pk(api_key_hash), "APIKEY".into())
            .await
    }
}

fn subscription_item(subscription: &Subscription) -> Result<Item, StoreError> {
    let mut item = item(
        merchant_pk(&subscription.merchant_id),
        format!("{SUBSCRIPTION_PREFIX}{}", subscription.id),
        subscription,
    )?;
    item.insert("enabled".into(), AttributeValue::Bool(subscription.enabled));
    let events = subscription.events.iter().map(|e| e.as_str().to_owned()).collect();
    item.insert("events".into(), AttributeValue::Ss(events));
    Ok(item)
}

impl SubscriptionStore for DynamoStore {
    async fn create_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        self.put(
            "dynamodb.create_subscription",
            subscription_item(subscription)?,
            Some(NOT_EXISTS),
        )
        .await
    }

    async fn get_subscription(
        &self,
        merchant_id: &str,
        subscription_id: &str,
    ) -> Result<Option<Subscription>, StoreError> {
        let sk = format!("{SUBSCRIPTION_PREFIX}{subscription_id}");
        self.get_data("dynamodb.get_subscription", merchant_pk(merchant_id), &sk)
            .await
    }

    async fn list_subscriptions(&self, merchant_id: &str, page: PageRequest) -> Result<Page<Subscription>, StoreError> {
        let scope = format!("subscriptions:{merchant_id}");
        let query = PageQuery {
            op: "dynamodb.list_subscriptions",
            scope: &scope,
            pk: merchant_pk(merchant_id),
            sk_prefix: SUBSCRIPTION_PREFIX,
            forward: true,
            filter: None,
        };
        self.query_page(query, &page).await
    }

    async fn update_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        self.put(
            "dynamodb.update_subscription",
            subscription_item(subscription)?,
            Some(EXISTS),
        )
        .await
    }

    async fn delete_subscription(&self, merchant_id: &str, subscription_id: &str) -> Result<bool, StoreError> {
        let sk = format!("{SUBSCRIPTION_PREFIX}{subscription_id}");
        self.delete("dynamodb.delete_subscription", merchant_pk(merchant_id), sk)
            .await
    }

    async fn subscriptions_for_event(
        &self,
        merchant_id: &str,
        event: EventName,
        page: PageRequest,
    ) -> Result<Page<Subscription>, StoreError> {
        let scope = format!("subscriptions-for-event:{merchant_id}:{event}");
        let query = PageQuery {
            op: "dynamodb.subscriptions_for_event",
            scope: &scope,
            pk: merchant_pk(merchant_id),
            sk_prefix: SUBSCRIPTION_PREFIX,
            forward: true,
            filter: Some((
                "enabled = :enabled AND contains(events, :event)",
                vec![
                    (":enabled", AttributeValue::Bool(true)),
                    (":event", AttributeValue::S(event.as_str().into())),
                ],
            )),
        };
        self.query_page(query, &page).await
    }
}

impl EventStore for DynamoStore {
    async fn record_event(&self, event: &PlatformEvent, lease: Duration) -> Result<Recorded, StoreError> {
        let op = "dynamodb.record_event";
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let millis = |d: Duration| AttributeValue::N(d.as_millis().to_string());
        let mut new = item(event_pk(&event.event_id), "EVENT".into(), event)?;
        new.insert("fannedOut".into(), AttributeValue::Bool(false));
        new.insert("leaseUntil".into(), millis(now + lease));
        new.insert(TTL_ATTRIBUTE.into(), self.expires_at());
        match self.put(op, new, Some(NOT_EXISTS)).await {
            Ok(()) => return Ok(Recorded::New),
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
        // Known: take the lease again if the fan-out is unfinished and its lease ran out.
        let retaken = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(event_pk(&event.event_id)))
            .key("sk", AttributeValue::S("EVENT".into()))
            .update_expression("SET leaseUntil = :until")
            .condition_expression("fannedOut = :false AND leaseUntil <= :now")
            .expression_attribute_values(":until", millis(now + lease))
            .expression_attribute_values(":now", millis(now))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match retaken {
            Ok(output) => return Ok(Recorded::PendingFanOut(data(&output.attributes.unwrap_or_default())?)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
            Err(e) => return Err(backend(op, e)),
        }
        let stored = self
            .get(op, event_pk(&event.event_id), "EVENT")
            .await?
            .ok_or_else(|| StoreError::backend(op, "event vanished between put and get"))?;
        Ok(match stored.get("fannedOut") {
            Some(AttributeValue::Bool(true)) => Recorded::AlreadyFannedOut(data(&stored)?),
            _ => Recorded::InProgress,
        })
    }

    async fn mark_fanned_out(&self, event_id: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(event_pk(event_id)))
            .key("sk", AttributeValue::S("EVENT".into()))
            .update_expression("SET fannedOut = :true")
            .condition_expression(EXISTS)
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::NotFound)
            }
            Err(e) => Err(backend("dynamodb.mark_fanned_out", e)),
        }
    }

    async fn get_event(&self, event_id: &str) -> Result<Option<PlatformEvent>, StoreError> {
        self.get_data("dynamodb.get_event", event_pk(event_id), "EVENT").await
    }
}

impl DeliveryLog for DynamoStore {
    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> Result<(), StoreError> {
        let pk = attempts_pk(&attempt.merchant_id, &attempt.subscription_id);
        let mut new = item(pk, attempt_sk(attempt), attempt)?;
        new.insert(TTL_ATTRIBUTE.into(), self.expires_at());
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
            pk: attempts_pk(merchant_id, subscription_id),
            sk_prefix: "ATTEMPT#",
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
        let record = DeliveryStatusRecord { merchant_id, status };
        let mut new = item(
            format!("DELIVERY#{event_id}"),
            format!("{SUBSCRIPTION_PREFIX}{subscription_id}"),
            &record,
        )?;
        new.insert(TTL_ATTRIBUTE.into(), self.expires_at());
        self.put("dynamodb.set_delivery_status", new, None).await
    }

    async fn delivery_status(
        &self,
        event_id: &str,
        subscription_id: &str,
    ) -> Result<Option<DeliveryStatus>, StoreError> {
        let sk = format!("{SUBSCRIPTION_PREFIX}{subscription_id}");
        let record: Option<OwnedDeliveryStatusRecord> = self
            .get_data("dynamodb.delivery_status", format!("DELIVERY#{event_id}"), &sk)
            .await?;
        Ok(record.map(|r| r.status))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryStatusRecord<'a> {
    merchant_id: &'a str,
    status: DeliveryStatus,
}

#[derive(serde::Deserialize)]
struct OwnedDeliveryStatusRecord {
    status: DeliveryStatus,
}

impl AuthCallbackStore for DynamoStore {
    async fn get_auth_callback(&self, merchant_id: &str) -> Result<Option<AuthCallbackConfig>, StoreError> {
        self.get_data("dynamodb.get_auth_callback", merchant_pk(merchant_id), "AUTH_CALLBACK")
            .await
    }

    async fn put_auth_callback(&self, merchant_id: &str, config: &AuthCallbackConfig) -> Result<(), StoreError> {
        let new = item(merchant_pk(merchant_id), "AUTH_CALLBACK".into(), config)?;
        self.put("dynamodb.put_auth_callback", new, None).await
    }

    async fn delete_auth_callback(&self, merchant_id: &str) -> Result<bool, StoreError> {
        self.delete(
            "dynamodb.delete_auth_callback",
            merchant_pk(merchant_id),
            "AUTH_CALLBACK".into(),
        )
        .await
    }
}
