//! Subscriptions: `MERCHANT#{merchantId}` / `SUB#{id}`, with `enabled` and `events`
//! beside `data` for the fan-out query's filter, `version` for the condition of a
//! replace, and `health` (the endpoint's health, JSON), which deliver changes by itself
//! and a replace leaves alone.

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use serde_json::Value;
use webhooks_domain::{EndpointHealth, EventName, SigningSecrets, Subscription};

use super::keys::{SUBSCRIPTION_PREFIX, merchant_pk, subscription_sk};
use super::{DynamoStore, Item, PageQuery, backend, condition_failed, data, item};
use crate::page::{Page, PageRequest};
use crate::ports::SubscriptionStore;
use crate::rules::write_conditions::{Precondition, VersionedReplace};
use crate::{Entity, StoreError, sealed};

/// The condition of a replace of a subscription read at version `:read`, past 0.
const AT_VERSION: &str = "version = :read";
/// The same at version 0, which an item stored before subscriptions had versions is at
/// without a `version` attribute.
const AT_FIRST_VERSION: &str = "attribute_exists(pk) AND (attribute_not_exists(version) OR version = :read)";
/// The attribute that holds the endpoint's health (JSON); absent while it never failed.
const HEALTH: &str = "health";

/// The item of `subscription`, its document holding the sealed `secrets`.
async fn subscription_item(
    store: &DynamoStore,
    subscription: &Subscription,
    secrets: &SigningSecrets,
) -> Result<Item, StoreError> {
    let document = sealed::subscription_document(&store.keyring, subscription, secrets).await?;
    let mut item = item(
        merchant_pk(&subscription.merchant_id),
        subscription_sk(&subscription.id),
        &document,
    )?;
    item.insert("enabled".into(), AttributeValue::Bool(subscription.enabled));
    let events = subscription.events.iter().map(|e| e.as_str().to_owned()).collect();
    item.insert("events".into(), AttributeValue::Ss(events));
    item.insert("version".into(), AttributeValue::N(subscription.version.to_string()));
    Ok(item)
}

/// `subscription` with the health stored beside it in `item`.
fn with_health(mut subscription: Subscription, item: &Item) -> Result<Subscription, StoreError> {
    if let Some(AttributeValue::S(health)) = item.get(HEALTH) {
        subscription.health = serde_json::from_str(health).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    }
    Ok(subscription)
}

/// The subscription of an item, health included, secrets not opened.
fn subscription_of(item: &Item) -> Result<Subscription, StoreError> {
    with_health(data(item)?, item)
}

fn health_json(health: &EndpointHealth) -> Result<AttributeValue, StoreError> {
    let json = serde_json::to_string(health).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(AttributeValue::S(json))
}

impl DynamoStore {
    /// A merchant's subscriptions, a page at a time, optionally filtered.
    async fn subscription_page(
        &self,
        op: &'static str,
        scope: &str,
        merchant_id: &str,
        filter: Option<(&'static str, Vec<(&'static str, AttributeValue)>)>,
        page: PageRequest,
    ) -> Result<Page<Subscription>, StoreError> {
        let query = PageQuery {
            op,
            scope,
            partitions: vec![merchant_pk(merchant_id)],
            sk_prefix: SUBSCRIPTION_PREFIX,
            forward: true,
            filter,
        };
        self.query_page_with(query, &page, subscription_of).await
    }

    /// The item of one subscription.
    async fn subscription_item(&self, merchant_id: &str, subscription_id: &str) -> Result<Option<Item>, StoreError> {
        let sk = subscription_sk(subscription_id);
        self.get("dynamodb.get_subscription", merchant_pk(merchant_id), &sk)
            .await
    }
}

impl SubscriptionStore for DynamoStore {
    async fn create_subscription(
        &self,
        subscription: &Subscription,
        secrets: &SigningSecrets,
    ) -> Result<(), StoreError> {
        let precondition = Precondition::Absent(Entity::Subscription);
        let item = subscription_item(self, subscription, secrets).await?;
        self.put("dynamodb.create_subscription", item, Some(precondition)).await
    }

