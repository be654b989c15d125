//! `POST /v1/subscriptions/{id}/recover`: failed deliveries of a window queued again, oldest
//! first, as manual attempts, each once however often the merchant asks; with the real
//! deliver function sending them to a real merchant on 127.0.0.1.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use webhooks_api::{Api, MAX_RECOVERED_PER_REQUEST, router};
use webhooks_auth_callback::AuthCallback;
use webhooks_deliver::{Deliver, DeliverConfig, TaskOutcome, http_client};
use webhooks_domain::{
    AttemptOutcome, DeliveryAttempt, DeliveryStatus, DeliveryTask, EventName, IsoTime, PlatformEvent,
};
use webhooks_storage::embedded::{EmbeddedQueue, EmbeddedStore};
use webhooks_storage::{DeliveryLog, EndpointBreaker, EventStore, HeldTask, OutgoingMessage, QueueSender, StoreError};
use webhooks_tests::merchant::TestMerchant;

use crate::support::{CLIENT, LOOPBACK, TestApi, Transport, both_transports};

both_transports!(
    recover_queues_the_failed_deliveries_of_the_window_oldest_first_as_manual_attempts,
    a_delivery_failing_again_is_recovered_again_and_a_success_is_not,
    recover_refuses_times_that_are_not_rfc_3339_and_windows_empty_or_too_long,
    recover_is_404_for_an_unknown_subscription_or_another_merchants,
    a_disabled_subscription_keeps_its_failed_deliveries_until_it_is_enabled_again,
    a_window_too_large_for_one_request_goes_on_from_next_since,
    recover_passes_on_the_held_deliveries_of_the_window_once_and_not_while_another_release_runs,
);

/// `hours` hours after the test clock's now (before it, when negative).
fn hours_from_now(api: &TestApi, hours: i64) -> IsoTime {
    IsoTime::new(api.clock.iso_now().instant() + time::Duration::hours(hours)).unwrap()
}

/// Attempt `n` of the delivery of `event_id` to `subscription_id`, made at `at`, failed.
fn failed_attempt(api: &TestApi, subscription_id: &str, event_id: &str, n: u32, at: IsoTime) -> DeliveryAttempt {
    DeliveryAttempt {
        event_id: event_id.into(),
        subscription_id: subscription_id.into(),
        merchant_id: api.a.0.clone(),
        event_name: EventName::PaymentReceived,
        attempt: n,
        attempted_at: at,
        outcome: AttemptOutcome::Failed,
        status_code: Some(503),
        error: Some("http_status".into()),
        latency_ms: 5,
        response_excerpt: None,
        next_attempt_at: None,
        manual: false,
    }
}

/// A payment_received event of A's, at `at`.
fn event_of(api: &TestApi, event_id: &str, at: IsoTime) -> PlatformEvent {
    PlatformEvent {
        event_id: event_id.into(),
        merchant_id: api.a.0.clone(),
        event_name: EventName::PaymentReceived,
        order_id: format!("order_{event_id}"),
        time_stamp: at,
    }
}

/// A delivery of a new event of A's to `subscription_id`, as deliver records it: attempts
/// 1 to `attempts`, a minute apart from `first_at`, the last leaving it `status`.
async fn seed(
    api: &TestApi,
    subscription_id: &str,
    event_id: &str,
    first_at: IsoTime,
    attempts: u32,
    status: DeliveryStatus,
) {
    let event = event_of(api, event_id, first_at);
    api.store.record_event(&event, Duration::ZERO).await.unwrap();
    for n in 1..=attempts {
        let at = IsoTime::new(first_at.instant() + time::Duration::minutes(i64::from(n) - 1)).unwrap();
        let now = if n == attempts { status } else { DeliveryStatus::Pending };
        let attempt = failed_attempt(api, subscription_id, event_id, n, at);
        api.store.record_attempt_once(&attempt, now, None).await.unwrap();
    }
}

async fn status(api: &TestApi, subscription_id: &str, event_id: &str) -> Option<DeliveryStatus> {
    api.store.delivery_status(event_id, subscription_id).await.unwrap()
}

fn recover_uri(subscription_id: &str) -> String {
    format!("/v1/subscriptions/{subscription_id}/recover")
}

fn deliver(api: &TestApi) -> Deliver<EmbeddedStore, EmbeddedQueue> {
    Deliver::new(
        api.store.clone(),
        api.deliveries.clone(),
        http_client(&LOOPBACK),
        DeliverConfig::default(),
        api.clock.clone(),
    )
}

