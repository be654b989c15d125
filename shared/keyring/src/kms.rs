//! Data keys from AWS KMS: GenerateDataKey to seal, Decrypt to open.

use aws_sdk_kms::Client;
use aws_sdk_kms::error::DisplayErrorContext;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use zeroize::Zeroizing;

use crate::KeyringError;

/// The provider tag of envelopes whose data key KMS wrapped (the key's id is inside the
/// wrapped blob, so a rotated or replaced key still opens what it sealed).
pub(crate) const PROVIDER: &str = "kms";
/// The encryption context of every data key: IAM policies may require it
/// (`kms:EncryptionContext:purpose`), and CloudTrail shows it.
const CONTEXT_KEY: &str = "purpose";
/// Its value.
const CONTEXT_VALUE: &str = "webhooks-secrets";

/// A customer-managed KMS key.
#[derive(Clone)]
pub(crate) struct KmsKey {
    client: Client,
    key_id: String,
}

impl KmsKey {
    pub(crate) fn new(client: Client, key_id: String) -> Self {
        Self { client, key_id }
    }

    pub(crate) fn key_id(&self) -> &str {
        &self.key_id
    }

    pub(crate) async fn generate_data_key(&self) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>), KeyringError> {
        const OP: &str = "kms.GenerateDataKey";
        let output = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context(CONTEXT_KEY, CONTEXT_VALUE)
            .send()
            .await
            .map_err(|error| provider_error(OP, &error))?;
        let plaintext = to_key(OP, output.plaintext())?;
        let wrapped = output
            .ciphertext_blob()
            .ok_or_else(|| missing(OP, "CiphertextBlob"))?
            .as_ref()
            .to_vec();
        Ok((plaintext, wrapped))
    }

    pub(crate) async fn decrypt(&self, wrapped: &[u8]) -> Result<Zeroizing<[u8; 32]>, KeyringError> {
        const OP: &str = "kms.Decrypt";
        let output = self
            .client
            .decrypt()
            .ciphertext_blob(Blob::new(wrapped))
            .encryption_context(CONTEXT_KEY, CONTEXT_VALUE)
            .send()
            .await
            .map_err(|error| provider_error(OP, &error))?;
        to_key(OP, output.plaintext())
    }
}

fn to_key(op: &'static str, plaintext: Option<&Blob>) -> Result<Zeroizing<[u8; 32]>, KeyringError> {
    let bytes = plaintext.ok_or_else(|| missing(op, "Plaintext"))?.as_ref();
    let mut key = Zeroizing::new([0u8; 32]);
    if bytes.len() != key.len() {
        return Err(missing(op, "a 32-byte Plaintext"));
    }
    key.copy_from_slice(bytes);
    Ok(key)
}

fn missing(op: &'static str, what: &str) -> KeyringError {
    KeyringError::Provider {
        provider: op,
        message: format!("answer without {what}"),
    }
}

fn provider_error(op: &'static str, error: &impl std::error::Error) -> KeyringError {
    KeyringError::Provider {
        provider: op,
        message: DisplayErrorContext(error).to_string(),
    }
}
