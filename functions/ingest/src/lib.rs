//! Ingest: one events-queue message in, one delivery task per matching subscription out.
//!
//! The protocol is crash-safe: record the event (dedupe by id), enqueue the tasks, then mark
//! it fanned out. An event redelivered after a crash anywhere in between is recorded but
//! not marked, so it is fanned out again: a merchant may get a duplicate (same
//! `webhook-id`), never nothing.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::{StreamExt, TryStreamExt};
use webhooks_domain::{Clock, DeliveryTask, EventError, PlatformEvent};
use webhooks_runtime::{BatchError, process_batch};
use webhooks_storage::ports::MAX_BATCH;
use webhooks_storage::{EventStore, OutgoingMessage, PageRequest, Queue, Recorded, StoreError, SubscriptionStore};

/// Subscriptions read per store page during fan-out.
pub const FAN_OUT_PAGE_SIZE: usize = 100;
/// Batch sends to the deliveries queue in flight at once during fan-out.
pub const FAN_OUT_CONCURRENT_BATCHES: usize = 5;
/// How long a worker holds an event's fan-out before another may take it over (the
/// ingest function's timeout is well below it).
pub const FAN_OUT_LEASE: Duration = Duration::from_secs(60);

/// What ingesting one valid event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Fanned out to this many subscriptions (a resumed fan-out counts them all again).
    FannedOut(usize),
    /// The event id was fully fanned out before: nothing sent.
    Duplicate,
}

/// Why a record must be left to SQS for redelivery.
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

/// The ingest function's dependencies: the store, the deliveries queue, the events queue
/// (for its dead-letter queue) and the clock.
pub struct Ingest<S, Q> {
    store: S,
    deliveries: Q,
    events: Q,
    clock: Arc<dyn Clock>,
    fan_out_lease: Duration,
}

impl<S: EventStore + SubscriptionStore, Q: Queue> Ingest<S, Q> {
    /// Ingest over these ports.
    pub fn new(store: S, deliveries: Q, events: Q, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            deliveries,
            events,
            clock,
            fan_out_lease: FAN_OUT_LEASE,
        }
    }

    /// The same, with another fan-out lease (tests use zero to stand in for an expired one).
    pub fn with_fan_out_lease(self, fan_out_lease: Duration) -> Self {
        Self { fan_out_lease, ..self }
    }

    /// Handles an SQS batch; records that failed for a retryable reason are reported.
    pub async fn handle_batch(&self, event: SqsEvent) -> Result<SqsBatchResponse, BatchError> {
        process_batch(event, |record| async move { self.handle_record(&record).await }).await
    }

    /// Handles one events-queue message. A malformed one goes to the DLQ with its reason and
    /// counts as handled, so it never blocks the batch.
    pub async fn handle_record(&self, record: &SqsMessage) -> Result<(), IngestError> {
        let body = record.body.as_deref().unwrap_or_default();
        match self.parse(body) {
            Ok(event) => self.ingest(&event).await.map(|_| ()),
            Err(reason) => {
                tracing::warn!(
                    message_id = record.message_id.as_deref().unwrap_or_default(),
                    code = reason.code(),
                    %reason,
                    "malformed event sent to the dead-letter queue"
                );
                self.events
                    .send_dead_letter(body, &format!("{}: {reason}", reason.code()))
                    .await?;
                Ok(())
            }
        }
    }

    /// Validates an events-queue message (also used to answer `/local/events` callers).
    pub fn parse(&self, body: &str) -> Result<PlatformEvent, EventError> {
        PlatformEvent::parse(body.as_bytes(), self.clock.now())
    }

    /// Records, fans out and marks one valid event.
    pub async fn ingest(&self, event: &PlatformEvent) -> Result<IngestOutcome, IngestError> {
        let event = match self.store.record_event(event, self.fan_out_lease).await? {
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
        let count = self.fan_out(&event).await?;
        self.store.mark_fanned_out(&event.event_id).await?;
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
    async fn fan_out(&self, event: &PlatformEvent) -> Result<usize, IngestError> {
        let mut page = PageRequest::first(FAN_OUT_PAGE_SIZE);
        let mut total = 0;
        loop {
            let subscriptions = self
                .store
                .subscriptions_for_event(&event.merchant_id, event.event_name, page.clone())
                .await?;
            let tasks: Vec<OutgoingMessage> = subscriptions
                .items
                .iter()
                .map(|subscription| task_message(&DeliveryTask::first(event.clone(), subscription.id.clone())))
                .collect();
            total += tasks.len();
            let chunks: Vec<Vec<OutgoingMessage>> = tasks.chunks(MAX_BATCH).map(<[_]>::to_vec).collect();
            futures::stream::iter(chunks)
                .map(|chunk| self.send_tasks(chunk))
                .buffer_unordered(FAN_OUT_CONCURRENT_BATCHES)
                .try_collect::<()>()
                .await?;
            match subscriptions.next_cursor {
                Some(cursor) => page.cursor = Some(cursor),
                None => return Ok(total),
            }
        }
    }

    async fn send_tasks(&self, chunk: Vec<OutgoingMessage>) -> Result<(), IngestError> {
        let total = chunk.len();
        let results = self.deliveries.send_batch(chunk).await?;
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
}

/// A delivery task as a queue message, sent at once.
pub fn task_message(task: &DeliveryTask) -> OutgoingMessage {
    let body = serde_json::to_string(task).expect("delivery tasks serialize");
    OutgoingMessage {
        body,
        delay: Duration::ZERO,
    }
}
