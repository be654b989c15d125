//! The deliver bootstrap on a Lambda Runtime API emulator, with DynamoDB and SQS on moto:
//! a real SQS event carrying a delivery task in, a signed webhook to a loopback merchant
//! out. Prints its init time and RSS (run with `--nocapture`; docs/benchmarks.md has the
//! figures).

use std::time::Duration;

use serde_json::{Value, json};
use webhooks_domain::{
    AttemptOutcome, DeliveryStatus, DeliveryTask, EventName, IsoTime, PlatformEvent, SigningSecrets, Subscription,
};
use webhooks_signing::seed::verify_body;
use webhooks_storage::aws::SqsQueue;
use webhooks_storage::{DeliveryLog, OutgoingMessage, PageRequest, Queue, SubscriptionStore};
use webhooks_tests::lambda_emulator::{FunctionProcess, LambdaEmulator, MotoDeployment, bootstrap_binary};
use webhooks_tests::merchant::TestMerchant;

const MERCHANT: &str = "m_lambda_deliver";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_bootstrap_answers_an_sqs_event_on_the_runtime_api() {
    let aws = MotoDeployment::start().await;
    let merchant = TestMerchant::start().await;
    let now = IsoTime::parse_rfc3339("2026-11-27T00:00:00Z").unwrap();
    let subscription = Subscription {
        id: Subscription::new_id(),
        merchant_id: MERCHANT.into(),
        url: merchant.url("/ok"),
        events: vec![EventName::CryptoDelivered],
        description: String::new(),
        enabled: true,
        created_at: now,
        updated_at: now,
        secrets: SigningSecrets::new(None),
    };
    aws.store.create_subscription(&subscription).await.unwrap();
    let event = PlatformEvent {
        event_id: "evt-lambda-deliver-1".into(),
        merchant_id: MERCHANT.into(),
        event_name: EventName::CryptoDelivered,
        order_id: "5a3288ea-0bd4-44d2-af11-aae1f88bbd61".into(),
        time_stamp: IsoTime::parse_rfc3339("2026-11-27T05:00:00.000Z").unwrap(),
    };
    // The task as ingest enqueues it, received as the event source mapping receives it.
    let task = DeliveryTask::first(event, subscription.id.clone());
    let deliveries = SqsQueue::new(aws.sqs.clone(), aws.queues.deliveries.clone(), None);
    deliveries
        .send(OutgoingMessage {
            body: serde_json::to_string(&task).unwrap(),
            delay: Duration::ZERO,
        })
        .await
        .unwrap();
    let sqs_event = aws
        .receive_sqs_event(&aws.queues.deliveries, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(sqs_event["Records"].as_array().map(Vec::len), Some(1), "{sqs_event}");

    let emulator = LambdaEmulator::start("webhooks-deliver").await.unwrap();
    let binary = bootstrap_binary("deliver", env!("CARGO_BIN_EXE_deliver"));
    let mut env = aws.function_env();
    // The merchant is on loopback, over http: allowed as in the local stack.
    env.push(("WEBHOOKS_ALLOW_HTTP".into(), "true".into()));
    env.push(("WEBHOOKS_ALLOW_PRIVATE_URLS".into(), "true".into()));
    let mut function = FunctionProcess::spawn(&binary, &emulator, &env).unwrap();
    function
        .wait_until_polling(&emulator, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let answer = emulator.invoke(sqs_event, Duration::from_secs(30)).await;
    let figures = function.measure(&emulator).unwrap();
    assert_eq!(answer, Ok(json!({ "batchItemFailures": [] })), "{}", function.log());

    let received = merchant.wait_for_requests(1, Duration::from_secs(5)).await;
    assert_eq!(received.len(), 1, "{received:?}");
    let webhook = &received[0];
    assert_eq!(webhook.path, "/ok");
    assert_eq!(webhook.headers["webhook-id"], "evt-lambda-deliver-1");
    verify_body(subscription.secrets.current.as_bytes(), webhook.body.as_bytes()).unwrap();
    let body: Value = serde_json::from_str(&webhook.body).unwrap();
    assert_eq!(body["eventName"], "crypto_delivered");
    assert_eq!(body["orderId"], "5a3288ea-0bd4-44d2-af11-aae1f88bbd61");

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

    println!("{figures}");
    function.stop();
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
