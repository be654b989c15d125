//! OAuth 2 client-credentials tokens: fetched from the merchant's token endpoint and kept
//! until shortly before they expire.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

/// A token is refreshed this long before it expires, or halfway through shorter lifetimes.
const REFRESH_MARGIN: Duration = Duration::seconds(30);
/// How long a token whose response has no `expires_in` is kept, in seconds.
const DEFAULT_LIFETIME_SECS: u64 = 300;
/// The most tokens kept; beyond it expired ones are dropped, and then new ones are not kept.
const MAX_TOKENS: usize = 10_000;

/// Which token: one per merchant, token endpoint, client, client secret and scope, so that
/// a changed secret or scope fetches a new token. The key holds the secret's SHA-256, never
/// the secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TokenKey {
    pub(crate) merchant_id: String,
    pub(crate) token_url: String,
    client_id: String,
    client_secret_sha256: [u8; 32],
    scope: Option<String>,
}

impl TokenKey {
    /// The key of the token of these credentials.
    pub(crate) fn new(
        merchant_id: &str,
        token_url: &str,
        client_id: &str,
        client_secret: &str,
        scope: Option<&str>,
    ) -> Self {
        Self {
            merchant_id: merchant_id.to_owned(),
            token_url: token_url.to_owned(),
            client_id: client_id.to_owned(),
            client_secret_sha256: Sha256::digest(client_secret.as_bytes()).into(),
            scope: scope.map(str::to_owned),
        }
    }
}

/// A token endpoint's answer (RFC 6749 §5.1); `expires_in` may come as a number or a string.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<Value>,
    #[serde(default)]
    token_type: Option<String>,
}

impl TokenResponse {
    /// The bearer token and how long it may be used, or why it cannot be.
    pub(crate) fn into_bearer(self) -> Result<(String, Duration), &'static str> {
        if self.access_token.trim().is_empty() {
            return Err("the token endpoint returned an empty access_token");
        }
        if self.token_type.is_some_and(|kind| !kind.eq_ignore_ascii_case("bearer")) {
            return Err("the token endpoint returned a token_type other than bearer");
        }
        let lifetime_secs = match self.expires_in {
            None | Some(Value::Null) => DEFAULT_LIFETIME_SECS,
            Some(value) => value
                .as_u64()
                .or_else(|| value.as_str().and_then(|text| text.trim().parse().ok()))
                .ok_or("the token endpoint returned an expires_in that is not a whole number")?,
        };
        let lifetime = Duration::seconds(i64::try_from(lifetime_secs).unwrap_or(i64::MAX));
        Ok((self.access_token, usable_for(lifetime)))
    }
}

/// How long a token that lives `lifetime` is used: until [`REFRESH_MARGIN`] before it
/// expires, or half its lifetime when that is shorter.
fn usable_for(lifetime: Duration) -> Duration {
    lifetime - REFRESH_MARGIN.min(lifetime / 2)
}

/// A token and when it is fetched again; its `Debug` shows no token.
struct CachedToken {
    access_token: String,
    refresh_at: OffsetDateTime,
}

impl fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedToken")
            .field("access_token", &"<redacted>")
            .field("refresh_at", &self.refresh_at)
            .finish()
    }
}

/// The tokens in use, shared by every decision of the process.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    tokens: Mutex<HashMap<TokenKey, CachedToken>>,
}

