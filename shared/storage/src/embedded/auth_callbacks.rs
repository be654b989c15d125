//! Each merchant's auth-callback configuration: the `auth_callbacks` table.

use rusqlite::params;
use serde_json::Value;
use webhooks_domain::AuthCallbackConfig;

use super::EmbeddedStore;
use super::connection::to_json;
use crate::ports::AuthCallbackStore;
use crate::{StoreError, sealed};

impl AuthCallbackStore for EmbeddedStore {
    async fn get_auth_callback(&self, merchant_id: &str) -> Result<Option<AuthCallbackConfig>, StoreError> {
        let sql = "SELECT json FROM auth_callbacks WHERE merchant_id = ?1";
        let document: Option<Value> = self.db.fetch("auth_callbacks.get", sql, [merchant_id])?;
        match document {
            Some(document) => Ok(Some(
                sealed::open_auth_callback(&self.keyring, merchant_id, document).await?,
            )),
            None => Ok(None),
        }
    }

    async fn put_auth_callback(&self, merchant_id: &str, config: &AuthCallbackConfig) -> Result<(), StoreError> {
        let sql = "INSERT OR REPLACE INTO auth_callbacks (merchant_id, json) VALUES (?1, ?2)";
        let document = sealed::auth_callback_document(&self.keyring, merchant_id, config).await?;
        self.db
            .exec("auth_callbacks.put", sql, params![merchant_id, to_json(&document)?])
            .map(drop)
    }

    async fn delete_auth_callback(&self, merchant_id: &str) -> Result<bool, StoreError> {
        let sql = "DELETE FROM auth_callbacks WHERE merchant_id = ?1";
        Ok(self.db.exec("auth_callbacks.delete", sql, [merchant_id])? > 0)
    }
}
