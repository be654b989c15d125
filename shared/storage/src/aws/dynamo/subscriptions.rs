//! Subscriptions: `MERCHANT#{merchantId}` / `SUB#{id}`, with `enabled` and `events`
//! beside `data` for the fan-out query's filter.

use aws_sdk_dynamodb::types::AttributeValue;
use webhooks_domain::{EventName, Subscription};

use super::keys::{SUBSCRIPTION_PREFIX, merchant_pk, subscription_sk};
use super::{DynamoStore, Item, PageQuery, item};
use crate::page::{Page, PageRequest};
use crate::ports::SubscriptionStore;
use crate::rules::write_conditions::Precondition;
use crate::{Entity, StoreError};

fn subscription_item(subscription: &Subscription) -> Result<Item, StoreError> {
    let mut item = item(
        merchant_pk(&subscription.merchant_id),
        subscription_sk(&subscription.id),
        subscription,
    )?;
    item.insert("enabled".into(), AttributeValue::Bool(subscription.enabled));
    let events = subscription.events.iter().map(|e| e.as_str().to_owned()).collect();
    item.insert("events".into(), AttributeValue::Ss(events));
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
    async fn create_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let precondition = Precondition::Absent(Entity::Subscription);
        let item = subscription_item(subscription)?;
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

    async fn list_subscriptions(&self, merchant_id: &str, page: PageRequest) -> Result<Page<Subscription>, StoreError> {
        let scope = format!("subscriptions:{merchant_id}");
        self.subscription_page("dynamodb.list_subscriptions", &scope, merchant_id, None, page)
            .await
    }

    async fn update_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let item = subscription_item(subscription)?;
        self.put("dynamodb.update_subscription", item, Some(Precondition::Present))
            .await
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
