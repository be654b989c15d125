//! What a user of the local stack does, and what they must see.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::{Value, json};
use webhooks_signing::standard::standard_webhooks_secret;
use webhooks_tests::merchant::{Received, TestMerchant};
use webhooks_tests::moto::MotoServer;
use webhooks_tests::verifiers::node;

use crate::harness::Stack;

const WAIT: Duration = Duration::from_secs(30);

fn event(merchant_id: &str, name: &str, order: &str) -> Value {
    json!({"merchantId": merchant_id, "eventName": name, "orderId": order, "timeStamp": "2022-10-26T22:36:41.658Z"})
}

/// The received webhook verifies with the seed's Node snippet and the npm Standard Webhooks library.
pub(crate) fn assert_verifies(received: &Received, secret: &str) {
    let seed = node("seed-verify", &json!({"secret": secret, "bodies": [received.body]}));
    assert_eq!(seed, json!([true]), "seed signature of {}", received.body);
    let message = json!({
        "id": received.headers["webhook-id"],
        "timestamp": received.headers["webhook-timestamp"].parse::<i64>().unwrap(),
        "signature": received.headers["webhook-signature"],
        "body": received.body,
    });
    let answers = node(
        "sw-verify",
        &json!({"secret": standard_webhooks_secret(secret), "messages": [message]}),
    );
    assert_eq!(answers, json!(["ok"]), "Standard Webhooks headers");
}

async fn subscribe_publish_receive(stack: &Stack) {
    let merchant = TestMerchant::start().await;
    let subscription = stack.subscribe(&merchant.url("/ok"), &[]).await;
    let secret = subscription["secret"].as_str().unwrap();
    let event_id = stack
        .publish(event(&stack.merchant_id, "crypto_delivered", "order-1"))
        .await;
    let received = merchant.wait_for_requests(1, WAIT).await;
    assert_eq!(received.len(), 1, "no webhook arrived");
    assert_eq!(received[0].headers["webhook-id"], event_id);
    let body: Value = serde_json::from_str(&received[0].body).unwrap();
    assert_eq!(body["eventName"], "crypto_delivered");
    assert_eq!(body["orderId"], "order-1");
    assert_eq!(body["timeStamp"], "2022-10-26T22:36:41.658Z");
    assert_verifies(&received[0], secret);
    assert_metrics_counted(stack).await;
}

