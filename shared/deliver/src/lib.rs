//! Deliver: one delivery task in, one signed POST to the merchant out, every attempt
//! recorded, retries scheduled through SQS.
//!
//! Each retry is a new message carrying the next attempt number, sent with a delay of at
//! most 15 minutes (SQS's cap) and a `notBefore` instant; a message that arrives early is
//! hidden again with a visibility timeout (at most 12 h per hop) and left to SQS. After the
//! last attempt the task goes to the dead-letter queue, from which an operator can redrive it.

mod answer;

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use tokio::time::Instant;
use webhooks_domain::{
    AttemptOutcome, Clock, DeliveryAttempt, DeliveryStatus, DeliveryTask, IsoTime, RetrySchedule, Subscription,
    UrlPolicy,
};
use webhooks_outbound::{BodyLimit, OutboundClient};
use webhooks_runtime::{BatchError, process_batch};
use webhooks_signing::seed::SeedPayload;
use webhooks_signing::standard::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, signature_header};
use webhooks_storage::ports::{MAX_DELAY, MAX_VISIBILITY};
use webhooks_storage::{DeliveryLog, OutgoingMessage, Queue, StoreError, SubscriptionStore};

pub use crate::answer::{EXCERPT_BYTES, RESPONSE_READ_CAP_BYTES};

use crate::answer::{Answer, describe, error_kind, excerpt, failure_kind, is_success};

/// The `user-agent` of every webhook.
pub const USER_AGENT: &str = concat!("ramp-webhooks/", env!("CARGO_PKG_VERSION"));
/// An early message closer than this to its due time is delivered rather than hidden again.
const DUE_SLACK: Duration = Duration::from_secs(1);

/// How deliveries behave (from the settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverConfig {
    /// Delays before each retry.
    pub retry_schedule: RetrySchedule,
    /// One request, connect to last byte read.
    pub timeout: Duration,
}

/// Why a task must be left to SQS for redelivery.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// The store or a queue failed; retrying may succeed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The task is for later; its visibility timeout now hides it until then.
    #[error("attempt {attempt} is not due for another {remaining:?}")]
    NotYetDue {
        /// The attempt number.
        attempt: u32,
        /// How long until it is due.
        remaining: Duration,
    },
}

/// What one task came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    /// The merchant answered 2xx.
    Delivered,
    /// The attempt failed; the next one is scheduled after this delay.
    RetryScheduled(Duration),
    /// The attempt failed and was the last: the task is in the DLQ.
    Exhausted,
    /// A manual retry failed; nothing more is scheduled.
    ManualFailed,
    /// The subscription is gone or disabled: nothing sent.
    Skipped,
    /// The message was not a delivery task: it is in the DLQ.
    Malformed,
}

/// The deliver function's dependencies.
pub struct Deliver<S, Q> {
    store: S,
    deliveries: Q,
    client: OutboundClient,
    config: DeliverConfig,
    clock: Arc<dyn Clock>,
}

/// The HTTP client every delivery shares: the outbound client with the webhooks'
/// `user-agent`.
pub fn http_client(policy: &UrlPolicy) -> OutboundClient {
    OutboundClient::new(*policy, USER_AGENT).expect("the webhook HTTP client builds")
}

