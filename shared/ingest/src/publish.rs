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
use webhooks_domain::{DeliveryTask, PlatformEvent};
use webhooks_storage::ports::MAX_BATCH;
use webhooks_storage::{
    EventStore, OutgoingMessage, PageRequest, QueueSender, Recorded, StoreError, SubscriptionStore,
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
    let event = match store.record_event(event, lease).await? {
        Recorded::InProgress => return Err(IngestError::FanOutInProgress(event.event_id.clone())),
        Recorded::AlreadyFannedOut(_) => {
            tracing::info!(event_id = %event.event_id, merchant_id = %event.merchant_id, "duplicate event ignored");
            return Ok(IngestOutcome::Duplicate);
        }
        Recorded::New => event.clone(),
        Recorded::PendingFanOut(stored) => {
            tracing::info!(event_id = %stored.event_id, "resuming an unfinished fan-out");
            stored
        }
    };
    let count = match audience {
        Audience::Subscribers => fan_out(store, deliveries, &event).await?,
        Audience::Only(subscription_id) => {
            enqueue(
                deliveries,
                &[DeliveryTask::first(event.clone(), subscription_id.to_owned())],
            )
            .await?;
            1
        }
    };
    store.mark_fanned_out(&event.event_id).await?;
    tracing::info!(
        event_id = %event.event_id,
        merchant_id = %event.merchant_id,
        event_name = %event.event_name,
        subscriptions = count,
        "event fanned out"
    );
    Ok(IngestOutcome::FannedOut(count))
}

/// Enqueues one first-attempt task per enabled subscription taking the event, page by
/// page, in concurrent batches of ten.
async fn fan_out<S: SubscriptionStore, Q: QueueSender>(
    store: &S,
    deliveries: &Q,
    event: &PlatformEvent,
) -> Result<usize, IngestError> {
    let mut page = PageRequest::first(FAN_OUT_PAGE_SIZE);
    let mut total = 0;
    loop {
        let subscriptions = store
            .subscriptions_for_event(&event.merchant_id, event.event_name, page.clone())
            .await?;
        let tasks: Vec<DeliveryTask> = subscriptions
            .items
            .iter()
            .map(|subscription| DeliveryTask::first(event.clone(), subscription.id.clone()))
            .collect();
        total += tasks.len();
        // Owned chunks: a stream of borrowed slices makes the future not `Send` for every lifetime.
        let chunks: Vec<Vec<DeliveryTask>> = tasks.chunks(MAX_BATCH).map(<[_]>::to_vec).collect();
        futures::stream::iter(chunks)
            .map(|chunk| async move { enqueue(deliveries, &chunk).await })
            .buffer_unordered(FAN_OUT_CONCURRENT_BATCHES)
            .try_collect::<()>()
            .await?;
        match subscriptions.next_cursor {
            Some(cursor) => page.cursor = Some(cursor),
            None => return Ok(total),
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
