//! The one fan-out protocol: record the event (dedupe by id, take its fan-out lease),
//! enqueue its delivery tasks, then mark it fanned out. Ingest publishes every valid
//! event this way; the merchant API publishes its test events the same way, to one
//! subscription.
//!
//! It is crash-safe: an event redelivered after a crash anywhere in between is recorded
//! but not marked, so it is fanned out again: a merchant may get a duplicate (same
//! `webhook-id`), never nothing.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use webhooks_domain::{DeliveryTask, EventName, PlatformEvent, Subscription};
use webhooks_runtime::BatchMemo;
use webhooks_storage::ports::MAX_BATCH;
use webhooks_storage::{
    EventStore, OutgoingMessage, Page, PageRequest, QueueSender, Recorded, StoreError, SubscriptionStore,
};

/// Subscriptions read per store page during fan-out.
pub const FAN_OUT_PAGE_SIZE: usize = 100;
/// Batch sends to the deliveries queue in flight at once during fan-out.
pub const FAN_OUT_CONCURRENT_BATCHES: usize = 5;
/// How long a worker holds an event's fan-out before another may take it over (the
/// ingest function's timeout is well below it).
pub const FAN_OUT_LEASE: Duration = Duration::from_secs(60);

/// Who an event goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience<'a> {
    /// Every enabled subscription of the event's merchant that takes its event name.
    Subscribers,
    /// This one subscription (a test event; the caller checked that it may have it).
    Only(&'a str),
}

/// What publishing one valid event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Fanned out to this many subscriptions (a resumed fan-out counts them all again).
    FannedOut(usize),
    /// The event id was fully fanned out before: nothing sent.
    Duplicate,
}

/// Why an event must be published again later (SQS redelivers its message).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The store or a queue failed; retrying may succeed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another worker is fanning this event out right now; SQS redelivers it later, when it
    /// is either done (a duplicate) or abandoned (resumed).
    #[error("event {0} is being fanned out by another worker")]
    FanOutInProgress(String),
    /// A delivery task could not be enqueued.
    #[error("{failed} of {total} delivery tasks were not enqueued: {first}")]
    Enqueue {
        /// Entries refused.
        failed: usize,
        /// Entries sent.
        total: usize,
        /// The first refusal.
        first: StoreError,
    },
}

/// Records, fans out to `audience` and marks one valid event, holding its fan-out lease
/// for `lease`.
pub async fn publish<S: EventStore + SubscriptionStore, Q: QueueSender>(
    store: &S,
    deliveries: &Q,
    event: &PlatformEvent,
    audience: Audience<'_>,
    lease: Duration,
) -> Result<IngestOutcome, IngestError> {
    let Some(event) = begin(store, event, lease).await? else {
        return Ok(IngestOutcome::Duplicate);
    };
    let tasks = match audience {
        Audience::Subscribers => subscriber_tasks(store, &event, &SubscriptionPages::default()).await?,
        Audience::Only(subscription_id) => vec![DeliveryTask::first(event.clone(), subscription_id.to_owned())],
    };
    let chunks: Vec<Vec<DeliveryTask>> = tasks.chunks(MAX_BATCH).map(<[_]>::to_vec).collect();
    futures::stream::iter(chunks)
        .map(|chunk| async move { enqueue(deliveries, &chunk).await })
        .buffer_unordered(FAN_OUT_CONCURRENT_BATCHES)
        .try_collect::<()>()
        .await?;
    finish(store, &event, tasks.len()).await
}

/// The first step: records the event and takes its fan-out lease. The event to fan out (the
/// stored one when an unfinished fan-out is resumed), or `None` when it was fanned out before.
async fn begin<S: EventStore>(
    store: &S,
    event: &PlatformEvent,
    lease: Duration,
) -> Result<Option<PlatformEvent>, IngestError> {
    began(event, store.record_event(event, lease).await)
}

/// What [`EventStore::record_event`] said of `event` means for its fan-out: go on with it
/// (the stored one when an unfinished fan-out is resumed), stop (fanned out before), or
/// try again later (another worker holds it, or the store failed).
pub fn began(
    event: &PlatformEvent,
    recorded: Result<Recorded, StoreError>,
) -> Result<Option<PlatformEvent>, IngestError> {
    match recorded? {
        Recorded::InProgress => Err(IngestError::FanOutInProgress(event.event_id.clone())),
        Recorded::AlreadyFannedOut(_) => {
            tracing::info!(event_id = %event.event_id, merchant_id = %event.merchant_id, "duplicate event ignored");
            Ok(None)
        }
        Recorded::New => Ok(Some(event.clone())),
        Recorded::PendingFanOut(stored) => {
            tracing::info!(event_id = %stored.event_id, "resuming an unfinished fan-out");
            Ok(Some(stored))
        }
    }
}

/// The last step, once every task is on the queue: marks the event fanned out.
async fn finish<S: EventStore>(store: &S, event: &PlatformEvent, count: usize) -> Result<IngestOutcome, IngestError> {
    store.mark_fanned_out(&event.event_id).await?;
    fanned_out(event, count);
    Ok(IngestOutcome::FannedOut(count))
}

/// Logs an event marked fanned out to `count` subscriptions.
pub fn fanned_out(event: &PlatformEvent, count: usize) {
    tracing::info!(
        event_id = %event.event_id,
        merchant_id = %event.merchant_id,
        event_name = %event.event_name,
        subscriptions = count,
        "event fanned out"
    );
}

/// Pages of a merchant's subscriptions taking an event name, by (merchant, event name,
/// cursor): read once per batch of events.
pub type SubscriptionPages = BatchMemo<(String, EventName, Option<String>), Page<Subscription>>;

/// One first-attempt task per enabled subscription taking the event, page by page.
pub async fn subscriber_tasks<S: SubscriptionStore>(
    store: &S,
    event: &PlatformEvent,
    pages: &SubscriptionPages,
) -> Result<Vec<DeliveryTask>, IngestError> {
    let mut cursor = None;
    let mut tasks = Vec::new();
    loop {
        let key = (event.merchant_id.clone(), event.event_name, cursor.clone());
        let page = PageRequest {
            limit: FAN_OUT_PAGE_SIZE,
            cursor: cursor.clone(),
        };
        let subscriptions = pages
            .get_or_read(key, || {
                store.subscriptions_for_event(&event.merchant_id, event.event_name, page)
            })
            .await?;
        tasks.extend(
            subscriptions
                .items
                .iter()
                .map(|subscription| DeliveryTask::first(event.clone(), subscription.id.clone())),
        );
        match subscriptions.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(tasks),
        }
    }
}

/// Sends up to [`MAX_BATCH`] tasks to the deliveries queue at once, due now; an entry the
/// queue refused fails the whole call.
pub async fn enqueue<Q: QueueSender>(deliveries: &Q, tasks: &[DeliveryTask]) -> Result<(), IngestError> {
    let messages: Vec<OutgoingMessage> = tasks
        .iter()
        .map(|task| OutgoingMessage {
            body: task.to_message_body(),
            delay: Duration::ZERO,
        })
        .collect();
    let total = messages.len();
    let results = deliveries.send_batch(messages).await?;
    let mut refused = results.into_iter().filter_map(Result::err);
    match refused.next() {
        None => Ok(()),
        Some(first) => Err(IngestError::Enqueue {
            failed: 1 + refused.count(),
            total,
            first,
        }),
    }
}
