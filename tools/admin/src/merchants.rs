//! `merchant create` and `merchant list`.

use webhooks_domain::{Clock, IsoTime, Merchant, NewApiKey};
use webhooks_storage::{MerchantStore, PageRequest, StoreError};

use crate::error::AdminError;

/// The longest merchant name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 256;
/// Merchants read per page while listing.
const LIST_PAGE_SIZE: usize = 100;

/// A merchant just created, with the clear text of its first key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedMerchant {
    /// The stored merchant.
    pub merchant: Merchant,
    /// Its first API key (clear text and hash).
    pub key: NewApiKey,
}

/// Creates a merchant named `name` (trimmed) with a freshly minted API key.
pub async fn create_merchant(
    store: &impl MerchantStore,
    name: &str,
    clock: &dyn Clock,
) -> Result<CreatedMerchant, AdminError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(AdminError::BadName(chars));
    }
    let now = clock.now();
    let created_at = IsoTime::new(now).ok_or_else(|| StoreError::Corrupt(format!("clock out of range: {now}")))?;
    let merchant = Merchant {
        id: Merchant::new_id(),
        name: name.to_owned(),
        created_at,
    };
    let key = NewApiKey::generate();
    store.create_merchant(&merchant, &key.hash).await?;
    Ok(CreatedMerchant { merchant, key })
}

/// Every merchant, page by page.
pub async fn list_merchants(store: &impl MerchantStore) -> Result<Vec<Merchant>, AdminError> {
    let mut page = PageRequest::first(LIST_PAGE_SIZE);
    let mut merchants = Vec::new();
    loop {
        let found = store.list_merchants(page.clone()).await?;
        merchants.extend(found.items);
        match found.next_cursor {
            Some(cursor) => page.cursor = Some(cursor),
            None => return Ok(merchants),
        }
    }
}
