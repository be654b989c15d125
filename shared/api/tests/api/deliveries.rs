//! Test events, the delivery log and manual retries, with the real deliver function
//! sending to a real merchant on 127.0.0.1.

use std::time::Duration;

use serde_json::{Value, json};
use webhooks_deliver::{Deliver, DeliverConfig, TaskOutcome, http_client};
use webhooks_domain::{
    AttemptOutcome, DeliveryAttempt, DeliveryStatus, EventName, IsoTime, PlatformEvent, RetrySchedule,
};
use webhooks_storage::embedded::{EmbeddedQueue, EmbeddedStore};
use webhooks_storage::{DeliveryLog, EventStore};
use webhooks_tests::merchant::TestMerchant;

use crate::support::{LOOPBACK, TestApi, Transport, both_transports};

both_transports!(
    test_event_is_recorded_and_queued_for_that_subscription_only,
    test_event_refuses_unknown_names_and_disabled_subscriptions,
    delivery_log_lists_attempts_newest_first_in_pages,
    manual_retry_delivers_once_more_and_is_logged_as_manual,
    retry_is_404_for_deliveries_the_subscription_never_had,
);

fn deliver(api: &TestApi) -> Deliver<EmbeddedStore, EmbeddedQueue> {
    let config = DeliverConfig {
        retry_schedule: RetrySchedule::default(),
        timeout: Duration::from_secs(5),
        ..DeliverConfig::default()
    };
    Deliver::new(
        api.store.clone(),
        api.deliveries.clone(),
        http_client(&LOOPBACK),
        config,
        api.clock.clone(),
    )
}

async fn test_event_is_recorded_and_queued_for_that_subscription_only(t: Transport) {
    let api = TestApi::start(t).await;
    let url = "https://merchant.example.com/hook";
    let target = api
        .subscribe(
            api.key_a(),
            json!({ "url": url, "events": ["crypto_tx_sent", "payment_received"] }),
        )
        .await;
    api.subscribe(api.key_a(), json!({ "url": url })).await;
    let id = target["id"].as_str().unwrap();
    let uri = format!("/v1/subscriptions/{id}/test");

    let empty_body = api
        .raw(
            "POST",
            &uri,
            &[("authorization", &format!("Bearer {}", api.key_a()))],
            None,
        )
        .await;
    let named = api
        .call(
            api.key_a(),
            "POST",
            &uri,
            Some(json!({ "eventName": "crypto_delivered" })),
        )
        .await;
    let empty_object = api.call(api.key_a(), "POST", &uri, Some(json!({}))).await;

    let mut expected = Vec::new();
    for (reply, name) in [
        (&empty_body, EventName::CryptoTxSent),
        (&named, EventName::CryptoDelivered),
        (&empty_object, EventName::CryptoTxSent),
    ] {
        let event_id = reply.expect(202)["eventId"].as_str().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&event_id).is_ok(), "{event_id}");
        let event = api
            .store
            .get_event(&event_id)
            .await
            .unwrap()
            .expect("the event is recorded");
        assert_eq!(event.merchant_id, api.a.0);
        assert_eq!(event.event_name, name);
        assert_eq!(event.time_stamp, api.clock.iso_now());
        let order = event.order_id.strip_prefix("test_").expect("a test order id");
        assert!(uuid::Uuid::parse_str(order).is_ok(), "{order}");
        expected.push(event);
    }
    let tasks = api.queued_tasks().await;
    assert_eq!(tasks.len(), 3);
    for (task, event) in tasks.iter().zip(&expected) {
        assert_eq!(&task.event, event);
        assert_eq!(task.subscription_id, id);
        assert_eq!(task.attempt, 1);
        assert!(!task.manual);
    }
}

async fn test_event_refuses_unknown_names_and_disabled_subscriptions(t: Transport) {
    let api = TestApi::start(t).await;
    let created = api
        .subscribe(api.key_a(), json!({ "url": "https://merchant.example.com/hook" }))
        .await;
    let uri = format!("/v1/subscriptions/{}", created["id"].as_str().unwrap());
    let test = format!("{uri}/test");
    for (body, status, code) in [
        (json!({ "eventName": "order_shipped" }), 422, "invalid_events"),
        (json!({ "eventName": 1 }), 400, "invalid_request"),
        (json!({ "event": "payment_received" }), 400, "invalid_request"),
        (json!(null), 400, "invalid_request"),
    ] {
        let reply = api.call(api.key_a(), "POST", &test, Some(body.clone())).await;
        reply.expect(status);
        assert_eq!(reply.code(), code, "{body}");
    }
    api.call(api.key_a(), "PATCH", &uri, Some(json!({ "enabled": false })))
        .await
        .expect(200);
    let disabled = api.call(api.key_a(), "POST", &test, Some(json!({}))).await;
    disabled.expect(409);
    assert_eq!(disabled.code(), "subscription_disabled");
    let unknown = api
        .call(
            api.key_a(),
            "POST",
            "/v1/subscriptions/sub_00000000000000000000000000000000/test",
            None,
        )
        .await;
    unknown.expect(404);
    assert!(api.queued_tasks().await.is_empty());
}

