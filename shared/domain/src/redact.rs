//! `Debug` that never shows a secret: the types holding signing secrets or API keys print
//! [`Redacted`] in their place, so a `{:?}` in a log line, a panic or a test failure cannot
//! leak them (DESIGN §3, secrets at rest). What a URL may show is
//! [`redact_url`](crate::url_policy::redact_url).

use std::fmt;

use crate::auth::AuthCallbackConfig;
use crate::merchant::NewApiKey;
use crate::subscription::{PreviousSecret, SigningSecrets, Subscription};
use crate::url_policy::redact_url;

/// Stands in for a secret in `Debug` output: prints `<redacted>`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Debug for SigningSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningSecrets")
            .field("current", &Redacted)
            .field("previous", &self.previous)
            .finish()
    }
}

impl fmt::Debug for PreviousSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreviousSecret")
            .field("secret", &Redacted)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The hash is shown: it is what the store keeps, and no key can be made from it.
impl fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewApiKey")
            .field("clear_text", &Redacted)
            .field("hash", &self.hash)
            .finish()
    }
}

/// The URL as [`redact_url`] shows it: a query string may carry a merchant's token.
impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("merchant_id", &self.merchant_id)
            .field("url", &redact_url(&self.url))
            .field("events", &self.events)
            .field("description", &self.description)
            .field("enabled", &self.enabled)
            .field("rate_limit_per_second", &self.rate_limit_per_second)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("version", &self.version)
            .finish()
    }
}

/// The URL as [`redact_url`] shows it; the auth method without its credentials.
impl fmt::Debug for AuthCallbackConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthCallbackConfig")
            .field("url", &redact_url(&self.url))
            .field("auth", &self.auth)
            .field("timeout_ms", &self.timeout_ms)
            .field("cache_ttl_seconds", &self.cache_ttl_seconds)
            .field("revision", &self.revision)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::IsoTime;

    #[test]
    fn signing_secrets_debug_without_either_secret() {
        let mut secrets = SigningSecrets::new(Some("first-secret-0123456".into()));
        let at = IsoTime::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        secrets.rotate(at);
        let shown = format!("{secrets:?} {:#?}", secrets.previous);
        assert!(!shown.contains("first-secret-0123456"), "{shown}");
        assert!(!shown.contains(&secrets.current), "{shown}");
        assert!(shown.contains("<redacted>") && shown.contains("2026-01-02"), "{shown}");
    }

    #[test]
    fn a_subscription_and_a_callback_config_debug_without_url_credentials_or_query() {
        let at = IsoTime::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        let subscription = Subscription {
            id: "sub_1".into(),
            merchant_id: "m_1".into(),
            url: "https://user:pw-1234@merchant.example/hooks?token=tok-5678#frag".into(),
            events: vec![],
            description: String::new(),
            enabled: true,
            rate_limit_per_second: None,
            created_at: at,
            updated_at: at,
            version: 2,
            health: Default::default(),
        };
        let config = AuthCallbackConfig {
            url: subscription.url.clone(),
            auth: crate::auth::AuthMethod::Bearer {
                token: "bearer-9012".into(),
            },
            timeout_ms: None,
            cache_ttl_seconds: None,
            revision: "r1".into(),
        };
        let shown = format!("{subscription:?} {config:#?}");
        for secret in ["pw-1234", "tok-5678", "frag", "bearer-9012"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("https://merchant.example/hooks"), "{shown}");
    }

    #[test]
    fn a_new_api_key_debugs_without_its_clear_text() {
        let key = NewApiKey::generate();
        let shown = format!("{key:?} {key:#?}");
        assert!(!shown.contains(&key.clear_text), "{shown}");
        assert!(!shown.contains(&key.clear_text[4..]), "{shown}");
        assert!(shown.contains(&key.hash), "{shown}");
    }
}
