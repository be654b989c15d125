//! Re-sealing a merchant's secrets: each row swapped only if its JSON is still the one read.

use rusqlite::params;
use serde_json::Value;

use super::EmbeddedStore;
use super::connection::{from_json, to_json};
use crate::ports::SecretsAtRest;
use crate::{StoreError, sealed};

impl SecretsAtRest for EmbeddedStore {
    async fn reseal_merchant(&self, merchant_id: &str) -> Result<usize, StoreError> {
        let read = "SELECT id, json FROM subscriptions WHERE merchant_id = ?1 ORDER BY id";
        let rows: Vec<(String, String)> = self.db.read("secrets.read_subscriptions", |conn| {
            let mut stmt = conn.prepare_cached(read)?;
            let rows = stmt.query_map([merchant_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })?;
        let mut resealed = 0;
        let swap = "UPDATE subscriptions SET json = ?3 WHERE merchant_id = ?1 AND id = ?2 AND json = ?4";
        for (id, old) in rows {
            let document: Value = from_json(&old)?;
            let new = to_json(&sealed::reseal_subscription(&self.keyring, &document).await?)?;
            let row = params![merchant_id, id, new, old];
            resealed += self.db.exec("secrets.reseal_subscription", swap, row)?;
        }
        let read = "SELECT json FROM auth_callbacks WHERE merchant_id = ?1";
        let config: Option<String> = self.db.fetch_text("secrets.read_auth_callback", read, [merchant_id])?;
        if let Some(old) = config {
            let document: Value = from_json(&old)?;
            let new = sealed::reseal_auth_callback(&self.keyring, merchant_id, &document).await?;
            let swap = "UPDATE auth_callbacks SET json = ?2 WHERE merchant_id = ?1 AND json = ?3";
            let row = params![merchant_id, to_json(&new)?, old];
            resealed += self.db.exec("secrets.reseal_auth_callback", swap, row)?;
        }
        Ok(resealed)
    }
}
