//! Deliver: one delivery task in, one signed POST to the merchant out, every attempt
//! recorded, the next attempt scheduled.
//!
//! Each retry is a new task carrying the next attempt number and its `notBefore` instant. A
//! delay of at most 15 minutes (SQS's `DelaySeconds` cap) is the new message's delay; a
//! longer one parks the task in the store's due-time index, from which the scheduler moves
//! it to the queue when it is due. A message is never hidden with its visibility timeout
//! to wait (SQS caps it at 12 h from the receive, and every hidden message counts against
//! the queue's in-flight quota): one that arrives early is scheduled again the same way.
//! After the last attempt the task goes to the dead-letter queue, from which an operator
//! can redrive it.

mod answer;
mod endpoint_health;
mod rate_gate;
mod webhook_request;

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use webhooks_domain::health::{DEFAULT_DISABLE_AFTER, DEFAULT_PROBE_SLOTS};
use webhooks_domain::{
    AttemptOutcome, Clock, DeliveryAttempt, DeliveryStatus, DeliveryTask, HealthStatus, IsoTime, RecentOutcomes,
    RetrySchedule, SigningSecrets, Subscription, UrlPolicy, unix_millis,
};
use webhooks_outbound::OutboundClient;
use webhooks_runtime::metrics::{self, DeliveryOutcome};
use webhooks_runtime::{BatchError, BatchMemo, Budget, process_batch};
use webhooks_storage::aws::SdkTimeouts;
use webhooks_storage::ports::MAX_DELAY;
use webhooks_storage::{
    AttemptRecorded, DeliveryLog, EndpointBreaker, HandOff, OutgoingMessage, ParkedRetries, ParkedTask, QueueSender,
    RequestCounters, StoreError, SubscriptionStore,
};

pub use crate::answer::{EXCERPT_BYTES, RESPONSE_READ_CAP_BYTES};

use crate::answer::{Answer, describe, error_kind, excerpt, failure_kind, is_success};
use crate::endpoint_health::Admission;
use crate::rate_gate::RateGate;
use crate::webhook_request::post_webhook;

/// The `user-agent` of every webhook.
pub const USER_AGENT: &str = concat!("ramp-webhooks/", env!("CARGO_PKG_VERSION"));
/// What an attempt needs after its request, within the invocation: recording it and
/// handing its retry off, two AWS calls at most.
pub const RESERVE_AFTER_REQUEST: Duration = SdkTimeouts::INSIDE_LAMBDA.operation.saturating_mul(2);
/// An early message closer than this to its due time is delivered rather than scheduled again.
const DUE_SLACK: Duration = Duration::from_secs(1);

/// How deliveries behave (from the settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverConfig {
    /// Delays before each retry.
    pub retry_schedule: RetrySchedule,
    /// One request, connect to last byte read.
    pub timeout: Duration,
    /// How long an endpoint may fail before it is disabled.
    pub disable_after: Duration,
    /// Attempts that may reach a failing endpoint at once, across all containers.
    pub probe_slots: u32,
}

impl Default for DeliverConfig {
    /// The default schedule, 10 s requests, disabled after 5 days of failing, 2 probes.
    fn default() -> Self {
        Self {
            retry_schedule: RetrySchedule::default(),
            timeout: Duration::from_secs(10),
            disable_after: DEFAULT_DISABLE_AFTER,
            probe_slots: DEFAULT_PROBE_SLOTS,
        }
    }
}

/// Why a task must be left to SQS for redelivery.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// The store or a queue failed; retrying may succeed.
    #[error(transparent)]
    Store(#[from] StoreError),
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
    /// This attempt was recorded before (a redelivered task): nothing more is done.
    AlreadyRecorded,
    /// A manual retry failed; nothing more is scheduled.
    ManualFailed,
    /// The task arrived before its `notBefore`: scheduled again for then, nothing sent.
    Deferred(Duration),
    /// The subscription is gone or disabled: nothing sent.
    Skipped,
    /// Over the subscription's `rateLimitPerSecond`: nothing sent, nothing recorded; the
    /// task, its attempt number unchanged, comes back after this delay.
    RateLimited(Duration),
    /// Held back: the endpoint is failing and its probe slots are taken, or it was disabled
    /// for failing. Kept, its attempt number unchanged, until it recovers or is recovered.
    Held,
    /// The message was not a delivery task: it is in the DLQ.
    Malformed,
}