fn attempt(subscription_id: &str, merchant_id: &str, event_id: &str, n: u32, at: IsoTime) -> DeliveryAttempt {
    DeliveryAttempt {
        event_id: event_id.into(),
        subscription_id: subscription_id.into(),
        merchant_id: merchant_id.into(),
        event_name: EventName::PaymentReceived,
        attempt: n,
        attempted_at: at,
        outcome: AttemptOutcome::Failed,
        status_code: Some(503),
        error: Some("http_status".into()),
        latency_ms: 12,
        response_excerpt: Some("unavailable".into()),
        next_attempt_at: None,
        manual: false,
    }
}

async fn delivery_log_lists_attempts_newest_first_in_pages(t: Transport) {
    let api = TestApi::start(t).await;
    let created = api
        .subscribe(api.key_a(), json!({ "url": "https://merchant.example.com/hook" }))
        .await;
    let id = created["id"].as_str().unwrap();
    let other = api
        .subscribe(api.key_a(), json!({ "url": "https://merchant.example.com/other" }))
        .await;
    let start = api.clock.iso_now();
    let at = |secs: i64| IsoTime::new(start.instant() + time::Duration::seconds(secs)).unwrap();
    let recorded = [
        attempt(id, &api.a.0, "evt_1", 1, at(0)),
        attempt(id, &api.a.0, "evt_2", 1, at(1)),
        attempt(id, &api.a.0, "evt_1", 2, at(5)),
    ];
    for record in &recorded {
        api.store.record_attempt(record).await.unwrap();
    }
    let elsewhere = attempt(other["id"].as_str().unwrap(), &api.a.0, "evt_1", 1, at(9));
    api.store.record_attempt(&elsewhere).await.unwrap();

    let uri = format!("/v1/subscriptions/{id}/deliveries");
    let first = api.call(api.key_a(), "GET", &format!("{uri}?limit=2"), None).await;
    let first = first.expect(200).clone();
    let second = api
        .call(
            api.key_a(),
            "GET",
            &format!("{uri}?limit=2&cursor={}", first["nextCursor"].as_str().unwrap()),
            None,
        )
        .await;
    let second = second.expect(200).clone();
    assert_eq!(second["nextCursor"], Value::Null);
    let items: Vec<Value> = [first["items"].as_array().unwrap(), second["items"].as_array().unwrap()]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let newest_first: Vec<Value> = recorded
        .iter()
        .rev()
        .map(|a| serde_json::to_value(a).unwrap())
        .collect();
    assert_eq!(items, newest_first);
    assert_eq!(
        items[0],
        json!({
            "eventId": "evt_1", "subscriptionId": id, "merchantId": api.a.0,
            "eventName": "payment_received", "attempt": 2, "attemptedAt": at(5).to_string(),
            "outcome": "failed", "statusCode": 503, "error": "http_status", "latencyMs": 12,
            "responseExcerpt": "unavailable", "nextAttemptAt": null, "manual": false,
        })
    );
    let everything = api.call(api.key_a(), "GET", &uri, None).await;
    assert_eq!(everything.expect(200)["items"].as_array().unwrap().len(), 3);
    let bad = api.call(api.key_a(), "GET", &format!("{uri}?limit=101"), None).await;
    bad.expect(400);
    let unknown = api
        .call(
            api.key_a(),
            "GET",
            "/v1/subscriptions/sub_00000000000000000000000000000000/deliveries",
            None,
        )
        .await;
    unknown.expect(404);
}

