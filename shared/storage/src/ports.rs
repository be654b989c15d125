//! The ports: what the functions ask of storage and queues, narrow enough that each
//! handler names exactly what it touches. Every adapter implements all of them and passes
//! the same conformance suite (`tests/tests/storage_conformance.rs`).

use std::future::Future;
use std::time::Duration;

use futures::future::join_all;

use webhooks_domain::{
    AuthCallbackConfig, DeliveryAttempt, DeliveryStatus, EndpointHealth, EventName, Merchant, PlatformEvent,
    SigningSecrets, Subscription,
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
    /// Stores a new subscription as given, version included, with its secrets sealed
    /// ([`StoreError::Conflict`] if its id exists).
    fn create_subscription(
        &self,
        subscription: &Subscription,
        secrets: &SigningSecrets,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// One subscription of a merchant, without opening its secrets.
    fn get_subscription(
        &self,
        merchant_id: &str,
        subscription_id: &str,
    ) -> impl Future<Output = Result<Option<Subscription>, StoreError>> + Send;
    /// One subscription of a merchant and its opened secrets: only for those that sign or
    /// show them (the store's keyring must be able to open them).
    fn get_subscription_with_secrets(
        &self,
        merchant_id: &str,
        subscription_id: &str,
    ) -> impl Future<Output = Result<Option<(Subscription, SigningSecrets)>, StoreError>> + Send;
    /// [`SubscriptionStore::get_subscription_with_secrets`] for each (merchant id,
    /// subscription id) of `keys`, in their order: what a batch of deliveries reads before
    /// its tasks start. By default all at once, one read each.
    fn get_subscriptions_with_secrets(
        &self,
        keys: &[(String, String)],
    ) -> impl Future<Output = Result<Vec<Option<(Subscription, SigningSecrets)>>, StoreError>> + Send {
        let reads = keys
            .iter()
            .map(|(merchant_id, subscription_id)| self.get_subscription_with_secrets(merchant_id, subscription_id));
        async move { join_all(reads).await.into_iter().collect() }
    }
    /// A merchant's subscriptions, oldest id first.
    fn list_subscriptions(
        &self,
        merchant_id: &str,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<Subscription>, StoreError>> + Send;
    /// Replaces an existing subscription and its secrets (sealed again) if it is still at
    /// `subscription.version`, the version its caller read, and stores it one version on.
    /// Refused with [`StoreError::VersionConflict`] if another write changed it since (read
    /// it again and redo the change), and [`StoreError::NotFound`] if it is gone.
    fn update_subscription(
        &self,
        subscription: &Subscription,
        secrets: &SigningSecrets,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Stores the endpoint's health beside the subscription if it is still `read` (a
    /// compare-and-swap: deliver changes it from many containers at once). `false` when it
    /// changed meanwhile (read it again) or the subscription is gone. A replace of the
    /// subscription leaves its health alone.
    fn record_health(
        &self,
        merchant_id: &str,
        subscription_id: &str,
        read: &EndpointHealth,
        next: &EndpointHealth,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
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
    /// [`EventStore::record_event`] for each of `events` (a batch): one answer per event, in
    /// order. The embedded store does it in one transaction; DynamoDB, a conditional write
    /// each (all at once).
    fn record_events(
        &self,
        events: &[PlatformEvent],
        lease: Duration,
    ) -> impl Future<Output = Vec<Result<Recorded, StoreError>>> + Send {
        join_all(events.iter().map(move |event| self.record_event(event, lease)))
    }
    /// [`EventStore::mark_fanned_out`] for each of `event_ids`: one answer per id, in order.
    fn mark_all_fanned_out(&self, event_ids: &[String]) -> impl Future<Output = Vec<Result<(), StoreError>>> + Send {
        join_all(event_ids.iter().map(|id| self.mark_fanned_out(id)))
    }
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
    /// Records attempt number `attempt.attempt` of its (event, subscription) delivery once:
    /// the attempt, the delivery's `status` and the `hand_off` (if any) in one atomic
    /// write, only if no attempt with this number or a later one was recorded before.
    fn record_attempt_once(
        &self,
        attempt: &DeliveryAttempt,
        status: DeliveryStatus,
        hand_off: Option<&HandOff>,
    ) -> impl Future<Output = Result<AttemptRecorded, StoreError>> + Send;
    /// Where it stands, if it was ever queued.
    fn delivery_status(
        &self,
        event_id: &str,
        subscription_id: &str,
    ) -> impl Future<Output = Result<Option<DeliveryStatus>, StoreError>> + Send;
}

/// What a recovery claims: the deliveries to one subscription whose first attempt was made
/// from `since_ms` (included) to `until_ms` (excluded), if their status is one of `statuses`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryScope<'a> {
    /// The subscription's merchant.
    pub merchant_id: &'a str,
    /// The subscription.
    pub subscription_id: &'a str,
    /// The window's start, in unix milliseconds, included.
    pub since_ms: i64,
    /// The window's end, in unix milliseconds, excluded.
    pub until_ms: i64,
    /// The statuses a delivery is claimed from (`webhooks_domain::RECOVERABLE`).
    pub statuses: &'a [DeliveryStatus],
}

/// A delivery a recovery claimed: its status was one of the scope's and is now pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDelivery {
    /// The event delivered.
    pub event_id: String,
    /// The number its new attempt takes: one after the highest recorded by
    /// [`DeliveryLog::record_attempt_once`].
    pub attempt: u32,
    /// Its status before the claim, to put back should its attempt not be queued.
    pub previous: DeliveryStatus,
}

/// A place in a subscription's attempt log: where a recovery's next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPosition {
    at_ms: i64,
    sort_key: String,
}

impl LogPosition {
    /// The position of the attempt whose sort key is `sort_key`, made at `at_ms`.
    pub(crate) fn new(at_ms: i64, sort_key: String) -> Self {
        Self { at_ms, sort_key }
    }

    /// When the last attempt read was made, in unix milliseconds: a later recovery whose
    /// window starts there misses nothing after it.
    pub fn at_ms(&self) -> i64 {
        self.at_ms
    }

    /// The last attempt's sort key: the next page starts after it.
    pub(crate) fn sort_key(&self) -> &str {
        &self.sort_key
    }
}

/// One page of a recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryPage {
    /// The deliveries claimed, oldest first attempt first.
    pub claimed: Vec<ClaimedDelivery>,
    /// Where the next page starts; `None` once the window's log is read to its end.
    pub next: Option<LogPosition>,
}