impl TaskOutcome {
    /// The `deliveries` metric's outcome, for the outcomes that are one (a redelivered or
    /// early task, and a malformed message, are not).
    fn metric(&self) -> Option<DeliveryOutcome> {
        Some(match self {
            TaskOutcome::Delivered => DeliveryOutcome::Delivered,
            TaskOutcome::RetryScheduled(_) => DeliveryOutcome::RetryScheduled,
            TaskOutcome::Exhausted | TaskOutcome::ManualFailed => DeliveryOutcome::Failed,
            TaskOutcome::Held => DeliveryOutcome::Held,
            TaskOutcome::RateLimited(_) => DeliveryOutcome::RateLimited,
            TaskOutcome::Skipped => DeliveryOutcome::Skipped,
            TaskOutcome::AlreadyRecorded | TaskOutcome::Deferred(_) | TaskOutcome::Malformed => return None,
        })
    }
}

/// A batch's subscription reads (with their secrets), by (merchant, subscription).
type SubscriptionReads = BatchMemo<(String, String), Option<(Subscription, SigningSecrets)>>;

/// The deliver function's dependencies.
pub struct Deliver<S, Q> {
    store: S,
    deliveries: Q,
    client: OutboundClient,
    config: DeliverConfig,
    clock: Arc<dyn Clock>,
    rate_gate: RateGate,
    /// What this container saw of each endpoint's last attempts.
    recent_outcomes: RecentOutcomes,
    /// Where the operational events deliver raises go (the events queue), if anywhere.
    operational_events: Option<Q>,
}

/// The HTTP client every delivery shares: the outbound client with the webhooks'
/// `user-agent`.
pub fn http_client(policy: &UrlPolicy) -> OutboundClient {
    OutboundClient::new(*policy, USER_AGENT).expect("the webhook HTTP client builds")
}

