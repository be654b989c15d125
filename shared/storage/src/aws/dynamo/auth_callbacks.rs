//! Auth-callback configurations: `MERCHANT#{merchantId}` / `AUTH_CALLBACK`, beside the
//! merchant's subscriptions (which `begins_with(sk, "SUB#")` never reads).

use serde_json::Value;
use webhooks_domain::AuthCallbackConfig;

use super::keys::{AUTH_CALLBACK_SK, merchant_pk};
use super::{DynamoStore, item};
use crate::ports::AuthCallbackStore;
use crate::{StoreError, sealed};

impl AuthCallbackStore for DynamoStore {
    async fn get_auth_callback(&self, merchant_id: &str) -> Result<Option<AuthCallbackConfig>, StoreError> {
        let document: Option<Value> = self
            .get_data("dynamodb.get_auth_callback", merchant_pk(merchant_id), AUTH_CALLBACK_SK)
            .await?;
        match document {
            Some(document) => Ok(Some(
                sealed::open_auth_callback(&self.keyring, merchant_id, document).await?,
            )),
            None => Ok(None),
        }
    }

    async fn put_auth_callback(&self, merchant_id: &str, config: &AuthCallbackConfig) -> Result<(), StoreError> {
        let document = sealed::auth_callback_document(&self.keyring, merchant_id, config).await?;
        let new = item(merchant_pk(merchant_id), AUTH_CALLBACK_SK.into(), &document)?;
        self.put("dynamodb.put_auth_callback", new, None).await
    }

    async fn delete_auth_callback(&self, merchant_id: &str) -> Result<bool, StoreError> {
        self.delete(
            "dynamodb.delete_auth_callback",
            merchant_pk(merchant_id),
            AUTH_CALLBACK_SK.into(),
        )
        .await
    }
}