/// Recovering a subscription's failed deliveries: finding them in its attempt log, oldest
/// first, and claiming each once.
pub trait DeliveryRecovery: Send + Sync {
    /// Reads at most `limit` attempts of the subscription's log in the scope's window,
    /// oldest first, after `after` (the previous page's `next`), and claims each delivery
    /// whose first attempt is among them and whose status is one of the scope's: its status
    /// becomes pending, in a write conditional on the status read, so that of recoveries
    /// running at once exactly one claims it, and a claimed delivery is not claimed again
    /// until its new attempt has failed (`DeliveryTask::recovery`).
    fn claim_for_recovery(
        &self,
        scope: &RecoveryScope<'_>,
        after: Option<&LogPosition>,
        limit: usize,
    ) -> impl Future<Output = Result<RecoveryPage, StoreError>> + Send;
}

/// Each merchant's auth-callback configuration.
pub trait AuthCallbackStore: Send + Sync {
    /// The merchant's configuration, if any, its credentials opened.
    fn get_auth_callback(
        &self,
        merchant_id: &str,
    ) -> impl Future<Output = Result<Option<AuthCallbackConfig>, StoreError>> + Send;
    /// Creates or replaces it, its credentials sealed.
    fn put_auth_callback(
        &self,
        merchant_id: &str,
        config: &AuthCallbackConfig,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Removes it; `false` when there was none.
    fn delete_auth_callback(&self, merchant_id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// The sealed secrets at rest, as a whole: re-sealing them under the key that seals now
/// (`webhooks-admin rekey`, after a key change; it also seals what is still in clear).
pub trait SecretsAtRest: Send + Sync {
    /// Re-seals the secrets of one merchant's subscriptions and its auth-callback
    /// configuration, each with a compare-and-swap of its stored document: an item changed
    /// meanwhile is left as its writer sealed it. Returns how many items were re-sealed.
    fn reseal_merchant(&self, merchant_id: &str) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

/// A delivery held back while its endpoint fails (or after it was disabled for failing),
/// until a probe succeeds or its merchant recovers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldTask {
    /// Its place among the endpoint's held tasks: when it was held first, then its key.
    pub sort_key: String,
    /// The task, as a deliveries-queue message body.
    pub body: String,
    /// The shard of the endpoint's held index it was read from, where a store spreads a
    /// busy endpoint's held tasks over several (DynamoDB); `None` before it is held.
    pub shard: Option<u32>,
}

impl HeldTask {
    /// The task named `task_key`, held at `held_at_ms`.
    pub fn new(held_at_ms: i64, task_key: &str, body: String) -> Self {
        Self {
            sort_key: crate::rules::due_index::due_sort_key(held_at_ms, task_key),
            body,
            shard: None,
        }
    }
}

/// What keeps a failing endpoint from being hammered (DESIGN section 3, endpoint health):
/// a few probe slots taken across all containers, and an index of the deliveries held back
/// meanwhile, per endpoint (`{merchantId}#{subscriptionId}`).
pub trait EndpointBreaker: Send + Sync {
    /// Takes one of the endpoint's `slots` probe slots for `lease` until `until_ms`; a slot
    /// whose lease ran out by `now_ms` is free. Whether one was free.
    fn take_probe_slot(
        &self,
        endpoint: &str,
        slots: u32,
        lease: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Frees the slot `lease` holds, if it still does.
    fn release_probe_slot(&self, endpoint: &str, lease: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Holds a task until the endpoint recovers; held tasks expire after the store's retention.
    fn hold(&self, endpoint: &str, task: &HeldTask, now_ms: i64)
    -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Takes the endpoint's release lease for `lease` until `until_ms`, free when absent or
    /// run out by `now_ms`. Only its holder passes held tasks on, so that two containers
    /// (a probe, a success, a merchant's recover) never send one held task twice.
    fn take_release_lease(
        &self,
        endpoint: &str,
        lease: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Ends the release lease `lease` holds, if it still does.
    fn end_release_lease(&self, endpoint: &str, lease: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The endpoint's tasks held from `since_ms` (included) to `until_ms` (excluded), held
    /// first first, at most `limit`.
    fn held_tasks(
        &self,
        endpoint: &str,
        since_ms: i64,
        until_ms: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<HeldTask>, StoreError>> + Send;
    /// Removes held tasks that were passed on.
    fn unhold(&self, endpoint: &str, tasks: &[HeldTask]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A delivery task parked until it is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedTask {
    /// Its shard of the due-time index.
    pub shard: u32,
    /// Its place in the shard: due instant first, then its key.
    pub sort_key: String,
    /// When it is due, in unix milliseconds.
    pub due_ms: i64,
    /// The task, as a deliveries-queue message body.
    pub body: String,
    /// Set when the task goes to the deliveries queue's dead-letter queue, with this reason,
    /// instead of the queue itself (the hand-off of an exhausted delivery).
    pub dead_letter_reason: Option<String>,
}

/// What a recorded attempt hands off, written in the same atomic write as the attempt, so
/// that a crash after the record loses nothing: the task waits in the due-time index until
/// deliver (at once) or the scheduler (when due) has passed it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandOff {
    /// The task's name ([`webhooks_domain::DeliveryTask::key`]).
    pub task_key: String,
    /// When it is due, in unix milliseconds.
    pub due_ms: i64,
    /// The task, as a deliveries-queue message body.
    pub body: String,
    /// Set for the dead-letter queue, with the reason.
    pub dead_letter_reason: Option<String>,
}

impl ParkedTask {
    /// The task named `task_key`, due at `due_ms`, placed in the due-time index
    /// (`rules::due_index`): its shard and sort key.
    pub fn new(task_key: &str, due_ms: i64, body: String, dead_letter_reason: Option<String>) -> Self {
        Self {
            shard: crate::rules::due_index::shard_of(task_key),
            sort_key: crate::rules::due_index::due_sort_key(due_ms, task_key),
            due_ms,
            body,
            dead_letter_reason,
        }
    }
}

impl HandOff {
    /// The parked task this hand-off is once written.
    pub fn parked(&self) -> ParkedTask {
        ParkedTask::new(
            &self.task_key,
            self.due_ms,
            self.body.clone(),
            self.dead_letter_reason.clone(),
        )
    }
}

/// What [`DeliveryLog::record_attempt_once`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptRecorded {
    /// Recorded now, with its status and hand-off.
    Recorded,
    /// This attempt (or a later one) of the delivery was recorded before: nothing written.
    /// A redelivered task finds this and starts no second chain.
    AlreadyRecorded,
}

/// The due-time index of parked retries: a delay longer than SQS's 15 minutes waits here,
/// never in a message's visibility timeout, and the scheduler moves each task to the
/// deliveries queue once it is due. Sharded, so that one minute's due tasks spread over
/// [`crate::DUE_INDEX_SHARDS`] partitions.
pub trait ParkedRetries: Send + Sync {
    /// Parks `task` until it is due; parking the same key at the same instant twice keeps
    /// one entry.
    fn park(&self, task: &ParkedTask) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Up to `limit` tasks of `shard` due at `now_ms` or before, earliest first.
    fn due_tasks(
        &self,
        shard: u32,
        now_ms: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<ParkedTask>, StoreError>> + Send;
    /// Removes tasks that were moved to the queue; one already gone is no error.
    fn unpark(&self, tasks: &[ParkedTask]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Request counters in fixed windows, shared by every process serving the store, so that
/// a rate limit counted here holds across all Lambda containers. What a key names, how
/// long a window is and what count is too many is the caller's rule; the store only counts.
pub trait RequestCounters: Send + Sync {
    /// Adds one request to `key`'s counter for the window starting at `window_start_ms`,
    /// atomically, and returns the count with this request included. The counter is kept
    /// at least until `expires_at_ms` (the window's end), then deleted by the store's expiry.
    fn count_request(
        &self,
        key: &str,
        window_start_ms: i64,
        expires_at_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// `key`'s count for the window starting at `window_start_ms`, without adding to it
    /// (0 when nothing was counted).
    fn request_count(&self, key: &str, window_start_ms: i64) -> impl Future<Output = Result<u64, StoreError>> + Send;
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
    /// When it was sent to the queue, in unix milliseconds (SQS's `SentTimestamp`; the
    /// local stack's acceptance time): the same on every receive.
    pub sent_at_ms: i64,
}

/// SQS's longest send delay.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// SQS's longest visibility timeout.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);
/// SQS's longest long poll (`WaitTimeSeconds`): a receive asked to wait longer waits this long.
pub const MAX_WAIT: Duration = Duration::from_secs(20);
/// SQS's largest batch.
pub const MAX_BATCH: usize = 10;
/// SQS's largest message (a queue's `MaximumMessageSize` default), and largest batch payload, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// SQS's in-flight messages (received, not deleted, still hidden) per standard queue.
pub const MAX_IN_FLIGHT: usize = 120_000;
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
    /// to `wait`, cut to [`MAX_WAIT`], for the first one.
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
pub trait Backend:
    MerchantStore
    + SubscriptionStore
    + EventStore
    + DeliveryLog
    + AuthCallbackStore
    + ParkedRetries
    + RequestCounters
    + EndpointBreaker
    + DeliveryRecovery
{
}
impl<
    T: MerchantStore
        + SubscriptionStore
        + EventStore
        + DeliveryLog
        + AuthCallbackStore
        + ParkedRetries
        + RequestCounters
        + EndpointBreaker
        + DeliveryRecovery,
> Backend for T
{
}