impl TokenCache {
    /// The token for `key` if it is still good at `now`.
    pub(crate) fn get(&self, key: &TokenKey, now: OffsetDateTime) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens
            .get(key)
            .filter(|token| now < token.refresh_at)
            .map(|token| token.access_token.clone())
    }

    /// Keeps `access_token` for `usable_for` from `now`.
    pub(crate) fn put(&self, key: TokenKey, access_token: String, usable_for: Duration, now: OffsetDateTime) {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if tokens.len() >= MAX_TOKENS {
            tokens.retain(|_, token| now < token.refresh_at);
        }
        if tokens.len() < MAX_TOKENS || tokens.contains_key(&key) {
            let refresh_at = now.saturating_add(usable_for);
            tokens.insert(
                key,
                CachedToken {
                    access_token,
                    refresh_at,
                },
            );
        }
    }

    /// Drops `access_token` (the merchant refused it), unless another one replaced it already.
    pub(crate) fn forget(&self, key: &TokenKey, access_token: &str) {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if tokens.get(key).is_some_and(|token| token.access_token == access_token) {
            tokens.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(json: &str) -> Result<(String, Duration), &'static str> {
        serde_json::from_str::<TokenResponse>(json)
            .expect("a token response")
            .into_bearer()
    }

    #[test]
    fn tokens_are_refreshed_30_seconds_early_or_halfway_through_short_lifetimes() {
        assert_eq!(usable_for(Duration::seconds(3600)), Duration::seconds(3570));
        assert_eq!(usable_for(Duration::seconds(60)), Duration::seconds(30));
        assert_eq!(usable_for(Duration::seconds(10)), Duration::seconds(5));
        assert_eq!(usable_for(Duration::seconds(1)), Duration::milliseconds(500));
        assert_eq!(usable_for(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn token_responses_are_read_leniently_but_only_bearer_tokens_are_used() {
        assert_eq!(
            bearer(r#"{"access_token":"t","expires_in":120,"token_type":"Bearer"}"#),
            Ok(("t".into(), Duration::seconds(90)))
        );
        assert_eq!(
            bearer(r#"{"access_token":"t","expires_in":"120"}"#),
            Ok(("t".into(), Duration::seconds(90)))
        );
        assert_eq!(
            bearer(r#"{"access_token":"t"}"#),
            Ok(("t".into(), Duration::seconds(270)))
        );
        assert!(bearer(r#"{"access_token":"t","token_type":"mac"}"#).is_err());
        assert!(bearer(r#"{"access_token":" "}"#).is_err());
        assert!(bearer(r#"{"access_token":"t","expires_in":-5}"#).is_err());
    }

    #[test]
    fn a_refused_token_is_forgotten_but_not_its_replacement() {
        let cache = TokenCache::default();
        let key = TokenKey::new("m_1", "https://m.example/token", "c", "s", None);
        let now = OffsetDateTime::UNIX_EPOCH;
        cache.put(key.clone(), "new".into(), Duration::seconds(60), now);
        cache.forget(&key, "old");
        assert_eq!(cache.get(&key, now).as_deref(), Some("new"));
        assert_eq!(cache.get(&key, now + Duration::seconds(60)), None);
        cache.forget(&key, "new");
        assert_eq!(cache.get(&key, now), None);
    }

    #[test]
    fn a_token_is_kept_per_client_secret_and_scope_and_neither_secret_nor_token_is_shown() {
        let key = TokenKey::new("m_1", "https://m.example/token", "c", "cs-SECRET", Some("auth"));
        let now = OffsetDateTime::UNIX_EPOCH;
        let tokens = TokenCache::default();
        tokens.put(key.clone(), "tok-SECRET".into(), Duration::seconds(60), now);
        assert_eq!(tokens.get(&key, now).as_deref(), Some("tok-SECRET"));
        for other in [
            TokenKey::new("m_1", "https://m.example/token", "c", "cs-NEW", Some("auth")),
            TokenKey::new("m_1", "https://m.example/token", "c", "cs-SECRET", Some("auth admin")),
            TokenKey::new("m_1", "https://m.example/token", "c", "cs-SECRET", None),
            TokenKey::new("m_1", "https://m.example/token", "c2", "cs-SECRET", Some("auth")),
            TokenKey::new("m_2", "https://m.example/token", "c", "cs-SECRET", Some("auth")),
        ] {
            assert_eq!(tokens.get(&other, now), None, "{other:?}");
        }
        let shown = format!("{key:?} {tokens:?}");
        assert!(!shown.contains("cs-SECRET") && !shown.contains("tok-SECRET"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