/// (event id, attempt, manual, recovery) of each task.
fn summary(tasks: &[DeliveryTask]) -> Vec<(&str, u32, bool, bool)> {
    tasks
        .iter()
        .map(|t| (t.event.event_id.as_str(), t.attempt, t.manual, t.recovery))
        .collect()
}

async fn recover_queues_the_failed_deliveries_of_the_window_oldest_first_as_manual_attempts(t: Transport) {
    let api = TestApi::start(t).await;
    let url = "https://merchant.example.com/hook";
    let id = api.subscription_id(api.key_a(), json!({ "url": url })).await;
    let other = api.subscription_id(api.key_a(), json!({ "url": url })).await;
    let failed = DeliveryStatus::Failed;
    seed(&api, &id, "evt_before", hours_from_now(&api, -30), 8, failed).await;
    seed(&api, &id, "evt_newer", hours_from_now(&api, -5), 8, failed).await;
    seed(&api, &id, "evt_older", hours_from_now(&api, -20), 3, failed).await;
    seed(
        &api,
        &id,
        "evt_delivered",
        hours_from_now(&api, -10),
        2,
        DeliveryStatus::Succeeded,
    )
    .await;
    seed(
        &api,
        &id,
        "evt_retrying",
        hours_from_now(&api, -8),
        2,
        DeliveryStatus::Pending,
    )
    .await;
    seed(&api, &other, "evt_elsewhere", hours_from_now(&api, -5), 8, failed).await;
    // Retries of a delivery first attempted before the window do not bring it in.
    seed(
        &api,
        &id,
        "evt_retried_into_window",
        hours_from_now(&api, -25),
        1,
        failed,
    )
    .await;
    let late_retry = failed_attempt(&api, &id, "evt_retried_into_window", 2, hours_from_now(&api, -3));
    api.store.record_attempt_once(&late_retry, failed, None).await.unwrap();

    let body = json!({ "since": hours_from_now(&api, -24) });
    let reply = api
        .call(api.key_a(), "POST", &recover_uri(&id), Some(body.clone()))
        .await;
    assert_eq!(reply.expect(202), &json!({ "count": 2 }));
    // Nothing is sent twice: the first recovery's tasks are still pending.
    let again = api.call(api.key_a(), "POST", &recover_uri(&id), Some(body)).await;
    assert_eq!(again.expect(202), &json!({ "count": 0 }));

    let tasks = api.queued_tasks().await;
    assert_eq!(
        summary(&tasks),
        [("evt_older", 4, true, true), ("evt_newer", 9, true, true)],
        "oldest first, each numbered after its last attempt"
    );
    assert!(tasks.iter().all(|t| t.subscription_id == id && t.not_before.is_none()));
    assert_eq!(tasks[0].event, api.store.get_event("evt_older").await.unwrap().unwrap());
    for (event_id, expected) in [
        ("evt_older", DeliveryStatus::Pending),
        ("evt_newer", DeliveryStatus::Pending),
        ("evt_before", failed),
        ("evt_retried_into_window", failed),
        ("evt_delivered", DeliveryStatus::Succeeded),
        ("evt_retrying", DeliveryStatus::Pending),
    ] {
        assert_eq!(status(&api, &id, event_id).await, Some(expected), "{event_id}");
    }
    assert_eq!(status(&api, &other, "evt_elsewhere").await, Some(failed));
}

