//! The delivery pipeline end to end, on both backends: ingest and deliver called with real
//! SQS event JSON, webhooks sent to a real HTTP merchant on loopback.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::sqs::SqsEvent;
use serde_json::json;
use webhooks_deliver::{Deliver, DeliverConfig, EXCERPT_BYTES, RESERVE_AFTER_REQUEST, TaskOutcome, http_client};
use webhooks_domain::{
    AttemptOutcome, Clock, DeliveryStatus, DeliveryTask, EventName, IsoTime, RetrySchedule, Subscription, SystemClock,
    UrlPolicy,
};
use webhooks_ingest::Ingest;
use webhooks_runtime::{Budget, QueueRecord, sqs_event};
use webhooks_scheduler::Scheduler;
use webhooks_signing::standard::standard_webhooks_secret;
use webhooks_storage::{
    DUE_INDEX_SHARDS, DeliveryLog, EventStore, OutgoingMessage, PageRequest, ParkedRetries, Queue, QueueReceiver,
    QueueSender, ReceivedMessage, StoreError, SubscriptionStore,
};
use webhooks_tests::backends::Harness;
use webhooks_tests::clock::{ClockDelayedQueue, ManualClock};
use webhooks_tests::faults::{FaultyStore, Step};
use webhooks_tests::fixtures::{event, event_message, secrets, subscription};
use webhooks_tests::merchant::{Happening, TestMerchant, refused_url};
use webhooks_tests::verifiers::node;

const LOOPBACK: UrlPolicy = UrlPolicy {
    allow_http: true,
    allow_private: true,
};
const SEC: Duration = Duration::from_secs(1);
const MERCHANT: &str = "m_pipeline";
/// When the messages [`event_of`] makes were sent to their queue (SQS's `SentTimestamp`).
const SENT_AT_MS: i64 = 1_795_000_000_123;

webhooks_tests::on_both_backends!(
    fault_matrix_records_each_attempt_and_schedules_the_next,
    a_slow_merchant_does_not_hold_up_a_fast_one,
    retries_exhaust_into_the_dlq_and_a_redriven_task_delivers,
    an_early_task_is_scheduled_again_and_never_hidden,
    a_retry_due_after_15_minutes_waits_in_the_table_until_the_scheduler_moves_it,
    a_redelivered_task_starts_no_second_chain_and_a_lost_hand_off_is_passed_on,
    the_default_schedule_runs_27_hours_on_a_clock_with_nothing_in_flight_between_attempts,
    an_event_without_a_time_stamp_delivered_twice_by_sqs_is_one_event,
    a_request_that_would_outlast_the_lambda_deadline_is_recorded_as_a_timeout,
    a_failure_after_any_step_of_deliver_or_the_scheduler_still_makes_one_chain,
    deleted_or_disabled_subscriptions_are_skipped,
    a_batch_reads_its_subscriptions_together_or_each_task_its_own,
    delivered_webhooks_verify_in_node_and_with_standard_webhooks,
    ingest_fans_out_once_per_event_id,
    ingest_resumes_a_fan_out_interrupted_by_a_failing_queue,
    ingest_dead_letters_malformed_events_without_failing_the_batch,
    ingest_fans_out_to_a_thousand_subscriptions,
    a_rate_limited_subscription_gets_at_most_its_limit_each_second_and_every_task_once,
    a_held_back_task_keeps_its_attempt_and_a_store_that_cannot_count_holds_nothing_back,
);

/// The event SQS would hand the function for these bodies (real SQS event JSON).
fn event_of(bodies: &[String]) -> SqsEvent {
    let ids: Vec<String> = (0..bodies.len()).map(|i| format!("msg-{i}")).collect();
    let json = serde_json::to_value(sqs_event(
        "arn:aws:sqs:us-east-1:123456789012:deliveries",
        bodies.iter().zip(&ids).map(|(body, id)| QueueRecord {
            message_id: id,
            receipt_handle: id,
            body,
            receive_count: 1,
            sent_at_ms: SENT_AT_MS,
        }),
    ))
    .unwrap();
    assert_eq!(json["Records"][0]["eventSource"], "aws:sqs");
    serde_json::from_value(json).unwrap()
}

/// The event for messages received from a queue, with their receipt handles.
fn event_of_received(messages: &[ReceivedMessage]) -> SqsEvent {
    sqs_event(
        "arn:aws:sqs:us-east-1:123456789012:deliveries",
        messages.iter().map(QueueRecord::from),
    )
}

fn deliver<H: Harness>(h: &H, deliveries: &H::Queue, schedule: &str, timeout: Duration) -> Deliver<H::Store, H::Queue> {
    let config = DeliverConfig {
        retry_schedule: schedule.parse().unwrap(),
        timeout,
        ..DeliverConfig::default()
    };
    Deliver::new(
        h.store().clone(),
        deliveries.clone(),
        http_client(&LOOPBACK),
        config,
        Arc::new(SystemClock),
    )
}

/// Deliver sending to `queue`, on `clock` (5 s request timeout).
fn deliver_on_clock<H: Harness, Q: QueueSender>(
    h: &H,
    queue: Q,
    schedule: &str,
    clock: Arc<ManualClock>,
) -> Deliver<H::Store, Q> {
    let config = DeliverConfig {
        retry_schedule: schedule.parse().unwrap(),
        timeout: 5 * SEC,
        ..DeliverConfig::default()
    };
    Deliver::new(h.store().clone(), queue, http_client(&LOOPBACK), config, clock)
}

/// When the earliest parked retry of any shard is due.
async fn earliest_parked<S: ParkedRetries>(store: &S) -> Option<time::OffsetDateTime> {
    let mut earliest = None;
    for shard in 0..DUE_INDEX_SHARDS {
        if let Some(task) = store.due_tasks(shard, 9_999_999_999_999, 1).await.unwrap().first() {
            let due = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(task.due_ms) * 1_000_000).unwrap();
            earliest = Some(earliest.map_or(due, |e: time::OffsetDateTime| e.min(due)));
        }
    }
    earliest
}

/// Receives everything visible (waiting up to `wait` for the first), hidden for a minute.
async fn drain<Q: QueueReceiver>(queue: &Q, wait: Duration) -> Vec<ReceivedMessage> {
    let mut all = Vec::new();
    loop {
        let received = queue
            .receive(10, 60 * SEC, if all.is_empty() { wait } else { Duration::ZERO })
            .await
            .unwrap();
        if received.is_empty() {
            return all;
        }
        all.extend(received);
    }
}

/// A queue whose batch sends fail, standing in for a crash mid-fan-out.
#[derive(Clone)]
struct FailingQueue;