async fn manual_retry_delivers_once_more_and_is_logged_as_manual(t: Transport) {
    let api = TestApi::start(t).await;
    let merchant = TestMerchant::start().await;
    let created = api
        .subscribe(api.key_a(), json!({ "url": merchant.url("/flaky/1") }))
        .await;
    let id = created["id"].as_str().unwrap();
    let uri = format!("/v1/subscriptions/{id}");
    let sent = api.call(api.key_a(), "POST", &format!("{uri}/test"), None).await;
    let event_id = sent.expect(202)["eventId"].as_str().unwrap().to_owned();
    let deliver = deliver(&api);

    let [first] = api.queued_tasks().await.try_into().expect("one test task");
    assert!(matches!(
        deliver.deliver(&first).await.unwrap(),
        TaskOutcome::RetryScheduled(_)
    ));
    assert_eq!(
        api.store.delivery_status(&event_id, id).await.unwrap(),
        Some(DeliveryStatus::Pending)
    );

    let retry = format!("{uri}/deliveries/{event_id}/retry");
    let accepted = api.call(api.key_a(), "POST", &retry, None).await;
    assert_eq!(accepted.expect(202), &json!({ "eventId": event_id }));
    // The automatic retry waits out its delay; the manual one is there at once.
    let [manual] = api.queued_tasks().await.try_into().expect("one manual task");
    assert!(manual.manual);
    assert_eq!(manual.attempt, 2);
    assert_eq!(manual.event, first.event);
    assert_eq!(manual.subscription_id, id);
    assert_eq!(deliver.deliver(&manual).await.unwrap(), TaskOutcome::Delivered);
    let received = merchant.requests_to("/flaky/1");
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].headers["webhook-id"], event_id);
    assert_eq!(received[1].headers["webhook-id"], event_id);

    let log = api.call(api.key_a(), "GET", &format!("{uri}/deliveries"), None).await;
    let items = log.expect(200)["items"].as_array().unwrap().clone();
    let summary: Vec<(u64, &str, bool)> = items
        .iter()
        .map(|a| {
            (
                a["attempt"].as_u64().unwrap(),
                a["outcome"].as_str().unwrap(),
                a["manual"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(summary, vec![(2, "succeeded", true), (1, "failed", false)]);

    // A retry after success is one more attempt, numbered after the latest.
    api.call(api.key_a(), "POST", &retry, None).await.expect(202);
    let [again] = api.queued_tasks().await.try_into().expect("one manual task");
    assert_eq!((again.attempt, again.manual), (3, true));
}

async fn retry_is_404_for_deliveries_the_subscription_never_had(t: Transport) {
    let api = TestApi::start(t).await;
    let url = "https://merchant.example.com/hook";
    let one = api.subscribe(api.key_a(), json!({ "url": url })).await;
    let two = api.subscribe(api.key_a(), json!({ "url": url })).await;
    let (one, two) = (one["id"].as_str().unwrap(), two["id"].as_str().unwrap());
    let event = PlatformEvent {
        event_id: "evt_delivered_to_one".into(),
        merchant_id: api.a.0.clone(),
        event_name: EventName::PaymentReceived,
        order_id: "order_1".into(),
        time_stamp: api.clock.iso_now(),
    };
    api.store.record_event(&event, Duration::ZERO).await.unwrap();
    api.store
        .record_attempt(&attempt(one, &api.a.0, &event.event_id, 1, event.time_stamp))
        .await
        .unwrap();
    api.store
        .set_delivery_status(&api.a.0, &event.event_id, one, DeliveryStatus::Failed)
        .await
        .unwrap();
    let retry = |sub: &str, event_id: &str| format!("/v1/subscriptions/{sub}/deliveries/{event_id}/retry");
    for uri in [
        retry(two, &event.event_id),
        retry(one, "evt_never_sent"),
        retry(one, "evt%20with%20spaces"),
        retry(one, &"e".repeat(129)),
        retry("sub_00000000000000000000000000000000", &event.event_id),
    ] {
        let reply = api.call(api.key_a(), "POST", &uri, None).await;
        reply.expect(404);
        assert_eq!(reply.code(), "not_found", "{uri}");
    }
    assert!(api.queued_tasks().await.is_empty());
    api.call(api.key_a(), "POST", &retry(one, &event.event_id), None)
        .await
        .expect(202);
    let [task] = api.queued_tasks().await.try_into().expect("one manual task");
    assert_eq!((task.attempt, task.manual), (2, true));

    api.call(
        api.key_a(),
        "PATCH",
        &format!("/v1/subscriptions/{one}"),
        Some(json!({ "enabled": false })),
    )
    .await
    .expect(200);
    let disabled = api.call(api.key_a(), "POST", &retry(one, &event.event_id), None).await;
    disabled.expect(409);
    assert_eq!(disabled.code(), "subscription_disabled");
}