async fn a_delivery_failing_again_is_recovered_again_and_a_success_is_not(t: Transport) {
    let api = TestApi::start(t).await;
    let merchant = TestMerchant::start().await;
    let id = api
        .subscription_id(api.key_a(), json!({ "url": merchant.url("/flaky/1") }))
        .await;
    seed(&api, &id, "evt_1", hours_from_now(&api, -3), 8, DeliveryStatus::Failed).await;
    seed(&api, &id, "evt_2", hours_from_now(&api, -2), 8, DeliveryStatus::Failed).await;
    let body = json!({ "since": hours_from_now(&api, -4), "until": hours_from_now(&api, 0) });
    let uri = recover_uri(&id);
    let recover = || api.call(api.key_a(), "POST", &uri, Some(body.clone()));
    assert_eq!(recover().await.expect(202), &json!({ "count": 2 }));

    // The merchant answers 503 once, then 200: the first recovered delivery fails again.
    let deliver = deliver(&api);
    let tasks = api.queued_tasks().await;
    assert_eq!(deliver.deliver(&tasks[0]).await.unwrap(), TaskOutcome::ManualFailed);
    assert_eq!(deliver.deliver(&tasks[1]).await.unwrap(), TaskOutcome::Delivered);
    // A redelivered task is recorded once, and changes nothing.
    assert_eq!(deliver.deliver(&tasks[1]).await.unwrap(), TaskOutcome::AlreadyRecorded);
    assert_eq!(status(&api, &id, "evt_1").await, Some(DeliveryStatus::Failed));
    assert_eq!(status(&api, &id, "evt_2").await, Some(DeliveryStatus::Succeeded));
    let log = api
        .call(
            api.key_a(),
            "GET",
            &format!("/v1/subscriptions/{id}/deliveries?limit=2"),
            None,
        )
        .await;
    let newest: Vec<(String, u64, String, bool)> = log.expect(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let text = |field: &str| a[field].as_str().unwrap().to_owned();
            (
                text("eventId"),
                a["attempt"].as_u64().unwrap(),
                text("outcome"),
                a["manual"] == Value::Bool(true),
            )
        })
        .collect();
    assert_eq!(
        newest,
        [
            ("evt_2".to_owned(), 9, "succeeded".to_owned(), true),
            ("evt_1".to_owned(), 9, "failed".to_owned(), true)
        ]
    );

    assert_eq!(recover().await.expect(202), &json!({ "count": 1 }));
    assert_eq!(summary(&api.queued_tasks().await), [("evt_1", 10, true, true)]);
    assert_eq!(merchant.requests_to("/flaky/1").len(), 3);
}

async fn recover_refuses_times_that_are_not_rfc_3339_and_windows_empty_or_too_long(t: Transport) {
    let api = TestApi::start(t).await;
    let id = api
        .subscription_id(api.key_a(), json!({ "url": "https://merchant.example.com/hook" }))
        .await;
    seed(
        &api,
        &id,
        "evt_1",
        hours_from_now(&api, -24 * 13),
        8,
        DeliveryStatus::Failed,
    )
    .await;
    let uri = recover_uri(&id);
    let (now, day) = (hours_from_now(&api, 0), 24);
    for (body, status, code) in [
        (json!({}), 400, "invalid_request"),
        (json!({ "until": now }), 400, "invalid_request"),
        (json!({ "since": "yesterday" }), 422, "invalid_time"),
        (json!({ "since": "2026-13-01T00:00:00Z" }), 422, "invalid_time"),
        (
            json!({ "since": "2026-03-01T00:00:00Z", "until": "9999-12-31T23:59:59-01:00" }),
            422,
            "invalid_time",
        ),
        (json!({ "since": 1_700_000_000 }), 400, "invalid_request"),
        (
            json!({ "since": hours_from_now(&api, -1), "from": now }),
            400,
            "invalid_request",
        ),
        (json!(null), 400, "invalid_request"),
        (json!({ "since": now, "until": now }), 422, "invalid_window"),
        (
            json!({ "since": now, "until": hours_from_now(&api, -1) }),
            422,
            "invalid_window",
        ),
        (json!({ "since": hours_from_now(&api, 1) }), 422, "invalid_window"),
        (
            json!({ "since": hours_from_now(&api, -15 * day) }),
            422,
            "invalid_window",
        ),
        (
            json!({ "since": hours_from_now(&api, -20 * day), "until": hours_from_now(&api, -5 * day - 1) }),
            422,
            "invalid_window",
        ),
    ] {
        let reply = api.call(api.key_a(), "POST", &uri, Some(body.clone())).await;
        reply.expect(status);
        assert_eq!(reply.code(), code, "{body}");
    }
    assert!(api.queued_tasks().await.is_empty());
    assert_eq!(status(&api, &id, "evt_1").await, Some(DeliveryStatus::Failed));

    // Exactly 14 days is a window; a time with an offset is the same instant in UTC.
    let since = hours_from_now(&api, -14 * day).to_string().replace('Z', "+00:00");
    let reply = api
        .call(api.key_a(), "POST", &uri, Some(json!({ "since": since })))
        .await;
    assert_eq!(reply.expect(202), &json!({ "count": 1 }));
}

