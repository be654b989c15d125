//! Envelope encryption of the secrets we keep: webhook signing secrets and auth-callback
//! credentials never reach a table in clear (DESIGN section 3).
//!
//! A secret is sealed with AES-256-GCM under a 256-bit data key, with the item's identity
//! ([`SealContext`]) as associated data, so a sealed value moved to another item does not
//! open. The data key itself is wrapped by a key-encryption key that never leaves its home:
//! a customer-managed KMS key on AWS ([`Keyring::kms`]), or a key file of the local
//! stack's data directory, mode 0600 ([`Keyring::local`]). Data keys are cached per
//! process ([`cache`]): one data key seals for at most five minutes, and an unwrapped one
//! is kept ten minutes, so a delivery costs no KMS call in the steady state.
//!
//! The wire form of a sealed value is one ASCII string:
//! `wsec1.<provider>.<wrapped data key>.<nonce ‖ ciphertext ‖ tag>`, base64url without padding.

mod cache;
mod envelope;
mod kms;
mod local;

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

pub use cache::KeyringStats;
pub use local::{KEY_FILE_NAME, LocalKeys};

use crate::cache::DataKeyCache;
use crate::envelope::Envelope;
use crate::kms::KmsKey;

/// Why a secret could not be sealed or opened. Never carries the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    /// This process holds no key: a function that neither signs nor calls.
    #[error("this process holds no key to {0} secrets with")]
    Withheld(&'static str),
    /// The stored value is not a sealed secret of a version we know.
    #[error("malformed sealed secret: {0}")]
    Malformed(&'static str),
    /// It was sealed under a key this keyring does not hold.
    #[error("sealed under key {0}, which this keyring does not hold")]
    UnknownKey(String),
    /// The key is right but the value is not what was sealed for this item: tampered, or
    /// moved from another item.
    #[error("sealed secret failed authentication (tampered, or sealed for another item)")]
    Unauthentic,
    /// The key provider (KMS, the key file) failed.
    #[error("{provider} failed: {message}")]
    Provider {
        /// `kms.GenerateDataKey`, `kms.Decrypt`, `key file`...
        provider: &'static str,
        /// What it said.
        message: String,
    },
}

/// The identity of the item a secret belongs to, bound to its ciphertext as associated
/// data: `["subscription-secrets","m_1","sub_2"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealContext(String);

impl SealContext {
    /// The context of the item named by `parts`, encoded without ambiguity (a JSON array).
    pub fn new(parts: &[&str]) -> Self {
        Self(serde_json::to_string(parts).expect("a list of strings serializes"))
    }

    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Where the key-encryption key lives.
#[derive(Clone)]
enum KeySource {
    /// A KMS key: data keys come from GenerateDataKey and are unwrapped by Decrypt.
    Kms(KmsKey),
    /// Keys in a local file; the first seals, all open.
    Local(Arc<LocalKeys>),
    /// No key at all: for functions that never read a secret.
    Withheld,
}

/// Seals and opens secrets; cheap to clone (clones share one data-key cache).
#[derive(Clone)]
pub struct Keyring {
    source: KeySource,
    cache: Arc<DataKeyCache>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            KeySource::Kms(key) => format!("kms:{}", key.key_id()),
            KeySource::Local(keys) => format!("local:{}", keys.current_id()),
            KeySource::Withheld => "withheld".to_owned(),
        };
        f.debug_struct("Keyring")
            .field("source", &source)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// Data keys from the KMS key `key_id` (an id, ARN or alias).
    pub fn kms(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Self::from_source(KeySource::Kms(KmsKey::new(client, key_id.into())))
    }

    /// Data keys wrapped by the keys of a local key file.
    pub fn local(keys: LocalKeys) -> Self {
        Self::from_source(KeySource::Local(Arc::new(keys)))
    }

    /// No key: sealing and opening fail with [`KeyringError::Withheld`]. For functions
    /// that must never read a secret (ingest, the scheduler).
    pub fn withheld() -> Self {
        Self::from_source(KeySource::Withheld)
    }

    fn from_source(source: KeySource) -> Self {
        Self {
            source,
            cache: Arc::new(DataKeyCache::default()),
        }
    }

    /// Seals `plaintext` for the item `context`: the string to store.
    pub async fn seal(&self, plaintext: &[u8], context: &SealContext) -> Result<String, KeyringError> {
        let provider = self.provider_tag("seal")?;
        let data_key = self.cache.sealing_key(|| self.new_data_key()).await?;
        let sealed = data_key.seal(plaintext, context.as_bytes())?;
        Ok(Envelope {
            provider,
            wrapped_key: data_key.wrapped().to_vec(),
            sealed,
        }
        .encode())
    }

    /// Opens what [`Keyring::seal`] returned for the same `context`.
    pub async fn open(&self, stored: &str, context: &SealContext) -> Result<Zeroizing<Vec<u8>>, KeyringError> {
        let envelope = Envelope::decode(stored)?;
        let data_key = self
            .cache
            .opening_key(&envelope.wrapped_key, || self.unwrap_data_key(&envelope))
            .await?;
        data_key.open(&envelope.sealed, context.as_bytes())
    }

    /// How many data keys were made and unwrapped (KMS calls, on AWS) since start.
    pub fn stats(&self) -> KeyringStats {
        self.cache.stats()
    }

    /// The provider tag written into envelopes sealed now.
    fn provider_tag(&self, verb: &'static str) -> Result<String, KeyringError> {
        match &self.source {
            KeySource::Kms(_) => Ok(kms::PROVIDER.to_owned()),
            KeySource::Local(keys) => Ok(local::provider_tag(keys.current_id())),
            KeySource::Withheld => Err(KeyringError::Withheld(verb)),
        }
    }

    async fn new_data_key(&self) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>), KeyringError> {
        match &self.source {
            KeySource::Kms(key) => key.generate_data_key().await,
            KeySource::Local(keys) => keys.generate_data_key(),
            KeySource::Withheld => Err(KeyringError::Withheld("seal")),
        }
    }

    async fn unwrap_data_key(&self, envelope: &Envelope) -> Result<Zeroizing<[u8; 32]>, KeyringError> {
        match &self.source {
            KeySource::Kms(key) if envelope.provider == kms::PROVIDER => key.decrypt(&envelope.wrapped_key).await,
            KeySource::Local(keys) => keys.unwrap_data_key(&envelope.provider, &envelope.wrapped_key),
            KeySource::Withheld => Err(KeyringError::Withheld("open")),
            KeySource::Kms(_) => Err(KeyringError::UnknownKey(envelope.provider.clone())),
        }
    }
}

#[cfg(test)]
mod tests;
