//! Merchants and their API keys. Keys are shown once and stored only as SHA-256 hashes.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event::IsoTime;

/// The prefix of every merchant API key, so that leaked keys are easy to recognise.
pub const API_KEY_PREFIX: &str = "whk_";

/// A merchant of the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Merchant {
    /// Its id, e.g. `m_3f2a…`; the `merchantId` of events.
    pub id: String,
    /// A human name, for operators.
    pub name: String,
    /// When it was created.
    pub created_at: IsoTime,
}

impl Merchant {
    /// A new merchant id: `m_` and 16 random bytes in hex.
    pub fn new_id() -> String {
        format!("m_{}", random_hex(16))
    }
}

/// A freshly minted API key: the clear text to show once, and the hash to store. Its
/// `Debug` shows the hash only.
#[derive(Clone, PartialEq, Eq)]
pub struct NewApiKey {
    /// `whk_` + 32 random bytes in hex; never stored.
    pub clear_text: String,
    /// [`hash_api_key`] of it.
    pub hash: String,
}

impl NewApiKey {
    /// Mints a key with 256 bits of entropy.
    pub fn generate() -> Self {
        let clear_text = format!("{API_KEY_PREFIX}{}", random_hex(32));
        let hash = hash_api_key(&clear_text);
        Self { clear_text, hash }
    }
}

/// The stored form of an API key: lowercase hex SHA-256 of its UTF-8 bytes.
pub fn hash_api_key(clear_text: &str) -> String {
    hex::encode(Sha256::digest(clear_text.as_bytes()))
}

/// `bytes` random bytes from the OS-seeded generator, as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_high_entropy_and_stored_as_hashes() {
        let a = NewApiKey::generate();
        let b = NewApiKey::generate();
        assert_ne!(a.clear_text, b.clear_text);
        assert!(a.clear_text.starts_with(API_KEY_PREFIX));
        assert_eq!(a.clear_text.len(), API_KEY_PREFIX.len() + 64);
        assert_eq!(a.hash, hash_api_key(&a.clear_text));
        assert_eq!(a.hash.len(), 64);
        assert!(!a.hash.contains(&a.clear_text[API_KEY_PREFIX.len()..]));
        assert_eq!(
            hash_api_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
