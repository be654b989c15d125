//! The AWS requests one webhook costs on the DynamoDB and SQS adapters (issue: performance,
//! "the fewest AWS requests per webhook"): events go through ingest and deliver as the
//! Lambda event source mappings hand them over (batches of 10), every request counted by
//! the quota layer on moto. Counts, not time: the budgets are asserted, and the figures are
//! printed for docs/deploy.md's cost table (`--no-capture`).
//!
//! Counted as ours: what the functions send. Counted apart: the event source mapping's
//! `ReceiveMessage` and `DeleteMessageBatch` (Lambda's poller makes them; SQS bills them),
//! and the SDK's retries.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use webhooks_deliver::{Deliver, DeliverConfig, http_client};
use webhooks_domain::{SystemClock, UrlPolicy};
use webhooks_ingest::Ingest;
use webhooks_runtime::{QueueRecord, sqs_event};
use webhooks_storage::aws::SqsQueue;
use webhooks_storage::{OutgoingMessage, QueueReceiver, QueueSender, SubscriptionStore};
use webhooks_tests::aws_quotas::RequestCounts;
use webhooks_tests::backends::{Aws, Harness};
use webhooks_tests::fixtures::{secrets, subscription};
use webhooks_tests::merchant::TestMerchant;

const MERCHANT: &str = "m_requests";
const LOOPBACK: UrlPolicy = UrlPolicy {
    allow_http: true,
    allow_private: true,
};
/// The event source mappings' batch size (template.yaml).
const BATCH: usize = 10;

/// AWS requests per delivery, by kind.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PerDelivery {
    dynamodb_writes: f64,
    dynamodb_reads: f64,
    sqs_ours: f64,
    sqs_event_source: f64,
}

impl PerDelivery {
    fn of(counts: &RequestCounts, deliveries: usize) -> Self {
        let sum = |service: &str, operations: &[&str]| -> f64 {
            let n: u64 = counts
                .iter()
                .filter(|((s, op), _)| s == service && operations.contains(&op.as_str()))
                .map(|(_, n)| n)
                .sum();
            n as f64 / deliveries as f64
        };
        const WRITES: &[&str] = &[
            "PutItem",
            "UpdateItem",
            "DeleteItem",
            "BatchWriteItem",
            "TransactWriteItems",
        ];
        const READS: &[&str] = &["GetItem", "Query", "BatchGetItem", "Scan", "TransactGetItems"];
        Self {
            dynamodb_writes: sum("DynamoDB", WRITES),
            dynamodb_reads: sum("DynamoDB", READS),
            sqs_ours: sum("SQS", &["SendMessage", "SendMessageBatch"]),
            sqs_event_source: sum("SQS", &["ReceiveMessage", "DeleteMessage", "DeleteMessageBatch"]),
        }
    }
}

/// What the event source mapping does: receives up to 10, hands them over as one SQS
/// event, deletes the handled ones. Returns how many it handed over.
async fn hand_over<F, Fut>(queue: &SqsQueue, name: &str, handle: F) -> usize
where
    F: Fn(aws_lambda_events::sqs::SqsEvent) -> Fut,
    Fut: Future<Output = Result<aws_lambda_events::sqs::SqsBatchResponse, webhooks_runtime::BatchError>>,
{
    let messages = queue
        .receive(BATCH, Duration::from_secs(60), Duration::ZERO)
        .await
        .unwrap();
    if messages.is_empty() {
        return 0;
    }
    let arn = format!("arn:aws:sqs:us-east-1:000000000000:{name}");
    let answer = handle(sqs_event(&arn, messages.iter().map(QueueRecord::from)))
        .await
        .unwrap();
    assert!(
        answer.batch_item_failures.is_empty(),
        "{name}: {:?}",
        answer.batch_item_failures
    );
    let handles = messages.iter().map(|m| m.receipt_handle.clone()).collect();
    for result in queue.delete_batch(handles).await.unwrap() {
        result.unwrap();
    }
    messages.len()
}

