//! Endpoint health through the local stack (DESIGN section 3): the circuit breaker caps the
//! requests a failing endpoint sees at once and sends every held delivery once it answers
//! again; an endpoint failing past `WEBHOOKS_DISABLE_AFTER` is disabled, its merchant told
//! by an `endpoint_disabled` webhook, and its held deliveries recovered once each; a
//! subscription's `rateLimitPerSecond` holds over 30 seconds.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use webhooks_tests::merchant::{Happening, TestMerchant};

use crate::harness::Stack;
use crate::outage::LatencyReceiver;
use crate::scenarios::assert_verifies;

/// Retries a second apart, so that an endpoint fails three times in a row within seconds.
const FAST_RETRIES: (&str, &str) = ("WEBHOOKS_RETRY_SCHEDULE", "1s,1s,1s,1s,1s,1s,1s");
const WAIT: Duration = Duration::from_secs(120);

fn event(stack: &Stack, name: &str, order: &str) -> Value {
    json!({"merchantId": stack.merchant_id, "eventName": name, "orderId": order})
}

async fn subscription(stack: &Stack, id: &str) -> Value {
    let (status, body) = stack.call("GET", &format!("/v1/subscriptions/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits until the subscription's `health.status` is `status`; the subscription then.
async fn wait_for_health(stack: &Stack, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = subscription(stack, id).await;
        if found["health"]["status"] == status {
            return found;
        }
        assert!(Instant::now() < deadline, "health never became {status}: {found}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the merchant has no new request to `path` for `quiet`.
async fn wait_until_quiet(merchant: &TestMerchant, path: &str, quiet: Duration) {
    let mut seen = merchant.requests_to(path).len();
    loop {
        tokio::time::sleep(quiet).await;
        let now = merchant.requests_to(path).len();
        if now == seen {
            return;
        }
        seen = now;
    }
}

/// The most requests that were in flight at once among the merchant's first `count`.
fn max_in_flight_among_first(happenings: &[Happening], count: usize) -> usize {
    let (mut received, mut in_flight, mut most) = (0, 0_usize, 0);
    for happening in happenings {
        match happening {
            Happening::Received(_) if received == count => break,
            Happening::Received(_) => {
                received += 1;
                in_flight += 1;
                most = most.max(in_flight);
            }
            Happening::Answered(_) => in_flight = in_flight.saturating_sub(1),
        }
    }
    most
}

#[tokio::test]
async fn a_failing_endpoint_gets_at_most_its_probes_at_once_then_every_held_delivery_once() {
    const FAILURES: usize = 8;
    const BURST: usize = 60;
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(dir.path(), &[FAST_RETRIES, ("WEBHOOKS_PROBE_SLOTS", "2")], &[]);
    let merchant = TestMerchant::start().await;
    // 503 after 200 ms to its first FAILURES requests, then 200.
    let path = format!("/slow-flaky/{FAILURES}");
    let id = stack.subscribe(&merchant.url(&path), &[]).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // One event's attempts, a second apart, make the endpoint failing.
    let mut published = vec![stack.publish(event(&stack, "payment_received", "order-0")).await];
    let failing = wait_for_health(&stack, &id, "failing").await;
    assert_eq!(failing["health"]["lastError"], "503", "{failing}");
    // A burst while it fails: only the probes reach it, the rest is held.
    for n in 1..=BURST {
        published.push(
            stack
                .publish(event(&stack, "payment_received", &format!("order-{n}")))
                .await,
        );
    }

    // Once it answers 200 again, every delivery arrives, each once (the last within a
    // minute: a probe that a failure let through is due a minute after it).
    let deadline = Instant::now() + WAIT;
    let delivered = loop {
        let requests = merchant.requests_to(&path);
        let succeeded: Vec<String> = requests
            .iter()
            .skip(FAILURES)
            .map(|r| r.headers["webhook-id"].clone())
            .collect();
        let distinct: HashSet<&String> = succeeded.iter().collect();
        if published.iter().all(|id| distinct.contains(id)) {
            break succeeded;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} delivered",
            distinct.len(),
            published.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    wait_until_quiet(&merchant, &path, Duration::from_secs(3)).await;
    let succeeded = merchant.requests_to(&path).len() - FAILURES;
    let most = max_in_flight_among_first(&merchant.happenings(), FAILURES + 1);
    println!(
        "breaker: {} events, {FAILURES} failed requests, at most {most} at once before the first success, {succeeded} successes",
        published.len()
    );
    assert!(most <= 2, "{most} requests at once reached the failing endpoint");
    assert_eq!(succeeded, published.len(), "each delivered once: {delivered:?}");
    assert_eq!(subscription(&stack, &id).await["health"]["status"], "healthy");
}

#[tokio::test]
async fn an_endpoint_failing_too_long_is_disabled_its_merchant_told_and_its_deliveries_recovered_once() {
    const EVENTS: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(dir.path(), &[FAST_RETRIES, ("WEBHOOKS_DISABLE_AFTER", "3s")], &[]);
    let merchant = TestMerchant::start().await;
    let dead = stack
        .subscribe(&merchant.url("/status/503"), &["payment_received"])
        .await;
    let dead_id = dead["id"].as_str().unwrap().to_owned();
    let operations = stack.subscribe(&merchant.url("/ok"), &["endpoint_disabled"]).await;

    let mut published = Vec::new();
    for n in 0..EVENTS {
        published.push(
            stack
                .publish(event(&stack, "payment_received", &format!("order-{n}")))
                .await,
        );
    }
    let disabled = wait_for_health(&stack, &dead_id, "disabled").await;
    assert_eq!(disabled["enabled"], false);
    let reason = disabled["health"]["disabledReason"].as_str().unwrap();
    assert!(reason.contains("503"), "{reason}");

    // The merchant's subscription to endpoint_disabled is told, signed as any webhook.
    let told = merchant.wait_for_requests_to("/ok", 1, WAIT).await;
    let body: Value = serde_json::from_str(&told[0].body).unwrap();
    assert_eq!(body["eventName"], "endpoint_disabled");
    assert_eq!(body["orderId"], dead_id.as_str());
    assert_verifies(&told[0], operations["secret"].as_str().unwrap());

    // Its deliveries are held, not sent to the DLQ; the merchant fixes its endpoint,
    // enables it again (health reset) and recovers them: each arrives once.
    wait_until_quiet(&merchant, "/status/503", Duration::from_secs(3)).await;
    let patch = json!({"url": merchant.url("/no-content"), "enabled": true});
    let (status, enabled) = stack
        .call("PATCH", &format!("/v1/subscriptions/{dead_id}"), Some(patch))
        .await;
    assert_eq!(status, 200, "{enabled}");
    assert_eq!(enabled["health"]["status"], "healthy");
    let an_hour_ago = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let since = json!({"since": an_hour_ago.format(&time::format_description::well_known::Rfc3339).unwrap()});
    let recover = format!("/v1/subscriptions/{dead_id}/recover");
    let (status, recovered) = stack.call("POST", &recover, Some(since.clone())).await;
    assert_eq!(
        (status, recovered["count"].as_u64()),
        (202, Some(EVENTS as u64)),
        "{recovered}"
    );
    let (_, again) = stack.call("POST", &recover, Some(since)).await;
    assert_eq!(again["count"], 0, "a repeat sends nothing twice");

    let arrived = merchant.wait_for_requests_to("/no-content", EVENTS, WAIT).await;
    wait_until_quiet(&merchant, "/no-content", Duration::from_secs(3)).await;
    let ids: Vec<String> = merchant
        .requests_to("/no-content")
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    let expected: HashSet<&String> = published.iter().collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>(), expected, "{arrived:?}");
    assert_eq!(ids.len(), EVENTS, "each once");
    println!(
        "auto-disable: {} failed requests, disabled with {reason:?}, {EVENTS} held deliveries recovered",
        merchant.requests_to("/status/503").len()
    );
}

#[tokio::test]
async fn a_rate_limited_subscription_stays_within_its_rate_over_30_seconds() {
    const RATE: u64 = 5;
    const EVENTS: usize = 150;
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(dir.path(), &[], &[]);
    let receiver = LatencyReceiver::start().await;
    let body = json!({"url": receiver.url, "rateLimitPerSecond": RATE});
    let (status, created) = stack.call("POST", "/v1/subscriptions", Some(body)).await;
    assert_eq!(status, 201, "{created}");

    let mut published = Vec::with_capacity(EVENTS);
    for n in 0..EVENTS {
        published.push(
            stack
                .publish(event(&stack, "crypto_delivered", &format!("order-{n}")))
                .await,
        );
    }
    let deadline = Instant::now() + WAIT;
    let mut arrivals = Vec::with_capacity(EVENTS);
    for id in &published {
        loop {
            if let Some(at) = receiver.arrived(id) {
                arrivals.push(at);
                break;
            }
            assert!(Instant::now() < deadline, "{id} never arrived");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    arrivals.sort();
    let span = arrivals[EVENTS - 1] - arrivals[0];
    // EVENTS arrivals are EVENTS - 1 intervals; an upper bound only (a slower machine is slower).
    let rate = (EVENTS - 1) as f64 / span.as_secs_f64();
    println!("rate limit {RATE}/s: {EVENTS} deliveries over {span:?}: {rate:.2}/s");
    assert!(rate <= RATE as f64 * 1.1, "{rate:.2}/s is over {RATE}/s + 10 %");
}