async fn recover_is_404_for_an_unknown_subscription_or_another_merchants(t: Transport) {
    let api = TestApi::start(t).await;
    let id = api
        .subscription_id(api.key_a(), json!({ "url": "https://merchant.example.com/hook" }))
        .await;
    seed(&api, &id, "evt_1", hours_from_now(&api, -2), 8, DeliveryStatus::Failed).await;
    let body = json!({ "since": hours_from_now(&api, -3) });
    for (key, uri) in [
        (api.key_b(), recover_uri(&id)),
        (api.key_a(), recover_uri("sub_00000000000000000000000000000000")),
        (api.key_a(), recover_uri("not-an-id")),
    ] {
        let reply = api.call(key, "POST", &uri, Some(body.clone())).await;
        reply.expect(404);
        assert_eq!(reply.code(), "not_found", "{uri}");
    }
    assert!(api.queued_tasks().await.is_empty());
    assert_eq!(status(&api, &id, "evt_1").await, Some(DeliveryStatus::Failed));
}

async fn a_disabled_subscription_keeps_its_failed_deliveries_until_it_is_enabled_again(t: Transport) {
    let api = TestApi::start(t).await;
    let id = api
        .subscription_id(api.key_a(), json!({ "url": "https://merchant.example.com/hook" }))
        .await;
    seed(&api, &id, "evt_1", hours_from_now(&api, -2), 8, DeliveryStatus::Failed).await;
    let uri = format!("/v1/subscriptions/{id}");
    let body = json!({ "since": hours_from_now(&api, -3) });
    api.call(api.key_a(), "PATCH", &uri, Some(json!({ "enabled": false })))
        .await
        .expect(200);
    let disabled = api
        .call(api.key_a(), "POST", &recover_uri(&id), Some(body.clone()))
        .await;
    disabled.expect(409);
    assert_eq!(disabled.code(), "subscription_disabled");
    assert!(api.queued_tasks().await.is_empty());
    assert_eq!(status(&api, &id, "evt_1").await, Some(DeliveryStatus::Failed));

    api.call(api.key_a(), "PATCH", &uri, Some(json!({ "enabled": true })))
        .await
        .expect(200);
    let enabled = api.call(api.key_a(), "POST", &recover_uri(&id), Some(body)).await;
    assert_eq!(enabled.expect(202), &json!({ "count": 1 }));
    assert_eq!(summary(&api.queued_tasks().await), [("evt_1", 9, true, true)]);
}

async fn a_window_too_large_for_one_request_goes_on_from_next_since(t: Transport) {
    let api = TestApi::start(t).await;
    let id = api
        .subscription_id(api.key_a(), json!({ "url": "https://merchant.example.com/hook" }))
        .await;
    let total = MAX_RECOVERED_PER_REQUEST + 7;
    let start = hours_from_now(&api, -48);
    for n in 0..total {
        let first_at = IsoTime::new(start.instant() + time::Duration::seconds(i64::try_from(n).unwrap())).unwrap();
        seed(&api, &id, &format!("evt_{n:04}"), first_at, 1, DeliveryStatus::Failed).await;
    }
    let until = hours_from_now(&api, 0);
    let first = api
        .call(
            api.key_a(),
            "POST",
            &recover_uri(&id),
            Some(json!({ "since": start, "until": until })),
        )
        .await;
    let first = first.expect(202).clone();
    assert_eq!(first["count"], MAX_RECOVERED_PER_REQUEST);
    let next_since = first["nextSince"].as_str().expect("where to go on from");
    let last_taken =
        IsoTime::new(start.instant() + time::Duration::seconds(i64::try_from(MAX_RECOVERED_PER_REQUEST).unwrap() - 1))
            .unwrap();
    assert_eq!(next_since, last_taken.to_string());

    let rest = api
        .call(
            api.key_a(),
            "POST",
            &recover_uri(&id),
            Some(json!({ "since": next_since, "until": until })),
        )
        .await;
    assert_eq!(rest.expect(202), &json!({ "count": 7 }));
    let mut sent = Vec::new();
    loop {
        let tasks = api.queued_tasks().await;
        if tasks.is_empty() {
            break;
        }
        sent.extend(tasks.into_iter().map(|t| t.event.event_id));
    }
    let expected: Vec<String> = (0..total).map(|n| format!("evt_{n:04}")).collect();
    assert_eq!(sent, expected, "each once, oldest first");
    assert_eq!(sent.iter().collect::<HashSet<_>>().len(), total);
}

/// A deliveries queue that refuses every message.
struct RefusingQueue;

