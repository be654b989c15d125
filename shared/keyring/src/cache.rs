//! Data keys, and the per-process cache that keeps KMS out of the hot path.
//!
//! One data key seals for at most [`SEALING_KEY_LIFETIME`] or [`SEALING_KEY_MAX_USES`]
//! seals (far below AES-GCM's 2^32 bound for random nonces), then a new one is made. An
//! unwrapped data key is kept [`OPENED_KEY_LIFETIME`], at most [`MAX_OPENED_KEYS`] of
//! them: a deliver container opens a subscription's secret without calling KMS again.
//! Misses are taken one at a time, so a burst of opens of one key makes one call.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::KeyringError;

/// How long one data key seals new secrets.
pub(crate) const SEALING_KEY_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// How many secrets one data key seals at most.
pub(crate) const SEALING_KEY_MAX_USES: u64 = 10_000;
/// How long an unwrapped data key is kept for opening.
pub(crate) const OPENED_KEY_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// The most unwrapped data keys kept.
pub(crate) const MAX_OPENED_KEYS: usize = 1_000;

/// How often the key provider was asked, since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyringStats {
    /// New data keys (KMS GenerateDataKey calls, on AWS).
    pub data_keys_generated: u64,
    /// Data keys unwrapped (KMS Decrypt calls, on AWS).
    pub data_keys_unwrapped: u64,
}

/// A plaintext data key, ready to use, with its wrapped form.
pub(crate) struct DataKey {
    key: LessSafeKey,
    wrapped: Vec<u8>,
}

impl DataKey {
    pub(crate) fn new(plaintext: &Zeroizing<[u8; 32]>, wrapped: Vec<u8>) -> Result<Self, KeyringError> {
        let unbound = UnboundKey::new(&AES_256_GCM, plaintext.as_slice()).map_err(|_| KeyringError::Provider {
            provider: "data key",
            message: "not an AES-256 key".into(),
        })?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
            wrapped,
        })
    }

    /// The data key as its provider wrapped it.
    pub(crate) fn wrapped(&self) -> &[u8] {
        &self.wrapped
    }

    /// `nonce ‖ ciphertext ‖ tag` of `plaintext`, bound to `aad`.
    pub(crate) fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeyringError> {
        seal_with(&self.key, plaintext, aad)
    }

    /// The plaintext of [`DataKey::seal`]'s output for the same `aad`.
    pub(crate) fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyringError> {
        open_with(&self.key, sealed, aad)
    }
}

/// Fills `bytes` from the system's secure random source.
pub(crate) fn fill_random(bytes: &mut [u8]) -> Result<(), KeyringError> {
    SystemRandom::new().fill(bytes).map_err(|_| KeyringError::Provider {
        provider: "random",
        message: "no randomness".into(),
    })
}

/// AES-256-GCM with a random 96-bit nonce written in front.
pub(crate) fn seal_with(key: &LessSafeKey, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeyringError> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + AES_256_GCM.tag_len());
    out.extend_from_slice(&nonce);
    let mut body = plaintext.to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut body)
        .map_err(|_| KeyringError::Unauthentic)?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Opens [`seal_with`]'s output; any change to it or to `aad` is [`KeyringError::Unauthentic`].
pub(crate) fn open_with(key: &LessSafeKey, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyringError> {
    if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return Err(KeyringError::Malformed("shorter than a nonce and a tag"));
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyringError::Malformed("bad nonce"))?;
    let mut buffer = Zeroizing::new(body.to_vec());
    let plaintext_len = key
        .open_in_place(nonce, Aad::from(aad), &mut buffer)
        .map_err(|_| KeyringError::Unauthentic)?
        .len();
    buffer.truncate(plaintext_len);
    Ok(buffer)
}

struct SealingKey {
    key: Arc<DataKey>,
    made_at: Instant,
    uses: u64,
}

struct OpenedKey {
    key: Arc<DataKey>,
    opened_at: Instant,
}

/// The data key that seals now, and the unwrapped keys that open.
#[derive(Default)]
pub(crate) struct DataKeyCache {
    sealing: tokio::sync::Mutex<Option<SealingKey>>,
    opened: Mutex<HashMap<Vec<u8>, OpenedKey>>,
    opening: tokio::sync::Mutex<()>,
    generated: AtomicU64,
    unwrapped: AtomicU64,
}

impl DataKeyCache {
    /// The data key to seal with now, made by `generate` when there is none still good.
    pub(crate) async fn sealing_key<F, Fut>(&self, generate: F) -> Result<Arc<DataKey>, KeyringError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Zeroizing<[u8; 32]>, Vec<u8>), KeyringError>>,
    {
        let mut sealing = self.sealing.lock().await;
        let now = Instant::now();
        if let Some(current) = sealing.as_mut().filter(|current| {
            now.duration_since(current.made_at) < SEALING_KEY_LIFETIME && current.uses < SEALING_KEY_MAX_USES
        }) {
            current.uses += 1;
            return Ok(Arc::clone(&current.key));
        }
        let (plaintext, wrapped) = generate().await?;
        self.generated.fetch_add(1, Ordering::Relaxed);
        let key = Arc::new(DataKey::new(&plaintext, wrapped)?);
        self.remember_opened(Arc::clone(&key), now);
        *sealing = Some(SealingKey {
            key: Arc::clone(&key),
            made_at: now,
            uses: 1,
        });
        Ok(key)
    }

    /// The data key whose wrapped form is `wrapped`, unwrapped by `unwrap` if not kept.
    pub(crate) async fn opening_key<F, Fut>(&self, wrapped: &[u8], unwrap: F) -> Result<Arc<DataKey>, KeyringError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Zeroizing<[u8; 32]>, KeyringError>>,
    {
        if let Some(key) = self.kept(wrapped, Instant::now()) {
            return Ok(key);
        }
        let _one_at_a_time = self.opening.lock().await;
        if let Some(key) = self.kept(wrapped, Instant::now()) {
            return Ok(key);
        }
        let plaintext = unwrap().await?;
        self.unwrapped.fetch_add(1, Ordering::Relaxed);
        let key = Arc::new(DataKey::new(&plaintext, wrapped.to_vec())?);
        self.remember_opened(Arc::clone(&key), Instant::now());
        Ok(key)
    }

    pub(crate) fn stats(&self) -> KeyringStats {
        KeyringStats {
            data_keys_generated: self.generated.load(Ordering::Relaxed),
            data_keys_unwrapped: self.unwrapped.load(Ordering::Relaxed),
        }
    }

    fn kept(&self, wrapped: &[u8], now: Instant) -> Option<Arc<DataKey>> {
        let opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        opened
            .get(wrapped)
            .filter(|entry| now.duration_since(entry.opened_at) < OPENED_KEY_LIFETIME)
            .map(|entry| Arc::clone(&entry.key))
    }

    fn remember_opened(&self, key: Arc<DataKey>, now: Instant) {
        let mut opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        if opened.len() >= MAX_OPENED_KEYS {
            opened.retain(|_, entry| now.duration_since(entry.opened_at) < OPENED_KEY_LIFETIME);
        }
        if opened.len() >= MAX_OPENED_KEYS {
            // Still full of live keys: forget the oldest.
            if let Some(oldest) = opened
                .iter()
                .min_by_key(|(_, entry)| entry.opened_at)
                .map(|(wrapped, _)| wrapped.clone())
            {
                opened.remove(&oldest);
            }
        }
        opened.insert(key.wrapped.clone(), OpenedKey { key, opened_at: now });
    }
}
