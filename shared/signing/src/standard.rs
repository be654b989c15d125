//! Standard Webhooks headers (<https://www.standardwebhooks.com>):
//! `webhook-signature: v1,<base64 HMAC_SHA256(key, "{id}.{timestamp}.{body}")>`.
//!
//! During a secret rotation the header carries one `v1,` entry per active secret,
//! separated by spaces; a verifier accepts the message when any entry matches.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::Mac;

use crate::VerifyError;

/// Header names of the scheme.
pub const HEADER_ID: &str = "webhook-id";
/// Unix seconds of the attempt.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Space-separated `v1,<base64>` signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// The prefix of a secret in the form Standard Webhooks libraries take.
pub const SECRET_PREFIX: &str = "whsec_";
/// The tolerance the Standard Webhooks libraries use, in seconds.
pub const DEFAULT_TOLERANCE_SECS: u64 = 5 * 60;

/// The secret as Standard Webhooks libraries take it: `whsec_` + base64(secret bytes).
pub fn standard_webhooks_secret(secret: &str) -> String {
    format!("{SECRET_PREFIX}{}", BASE64.encode(secret.as_bytes()))
}

/// The HMAC key behind a `whsec_…` secret (the prefix is optional, as in the libraries).
pub fn key_from_standard_secret(secret: &str) -> Result<Vec<u8>, VerifyError> {
    BASE64
        .decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
        .map_err(|_| VerifyError::MalformedHeader("secret"))
}

/// One `v1,<base64>` signature of `{id}.{timestamp}.{body}` with `key`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = crate::hmac_sha256(key);
    signed_content(&mut mac, id, timestamp, body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` value for every active key, space-separated, in the given order.
pub fn signature_header<K: AsRef<[u8]>>(keys: &[K], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|key| sign(key.as_ref(), id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Verifies the three headers against `body` with `key`, as a merchant would.
///
/// The timestamp must lie within `tolerance_secs` of `now` (unix seconds) in either
/// direction; any `v1` entry of the signature header may match; the comparison is
/// constant-time.
pub fn verify(
    key: &[u8],
    id: &str,
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    let timestamp: i64 = timestamp_header
        .trim()
        .parse()
        .map_err(|_| VerifyError::MalformedHeader(HEADER_TIMESTAMP))?;
    if now.abs_diff(timestamp) > tolerance_secs {
        return Err(VerifyError::StaleTimestamp {
            timestamp,
            now,
            tolerance_secs,
        });
    }
    let mut mac = crate::hmac_sha256(key);
    signed_content(&mut mac, id, timestamp, body);
    let mut found_any = false;
    for entry in signature_header.split_whitespace() {
        let Some(encoded) = entry.strip_prefix("v1,") else {
            continue;
        };
        found_any = true;
        let Ok(claimed) = BASE64.decode(encoded) else { continue };
        if mac.clone().verify_slice(&claimed).is_ok() {
            return Ok(());
        }
    }
    Err(if found_any {
        VerifyError::Mismatch
    } else {
        VerifyError::MissingSignature
    })
}

fn signed_content(mac: &mut impl Mac, id: &str, timestamp: i64, body: &[u8]) {
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"eventName":"payment_received"}"#;
    const NOW: i64 = 1_700_000_000;

    #[test]
    fn whsec_form_round_trips_to_the_secret_bytes() {
        let whsec = standard_webhooks_secret("my-secret");
        assert_eq!(whsec, "whsec_bXktc2VjcmV0");
        assert_eq!(key_from_standard_secret(&whsec).unwrap(), b"my-secret");
    }

    #[test]
    fn known_vector_from_the_specification_libraries() {
        // Test vector of the standardwebhooks reference libraries.
        let key = key_from_standard_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn verifies_any_of_several_signatures() {
        let header = signature_header(&[b"new".as_slice(), b"old"], "msg_1", NOW, BODY);
        assert_eq!(header.split(' ').count(), 2);
        for key in [b"new".as_slice(), b"old"] {
            assert_eq!(verify(key, "msg_1", &NOW.to_string(), &header, BODY, NOW, 300), Ok(()));
        }
        assert_eq!(
            verify(b"other", "msg_1", &NOW.to_string(), &header, BODY, NOW, 300),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn rejects_tampering_and_stale_or_future_timestamps() {
        let header = signature_header(&[b"k"], "msg_1", NOW, BODY);
        let ts = NOW.to_string();
        assert_eq!(
            verify(b"k", "msg_1", &ts, &header, b"{}", NOW, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"k", "msg_2", &ts, &header, BODY, NOW, 300),
            Err(VerifyError::Mismatch)
        );
        assert!(matches!(
            verify(b"k", "msg_1", &ts, &header, BODY, NOW + 301, 300),
            Err(VerifyError::StaleTimestamp { .. })
        ));
        assert!(matches!(
            verify(b"k", "msg_1", &ts, &header, BODY, NOW - 301, 300),
            Err(VerifyError::StaleTimestamp { .. })
        ));
        assert_eq!(
            verify(b"k", "msg_1", "soon", &header, BODY, NOW, 300),
            Err(VerifyError::MalformedHeader(HEADER_TIMESTAMP))
        );
        assert_eq!(
            verify(b"k", "msg_1", &ts, "v2,abc", BODY, NOW, 300),
            Err(VerifyError::MissingSignature)
        );
    }
}
