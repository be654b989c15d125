//! The subscriptions bootstrap (the merchant API) on a Lambda Runtime API emulator, with
//! DynamoDB and SQS on moto: real API Gateway HTTP API (payload 2.0) events in, Lambda
//! proxy responses out. Prints its init time and RSS (run with `--nocapture`;
//! docs/benchmarks.md has the figures).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use webhooks_storage::SubscriptionStore;
use webhooks_tests::emf::assert_emf_as_documented;
use webhooks_tests::lambda_emulator::{LambdaStack, METRICS_NAMESPACE, api_gateway_v2_event, bootstrap_binary};

const INVOKE: Duration = Duration::from_secs(30);
const MERCHANT: &str = "m_lambda_subscriptions";

/// The proxy response's status and its body as JSON.
fn status_and_body(response: &Value) -> (u64, Value) {
    let text = response["body"].as_str().unwrap_or_default();
    let bytes = if response["isBase64Encoded"] == true {
        B64.decode(text).unwrap()
    } else {
        text.as_bytes().to_vec()
    };
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (response["statusCode"].as_u64().unwrap(), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_bootstrap_answers_api_gateway_http_events_on_the_runtime_api() {
    let binary = bootstrap_binary("subscriptions", env!("CARGO_BIN_EXE_subscriptions"));
    // Lambda's own URL policy (https to public hosts only): no override.
    let stack = LambdaStack::start("webhooks-subscriptions", &binary, &[]).await;
    let (emulator, function) = (&stack.emulator, &stack.function);
    let key = stack.add_merchant(MERCHANT).await;
    let authorization = format!("Bearer {}", key.clear_text);
    let headers = [
        ("authorization", authorization.as_str()),
        ("content-type", "application/json"),
        ("accept", "application/json"),
        ("user-agent", "merchant-sdk/1.0"),
    ];

    let list = api_gateway_v2_event("GET", "/v1/subscriptions", &headers, None);
    let listed = emulator.invoke(list.clone(), INVOKE).await;
    let figures = function.measure(emulator).unwrap();
    let listed = listed.unwrap_or_else(|e| panic!("{e}\n{}", function.log()));
    assert_eq!(listed["headers"]["content-type"], "application/json", "{listed}");
    assert_eq!(
        status_and_body(&listed),
        (200, json!({ "items": [], "nextCursor": null }))
    );

    let create = api_gateway_v2_event(
        "POST",
        "/v1/subscriptions",
        &headers,
        Some(r#"{"url":"https://merchant.example.com/webhooks","events":["crypto_delivered"]}"#),
    );
    let created = emulator.invoke(create, INVOKE).await.unwrap();
    let (status, created) = status_and_body(&created);
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["events"], json!(["crypto_delivered"]));
    assert_eq!(created["secret"].as_str().map(str::len), Some(64));
    let stored = stack.aws.store.get_subscription(MERCHANT, id).await.unwrap().unwrap();
    assert_eq!(stored.url, "https://merchant.example.com/webhooks");

    let (status, page) = status_and_body(&emulator.invoke(list, INVOKE).await.unwrap());
    assert_eq!(status, 200);
    assert_eq!(page["items"][0]["id"], id);

    let anonymous = api_gateway_v2_event("GET", "/v1/subscriptions", &[], None);
    let (status, refused) = status_and_body(&emulator.invoke(anonymous, INVOKE).await.unwrap());
    assert_eq!(status, 401, "{refused}");
    // One EMF document per request, flushed by its invocation: the route's template and status.
    let metrics = assert_emf_as_documented(&function.log(), METRICS_NAMESPACE, &["api_requests", "api_latency"]);
    let statuses: Vec<(&Value, &Value)> = metrics
        .iter()
        .filter(|document| document.get("status").is_some())
        .map(|document| (&document["route"], &document["status"]))
        .collect();
    let route = json!("/v1/subscriptions");
    assert_eq!(
        statuses,
        [
            (&route, &json!("200")),
            (&route, &json!("201")),
            (&route, &json!("200")),
            (&route, &json!("401"))
        ]
    );

    println!("{figures}");
    stack.function.stop();
}
