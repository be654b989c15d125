//! The decision as answered and as logged.

use sha2::{Digest, Sha256};
use tokio::time::Instant;
use webhooks_domain::Verdict;

use crate::denial::Denial;
use crate::request::AuthDecision;

/// How many hex characters of the email's SHA-256 the logs carry.
const EMAIL_HASH_HEX_CHARS: usize = 12;

/// The decision for `outcome`, timed from `started`.
pub(crate) fn decision(outcome: Result<Verdict, Denial>, cached: bool, started: Instant) -> AuthDecision {
    let (allowed, reason) = match outcome {
        Ok(verdict) => (verdict.allowed, verdict.reason),
        Err(denial) => (false, denial.reason().to_owned()),
    };
    AuthDecision {
        allowed,
        reason,
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        cached,
    }
}

/// Logs the decision (the email only as a hash prefix, never a credential) and returns it.
pub(crate) fn log_decision(
    merchant_id: &str,
    email: &str,
    action: &str,
    outcome: Result<Verdict, Denial>,
    cached: bool,
    started: Instant,
) -> AuthDecision {
    let detail = outcome.as_ref().err().map(ToString::to_string);
    let decision = decision(outcome, cached, started);
    let email_hash = &hex::encode(Sha256::digest(email.as_bytes()))[..EMAIL_HASH_HEX_CHARS];
    tracing::info!(
        merchant_id,
        email_sha256 = email_hash,
        action,
        allowed = decision.allowed,
        reason = %decision.reason,
        latency_ms = decision.latency_ms,
        cached,
        detail,
        "auth decision"
    );
    decision
}
