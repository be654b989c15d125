//! Ingest: one events-queue message in, one delivery task per matching subscription out.
//!
//! A valid event is published by the fan-out protocol of [`publish`] (record, enqueue,
//! mark; crash-safe); a malformed one goes to the events queue's dead-letter queue with
//! its reason.

pub mod publish;

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use time::OffsetDateTime;
use webhooks_domain::{Clock, EventError, PlatformEvent};
use webhooks_runtime::metrics;
use webhooks_runtime::{BatchError, process_batch};
use webhooks_storage::{EventStore, QueueSender, SubscriptionStore};

pub use crate::publish::{
    Audience, FAN_OUT_CONCURRENT_BATCHES, FAN_OUT_LEASE, FAN_OUT_PAGE_SIZE, IngestError, IngestOutcome, enqueue,
    publish,
};

/// The ingest function's dependencies: the store, the deliveries queue, the events queue
/// (for its dead-letter queue) and the clock.
pub struct Ingest<S, Q> {
    store: S,
    deliveries: Q,
    events: Q,
    clock: Arc<dyn Clock>,
    fan_out_lease: Duration,
}

impl<S: EventStore + SubscriptionStore, Q: QueueSender> Ingest<S, Q> {
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
        let sent_at = sent_at(record).unwrap_or_else(|| {
            tracing::warn!(
                message_id = record.message_id.as_deref().unwrap_or_default(),
                "a message without SentTimestamp: a missing timeStamp defaults to now"
            );
            self.clock.now()
        });
        match PlatformEvent::parse(body.as_bytes(), sent_at) {
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
                metrics::event_malformed(reason.code());
                Ok(())
            }
        }
    }

    /// Validates a message accepted now (the local stack's `/local/events`, which then
    /// queues the normalized event, its id and time included).
    pub fn parse(&self, body: &str) -> Result<PlatformEvent, EventError> {
        PlatformEvent::parse(body.as_bytes(), self.clock.now())
    }

    /// Records, fans out and marks one valid event.
    pub async fn ingest(&self, event: &PlatformEvent) -> Result<IngestOutcome, IngestError> {
        let outcome = publish(
            &self.store,
            &self.deliveries,
            event,
            Audience::Subscribers,
            self.fan_out_lease,
        )
        .await?;
        match outcome {
            IngestOutcome::FannedOut(_) => metrics::event_ingested(event.event_name),
            IngestOutcome::Duplicate => metrics::count(metrics::EVENTS_DUPLICATE, 1),
        }
        Ok(outcome)
    }
}

/// When the message was sent to the events queue: SQS's `SentTimestamp` attribute (unix
/// milliseconds), the default of a missing `timeStamp` (DESIGN §2). A message SQS delivers
/// twice carries the same one, so it makes the same event id and body.
fn sent_at(record: &SqsMessage) -> Option<OffsetDateTime> {
    let millis: i128 = record.attributes.get("SentTimestamp")?.parse().ok()?;
    OffsetDateTime::from_unix_timestamp_nanos(millis * 1_000_000).ok()
}
