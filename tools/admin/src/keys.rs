//! `key add` and `key revoke`: API keys are minted here and shown once; the table keeps
//! only their hashes.

use webhooks_domain::{Merchant, NewApiKey, hash_api_key};
use webhooks_storage::{MerchantStore, StoreError};

use crate::error::AdminError;

/// Mints another API key for an existing merchant.
pub async fn add_key(store: &impl MerchantStore, merchant_id: &str) -> Result<NewApiKey, AdminError> {
    let key = NewApiKey::generate();
    match store.add_api_key(merchant_id, &key.hash).await {
        Ok(()) => Ok(key),
        Err(StoreError::NotFound) => Err(AdminError::MerchantNotFound(merchant_id.to_owned())),
        Err(e) => Err(e.into()),
    }
}

/// Revokes the key whose clear text is `key`; returns the merchant it belonged to.
pub async fn revoke_key(store: &impl MerchantStore, key: &str) -> Result<Merchant, AdminError> {
    let hash = hash_api_key(key.trim());
    let merchant = store
        .merchant_for_api_key(&hash)
        .await?
        .ok_or(AdminError::KeyNotFound)?;
    if store.revoke_api_key(&hash).await? {
        Ok(merchant)
    } else {
        // Revoked by someone else between the lookup and the delete.
        Err(AdminError::KeyNotFound)
    }
}