impl QueueSender for RefusingQueue {
    async fn send(&self, _: OutgoingMessage) -> Result<(), StoreError> {
        Err(StoreError::backend("test.send", "refused"))
    }

    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        Ok(messages
            .iter()
            .map(|_| Err(StoreError::backend("test.send_batch", "refused")))
            .collect())
    }

    async fn send_dead_letter(&self, _: &str, _: &str) -> Result<(), StoreError> {
        Err(StoreError::backend("test.send_dead_letter", "refused"))
    }
}

#[tokio::test]
async fn deliveries_whose_tasks_the_queue_refuses_are_given_back_for_a_repeat() {
    let api = TestApi::start(Transport::Router).await;
    let id = api
        .subscription_id(api.key_a(), json!({ "url": "https://merchant.example.com/hook" }))
        .await;
    for n in 0..12 {
        seed(
            &api,
            &id,
            &format!("evt_{n:02}"),
            hours_from_now(&api, -3),
            8,
            DeliveryStatus::Failed,
        )
        .await;
    }
    let auth = AuthCallback::new(api.store.clone(), LOOPBACK, Duration::from_secs(3), api.clock.clone()).unwrap();
    let refusing = router(std::sync::Arc::new(Api::new(
        api.store.clone(),
        RefusingQueue,
        LOOPBACK,
        auth,
        api.clock.clone(),
    )));
    let body = json!({ "since": hours_from_now(&api, -4) }).to_string().into_bytes();
    let bearer = format!("Bearer {}", api.key_a());
    let headers = [("authorization", bearer.as_str()), ("content-type", "application/json")];
    let refused = api
        .send_to(
            &refusing,
            CLIENT,
            "POST",
            &recover_uri(&id),
            &headers,
            Some(body.clone()),
        )
        .await;
    refused.expect(503);
    for n in 0..12 {
        let event_id = format!("evt_{n:02}");
        assert_eq!(
            status(&api, &id, &event_id).await,
            Some(DeliveryStatus::Failed),
            "{event_id}"
        );
    }

    let again = api.raw("POST", &recover_uri(&id), &headers, Some(body)).await;
    assert_eq!(again.expect(202), &json!({ "count": 12 }));
}

async fn recover_passes_on_the_held_deliveries_of_the_window_once_and_not_while_another_release_runs(t: Transport) {
    let api = TestApi::start(t).await;
    let id = api
        .subscription_id(api.key_a(), json!({ "url": "https://merchant.example.com/hook" }))
        .await;
    let endpoint = format!("{}#{id}", api.a.0);
    // Three deliveries held by the breaker (never attempted, or after a failed attempt):
    // two in the window, one before it.
    let mut held = Vec::new();
    for (event_id, attempt, hours) in [("evt_held_old", 1, -30), ("evt_held_a", 1, -5), ("evt_held_b", 3, -2)] {
        let at = hours_from_now(&api, hours);
        let task = DeliveryTask {
            attempt,
            ..DeliveryTask::first(event_of(&api, event_id, at), id.clone())
        };
        let entry = HeldTask::new(at.unix_millis(), &task.key(), task.to_message_body());
        api.store.hold(&endpoint, &entry, at.unix_millis()).await.unwrap();
        held.push(entry);
    }
    let body = json!({ "since": hours_from_now(&api, -24) });
    let uri = recover_uri(&id);
    let recover = || api.call(api.key_a(), "POST", &uri, Some(body.clone()));

    // While deliver (or another recover) holds the endpoint's release lease, recover sends
    // none of them: the lease holder does.
    let now_ms = api.clock.iso_now().unix_millis();
    assert!(
        api.store
            .take_release_lease(&endpoint, "deliver", now_ms, now_ms + 30_000)
            .await
            .unwrap()
    );
    assert_eq!(recover().await.expect(202), &json!({ "count": 0 }));
    api.store.end_release_lease(&endpoint, "deliver").await.unwrap();

    assert_eq!(recover().await.expect(202), &json!({ "count": 2 }));
    assert_eq!(
        summary(&api.queued_tasks().await),
        [("evt_held_a", 1, false, false), ("evt_held_b", 3, false, false)],
        "as they were held (attempt numbers kept), oldest first"
    );
    assert_eq!(recover().await.expect(202), &json!({ "count": 0 }), "each once");
    let left = api.store.held_tasks(&endpoint, 0, i64::MAX, 10).await.unwrap();
    assert_eq!(left, held[..1], "the one held before the window stays held");
}
