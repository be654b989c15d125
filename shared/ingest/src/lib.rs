//! Ingest: one events-queue message in, one delivery task per matching subscription out.
//!
//! A valid event is published by the fan-out protocol of [`publish`] (record, enqueue,
//! mark; crash-safe); a malformed one goes to the events queue's dead-letter queue with
//! its reason.

pub mod publish;

use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use futures::future::join_all;
use time::OffsetDateTime;
use webhooks_domain::{Clock, DeliveryTask, EventError, PlatformEvent};
use webhooks_runtime::metrics;
use webhooks_runtime::{BatchError, batch_response};
use webhooks_storage::ports::MAX_BATCH;
use webhooks_storage::{EventStore, QueueSender, SubscriptionStore};

pub use crate::publish::{
    Audience, FAN_OUT_CONCURRENT_BATCHES, FAN_OUT_LEASE, FAN_OUT_PAGE_SIZE, IngestError, IngestOutcome,
    SubscriptionPages, began, enqueue, fanned_out, publish, subscriber_tasks,
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

    /// Handles an SQS batch in steps, each for the whole batch: parse every record (a
    /// malformed event goes to the DLQ), record the valid events together (one transaction
    /// on the embedded store), list each one's tasks (a page of a merchant's subscriptions
    /// is read once per batch), send all the batch's tasks together, ten to a request, then
    /// mark the events whose tasks all went out, together. A record whose step failed is
    /// reported for SQS to redeliver; its fan-out is resumed then (the protocol of [`publish`]).
    pub async fn handle_batch(&self, event: SqsEvent) -> Result<SqsBatchResponse, BatchError> {
        let records = &event.records;
        let parsed = join_all(records.iter().map(|record| self.parse_record(record))).await;
        let mut steps: Vec<Step> = Vec::with_capacity(records.len());
        let (mut positions, mut events) = (Vec::new(), Vec::new());
        for (n, parsed) in parsed.into_iter().enumerate() {
            match parsed {
                Ok(Some(event)) => {
                    positions.push(n);
                    events.push(event);
                    steps.push(Step::Done);
                }
                Ok(None) => steps.push(Step::Done),
                Err(error) => steps.push(Step::Failed(error.to_string())),
            }
        }
        let recorded = self.store.record_events(&events, self.fan_out_lease).await;
        let pages = SubscriptionPages::default();
        let pages = &pages;
        let planned = join_all(positions.into_iter().zip(&events).zip(recorded).map(
            |((n, event), recorded)| async move {
                let step = match began(event, recorded) {
                    Err(error) => Step::Failed(error.to_string()),
                    Ok(None) => {
                        metrics::count(metrics::EVENTS_DUPLICATE, 1);
                        Step::Done
                    }
                    Ok(Some(event)) => match subscriber_tasks(&self.store, &event, pages).await {
                        Ok(tasks) => Step::FanOut(FanOut { event, tasks }),
                        Err(error) => Step::Failed(error.to_string()),
                    },
                };
                (n, step)
            },
        ))
        .await;
        for (n, step) in planned {
            steps[n] = step;
        }
        let fan_outs: Vec<&FanOut> = steps
            .iter()
            .filter_map(|step| match step {
                Step::FanOut(fan_out) => Some(fan_out),
                _ => None,
            })
            .collect();
        let unsent = send_all(&self.deliveries, &fan_outs).await;
        let sent: Vec<&FanOut> = fan_outs
            .into_iter()
            .filter(|fan_out| !unsent.contains_key(&fan_out.event.event_id))
            .collect();
        let ids: Vec<String> = sent.iter().map(|fan_out| fan_out.event.event_id.clone()).collect();
        let mut marked: HashMap<String, Result<(), String>> = HashMap::new();
        for ((fan_out, id), result) in sent
            .iter()
            .zip(ids.iter())
            .zip(self.store.mark_all_fanned_out(&ids).await)
        {
            if result.is_ok() {
                fanned_out(&fan_out.event, fan_out.tasks.len());
                metrics::event_ingested(fan_out.event.event_name);
            }
            marked.insert(id.clone(), result.map_err(|error| error.to_string()));
        }
        let outcomes = records.iter().zip(steps).map(|(record, step)| {
            let outcome = match step {
                Step::Done => Ok(()),
                Step::Failed(error) => Err(error),
                Step::FanOut(fan_out) => {
                    let id = &fan_out.event.event_id;
                    match unsent.get(id) {
                        Some(error) => Err(error.clone()),
                        None => marked
                            .remove(id)
                            .unwrap_or_else(|| Err(format!("event {id} not marked"))),
                    }
                }
            };
            (record.message_id.clone(), outcome)
        });
        batch_response(outcomes)
    }

    /// Handles one events-queue message. A malformed one goes to the DLQ with its reason and
    /// counts as handled, so it never blocks the batch.
    pub async fn handle_record(&self, record: &SqsMessage) -> Result<(), IngestError> {
        match self.parse_record(record).await? {
            Some(event) => self.ingest(&event).await.map(|_| ()),
            None => Ok(()),
        }
    }

    /// The record's event, or `None` for a malformed one, which is sent to the DLQ with
    /// its reason.
    async fn parse_record(&self, record: &SqsMessage) -> Result<Option<PlatformEvent>, IngestError> {
        let body = record.body.as_deref().unwrap_or_default();
        let sent_at = sent_at(record).unwrap_or_else(|| {
            tracing::warn!(
                message_id = record.message_id.as_deref().unwrap_or_default(),
                "a message without SentTimestamp: a missing timeStamp defaults to now"
            );
            self.clock.now()
        });
        match PlatformEvent::parse(body.as_bytes(), sent_at) {
            Ok(event) => Ok(Some(event)),
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
                Ok(None)
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

/// Where a record of a batch stands: nothing (more) to do, failed (for SQS to redeliver
/// it), or an event to fan out.
enum Step {
    Done,
    Failed(String),
    FanOut(FanOut),
}

/// A recorded event and the tasks of its fan-out.
struct FanOut {
    event: PlatformEvent,
    tasks: Vec<DeliveryTask>,
}

/// Sends every task of `fan_outs` to the deliveries queue, [`MAX_BATCH`] to a request
/// whichever events they belong to, [`FAN_OUT_CONCURRENT_BATCHES`] requests at once. The
/// events some of whose tasks were not sent, with why.
async fn send_all<Q: QueueSender>(deliveries: &Q, fan_outs: &[&FanOut]) -> HashMap<String, String> {
    let tasks: Vec<DeliveryTask> = fan_outs.iter().flat_map(|fan_out| fan_out.tasks.clone()).collect();
    // Owned chunks: a stream of borrowed slices makes the future not `Send` for every lifetime.
    let chunks: Vec<Vec<DeliveryTask>> = tasks.chunks(MAX_BATCH).map(<[_]>::to_vec).collect();
    let sent: Vec<(Vec<DeliveryTask>, Result<(), IngestError>)> = futures::stream::iter(chunks)
        .map(|chunk| async move {
            let result = enqueue(deliveries, &chunk).await;
            (chunk, result)
        })
        .buffer_unordered(FAN_OUT_CONCURRENT_BATCHES)
        .collect()
        .await;
    let mut unsent = HashMap::new();
    for (chunk, result) in sent {
        if let Err(error) = result {
            for task in chunk {
                unsent.insert(task.event.event_id, error.to_string());
            }
        }
    }
    unsent
}

/// When the message was sent to the events queue: SQS's `SentTimestamp` attribute (unix
/// milliseconds), the default of a missing `timeStamp` (DESIGN §2). A message SQS delivers
/// twice carries the same one, so it makes the same event id and body.
fn sent_at(record: &SqsMessage) -> Option<OffsetDateTime> {
    let millis: i128 = record.attributes.get("SentTimestamp")?.parse().ok()?;
    OffsetDateTime::from_unix_timestamp_nanos(millis * 1_000_000).ok()
}
