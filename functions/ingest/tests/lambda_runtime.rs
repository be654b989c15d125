//! The ingest bootstrap on a Lambda Runtime API emulator, with DynamoDB and SQS on moto:
//! a real SQS event from the events queue in, one delivery task on the deliveries queue out.
//! Prints its init time and RSS (run with `--nocapture`; docs/benchmarks.md has the figures).

use std::time::Duration;

use serde_json::json;
use webhooks_domain::DeliveryTask;
use webhooks_storage::{EventStore, QueueReceiver, SubscriptionStore};
use webhooks_tests::emf::assert_emf_as_documented;
use webhooks_tests::fixtures::{event, event_message, secrets, subscription};
use webhooks_tests::lambda_emulator::{LambdaStack, METRICS_NAMESPACE, bootstrap_binary};

const MERCHANT: &str = "m_lambda_ingest";
const INVOKE: Duration = Duration::from_secs(30);

/// The platform on moto, with the bootstrap polling a fresh emulator.
async fn start_ingest() -> LambdaStack {
    let binary = bootstrap_binary("ingest", env!("CARGO_BIN_EXE_ingest"));
    LambdaStack::start("webhooks-ingest", &binary, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_bootstrap_answers_an_sqs_event_on_the_runtime_api() {
    let stack = start_ingest().await;
    let (aws, emulator, function) = (&stack.aws, &stack.emulator, &stack.function);
    let subscription = subscription(MERCHANT, "sub_lambda_ingest", "https://merchant.example.com/webhooks");
    aws.store.create_subscription(&subscription, &secrets()).await.unwrap();
    // What a platform service sends to the events queue.
    let platform_event = event_message(&event(MERCHANT, "evt-lambda-ingest-1"));
    let sqs_event = stack.sqs_event_carrying(&aws.queues.events, platform_event).await;
    assert_eq!(sqs_event["Records"].as_array().map(Vec::len), Some(1), "{sqs_event}");

    let answer = emulator.invoke(sqs_event, INVOKE).await;
    let figures = function.measure(emulator).unwrap();
    assert_eq!(answer, Ok(json!({ "batchItemFailures": [] })), "{}", function.log());

    let queued = aws
        .queue(&aws.queues.deliveries)
        .receive(10, Duration::from_secs(60), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(queued.len(), 1, "{queued:?}");
    let task = DeliveryTask::from_message_body(&queued[0].body).unwrap();
    assert_eq!(task.subscription_id, subscription.id);
    assert_eq!(task.event.event_id, "evt-lambda-ingest-1");
    assert_eq!(task.attempt, 1);
    let recorded = aws.store.get_event("evt-lambda-ingest-1").await.unwrap();
    assert_eq!(recorded.map(|e| e.merchant_id), Some(MERCHANT.to_owned()));
    let metrics = assert_emf_as_documented(&function.log(), METRICS_NAMESPACE, &["events_ingested"]);
    assert_eq!(metrics[0]["event_name"], "crypto_delivered");

    println!("{figures}");
    stack.function.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_bootstrap_posts_an_unreadable_event_to_the_error_route_and_keeps_polling() {
    let stack = start_ingest().await;
    let (emulator, function) = (&stack.emulator, &stack.function);

    let error = emulator
        .invoke(json!({ "Records": "not a list" }), INVOKE)
        .await
        .unwrap_err();
    assert!(error["errorType"].is_string(), "{error}");
    assert!(error["errorMessage"].as_str().is_some_and(|m| !m.is_empty()), "{error}");

    // The same sandbox takes the next invocation.
    let empty = emulator.invoke(json!({ "Records": [] }), INVOKE).await;
    assert_eq!(empty, Ok(json!({ "batchItemFailures": [] })), "{}", function.log());
    stack.function.stop();
}
