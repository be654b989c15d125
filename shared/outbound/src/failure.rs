//! Why an outbound request failed, classified one way for every caller.

use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, PermissionDenied, UnexpectedEof};

/// A request that got no usable answer. The text never holds the URL (it may carry
/// credentials in its userinfo or query).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The policy refused the URL, before sending or at connect time (every address the
    /// name resolved to is blocked): nothing was sent.
    #[error("blocked: {0}")]
    BlockedUrl(String),
    /// No complete answer before the deadline.
    #[error("no answer within the deadline")]
    Timeout,
    /// No connection could be made, or it was lost before the answer (refused, reset,
    /// closed early, DNS failure).
    #[error("{0}")]
    Connect(String),
    /// Anything else that broke the exchange (an answer that is not HTTP, ...).
    #[error("{0}")]
    Request(String),
    /// The answer is longer than the caller accepts.
    #[error("the answer is longer than {max_bytes} bytes")]
    TooLarge {
        /// The most the caller reads.
        max_bytes: usize,
    },
}

impl Failure {
    /// The machine-readable word for it, the same in attempt records, DLQ reasons and
    /// auth decisions.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::BlockedUrl(_) => "blocked_url",
            Failure::Timeout => "timeout",
            Failure::Connect(_) => "connect_error",
            Failure::Request(_) => "request_error",
            Failure::TooLarge { .. } => "response_too_large",
        }
    }

    /// Classifies a reqwest error: a timeout; a name the guarded resolver refused (a blocked
    /// URL); a connection that could not be made, was reset, or was closed before the answer
    /// (a connection error); anything else (a request error).
    pub fn from_reqwest(error: &reqwest::Error) -> Self {
        if error.is_timeout() {
            return Failure::Timeout;
        }
        let mut blocked = false;
        let mut connection_lost = error.is_connect();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            if let Some(io) = cause.downcast_ref::<std::io::Error>() {
                blocked |= error.is_connect() && io.kind() == PermissionDenied;
                connection_lost |= matches!(
                    io.kind(),
                    BrokenPipe | ConnectionAborted | ConnectionReset | UnexpectedEof
                );
            }
            connection_lost |= cause
                .downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_incomplete_message);
            source = cause.source();
        }
        let text = describe(error);
        match (blocked, connection_lost) {
            (true, _) => Failure::BlockedUrl(text),
            (false, true) => Failure::Connect(text),
            (false, false) => Failure::Request(text),
        }
    }
}

/// The error and its causes on one line, without the URL (reqwest's own message carries it).
fn describe(error: &reqwest::Error) -> String {
    let mut text = String::from(if error.is_connect() {
        "connect failed"
    } else {
        "request failed"
    });
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
