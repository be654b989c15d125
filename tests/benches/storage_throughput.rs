//! Storage throughput, for the notes (not a test): the embedded queue's send + receive +
//! delete cycle in batches of 10, and DynamoDB adapter operations against moto server.
//!
//! Run with `cargo bench -p webhooks-tests --bench storage_throughput`.

use std::time::{Duration, Instant};

use webhooks_domain::DeliveryTask;
use webhooks_storage::embedded::{EmbeddedStore, QueueSettings};
use webhooks_storage::{EventStore, OutgoingMessage, QueueReceiver, QueueSender, SubscriptionStore};
use webhooks_tests::backends::{Aws, Harness};
use webhooks_tests::fixtures::{event, secrets, subscription};

const QUEUE_MESSAGES: usize = 20_000;
const DYNAMO_OPERATIONS: usize = 500;
const MERCHANT: &str = "m_bench";

#[tokio::main]
async fn main() {
    embedded_queue().await;
    dynamo_on_moto().await;
}

async fn embedded_queue() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("bench.sqlite3")).unwrap();
    let queue = store.queue(
        "bench",
        QueueSettings {
            dlq: None,
            max_receive_count: 0,
        },
    );
    // A delivery task, the deliveries queue's message.
    let body =
        DeliveryTask::first(event(MERCHANT, "0b7c2a52-3f52-5d6b-9a4e-2f0e6c1d8a77"), "sub_1".into()).to_message_body();
    let started = Instant::now();
    for _ in 0..QUEUE_MESSAGES / 10 {
        let batch = (0..10)
            .map(|_| OutgoingMessage {
                body: body.clone(),
                delay: Duration::ZERO,
            })
            .collect();
        queue.send_batch(batch).await.unwrap();
    }
    let sent = started.elapsed();
    let mut done = 0;
    while done < QUEUE_MESSAGES {
        let received = queue
            .receive(10, Duration::from_secs(30), Duration::ZERO)
            .await
            .unwrap();
        for message in &received {
            queue.delete(&message.receipt_handle).await.unwrap();
        }
        done += received.len();
    }
    let total = started.elapsed();
    println!(
        "embedded queue: {QUEUE_MESSAGES} messages, send {:.0}/s, receive+delete {:.0}/s, full cycle {:.0} messages/s",
        QUEUE_MESSAGES as f64 / sent.as_secs_f64(),
        QUEUE_MESSAGES as f64 / (total - sent).as_secs_f64(),
        QUEUE_MESSAGES as f64 / total.as_secs_f64()
    );
}

async fn dynamo_on_moto() {
    // The same DynamoDB + SQS on moto that the conformance suite runs on.
    let aws = Aws::new().await;
    let store = aws.store();
    let report = |what: &str, elapsed: Duration| {
        println!(
            "dynamodb on moto: {what}: {:.0} ops/s",
            DYNAMO_OPERATIONS as f64 / elapsed.as_secs_f64()
        );
    };
    let started = Instant::now();
    for i in 0..DYNAMO_OPERATIONS {
        let subscription = subscription(MERCHANT, &format!("sub_{i:05}"), "https://merchant.example/hooks");
        store.create_subscription(&subscription, &secrets()).await.unwrap();
    }
    report("create_subscription (conditional PutItem)", started.elapsed());
    let started = Instant::now();
    for i in 0..DYNAMO_OPERATIONS {
        store
            .get_subscription(MERCHANT, &format!("sub_{i:05}"))
            .await
            .unwrap()
            .unwrap();
    }
    report("get_subscription (GetItem)", started.elapsed());
    let started = Instant::now();
    for i in 0..DYNAMO_OPERATIONS {
        let event = event(MERCHANT, &format!("evt_{i}"));
        store.record_event(&event, Duration::from_secs(60)).await.unwrap();
    }
    report("record_event (conditional PutItem)", started.elapsed());
}
