//! Each merchant's auth-callback configuration: the `auth_callbacks` table.

use rusqlite::params;
use webhooks_domain::AuthCallbackConfig;

use super::EmbeddedStore;
use super::connection::to_json;
use crate::StoreError;
use crate::ports::AuthCallbackStore;

impl AuthCallbackStore for EmbeddedStore {
    async fn get_auth_callback(&self, merchant_id: &str) -> Result<Option<AuthCallbackConfig>, StoreError> {
        let sql = "SELECT json FROM auth_callbacks WHERE merchant_id = ?1";
        self.db.fetch("auth_callbacks.get", sql, [merchant_id])
    }

    async fn put_auth_callback(&self, merchant_id: &str, config: &AuthCallbackConfig) -> Result<(), StoreError> {
        let sql = "INSERT OR REPLACE INTO auth_callbacks (merchant_id, json) VALUES (?1, ?2)";
        self.db
            .exec("auth_callbacks.put", sql, params![merchant_id, to_json(config)?])
            .map(drop)
    }

    async fn delete_auth_callback(&self, merchant_id: &str) -> Result<bool, StoreError> {
        let sql = "DELETE FROM auth_callbacks WHERE merchant_id = ?1";
        Ok(self.db.exec("auth_callbacks.delete", sql, [merchant_id])? > 0)
    }
}