/// `GET /metrics` counted what just happened: the event ingested, its delivery, the API
/// request that subscribed, and an attempt latency.
async fn assert_metrics_counted(stack: &Stack) {
    let (status, text) = stack.call("GET", "/metrics", None).await;
    assert_eq!(status, 200);
    let text = text.as_str().expect("Prometheus text");
    let counted = |name: &str, labels: &[&str]| {
        text.lines().any(|line| {
            line.starts_with(&format!("{name}{{"))
                && labels.iter().all(|label| line.contains(label))
                && line
                    .rsplit(' ')
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .is_some_and(|v| v >= 1.0)
        })
    };
    assert!(
        counted("events_ingested", &[r#"event_name="crypto_delivered""#]),
        "{text}"
    );
    assert!(
        counted(
            "deliveries",
            &[r#"outcome="delivered""#, r#"event_name="crypto_delivered""#]
        ),
        "{text}"
    );
    assert!(
        counted("api_requests", &[r#"route="/v1/subscriptions""#, r#"status="201""#]),
        "{text}"
    );
    assert!(counted("attempt_latency_count", &[r#"outcome="success""#]), "{text}");
}

#[tokio::test]
async fn subscribe_publish_receive_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(dir.path(), &[], &[]);
    subscribe_publish_receive(&stack).await;
    assert!(stack.terminate().success(), "SIGTERM is a clean exit");
}

#[tokio::test]
async fn subscribe_publish_receive_on_aws_adapters_against_moto() {
    let moto = MotoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start_on_moto(dir.path(), moto.endpoint());
    subscribe_publish_receive(&stack).await;
}

#[tokio::test]
async fn an_event_the_subscription_does_not_take_never_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(dir.path(), &[], &[]);
    let merchant = TestMerchant::start().await;
    stack.subscribe(&merchant.url("/ok"), &["payment_received"]).await;
    stack
        .publish(event(&stack.merchant_id, "crypto_delivered", "not-taken"))
        .await;
    // Published after it: once this one arrived, the first one had its chance.
    let taken = stack
        .publish(event(&stack.merchant_id, "payment_received", "taken"))
        .await;
    merchant.wait_for_requests(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = merchant.requests();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].headers["webhook-id"], taken);
}

#[tokio::test]
async fn failed_deliveries_are_retried_on_the_schedule_with_the_same_webhook_id() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(dir.path(), &[("WEBHOOKS_RETRY_SCHEDULE", "1s,1s,1s")], &[]);
    let merchant = TestMerchant::start().await;
    // 503 twice, then 200.
    let subscription = stack.subscribe(&merchant.url("/flaky/2"), &[]).await;
    let event_id = stack
        .publish(event(&stack.merchant_id, "payment_received", "retry-me"))
        .await;
    let received = merchant.wait_for_requests(3, WAIT).await;
    assert_eq!(received.len(), 3);
    assert!(
        received.iter().all(|r| r.headers["webhook-id"] == event_id),
        "the webhook-id changed between attempts"
    );

    let path = format!("/v1/subscriptions/{}/deliveries", subscription["id"].as_str().unwrap());
    let mut log = Value::Null;
    for _ in 0..50 {
        let (status, body) = stack.call("GET", &path, None).await;
        assert_eq!(status, 200, "{body}");
        log = body;
        if log["items"].as_array().is_some_and(|items| items.len() == 3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let attempts: Vec<(u64, Option<u64>)> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["attempt"].as_u64().unwrap(), a["statusCode"].as_u64()))
        .collect();
    assert_eq!(
        attempts,
        [(3, Some(200)), (2, Some(503)), (1, Some(503))],
        "the delivery log, newest first"
    );
}

#[tokio::test]
async fn the_same_event_id_twice_is_one_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(dir.path(), &[], &[]);
    let merchant = TestMerchant::start().await;
    stack.subscribe(&merchant.url("/ok"), &[]).await;
    let mut duplicate = event(&stack.merchant_id, "payment_expired", "dup");
    duplicate["eventId"] = json!("evt_twice");
    assert_eq!(stack.publish(duplicate.clone()).await, "evt_twice");
    assert_eq!(stack.publish(duplicate).await, "evt_twice");
    let marker = stack
        .publish(event(&stack.merchant_id, "payment_received", "after"))
        .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !merchant.requests().iter().any(|r| r.headers["webhook-id"] == marker) {
        assert!(tokio::time::Instant::now() < deadline, "the marker event never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let a second copy, if any, arrive (a retried duplicate would take at least its own round trip).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let copies = merchant
        .requests()
        .iter()
        .filter(|r| r.headers["webhook-id"] == "evt_twice")
        .count();
    assert_eq!(copies, 1);
}

#[tokio::test]
async fn an_event_accepted_while_the_merchant_is_down_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(
        dir.path(),
        &[("WEBHOOKS_RETRY_SCHEDULE", "2s,2s,2s,2s,2s,2s,2s,2s,2s,2s")],
        &[],
    );
    let port = webhooks_tests::moto::free_port();
    stack.subscribe(&format!("http://127.0.0.1:{port}/ok"), &[]).await;
    let event_id = stack
        .publish(event(&stack.merchant_id, "crypto_tx_sent", "survivor"))
        .await;
    // Let the first attempt fail against the absent merchant, then kill the stack hard.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stack = stack.kill9_and_restart();
    let merchant = TestMerchant::start_on(port).await;
    let received = merchant.wait_for_requests(1, WAIT).await;
    assert_eq!(received.len(), 1, "the event was lost");
    assert_eq!(received[0].headers["webhook-id"], event_id);
    drop(stack);
}

#[tokio::test]
async fn the_first_merchant_is_the_same_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(dir.path(), &[], &[]);
    let (id, key) = (stack.merchant_id.clone(), stack.api_key.clone());
    let stack = stack.kill9_and_restart();
    assert_eq!(
        (stack.merchant_id.as_str(), stack.api_key.as_str()),
        (id.as_str(), key.as_str())
    );
    let (status, _) = stack.call("GET", "/v1/subscriptions", None).await;
    assert_eq!(status, 200, "the remembered key works");
    // Only its owner may read the files that hold keys.
    for file in ["first-merchant.json", "secrets.key"] {
        let mode = std::fs::metadata(dir.path().join(file)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
}

#[tokio::test]
async fn bad_input_to_local_routes_gets_a_4xx_json_error_and_the_stack_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(dir.path(), &[], &[]);
    let cases: [(&str, &'static str, &str); 8] = [
        ("/local/merchants", "{not json", "invalid_request"),
        ("/local/merchants", r#"{"name": 7}"#, "invalid_request"),
        ("/local/events", "{not json", "invalid_json"),
        (
            "/local/events",
            r#"{"merchantId":"m","eventName":"refunded","orderId":"o"}"#,
            "unknown_event",
        ),
        (
            "/local/events",
            r#"{"merchantId":"m","eventName":"crypto_delivered"}"#,
            "missing_field",
        ),
        ("/local/events", "[]", "not_an_object"),
        ("/local/auth-check", "{}", "invalid_request"),
        (
            "/local/auth-check",
            r#"{"merchantId":"m","email":"a@b.c"}"#,
            "invalid_request",
        ),
    ];
    for (path, body, code) in cases {
        let (status, answer) = stack.post_raw(path, body).await;
        assert_eq!(status, 400, "{path} {body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{path} {body}: {answer}");
        assert!(answer["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (status, created) = stack.post_raw("/local/merchants", r#"{"name":"Acme"}"#).await;
    assert_eq!(status, 201, "{created}");
    assert!(created["apiKey"].as_str().unwrap().starts_with("whk_"));
    let (status, decision) = stack
        .call(
            "POST",
            "/local/auth-check",
            Some(json!({"merchantId": stack.merchant_id, "email": "a@b.c", "action": "buy"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(decision["allowed"], false);
    assert_eq!(decision["reason"], "no_callback_configured");
}