impl<S: SubscriptionStore + DeliveryLog, Q: Queue> Deliver<S, Q> {
    /// Deliver over these ports, with one HTTP client for all requests.
    pub fn new(store: S, deliveries: Q, client: OutboundClient, config: DeliverConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            deliveries,
            client,
            config,
            clock,
        }
    }

    /// Handles an SQS batch: every task at once, so a slow merchant delays only its own.
    pub async fn handle_batch(&self, event: SqsEvent) -> Result<SqsBatchResponse, BatchError> {
        process_batch(
            event,
            |record| async move { self.handle_record(&record).await.map(|_| ()) },
        )
        .await
    }

    /// Handles one deliveries-queue message.
    pub async fn handle_record(&self, record: &SqsMessage) -> Result<TaskOutcome, DeliverError> {
        let body = record.body.as_deref().unwrap_or_default();
        let task = match DeliveryTask::from_message_body(body) {
            Ok(task) => task,
            Err(error) => {
                tracing::warn!(message_id = record.message_id.as_deref().unwrap_or_default(), %error, "malformed delivery task sent to the dead-letter queue");
                self.deliveries
                    .send_dead_letter(body, &format!("malformed_task: {error}"))
                    .await?;
                return Ok(TaskOutcome::Malformed);
            }
        };
        if let Some(remaining) = self.time_until_due(&task) {
            let receipt = record.receipt_handle.as_deref().unwrap_or_default();
            self.deliveries
                .change_visibility(receipt, remaining.min(MAX_VISIBILITY))
                .await?;
            return Err(DeliverError::NotYetDue {
                attempt: task.attempt,
                remaining,
            });
        }
        self.deliver(&task).await
    }

    fn time_until_due(&self, task: &DeliveryTask) -> Option<Duration> {
        let due = task.not_before?.instant();
        let remaining = Duration::try_from(due - self.clock.now()).ok()?;
        (remaining > DUE_SLACK).then_some(remaining)
    }

    /// Makes one attempt of `task`, records it, and schedules what comes next.
    pub async fn deliver(&self, task: &DeliveryTask) -> Result<TaskOutcome, DeliverError> {
        let event = &task.event;
        let now = self.now();
        let subscription = self
            .store
            .get_subscription(&event.merchant_id, &task.subscription_id)
            .await?;
        let Some(subscription) = subscription.filter(|s| s.enabled) else {
            let attempt = self.attempt_record(task, now, AttemptOutcome::Skipped);
            self.store.record_attempt(&attempt).await?;
            self.set_status(task, DeliveryStatus::Skipped).await?;
            tracing::info!(event_id = %event.event_id, subscription_id = %task.subscription_id, "subscription gone or disabled: delivery skipped");
            return Ok(TaskOutcome::Skipped);
        };

        let (answer, latency) = self.send(&subscription, task, now).await;
        let mut attempt = self.attempt_record(task, now, AttemptOutcome::Failed);
        attempt.latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        attempt.error = error_kind(&answer).map(str::to_owned);
        if let Ok(reply) = &answer {
            attempt.status_code = Some(reply.status);
            attempt.response_excerpt = Some(excerpt(reply));
        }

        let outcome = if is_success(&answer) {
            attempt.outcome = AttemptOutcome::Succeeded;
            self.store.record_attempt(&attempt).await?;
            self.set_status(task, DeliveryStatus::Succeeded).await?;
            TaskOutcome::Delivered
        } else if task.manual {
            self.store.record_attempt(&attempt).await?;
            TaskOutcome::ManualFailed
        } else {
            let next_attempt = task.attempt + 1;
            let delay = self.config.retry_schedule.delay_before(
                next_attempt,
                failure_kind(&answer),
                answer.as_ref().ok().and_then(|reply| reply.retry_after),
                &mut rand::rng(),
            );
            match delay {
                Some(delay) => {
                    let due = IsoTime::new(now.instant() + delay).unwrap_or(now);
                    attempt.next_attempt_at = Some(due);
                    self.store.record_attempt(&attempt).await?;
                    let next = DeliveryTask {
                        attempt: next_attempt,
                        not_before: Some(due),
                        ..task.clone()
                    };
                    self.deliveries
                        .send(OutgoingMessage {
                            body: next.to_message_body(),
                            delay: delay.min(MAX_DELAY),
                        })
                        .await?;
                    self.set_status(task, DeliveryStatus::Pending).await?;
                    TaskOutcome::RetryScheduled(delay)
                }
                None => {
                    self.store.record_attempt(&attempt).await?;
                    let reason = format!(
                        "attempts_exhausted: {} attempts, last {}",
                        task.attempt,
                        describe(&answer)
                    );
                    self.deliveries
                        .send_dead_letter(&task.to_message_body(), &reason)
                        .await?;
                    self.set_status(task, DeliveryStatus::Failed).await?;
                    TaskOutcome::Exhausted
                }
            }
        };
        tracing::info!(
            event_id = %event.event_id,
            subscription_id = %task.subscription_id,
            merchant_id = %event.merchant_id,
            event_name = %event.event_name,
            url = %subscription.url,
            attempt = task.attempt,
            status = attempt.status_code,
            error = attempt.error.as_deref(),
            latency_ms = attempt.latency_ms,
            next_attempt_at = attempt.next_attempt_at.map(|t| t.to_string()),
            outcome = ?outcome,
            "delivery attempt"
        );
        Ok(outcome)
    }

    /// Signs the body and headers and POSTs them; an URL the policy refuses is not sent.
    async fn send(&self, subscription: &Subscription, task: &DeliveryTask, now: IsoTime) -> (Answer, Duration) {
        let url = match self.client.check(&subscription.url) {
            Ok(url) => url,
            Err(blocked) => return (Err(blocked), Duration::ZERO),
        };
        let event = &task.event;
        let time_stamp = event.time_stamp.to_string();
        let payload = SeedPayload {
            event_name: event.event_name.as_str(),
            order_id: &event.order_id,
            time_stamp: &time_stamp,
        };
        let body = payload.signed_body(subscription.secrets.current.as_bytes());
        let timestamp = now.instant().unix_timestamp();
        let keys: Vec<&[u8]> = subscription
            .secrets
            .active(now)
            .into_iter()
            .map(str::as_bytes)
            .collect();
        let signature = signature_header(&keys, &event.event_id, timestamp, body.as_bytes());
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let header = |value: &str| HeaderValue::from_str(value).expect("ids, numbers and base64 are header-safe");
        headers.insert(HEADER_ID, header(&event.event_id));
        headers.insert(HEADER_TIMESTAMP, header(&timestamp.to_string()));
        headers.insert(HEADER_SIGNATURE, header(&signature));
        let started = Instant::now();
        let request = self.client.post(&url).headers(headers).body(body);
        let limit = BodyLimit::Truncate(RESPONSE_READ_CAP_BYTES);
        let answer = self
            .client
            .exchange(request, limit, started + self.config.timeout)
            .await;
        (answer, started.elapsed())
    }

    fn attempt_record(&self, task: &DeliveryTask, now: IsoTime, outcome: AttemptOutcome) -> DeliveryAttempt {
        DeliveryAttempt {
            event_id: task.event.event_id.clone(),
            subscription_id: task.subscription_id.clone(),
            merchant_id: task.event.merchant_id.clone(),
            event_name: task.event.event_name,
            attempt: task.attempt,
            attempted_at: now,
            outcome,
            status_code: None,
            error: None,
            latency_ms: 0,
            response_excerpt: None,
            next_attempt_at: None,
            manual: task.manual,
        }
    }

    async fn set_status(&self, task: &DeliveryTask, status: DeliveryStatus) -> Result<(), StoreError> {
        let event = &task.event;
        self.store
            .set_delivery_status(&event.merchant_id, &event.event_id, &task.subscription_id, status)
            .await
    }

    fn now(&self) -> IsoTime {
        let now = self.clock.now();
        IsoTime::new(now)
            .unwrap_or_else(|| IsoTime::new(time::OffsetDateTime::UNIX_EPOCH).expect("the epoch is in range"))
    }
}
