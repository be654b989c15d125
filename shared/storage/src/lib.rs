//! Storage and queues for the webhook platform.
//!
//! [`ports`] holds the traits the functions speak through. Two adapters implement them:
//! [`aws`] (DynamoDB single table + SQS; `docs/data-model.md`) and [`embedded`] (SQLite in
//! WAL mode, durable across `kill -9`, for the local stack). The same conformance suite
//! runs against both.

pub mod aws;
pub mod embedded;
pub mod page;
pub mod ports;

pub use page::{CursorCodec, Page, PageRequest};
pub use ports::{
    AuthCallbackStore, Backend, DeliveryLog, EventStore, MerchantStore, OutgoingMessage, Queue, ReceivedMessage,
    Recorded, SubscriptionStore,
};

/// What can go wrong in a store or queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The item to change does not exist.
    #[error("not found")]
    NotFound,
    /// The item to create exists already.
    #[error("already exists: {0}")]
    Conflict(String),
    /// A pagination cursor we did not issue, or one issued for another listing.
    #[error("invalid cursor")]
    BadCursor,
    /// A receipt handle that is unknown or expired.
    #[error("invalid receipt handle")]
    BadReceipt,
    /// The backend failed (network, throttling, disk); retrying may help.
    #[error("{operation} failed: {message}")]
    Backend {
        /// The operation, e.g. `dynamodb.PutItem`.
        operation: &'static str,
        /// What the backend said.
        message: String,
    },
    /// Stored data that does not decode: a bug or manual tampering.
    #[error("stored item does not decode: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// A [`StoreError::Backend`] for `operation` from any displayable error.
    pub fn backend(operation: &'static str, error: impl std::fmt::Display) -> Self {
        StoreError::Backend {
            operation,
            message: error.to_string(),
        }
    }
}

/// How long events, attempts and delivery statuses are kept by default: 30 days (DynamoDB
/// TTL on all three; the embedded store expires events).
pub const DEFAULT_RETENTION: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);
