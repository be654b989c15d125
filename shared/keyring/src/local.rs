//! The local stack's key-encryption keys: a file in its data directory, mode 0600.
//!
//! One key per line, `<id> <64 hex digits>`; the first line seals, every line opens (so a
//! rotation adds a line on top and `rekey` re-seals under it). The id is the first 8 hex
//! digits of the key's SHA-256 and names the key in each envelope.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::KeyringError;
use crate::cache::{fill_random, open_with, seal_with};

/// The key file's name in the data directory.
pub const KEY_FILE_NAME: &str = "secrets.key";
/// Associated data of a wrapped data key.
const WRAP_CONTEXT: &[u8] = b"webhooks-local-data-key";
/// The prefix of a local provider tag.
const PROVIDER_PREFIX: &str = "local-";

/// The provider tag of envelopes whose data key `key_id` wrapped.
pub(crate) fn provider_tag(key_id: &str) -> String {
    format!("{PROVIDER_PREFIX}{key_id}")
}

/// The keys of a key file: the first seals, all open.
pub struct LocalKeys {
    keys: Vec<(String, LessSafeKey)>,
}

impl LocalKeys {
    /// Reads `path`, first creating it (mode 0600, one new key) if it does not exist. A
    /// file that others may read is refused: chmod 600 it.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyringError> {
        if !path.exists() {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|error| file_error(path, &error))?;
            file.write_all(new_key_line()?.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|error| file_error(path, &error))?;
        }
        Self::load(path)
    }

    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Self, KeyringError> {
        let mode = fs::metadata(path)
            .map_err(|error| file_error(path, &error))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(KeyringError::Provider {
                provider: "key file",
                message: format!(
                    "{} is readable by others (mode {:o}): chmod 600 it",
                    path.display(),
                    mode & 0o777
                ),
            });
        }
        let text = Zeroizing::new(fs::read_to_string(path).map_err(|error| file_error(path, &error))?);
        let keys = text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(parse_line)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|message| KeyringError::Provider {
                provider: "key file",
                message: format!("{}: {message}", path.display()),
            })?;
        if keys.is_empty() {
            return Err(KeyringError::Provider {
                provider: "key file",
                message: format!("{} holds no key", path.display()),
            });
        }
        Ok(Self { keys })
    }

    /// Puts a new key on top of the file at `path` (it seals from now on; the others still
    /// open until `rekey` has re-sealed everything). Returns the new key's id.
    pub fn add_key(path: &Path) -> Result<String, KeyringError> {
        let old = Zeroizing::new(fs::read_to_string(path).map_err(|error| file_error(path, &error))?);
        let line = new_key_line()?;
        let id = parse_line(&line).map_err(|message| KeyringError::Provider {
            provider: "key file",
            message: message.to_owned(),
        })?;
        let staged = PathBuf::from(format!("{}.new", path.display()));
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&staged)
            .map_err(|error| file_error(&staged, &error))?;
        file.write_all(line.as_bytes())
            .and_then(|()| file.write_all(old.as_bytes()))
            .and_then(|()| file.sync_all())
            .and_then(|()| fs::rename(&staged, path))
            .map_err(|error| file_error(path, &error))?;
        Ok(id.0)
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.keys[0].0
    }

    /// A new data key, wrapped by the current key.
    pub(crate) fn generate_data_key(&self) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>), KeyringError> {
        let mut plaintext = Zeroizing::new([0u8; 32]);
        fill_random(plaintext.as_mut_slice())?;
        let wrapped = seal_with(&self.keys[0].1, plaintext.as_slice(), WRAP_CONTEXT)?;
        Ok((plaintext, wrapped))
    }

    /// The data key that the key named in `provider` wrapped.
    pub(crate) fn unwrap_data_key(&self, provider: &str, wrapped: &[u8]) -> Result<Zeroizing<[u8; 32]>, KeyringError> {
        let key = provider
            .strip_prefix(PROVIDER_PREFIX)
            .and_then(|id| self.keys.iter().find(|(key_id, _)| key_id == id))
            .map(|(_, key)| key)
            .ok_or_else(|| KeyringError::UnknownKey(provider.to_owned()))?;
        let plaintext = open_with(key, wrapped, WRAP_CONTEXT)?;
        let mut data_key = Zeroizing::new([0u8; 32]);
        if plaintext.len() != data_key.len() {
            return Err(KeyringError::Malformed("wrapped data key of the wrong length"));
        }
        data_key.copy_from_slice(&plaintext);
        Ok(data_key)
    }
}

/// A new key file line.
fn new_key_line() -> Result<String, KeyringError> {
    let mut key = Zeroizing::new([0u8; 32]);
    fill_random(key.as_mut_slice())?;
    Ok(format!("{} {}\n", key_id(key.as_slice()), hex::encode(key.as_slice())))
}

fn key_id(key: &[u8]) -> String {
    hex::encode(&Sha256::digest(key)[..4])
}

fn parse_line(line: &str) -> Result<(String, LessSafeKey), &'static str> {
    let (id, hex_key) = line.trim().split_once(' ').ok_or("a line is not `<id> <hex key>`")?;
    let bytes = Zeroizing::new(hex::decode(hex_key.trim()).map_err(|_| "a key is not hex")?);
    if key_id(&bytes) != id {
        return Err("a key does not match its id");
    }
    let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| "a key is not 32 bytes")?;
    Ok((id.to_owned(), LessSafeKey::new(unbound)))
}

fn file_error(path: &Path, error: &std::io::Error) -> KeyringError {
    KeyringError::Provider {
        provider: "key file",
        message: format!("{}: {error}", path.display()),
    }
}
