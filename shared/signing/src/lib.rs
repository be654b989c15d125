//! Webhook signatures, small enough for a merchant to vendor.
//!
//! Two schemes sign every webhook:
//!
//! * the **seed scheme**: the body is `{"eventName","orderId","timeStamp","signature"}` where
//!   `signature = hex(HMAC_SHA256(secret, JSON.stringify({eventName, orderId, timeStamp})))`,
//!   exactly as a merchant's Node.js code recomputes it ([`seed`]);
//! * **Standard Webhooks** headers: `webhook-id`, `webhook-timestamp` and
//!   `webhook-signature: v1,<base64 HMAC_SHA256(key, "{id}.{timestamp}.{body}")>` ([`standard`]).
//!
//! For both schemes the HMAC key is the UTF-8 bytes of the secret string. [`js_json`] writes
//! JSON byte for byte as JavaScript's `JSON.stringify` does, so that any payload we sign
//! verifies in Node.

pub mod js_json;
pub mod seed;
pub mod standard;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The body is not the JSON object the scheme signs.
    #[error("the body is not a JSON object: {0}")]
    MalformedBody(String),
    /// The body or the headers carry no signature at all.
    #[error("no signature found")]
    MissingSignature,
    /// A header the scheme needs is absent or unreadable.
    #[error("header {0} is missing or malformed")]
    MalformedHeader(&'static str),
    /// The timestamp is further from now than the tolerance allows.
    #[error("timestamp {timestamp} is more than {tolerance_secs} s away from now ({now})")]
    StaleTimestamp {
        /// The timestamp the message carried, in unix seconds.
        timestamp: i64,
        /// The verifier's clock, in unix seconds.
        now: i64,
        /// The largest accepted distance, in seconds.
        tolerance_secs: u64,
    },
    /// A signature is present but none matches.
    #[error("signature does not match")]
    Mismatch,
}

/// A keyed HMAC-SHA256 instance. HMAC takes keys of any length, so this cannot fail.
pub(crate) fn hmac_sha256(key: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// `HMAC_SHA256(key, message)`, raw bytes.
pub fn hmac_sha256_digest(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = hmac_sha256(key);
    mac.update(message);
    mac.finalize().into_bytes().into()
}