impl QueueSender for FailingQueue {
    async fn send(&self, _: OutgoingMessage) -> Result<(), StoreError> {
        Err(StoreError::backend("test.send", "injected failure"))
    }
    async fn send_batch(&self, _: Vec<OutgoingMessage>) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        Err(StoreError::backend("test.send_batch", "injected failure"))
    }
    async fn send_dead_letter(&self, _: &str, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A fault: name, URL, expected status, expected error kind, expected retry delay range (s).
type FaultCase = (
    &'static str,
    String,
    Option<u16>,
    Option<&'static str>,
    Option<(u64, u64)>,
);

mod cases {
    use super::*;

    /// Every fault in one batch: each record's attempt is recorded right, its next attempt
    /// is scheduled right, and none of them disturbs the others.
    pub async fn fault_matrix_records_each_attempt_and_schedules_the_next(h: &impl Harness) {
        let merchant = TestMerchant::start().await;
        let (deliveries, _dlq) = h.queue_pair("deliveries-faults", 5).await;
        let deliver = deliver(h, &deliveries, "10s,20s", SEC);
        // (name, url, expected status, expected error kind, expected delay range in seconds)
        let cases: Vec<FaultCase> = vec![
            ("ok", merchant.url("/ok"), Some(200), None, None),
            ("no-content", merchant.url("/no-content"), Some(204), None, None),
            (
                "moved",
                merchant.url("/moved"),
                Some(301),
                Some("http_status"),
                Some((8, 12)),
            ),
            (
                "bad-request",
                merchant.url("/status/400"),
                Some(400),
                Some("http_status"),
                Some((8, 12)),
            ),
            (
                "gone",
                merchant.url("/status/410"),
                Some(410),
                Some("http_status"),
                Some((8, 12)),
            ),
            (
                "throttled",
                merchant.url("/throttled"),
                Some(429),
                Some("http_status"),
                Some((60, 60)),
            ),
            (
                "error",
                merchant.url("/status/500"),
                Some(500),
                Some("http_status"),
                Some((8, 12)),
            ),
            (
                "unavailable",
                merchant.url("/status/503"),
                Some(503),
                Some("http_status"),
                Some((8, 12)),
            ),
            ("hang", merchant.url("/hang"), None, Some("timeout"), Some((60, 60))),
            ("refused", refused_url(), None, Some("connect_error"), Some((8, 12))),
            (
                "reset",
                TestMerchant::reset_url().await,
                None,
                Some("connect_error"),
                Some((8, 12)),
            ),
            ("huge", merchant.url("/huge"), Some(200), None, None),
            (
                "slow-headers",
                TestMerchant::slow_headers_url().await,
                None,
                Some("timeout"),
                Some((60, 60)),
            ),
        ];
        let mut bodies = Vec::new();
        for (name, url, ..) in &cases {
            h.store()
                .create_subscription(&subscription(MERCHANT, &format!("sub_{name}"), url), &secrets())
                .await
                .unwrap();
            bodies.push(
                DeliveryTask::first(event(MERCHANT, &format!("evt_{name}")), format!("sub_{name}")).to_message_body(),
            );
        }
        let response = deliver.handle_batch(event_of(&bodies)).await.unwrap();
        assert!(
            response.batch_item_failures.is_empty(),
            "{:?}",
            response.batch_item_failures
        );

        let mut retries_expected = 0;
        for (name, _, status, error, delay) in &cases {
            let page = h
                .store()
                .list_attempts(MERCHANT, &format!("sub_{name}"), PageRequest::first(10))
                .await
                .unwrap();
            assert_eq!(page.items.len(), 1, "{name}: one attempt recorded");
            let attempt = &page.items[0];
            assert_eq!(attempt.attempt, 1, "{name}");
            assert_eq!(attempt.status_code, *status, "{name}");
            assert_eq!(attempt.error.as_deref(), *error, "{name}");
            let expected_outcome = if error.is_none() {
                AttemptOutcome::Succeeded
            } else {
                AttemptOutcome::Failed
            };
            assert_eq!(attempt.outcome, expected_outcome, "{name}");
            let status_now = h
                .store()
                .delivery_status(&format!("evt_{name}"), &format!("sub_{name}"))
                .await
                .unwrap();
            match delay {
                None => {
                    assert_eq!(attempt.next_attempt_at, None, "{name}");
                    assert_eq!(status_now, Some(DeliveryStatus::Succeeded), "{name}");
                }
                Some((low, high)) => {
                    retries_expected += 1;
                    let next = attempt.next_attempt_at.expect("a next attempt").unix_millis();
                    let waited = (next - attempt.attempted_at.unix_millis()) as f64 / 1000.0;
                    assert!(
                        waited >= *low as f64 - 0.01 && waited <= *high as f64 + 0.01,
                        "{name}: next attempt after {waited}s"
                    );
                    assert_eq!(status_now, Some(DeliveryStatus::Pending), "{name}");
                }
            }
        }
        let huge = &h
            .store()
            .list_attempts(MERCHANT, "sub_huge", PageRequest::first(1))
            .await
            .unwrap()
            .items[0];
        assert_eq!(
            huge.response_excerpt.as_ref().map(String::len),
            Some(EXCERPT_BYTES),
            "excerpt of the 10 MB body"
        );
        assert_eq!(merchant.requests_to("/moved").len(), 1);
        assert!(merchant.requests_to("/ok").len() == 1, "the 301 was followed");
        // One retry message per failure, each for attempt 2 of its own event (the longest
        // SQS delay here is 15 min, so each is hidden but counted).
        let queued = match deliveries.receive(10, SEC, Duration::ZERO).await.unwrap().len() {
            0 => retries_expected,
            n => panic!("{n} retry messages visible before their delay"),
        };
        assert_eq!(queued, retries_expected);
    }

    pub async fn a_slow_merchant_does_not_hold_up_a_fast_one(h: &impl Harness) {
        let merchant = TestMerchant::start().await;
        let (deliveries, _dlq) = h.queue_pair("deliveries-slow-fast", 5).await;
        let deliver = deliver(h, &deliveries, "10s", 10 * SEC);
        h.store()
            .create_subscription(&subscription(MERCHANT, "sub_slow", &merchant.url("/slow")), &secrets())
            .await
            .unwrap();
        h.store()
            .create_subscription(&subscription(MERCHANT, "sub_fast", &merchant.url("/ok")), &secrets())
            .await
            .unwrap();
        // The slow one is first in the batch.
        let bodies = [
            DeliveryTask::first(event(MERCHANT, "evt_1"), "sub_slow".into()).to_message_body(),
            DeliveryTask::first(event(MERCHANT, "evt_1"), "sub_fast".into()).to_message_body(),
        ];
        let response = deliver.handle_batch(event_of(&bodies)).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
        let happenings = merchant.happenings();
        let position = |h: &Happening| happenings.iter().position(|x| x == h).unwrap();
        assert!(
            position(&Happening::Received("/ok".into())) < position(&Happening::Answered("/slow".into())),
            "the fast merchant waited for the slow one: {happenings:?}"
        );
    }

    pub async fn retries_exhaust_into_the_dlq_and_a_redriven_task_delivers(h: &impl Harness) {
        let merchant = TestMerchant::start().await;
        let (deliveries, dlq) = h.queue_pair("deliveries-exhaust", 5).await;
        let deliver = deliver(h, &deliveries, "1s", 5 * SEC);
        let mut sub = subscription(MERCHANT, "sub_down", &merchant.url("/status/503"));
        h.store().create_subscription(&sub, &secrets()).await.unwrap();
        let first = DeliveryTask::first(event(MERCHANT, "evt_exhaust"), "sub_down".into());
        let outcome = deliver
            .handle_record(&event_of(&[first.to_message_body()]).records[0])
            .await
            .unwrap();
        assert!(matches!(outcome, TaskOutcome::RetryScheduled(_)), "{outcome:?}");

        let retry = drain(&deliveries, 5 * SEC).await;
        assert_eq!(retry.len(), 1);
        let second = DeliveryTask::from_message_body(&retry[0].body).unwrap();
        assert_eq!(
            (second.attempt, &second.event),
            (2, &first.event),
            "the retry carries the next attempt number"
        );
        let outcome = deliver
            .handle_record(&event_of_received(&retry).records[0])
            .await
            .unwrap();
        assert_eq!(outcome, TaskOutcome::Exhausted);
        assert_eq!(
            h.store().delivery_status("evt_exhaust", "sub_down").await.unwrap(),
            Some(DeliveryStatus::Failed)
        );
        assert!(
            drain(&deliveries, Duration::ZERO).await.is_empty(),
            "nothing more scheduled"
        );

        let dead = drain(&dlq, 5 * SEC).await;
        assert_eq!(dead.len(), 1, "the exhausted task is in the DLQ");
        // The merchant is fixed; an operator redrives the DLQ into the deliveries queue.
        sub.url = merchant.url("/ok");
        h.store().update_subscription(&sub, &secrets()).await.unwrap();
        deliveries
            .send(OutgoingMessage {
                body: dead[0].body.clone(),
                delay: Duration::ZERO,
            })
            .await
            .unwrap();
        let redriven = drain(&deliveries, 5 * SEC).await;
        let response = deliver.handle_batch(event_of_received(&redriven)).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(
            h.store().delivery_status("evt_exhaust", "sub_down").await.unwrap(),
            Some(DeliveryStatus::Succeeded)
        );
        let attempts = h
            .store()
            .list_attempts(MERCHANT, "sub_down", PageRequest::first(10))
            .await
            .unwrap()
            .items;
        let ids: Vec<_> = merchant
            .requests()
            .iter()
            .map(|r| r.headers["webhook-id"].clone())
            .collect();
        assert_eq!(attempts.len(), 3);
        assert_eq!(ids, ["evt_exhaust"; 3], "every attempt carries the same webhook-id");
    }

    pub async fn an_early_task_is_scheduled_again_and_never_hidden(h: &impl Harness) {
        let merchant = TestMerchant::start().await;
        let (deliveries, _dlq) = h.queue_pair("deliveries-early", 5).await;
        let deliver = deliver(h, &deliveries, "1s", 5 * SEC);
        h.store()
            .create_subscription(&subscription(MERCHANT, "sub_1", &merchant.url("/ok")), &secrets())
            .await
            .unwrap();
        let due = IsoTime::new(time::OffsetDateTime::now_utc() + Duration::from_secs(3)).unwrap();
        let task = DeliveryTask {
            attempt: 2,
            not_before: Some(due),
            ..DeliveryTask::first(event(MERCHANT, "evt_early"), "sub_1".into())
        };
        deliveries
            .send(OutgoingMessage {
                body: task.to_message_body(),
                delay: Duration::ZERO,
            })
            .await
            .unwrap();
        let received = drain(&deliveries, 5 * SEC).await;
        let response = deliver.handle_batch(event_of_received(&received)).await.unwrap();
        assert!(
            response.batch_item_failures.is_empty(),
            "an early task is handled (scheduled again), not left in flight"
        );
        assert!(merchant.requests().is_empty(), "delivered before it was due");
        for message in &received {
            deliveries.delete(&message.receipt_handle).await.unwrap();
        }
        assert!(
            deliveries.receive(10, SEC, Duration::ZERO).await.unwrap().is_empty(),
            "visible before due"
        );
        let again = drain(&deliveries, 6 * SEC).await;
        assert_eq!(again.len(), 1, "the task came back when due, as a new message");
        assert_eq!(
            again[0].receive_count, 1,
            "a new message, not the old one made visible again"
        );
        let response = deliver.handle_batch(event_of_received(&again)).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(merchant.requests().len(), 1);
    }

    pub async fn a_retry_due_after_15_minutes_waits_in_the_table_until_the_scheduler_moves_it(h: &impl Harness) {
        let merchant = TestMerchant::start().await;
        let (deliveries, dlq) = h.queue_pair("deliveries-parked", 5).await;
        let clock = Arc::new(ManualClock::default());
        let deliver = deliver_on_clock(h, deliveries.clone(), "2h", clock.clone());
        let scheduler = Scheduler::new(h.store().clone(), deliveries.clone(), clock.clone());
        h.store()
            .create_subscription(
                &subscription(MERCHANT, "sub_1", &merchant.url("/status/503")),
                &secrets(),
            )
            .await
            .unwrap();
        let task = DeliveryTask::first(event(MERCHANT, "evt_parked"), "sub_1".into());

        let outcome = deliver.deliver(&task).await.unwrap();
        let TaskOutcome::RetryScheduled(delay) = outcome else {
            panic!("{outcome:?}")
        };
        assert!(delay > Duration::from_secs(15 * 60), "{delay:?}");
        assert!(
            drain(&deliveries, SEC).await.is_empty(),
            "nothing waits in the queue, visible or in flight"
        );
        assert_eq!(scheduler.move_due_tasks().await.unwrap().moved, 0, "not due yet");

        clock.advance(delay - Duration::from_secs(60));
        assert_eq!(scheduler.move_due_tasks().await.unwrap().moved, 0, "a minute early");
        clock.advance(Duration::from_secs(61));
        let report = scheduler.move_due_tasks().await.unwrap();
        assert_eq!(report.moved, 1, "moved once due");
        assert!(
            report.oldest_due_age >= Duration::from_millis(999) && report.oldest_due_age <= 2 * SEC,
            "reported a second late: {report:?}"
        );
        assert_eq!(scheduler.move_due_tasks().await.unwrap().moved, 0, "and only once");

        let moved = drain(&deliveries, 5 * SEC).await;
        assert_eq!(moved.len(), 1);
        let next = DeliveryTask::from_message_body(&moved[0].body).unwrap();
        assert_eq!((next.attempt, next.event.event_id.as_str()), (2, "evt_parked"));
        let response = deliver.handle_batch(event_of_received(&moved)).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(merchant.requests().len(), 2, "the second attempt was made when due");
        assert_eq!(
            drain(&dlq, 5 * SEC).await.len(),
            1,
            "the last attempt failed: exhausted"
        );
    }

    pub async fn a_redelivered_task_starts_no_second_chain_and_a_lost_hand_off_is_passed_on(h: &impl Harness) {
        let merchant = TestMerchant::start().await;
        let (deliveries, dlq) = h.queue_pair("deliveries-redelivered", 5).await;
        let clock = Arc::new(ManualClock::default());
        let broken = deliver_on_clock(h, FailingQueue, "1s", clock.clone());
        let deliver = deliver_on_clock(h, deliveries.clone(), "1s", clock.clone());
        let scheduler = Scheduler::new(h.store().clone(), deliveries.clone(), clock.clone());
        h.store()
            .create_subscription(
                &subscription(MERCHANT, "sub_1", &merchant.url("/status/503")),
                &secrets(),
            )
            .await
            .unwrap();
        let first = DeliveryTask::first(event(MERCHANT, "evt_redelivered"), "sub_1".into());

        // Attempt 1 is recorded, then the queue refuses its retry: SQS would redeliver the task.
        assert!(
            broken.deliver(&first).await.is_err(),
            "the failed hand-off fails the task"
        );
        assert_eq!(
            deliver.deliver(&first).await.unwrap(),
            TaskOutcome::AlreadyRecorded,
            "the redelivered task finds its attempt recorded"
        );
        assert!(drain(&deliveries, SEC).await.is_empty(), "no retry sent by either");

        // The recorded hand-off waits in the due-time index: the scheduler sends it, once.
        clock.advance(2 * SEC);
        assert_eq!(scheduler.move_due_tasks().await.unwrap().moved, 1);
        assert_eq!(scheduler.move_due_tasks().await.unwrap().moved, 0);
        let retries = drain(&deliveries, 5 * SEC).await;
        assert_eq!(retries.len(), 1, "exactly one chain");
        let second = DeliveryTask::from_message_body(&retries[0].body).unwrap();
        assert_eq!(second.attempt, 2);

        // The last attempt dead-letters once, however often its task is redelivered.
        assert_eq!(deliver.deliver(&second).await.unwrap(), TaskOutcome::Exhausted);
        assert_eq!(deliver.deliver(&second).await.unwrap(), TaskOutcome::AlreadyRecorded);
        clock.advance(SEC);
        assert_eq!(
            scheduler.move_due_tasks().await.unwrap().moved,
            0,
            "nothing left to hand off"
        );
        assert_eq!(drain(&dlq, 5 * SEC).await.len(), 1, "one DLQ entry");
        let attempts = h
            .store()
            .list_attempts(MERCHANT, "sub_1", PageRequest::first(10))
            .await
            .unwrap()
            .items;
        let numbers: Vec<u32> = attempts.iter().map(|a| a.attempt).collect();
        assert_eq!(numbers, [2, 1], "each attempt in the log once");
    }

    pub async fn the_default_schedule_runs_27_hours_on_a_clock_with_nothing_in_flight_between_attempts(
        h: &impl Harness,
    ) {
        const SCHEDULE: &str = "5s,5m,30m,2h,5h,10h,10h";
        let merchant = TestMerchant::start().await;
        let (deliveries, dlq) = h.queue_pair("deliveries-27h", 5).await;
        let clock = Arc::new(ManualClock::default());
        let delayed = ClockDelayedQueue::new(deliveries.clone(), clock.clone());
        let deliver = deliver_on_clock(h, delayed.clone(), SCHEDULE, clock.clone());
        let scheduler = Scheduler::new(h.store().clone(), deliveries.clone(), clock.clone());
        h.store()
            .create_subscription(
                &subscription(MERCHANT, "sub_27h", &merchant.url("/status/503")),
                &secrets(),
            )
            .await
            .unwrap();
        let first = DeliveryTask::first(event(MERCHANT, "evt_27h"), "sub_27h".into());
        deliveries
            .send(OutgoingMessage {
                body: first.to_message_body(),
                delay: Duration::ZERO,
            })
            .await
            .unwrap();

        let started = clock.now();
        let mut attempted_at = Vec::new();
        for _ in 0..20 {
            let received = drain(&deliveries, SEC).await;
            if !received.is_empty() {
                let response = deliver.handle_batch(event_of_received(&received)).await.unwrap();
                assert!(response.batch_item_failures.is_empty());
                for message in &received {
                    deliveries.delete(&message.receipt_handle).await.unwrap();
                }
                attempted_at.extend(received.iter().map(|_| clock.now()));
            }
            assert_eq!(
                deliveries.approximate_len().await.unwrap(),
                0,
                "between attempts nothing waits in the queue, visible, delayed or in flight"
            );
            // To the next due instant: a held short delay or a parked long one.
            let parked = earliest_parked(h.store()).await;
            let Some(next) = [delayed.next_due(), parked].into_iter().flatten().min() else {
                break;
            };
            let ahead = next - clock.now();
            clock.advance(Duration::try_from(ahead).unwrap_or(Duration::ZERO));
            delayed.release_due().await;
            scheduler.move_due_tasks().await.unwrap();
        }

        assert_eq!(attempted_at.len(), 8, "1 attempt + 7 retries");
        let schedule: RetrySchedule = SCHEDULE.parse().unwrap();
        for (n, pair) in attempted_at.windows(2).enumerate() {
            let waited = (pair[1] - pair[0]).unsigned_abs();
            let base = schedule.delays()[n];
            assert!(
                waited >= base.mul_f64(0.8) && waited <= base.mul_f64(1.2),
                "retry {} after {waited:?}, base {base:?}",
                n + 1
            );
        }
        let total = (attempted_at[7] - started).unsigned_abs();
        assert!(total > Duration::from_secs(22 * 3600), "{total:?}");
        assert_eq!(drain(&dlq, 5 * SEC).await.len(), 1, "one DLQ entry at the end");
        let log = h
            .store()
            .list_attempts(MERCHANT, "sub_27h", PageRequest::first(20))
            .await
            .unwrap()
            .items;
        let numbers: Vec<u32> = log.iter().rev().map(|a| a.attempt).collect();
        assert_eq!(numbers, (1..=8).collect::<Vec<_>>(), "the log is complete");
        for (attempt, next) in log.iter().rev().zip(log.iter().rev().skip(1)) {
            assert_eq!(
                attempt.next_attempt_at,
                Some(next.attempted_at),
                "nextAttemptAt was true"
            );
        }
        assert_eq!(log[0].next_attempt_at, None, "the last attempt schedules nothing");
        assert_eq!(
            h.store().delivery_status("evt_27h", "sub_27h").await.unwrap(),
            Some(DeliveryStatus::Failed)
        );
    }

    pub async fn an_event_without_a_time_stamp_delivered_twice_by_sqs_is_one_event(h: &impl Harness) {
        let (deliveries, _) = h.queue_pair("deliveries-sent-at", 5).await;
        let (events, _) = h.queue_pair("events-sent-at", 5).await;
        h.store()
            .create_subscription(
                &subscription(MERCHANT, "sub_sent_at", "http://127.0.0.1:9/unused"),
                &secrets(),
            )
            .await
            .unwrap();
        let clock = Arc::new(ManualClock::default());
        let ingest = Ingest::new(h.store().clone(), deliveries.clone(), events, clock.clone());
        let body = json!({"merchantId": MERCHANT, "eventName": "crypto_delivered", "orderId": "order-sent-at"});
        let message = [body.to_string()];

        let first = ingest.handle_batch(event_of(&message)).await.unwrap();
        // SQS delivers the same message again a minute and a half later (a timeout, a crash).
        clock.advance(Duration::from_secs(90));
        let again = ingest.handle_batch(event_of(&message)).await.unwrap();
        assert!(first.batch_item_failures.is_empty() && again.batch_item_failures.is_empty());

        let tasks = drain(&deliveries, 5 * SEC).await;
        assert_eq!(tasks.len(), 1, "one event, one delivery task");
        let task = DeliveryTask::from_message_body(&tasks[0].body).unwrap();
        assert_eq!(
            task.event.time_stamp.unix_millis(),
            SENT_AT_MS,
            "the missing timeStamp is the time the message was sent"
        );
        let stored = h.store().get_event(&task.event.event_id).await.unwrap().unwrap();
        assert_eq!(stored, task.event, "the same id and body");
    }

    pub async fn a_request_that_would_outlast_the_lambda_deadline_is_recorded_as_a_timeout(h: &impl Harness) {
        let merchant = TestMerchant::start().await;
        let (deliveries, _dlq) = h.queue_pair("deliveries-deadline", 5).await;
        // The merchant's own timeout (60 s) is far beyond the invocation's deadline.
        let deliver = deliver(h, &deliveries, "1s", 60 * SEC);
        h.store()
            .create_subscription(&subscription(MERCHANT, "sub_hang", &merchant.url("/hang")), &secrets())
            .await
            .unwrap();
        let task = DeliveryTask::first(event(MERCHANT, "evt_deadline"), "sub_hang".into());
        let deadline = SystemTime::now() + RESERVE_AFTER_REQUEST + 2 * SEC;
        let outcome = tokio::time::timeout(20 * SEC, deliver.deliver_within(&task, Budget::before(deadline)))
            .await
            .expect("the attempt ends inside the invocation, not at the merchant's 60 s")
            .unwrap();
        assert!(matches!(outcome, TaskOutcome::RetryScheduled(_)), "{outcome:?}");
        let attempts = h
            .store()
            .list_attempts(MERCHANT, "sub_hang", PageRequest::first(1))
            .await
            .unwrap()
            .items;
        assert_eq!(attempts[0].error.as_deref(), Some("timeout"), "recorded as a timeout");
    }

    pub async fn a_failure_after_any_step_of_deliver_or_the_scheduler_still_makes_one_chain(h: &impl Harness) {
        let merchant = TestMerchant::start().await;
        let (deliveries, dlq) = h.queue_pair("deliveries-faults", 5).await;
        let clock = Arc::new(ManualClock::default());
        let store = FaultyStore::new(h.store().clone());
        let on_schedule = |schedule: &str| {
            let config = DeliverConfig {
                retry_schedule: schedule.parse().unwrap(),
                timeout: 5 * SEC,
                ..DeliverConfig::default()
            };
            Deliver::new(
                store.clone(),
                deliveries.clone(),
                http_client(&LOOPBACK),
                config,
                clock.clone(),
            )
        };
        let (short, long) = (on_schedule("1s"), on_schedule("20m"));
        let scheduler = Scheduler::new(store.clone(), deliveries.clone(), clock.clone());
        let broken_scheduler = Scheduler::new(store.clone(), FailingQueue, clock.clone());
        let task = |case: &str| DeliveryTask::first(event(MERCHANT, &format!("evt_{case}")), format!("sub_{case}"));
        for case in ["record", "unpark", "scheduler_unpark", "scheduler_send"] {
            let url = merchant.url("/status/503");
            h.store()
                .create_subscription(&subscription(MERCHANT, &format!("sub_{case}"), &url), &secrets())
                .await
                .unwrap();
        }

        // Deliver: the record fails (nothing written); SQS redelivers the task.
        store.fail_next(Step::RecordAttempt);
        assert!(short.deliver(&task("record")).await.is_err());
        assert!(matches!(
            short.deliver(&task("record")).await.unwrap(),
            TaskOutcome::RetryScheduled(_)
        ));
        // Deliver: the retry is sent but its hand-off stays parked; the scheduler sends it again.
        store.fail_next(Step::Unpark);
        assert!(matches!(
            short.deliver(&task("unpark")).await.unwrap(),
            TaskOutcome::RetryScheduled(_)
        ));
        // The scheduler: a parked retry is sent but not removed; the next run sends it again.
        assert!(matches!(
            long.deliver(&task("scheduler_unpark")).await.unwrap(),
            TaskOutcome::RetryScheduled(_)
        ));
        // The scheduler: the queue refuses the send; the retry stays parked for the next run.
        assert!(matches!(
            long.deliver(&task("scheduler_send")).await.unwrap(),
            TaskOutcome::RetryScheduled(_)
        ));
        clock.advance(Duration::from_secs(25 * 60));
        assert!(broken_scheduler.move_due_tasks().await.is_err());
        store.fail_next(Step::Unpark);
        assert!(scheduler.move_due_tasks().await.is_err());

        // Then everything runs its course: each retry (and any copy of it) is attempted.
        for _ in 0..5 {
            clock.advance(Duration::from_secs(25 * 60));
            scheduler.move_due_tasks().await.unwrap();
            let received = drain(&deliveries, 3 * SEC).await;
            for message in &received {
                let record = &event_of_received(std::slice::from_ref(message)).records[0];
                short.handle_record(record).await.unwrap();
                deliveries.delete(&message.receipt_handle).await.unwrap();
            }
        }
        let dead: Vec<String> = drain(&dlq, 5 * SEC).await.into_iter().map(|m| m.body).collect();
        for case in ["record", "unpark", "scheduler_unpark", "scheduler_send"] {
            let log = h
                .store()
                .list_attempts(MERCHANT, &format!("sub_{case}"), PageRequest::first(10))
                .await
                .unwrap()
                .items;
            let numbers: Vec<u32> = log.iter().map(|a| a.attempt).collect();
            assert_eq!(numbers, [2, 1], "{case}: each attempt once, nothing lost");
            let letters = dead
                .iter()
                .filter(|body| body.contains(&format!("\"evt_{case}\"")))
                .count();
            assert_eq!(letters, 1, "{case}: one dead letter");
        }
    }

    pub async fn deleted_or_disabled_subscriptions_are_skipped(h: &impl Harness) {
        let merchant = TestMerchant::start().await;
        let (deliveries, _dlq) = h.queue_pair("deliveries-skip", 5).await;
        let deliver = deliver(h, &deliveries, "1s", 5 * SEC);
        let mut disabled = subscription(MERCHANT, "sub_off", &merchant.url("/ok"));
        disabled.enabled = false;
        h.store().create_subscription(&disabled, &secrets()).await.unwrap();
        let bodies = [
            DeliveryTask::first(event(MERCHANT, "evt_s"), "sub_off".into()).to_message_body(),
            DeliveryTask::first(event(MERCHANT, "evt_s"), "sub_deleted".into()).to_message_body(),
        ];
        let response = deliver.handle_batch(event_of(&bodies)).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
        assert!(merchant.requests().is_empty());
        for sub in ["sub_off", "sub_deleted"] {
            assert_eq!(
                h.store().delivery_status("evt_s", sub).await.unwrap(),
                Some(DeliveryStatus::Skipped),
                "{sub}"
            );
            let attempts = h
                .store()
                .list_attempts(MERCHANT, sub, PageRequest::first(5))
                .await
                .unwrap()
                .items;
            assert_eq!(attempts[0].outcome, AttemptOutcome::Skipped, "{sub}");
        }
        assert!(
            drain(&deliveries, Duration::ZERO).await.is_empty(),
            "a skipped task was retried"
        );
    }

    pub async fn a_batch_reads_its_subscriptions_together_or_each_task_its_own(h: &impl Harness) {
        let merchant = TestMerchant::start().await;
        let (deliveries, _dlq) = h.queue_pair("deliveries-together", 5).await;
        let store = FaultyStore::new(h.store().clone());
        let config = DeliverConfig {
            timeout: 5 * SEC,
            ..DeliverConfig::default()
        };
        let client = http_client(&LOOPBACK);
        let deliver = Deliver::new(store.clone(), deliveries, client, config, Arc::new(SystemClock));
        for id in ["sub_t1", "sub_t2"] {
            let sub = subscription(MERCHANT, id, &merchant.url(&format!("/ok/{id}")));
            h.store().create_subscription(&sub, &secrets()).await.unwrap();
        }
        let tasks = |event_id: &str| {
            ["sub_t1", "sub_t2", "sub_t1", "sub_gone"]
                .map(|sub| DeliveryTask::first(event(MERCHANT, &format!("{event_id}_{sub}")), sub.into()))
                .map(|task| task.to_message_body())
        };
        for (event_id, read_fails) in [("evt_together", false), ("evt_alone", true)] {
            if read_fails {
                store.fail_next(Step::ReadSubscriptions);
            }
            let response = deliver.handle_batch(event_of(&tasks(event_id))).await.unwrap();
            assert!(response.batch_item_failures.is_empty(), "{event_id}");
            assert!(!store.is_armed(Step::ReadSubscriptions), "the batch read them together");
            let status = h
                .store()
                .delivery_status(&format!("{event_id}_sub_gone"), "sub_gone")
                .await;
            assert_eq!(status.unwrap(), Some(DeliveryStatus::Skipped), "{event_id}");
        }
        let mut paths: Vec<String> = merchant.requests().into_iter().map(|r| r.path).collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                "/ok/sub_t1",
                "/ok/sub_t1",
                "/ok/sub_t1",
                "/ok/sub_t1",
                "/ok/sub_t2",
                "/ok/sub_t2"
            ]
        );
    }

    pub async fn delivered_webhooks_verify_in_node_and_with_standard_webhooks(h: &impl Harness) {
        let merchant = TestMerchant::start().await;
        let (deliveries, _dlq) = h.queue_pair("deliveries-verify", 5).await;
        let deliver = deliver(h, &deliveries, "1s", 5 * SEC);
        let sub = subscription(MERCHANT, "sub_v", &merchant.url("/ok"));
        let mut signing = secrets();
        let original_secret = signing.current.clone();
        h.store().create_subscription(&sub, &signing).await.unwrap();
        let mut tricky = event(MERCHANT, "evt_verify");
        tricky.order_id = "order \"quoted\" \\ é 😀 \u{2028}".into();
        deliver
            .deliver(&DeliveryTask::first(tricky.clone(), "sub_v".into()))
            .await
            .unwrap();
        // After a rotation the header carries both secrets; the body is signed by the new one.
        signing.rotate(IsoTime::new(time::OffsetDateTime::now_utc()).unwrap());
        h.store().update_subscription(&sub, &signing).await.unwrap();
        deliver
            .deliver(&DeliveryTask::first(event(MERCHANT, "evt_rotated"), "sub_v".into()))
            .await
            .unwrap();

        let requests = merchant.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].headers["content-type"], "application/json");
        assert!(requests[0].headers["user-agent"].starts_with("ramp-webhooks/"));
        assert_eq!(requests[0].headers["webhook-id"], "evt_verify");
        let body: serde_json::Value = serde_json::from_str(&requests[0].body).unwrap();
        assert_eq!(body["orderId"], tricky.order_id.as_str());
        let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["eventName", "orderId", "timeStamp", "signature"]);

        for (request, secret) in [(&requests[0], &original_secret), (&requests[1], &signing.current)] {
            let seed = node("seed-verify", &json!({"secret": secret, "bodies": [request.body]}));
            assert_eq!(seed, json!([true]), "the seed snippet rejected {}", request.body);
        }
        for secret in [&original_secret, &signing.current] {
            let message = |r: &webhooks_tests::merchant::Received| {
                json!({"id": r.headers["webhook-id"], "timestamp": r.headers["webhook-timestamp"].parse::<i64>().unwrap(),
                       "signature": r.headers["webhook-signature"], "body": r.body})
            };
            let answers = node(
                "sw-verify",
                &json!({"secret": standard_webhooks_secret(secret), "messages": [message(&requests[1])]}),
            );
            assert_eq!(answers, json!(["ok"]), "rotated delivery with secret {secret}");
        }
        let answers = node(
            "sw-verify",
            &json!({"secret": standard_webhooks_secret(&original_secret), "messages": [{
                "id": requests[0].headers["webhook-id"], "timestamp": requests[0].headers["webhook-timestamp"].parse::<i64>().unwrap(),
                "signature": requests[0].headers["webhook-signature"], "body": requests[0].body}]}),
        );
        assert_eq!(answers, json!(["ok"]));
    }

    fn ingest_with<H: Harness, Q: Queue>(h: &H, deliveries: Q, events: Q) -> Ingest<H::Store, Q> {
        Ingest::new(h.store().clone(), deliveries, events, Arc::new(SystemClock))
    }

    pub async fn ingest_fans_out_once_per_event_id(h: &impl Harness) {
        let (deliveries, _) = h.queue_pair("deliveries-dedupe", 5).await;
        let (events, _) = h.queue_pair("events-dedupe", 5).await;
        for (id, events_taken) in [
            ("sub_a", &EventName::ALL[..]),
            ("sub_b", &[EventName::CryptoDelivered]),
            ("sub_c", &[EventName::PaymentReceived]),
        ] {
            h.store()
                .create_subscription(
                    &Subscription {
                        events: events_taken.to_vec(),
                        ..subscription(MERCHANT, id, "https://merchant.example/hook")
                    },
                    &secrets(),
                )
                .await
                .unwrap();
        }
        let ingest = ingest_with(h, deliveries.clone(), events);
        // Enqueued twice, both copies in one batch: one fans out; the other either finds it
        // done (a duplicate) or in progress, and is then left to SQS...
        let message = event_message(&event(MERCHANT, "evt_dup"));
        let twice = [message.clone(), message];
        let failed = ingest
            .handle_batch(event_of(&twice))
            .await
            .unwrap()
            .batch_item_failures
            .len();
        assert!(failed <= 1, "{failed} copies left to SQS");
        // ...which redelivers it once the fan-out is done: a duplicate, nothing sent.
        assert!(
            ingest
                .handle_batch(event_of(&twice[..1]))
                .await
                .unwrap()
                .batch_item_failures
                .is_empty()
        );
        let tasks: Vec<DeliveryTask> = drain(&deliveries, SEC)
            .await
            .iter()
            .map(|m| DeliveryTask::from_message_body(&m.body).unwrap())
            .collect();
        let mut subscriptions: Vec<&str> = tasks.iter().map(|t| t.subscription_id.as_str()).collect();
        subscriptions.sort();
        assert_eq!(
            subscriptions,
            ["sub_a", "sub_b"],
            "one task per matching subscription, whatever the duplicates"
        );
        assert!(tasks.iter().all(|t| t.attempt == 1 && t.event.event_id == "evt_dup"));
    }

    pub async fn ingest_resumes_a_fan_out_interrupted_by_a_failing_queue(h: &impl Harness) {
        let (deliveries, _) = h.queue_pair("deliveries-crash", 5).await;
        let (events, _) = h.queue_pair("events-crash", 5).await;
        for id in ["sub_a", "sub_b"] {
            h.store()
                .create_subscription(&subscription(MERCHANT, id, "https://merchant.example/hook"), &secrets())
                .await
                .unwrap();
        }
        let message = [event_message(&event(MERCHANT, "evt_crash"))];
        // The failed worker's lease runs out at once, as a crashed one's does before SQS redelivers.
        let broken = Ingest::new(h.store().clone(), FailingQueue, FailingQueue, Arc::new(SystemClock))
            .with_fan_out_lease(Duration::ZERO);
        let response = broken.handle_batch(event_of(&message)).await.unwrap();
        assert_eq!(
            response.batch_item_failures.len(),
            1,
            "the failed fan-out is left to SQS"
        );
        assert!(
            h.store().get_event("evt_crash").await.unwrap().is_some(),
            "the event was recorded before the failure"
        );

        let ingest = ingest_with(h, deliveries.clone(), events);
        assert!(
            ingest
                .handle_batch(event_of(&message))
                .await
                .unwrap()
                .batch_item_failures
                .is_empty()
        );
        let mut delivered: Vec<String> = drain(&deliveries, SEC)
            .await
            .iter()
            .map(|m| DeliveryTask::from_message_body(&m.body).unwrap().subscription_id)
            .collect();
        delivered.sort();
        assert_eq!(delivered, ["sub_a", "sub_b"], "the redelivered event was fanned out");
    }

    pub async fn ingest_dead_letters_malformed_events_without_failing_the_batch(h: &impl Harness) {
        let (deliveries, _) = h.queue_pair("deliveries-malformed", 5).await;
        let (events, events_dlq) = h.queue_pair("events-malformed", 5).await;
        h.store()
            .create_subscription(
                &subscription(MERCHANT, "sub_a", "https://merchant.example/hook"),
                &secrets(),
            )
            .await
            .unwrap();
        let ingest = ingest_with(h, deliveries.clone(), events);
        let bodies = [
            "{not json".to_owned(),
            event_message(&event(MERCHANT, "evt_good")),
            json!({"merchantId": MERCHANT, "eventName": "refunded", "orderId": "o"}).to_string(),
            json!({"merchantId": MERCHANT, "eventName": "crypto_delivered"}).to_string(),
        ];
        let response = ingest.handle_batch(event_of(&bodies)).await.unwrap();
        assert!(
            response.batch_item_failures.is_empty(),
            "a malformed record failed the batch"
        );
        assert_eq!(drain(&deliveries, SEC).await.len(), 1, "the good event was fanned out");
        let mut dead: Vec<String> = drain(&events_dlq, 2 * SEC).await.into_iter().map(|m| m.body).collect();
        dead.sort();
        let mut expected = vec![bodies[0].clone(), bodies[2].clone(), bodies[3].clone()];
        expected.sort();
        assert_eq!(dead, expected, "every malformed event is in the DLQ, unchanged");
    }

    pub async fn ingest_fans_out_to_a_thousand_subscriptions(h: &impl Harness) {
        let (deliveries, _) = h.queue_pair("deliveries-thousand", 5).await;
        let (events, _) = h.queue_pair("events-thousand", 5).await;
        for i in 0..1000 {
            let sub = subscription(MERCHANT, &format!("sub_{i:04}"), "https://merchant.example/hook");
            h.store().create_subscription(&sub, &secrets()).await.unwrap();
        }
        let ingest = ingest_with(h, deliveries.clone(), events);
        assert!(
            ingest
                .handle_batch(event_of(&[event_message(&event(MERCHANT, "evt_big"))]))
                .await
                .unwrap()
                .batch_item_failures
                .is_empty()
        );
        assert_eq!(
            deliveries.approximate_len().await.unwrap(),
            1000,
            "one task per subscription"
        );
    }

    /// 100 tasks at once to a subscription limited to 5 a second, handled in batches of 10
    /// by two deliver instances (two containers) on a clock: no second of the clock sees more
    /// than 5 requests, every task is delivered once as its first attempt, and the run takes
    /// the 20 seconds the limit needs.
    pub async fn a_rate_limited_subscription_gets_at_most_its_limit_each_second_and_every_task_once(h: &impl Harness) {
        const LIMIT: u32 = 5;
        const TASKS: usize = 100;
        let merchant = TestMerchant::start().await;
        let (deliveries, dlq) = h.queue_pair("deliveries-rate", 5).await;
        let clock = Arc::new(ManualClock::default());
        let delayed = ClockDelayedQueue::new(deliveries.clone(), clock.clone());
        let containers = [
            deliver_on_clock(h, delayed.clone(), "5s", clock.clone()),
            deliver_on_clock(h, delayed.clone(), "5s", clock.clone()),
        ];
        let limited = Subscription {
            rate_limit_per_second: Some(LIMIT),
            ..subscription(MERCHANT, "sub_rate", &merchant.url("/ok"))
        };
        h.store().create_subscription(&limited, &secrets()).await.unwrap();
        let tasks: Vec<OutgoingMessage> = (0..TASKS)
            .map(|i| OutgoingMessage {
                body: DeliveryTask::first(event(MERCHANT, &format!("evt_rate_{i:03}")), "sub_rate".into())
                    .to_message_body(),
                delay: Duration::ZERO,
            })
            .collect();
        for batch in tasks.chunks(10) {
            deliveries.send_batch(batch.to_vec()).await.unwrap();
        }

        let mut handled = 0;
        for _ in 0..100 {
            let received = drain(&deliveries, SEC).await;
            for (n, batch) in received.chunks(10).enumerate() {
                let deliver = &containers[n % 2];
                let response = deliver.handle_batch(event_of_received(batch)).await.unwrap();
                assert!(response.batch_item_failures.is_empty(), "a held-back task is handled");
                for message in batch {
                    deliveries.delete(&message.receipt_handle).await.unwrap();
                }
            }
            handled += received.len();
            let Some(next) = delayed.next_due() else { break };
            clock.advance(Duration::try_from(next - clock.now()).unwrap_or(Duration::ZERO));
            delayed.release_due().await;
        }

        let requests = merchant.requests();
        let mut per_second = std::collections::BTreeMap::<i64, usize>::new();
        for request in &requests {
            *per_second
                .entry(request.headers["webhook-timestamp"].parse().unwrap())
                .or_default() += 1;
        }
        assert!(
            per_second.values().all(|&n| n <= LIMIT as usize),
            "requests per second of the clock: {per_second:?}"
        );
        let ids: std::collections::HashSet<&str> = requests.iter().map(|r| r.headers["webhook-id"].as_str()).collect();
        assert_eq!((requests.len(), ids.len()), (TASKS, TASKS), "each task delivered once");
        let (first, last) = (per_second.keys().next().unwrap(), per_second.keys().last().unwrap());
        let rate = TASKS as f64 / (last - first + 1) as f64;
        assert!(
            (rate - f64::from(LIMIT)).abs() <= 0.1 * f64::from(LIMIT),
            "{rate} a second over the run: {per_second:?}"
        );
        assert!(
            handled - TASKS < TASKS,
            "a burst is spread over the seconds it needs, each task held back about once: {} hold-backs",
            handled - TASKS
        );
        let log = h
            .store()
            .list_attempts(MERCHANT, "sub_rate", PageRequest::first(100))
            .await
            .unwrap();
        assert_eq!(
            log.items.len(),
            TASKS,
            "held-back deliveries are not in the attempt log"
        );
        assert!(log.next_cursor.is_none());
        assert!(
            log.items
                .iter()
                .all(|a| a.attempt == 1 && a.outcome == AttemptOutcome::Succeeded),
            "every delivery succeeded as its first attempt"
        );
        assert_eq!(deliveries.approximate_len().await.unwrap(), 0);
        assert!(drain(&dlq, Duration::ZERO).await.is_empty());
    }

    /// A retry held back goes back to the queue with its attempt number and nothing in the
    /// log; when the store cannot count, the delivery is sent (the limit fails open).
    pub async fn a_held_back_task_keeps_its_attempt_and_a_store_that_cannot_count_holds_nothing_back(h: &impl Harness) {
        let merchant = TestMerchant::start().await;
        let (deliveries, _dlq) = h.queue_pair("deliveries-rate-held", 5).await;
        let clock = Arc::new(ManualClock::default());
        let store = FaultyStore::new(h.store().clone());
        let config = DeliverConfig {
            retry_schedule: "5s,5s,5s".parse().unwrap(),
            timeout: 5 * SEC,
            ..DeliverConfig::default()
        };
        let deliver = Deliver::new(
            store.clone(),
            deliveries.clone(),
            http_client(&LOOPBACK),
            config,
            clock.clone(),
        );
        let limited = Subscription {
            rate_limit_per_second: Some(1),
            ..subscription(MERCHANT, "sub_rate_1", &merchant.url("/ok"))
        };
        h.store().create_subscription(&limited, &secrets()).await.unwrap();
        let retry = |id: &str| DeliveryTask {
            attempt: 3,
            ..DeliveryTask::first(event(MERCHANT, id), "sub_rate_1".into())
        };

        store.fail_next(Step::CountRequest);
        assert_eq!(
            deliver.deliver(&retry("evt_uncounted")).await.unwrap(),
            TaskOutcome::Delivered
        );
        assert_eq!(
            deliver.deliver(&retry("evt_counted")).await.unwrap(),
            TaskOutcome::Delivered
        );
        let held = deliver.deliver(&retry("evt_held")).await.unwrap();
        let TaskOutcome::RateLimited(delay) = held else {
            panic!("{held:?}")
        };
        assert!(
            delay > Duration::ZERO && delay <= SEC,
            "until the next second: {delay:?}"
        );
        assert_eq!(merchant.requests().len(), 2, "the held-back task was not sent");

        let back = drain(&deliveries, 3 * SEC).await;
        assert_eq!(back.len(), 1);
        let task = DeliveryTask::from_message_body(&back[0].body).unwrap();
        assert_eq!((task.event.event_id.as_str(), task.attempt), ("evt_held", 3));
        let next_second = (clock.now().unix_timestamp() + 1) * 1000;
        assert_eq!(task.not_before.map(IsoTime::unix_millis), Some(next_second));
        let log = h
            .store()
            .list_attempts(MERCHANT, "sub_rate_1", PageRequest::first(10))
            .await
            .unwrap()
            .items;
        assert!(log.iter().all(|a| a.event_id != "evt_held"), "nothing recorded for it");
        assert_eq!(h.store().delivery_status("evt_held", "sub_rate_1").await.unwrap(), None);

        clock.advance(delay);
        assert_eq!(deliver.deliver(&task).await.unwrap(), TaskOutcome::Delivered);
        let log = h
            .store()
            .list_attempts(MERCHANT, "sub_rate_1", PageRequest::first(10))
            .await
            .unwrap()
            .items;
        let held: Vec<u32> = log
            .iter()
            .filter(|a| a.event_id == "evt_held")
            .map(|a| a.attempt)
            .collect();
        assert_eq!(held, [3], "delivered as attempt 3");
    }
}
