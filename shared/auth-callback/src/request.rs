//! What platform services ask and what they are answered.

use serde::{Deserialize, Serialize};

use crate::denial::Denial;

/// The longest email, action and merchant id we accept, in bytes.
const MAX_FIELD_BYTES: usize = 512;

/// What platform services ask: may this user of this merchant do this?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthRequest {
    /// The merchant whose callback decides.
    pub merchant_id: String,
    /// The user's email, sent to the merchant as is.
    pub email: String,
    /// What the user wants to do: `buy`, `sell`, `view_private`, ...
    pub action: String,
}

/// The answer: `{allowed, reason, latencyMs, cached}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthDecision {
    /// Whether the user may act.
    pub allowed: bool,
    /// `allowed`, or why not: `no_callback_configured`, `unknown_merchant`, `blocked_url`,
    /// `timeout`, `connect_error`, `http_status_<n>`, `not_truthy`, `token_error`,
    /// `response_too_large`, `request_error`, `store_error` or `bad_request`.
    pub reason: String,
    /// How long the decision took, in milliseconds.
    pub latency_ms: u64,
    /// Whether a positive decision was reused from the merchant's decision cache.
    pub cached: bool,
}

/// Refuses blank or oversized fields as a `bad_request`.
pub(crate) fn validate(merchant_id: &str, email: &str, action: &str) -> Result<(), Denial> {
    for (name, value) in [("merchantId", merchant_id), ("email", email), ("action", action)] {
        if value.trim().is_empty() || value.len() > MAX_FIELD_BYTES {
            return Err(Denial::BadRequest(format!(
                "{name} must be 1 to {MAX_FIELD_BYTES} bytes and not blank"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_with_blank_or_oversized_fields_are_bad_requests() {
        assert!(validate("m_1", "a@b.example", "buy").is_ok());
        for (merchant_id, email, action) in [
            ("", "a@b.example", "buy"),
            ("m_1", " ", "buy"),
            ("m_1", "a@b.example", ""),
            ("m_1", &"a".repeat(MAX_FIELD_BYTES + 1), "buy"),
        ] {
            let denial = validate(merchant_id, email, action).expect_err("invalid");
            assert_eq!(denial.reason(), "bad_request");
        }
    }
}
