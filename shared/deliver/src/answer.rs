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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::net::TcpListener;
    use tokio::time::Instant;
    use webhooks_domain::UrlPolicy;
    use webhooks_outbound::{BodyLimit, OutboundClient};

    use super::*;

    #[tokio::test]
    async fn a_dlq_reason_never_shows_the_urls_credentials_or_query() {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            listener.local_addr().expect("address").port()
        };
        let url = format!("https://merchant:pw-S3CRET@127.0.0.1:{port}/hook?token=T0KEN-S3CRET");
        let open = UrlPolicy {
            allow_http: true,
            allow_private: true,
        };
        let client = OutboundClient::new(open, "deliver-tests").expect("client");
        let request = client.post(&client.check(&url).expect("allowed"));
        let deadline = Instant::now() + Duration::from_secs(5);
        let refused: Answer = client.exchange(request, BodyLimit::Truncate(10), deadline).await;
        let strict = OutboundClient::new(UrlPolicy::default(), "deliver-tests").expect("client");
        let blocked: Answer = Err(strict.check(&url).expect_err("a loopback literal"));
        for (answer, kind) in [(refused, "connect_error"), (blocked, "blocked_url")] {
            let reason = describe(&answer);
            assert!(reason.starts_with(kind), "{reason}");
            assert!(
                !reason.contains("pw-S3CRET") && !reason.contains("T0KEN-S3CRET"),
                "{reason}"
            );
        }
    }
}