impl<S: SubscriptionStore + DeliveryLog + ParkedRetries + RequestCounters + EndpointBreaker, Q: QueueSender>
    Deliver<S, Q>
{
    /// Deliver over these ports, with one HTTP client for all requests.
    pub fn new(store: S, deliveries: Q, client: OutboundClient, config: DeliverConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            deliveries,
            client,
            config,
            clock,
            rate_gate: RateGate::default(),
            recent_outcomes: RecentOutcomes::default(),
            operational_events: None,
        }
    }

    /// Raises operational events (`endpoint_disabled`) on `events`, the events queue, for
    /// ingest to fan out to the merchant's subscriptions that take them.
    pub fn raising_operational_events_on(self, events: Q) -> Self {
        Self {
            operational_events: Some(events),
            ..self
        }
    }

    /// Handles an SQS batch with no invocation deadline (the local stack, tests).
    pub async fn handle_batch(&self, event: SqsEvent) -> Result<SqsBatchResponse, BatchError> {
        self.handle_batch_within(event, Budget::default()).await
    }

    /// Handles an SQS batch: every task at once, so a slow merchant delays only its own;
    /// each request ends in time for its attempt to be recorded within `budget`.
    pub async fn handle_batch_within(&self, event: SqsEvent, budget: Budget) -> Result<SqsBatchResponse, BatchError> {
        let subscriptions = SubscriptionReads::default();
        self.read_subscriptions_of(&event, &subscriptions).await;
        let subscriptions = &subscriptions;
        process_batch(event, |record| async move {
            self.handle_in_batch(&record, budget, subscriptions).await.map(|_| ())
        })
        .await
    }

    /// Reads the subscriptions the batch's tasks go to together, for its records to share.
    /// If that read fails, each record reads its own (and fails or not on its own).
    async fn read_subscriptions_of(&self, event: &SqsEvent, subscriptions: &SubscriptionReads) {
        let mut keys: Vec<(String, String)> = event
            .records
            .iter()
            .filter_map(|record| DeliveryTask::from_message_body(record.body.as_deref()?).ok())
            .map(|task| (task.event.merchant_id, task.subscription_id))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        match self.store.get_subscriptions_with_secrets(&keys).await {
            Ok(found) => keys
                .into_iter()
                .zip(found)
                .for_each(|(key, opened)| subscriptions.fill(key, opened)),
            Err(error) => tracing::warn!(%error, "the batch's subscriptions are read one task at a time"),
        }
    }

    /// Handles one deliveries-queue message, with no invocation deadline.
    pub async fn handle_record(&self, record: &SqsMessage) -> Result<TaskOutcome, DeliverError> {
        self.handle_record_within(record, Budget::default()).await
    }

    /// Handles one deliveries-queue message within `budget`.
    pub async fn handle_record_within(&self, record: &SqsMessage, budget: Budget) -> Result<TaskOutcome, DeliverError> {
        self.handle_in_batch(record, budget, &SubscriptionReads::default())
            .await
    }

    /// Handles one message of a batch, sharing the batch's subscription reads.
    async fn handle_in_batch(
        &self,
        record: &SqsMessage,
        budget: Budget,
        subscriptions: &SubscriptionReads,
    ) -> Result<TaskOutcome, DeliverError> {
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
            self.schedule(&task, remaining).await?;
            tracing::info!(event_id = %task.event.event_id, subscription_id = %task.subscription_id, attempt = task.attempt, remaining_ms = remaining.as_millis(), "early task scheduled again");
            return Ok(TaskOutcome::Deferred(remaining));
        }
        let outcome = self.deliver_reading(&task, budget, subscriptions).await?;
        if let Some(counted) = outcome.metric() {
            metrics::delivery(counted, task.event.event_name);
        }
        Ok(outcome)
    }

    fn time_until_due(&self, task: &DeliveryTask) -> Option<Duration> {
        let due = task.not_before?.instant();
        let remaining = Duration::try_from(due - self.clock.now()).ok()?;
        (remaining > DUE_SLACK).then_some(remaining)
    }

    /// Makes one attempt of `task`, records it, and schedules what comes next.
    pub async fn deliver(&self, task: &DeliveryTask) -> Result<TaskOutcome, DeliverError> {
        self.deliver_within(task, Budget::default()).await
    }

    /// Makes one attempt of `task` within `budget`: the request ends
    /// [`RESERVE_AFTER_REQUEST`] before the budget does (a `timeout` if the merchant has not
    /// answered by then), so that the attempt is recorded and its retry handed off before
    /// the Lambda deadline.
    pub async fn deliver_within(&self, task: &DeliveryTask, budget: Budget) -> Result<TaskOutcome, DeliverError> {
        self.deliver_reading(task, budget, &SubscriptionReads::default()).await
    }

    /// [`Deliver::deliver_within`], the subscription read once per batch.
    async fn deliver_reading(
        &self,
        task: &DeliveryTask,
        budget: Budget,
        subscriptions: &SubscriptionReads,
    ) -> Result<TaskOutcome, DeliverError> {
        let event = &task.event;
        let now = self.now();
        let key = (event.merchant_id.clone(), task.subscription_id.clone());
        let subscription = subscriptions
            .get_or_read(key, || {
                self.store
                    .get_subscription_with_secrets(&event.merchant_id, &task.subscription_id)
            })
            .await?;
        let (subscription, secrets) = match subscription {
            Some(found) if found.0.enabled => found,
            // Disabled for failing: kept for its merchant to recover.
            Some((disabled, _)) if disabled.health.status == HealthStatus::Disabled && !task.manual => {
                self.hold(task, &disabled, now).await?;
                return Ok(TaskOutcome::Held);
            }
            _ => return self.skip(task, now).await,
        };
        if let Some(held_back) = self.hold_back_over_rate(task, &subscription, now).await? {
            return Ok(held_back);
        }
        let lease = match self
            .admit(task, &subscription, now, self.config.timeout + RESERVE_AFTER_REQUEST)
            .await?
        {
            Admission::Send(lease) => lease,
            Admission::Held => return Ok(TaskOutcome::Held),
        };
        let outcome = self.attempt(task, &subscription, &secrets, now, budget).await;
        self.release_slot(&subscription, lease).await;
        outcome
    }

    /// Skips a task whose subscription is gone or disabled by its merchant.
    async fn skip(&self, task: &DeliveryTask, now: IsoTime) -> Result<TaskOutcome, DeliverError> {
        let event = &task.event;
        {
            let attempt = self.attempt_record(task, now, AttemptOutcome::Skipped);
            self.store
                .record_attempt_once(&attempt, DeliveryStatus::Skipped, None)
                .await?;
            tracing::info!(event_id = %event.event_id, subscription_id = %task.subscription_id, "subscription gone or disabled: delivery skipped");
            Ok(TaskOutcome::Skipped)
        }
    }

    /// Makes the request of an admitted task, records it, hands its retry off, and updates
    /// the endpoint's health.
    async fn attempt(
        &self,
        task: &DeliveryTask,
        subscription: &Subscription,
        secrets: &SigningSecrets,
        now: IsoTime,
        budget: Budget,
    ) -> Result<TaskOutcome, DeliverError> {
        let event = &task.event;
        let budget = budget.reserving(RESERVE_AFTER_REQUEST);
        let (answer, latency) = post_webhook(
            &self.client,
            subscription,
            secrets,
            task,
            now,
            budget,
            self.config.timeout,
        )
        .await;
        metrics::attempt_latency(is_success(&answer), latency);
        let mut attempt = self.attempt_record(task, now, AttemptOutcome::Failed);
        attempt.latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        attempt.error = error_kind(&answer).map(str::to_owned);
        if let Ok(reply) = &answer {
            attempt.status_code = Some(reply.status);
            attempt.response_excerpt = Some(excerpt(reply));
        }
        if is_success(&answer) {
            attempt.outcome = AttemptOutcome::Succeeded;
        }

        let outcome = if task.manual {
            self.record_manual(task, &attempt).await?
        } else {
            let (status, hand_off, outcome) = self.next_step(task, &mut attempt, &answer, now);
            match self
                .store
                .record_attempt_once(&attempt, status, hand_off.as_ref())
                .await?
            {
                AttemptRecorded::AlreadyRecorded => TaskOutcome::AlreadyRecorded,
                AttemptRecorded::Recorded => {
                    if let Some(hand_off) = &hand_off {
                        self.pass_on(hand_off).await?;
                    }
                    outcome
                }
            }
        };
        tracing::info!(
            event_id = %event.event_id,
            subscription_id = %task.subscription_id,
            merchant_id = %event.merchant_id,
            event_name = %event.event_name,
            url = %webhooks_domain::redact_url(&subscription.url),
            attempt = task.attempt,
            status = attempt.status_code,
            error = attempt.error.as_deref(),
            latency_ms = attempt.latency_ms,
            next_attempt_at = attempt.next_attempt_at.map(|t| t.to_string()),
            outcome = ?outcome,
            "delivery attempt"
        );
        if outcome != TaskOutcome::AlreadyRecorded {
            let error = attempt.status_code.map(|code| code.to_string());
            let error = error.or_else(|| attempt.error.clone()).unwrap_or_default();
            let succeeded = attempt.outcome == AttemptOutcome::Succeeded;
            self.after_attempt(subscription, succeeded, &error, now).await;
        }
        Ok(outcome)
    }

    /// Where the delivery stands after an automatic attempt that got `answer`, and what it
    /// hands off: the next attempt's task (due after the schedule's delay), the task to the
    /// dead-letter queue after the last attempt, or nothing after a success.
    fn next_step(
        &self,
        task: &DeliveryTask,
        attempt: &mut DeliveryAttempt,
        answer: &Answer,
        now: IsoTime,
    ) -> (DeliveryStatus, Option<HandOff>, TaskOutcome) {
        if is_success(answer) {
            return (DeliveryStatus::Succeeded, None, TaskOutcome::Delivered);
        }
        let next_attempt = task.attempt + 1;
        let delay = self.config.retry_schedule.delay_before(
            next_attempt,
            failure_kind(answer),
            answer.as_ref().ok().and_then(|reply| reply.retry_after),
            &mut rand::rng(),
        );
        match delay {
            Some(delay) => {
                let due = IsoTime::new(now.instant() + delay).unwrap_or(now);
                attempt.next_attempt_at = Some(due);
                let next = DeliveryTask {
                    attempt: next_attempt,
                    not_before: Some(due),
                    ..task.clone()
                };
                let hand_off = HandOff {
                    task_key: next.key(),
                    due_ms: due.unix_millis(),
                    body: next.to_message_body(),
                    dead_letter_reason: None,
                };
                (
                    DeliveryStatus::Pending,
                    Some(hand_off),
                    TaskOutcome::RetryScheduled(delay),
                )
            }
            None => {
                let reason = format!(
                    "attempts_exhausted: {} attempts, last {}",
                    task.attempt,
                    describe(answer)
                );
                // Redriven from the DLQ, the task is one more attempt, under a number of its own.
                let redriven = DeliveryTask {
                    attempt: next_attempt,
                    not_before: None,
                    ..task.clone()
                };
                let hand_off = HandOff {
                    task_key: redriven.key(),
                    due_ms: now.unix_millis(),
                    body: redriven.to_message_body(),
                    dead_letter_reason: Some(reason),
                };
                (DeliveryStatus::Failed, Some(hand_off), TaskOutcome::Exhausted)
            }
        }
    }

    /// Passes a recorded hand-off on at once: a dead letter to the DLQ, a retry due within
    /// 15 minutes to the queue with its delay; then takes it out of the due-time index. A
    /// retry due later stays there for the scheduler. Should this fail half way, the
    /// scheduler passes the hand-off on when it is due, and the next attempt's record
    /// collapses a duplicate into one chain.
    async fn pass_on(&self, hand_off: &HandOff) -> Result<(), StoreError> {
        let remaining_ms = hand_off.due_ms - self.now().unix_millis();
        let delay = Duration::from_millis(u64::try_from(remaining_ms).unwrap_or(0));
        match &hand_off.dead_letter_reason {
            Some(reason) => self.deliveries.send_dead_letter(&hand_off.body, reason).await?,
            None if delay <= MAX_DELAY => {
                let body = hand_off.body.clone();
                self.deliveries.send(OutgoingMessage { body, delay }).await?;
            }
            None => {
                metrics::count(metrics::RETRIES_PARKED, 1);
                return Ok(());
            }
        }
        if let Err(error) = self.store.unpark(&[hand_off.parked()]).await {
            tracing::warn!(%error, task_key = %hand_off.task_key, "a passed-on hand-off stays in the due-time index; the scheduler will send it again");
        }
        Ok(())
    }

    /// Records a merchant-asked retry: one attempt, outside the automatic chain (which goes
    /// on), never rescheduled; a success marks the delivery succeeded.
    async fn record_manual(&self, task: &DeliveryTask, attempt: &DeliveryAttempt) -> Result<TaskOutcome, StoreError> {
        let succeeded = attempt.outcome == AttemptOutcome::Succeeded;
        if task.recovery {
            return self.record_recovered(attempt, succeeded).await;
        }
        self.store.record_attempt(attempt).await?;
        if !succeeded {
            return Ok(TaskOutcome::ManualFailed);
        }
        let event = &task.event;
        self.store
            .set_delivery_status(
                &event.merchant_id,
                &event.event_id,
                &task.subscription_id,
                DeliveryStatus::Succeeded,
            )
            .await?;
        Ok(TaskOutcome::Delivered)
    }

    /// Records a recovery's attempt once, with the delivery's status: the recovery claimed it
    /// (set it pending), and it is now succeeded, or failed again, for a later recovery.
    async fn record_recovered(&self, attempt: &DeliveryAttempt, succeeded: bool) -> Result<TaskOutcome, StoreError> {
        let status = match succeeded {
            true => DeliveryStatus::Succeeded,
            false => DeliveryStatus::Failed,
        };
        Ok(match self.store.record_attempt_once(attempt, status, None).await? {
            AttemptRecorded::AlreadyRecorded => TaskOutcome::AlreadyRecorded,
            AttemptRecorded::Recorded if succeeded => TaskOutcome::Delivered,
            AttemptRecorded::Recorded => TaskOutcome::ManualFailed,
        })
    }

    /// Puts `task` where it waits `delay`: the deliveries queue with that delay, up to SQS's
    /// 15 minutes; beyond, the store's due-time index, until the scheduler moves it.
    async fn schedule(&self, task: &DeliveryTask, delay: Duration) -> Result<(), StoreError> {
        let body = task.to_message_body();
        if delay <= MAX_DELAY {
            return self.deliveries.send(OutgoingMessage { body, delay }).await;
        }
        let due = self.clock.now() + delay;
        let due_ms = unix_millis(due);
        self.store
            .park(&ParkedTask::new(&task.key(), due_ms, body, None))
            .await?;
        metrics::count(metrics::RETRIES_PARKED, 1);
        Ok(())
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

    fn now(&self) -> IsoTime {
        let now = self.clock.now();
        IsoTime::new(now)
            .unwrap_or_else(|| IsoTime::new(time::OffsetDateTime::UNIX_EPOCH).expect("the epoch is in range"))
    }
}
