//! The deliver bootstrap on a Lambda Runtime API emulator, with DynamoDB and SQS on moto:
//! a real SQS event carrying a delivery task in, a signed webhook to a loopback merchant
//! out. Prints its init time and RSS (run with `--nocapture`; docs/benchmarks.md has the
//! figures).

use std::time::Duration;

use serde_json::{Value, json};
use webhooks_domain::{AttemptOutcome, DeliveryStatus, DeliveryTask};
use webhooks_signing::seed::verify_body;
use webhooks_storage::{DeliveryLog, PageRequest, SubscriptionStore};
use webhooks_tests::emf::assert_emf_as_documented;
use webhooks_tests::fixtures::{ORDER_ID, SECRET, event, secrets, subscription};
use webhooks_tests::lambda_emulator::{
    FunctionProcess, LOOPBACK_URLS, LambdaEmulator, LambdaStack, METRICS_NAMESPACE, bootstrap_binary,
};
use webhooks_tests::merchant::TestMerchant;

const MERCHANT: &str = "m_lambda_deliver";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_bootstrap_answers_an_sqs_event_on_the_runtime_api() {
    let binary = bootstrap_binary("deliver", env!("CARGO_BIN_EXE_deliver"));
    // The merchant is on loopback, over http: allowed as in the local stack.
    let stack = LambdaStack::start("webhooks-deliver", &binary, LOOPBACK_URLS).await;
    let (aws, emulator, function) = (&stack.aws, &stack.emulator, &stack.function);
    let merchant = TestMerchant::start().await;
    let subscription = subscription(MERCHANT, "sub_lambda_deliver", &merchant.url("/ok"));
    aws.store.create_subscription(&subscription, &secrets()).await.unwrap();
    // The task as ingest enqueues it, received as the event source mapping receives it.
    let task = DeliveryTask::first(event(MERCHANT, "evt-lambda-deliver-1"), subscription.id.clone());
    let sqs_event = stack
        .sqs_event_carrying(&aws.queues.deliveries, task.to_message_body())
        .await;
    assert_eq!(sqs_event["Records"].as_array().map(Vec::len), Some(1), "{sqs_event}");

    let answer = emulator.invoke(sqs_event, Duration::from_secs(30)).await;
    let figures = function.measure(emulator).unwrap();
    assert_eq!(answer, Ok(json!({ "batchItemFailures": [] })), "{}", function.log());

    let received = merchant.wait_for_requests(1, Duration::from_secs(5)).await;
    assert_eq!(received.len(), 1, "{received:?}");
    let webhook = &received[0];
    assert_eq!(webhook.path, "/ok");
    assert_eq!(webhook.headers["webhook-id"], "evt-lambda-deliver-1");
    verify_body(SECRET.as_bytes(), webhook.body.as_bytes()).unwrap();
    let body: Value = serde_json::from_str(&webhook.body).unwrap();
    assert_eq!(body["eventName"], "crypto_delivered");
    assert_eq!(body["orderId"], ORDER_ID);

    let status = aws
        .store
        .delivery_status("evt-lambda-deliver-1", &subscription.id)
        .await
        .unwrap();
    assert_eq!(status, Some(DeliveryStatus::Succeeded));
    let attempts = aws
        .store
        .list_attempts(MERCHANT, &subscription.id, PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(attempts.items.len(), 1);
    assert_eq!(attempts.items[0].outcome, AttemptOutcome::Succeeded);
    assert_eq!(attempts.items[0].status_code, Some(200));
    let metrics = assert_emf_as_documented(&function.log(), METRICS_NAMESPACE, &["deliveries", "attempt_latency"]);
    let delivered = metrics
        .iter()
        .find(|document| document.get("deliveries").is_some())
        .unwrap();
    assert_eq!(
        (
            &delivered["outcome"],
            &delivered["event_name"],
            &delivered["deliveries"]
        ),
        (&json!("delivered"), &json!("crypto_delivered"), &json!(1))
    );

    println!("{figures}");
    stack.function.stop();
}

#[tokio::test]
async fn deliver_bootstrap_without_its_settings_exits_before_polling() {
    let emulator = LambdaEmulator::start("webhooks-deliver").await.unwrap();
    let binary = bootstrap_binary("deliver", env!("CARGO_BIN_EXE_deliver"));
    let mut function = FunctionProcess::spawn(&binary, &emulator, &[]).unwrap();
    let failure = function
        .wait_until_polling(&emulator, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(failure.reason.starts_with("exited"), "{failure}");
    assert!(failure.log.contains("WEBHOOKS_TABLE_NAME is required"), "{failure}");
    assert!(emulator.first_next_at().is_none());
}
