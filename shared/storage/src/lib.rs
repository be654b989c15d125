//! Storage and queues for the webhook platform.
//!
//! [`ports`] holds the traits the functions speak through. Two adapters implement them:
//! [`aws`] (DynamoDB single table + SQS; `docs/data-model.md`) and [`embedded`] (SQLite in
//! WAL mode, durable across `kill -9`, for the local stack). The rules both must follow
//! (the fan-out lease, attempt sort keys, conflicts, retention) are written once in
//! `rules`, and the same conformance suite (`tests/tests/storage_conformance.rs`) runs
//! against both.

#![warn(missing_docs)]

pub mod aws;
pub mod embedded;
mod error;
mod held_release;
pub mod page;
pub mod ports;
mod rules;
mod sealed;

pub use error::{Entity, StoreError};
pub use held_release::{HeldRelease, RELEASE_LEASE, Released, pass_on_held};
pub use page::{CursorCodec, Page, PageRequest};
pub use ports::{
    AttemptRecorded, AuthCallbackStore, Backend, ClaimedDelivery, DeliveryLog, DeliveryRecovery, EndpointBreaker,
    EventStore, HandOff, HeldTask, LogPosition, MerchantStore, OutgoingMessage, ParkedRetries, ParkedTask, Queue,
    QueueReceiver, QueueSender, ReceivedMessage, Recorded, RecoveryPage, RecoveryScope, RequestCounters, SecretsAtRest,
    SubscriptionStore,
};
pub use rules::due_index::DUE_INDEX_SHARDS;
pub use rules::retention::DEFAULT_RETENTION;
pub use rules::shard::{DEFAULT_SUBSCRIPTION_SHARDS, MAX_SUBSCRIPTION_SHARDS};
pub use webhooks_keyring::{KEY_FILE_NAME, Keyring, KeyringStats, LocalKeys};
