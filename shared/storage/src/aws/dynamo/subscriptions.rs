//! Subscriptions: `MERCHANT#{merchantId}` / `SUB#{id}`, with `enabled` and `events`
//! beside `data` for the fan-out query's filter, and `version` for the condition of a
//! replace.

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use serde_json::Value;
use webhooks_domain::{EventName, SigningSecrets, Subscription};

use super::keys::{SUBSCRIPTION_PREFIX, merchant_pk, subscription_sk};
use super::{DynamoStore, Item, PageQuery, backend, item};
use crate::page::{Page, PageRequest};
use crate::ports::SubscriptionStore;
use crate::rules::write_conditions::{Precondition, VersionedReplace};
use crate::{Entity, StoreError, sealed};

/// The condition of a replace of a subscription read at version `:read`, past 0.
const AT_VERSION: &str = "version = :read";
/// The same at version 0, which an item stored before subscriptions had versions is at
/// without a `version` attribute.
const AT_FIRST_VERSION: &str = "attribute_exists(pk) AND (attribute_not_exists(version) OR version = :read)";

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
            pk: merchant_pk(merchant_id),
            sk_prefix: SUBSCRIPTION_PREFIX,
            forward: true,
            filter,
        };
        self.query_page(query, &page).await
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
        let sk = subscription_sk(subscription_id);
        self.get_data("dynamodb.get_subscription", merchant_pk(merchant_id), &sk)
            .await
    }

    async fn get_subscription_with_secrets(
        &self,
        merchant_id: &str,
        subscription_id: &str,
    ) -> Result<Option<(Subscription, SigningSecrets)>, StoreError> {
        let sk = subscription_sk(subscription_id);
        let document: Option<Value> = self
            .get_data("dynamodb.get_subscription", merchant_pk(merchant_id), &sk)
            .await?;
        match document {
            Some(document) => Ok(Some(sealed::open_subscription(&self.keyring, &document).await?)),
            None => Ok(None),
        }
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
        let item = subscription_item(self, &replace.next, secrets).await?;
        let condition = match replace.read {
            0 => AT_FIRST_VERSION,
            _ => AT_VERSION,
        };
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .expression_attribute_values(":read", AttributeValue::N(replace.read.to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => match error.as_service_error() {
                // The refused write returns the item it found, if there was one.
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    Err(replace.refused(failed.item().is_some_and(|item| !item.is_empty())))
                }
                _ => Err(backend("dynamodb.update_subscription", error)),
            },
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
