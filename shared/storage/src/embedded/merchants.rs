//! Merchants and their API-key hashes: the `merchants` and `api_keys` tables.

use rusqlite::{Connection, OptionalExtension, params};
use webhooks_domain::Merchant;

use super::EmbeddedStore;
use super::connection::{Fail, to_json, write_tx};
use crate::page::{Page, PageRequest};
use crate::ports::MerchantStore;
use crate::rules::write_conditions::Precondition;
use crate::{Entity, StoreError};

/// Adds a key hash to a merchant ([`StoreError::Conflict`] if the hash is taken).
fn insert_key(conn: &Connection, merchant_id: &str, hash: &str) -> Result<(), Fail> {
    let sql = "INSERT OR IGNORE INTO api_keys (hash, merchant_id) VALUES (?1, ?2)";
    let rows = conn.prepare_cached(sql)?.execute(params![hash, merchant_id])?;
    Ok(Precondition::Absent(Entity::ApiKey).check(rows)?)
}

impl MerchantStore for EmbeddedStore {
    async fn create_merchant(&self, merchant: &Merchant, api_key_hash: &str) -> Result<(), StoreError> {
        let json = to_json(merchant)?;
        self.db.call("merchants.create", |conn| {
            let tx = write_tx(conn)?;
            let sql = "INSERT OR IGNORE INTO merchants (id, json) VALUES (?1, ?2)";
            let rows = tx.execute(sql, params![merchant.id, json])?;
            Precondition::Absent(Entity::Merchant).check(rows)?;
            insert_key(&tx, &merchant.id, api_key_hash)?;
            Ok(tx.commit()?)
        })
    }

    async fn get_merchant(&self, merchant_id: &str) -> Result<Option<Merchant>, StoreError> {
        let sql = "SELECT json FROM merchants WHERE id = ?1";
        self.db.fetch("merchants.get", sql, [merchant_id])
    }

    async fn list_merchants(&self, page: PageRequest) -> Result<Page<Merchant>, StoreError> {
        let sql = "SELECT id, json FROM merchants WHERE (?1 IS NULL OR id > ?1) ORDER BY id LIMIT ?2";
        self.db.list("merchants.list", "merchants", &page, sql, &[])
    }

    async fn add_api_key(&self, merchant_id: &str, api_key_hash: &str) -> Result<(), StoreError> {
        self.db.call("merchants.add_api_key", |conn| {
            let tx = write_tx(conn)?;
            let known = tx
                .query_row("SELECT 1 FROM merchants WHERE id = ?1", [merchant_id], |_| Ok(()))
                .optional()?;
            known.ok_or(StoreError::NotFound)?;
            insert_key(&tx, merchant_id, api_key_hash)?;
            Ok(tx.commit()?)
        })
    }

    async fn merchant_for_api_key(&self, api_key_hash: &str) -> Result<Option<Merchant>, StoreError> {
        let sql = "SELECT m.json FROM api_keys k JOIN merchants m ON m.id = k.merchant_id WHERE k.hash = ?1";
        self.db.fetch("merchants.for_api_key", sql, [api_key_hash])
    }

    async fn revoke_api_key(&self, api_key_hash: &str) -> Result<bool, StoreError> {
        let sql = "DELETE FROM api_keys WHERE hash = ?1";
        Ok(self.db.exec("merchants.revoke_api_key", sql, [api_key_hash])? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::open_temporary;
    use webhooks_domain::IsoTime;

    fn merchant(id: &str) -> Merchant {
        Merchant {
            id: id.into(),
            name: id.into(),
            created_at: IsoTime::parse_rfc3339("2026-01-01T00:00:00Z").unwrap(),
        }
    }

    #[tokio::test]
    async fn a_refused_create_names_what_exists_and_leaves_nothing_behind() {
        let (_dir, store) = open_temporary();
        store.create_merchant(&merchant("m_1"), "hash-1").await.unwrap();
        assert_eq!(
            store.create_merchant(&merchant("m_1"), "hash-new").await,
            Err(StoreError::Conflict(Entity::Merchant))
        );
        assert_eq!(
            store.create_merchant(&merchant("m_2"), "hash-1").await,
            Err(StoreError::Conflict(Entity::ApiKey))
        );
        assert_eq!(
            store.get_merchant("m_2").await.unwrap(),
            None,
            "half a merchant was kept"
        );
        assert_eq!(store.merchant_for_api_key("hash-new").await.unwrap(), None);
        assert_eq!(
            store.merchant_for_api_key("hash-1").await.unwrap().map(|m| m.id),
            Some("m_1".into())
        );
    }
}
