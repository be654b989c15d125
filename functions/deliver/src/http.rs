//! One webhook request: POST, bounded in time and in how much of the answer is read.

use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use url::Url;
use webhooks_domain::FailureKind;

/// The most of a response body we read; the rest is left unread.
pub const RESPONSE_READ_CAP_BYTES: usize = 64 * 1024;
/// The first bytes of the response kept in the attempt record.
pub const EXCERPT_BYTES: usize = 1024;

/// How a request ended, before it is judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The merchant answered (any status).
    Status {
        /// The status code.
        status: u16,
        /// Its Retry-After, as a delay from now.
        retry_after: Option<Duration>,
        /// The first [`EXCERPT_BYTES`] of the body, lossily decoded.
        excerpt: String,
    },
    /// No complete answer within the timeout.
    Timeout,
    /// No connection (refused, unreachable, DNS, or only blocked addresses).
    ConnectError(String),
    /// The connection broke during the exchange (reset, malformed response).
    RequestError(String),
    /// The URL is refused by the policy; nothing was sent.
    BlockedUrl(String),
}

impl Answer {
    /// Whether the delivery succeeded: a 2xx, nothing else (3xx included).
    pub fn is_success(&self) -> bool {
        matches!(self, Answer::Status { status: 200..=299, .. })
    }

    /// The attempt record's error kind, `None` on success.
    pub fn error_kind(&self) -> Option<&'static str> {
        match self {
            Answer::Status { status: 200..=299, .. } => None,
            Answer::Status { .. } => Some("http_status"),
            Answer::Timeout => Some("timeout"),
            Answer::ConnectError(_) => Some("connect_error"),
            Answer::RequestError(_) => Some("request_error"),
            Answer::BlockedUrl(_) => Some("blocked_url"),
        }
    }

    /// What the retry schedule needs to know of the failure.
    pub fn failure_kind(&self) -> FailureKind {
        match self {
            Answer::Status { status: 429, .. } => FailureKind::TooManyRequests,
            Answer::Timeout => FailureKind::Timeout,
            _ => FailureKind::Other,
        }
    }

    /// The Retry-After the merchant asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Answer::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// POSTs `body` with `headers` to `url`; the whole exchange, connect to last byte read,
/// must finish within `timeout`. Returns the answer and the time it took.
pub async fn post(
    client: &reqwest::Client,
    url: Url,
    headers: HeaderMap,
    body: String,
    timeout: Duration,
) -> (Answer, Duration) {
    let started = Instant::now();
    let exchange = async {
        let mut response = client.post(url).headers(headers).body(body).send().await?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let mut read = Vec::new();
        while read.len() < RESPONSE_READ_CAP_BYTES {
            match response.chunk().await? {
                Some(chunk) => read.extend_from_slice(&chunk[..chunk.len().min(RESPONSE_READ_CAP_BYTES - read.len())]),
                None => break,
            }
        }
        let excerpt = String::from_utf8_lossy(&read[..read.len().min(EXCERPT_BYTES)]).into_owned();
        Ok::<_, reqwest::Error>(Answer::Status {
            status,
            retry_after,
            excerpt,
        })
    };
    let answer = match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Answer::Timeout,
        Ok(Ok(answer)) => answer,
        Ok(Err(error)) if error.is_timeout() => Answer::Timeout,
        Ok(Err(error)) if error.is_connect() => Answer::ConnectError(error_chain(&error)),
        Ok(Err(error)) => Answer::RequestError(error_chain(&error)),
    };
    (answer, started.elapsed())
}

/// The error and its causes on one line (reqwest's own message says little).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `Retry-After` as seconds or as an HTTP date; a date in the past means now.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(600));
        let parsed = parse_retry_after(&later).unwrap();
        assert!(
            parsed > Duration::from_secs(590) && parsed <= Duration::from_secs(600),
            "{parsed:?}"
        );
        for junk in ["", "soon", "-5", "1.5"] {
            assert_eq!(parse_retry_after(junk), None, "{junk:?}");
        }
    }
}
