//! The ports: what the functions ask of storage and queues, narrow enough that each
//! handler names exactly what it touches. Every adapter implements all of them and passes
//! the same conformance suite (`tests/tests/storage_conformance.rs`).

use std::future::Future;
use std::time::Duration;

use webhooks_domain::{
    AuthCallbackConfig, DeliveryAttempt, DeliveryStatus, EventName, Merchant, PlatformEvent, Subscription,
};

use crate::StoreError;
use crate::page::{Page, PageRequest};

/// Merchants and their API-key hashes.
pub trait MerchantStore: Send + Sync {
    /// Stores a new merchant with its first API key hash.
    fn create_merchant(
        &self,
        merchant: &Merchant,
        api_key_hash: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The merchant with this id.
    fn get_merchant(&self, merchant_id: &str) -> impl Future<Output = Result<Option<Merchant>, StoreError>> + Send;
    /// Merchants by id, a page at a time.
    fn list_merchants(&self, page: PageRequest) -> impl Future<Output = Result<Page<Merchant>, StoreError>> + Send;
    /// Adds another API key hash to an existing merchant.
    fn add_api_key(&self, merchant_id: &str, api_key_hash: &str)
    -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The merchant owning the key with this hash (the authentication lookup).
    fn merchant_for_api_key(
        &self,
        api_key_hash: &str,
    ) -> impl Future<Output = Result<Option<Merchant>, StoreError>> + Send;
    /// Removes a key; `false` when there was none.
    fn revoke_api_key(&self, api_key_hash: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Subscriptions, always within one merchant.
pub trait SubscriptionStore: Send + Sync {
    /// Stores a new subscription ([`StoreError::Conflict`] if its id exists).
    fn create_subscription(&self, subscription: &Subscription) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// One subscription of a merchant.
    fn get_subscription(
        &self,
        merchant_id: &str,
        subscription_id: &str,
    ) -> impl Future<Output = Result<Option<Subscription>, StoreError>> + Send;
    /// A merchant's subscriptions, oldest id first.
    fn list_subscriptions(
        &self,
        merchant_id: &str,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<Subscription>, StoreError>> + Send;
    /// Replaces an existing subscription ([`StoreError::NotFound`] if it is gone).
    fn update_subscription(&self, subscription: &Subscription) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Deletes one; `false` when there was none.
    fn delete_subscription(
        &self,
        merchant_id: &str,
        subscription_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The merchant's enabled subscriptions that take `event`, a page at a time.
    fn subscriptions_for_event(
        &self,
        merchant_id: &str,
        event: EventName,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<Subscription>, StoreError>> + Send;
}

/// What [`EventStore::record_event`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The event is new: fan it out, then mark it fanned out.
    New,
    /// Seen before, never marked fanned out, and its lease has run out (a crash
    /// mid-fan-out): the lease is taken again, fan out again.
    PendingFanOut(PlatformEvent),
    /// Another worker holds the fan-out lease right now: leave the message for later.
    InProgress,
    /// Seen and fully fanned out: a duplicate, nothing to do.
    AlreadyFannedOut(PlatformEvent),
}

/// Events, deduplicated by id, with the fan-out status that makes ingest crash-safe.
///
/// Whoever records or resumes an event holds its fan-out lease for `lease`: a duplicate
/// arriving meanwhile (the same event enqueued twice, in the same batch) is told
/// [`Recorded::InProgress`] instead of fanning out a second time.
pub trait EventStore: Send + Sync {
    /// Records the event and takes its lease if its id is new; otherwise tells what is known
    /// of it, taking the lease again when an unfinished fan-out's lease has run out.
    fn record_event(
        &self,
        event: &PlatformEvent,
        lease: Duration,
    ) -> impl Future<Output = Result<Recorded, StoreError>> + Send;
    /// Marks the event as fanned out to every subscription.
    fn mark_fanned_out(&self, event_id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The event with this id, while it is retained.
    fn get_event(&self, event_id: &str) -> impl Future<Output = Result<Option<PlatformEvent>, StoreError>> + Send;
}

/// The delivery log: every attempt, and where each (event, subscription) delivery stands.
pub trait DeliveryLog: Send + Sync {
    /// Appends one attempt.
    fn record_attempt(&self, attempt: &DeliveryAttempt) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A subscription's attempts, newest first.
    fn list_attempts(
        &self,
        merchant_id: &str,
        subscription_id: &str,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<DeliveryAttempt>, StoreError>> + Send;
    /// Sets where the delivery of `event_id` to `subscription_id` stands.
    fn set_delivery_status(
        &self,
        merchant_id: &str,
        event_id: &str,
        subscription_id: &str,
        status: DeliveryStatus,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Where it stands, if it was ever queued.
    fn delivery_status(
        &self,
        event_id: &str,
        subscription_id: &str,
    ) -> impl Future<Output = Result<Option<DeliveryStatus>, StoreError>> + Send;
}

/// Each merchant's auth-callback configuration.
pub trait AuthCallbackStore: Send + Sync {
    /// The merchant's configuration, if any.
    fn get_auth_callback(
        &self,
        merchant_id: &str,
    ) -> impl Future<Output = Result<Option<AuthCallbackConfig>, StoreError>> + Send;
    /// Creates or replaces it.
    fn put_auth_callback(
        &self,
        merchant_id: &str,
        config: &AuthCallbackConfig,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Removes it; `false` when there was none.
    fn delete_auth_callback(&self, merchant_id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The body (JSON in this system).
    pub body: String,
    /// Invisible for this long after sending (at most [`MAX_DELAY`]).
    pub delay: Duration,
}

/// A received message, invisible to other consumers until its visibility timeout ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The queue's id for the message (stable across receives).
    pub message_id: String,
    /// The handle of this receive, for delete and change-visibility.
    pub receipt_handle: String,
    /// The body.
    pub body: String,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
}

/// SQS's longest send delay.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// SQS's longest visibility timeout.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);
/// SQS's largest batch.
pub const MAX_BATCH: usize = 10;
/// Receives of an events-queue message before it moves to the DLQ (template.yaml's
/// `EventsQueue` redrive policy; the local stack's embedded queue and moto use the same).
pub const EVENTS_MAX_RECEIVE_COUNT: u32 = 5;
/// Receives of a deliveries-queue message before it moves to the DLQ (template.yaml's
/// `DeliveriesQueue` redrive policy).
pub const DELIVERIES_MAX_RECEIVE_COUNT: u32 = 6;

/// The producer side of a queue with SQS semantics: what a function that only enqueues needs.
pub trait QueueSender: Send + Sync {
    /// Sends one message.
    fn send(&self, message: OutgoingMessage) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Sends up to [`MAX_BATCH`] messages; one result per message, in order. An entry that
    /// failed is reported, never dropped silently.
    fn send_batch(
        &self,
        messages: Vec<OutgoingMessage>,
    ) -> impl Future<Output = Result<Vec<Result<(), StoreError>>, StoreError>> + Send;
    /// Sends `body` straight to this queue's dead-letter queue with the reason, e.g. for a
    /// message a Lambda handler refuses (the event source mapping deletes the original).
    fn send_dead_letter(&self, body: &str, reason: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The consumer side of a queue with SQS semantics: at-least-once, visibility timeout,
/// receive count, and a dead-letter queue after a maximum receive count.
pub trait QueueReceiver: Send + Sync {
    /// Receives up to `max` (at most 10) messages, hiding them for `visibility`; waits up
    /// to `wait` for the first one.
    fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<ReceivedMessage>, StoreError>> + Send;
    /// Makes a received message visible again after `visibility` (at most [`MAX_VISIBILITY`]).
    fn change_visibility(
        &self,
        receipt_handle: &str,
        visibility: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Deletes a received message.
    fn delete(&self, receipt_handle: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Deletes up to [`MAX_BATCH`] received messages at once; one result per handle, in order.
    fn delete_batch(
        &self,
        receipt_handles: Vec<String>,
    ) -> impl Future<Output = Result<Vec<Result<(), StoreError>>, StoreError>> + Send;
    /// How many messages the queue holds, visible, in flight or delayed (SQS: approximate).
    fn approximate_len(&self) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

/// Both sides of a queue, for code that still takes a whole queue; prefer asking for
/// [`QueueSender`] or [`QueueReceiver`].
pub trait Queue: QueueSender + QueueReceiver {}
impl<T: QueueSender + QueueReceiver> Queue for T {}

/// Everything a whole stack needs from one backend.
pub trait Backend: MerchantStore + SubscriptionStore + EventStore + DeliveryLog + AuthCallbackStore {}
impl<T: MerchantStore + SubscriptionStore + EventStore + DeliveryLog + AuthCallbackStore> Backend for T {}
