//! Subscriptions: where a merchant wants which events, and the secrets that sign them
//! (kept apart: the store seals them, and only those that sign or show them open them).

use serde::{Deserialize, Serialize};
use time::Duration;

use crate::event::{EventName, IsoTime};
use crate::health::EndpointHealth;
use crate::merchant::random_hex;

/// The shortest secret a merchant may choose, in characters.
pub const MIN_SECRET_CHARS: usize = 16;
/// The longest secret a merchant may choose, in characters.
pub const MAX_SECRET_CHARS: usize = 128;
/// The longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 256;
/// The highest `rateLimitPerSecond` a subscription may set.
pub const MAX_RATE_LIMIT_PER_SECOND: u32 = 1000;
/// How long a rotated-out secret keeps signing the Standard Webhooks headers.
pub const PREVIOUS_SECRET_GRACE: Duration = Duration::hours(24);

/// A merchant's webhook endpoint. Its `Debug` shows the URL redacted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// Its id, `sub_` + 16 random bytes in hex.
    pub id: String,
    /// The owner.
    pub merchant_id: String,
    /// Where webhooks go.
    pub url: String,
    /// The events it takes (never empty).
    pub events: Vec<EventName>,
    /// Free text for the merchant.
    pub description: String,
    /// Disabled subscriptions receive nothing; pending deliveries are skipped.
    pub enabled: bool,
    /// At most this many deliveries a second reach its endpoint, across all containers
    /// (1 to [`MAX_RATE_LIMIT_PER_SECOND`]); `None`: no limit. Stored subscriptions
    /// without it have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_second: Option<u32>,
    /// When it was created.
    pub created_at: IsoTime,
    /// When it last changed.
    pub updated_at: IsoTime,
    /// How many times it has been replaced since it was created: a replace is stored only
    /// if the stored version is still the one its writer read, so concurrent changes never
    /// undo each other. New subscriptions start at 0; so do items stored before versions.
    #[serde(default)]
    pub version: u64,
    /// Its endpoint's health. Kept by the store beside the subscription (so deliver can
    /// change it without a versioned replace), never inside its stored document.
    #[serde(default, skip_serializing)]
    pub health: EndpointHealth,
}

impl Subscription {
    /// Its endpoint's key in the circuit breaker's index: `{merchantId}#{subscriptionId}`.
    pub fn endpoint_key(&self) -> String {
        format!("{}#{}", self.merchant_id, self.id)
    }

    /// A new subscription id.
    pub fn new_id() -> String {
        format!("sub_{}", random_hex(16))
    }

    /// Whether this subscription takes `event`.
    pub fn takes(&self, event: EventName) -> bool {
        self.events.contains(&event)
    }
}

/// The current secret, and during a rotation the previous one until it expires.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningSecrets {
    /// Signs the body's seed signature and the first `v1` header entry.
    pub current: String,
    /// The secret before the last rotation, still signing headers until `expires_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousSecret>,
}

/// A rotated-out secret and the end of its grace period.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviousSecret {
    /// The old secret.
    pub secret: String,
    /// When it stops signing.
    pub expires_at: IsoTime,
}

impl SigningSecrets {
    /// Secrets for a new subscription: the merchant's choice or 32 random bytes in hex.
    pub fn new(chosen: Option<String>) -> Self {
        Self {
            current: chosen.unwrap_or_else(generate_secret),
            previous: None,
        }
    }

    /// Replaces the current secret with a new random one; the old one keeps signing the
    /// headers for [`PREVIOUS_SECRET_GRACE`] after `now`.
    pub fn rotate(&mut self, now: IsoTime) {
        let old = std::mem::replace(&mut self.current, generate_secret());
        let expires_at = IsoTime::new(now.instant() + PREVIOUS_SECRET_GRACE).unwrap_or(now);
        self.previous = Some(PreviousSecret {
            secret: old,
            expires_at,
        });
    }

    /// The secrets that sign the Standard Webhooks header at `now`: current first.
    pub fn active(&self, now: IsoTime) -> Vec<&str> {
        let mut keys = vec![self.current.as_str()];
        if let Some(previous) = &self.previous
            && now < previous.expires_at
        {
            keys.push(previous.secret.as_str());
        }
        keys
    }
}

/// A new random secret: 32 bytes in hex.
pub fn generate_secret() -> String {
    random_hex(32)
}

/// Why a merchant-chosen secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("secret must be 16 to 128 printable ASCII characters without spaces")]
pub struct BadSecret;

/// Checks a merchant-chosen secret: 16 to 128 printable ASCII characters, no spaces.
pub fn validate_secret(secret: &str) -> Result<(), BadSecret> {
    let len_ok = (MIN_SECRET_CHARS..=MAX_SECRET_CHARS).contains(&secret.len());
    if len_ok && secret.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(BadSecret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> IsoTime {
        IsoTime::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn rotation_keeps_the_old_secret_for_a_day() {
        let mut secrets = SigningSecrets::new(Some("first-secret-0123456".into()));
        secrets.rotate(at("2026-01-01T00:00:00Z"));
        assert_ne!(secrets.current, "first-secret-0123456");
        assert_eq!(secrets.current.len(), 64);
        assert_eq!(
            secrets.active(at("2026-01-01T23:59:59.999Z")),
            vec![secrets.current.as_str(), "first-secret-0123456"]
        );
        assert_eq!(
            secrets.active(at("2026-01-02T00:00:00Z")),
            vec![secrets.current.as_str()]
        );
    }

    #[test]
    fn chosen_secrets_are_checked() {
        assert_eq!(validate_secret("0123456789abcdef"), Ok(()));
        assert_eq!(validate_secret(&"x".repeat(128)), Ok(()));
        for bad in [
            "short",
            "0123456789abcde",
            "has space in it 123",
            "tab\tinside-0123456",
            "ünicode-0123456789",
        ] {
            assert_eq!(validate_secret(bad), Err(BadSecret), "{bad:?}");
        }
        assert_eq!(validate_secret(&"x".repeat(129)), Err(BadSecret));
    }

    #[test]
    fn a_rate_limit_is_stored_as_rate_limit_per_second_and_absent_means_none() {
        let stored = serde_json::json!({
            "id": "sub_1", "merchantId": "m_1", "url": "https://merchant.example/hook",
            "events": ["crypto_delivered"], "description": "", "enabled": true,
            "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:00.000Z",
        });
        let mut subscription: Subscription = serde_json::from_value(stored).unwrap();
        assert_eq!(subscription.rate_limit_per_second, None, "stored before rate limits");
        let document = serde_json::to_value(&subscription).unwrap();
        assert!(document.get("rateLimitPerSecond").is_none(), "left out: {document}");
        subscription.rate_limit_per_second = Some(5);
        let document = serde_json::to_value(&subscription).unwrap();
        assert_eq!(document["rateLimitPerSecond"], 5);
        assert_eq!(serde_json::from_value::<Subscription>(document).unwrap(), subscription);
    }
}
