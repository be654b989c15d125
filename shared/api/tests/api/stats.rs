//! `GET /v1/subscriptions/{id}/stats`: the last hours' attempts per hour by outcome, with
//! nearest-rank latency percentiles, from the delivery log.

use serde_json::{Value, json};
use webhooks_domain::{AttemptOutcome, DeliveryAttempt, DeliveryStatus, EventName, IsoTime};
use webhooks_storage::DeliveryLog;

use crate::support::{TestApi, Transport, both_transports};

both_transports!(
    stats_count_each_hour_by_outcome_with_latency_percentiles,
    stats_refuse_hours_outside_1_to_168_and_other_merchants_subscriptions,
);

fn attempt(
    api: &TestApi,
    subscription_id: &str,
    n: u32,
    at: IsoTime,
    outcome: AttemptOutcome,
    latency_ms: u64,
) -> DeliveryAttempt {
    DeliveryAttempt {
        event_id: format!("evt_stats_{n}"),
        subscription_id: subscription_id.into(),
        merchant_id: api.a.0.clone(),
        event_name: EventName::PaymentReceived,
        attempt: 1,
        attempted_at: at,
        outcome,
        status_code: None,
        error: None,
        latency_ms,
        response_excerpt: None,
        next_attempt_at: None,
        manual: false,
    }
}

async fn stats_count_each_hour_by_outcome_with_latency_percentiles(t: Transport) {
    let api = TestApi::start(t).await;
    let id = api
        .subscription_id(api.key_a(), json!({ "url": "https://merchant.example.com/hook" }))
        .await;
    let now = api.clock.iso_now().instant();
    let hour = now
        .replace_minute(0)
        .unwrap()
        .replace_second(0)
        .unwrap()
        .replace_nanosecond(0)
        .unwrap();
    let at = |minutes: i64| IsoTime::new(hour + time::Duration::minutes(minutes)).unwrap();
    let seeded = [
        (at(0), AttemptOutcome::Succeeded, 10),
        (at(0), AttemptOutcome::Succeeded, 30),
        (at(0), AttemptOutcome::Succeeded, 20),
        (at(0), AttemptOutcome::Failed, 500),
        (at(0), AttemptOutcome::Skipped, 0),
        (at(-30), AttemptOutcome::Succeeded, 7),
        (at(-5 * 60), AttemptOutcome::Failed, 900),
    ];
    for (n, (when, outcome, latency)) in seeded.into_iter().enumerate() {
        let attempt = attempt(&api, &id, n as u32, when, outcome, latency);
        api.store
            .record_attempt_once(&attempt, DeliveryStatus::Pending, None)
            .await
            .unwrap();
    }

    let stats = api
        .call(
            api.key_a(),
            "GET",
            &format!("/v1/subscriptions/{id}/stats?hours=3"),
            None,
        )
        .await;
    let stats = stats.expect(200);
    let empty = json!({ "succeeded": 0, "failed": 0, "p50LatencyMs": null, "p99LatencyMs": null });
    let tally = |succeeded: u64, failed: u64, p50: u64, p99: u64| json!({ "succeeded": succeeded, "failed": failed, "p50LatencyMs": p50, "p99LatencyMs": p99 });
    let with_start = |minutes: i64, tally: Value| {
        let mut bucket = tally;
        bucket["start"] = json!(at(minutes));
        bucket
    };
    assert_eq!(stats["from"], json!(at(-120)));
    assert_eq!(stats["bucketSeconds"], 3600);
    assert_eq!(
        stats["buckets"],
        json!([
            with_start(-120, empty),
            with_start(-60, tally(1, 0, 7, 7)),
            with_start(0, tally(3, 1, 20, 500))
        ])
    );
    assert_eq!(stats["totals"], tally(4, 1, 20, 500));
    assert_eq!(stats["complete"], true);

    // The default window is 24 hours.
    let day = api
        .call(api.key_a(), "GET", &format!("/v1/subscriptions/{id}/stats"), None)
        .await;
    let day = day.expect(200);
    assert_eq!(day["buckets"].as_array().unwrap().len(), 24);
    assert_eq!(day["totals"], tally(4, 2, 20, 900));
}

async fn stats_refuse_hours_outside_1_to_168_and_other_merchants_subscriptions(t: Transport) {
    let api = TestApi::start(t).await;
    let id = api
        .subscription_id(api.key_a(), json!({ "url": "https://merchant.example.com/hook" }))
        .await;
    for hours in ["0", "169", "-1", "x"] {
        let uri = format!("/v1/subscriptions/{id}/stats?hours={hours}");
        let reply = api.call(api.key_a(), "GET", &uri, None).await;
        reply.expect(400);
        assert_eq!(reply.code(), "invalid_request", "{hours}");
    }
    let uri = format!("/v1/subscriptions/{id}/stats?hours=168");
    api.call(api.key_a(), "GET", &uri, None).await.expect(200);
    let theirs = api.call(api.key_b(), "GET", &uri, None).await;
    theirs.expect(404);
}