    async fn get_subscription(
        &self,
        merchant_id: &str,
        subscription_id: &str,
    ) -> Result<Option<Subscription>, StoreError> {
        let item = self.subscription_item(merchant_id, subscription_id).await?;
        item.as_ref().map(subscription_of).transpose()
    }

    async fn get_subscription_with_secrets(
        &self,
        merchant_id: &str,
        subscription_id: &str,
    ) -> Result<Option<(Subscription, SigningSecrets)>, StoreError> {
        let Some(item) = self.subscription_item(merchant_id, subscription_id).await? else {
            return Ok(None);
        };
        let document: Value = data(&item)?;
        let (subscription, secrets) = sealed::open_subscription(&self.keyring, &document).await?;
        Ok(Some((with_health(subscription, &item)?, secrets)))
    }

    async fn list_subscriptions(&self, merchant_id: &str, page: PageRequest) -> Result<Page<Subscription>, StoreError> {
        let scope = format!("subscriptions:{merchant_id}");
        self.subscription_page("dynamodb.list_subscriptions", &scope, merchant_id, None, page)
            .await
    }

    async fn update_subscription(
        &self,
        subscription: &Subscription,
        secrets: &SigningSecrets,
    ) -> Result<(), StoreError> {
        let replace = VersionedReplace::of(subscription);
        let next = subscription_item(self, &replace.next, secrets).await?;
        let condition = match replace.read {
            0 => AT_FIRST_VERSION,
            _ => AT_VERSION,
        };
        // The replaced attributes only: the health beside them is deliver's to change.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(merchant_pk(&subscription.merchant_id)))
            .key("sk", AttributeValue::S(subscription_sk(&subscription.id)))
            .update_expression("SET #data = :data, enabled = :enabled, events = :events, version = :next")
            .condition_expression(condition)
            .expression_attribute_names("#data", "data")
            .expression_attribute_values(":data", next["data"].clone())
            .expression_attribute_values(":enabled", next["enabled"].clone())
            .expression_attribute_values(":events", next["events"].clone())
            .expression_attribute_values(":next", next["version"].clone())
            .expression_attribute_values(":read", AttributeValue::N(replace.read.to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => match error.as_service_error() {
                // The refused write returns the item it found, if there was one.
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    Err(replace.refused(failed.item().is_some_and(|item| !item.is_empty())))
                }
                _ => Err(backend("dynamodb.update_subscription", error)),
            },
        }
    }

    async fn record_health(
        &self,
        merchant_id: &str,
        subscription_id: &str,
        read: &EndpointHealth,
        next: &EndpointHealth,
    ) -> Result<bool, StoreError> {
        let condition = match read.is_clean() {
            true => "attribute_exists(pk) AND (attribute_not_exists(health) OR health = :read)",
            false => "health = :read",
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(merchant_pk(merchant_id)))
            .key("sk", AttributeValue::S(subscription_sk(subscription_id)))
            .update_expression("SET health = :next")
            .condition_expression(condition)
            .expression_attribute_values(":read", health_json(read)?)
            .expression_attribute_values(":next", health_json(next)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if condition_failed(&error) => Ok(false),
            Err(error) => Err(backend("dynamodb.record_health", error)),
        }
    }

    async fn delete_subscription(&self, merchant_id: &str, subscription_id: &str) -> Result<bool, StoreError> {
        let sk = subscription_sk(subscription_id);
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
        let filter = (
            "enabled = :enabled AND contains(events, :event)",
            vec![
                (":enabled", AttributeValue::Bool(true)),
                (":event", AttributeValue::S(event.as_str().into())),
            ],
        );
        self.subscription_page(
            "dynamodb.subscriptions_for_event",
            &scope,
            merchant_id,
            Some(filter),
            page,
        )
        .await
    }
}
