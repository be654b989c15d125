//! Merchants (`MERCHANTS` / `MERCHANT#{id}`) and API keys (`APIKEY#{hash}` / `APIKEY`, each
//! with a copy of its merchant).

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use webhooks_domain::Merchant;

use super::keys::{API_KEY_SK, MERCHANT_PREFIX, MERCHANTS_PK, api_key_pk, merchant_pk};
use super::{DynamoStore, Item, PageQuery, condition, item};
use crate::aws::backend;
use crate::page::{Page, PageRequest};
use crate::ports::MerchantStore;
use crate::rules::write_conditions::Precondition;
use crate::{Entity, StoreError};

impl MerchantStore for DynamoStore {
    async fn create_merchant(&self, merchant: &Merchant, api_key_hash: &str) -> Result<(), StoreError> {
        let op = "dynamodb.create_merchant";
        // In transaction order: each item with what its create requires.
        let writes = [
            (
                item(MERCHANTS_PK.into(), merchant_pk(&merchant.id), merchant)?,
                Precondition::Absent(Entity::Merchant),
            ),
            (
                item(api_key_pk(api_key_hash), API_KEY_SK.into(), merchant)?,
                Precondition::Absent(Entity::ApiKey),
            ),
        ];
        let put = |item: &Item, precondition: Precondition| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression(condition(precondition))
                .build()
                .map(|put| TransactWriteItem::builder().put(put).build())
                .map_err(|e| StoreError::backend(op, e))
        };
        let items = writes
            .iter()
            .map(|(item, precondition)| put(item, *precondition))
            .collect::<Result<Vec<_>, _>>()?;
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let Err(e) = result else { return Ok(()) };
        // Refused as the first write whose condition failed; cancelled otherwise (a
        // concurrent transaction on the same items): a backend failure, worth a retry.
        let reasons = match e.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => cancelled.cancellation_reasons(),
            _ => &[],
        };
        let refused = reasons
            .iter()
            .zip(&writes)
            .find(|(reason, _)| reason.code() == Some("ConditionalCheckFailed"));
        match refused {
            Some((_, (_, precondition))) => Err(precondition.refused()),
            None => Err(backend(op, e)),
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
            partitions: vec![MERCHANTS_PK.into()],
            sk_prefix: MERCHANT_PREFIX,
            forward: true,
            filter: None,
        };
        self.query_page(query, &page).await
    }

    async fn add_api_key(&self, merchant_id: &str, api_key_hash: &str) -> Result<(), StoreError> {
        let merchant = self.get_merchant(merchant_id).await?.ok_or(StoreError::NotFound)?;
        let key = item(api_key_pk(api_key_hash), API_KEY_SK.into(), &merchant)?;
        let precondition = Precondition::Absent(Entity::ApiKey);
        self.put("dynamodb.add_api_key", key, Some(precondition)).await
    }

    async fn merchant_for_api_key(&self, api_key_hash: &str) -> Result<Option<Merchant>, StoreError> {
        // The key item carries a copy of the (immutable) merchant: one read per request.
        self.get_data("dynamodb.merchant_for_api_key", api_key_pk(api_key_hash), API_KEY_SK)
            .await
    }

    async fn revoke_api_key(&self, api_key_hash: &str) -> Result<bool, StoreError> {
        self.delete("dynamodb.revoke_api_key", api_key_pk(api_key_hash), API_KEY_SK.into())
            .await
    }
}
