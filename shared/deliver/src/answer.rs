//! How one webhook request ended, judged for the attempt record, the retry schedule and
//! the DLQ reason.

use webhooks_domain::FailureKind;
use webhooks_outbound::{Failure, Reply};

/// The most of a response body we read; the rest is left unread.
pub const RESPONSE_READ_CAP_BYTES: usize = 64 * 1024;
/// The first bytes of the response kept in the attempt record.
pub const EXCERPT_BYTES: usize = 1024;

/// The merchant's answer (any status), or why there was none.
pub(crate) type Answer = Result<Reply, Failure>;

/// Whether the delivery succeeded: a 2xx, nothing else (3xx included).
pub(crate) fn is_success(answer: &Answer) -> bool {
    answer.as_ref().is_ok_and(Reply::is_success)
}

/// The attempt record's error kind, `None` on success.
pub(crate) fn error_kind(answer: &Answer) -> Option<&'static str> {
    match answer {
        Ok(reply) if reply.is_success() => None,
        Ok(_) => Some("http_status"),
        Err(failure) => Some(failure.kind()),
    }
}

/// What the retry schedule needs to know of the failure.
pub(crate) fn failure_kind(answer: &Answer) -> FailureKind {
    match answer {
        Ok(Reply { status: 429, .. }) => FailureKind::TooManyRequests,
        Err(Failure::Timeout) => FailureKind::Timeout,
        _ => FailureKind::Other,
    }
}

/// The first [`EXCERPT_BYTES`] of the body, lossily decoded.
pub(crate) fn excerpt(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body[..reply.body.len().min(EXCERPT_BYTES)]).into_owned()
}

/// A short description of a failed answer for the DLQ reason.
pub(crate) fn describe(answer: &Answer) -> String {
    match answer {
        Ok(reply) => format!("http_status {}", reply.status),
        Err(failure @ Failure::Timeout) => failure.kind().to_owned(),
        Err(failure) => format!("{} {failure}", failure.kind()),
    }
}
