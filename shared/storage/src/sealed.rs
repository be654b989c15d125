//! The stored documents of the items that hold secrets, the same on both backends: a
//! subscription's signing secrets and an auth-callback configuration's credentials are
//! sealed by the store's [`Keyring`] before they are written (DESIGN section 3).
//!
//! A subscription is stored as its JSON with the sealed secrets in `sealedSecrets`; a
//! configuration as its JSON with `auth` replaced by `sealedAuth`. Each is sealed for its
//! item (merchant and id as associated data), so a sealed value copied to another item
//! does not open. Documents written before secrets were sealed (`secrets` or `auth` in
//! clear) are still read; every write seals, and [`crate::reseal`] rewrites them all.

use serde::Deserialize;
use serde_json::{Map, Value};
use webhooks_domain::{AuthCallbackConfig, SigningSecrets, Subscription};
use webhooks_keyring::{Keyring, KeyringError, SealContext};
use zeroize::Zeroizing;

use crate::StoreError;

/// The field of a subscription document that holds its sealed secrets.
const SEALED_SECRETS: &str = "sealedSecrets";
/// The field of an auth-callback document that holds its sealed `auth`.
const SEALED_AUTH: &str = "sealedAuth";
/// The field a configuration keeps its auth method in, in clear in memory.
const AUTH: &str = "auth";

fn subscription_context(merchant_id: &str, subscription_id: &str) -> SealContext {
    SealContext::new(&["subscription-secrets", merchant_id, subscription_id])
}

fn auth_callback_context(merchant_id: &str) -> SealContext {
    SealContext::new(&["auth-callback", merchant_id])
}

/// The document of `subscription`, with `secrets` sealed.
pub(crate) async fn subscription_document(
    keyring: &Keyring,
    subscription: &Subscription,
    secrets: &SigningSecrets,
) -> Result<Value, StoreError> {
    let mut document = object(subscription)?;
    let plaintext = Zeroizing::new(serde_json::to_vec(secrets).map_err(corrupt)?);
    let context = subscription_context(&subscription.merchant_id, &subscription.id);
    let sealed = keyring.seal(&plaintext, &context).await.map_err(keyring_error)?;
    document.insert(SEALED_SECRETS.into(), Value::String(sealed));
    Ok(Value::Object(document))
}

/// A subscription document's subscription, without opening its secrets.
pub(crate) fn subscription(document: &Value) -> Result<Subscription, StoreError> {
    Subscription::deserialize(document).map_err(corrupt)
}

/// A subscription document's subscription and its opened secrets.
pub(crate) async fn open_subscription(
    keyring: &Keyring,
    document: &Value,
) -> Result<(Subscription, SigningSecrets), StoreError> {
    /// Where the secrets are: sealed, or in clear in a document written before sealing.
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct StoredSecrets {
        sealed_secrets: Option<String>,
        secrets: Option<SigningSecrets>,
    }
    let found = subscription(document)?;
    let stored = StoredSecrets::deserialize(document)
        .map_err(|_| StoreError::Corrupt("subscription secrets do not decode".into()))?;
    let secrets = match stored {
        StoredSecrets {
            sealed_secrets: Some(sealed),
            ..
        } => {
            let context = subscription_context(&found.merchant_id, &found.id);
            let plaintext = keyring.open(&sealed, &context).await.map_err(keyring_error)?;
            serde_json::from_slice(&plaintext).map_err(|_| opened_but_undecodable("subscription secrets"))?
        }
        StoredSecrets {
            secrets: Some(legacy), ..
        } => legacy,
        _ => return Err(StoreError::Corrupt("subscription without secrets".into())),
    };
    Ok((found, secrets))
}

/// The document of `merchant_id`'s auth-callback `config`, with `auth` sealed.
pub(crate) async fn auth_callback_document(
    keyring: &Keyring,
    merchant_id: &str,
    config: &AuthCallbackConfig,
) -> Result<Value, StoreError> {
    let mut document = object(config)?;
    let auth = document.remove(AUTH).unwrap_or(Value::Null);
    let plaintext = Zeroizing::new(serde_json::to_vec(&auth).map_err(corrupt)?);
    let sealed = keyring
        .seal(&plaintext, &auth_callback_context(merchant_id))
        .await
        .map_err(keyring_error)?;
    document.insert(SEALED_AUTH.into(), Value::String(sealed));
    Ok(Value::Object(document))
}

/// The configuration in an auth-callback document, its `auth` opened.
pub(crate) async fn open_auth_callback(
    keyring: &Keyring,
    merchant_id: &str,
    document: Value,
) -> Result<AuthCallbackConfig, StoreError> {
    let Value::Object(mut document) = document else {
        return Err(StoreError::Corrupt("auth callback is not an object".into()));
    };
    if let Some(sealed) = document.remove(SEALED_AUTH) {
        let Value::String(sealed) = sealed else {
            return Err(StoreError::Corrupt("sealedAuth is not a string".into()));
        };
        let context = auth_callback_context(merchant_id);
        let plaintext = keyring.open(&sealed, &context).await.map_err(keyring_error)?;
        let auth =
            serde_json::from_slice(&plaintext).map_err(|_| opened_but_undecodable("auth-callback credentials"))?;
        document.insert(AUTH.into(), auth);
    }
    // serde's message may quote a value, and `auth` holds credentials: name the field only.
    AuthCallbackConfig::deserialize(Value::Object(document))
        .map_err(|_| StoreError::Corrupt("auth callback configuration does not decode".into()))
}

fn object(value: &impl serde::Serialize) -> Result<Map<String, Value>, StoreError> {
    match serde_json::to_value(value).map_err(corrupt)? {
        Value::Object(map) => Ok(map),
        _ => Err(StoreError::Corrupt("not an object".into())),
    }
}

/// Opened plaintext that does not decode; serde's message could quote it, so it is not kept.
fn opened_but_undecodable(what: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} open but do not decode"))
}

fn corrupt(error: serde_json::Error) -> StoreError {
    StoreError::Corrupt(error.to_string())
}

/// A keyring failure as a store error: a provider outage is a backend failure (retrying
/// may help); a value that does not open is corrupt.
fn keyring_error(error: KeyringError) -> StoreError {
    match error {
        KeyringError::Provider { provider, message } => StoreError::Backend {
            operation: provider,
            message,
        },
        KeyringError::Withheld(_) => StoreError::backend("keyring", error),
        KeyringError::Malformed(_) | KeyringError::UnknownKey(_) | KeyringError::Unauthentic => {
            StoreError::Corrupt(error.to_string())
        }
    }
}

/// The same subscription document with its secrets sealed anew under the current key.
pub(crate) async fn reseal_subscription(keyring: &Keyring, document: &Value) -> Result<Value, StoreError> {
    let (subscription, secrets) = open_subscription(keyring, document).await?;
    subscription_document(keyring, &subscription, &secrets).await
}

/// The same auth-callback document with its `auth` sealed anew under the current key.
pub(crate) async fn reseal_auth_callback(
    keyring: &Keyring,
    merchant_id: &str,
    document: &Value,
) -> Result<Value, StoreError> {
    let config = open_auth_callback(keyring, merchant_id, document.clone()).await?;
    auth_callback_document(keyring, merchant_id, &config).await
}
