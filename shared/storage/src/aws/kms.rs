//! The KMS key that wraps the data keys of sealed secrets, as the template makes it.

use aws_config::SdkConfig;
use aws_sdk_kms::error::ProvideErrorMetadata;
use webhooks_keyring::Keyring;

use super::backend;
use crate::StoreError;

/// A keyring whose data keys come from the KMS key `key_id` (an id, ARN or `alias/...`).
pub fn kms_keyring(config: &SdkConfig, key_id: impl Into<String>) -> Keyring {
    Keyring::kms(aws_sdk_kms::Client::new(config), key_id)
}

/// Creates a symmetric customer-managed key with yearly rotation behind `alias` (as
/// template.yaml's `SecretsKey` does), unless the alias exists.
pub(super) async fn create_secrets_key(config: &SdkConfig, alias: &str) -> Result<(), StoreError> {
    let kms = aws_sdk_kms::Client::new(config);
    match kms.describe_key().key_id(alias).send().await {
        Ok(_) => return Ok(()),
        Err(error) if error.code() == Some("NotFoundException") => {}
        Err(error) => return Err(backend("kms.DescribeKey", error)),
    }
    let created = kms
        .create_key()
        .description("webhooks: wraps the data keys of sealed secrets")
        .send()
        .await
        .map_err(|error| backend("kms.CreateKey", error))?;
    let key_id = created
        .key_metadata()
        .map(|metadata| metadata.key_id().to_owned())
        .ok_or_else(|| StoreError::backend("kms.CreateKey", "no key metadata"))?;
    kms.enable_key_rotation()
        .key_id(&key_id)
        .send()
        .await
        .map_err(|error| backend("kms.EnableKeyRotation", error))?;
    kms.create_alias()
        .alias_name(alias)
        .target_key_id(&key_id)
        .send()
        .await
        .map_err(|error| backend("kms.CreateAlias", error))?;
    Ok(())
}
