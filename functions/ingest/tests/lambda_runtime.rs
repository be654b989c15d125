//! The ingest bootstrap on a Lambda Runtime API emulator, with DynamoDB and SQS on moto:
//! a real SQS event from the events queue in, one delivery task on the deliveries queue out.
//! Prints its init time and RSS (run with `--nocapture`; docs/benchmarks.md has the figures).

use std::time::Duration;

use serde_json::json;
use webhooks_domain::{DeliveryTask, EventName, IsoTime, SigningSecrets, Subscription};
use webhooks_storage::aws::SqsQueue;
use webhooks_storage::{EventStore, OutgoingMessage, Queue, SubscriptionStore};
use webhooks_tests::lambda_emulator::{FunctionProcess, LambdaEmulator, MotoDeployment, bootstrap_binary};

const MERCHANT: &str = "m_lambda_ingest";
const START: Duration = Duration::from_secs(30);
const INVOKE: Duration = Duration::from_secs(30);

/// The bootstrap, started for a fresh emulator and polling it.
async fn start_ingest(aws: &MotoDeployment) -> (LambdaEmulator, FunctionProcess) {
    let emulator = LambdaEmulator::start("webhooks-ingest").await.unwrap();
    let binary = bootstrap_binary("ingest", env!("CARGO_BIN_EXE_ingest"));
    let mut function = FunctionProcess::spawn(&binary, &emulator, &aws.function_env()).unwrap();
    function
        .wait_until_polling(&emulator, START)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (emulator, function)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_bootstrap_answers_an_sqs_event_on_the_runtime_api() {
    let aws = MotoDeployment::start().await;
    let now = IsoTime::parse_rfc3339("2026-11-27T00:00:00Z").unwrap();
    let subscription = Subscription {
        id: Subscription::new_id(),
        merchant_id: MERCHANT.into(),
        url: "https://merchant.example.com/webhooks".into(),
        events: vec![EventName::CryptoDelivered],
        description: String::new(),
        enabled: true,
        created_at: now,
        updated_at: now,
        secrets: SigningSecrets::new(None),
    };
    aws.store.create_subscription(&subscription).await.unwrap();
    // What a platform service sends to the events queue.
    let platform_event = json!({
        "eventId": "evt-lambda-ingest-1",
        "merchantId": MERCHANT,
        "eventName": "crypto_delivered",
        "orderId": "5a3288ea-0bd4-44d2-af11-aae1f88bbd61",
        "timeStamp": "2026-11-27T05:00:00.000Z",
    });
    let events = SqsQueue::new(aws.sqs.clone(), aws.queues.events.clone(), None);
    events
        .send(OutgoingMessage {
            body: platform_event.to_string(),
            delay: Duration::ZERO,
        })
        .await
        .unwrap();
    let sqs_event = aws
        .receive_sqs_event(&aws.queues.events, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(sqs_event["Records"].as_array().map(Vec::len), Some(1), "{sqs_event}");

    let (emulator, function) = start_ingest(&aws).await;
    let answer = emulator.invoke(sqs_event, INVOKE).await;
    let figures = function.measure(&emulator).unwrap();
    assert_eq!(answer, Ok(json!({ "batchItemFailures": [] })), "{}", function.log());

    let deliveries = SqsQueue::new(aws.sqs.clone(), aws.queues.deliveries.clone(), None);
    let queued = deliveries
        .receive(10, Duration::from_secs(60), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(queued.len(), 1, "{queued:?}");
    let task: DeliveryTask = serde_json::from_str(&queued[0].body).unwrap();
    assert_eq!(task.subscription_id, subscription.id);
    assert_eq!(task.event.event_id, "evt-lambda-ingest-1");
    assert_eq!(task.attempt, 1);
    let recorded = aws.store.get_event("evt-lambda-ingest-1").await.unwrap();
    assert_eq!(recorded.map(|e| e.merchant_id), Some(MERCHANT.to_owned()));

    println!("{figures}");
    function.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_bootstrap_posts_an_unreadable_event_to_the_error_route_and_keeps_polling() {
    let aws = MotoDeployment::start().await;
    let (emulator, function) = start_ingest(&aws).await;

    let error = emulator
        .invoke(json!({ "Records": "not a list" }), INVOKE)
        .await
        .unwrap_err();
    assert!(error["errorType"].is_string(), "{error}");
    assert!(error["errorMessage"].as_str().is_some_and(|m| !m.is_empty()), "{error}");

    // The same sandbox takes the next invocation.
    let empty = emulator.invoke(json!({ "Records": [] }), INVOKE).await;
    assert_eq!(empty, Ok(json!({ "batchItemFailures": [] })), "{}", function.log());
    function.stop();
}
