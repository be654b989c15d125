//! `rekey`: every merchant's secrets sealed again under the key that seals now.

use webhooks_storage::{MerchantStore, SecretsAtRest};

use crate::error::AdminError;
use crate::merchants::list_merchants;

/// Re-seals the secrets of every merchant's subscriptions and auth-callback configuration
/// under the store's current key (after `--kms-key-id` names a new key, or to seal items an
/// older version stored in clear). Items written meanwhile are left as their writer sealed
/// them. Returns how many merchants were gone through and how many items were re-sealed.
pub async fn rekey(store: &(impl MerchantStore + SecretsAtRest)) -> Result<(usize, usize), AdminError> {
    let merchants = list_merchants(store).await?;
    let mut resealed = 0;
    for merchant in &merchants {
        resealed += store.reseal_merchant(&merchant.id).await?;
    }
    Ok((merchants.len(), resealed))
}