/// `events` events of one merchant with `subscriptions` subscriptions (all answering 200),
/// through ingest and deliver; the requests per delivery.
async fn per_delivery(subscriptions: usize, events: usize) -> PerDelivery {
    let aws = Aws::new().await;
    let merchant = TestMerchant::start().await;
    for n in 0..subscriptions {
        let sub = subscription(MERCHANT, &format!("sub_{n:03}"), &merchant.url("/ok"));
        aws.store().create_subscription(&sub, &secrets()).await.unwrap();
    }
    let (events_queue, _) = aws.queue_pair("requests-events", 5).await;
    let (deliveries, _) = aws.queue_pair("requests-deliveries", 6).await;
    let clock = Arc::new(SystemClock);
    let ingest = Ingest::new(
        aws.store().clone(),
        deliveries.clone(),
        events_queue.clone(),
        clock.clone(),
    );
    let deliver = Deliver::new(
        aws.store().clone(),
        deliveries.clone(),
        http_client(&LOOPBACK),
        DeliverConfig::default(),
        clock,
    );
    for n in 0..events {
        let body = json!({"eventId": format!("evt_{n:04}"), "merchantId": MERCHANT, "eventName": "crypto_delivered", "orderId": format!("order-{n}")});
        events_queue
            .send(OutgoingMessage {
                body: body.to_string(),
                delay: Duration::ZERO,
            })
            .await
            .unwrap();
    }
    let layer = aws.deployment().quota_layer().clone();
    layer.reset();
    let mut ingested = 0;
    while ingested < events {
        ingested += hand_over(&events_queue, "events", |event| ingest.handle_batch(event)).await;
    }
    let expected = events * subscriptions;
    let mut delivered = 0;
    while delivered < expected {
        delivered += hand_over(&deliveries, "deliveries", |event| deliver.handle_batch(event)).await;
    }
    assert_eq!(merchant.requests().len(), expected, "every delivery made once");
    // What the code asked for: the SDK's retries (moto answers concurrent transactions
    // with conflicts that DynamoDB gives only for one item) are counted apart.
    let retries = layer.retries();
    let mut asked = layer.counts();
    for (operation, n) in &retries {
        *asked.get_mut(operation).expect("a retried operation was sent") -= n;
    }
    let per = PerDelivery::of(&asked, expected);
    println!("{events} events x {subscriptions} subscriptions on moto: {per:?}");
    for ((service, operation), n) in &asked {
        println!("  {service}.{operation}: {n}");
    }
    println!("  SDK retries: {retries:?}");
    per
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_try_delivery_to_one_subscription_costs_at_most_3_writes_1_read_and_half_an_sqs_request() {
    let per = per_delivery(1, 50).await;
    assert!(per.dynamodb_writes <= 3.0, "{per:?}");
    assert!(per.dynamodb_reads <= 1.0, "{per:?}");
    assert!(per.sqs_ours <= 0.5, "{per:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_extra_subscription_of_a_fan_out_costs_at_most_1_write_and_a_fifth_of_an_sqs_request() {
    let one = per_delivery(1, 10).await;
    let fan_out = per_delivery(20, 10).await;
    // The 19 extra subscriptions' share of the fan-out's requests, per extra delivery.
    let extra = |one: f64, many: f64| (many * 200.0 - one * 10.0) / 190.0;
    let writes = extra(one.dynamodb_writes, fan_out.dynamodb_writes);
    let sqs = extra(one.sqs_ours, fan_out.sqs_ours);
    println!("each extra subscription: {writes:.2} DynamoDB writes, {sqs:.2} SQS requests");
    // Per-delivery figures are ratios of counts: compare with a rounding margin.
    assert!(writes <= 1.0 + 1e-9, "{writes}");
    assert!(sqs <= 0.2 + 1e-9, "{sqs}");
}
